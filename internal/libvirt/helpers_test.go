package libvirt

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"libvirt.org/go/libvirtxml"
)

// Tests run against a real libvirtd. They fail, never skip, when it is not
// reachable, so a CI machine without one shows up red.
func testClient(t *testing.T) *Client {
	t.Helper()
	uri := os.Getenv("HPCVM_TEST_LIBVIRT_URI")
	if uri == "" {
		uri = "qemu:///system"
	}
	c, err := Dial(uri)
	if err != nil {
		t.Fatalf("cannot reach libvirtd at %s: %v\nstart one with: bash scripts/libvirtd-up.sh (as root), or set HPCVM_TEST_LIBVIRT_URI", uri, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testPrefix is unique per call, so tests never collide with each other or
// with leftovers of an earlier run.
func testPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "hpcvmt-" + hex.EncodeToString(b) + "-"
}

type testNet struct {
	name, uuid, bridge, xml string
	subnet                  int // x in 10.213.x.0/24
}

// isolatedNetwork describes a network without <forward>: it lives only
// inside the namespace libvirtd runs in.
func isolatedNetwork(t *testing.T, prefix string) testNet {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(250))
	require.NoError(t, err)
	x := int(n.Int64()) + 2
	tn := testNet{name: prefix + "net", uuid: randomUUID(t), bridge: "hvt" + prefix[7:13], subnet: x}
	def := libvirtxml.Network{
		Name:   tn.name,
		UUID:   tn.uuid,
		Bridge: &libvirtxml.NetworkBridge{Name: tn.bridge, STP: "on"},
		Domain: &libvirtxml.NetworkDomain{Name: "hpcvmt.test"},
		IPs: []libvirtxml.NetworkIP{{
			Address: fmt.Sprintf("10.213.%d.1", x), Prefix: 24,
			DHCP: &libvirtxml.NetworkDHCP{
				Ranges: []libvirtxml.NetworkDHCPRange{{Start: fmt.Sprintf("10.213.%d.100", x), End: fmt.Sprintf("10.213.%d.199", x)}},
				Hosts:  []libvirtxml.NetworkDHCPHost{{MAC: "52:54:00:aa:bb:01", Name: "node1", IP: fmt.Sprintf("10.213.%d.11", x)}},
			},
		}},
	}
	tn.xml, err = def.Marshal()
	require.NoError(t, err)
	return tn
}

type testPool struct {
	name, uuid, dir, xml string
}

// randomUUID stands for the mark a caller writes into what it creates.
func randomUUID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	_, err := rand.Read(b)
	require.NoError(t, err)
	b[6], b[8] = (b[6]&0x0f)|0x40, (b[8]&0x3f)|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// dirPool describes a directory pool under /var/tmp/<prefix>/, removed with
// everything in it when the test ends.
func dirPool(t *testing.T, c *Client, prefix string) testPool {
	t.Helper()
	parent := filepath.Join("/var/tmp", prefix+"pools")
	require.NoError(t, os.MkdirAll(parent, 0o755))
	require.NoError(t, os.Chmod(parent, 0o755))
	tp := testPool{name: prefix + "pool", uuid: randomUUID(t), dir: filepath.Join(parent, "pool")}
	tp.xml = poolXML(t, tp.name, tp.uuid, tp.dir)
	t.Cleanup(func() {
		// Tests leave volumes behind on purpose; DeletePool keeps a pool
		// that still holds any, so they go first.
		_ = c.ActivatePool(tp.name, tp.uuid)
		if vols, err := c.ListVolumes(tp.name); err == nil {
			for _, v := range vols {
				_ = c.DeleteVolume(tp.name, v.Name)
			}
		}
		if err := c.DeletePool(tp.name, tp.uuid); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		_ = os.RemoveAll(parent)
	})
	return tp
}

func poolXML(t *testing.T, name, uuid, dir string) string {
	t.Helper()
	def := libvirtxml.StoragePool{
		Type: "dir", Name: name, UUID: uuid,
		Target: &libvirtxml.StoragePoolTarget{Path: dir, Permissions: &libvirtxml.StoragePoolTargetPermissions{Mode: "0755"}},
	}
	x, err := def.Marshal()
	require.NoError(t, err)
	return x
}

func volumeXML(t *testing.T, name, format string, capacity uint64, backing string) string {
	t.Helper()
	def := libvirtxml.StorageVolume{
		Name:     name,
		Capacity: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: capacity},
		Target:   &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: format}},
	}
	if backing != "" {
		def.BackingStore = &libvirtxml.StorageVolumeBackingStore{Path: backing, Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"}}
	}
	x, err := def.Marshal()
	require.NoError(t, err)
	return x
}
