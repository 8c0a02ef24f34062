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
// written zeros, odd write sizes); other
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

	other := append([]byte(nil), data...)
	other[len(other)-1] ^= 1
	d := newImageDigest()
	_, _ = d.Write(other)
	assert.NotEqual(t, want, d.Sum())
	longer := newImageDigest()
	_, _ = longer.Write(append(append([]byte(nil), data...), 0))
	assert.NotEqual(t, want, longer.Sum(), "a trailing zero changes the length, so the digest")

	// A sparse file digests like the same bytes written densely, and
	// compares equal to them: holes in one are zeros in the other.
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
	densePath := filepath.Join(dir, "dense.img")
	require.NoError(t, os.WriteFile(densePath, data, 0o644))
	for _, pair := range [][2]string{{sparse, densePath}, {densePath, sparse}, {sparse, sparse}} {
		got, same, err := compareWithSource(pair[0], pair[1], func() error { return nil })
		require.NoError(t, err)
		assert.True(t, same, "%v", pair)
		assert.Equal(t, want, got, "%v", pair)
	}
	// One changed byte, in data or in a hole of the other, is a difference.
	for _, at := range []int{100, 1<<20 + 5, len(data) - 1} {
		changed := append([]byte(nil), data...)
		changed[at] ^= 0x80
		other := filepath.Join(dir, "changed.img")
		require.NoError(t, os.WriteFile(other, changed, 0o644))
		_, same, err := compareWithSource(sparse, other, func() error { return nil })
		require.NoError(t, err)
		assert.False(t, same, "byte %d differs", at)
	}
	_, same, err := compareWithSource(sparse, densePath+".short", func() error { return nil })
	assert.Error(t, err, "a missing volume is an error, not a difference")
	assert.False(t, same)
	require.NoError(t, os.WriteFile(densePath, data[:len(data)-1], 0o644))
	_, same, err = compareWithSource(sparse, densePath, func() error { return nil })
	require.NoError(t, err)
	assert.False(t, same, "another length")
}
