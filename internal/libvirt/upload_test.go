package libvirt

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUploadCancelAndResume(t *testing.T) {
	c := testClient(t)
	p := dirPool(t, c, testPrefix(t))
	_, err := c.EnsurePool(p.xml)
	require.NoError(t, err)

	// A real qcow2 header followed by random bytes up to 9 MiB: the header
	// makes InspectImage's job real, the random tail makes any lost or
	// misplaced chunk show.
	src := filepath.Join(t.TempDir(), "src.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", src, "1G").CombinedOutput()
	require.NoError(t, err, string(out))
	const size = 9 << 20
	f, err := os.OpenFile(src, os.O_WRONLY, 0)
	require.NoError(t, err)
	tail := make([]byte, size-(1<<20))
	_, err = rand.Read(tail)
	require.NoError(t, err)
	_, err = f.WriteAt(tail, 1<<20)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	format, virtual, fileSize, err := InspectImage(src)
	require.NoError(t, err)
	require.Equal(t, "qcow2", format)
	require.Equal(t, uint64(1<<30), virtual)
	require.Equal(t, int64(size), fileSize)

	_, err = c.EnsureVolume(p.name, volumeXML(t, "image", "raw", size, ""))
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var reported []int64
	err = c.UploadVolume(ctx, p.name, "image", src, 0, func(done int64) {
		reported = append(reported, done)
		if done >= size/2 {
			cancel()
		}
	})
	require.ErrorIs(t, err, context.Canceled)
	require.NotEmpty(t, reported)
	resumeAt := reported[len(reported)-1]
	require.Less(t, resumeAt, int64(size), "cancelled before the end")

	var resumed []int64
	err = c.UploadVolume(context.Background(), p.name, "image", src, resumeAt, func(done int64) { resumed = append(resumed, done) })
	require.NoError(t, err)
	require.Equal(t, int64(size), resumed[len(resumed)-1])
	for i, d := range resumed {
		require.Greater(t, d, resumeAt)
		if i > 0 {
			require.Greater(t, d, resumed[i-1])
		}
	}

	v, err := c.LookupVolume(p.name, "image")
	require.NoError(t, err)
	got, err := os.ReadFile(v.Path)
	require.NoError(t, err)
	want, err := os.ReadFile(src)
	require.NoError(t, err)
	require.Equal(t, len(want), len(got))
	require.True(t, bytes.Equal(want, got), "volume content equals the source")

	err = c.UploadVolume(context.Background(), p.name, "absent", src, 0, nil)
	require.ErrorIs(t, err, ErrNotFound)
}

// An upload in segments finishes each before the next: when Written is
// told an offset, the volume already holds the image below it. Read sees
// every piece once, in order; an error from Written stops the upload
// there.
func TestUploadInSegments(t *testing.T) {
	c := testClient(t)
	p := dirPool(t, c, testPrefix(t))
	_, err := c.EnsurePool(p.xml)
	require.NoError(t, err)
	// Random data in [0, 6 MiB) and [10 MiB, 18 MiB), a hole between.
	const size = 18 << 20
	image := make([]byte, size)
	_, _ = rand.Read(image[:6<<20])
	_, _ = rand.Read(image[10<<20:])
	src := filepath.Join(t.TempDir(), "src.img")
	file, err := os.Create(src)
	require.NoError(t, err)
	require.NoError(t, file.Truncate(size))
	_, err = file.WriteAt(image[:6<<20], 0)
	require.NoError(t, err)
	_, err = file.WriteAt(image[10<<20:], 10<<20)
	require.NoError(t, err)
	require.NoError(t, file.Close())
	file, err = os.Open(src)
	require.NoError(t, err)
	defer file.Close()

	fresh := func() string {
		require.NoError(t, c.DeleteVolume(p.name, "image"))
		_, err := c.EnsureVolume(p.name, volumeXML(t, "image", "raw", size, ""))
		require.NoError(t, err)
		v, err := c.LookupVolume(p.name, "image")
		require.NoError(t, err)
		return v.Path
	}
	path := fresh()
	var marks []int64
	var read int64
	err = c.UploadVolumeFileWith(context.Background(), p.name, "image", file, 0, UploadOptions{
		Segment: 1, // every piece of data read is a segment
		Written: func(end int64) error {
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.GreaterOrEqual(t, int64(len(got)), end)
			require.True(t, bytes.Equal(image[:end], got[:end]), "the volume holds the image below %d", end)
			marks = append(marks, end)
			return nil
		},
		// (called in the reading goroutine: assert, not require)
		Read: func(off int64, data []byte, n int64) {
			assert.Equal(t, read, off, "pieces come in order")
			if data == nil {
				assert.Equal(t, make([]byte, n), image[off:off+n], "a hole of the image")
			} else {
				assert.Equal(t, int(n), len(data))
				assert.True(t, bytes.Equal(image[off:off+n], data))
			}
			read += n
		},
	})
	require.NoError(t, err)
	require.Equal(t, int64(size), read)
	require.Greater(t, len(marks), 3, "%v", marks)
	require.Equal(t, int64(size), marks[len(marks)-1])
	for i := 1; i < len(marks); i++ {
		require.Greater(t, marks[i], marks[i-1])
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, bytes.Equal(image, got))

	// Stopped by Written at the second segment: nothing after it is sent.
	path = fresh()
	stop := errors.New("stop here")
	marks = nil
	err = c.UploadVolumeFileWith(context.Background(), p.name, "image", file, 0, UploadOptions{
		Segment: 1,
		Written: func(end int64) error {
			marks = append(marks, end)
			if len(marks) == 2 {
				return stop
			}
			return nil
		},
	})
	require.ErrorIs(t, err, stop)
	require.Len(t, marks, 2)
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, bytes.Equal(image[:marks[1]], got[:marks[1]]))
	require.Equal(t, make([]byte, len(got)-int(marks[1])), got[marks[1]:], "nothing beyond the segment it stopped at")
}

func TestInspectRawImage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.raw")
	require.NoError(t, os.WriteFile(path, make([]byte, 3000), 0o644))
	format, virtual, size, err := InspectImage(path)
	require.NoError(t, err)
	require.Equal(t, "raw", format)
	require.Equal(t, uint64(3000), virtual)
	require.Equal(t, int64(3000), size)
	_, _, _, err = InspectImage(path + ".absent")
	require.Error(t, err)
}
