package libvirt

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	lv "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// renderedDomains are the domain documents templates.Domain renders: the
// plain controller and compute nodes and one domain per hardware shape of
// the templates' matrix (NUMA, hugepages, pinning, memfd, virtio-fs
// shares, PCI passthrough with its root ports, CPU models and features,
// KVM and TCG). TestGoldenXML and TestHardwareMatrixXML keep these files
// equal to what the templates render, so a field the templates start to
// render reaches this test through them.
func renderedDomains(t *testing.T) map[string]string {
	t.Helper()
	plain, err := filepath.Glob(filepath.Join("..", "templates", "testdata", "*-domain.xml"))
	require.NoError(t, err)
	matrix, err := filepath.Glob(filepath.Join("..", "templates", "testdata", "matrix", "*.xml"))
	require.NoError(t, err)
	require.NotEmpty(t, plain)
	require.GreaterOrEqual(t, len(matrix), 10, "the templates' hardware matrix")
	docs := map[string]string{}
	for _, f := range append(plain, matrix...) {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		docs[strings.TrimPrefix(f, filepath.Join("..", "templates", "testdata")+"/")] = string(b)
	}
	return docs
}

// comparedFields are the field paths of a rendered domain that diffDomain
// compares, each with the name its mismatch message gives.
var comparedFields = map[string]string{
	"Type":                        "domain type",
	"Memory.Value":                "memory",
	"Memory.Unit":                 "memory",
	"CurrentMemory.Value":         "current memory",
	"CurrentMemory.Unit":          "current memory",
	"VCPU.Value":                  "vcpus",
	"VCPU.Placement":              "vCPU placement",
	"CPU.Mode":                    "CPU",
	"CPU.Match":                   "CPU",
	"CPU.Check":                   "CPU",
	"CPU.Model.Value":             "CPU",
	"CPU.Model.Fallback":          "CPU",
	"CPU.Features[].Name":         "CPU features",
	"CPU.Features[].Policy":       "CPU features",
	"CPU.Topology.Sockets":        "CPU topology",
	"CPU.Topology.Dies":           "CPU topology",
	"CPU.Topology.Cores":          "CPU topology",
	"CPU.Topology.Threads":        "CPU topology",
	"CPU.Numa.Cell[].ID":          "NUMA cells",
	"CPU.Numa.Cell[].CPUs":        "NUMA cells",
	"CPU.Numa.Cell[].Memory":      "NUMA cells",
	"CPU.Numa.Cell[].Unit":        "NUMA cells",
	"CPU.Numa.Cell[].MemAccess":   "NUMA cells",
	"NUMATune.MemNodes[].CellID":  "NUMA memory binding",
	"NUMATune.MemNodes[].Mode":    "NUMA memory binding",
	"NUMATune.MemNodes[].Nodeset": "NUMA memory binding",
	"CPUTune.VCPUPin[].VCPU":      "vCPU pinning",
	"CPUTune.VCPUPin[].CPUSet":    "vCPU pinning",
	"MemoryBacking.MemoryHugePages.Hugepages[].Size":       "memory backing",
	"MemoryBacking.MemoryHugePages.Hugepages[].Unit":       "memory backing",
	"MemoryBacking.MemorySource.Type":                      "memory backing",
	"MemoryBacking.MemoryAccess.Mode":                      "memory backing",
	"SysInfo[].FWCfg.Entry[].Name":                         "firmware config entries",
	"SysInfo[].FWCfg.Entry[].Value":                        "firmware config entries",
	"OS.Type.Type":                                         "OS",
	"OS.Type.Arch":                                         "OS",
	"OS.BootDevices[].Dev":                                 "boot devices",
	"Features.ACPI":                                        "features",
	"Features.APIC":                                        "features",
	"Clock.Offset":                                         "clock",
	"Clock.Timer[].Name":                                   "clock",
	"Clock.Timer[].TickPolicy":                             "clock",
	"Clock.Timer[].Present":                                "clock",
	"OnPoweroff":                                           "lifecycle actions",
	"OnReboot":                                             "lifecycle actions",
	"OnCrash":                                              "lifecycle actions",
	"Devices.Disks[].Source.File.File":                     "disk sources",
	"Devices.Disks[].Device":                               "disks",
	"Devices.Disks[].Driver.Name":                          "disks",
	"Devices.Disks[].Driver.Type":                          "disks",
	"Devices.Disks[].Driver.Discard":                       "disks",
	"Devices.Disks[].Target.Dev":                           "disks",
	"Devices.Disks[].Target.Bus":                           "disks",
	"Devices.Disks[].BackingStore.Format.Type":             "disk backing chain",
	"Devices.Disks[].BackingStore.Source.File.File":        "disk backing chain",
	"Devices.Interfaces[].MAC.Address":                     "interface 1 MAC",
	"Devices.Interfaces[].Source.Network.Network":          "interface 1 network",
	"Devices.Interfaces[].Model.Type":                      "interface 1 model",
	"Devices.Filesystems[].AccessMode":                     "shared directories",
	"Devices.Filesystems[].Driver.Type":                    "shared directories",
	"Devices.Filesystems[].Source.Mount.Dir":               "shared directories",
	"Devices.Filesystems[].Target.Dir":                     "shared directories",
	"Devices.Hostdevs[].Managed":                           "PCI devices passed through",
	"Devices.Hostdevs[].SubsysPCI.Source.Address.Domain":   "PCI devices passed through",
	"Devices.Hostdevs[].SubsysPCI.Source.Address.Bus":      "PCI devices passed through",
	"Devices.Hostdevs[].SubsysPCI.Source.Address.Slot":     "PCI devices passed through",
	"Devices.Hostdevs[].SubsysPCI.Source.Address.Function": "PCI devices passed through",
	"Devices.Hostdevs[].Address.PCI.Domain":                "PCI devices passed through",
	"Devices.Hostdevs[].Address.PCI.Bus":                   "PCI devices passed through",
	"Devices.Hostdevs[].Address.PCI.Slot":                  "PCI devices passed through",
	"Devices.Hostdevs[].Address.PCI.Function":              "PCI devices passed through",
	"Devices.Controllers[].Type":                           "PCI controllers",
	"Devices.Controllers[].Index":                          "PCI controllers",
	"Devices.Controllers[].Model":                          "PCI controllers",
	"Devices.Videos[].Model.Type":                          "video",
	"Devices.Serials[].Source.Pty":                         "serial console",
	"Devices.Serials[].Target.Port":                        "serial console",
	"Devices.Consoles[].Source.Pty":                        "serial console",
	"Devices.Consoles[].Target.Type":                       "serial console",
	"Devices.Consoles[].Target.Port":                       "serial console",
	"Devices.Channels[].Source.UNIX":                       "channels",
	"Devices.Channels[].Target.VirtIO.Name":                "channels",
	"Devices.MemBalloon.Model":                             "memory balloon",
	"Devices.RNGs[].Model":                                 "random number generator",
	"Devices.RNGs[].Backend.Random.Device":                 "random number generator",
}

// ignoredFields are the rendered field paths diffDomain knowingly does
// not compare, each with why.
var ignoredFields = map[string]string{
	"Name":        "the key the existing domain was looked up by",
	"UUID":        "derived from the cluster and VM names (cluster.Plan), which the name lookup already matched",
	"Description": "a note for virsh users, made of the cluster, role and VM names the name and metadata already carry",
	"Metadata.XML": "hpcvm's ownership mark: EnsureDomain compares it itself (as libvirt hands it back, without its prefix), " +
		"and every later step proves ownership with it (activities' provenDomain)",
	"OS.Type.Machine": "the newest Q35 machine type of the host's QEMU: a QEMU upgrade offers a newer one, and a domain keeps " +
		"the one it was defined with (the guest's ABI), as libvirt intends",
	"Devices.Emulator": "the host's QEMU binary, as its capabilities name it: where a QEMU upgrade moves it, the domain fails " +
		"to start with libvirt's own clear error rather than being refused here",
	"Devices.Controllers[].PCI": "libvirtxml's holder for the options of a type-pci controller (not an XML element of its " +
		"own); hpcvm sets none of them",
	"Devices.Disks[].BackingStore.BackingStore.Source": "libvirtxml's reading of the empty <backingStore/> that ends the " +
		"chain (nil marshals the same); the end of the chain is compared as part of the disk backing chain",
}

// renderedPaths lists the paths of every field of v that is set: a
// scalar that is not zero, a pointer that is not nil (whatever it points
// to), an element that is present but holds nothing ("Features.ACPI").
// Slice elements share one path ("Devices.Disks[].Target.Dev").
func renderedPaths(v reflect.Value, path string, out map[string]bool) bool {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return false
		}
		if v.Elem().Kind() != reflect.Struct || !renderedPaths(v.Elem(), path, out) {
			out[path] = true
		}
		return true
	case reflect.Struct:
		set := false
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if f.Name == "XMLName" {
				continue
			}
			if renderedPaths(v.Field(i), joinPath(path, f.Name), out) {
				set = true
			}
		}
		return set
	case reflect.Slice:
		set := false
		for i := 0; i < v.Len(); i++ {
			if renderedPaths(v.Index(i), path+"[]", out) {
				set = true
			}
		}
		return set
	default:
		if v.IsZero() {
			return false
		}
		out[path] = true
		return true
	}
}

func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// mutate changes the first set field at path in v: a string gets a
// suffix, a number grows by one, a pointer to an element that holds
// nothing becomes nil. It reports whether it found one.
func mutate(v reflect.Value, path string) bool {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return false
		}
		if path == "" && (v.Elem().Kind() != reflect.Struct || !renderedPaths(v.Elem(), "", map[string]bool{})) {
			if v.Elem().Kind() == reflect.Struct {
				v.Set(reflect.Zero(v.Type()))
				return true
			}
			return mutate(v.Elem(), "")
		}
		return mutate(v.Elem(), path)
	}
	if path == "" {
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "-changed")
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			v.SetUint(v.Uint() + 1)
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			v.SetInt(v.Int() + 1)
		default:
			return false
		}
		return true
	}
	head, rest, _ := strings.Cut(path, ".")
	name, isSlice := strings.CutSuffix(head, "[]")
	f := v.FieldByName(name)
	if !f.IsValid() {
		return false
	}
	if !isSlice {
		return mutate(f, rest)
	}
	for i := 0; i < f.Len(); i++ {
		set := map[string]bool{}
		renderedPaths(f.Index(i), "", set)
		if set[rest] && mutate(f.Index(i), rest) {
			return true
		}
	}
	return false
}

// Every field of every domain hpcvm renders is either compared with an
// existing domain's (and then a change of it is reported, under the name
// listed) or knowingly ignored for the reason listed: a field the
// templates start to render fails here until it is one or the other, so
// no change in cluster.yaml is silently dropped by a start that keeps the
// existing domain.
func TestDomainFieldsComparedOrIgnored(t *testing.T) {
	for path := range comparedFields {
		_, both := ignoredFields[path]
		require.False(t, both, "%s is both compared and ignored", path)
	}
	seen := map[string]bool{}
	for doc, x := range renderedDomains(t) {
		var want libvirtxml.Domain
		require.NoError(t, want.Unmarshal(x), doc)
		var same libvirtxml.Domain
		require.NoError(t, same.Unmarshal(x))
		require.Nil(t, diffDomain(&same, &want), "%s against itself", doc)

		paths := map[string]bool{}
		renderedPaths(reflect.ValueOf(want), "", paths)
		for _, path := range slices.Sorted(maps.Keys(paths)) {
			seen[path] = true
			name, compared := comparedFields[path]
			if _, ignored := ignoredFields[path]; !compared && !ignored {
				t.Errorf("%s: %s is rendered but neither compared by diffDomain nor listed as ignored (with why) in ignoredFields", doc, path)
				continue
			}
			if !compared {
				continue
			}
			var have libvirtxml.Domain
			require.NoError(t, have.Unmarshal(x))
			require.True(t, mutate(reflect.ValueOf(&have).Elem(), path), "%s: %s not found to change", doc, path)
			d := diffDomain(&have, &want)
			drift := templateDrift(&have, &want)
			if fixedField(name) {
				// No cluster.yaml key sets it: kept, and said so.
				assert.Nil(t, d, "%s: a changed %s (fixed by the template) is refused", doc, path)
				if assert.Len(t, drift, 1, "%s: a changed %s goes unnoticed", doc, path) {
					assert.True(t, strings.HasPrefix(drift[0], name+" (the domain has "), "%s: a changed %s is reported as %q, want %q first", doc, path, drift[0], name)
				}
				continue
			}
			assert.Empty(t, drift, "%s: %s", doc, path)
			if assert.NotNil(t, d, "%s: a changed %s goes unnoticed", doc, path) {
				assert.True(t, strings.HasPrefix(d.Detail, name+" is "), "%s: a changed %s is reported as %q, want %q first", doc, path, d.Detail, name)
			}
		}
	}
	// A path no rendered domain has any more is a stale entry.
	for path := range comparedFields {
		assert.True(t, seen[path], "comparedFields lists %s, which no rendered domain sets", path)
	}
	for path := range ignoredFields {
		assert.True(t, seen[path], "ignoredFields lists %s, which no rendered domain sets", path)
	}
}

// fixedField says the named domainField is one the template fixes (its
// name, or the name its pair reports, starts like the field's).
func fixedField(name string) bool {
	for _, f := range domainFields {
		if f.fixed && (name == f.name || strings.HasPrefix(name, f.name)) {
			return true
		}
	}
	return false
}

// libvirt reads back every rendered domain so that diffDomain finds no
// difference: nothing it compares is a thing libvirt normalises (units,
// defaults, controllers and addresses it adds) into a false alarm, or a
// start of an unchanged cluster would be refused. Each document is defined
// under a name of its own, on the host's QEMU and Q35 machine type (which
// diffDomain ignores), and undefined at the end; no domain is started, so
// the disks, shares and PCI devices they name need not exist.
func TestDomainFieldsReadBackByLibvirtMatch(t *testing.T) {
	c := testClient(t)
	facts, err := c.HostFacts()
	require.NoError(t, err)
	require.Contains(t, facts.MachineTypes, "q35")
	prefix := testPrefix(t)
	for doc, x := range renderedDomains(t) {
		var def libvirtxml.Domain
		require.NoError(t, def.Unmarshal(x))
		def.Name = prefix + strings.NewReplacer("/", "-", ".xml", "").Replace(doc)
		def.UUID = randomUUID(t)
		def.OS.Type.Machine = "q35"
		def.Devices.Emulator = facts.Emulator
		x, err := def.Marshal()
		require.NoError(t, err)
		t.Cleanup(func() {
			if err := c.DeleteDomain(def.Name); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
		created, err := c.EnsureDomain(x)
		require.NoError(t, err, doc)
		require.True(t, created, doc)
		created, err = c.EnsureDomain(x)
		require.NoError(t, err, "%s: libvirt's reading of it differs from what hpcvm renders", doc)
		require.False(t, created, doc)
		diff, err := c.DomainDifference(x)
		require.NoError(t, err)
		require.Empty(t, diff, doc)
		drift, err := c.DomainDrift(x)
		require.NoError(t, err)
		require.Empty(t, drift, "%s: libvirt's reading of the template's fixed parts differs from what hpcvm renders", doc)
	}
	// A hand edit of a fixed part is kept, and named.
	var def libvirtxml.Domain
	for _, x := range renderedDomains(t) {
		require.NoError(t, def.Unmarshal(x))
		break
	}
	def.Name, def.UUID = prefix+"edited", randomUUID(t)
	def.OS.Type.Machine, def.Devices.Emulator = "q35", facts.Emulator
	x, err := def.Marshal()
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.DeleteDomain(def.Name) })
	_, err = c.EnsureDomain(x)
	require.NoError(t, err)
	edited := def
	edited.OnCrash = "preserve"
	ex, err := edited.Marshal()
	require.NoError(t, err)
	// As virsh edit would: libvirt replaces the definition.
	require.NoError(t, c.do("redefine domain", def.Name, false, func(conn *lv.Connect) error {
		dom, err := conn.DomainDefineXML(ex)
		if err != nil {
			return err
		}
		return dom.Free()
	}))
	created, err := c.EnsureDomain(x)
	require.NoError(t, err, "a hand edit of what no cluster.yaml key sets is no reason to refuse the domain")
	require.False(t, created)
	drift, err := c.DomainDrift(x)
	require.NoError(t, err)
	assert.Contains(t, drift, "lifecycle actions (the domain has ")
	assert.Contains(t, drift, "preserve")
}
