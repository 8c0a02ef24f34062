package activities

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The same content digests the same however its zeros are stored (holes,
// written zeros, odd write sizes, a resume from a saved state); other
// content digests differently.
func TestImageDigestIsTheContentsNotTheLayout(t *testing.T) {
	data := make([]byte, 3<<20+777)
	_, _ = rand.Read(data)
	for i := 1 << 20; i < 2<<20+100; i++ {
		data[i] = 0 // a zero run that is not block aligned
	}
	plain := newImageDigest()
	_, _ = plain.Write(data)
	want := plain.Sum()

	holes := newImageDigest()
	_, _ = holes.Write(data[:1<<20])
	holes.WriteHole(1<<20 + 100)
	_, _ = holes.Write(data[2<<20+100:])
	assert.Equal(t, want, holes.Sum(), "a hole is the same as written zeros")

	odd := newImageDigest()
	for p := data; len(p) > 0; {
		k := min(len(p), 4097)
		_, _ = odd.Write(p[:k])
		p = p[k:]
	}
	assert.Equal(t, want, odd.Sum(), "write sizes do not matter")

	first := newImageDigest()
	_, _ = first.Write(data[:1234567])
	state, err := first.MarshalBinary()
	require.NoError(t, err)
	resumed := newImageDigest()
	require.NoError(t, resumed.UnmarshalBinary(state))
	_, _ = resumed.Write(data[1234567:])
	assert.Equal(t, want, resumed.Sum(), "a resumed digest goes on where it was saved")

	other := append([]byte(nil), data...)
	other[len(other)-1] ^= 1
	d := newImageDigest()
	_, _ = d.Write(other)
	assert.NotEqual(t, want, d.Sum())
	longer := newImageDigest()
	_, _ = longer.Write(append(append([]byte(nil), data...), 0))
	assert.NotEqual(t, want, longer.Sum(), "a trailing zero changes the length, so the digest")

	// A sparse file digests like the same bytes written densely.
	dir := t.TempDir()
	sparse := filepath.Join(dir, "sparse.img")
	f, err := os.Create(sparse)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(int64(len(data))))
	_, err = f.WriteAt(data[:1<<20], 0)
	require.NoError(t, err)
	_, err = f.WriteAt(data[2<<20+100:], 2<<20+100)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	got, err := digestFile(sparse, func() error { return nil })
	require.NoError(t, err)
	assert.Equal(t, want, got)
}
