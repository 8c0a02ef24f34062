package libvirt

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

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
