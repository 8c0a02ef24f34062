package libvirt

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkSparseUploadVsVirsh streams a sparse raw image (4 GiB virtual,
// 256 MiB of random data in 16 extents) with UploadVolume and, alternating,
// with `virsh vol-upload --sparse`, and reports time, the ratio, and the
// allocation each leaves.
//
//	go test -run '^$' -bench SparseUploadVsVirsh -benchtime 4x ./libvirt/
func BenchmarkSparseUploadVsVirsh(b *testing.B) {
	c, name, dir := benchPool(b)
	var err error

	const virtual, extents, extent = 4 << 30, 16, 16 << 20
	src := filepath.Join(dir, "sparse.img")
	f, err := os.Create(src)
	require.NoError(b, err)
	require.NoError(b, f.Truncate(virtual))
	data := make([]byte, extent)
	for i := 0; i < extents; i++ {
		_, _ = rand.Read(data)
		_, err = f.WriteAt(data, int64(i)*(virtual/extents))
		require.NoError(b, err)
	}
	require.NoError(b, f.Close())
	vol := `<volume><name>sparse.img</name><capacity unit="bytes">4294967296</capacity><allocation>0</allocation><target><format type="raw"/></target></volume>`

	var ours, theirs time.Duration
	var ourAlloc, theirAlloc uint64
	fresh := func() {
		_ = c.DeleteVolume(name, "sparse.img")
		_, err := c.EnsureVolume(name, vol)
		require.NoError(b, err)
	}
	alloc := func() uint64 {
		v, err := c.LookupVolume(name, "sparse.img")
		require.NoError(b, err)
		return v.Allocation
	}
	hpcvm := func() {
		fresh()
		start := time.Now()
		require.NoError(b, c.UploadVolume(context.Background(), name, "sparse.img", src, 0, nil, nil))
		ours += time.Since(start)
		ourAlloc = alloc()
	}
	virsh := func() {
		fresh()
		start := time.Now()
		out, err := exec.Command("virsh", "-c", "qemu:///system", "vol-upload", "--sparse", "--pool", name, "sparse.img", src).CombinedOutput()
		require.NoError(b, err, string(out))
		theirs += time.Since(start)
		theirAlloc = alloc()
	}
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			hpcvm()
			virsh()
		} else {
			virsh()
			hpcvm()
		}
	}
	_ = c.DeleteVolume(name, "sparse.img")
	b.ReportMetric(ours.Seconds()/float64(b.N), "hpcvm-s")
	b.ReportMetric(theirs.Seconds()/float64(b.N), "virsh-sparse-s")
	b.ReportMetric(ours.Seconds()/theirs.Seconds(), "time-ratio")
	b.ReportMetric(float64(ourAlloc>>20), "hpcvm-alloc-MiB")
	b.ReportMetric(float64(theirAlloc>>20), "virsh-alloc-MiB")
}
