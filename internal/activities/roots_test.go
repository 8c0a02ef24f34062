package activities

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcvm/hpcvm/api"
	"github.com/hpcvm/hpcvm/internal/hostchange"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkPaths runs CheckHostPaths and returns its error.
func checkPaths(t *testing.T, f *fixture, req api.PathsRequest) error {
	t.Helper()
	_, err := f.env().ExecuteActivity(f.acts.CheckHostPaths, req)
	if err != nil {
		typ, final := appErrorType(t, err)
		assert.Equal(t, api.ErrTypeBadInput, typ)
		assert.True(t, final)
	}
	return err
}

// The escape of the issue: a guest that shares <root>/projects/alice plants
// certs -> /etc there; a later cluster names certs/../../.. and would
// share the host's / read-write through virtiofsd.
func TestShareThroughAPlantedLinkIsRefused(t *testing.T) {
	f := newFixture(t)
	root := filepath.Join(f.dir, "shares")
	alice := filepath.Join(root, "projects", "alice")
	require.NoError(t, os.MkdirAll(alice, 0o755))
	require.NoError(t, os.Symlink("/etc", filepath.Join(alice, "certs")))
	f.acts.ShareRoots = []string{root}

	field := "compute_nodes[0].virtio_fs_mounts[0].host_path"
	for _, p := range []string{
		filepath.Join(alice, "certs") + "/../../..",
		filepath.Join(alice, "certs") + "/../ssl",
	} {
		err := checkPaths(t, f, api.PathsRequest{SharedDirs: []api.SharedDir{{Field: field, Path: p}}})
		require.Error(t, err, p)
		assert.Contains(t, err.Error(), field)
		assert.Contains(t, err.Error(), "not a clean path")
	}
	// Clean, but through the link: refused, and it says where it leads.
	err := checkPaths(t, f, api.PathsRequest{SharedDirs: []api.SharedDir{{Field: field, Path: filepath.Join(alice, "certs", "ssl")}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(alice, "certs")+" is a symbolic link")
	assert.Contains(t, err.Error(), "/etc/ssl")
	assert.Contains(t, err.Error(), "outside")

	// The directory alice shares itself is fine.
	require.NoError(t, checkPaths(t, f, api.PathsRequest{SharedDirs: []api.SharedDir{{Field: field, Path: alice}}}))
}

// A link that stays inside the root is refused too, naming the real path:
// what goes into the domain XML (and what virtiofsd or libvirt opens) is
// exactly the path that was checked.
func TestALinkInsideARootIsRefusedWithThePathToWrite(t *testing.T) {
	f := newFixture(t)
	real := filepath.Join(f.dir, "data", "v1")
	require.NoError(t, os.MkdirAll(filepath.Join(real, "sub"), 0o755))
	require.NoError(t, os.Symlink("data/v1", filepath.Join(f.dir, "current")))
	f.acts.ShareRoots = []string{f.dir}
	err := checkPaths(t, f, api.PathsRequest{SharedDirs: []api.SharedDir{{Field: "controller.virtio_fs_mounts[0].host_path", Path: filepath.Join(f.dir, "current", "sub")}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "write "+filepath.Join(real, "sub")+" instead")

	// A pool directory that does not exist yet is judged by its parents.
	err = checkPaths(t, f, api.PathsRequest{PoolDir: filepath.Join(f.dir, "current", "pools", "lab")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "write "+filepath.Join(real, "pools", "lab")+" instead")
	require.NoError(t, checkPaths(t, f, api.PathsRequest{PoolDir: filepath.Join(real, "pools", "lab")}))
}

// A root that is itself a link is resolved: a path under the link's name
// is refused with the resolved one to write instead.
func TestARootThatIsALinkIsResolved(t *testing.T) {
	f := newFixture(t)
	real := filepath.Join(f.dir, "real")
	require.NoError(t, os.Mkdir(real, 0o755))
	link := filepath.Join(f.dir, "link")
	require.NoError(t, os.Symlink(real, link))
	f.acts.PoolRoots = []string{link}
	err := checkPaths(t, f, api.PathsRequest{PoolDir: filepath.Join(link, "lab")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "write "+filepath.Join(real, "lab")+" instead")
	require.NoError(t, checkPaths(t, f, api.PathsRequest{PoolDir: filepath.Join(real, "lab")}))
}

// A path outside every root gets the same answer whether it exists, is a
// dangling link or is missing: nothing outside the roots is looked at.
func TestPathsOutsideTheRootsAreNotLookedAt(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	exists := filepath.Join(outside, "exists")
	require.NoError(t, os.WriteFile(exists, []byte("x"), 0o600))
	dangling := filepath.Join(outside, "dangling")
	require.NoError(t, os.Symlink("/nowhere-hpcvm", dangling))
	missing := filepath.Join(outside, "missing")
	var answers []string
	for _, p := range []string{exists, dangling, missing} {
		err := checkPaths(t, f, api.PathsRequest{BaseImage: p})
		require.Error(t, err)
		answers = append(answers, strings.ReplaceAll(err.Error(), p, "PATH"))
		_, err = f.env().ExecuteActivity(f.acts.InspectBaseImage, p)
		require.Error(t, err)
		answers = append(answers, strings.ReplaceAll(err.Error(), p, "PATH"))
	}
	for i := 2; i < len(answers); i++ {
		assert.Equal(t, answers[i%2], answers[i], "the same answer for every path outside")
	}
	assert.Contains(t, answers[0], "outside")
}

// PendingHostChanges reads no file outside the discovery and resolver
// roots: the question is refused like the start would be.
func TestPendingHostChangesChecksTheRootsFirst(t *testing.T) {
	f := newFixture(t)
	f.acts.HostChanges = &hostchange.Host{Name: "test", Audit: &hostchange.Audit{Path: filepath.Join(f.dir, "audit.jsonl")}}
	f.acts.DiscoveryRoots = []string{filepath.Join(f.dir, "discovery")}
	f.acts.ResolverRoots = []string{filepath.Join(f.dir, "resolver")}
	outside := t.TempDir()
	_, err := f.env().ExecuteActivity(f.acts.PendingHostChanges, api.PendingRequest{
		Discovery: &api.DiscoveryRequest{Cluster: "lab", Dir: outside}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--discovery-root")
	_, err = f.env().ExecuteActivity(f.acts.PendingHostChanges, api.PendingRequest{
		Resolver: &api.ResolverRequest{Cluster: "lab", Dir: outside, Domain: "lab.local", Gateway: "10.0.0.1"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--resolver-root")
}

// A link swapped in between the check and the opening is not followed by
// the upload: neither at the end of the path nor for a directory on the
// way (even one that leads to another file inside the root).
func TestUploadDoesNotFollowALinkSwappedInAfterTheCheck(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("not for guests"), 0o600))
	other := filepath.Join(f.dir, "other")
	require.NoError(t, os.MkdirAll(other, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(other, "base.img"), make([]byte, 1<<20), 0o644))
	dir := filepath.Join(f.dir, "images")
	src := filepath.Join(dir, "base.img")

	for _, swap := range []struct {
		name string
		do   func()
	}{
		{"the image for a link out of the root", func() {
			require.NoError(t, os.Remove(src))
			require.NoError(t, os.Symlink(secret, src))
		}},
		{"its directory for a link inside the root", func() {
			require.NoError(t, os.RemoveAll(dir))
			require.NoError(t, os.Symlink("other", dir))
		}},
	} {
		t.Run(swap.name, func(t *testing.T) {
			require.NoError(t, os.RemoveAll(dir))
			require.NoError(t, os.MkdirAll(dir, 0o755))
			require.NoError(t, os.WriteFile(src, make([]byte, 1<<20), 0o644))
			afterPathCheck = func(string) { swap.do() }
			t.Cleanup(func() { afterPathCheck = nil })
			vol := "swap.img"
			_, err := f.env().ExecuteActivity(f.acts.UploadBaseImage, api.UploadRequest{Pool: f.pool, PoolUUID: f.poolUUID, Volume: vol, XML: rawVolume(t, vol, 1<<20), Source: src})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "is not followed")
			_, err = f.lv.LookupVolume(f.pool, vol)
			assert.Error(t, err, "nothing was created")
		})
	}
	// Without a swap the same upload works.
	afterPathCheck = nil
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(src, make([]byte, 1<<20), 0o644))
	_, err := f.env().ExecuteActivity(f.acts.UploadBaseImage, api.UploadRequest{Pool: f.pool, PoolUUID: f.poolUUID, Volume: "plain.img", XML: rawVolume(t, "plain.img", 1<<20), Source: src})
	require.NoError(t, err)
}

// A qcow2 base image that names a backing file or an external data file is
// refused before anything exists (InspectBaseImage: validate and start)
// and by the upload itself, with how to flatten it.
func TestBaseImagesThatReachOtherFilesAreRefused(t *testing.T) {
	f := newFixture(t)
	f.makePool()
	qemuImg := func(args ...string) {
		out, err := exec.Command("qemu-img", args...).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	shadow := filepath.Join(f.dir, "shadow.qcow2")
	qemuImg("create", "-q", "-f", "qcow2", "-b", "/etc/shadow", "-F", "raw", shadow, "1M")
	dataFile := filepath.Join(f.dir, "datafile.qcow2")
	qemuImg("create", "-q", "-f", "qcow2", "-o", "data_file="+filepath.Join(t.TempDir(), "data.raw"), dataFile, "1M")
	flat := filepath.Join(f.dir, "flat.qcow2")
	qemuImg("create", "-q", "-f", "qcow2", flat, "1M")

	for path, names := range map[string]string{shadow: "/etc/shadow", dataFile: "data.raw"} {
		_, err := f.env().ExecuteActivity(f.acts.InspectBaseImage, path)
		require.Error(t, err, path)
		typ, final := appErrorType(t, err)
		assert.Equal(t, api.ErrTypeBadInput, typ)
		assert.True(t, final)
		assert.Contains(t, err.Error(), names)
		assert.Contains(t, err.Error(), "qemu-img convert -O qcow2 "+path)

		vol := filepath.Base(path)
		_, err = f.env().ExecuteActivity(f.acts.UploadBaseImage, api.UploadRequest{Pool: f.pool, PoolUUID: f.poolUUID, Volume: vol, XML: rawVolume(t, vol, 1<<20), Source: path})
		require.Error(t, err, path)
		assert.Contains(t, err.Error(), "qemu-img convert")
		_, err = f.lv.LookupVolume(f.pool, vol)
		assert.Error(t, err, "the upload created nothing")
	}
	val, err := f.env().ExecuteActivity(f.acts.InspectBaseImage, flat)
	require.NoError(t, err)
	var info api.ImageInfo
	require.NoError(t, val.Get(&info))
	assert.Equal(t, "qcow2", info.Format)
	assert.Equal(t, uint64(1<<20), info.VirtualSize)
}

// An encrypted qcow2 base image is refused by validate and start alike
// (InspectBaseImage), before anything exists, with how to convert it;
// without this, start failed only at the domain start and rolled back.
func TestEncryptedBaseImageIsRefused(t *testing.T) {
	f := newFixture(t)
	luks := filepath.Join(f.dir, "luks.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=abc",
		"-o", "encrypt.format=luks,encrypt.key-secret=sec0", luks, "64M").CombinedOutput()
	require.NoError(t, err, "%s", out)
	_, err = f.env().ExecuteActivity(f.acts.InspectBaseImage, luks)
	require.Error(t, err)
	typ, final := appErrorType(t, err)
	assert.Equal(t, api.ErrTypeBadInput, typ)
	assert.True(t, final)
	assert.Contains(t, err.Error(), "encrypted with LUKS")
	assert.Contains(t, err.Error(), "qemu-img convert --object secret")
}

// The default roots do not overlap; a share root that overlaps another
// root is named, and so are image and pool roots that overlap.
func TestRootsOverlap(t *testing.T) {
	shared, imagePool := RootsOverlap(DefaultImageRoots, DefaultPoolRoots, DefaultShareRoots, DefaultDiscoveryRoots, DefaultResolverRoots)
	assert.Empty(t, shared)
	assert.Empty(t, imagePool)

	// The old defaults: the share root lay inside the image and pool root.
	shared, imagePool = RootsOverlap([]string{"/var/lib/hpcvm"}, []string{"/var/lib/hpcvm"}, []string{"/srv", "/var/lib/hpcvm/shares"}, nil, nil)
	assert.Equal(t, []string{"--share-root /var/lib/hpcvm/shares and --image-root /var/lib/hpcvm", "--share-root /var/lib/hpcvm/shares and --pool-root /var/lib/hpcvm"}, shared)
	assert.Equal(t, []string{"--image-root /var/lib/hpcvm and --pool-root /var/lib/hpcvm"}, imagePool)

	// Judged resolved: a share root reached through a link.
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "images"), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(dir, "images"), filepath.Join(dir, "shares")))
	shared, _ = RootsOverlap([]string{filepath.Join(dir, "images")}, nil, []string{filepath.Join(dir, "shares", "x")}, nil, nil)
	assert.Len(t, shared, 1)
}
