package libvirt

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkUploadVsVirsh streams one dense raw image (1 GiB of random
// bytes) into a pool volume with UploadVolume, digesting it (SHA-256) as
// the base-image upload does, and, alternating in the same
// run, with `virsh vol-upload`, and reports both throughputs and their
// ratio (above 1: hpcvm is faster).
//
//	go test -run '^$' -bench UploadVsVirsh -benchtime 3x ./libvirt/
func BenchmarkUploadVsVirsh(b *testing.B) {
	c, name, dir := benchPool(b)
	var err error

	const size = 1 << 30
	src := filepath.Join(dir, "dense.img")
	f, err := os.Create(src)
	require.NoError(b, err)
	_, err = io.CopyN(f, rand.Reader, size)
	require.NoError(b, err)
	require.NoError(b, f.Close())
	vol := `<volume><name>dense.img</name><capacity unit="bytes">1073741824</capacity><target><format type="raw"/></target></volume>`

	var ours, plain, theirs time.Duration
	// Both write into a volume created just before, and they take turns
	// going first, so neither gets the warmer cache or the allocated file.
	fresh := func() {
		_ = c.DeleteVolume(name, "dense.img")
		_, err := c.EnsureVolume(name, vol)
		require.NoError(b, err)
	}
	hpcvm := func() {
		fresh()
		start := time.Now()
		// Digesting as it streams, as the base-image upload does.
		require.NoError(b, c.UploadVolume(context.Background(), name, "dense.img", src, 0, sha256.New(), nil))
		ours += time.Since(start)
	}
	undigested := func() {
		fresh()
		start := time.Now()
		require.NoError(b, c.UploadVolume(context.Background(), name, "dense.img", src, 0, nil, nil))
		plain += time.Since(start)
	}
	virsh := func() {
		fresh()
		start := time.Now()
		out, err := exec.Command("virsh", "-c", "qemu:///system", "vol-upload", "--pool", name, "dense.img", src).CombinedOutput()
		require.NoError(b, err, string(out))
		theirs += time.Since(start)
	}
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			hpcvm()
			undigested()
			virsh()
		} else {
			virsh()
			undigested()
			hpcvm()
		}
	}
	_ = c.DeleteVolume(name, "dense.img")
	mibs := func(d time.Duration) float64 { return float64(size>>20) * float64(b.N) / d.Seconds() }
	b.ReportMetric(mibs(ours), "hpcvm-MiB/s")
	b.ReportMetric(mibs(theirs), "virsh-MiB/s")
	b.ReportMetric(mibs(plain), "undigested-MiB/s")
	b.ReportMetric(mibs(ours)/mibs(theirs), "throughput-ratio")
	b.ReportMetric(mibs(plain)/mibs(theirs), "undigested-ratio")
}

// benchPool is a directory pool of its own for an upload benchmark, with the
// scratch directory its images go to; both are removed when it ends.
func benchPool(b *testing.B) (c *Client, name, dir string) {
	c, err := Dial("qemu:///system")
	require.NoError(b, err)
	b.Cleanup(func() { _ = c.Close() })
	prefix := "hpcvmb-" + time.Now().Format("150405.000") + "-"
	dir = filepath.Join("/var/tmp", prefix+"pools")
	require.NoError(b, os.MkdirAll(dir, 0o755))
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	uuid := fmt.Sprintf("6c1b1e1e-0b0b-4c4c-8d8d-%012d", time.Now().UnixNano()%1e12)
	name = prefix + "pool"
	x := `<pool type="dir"><name>` + name + `</name><uuid>` + uuid + `</uuid><target><path>` + filepath.Join(dir, "pool") + `</path></target></pool>`
	_, err = c.EnsurePool(x)
	require.NoError(b, err)
	b.Cleanup(func() { _ = c.DeletePool(name, uuid) })
	return c, name, dir
}
