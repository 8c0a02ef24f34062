package activities

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/cluster"
	"github.com/hpcvm/hpcvm/internal/libvirt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"golang.org/x/sys/unix"
	"libvirt.org/go/libvirtxml"
)

// These tests run the activities against the real libvirtd (scripts/
// libvirtd-up.sh); they fail, never skip, without one.

type fixture struct {
	t      testing.TB
	lv     *libvirt.Client
	acts   *Activities
	prefix string
	dir    string
	pool   string
	// poolUUID marks the test pool as the fixture's, as hpcvm marks its own.
	poolUUID string
}

func newFixture(t testing.TB) *fixture {
	uri := os.Getenv("HPCVM_TEST_LIBVIRT_URI")
	if uri == "" {
		uri = "qemu:///system"
	}
	lv, err := libvirt.Dial(uri)
	require.NoError(t, err, "libvirtd must run for these tests: scripts/libvirtd-up.sh")
	t.Cleanup(func() { _ = lv.Close() })
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	f := &fixture{t: t, lv: lv, acts: &Activities{Libvirt: lv}, prefix: "hpcvma-" + hex.EncodeToString(b)}
	f.dir, err = os.MkdirTemp("/var/tmp", f.prefix+"-")
	require.NoError(t, err)
	f.acts.ImageRoots, f.acts.PoolRoots = []string{f.dir}, []string{f.dir}
	require.NoError(t, os.Chmod(f.dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(f.dir) })
	return f
}

func (f *fixture) env() *testsuite.TestActivityEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	return env
}

func (f *fixture) makePool() {
	f.pool = f.prefix + "-pool"
	f.poolUUID = cluster.PoolUUID(f.prefix)
	xml, err := (&libvirtxml.StoragePool{Type: "dir", Name: f.pool, UUID: f.poolUUID,
		Target: &libvirtxml.StoragePoolTarget{Path: filepath.Join(f.dir, "pool")}}).Marshal()
	require.NoError(f.t, err)
	_, err = f.lv.EnsurePool(xml)
	require.NoError(f.t, err)
	f.t.Cleanup(func() {
		if vols, err := f.lv.ListVolumes(f.pool); err == nil {
			for _, v := range vols {
				_ = f.lv.DeleteVolume(f.pool, v.Name)
			}
		}
		_ = f.lv.DeletePool(f.pool, f.poolUUID)
	})
}

func appErrorType(t *testing.T, err error) (string, bool) {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "want an application error, got %T: %v", err, err)
	return appErr.Type(), appErr.NonRetryable()
}

// A retried upload resumes a little before the offset its last attempt
// heartbeated; a volume that existed before the run is verified, not
// uploaded again.
func TestUploadBaseImageResumesFromHeartbeatOffset(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	const size, resumeAt = 72 << 20, 6 << 20
	image := make([]byte, size)
	_, _ = rand.Read(image)
	src := filepath.Join(f.dir, "base.img")
	require.NoError(t, os.WriteFile(src, image, 0o644))
	st, err := statSource(src)
	require.NoError(t, err)
	volXML := rawVolume(t, "base.img", size)

	// The first attempt got past resumeAt before its worker died; its last
	// heartbeat named resumeAt.
	_, err = f.lv.EnsureVolume(f.pool, volXML)
	require.NoError(t, err)
	partial := filepath.Join(f.dir, "partial.img")
	require.NoError(t, os.WriteFile(partial, image[:resumeAt+(1<<20)], 0o644))
	require.NoError(t, f.lv.UploadVolume(t.Context(), f.pool, "base.img", partial, 0, nil))

	env := f.env()
	env.SetHeartbeatDetails(api.UploadProgress{Offset: resumeAt, Source: st})
	req := api.UploadRequest{Pool: f.pool, PoolUUID: f.poolUUID, Volume: "base.img", XML: volXML, Source: src}
	val, err := env.ExecuteActivity(f.acts.UploadBaseImage, req)
	require.NoError(t, err)
	var res api.UploadResult
	require.NoError(t, val.Get(&res))
	assert.Equal(t, int64(resumeAt), res.ResumedFrom)
	assert.Equal(t, int64(size-resumeAt), res.Bytes, "only the rest was sent")
	assertVolumeHolds(t, f, "base.img", image)
	vol, err := f.lv.LookupVolume(f.pool, "base.img")
	require.NoError(t, err)
	rec, ok := readBaseRecord(vol.Path)
	require.True(t, ok, "the verified upload is recorded on the volume")
	whole := newImageDigest()
	_, _ = whole.Write(image)
	assert.Equal(t, hex.EncodeToString(whole.Sum()), rec.Digest, "the recorded digest is the image's")

	// A later run trusts the record: nothing is read or sent, no note.
	req.Existed = true
	val, err = f.env().ExecuteActivity(f.acts.UploadBaseImage, req)
	require.NoError(t, err)
	require.NoError(t, val.Get(&res))
	assert.True(t, res.AlreadyDone)
	assert.Empty(t, res.Notes)

	// The source changed, then went away: notes, not failures.
	image[size-1] ^= 0xff
	require.NoError(t, os.WriteFile(src, image, 0o644))
	val, err = f.env().ExecuteActivity(f.acts.UploadBaseImage, req)
	require.NoError(t, err)
	require.NoError(t, val.Get(&res))
	require.Len(t, res.Notes, 1)
	assert.Contains(t, res.Notes[0], "is not the file the base volume was made from")
	require.NoError(t, os.Remove(src))
	val, err = f.env().ExecuteActivity(f.acts.UploadBaseImage, req)
	require.NoError(t, err)
	require.NoError(t, val.Get(&res))
	assert.Contains(t, res.Notes[0], "is not there any more")
	assertVolumeHolds(t, f, "base.img", append(image[:size-1:size-1], image[size-1]^0xff))

	// Without a record (an upload that never finished), a different
	// source is final, and nothing is overwritten.
	require.NoError(t, unix.Removexattr(vol.Path, baseRecordAttr))
	require.NoError(t, os.WriteFile(src, image, 0o644))
	_, err = f.env().ExecuteActivity(f.acts.UploadBaseImage, req)
	require.Error(t, err)
	typ, final := appErrorType(t, err)
	assert.Equal(t, api.ErrTypeMismatch, typ)
	assert.True(t, final)
	assert.Contains(t, err.Error(), "hpcvm destroy")
}

// A retry whose source changed since the attempt that heartbeated starts
// over from the first byte.
func TestResumedUploadStartsOverWhenTheSourceChanged(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	old := make([]byte, 8<<20)
	_, _ = rand.Read(old)
	src := filepath.Join(f.dir, "base.img")
	require.NoError(t, os.WriteFile(src, old, 0o644))
	oldStat, err := statSource(src)
	require.NoError(t, err)
	volXML := rawVolume(t, "base.img", len(old))
	// The first attempt sent half of the old image, then died.
	_, err = f.lv.EnsureVolume(f.pool, volXML)
	require.NoError(t, err)
	half := filepath.Join(f.dir, "half.img")
	require.NoError(t, os.WriteFile(half, old[:4<<20], 0o644))
	require.NoError(t, f.lv.UploadVolume(t.Context(), f.pool, "base.img", half, 0, nil))

	// The operator replaced the image (same size) before the retry.
	image := make([]byte, len(old))
	_, _ = rand.Read(image)
	require.NoError(t, os.Remove(src))
	require.NoError(t, os.WriteFile(src, image, 0o644))

	env := f.env()
	env.SetHeartbeatDetails(api.UploadProgress{Offset: 4 << 20, Source: oldStat})
	val, err := env.ExecuteActivity(f.acts.UploadBaseImage, api.UploadRequest{Pool: f.pool, PoolUUID: f.poolUUID, Volume: "base.img", XML: volXML, Source: src})
	require.NoError(t, err)
	var res api.UploadResult
	require.NoError(t, val.Get(&res))
	assert.Equal(t, int64(0), res.ResumedFrom)
	assert.Equal(t, int64(len(image)), res.Bytes)
	require.Len(t, res.Notes, 1)
	assert.Contains(t, res.Notes[0], "changed between upload attempts")
	assertVolumeHolds(t, f, "base.img", image)
}

// A raw volume libvirt has just created is as long as the image (all
// zeros): it must still be uploaded.
func TestUploadBaseImageUploadsANewRawVolume(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	image := make([]byte, 3<<20)
	_, _ = rand.Read(image)
	src := filepath.Join(f.dir, "raw.img")
	require.NoError(t, os.WriteFile(src, image, 0o644))
	val, err := f.env().ExecuteActivity(f.acts.UploadBaseImage, api.UploadRequest{Pool: f.pool, PoolUUID: f.poolUUID, Volume: "raw.img", XML: rawVolume(t, "raw.img", len(image)), Source: src})
	require.NoError(t, err)
	var res api.UploadResult
	require.NoError(t, val.Get(&res))
	assert.False(t, res.AlreadyDone)
	assert.Equal(t, int64(len(image)), res.Bytes)
	assertVolumeHolds(t, f, "raw.img", image)
}

func rawVolume(t *testing.T, name string, size int) string {
	t.Helper()
	x, err := (&libvirtxml.StorageVolume{Type: "file", Name: name,
		Capacity:   &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: uint64(size)},
		Allocation: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: 0},
		Target:     &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "raw"}}}).Marshal()
	require.NoError(t, err)
	return x
}

func assertVolumeHolds(t *testing.T, f *fixture, name string, want []byte) {
	t.Helper()
	vol, err := f.lv.LookupVolume(f.pool, name)
	require.NoError(t, err)
	got, err := os.ReadFile(vol.Path)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got), "the volume holds the image exactly")
}

// Present-but-different is final: no retry can fix it.
func TestMismatchIsNonRetryable(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	otherPath, err := (&libvirtxml.StoragePool{Type: "dir", Name: f.pool,
		Target: &libvirtxml.StoragePoolTarget{Path: filepath.Join(f.dir, "elsewhere")}}).Marshal()
	require.NoError(t, err)
	_, err = f.env().ExecuteActivity(f.acts.EnsurePool, otherPath)
	require.Error(t, err)
	typ, final := appErrorType(t, err)
	assert.Equal(t, api.ErrTypeMismatch, typ)
	assert.True(t, final)
	assert.Contains(t, err.Error(), "elsewhere")
	assert.Contains(t, err.Error(), "does not modify objects that already exist")
}

// DeleteDomain leaves a domain that hpcvm did not create alone, and treats
// an absent domain as deleted.
func TestDeleteDomainProvesOwnership(t *testing.T) {
	f := newFixture(t)
	facts, err := f.lv.HostFacts()
	require.NoError(t, err)
	name := f.prefix + "-foreign"
	xml, err := (&libvirtxml.Domain{Type: "qemu", Name: name,
		Memory:  &libvirtxml.DomainMemory{Value: 64, Unit: "MiB"},
		OS:      &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "q35", Type: "hvm"}},
		Devices: &libvirtxml.DomainDeviceList{Emulator: facts.Emulator},
	}).Marshal()
	require.NoError(t, err)
	_, err = f.lv.EnsureDomain(xml)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.lv.DeleteDomain(name) })

	_, err = f.env().ExecuteActivity(f.acts.DeleteDomain, api.DomainRef{Name: name, Cluster: "lab"})
	require.Error(t, err)
	typ, final := appErrorType(t, err)
	assert.Equal(t, api.ErrTypeNotOwned, typ)
	assert.True(t, final)
	_, err = f.lv.DomainState(name)
	assert.NoError(t, err, "the foreign domain is still there")

	_, err = f.env().ExecuteActivity(f.acts.DeleteDomain, api.DomainRef{Name: f.prefix + "-absent", Cluster: "lab"})
	assert.NoError(t, err)
}

// A volume is ours only inside a pool that is ours: with another pool's
// mark, DeleteVolume touches nothing.
func TestDeleteVolumeProvesThePoolIsOurs(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	_, err := f.lv.EnsureVolume(f.pool, rawVolume(t, "disk.img", 1<<20))
	require.NoError(t, err)
	_, err = f.env().ExecuteActivity(f.acts.DeleteVolume, api.VolumeRef{Pool: f.pool, PoolUUID: cluster.PoolUUID("someone-else"), Name: "disk.img"})
	require.Error(t, err)
	typ, final := appErrorType(t, err)
	assert.Equal(t, api.ErrTypeNotOwned, typ)
	assert.True(t, final)
	_, err = f.env().ExecuteActivity(f.acts.DeleteVolume, api.VolumeRef{Pool: f.pool, Name: "disk.img"})
	require.Error(t, err, "no mark to prove is no proof")
	_, err = f.lv.LookupVolume(f.pool, "disk.img")
	require.NoError(t, err, "the volume is still there")
	_, err = f.env().ExecuteActivity(f.acts.DeleteVolume, api.VolumeRef{Pool: f.pool, PoolUUID: f.poolUUID, Name: "disk.img"})
	require.NoError(t, err)
	_, err = f.lv.LookupVolume(f.pool, "disk.img")
	require.ErrorIs(t, err, libvirt.ErrNotFound)
}

func TestInspectBaseImageRefusesAMissingFile(t *testing.T) {
	f := newFixture(t)
	_, err := f.env().ExecuteActivity(f.acts.InspectBaseImage, filepath.Join(f.dir, "nope.qcow2"))
	require.Error(t, err)
	typ, final := appErrorType(t, err)
	assert.Equal(t, api.ErrTypeBadInput, typ)
	assert.True(t, final)
	assert.Contains(t, err.Error(), "does not exist on host")
}

// The worker reads images and creates pools only under its roots, links
// followed: whoever can start workflows on its queue acts as root here.
func TestHostPathsStayUnderTheRoots(t *testing.T) {
	f := newFixture(t)
	inside := filepath.Join(f.dir, "img.qcow2")
	require.NoError(t, os.WriteFile(inside, []byte("x"), 0o644))
	outside := t.TempDir()
	escape := filepath.Join(f.dir, "escape")
	require.NoError(t, os.Symlink(outside, escape))
	dangling := filepath.Join(f.dir, "dangling")
	require.NoError(t, os.Symlink("/etc/not-there-hpcvm", dangling))
	cases := []struct {
		req api.PathsRequest
		bad string
	}{
		{api.PathsRequest{BaseImage: inside, PoolDir: filepath.Join(f.dir, "pools", "lab")}, ""},
		{api.PathsRequest{BaseImage: "/etc/shadow", PoolDir: filepath.Join(f.dir, "lab")}, "cluster.storage.base_image /etc/shadow is outside"},
		{api.PathsRequest{PoolDir: "/etc/lab"}, "cluster.storage.pool_path /etc/lab is outside"},
		{api.PathsRequest{PoolDir: filepath.Join(escape, "lab")}, escape + " is a symbolic link (to " + outside + ") and the path leads to " + filepath.Join(outside, "lab") + ", outside --pool-root"},
		{api.PathsRequest{PoolDir: filepath.Join(dangling, "lab")}, "leads to /etc/not-there-hpcvm/lab, outside"},
		{api.PathsRequest{BaseImage: f.dir + "/../x.qcow2", PoolDir: filepath.Join(f.dir, "lab")}, "is not a clean path"},
		{api.PathsRequest{BaseImage: filepath.Dir(f.dir) + "/x.qcow2", PoolDir: filepath.Join(f.dir, "lab")}, "is outside"},
		{api.PathsRequest{PoolDir: inside}, "exists already"},
	}
	for _, tc := range cases {
		_, err := f.env().ExecuteActivity(f.acts.CheckHostPaths, tc.req)
		if tc.bad == "" {
			assert.NoError(t, err)
			continue
		}
		require.Error(t, err, "%+v", tc.req)
		assert.Contains(t, err.Error(), tc.bad)
		typ, final := appErrorType(t, err)
		assert.Equal(t, api.ErrTypeBadInput, typ)
		assert.True(t, final)
	}
	// No roots configured: nothing is allowed.
	bare := &Activities{Libvirt: f.lv}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(bare)
	_, err := env.ExecuteActivity(bare.CheckHostPaths, api.PathsRequest{PoolDir: filepath.Join(f.dir, "lab")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no --pool-root configured")
}

// A sparse image uploads at the speed of its data and lands sparse, proven
// by the same digest as the image.
func TestSparseImageLandsSparse(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	const virtual = 512 << 20
	src := filepath.Join(f.dir, "sparse.img")
	file, err := os.Create(src)
	require.NoError(t, err)
	require.NoError(t, file.Truncate(virtual))
	data := make([]byte, 4<<20)
	for _, at := range []int64{0, 200 << 20, virtual - 4<<20} {
		_, _ = rand.Read(data)
		_, err = file.WriteAt(data, at)
		require.NoError(t, err)
	}
	require.NoError(t, file.Close())
	val, err := f.env().ExecuteActivity(f.acts.UploadBaseImage, api.UploadRequest{Pool: f.pool, PoolUUID: f.poolUUID, Volume: "sparse.img", XML: rawVolume(t, "sparse.img", virtual), Source: src})
	require.NoError(t, err)
	var res api.UploadResult
	require.NoError(t, val.Get(&res))
	vol, err := f.lv.LookupVolume(f.pool, "sparse.img")
	require.NoError(t, err)
	assert.Less(t, vol.Allocation, uint64(32<<20), "the holes stayed holes: %d bytes allocated", vol.Allocation)
	dense, err := os.ReadFile(src)
	require.NoError(t, err)
	digest := newImageDigest()
	_, _ = digest.Write(dense)
	want := digest.Sum()
	rec, ok := readBaseRecord(vol.Path)
	require.True(t, ok)
	assert.Equal(t, hex.EncodeToString(want), rec.Digest)
	got, err := os.ReadFile(vol.Path)
	require.NoError(t, err)
	wantBytes, err := os.ReadFile(src)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(wantBytes, got), "the volume reads exactly as the image")
}

// An earlier attempt's bytes never show through the holes of a new upload:
// a volume left by it is made anew before a sparse image streams in.
func TestSparseUploadOverAnEarlierAttemptsVolume(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	const size = 64 << 20
	src := filepath.Join(f.dir, "sparse.img")
	file, err := os.Create(src)
	require.NoError(t, err)
	require.NoError(t, file.Truncate(size))
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	_, err = file.WriteAt(data, 32<<20)
	require.NoError(t, err)
	require.NoError(t, file.Close())
	xml := rawVolume(t, "base.img", size)
	_, err = f.lv.EnsureVolume(f.pool, xml)
	require.NoError(t, err)
	vol, err := f.lv.LookupVolume(f.pool, "base.img")
	require.NoError(t, err)
	junk := bytes.Repeat([]byte{0xff}, size)
	require.NoError(t, os.WriteFile(vol.Path, junk, 0o644))

	_, err = f.env().ExecuteActivity(f.acts.UploadBaseImage, api.UploadRequest{Pool: f.pool, PoolUUID: f.poolUUID, Volume: "base.img", XML: xml, Source: src})
	require.NoError(t, err)
	want, err := os.ReadFile(src)
	require.NoError(t, err)
	assertVolumeHolds(t, f, "base.img", want)
}

// A retry finds the volume its earlier attempt emptied before the image's
// header landed (libvirt reads another size): it is made anew, not refused.
func TestUploadRetryAfterAnEmptiedVolume(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	image := make([]byte, 8<<20)
	_, _ = rand.Read(image)
	src := filepath.Join(f.dir, "base.img")
	require.NoError(t, os.WriteFile(src, image, 0o644))
	xml := rawVolume(t, "base.img", len(image))
	_, err := f.lv.EnsureVolume(f.pool, xml)
	require.NoError(t, err)
	vol, err := f.lv.LookupVolume(f.pool, "base.img")
	require.NoError(t, err)
	require.NoError(t, os.Truncate(vol.Path, 4096)) // libvirt now sees 4096 bytes
	env := f.env()
	env.SetHeartbeatDetails(api.UploadProgress{})
	_, err = env.ExecuteActivity(f.acts.UploadBaseImage, api.UploadRequest{Pool: f.pool, PoolUUID: f.poolUUID, Volume: "base.img", XML: xml, Source: src})
	require.NoError(t, err)
	assertVolumeHolds(t, f, "base.img", image)
}
