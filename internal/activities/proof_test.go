package activities

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// writeImage makes a 26 MiB image: random data in [0, 10 MiB) and
// [14 MiB, 26 MiB), a hole between.
func writeImage(t *testing.T, path string) []byte {
	t.Helper()
	image := make([]byte, 26<<20)
	_, _ = rand.Read(image[:10<<20])
	_, _ = rand.Read(image[14<<20:])
	file, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, file.Truncate(int64(len(image))))
	_, err = file.WriteAt(image[:10<<20], 0)
	require.NoError(t, err)
	_, err = file.WriteAt(image[14<<20:], 14<<20)
	require.NoError(t, err)
	require.NoError(t, file.Close())
	return image
}

// An upload is proven segment by segment while it streams: whatever is in
// the volume that is not the image's bytes once libvirtd has written it (a
// changed byte, a dropped piece, data in a hole, a short end) is found, and
// the upload is not accepted nor recorded. Untouched, the same upload is
// accepted and recorded with the image's digest.
func TestUploadProofCatchesAVolumeThatIsNotTheImage(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	old := proofSegment
	proofSegment = 1 // a segment per piece of data read (4 MiB at most)
	t.Cleanup(func() { proofSegment = old; afterSegmentWritten = nil })
	src := filepath.Join(f.dir, "base.img")
	image := writeImage(t, src)
	size := int64(len(image))
	xml := rawVolume(t, "base.img", len(image))
	req := api.UploadRequest{Pool: f.pool, PoolUUID: f.poolUUID, Volume: "base.img", XML: xml, Source: src}

	// With a segment per piece read, libvirtd has written the volume below
	// 4, 8, 10, 18, 22 and 26 MiB in turn; each spoil hits the segment
	// just written, which the proof has not read yet.
	flip := func(at int64) func(string) {
		return func(path string) {
			file, err := os.OpenFile(path, os.O_RDWR, 0)
			require.NoError(t, err)
			defer file.Close()
			b := make([]byte, 1)
			_, err = file.ReadAt(b, at)
			require.NoError(t, err)
			b[0] ^= 0x01
			_, err = file.WriteAt(b, at)
			require.NoError(t, err)
		}
	}
	for _, tc := range []struct {
		name  string
		at    int64 // spoil when libvirtd has written below this
		spoil func(path string)
	}{
		{"a byte changed in the first segment", 4 << 20, flip(3 << 20)},
		{"a byte changed in a later segment", 22 << 20, flip(20 << 20)},
		{"a byte changed in the last segment", size, flip(25 << 20)},
		{"a piece dropped", 18 << 20, func(path string) {
			file, err := os.OpenFile(path, os.O_RDWR, 0)
			require.NoError(t, err)
			defer file.Close()
			require.NoError(t, unix.Fallocate(int(file.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 15<<20, 1<<20))
		}},
		{"data where the image has a hole", 18 << 20, func(path string) {
			file, err := os.OpenFile(path, os.O_RDWR, 0)
			require.NoError(t, err)
			defer file.Close()
			_, err = file.WriteAt([]byte("not zero"), 12<<20)
			require.NoError(t, err)
		}},
		{"the volume cut short", size, func(path string) { require.NoError(t, os.Truncate(path, size-4096)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, f.lv.DeleteVolume(f.pool, "base.img"))
			spoiled := false
			afterSegmentWritten = func(path string, end int64) {
				if end >= tc.at && !spoiled {
					spoiled = true
					tc.spoil(path)
				}
			}
			_, err := f.env().ExecuteActivity(f.acts.UploadBaseImage, req)
			require.True(t, spoiled, "the upload went past %d", tc.at)
			require.Error(t, err)
			typ, final := appErrorType(t, err)
			assert.Equal(t, api.ErrTypeLibvirt, typ)
			assert.True(t, final)
			assert.Contains(t, err.Error(), "does not hold what was uploaded")
			vol, err := f.lv.LookupVolume(f.pool, "base.img")
			require.NoError(t, err)
			_, recorded := readBaseRecord(vol.Path)
			assert.False(t, recorded, "a volume that is not the image is not recorded")
		})
	}

	var marks []int64
	afterSegmentWritten = func(_ string, end int64) { marks = append(marks, end) }
	require.NoError(t, f.lv.DeleteVolume(f.pool, "base.img"))
	_, err := f.env().ExecuteActivity(f.acts.UploadBaseImage, req)
	require.NoError(t, err)
	require.Greater(t, len(marks), 3, "the upload went in segments: %v", marks)
	assert.Equal(t, size, marks[len(marks)-1])
	assertVolumeHolds(t, f, "base.img", image)
	vol, err := f.lv.LookupVolume(f.pool, "base.img")
	require.NoError(t, err)
	rec, ok := readBaseRecord(vol.Path)
	require.True(t, ok)
	whole := newImageDigest()
	_, _ = whole.Write(image)
	assert.Equal(t, hex.EncodeToString(whole.Sum()), rec.Digest)
}

// A resumed upload proves the part of the volume it did not send too: an
// earlier attempt's bytes that are not the image's make the attempt fail,
// to be retried from the first byte, and that retry is accepted.
func TestResumedUploadChecksWhatTheEarlierAttemptWrote(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	old := proofSegment
	proofSegment = 1
	t.Cleanup(func() { proofSegment = old })
	src := filepath.Join(f.dir, "base.img")
	image := writeImage(t, src)
	st, err := statSource(src)
	require.NoError(t, err)
	xml := rawVolume(t, "base.img", len(image))
	// The earlier attempt got to 20 MiB, but libvirtd lost a piece at 2 MiB.
	_, err = f.lv.EnsureVolume(f.pool, xml)
	require.NoError(t, err)
	vol, err := f.lv.LookupVolume(f.pool, "base.img")
	require.NoError(t, err)
	earlier := append([]byte(nil), image[:20<<20]...)
	clear(earlier[2<<20 : 3<<20])
	file, err := os.OpenFile(vol.Path, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = file.WriteAt(earlier, 0)
	require.NoError(t, err)
	require.NoError(t, file.Close())

	env := f.env()
	env.SetHeartbeatDetails(api.UploadProgress{Offset: 16 << 20, Source: st})
	req := api.UploadRequest{Pool: f.pool, PoolUUID: f.poolUUID, Volume: "base.img", XML: xml, Source: src}
	_, err = env.ExecuteActivity(f.acts.UploadBaseImage, req)
	require.Error(t, err)
	_, final := appErrorType(t, err)
	assert.False(t, final, "a retry may succeed")
	assert.Contains(t, err.Error(), "after a resumed upload")
	_, recorded := readBaseRecord(vol.Path)
	assert.False(t, recorded)

	// The retry, told to start over, makes the volume anew.
	env = f.env()
	env.SetHeartbeatDetails(api.UploadProgress{Offset: 16 << 20, Source: st, StartOver: true})
	val, err := env.ExecuteActivity(f.acts.UploadBaseImage, req)
	require.NoError(t, err)
	var res api.UploadResult
	require.NoError(t, val.Get(&res))
	assert.Equal(t, int64(0), res.ResumedFrom)
	assertVolumeHolds(t, f, "base.img", image)
}

// A record made with the earlier SHA-256 digest is still a record: the
// volume it is on is trusted as it is, without the source.
func TestBaseRecordOfTheSHA256DigestIsRecognised(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	xml := rawVolume(t, "base.img", 1<<20)
	_, err := f.lv.EnsureVolume(f.pool, xml)
	require.NoError(t, err)
	vol, err := f.lv.LookupVolume(f.pool, "base.img")
	require.NoError(t, err)
	src := filepath.Join(f.dir, "gone.img")
	rec := baseRecord{Digest: "00ff", Kind: sha256DigestKind, Size: 1 << 20, Source: src, Verified: "2026-11-01T00:00:00Z"}
	require.NoError(t, rec.write(vol.Path))
	got, ok := readBaseRecord(vol.Path)
	require.True(t, ok)
	assert.Equal(t, rec, got)

	val, err := f.env().ExecuteActivity(f.acts.UploadBaseImage, api.UploadRequest{Pool: f.pool, PoolUUID: f.poolUUID, Volume: "base.img", XML: xml, Source: src, Existed: true})
	require.NoError(t, err)
	var res api.UploadResult
	require.NoError(t, val.Get(&res))
	assert.True(t, res.AlreadyDone)
	require.Len(t, res.Notes, 1)
	assert.Contains(t, res.Notes[0], "is not there any more")
	assert.Contains(t, res.Notes[0], "digest 00ff")

	rec.Kind = "md5 of something else"
	require.NoError(t, rec.write(vol.Path))
	_, ok = readBaseRecord(vol.Path)
	assert.False(t, ok, "a digest of a kind hpcvm never made is no record")
}
