package activities

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hpcvm/hpcvm/api"
	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"
)

// BenchmarkUploadVsVirsh uploads base images into a pool volume the ways
// hpcvm does and with `virsh vol-upload`, taking turns (who goes first
// alternates between rounds), each into a volume made just before:
//
//   - dense: 2 GiB of random bytes, raw;
//   - sparse raw: 20 GiB, 1 GiB of random data in 16 extents;
//   - sparse qcow2: the same image converted to qcow2 (its file holds the
//     data and qcow2's tables).
//
// hpcvm's figures: "stream" is libvirt.UploadVolume, the upload itself in
// one stream, and "activity" is the whole UploadBaseImage step: make the
// volume, stream it in segments while digesting what is read and reading
// back every finished segment beside the source, compare the last one,
// record the proof. Sparse images go to virsh with --sparse. It prints
// min/median/max of each time, the throughputs and ratios (above 1: hpcvm
// is faster), and the allocation each left.
//
//	go test -run '^$' -bench UploadVsVirsh -benchtime 1x ./internal/activities/
func BenchmarkUploadVsVirsh(b *testing.B) {
	f := newFixture(b)
	f.makePool()
	dense := filepath.Join(f.dir, "dense.img")
	writeRandom(b, dense, 2<<30, 1, 2<<30)
	sparse := filepath.Join(f.dir, "sparse.img")
	writeRandom(b, sparse, 20<<30, 16, 64<<20)
	sparseQcow2 := filepath.Join(f.dir, "sparse.qcow2")
	out, err := exec.Command("qemu-img", "convert", "-O", "qcow2", sparse, sparseQcow2).CombinedOutput()
	require.NoError(b, err, "%s", out)

	const rounds = 4
	for _, img := range []struct {
		name, path, format string
		virshSparse        bool
	}{
		{"dense raw 2 GiB", dense, "raw", false},
		{"sparse raw 20 GiB, 1 GiB data", sparse, "raw", true},
		{"sparse qcow2 20 GiB, 1 GiB data", sparseQcow2, "qcow2", true},
	} {
		st, err := os.Stat(img.path)
		require.NoError(b, err)
		capacity := st.Size()
		if img.format == "qcow2" {
			capacity = qcow2Virtual(b, img.path)
		}
		vol := "base." + img.format
		xml, err := (&libvirtxml.StorageVolume{Type: "file", Name: vol,
			Capacity:   &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: uint64(capacity)},
			Allocation: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: 0},
			Target:     &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: img.format}}}).Marshal()
		require.NoError(b, err)
		fresh := func() {
			require.NoError(b, f.lv.DeleteVolume(f.pool, vol))
			_, err := f.lv.EnsureVolume(f.pool, xml)
			require.NoError(b, err)
		}
		allocation := func() float64 {
			v, err := f.lv.LookupVolume(f.pool, vol)
			require.NoError(b, err)
			return float64(v.Allocation) / (1 << 20)
		}
		variants := []struct {
			name string
			run  func()
		}{
			{"stream", func() {
				require.NoError(b, f.lv.UploadVolume(context.Background(), f.pool, vol, img.path, 0, nil))
			}},
			{"activity", func() {
				require.NoError(b, f.lv.DeleteVolume(f.pool, vol)) // the activity makes it
				_, err := f.env().ExecuteActivity(f.acts.UploadBaseImage, api.UploadRequest{Pool: f.pool, PoolUUID: f.poolUUID, Volume: vol, XML: xml, Source: img.path})
				require.NoError(b, err)
			}},
			{"virsh", func() {
				args := []string{"-c", f.lv.URI(), "vol-upload", "--pool", f.pool, vol, img.path}
				if img.virshSparse {
					args = append(args, "--sparse")
				}
				out, err := exec.Command("virsh", args...).CombinedOutput()
				require.NoError(b, err, "%s", out)
			}},
		}
		times := map[string][]float64{}
		alloc := map[string]float64{}
		for i := 0; i < b.N*rounds; i++ {
			for k := range variants {
				v := variants[k]
				if i%2 == 1 { // the other way round
					v = variants[len(variants)-1-k]
				}
				fresh()
				began := time.Now()
				v.run()
				times[v.name] = append(times[v.name], time.Since(began).Seconds())
				alloc[v.name] = allocation()
			}
		}
		var table strings.Builder
		fmt.Fprintf(&table, "\n%s (file %d MiB), %d rounds:\n%-18s %7s %7s %7s %9s %8s %10s\n", img.name, st.Size()>>20, b.N*rounds, "", "min s", "median", "max", "MiB/s", "vs virsh", "alloc MiB")
		_, virsh, _ := spread(times["virsh"])
		for _, v := range variants {
			lo, m, hi := spread(times[v.name])
			fmt.Fprintf(&table, "%-18s %7.2f %7.2f %7.2f %9.0f %8.2f %10.0f\n", v.name, lo, m, hi, float64(st.Size()>>20)/m, virsh/m, alloc[v.name])
		}
		fmt.Print(table.String()) // printed: go test cuts a benchmark's log short
		key := strings.Fields(img.name)[0] + "-" + img.format
		_, stream, _ := spread(times["stream"])
		_, step, _ := spread(times["activity"])
		b.ReportMetric(virsh/stream, key+"-stream-ratio")
		b.ReportMetric(virsh/step, key+"-activity-ratio")
	}
}

// writeRandom makes a file of size bytes holding extents of random data,
// evenly spread, and holes between them.
func writeRandom(t testing.TB, path string, size int64, extents int, extent int64) {
	fh, err := os.Create(path)
	require.NoError(t, err)
	defer fh.Close()
	require.NoError(t, fh.Truncate(size))
	for i := 0; i < extents; i++ {
		_, err := fh.Seek(int64(i)*(size/int64(extents)), io.SeekStart)
		require.NoError(t, err)
		_, err = io.CopyN(fh, rand.Reader, extent)
		require.NoError(t, err)
	}
}

func qcow2Virtual(t testing.TB, path string) int64 {
	out, err := exec.Command("qemu-img", "info", "--output=json", path).Output()
	require.NoError(t, err)
	var size int64
	_, err = fmt.Sscanf(string(out[strings.Index(string(out), `"virtual-size":`)+len(`"virtual-size":`):]), "%d", &size)
	require.NoError(t, err)
	return size
}

// spread is the minimum, median and maximum of v.
func spread(v []float64) (lo, median, hi float64) {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[0], s[len(s)/2], s[len(s)-1]
}
