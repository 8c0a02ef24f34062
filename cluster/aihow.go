package cluster

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Converted is one cluster.yaml made from a configuration file of the
// Python tool (ai-how), with what could not be carried over and why.
type Converted struct {
	Name string // the cluster's name
	YAML string // the cluster.yaml, with the notes as comments on top
	// NotCarried lists each setting of the source left out, with why.
	NotCarried []string
	// Problems are what hpcvm's validation says of the result (a value the
	// Python tool accepted and hpcvm does not): fix them in the file.
	Problems []string
}

// AIHowOptions says how to resolve what the source leaves to its
// environment.
type AIHowOptions struct {
	// WorkDir makes relative base_image_path values absolute (the Python
	// tool read them relative to the directory it ran in).
	WorkDir string
	// LookupEnv expands ${VAR} in paths (os.LookupEnv by default).
	LookupEnv func(string) (string, bool)
}

// maxConvertedNodes bounds the compute nodes a conversion writes: a group's
// count is expanded into one entry a VM.
const maxConvertedNodes = 1000

// aiHowVarRE finds ${VAR} and $VAR in a path.
var aiHowVarRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// ConvertAIHow reads the Python tool's configuration (version "1.0",
// metadata, clusters.hpc, clusters.cloud) and makes the cluster.yaml of
// its HPC cluster. A file that is not in that format is an error that says
// what is wrong.
func ConvertAIHow(data []byte, o AIHowOptions) ([]Converted, error) {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	if doc == nil {
		return nil, fmt.Errorf("the file is empty")
	}
	if _, ok := doc["clusters"]; !ok {
		if _, isHpcvm := doc["cluster"]; isHpcvm {
			return nil, fmt.Errorf("this is already an hpcvm cluster.yaml (it has cluster:, not clusters:); use it as it is")
		}
		return nil, fmt.Errorf("no clusters: section: this is not a configuration file of the Python tool (ai-how), which has version, metadata and clusters.hpc")
	}
	var versionNote string
	switch v := doc["version"].(type) {
	case string:
		if v != "1.0" {
			return nil, fmt.Errorf("version is %q: hpcvm converts version \"1.0\" files of the Python tool", v)
		}
	case float64, int:
		// `version: 1.0` unquoted is the number 1 to YAML: the file
		// means "1.0", which the Python tool's schema wants as text.
		if v != 1.0 && v != 1 {
			return nil, fmt.Errorf("version is %v: hpcvm converts version \"1.0\" files of the Python tool", v)
		}
		versionNote = `version: 1.0 is a number in YAML; read as "1.0" (the Python tool's schema wants it quoted)`
	case nil:
		return nil, fmt.Errorf(`no version: a configuration file of the Python tool starts with version: "1.0"`)
	default:
		return nil, fmt.Errorf("version is %v (%s): hpcvm converts version \"1.0\" files of the Python tool", v, yamlKind(v))
	}
	clusters, ok := doc["clusters"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("clusters is %s, not a mapping of clusters (hpc:, cloud:)", yamlKind(doc["clusters"]))
	}
	var common []string
	if g, ok := doc["global"].(map[string]any); ok && len(g) > 0 {
		common = append(common, "global: the Python tool did not use it either")
	}
	for name := range clusters {
		if name != "hpc" && name != "cloud" {
			common = append(common, fmt.Sprintf("clusters.%s: not a kind of cluster the Python tool had (hpc, cloud)", name))
		}
	}
	if _, ok := clusters["cloud"]; ok {
		common = append(common, "clusters.cloud: a Kubernetes cluster (control plane, workers, kubernetes_config); hpcvm runs HPC clusters of VMs, not Kubernetes")
	}
	hpc, ok := clusters["hpc"].(map[string]any)
	if !ok {
		if raw, present := clusters["hpc"]; present && raw != nil {
			return nil, fmt.Errorf("clusters.hpc is %s, not a mapping of the HPC cluster's settings", yamlKind(raw))
		}
		return nil, fmt.Errorf("no clusters.hpc mapping: nothing hpcvm can run (%s)", strings.Join(common, "; "))
	}
	description := ""
	if m, ok := doc["metadata"].(map[string]any); ok {
		description, _ = m["description"].(string)
	}
	c := &aiHowConverter{src: hpc, o: o, notCarried: common}
	if versionNote != "" {
		c.notes = append(c.notes, versionNote)
	}
	out, err := c.convert(description)
	if err != nil {
		return nil, err
	}
	return []Converted{out}, nil
}

type aiHowConverter struct {
	// topologyVCPUs is what the cluster's cpu_topology gives a VM (0: none).
	topologyVCPUs int
	src           map[string]any
	o             AIHowOptions
	notCarried    []string
	notes         []string // what changed form on the way (units, names)
}

func (c *aiHowConverter) skip(path, why string) {
	c.notCarried = append(c.notCarried, path+": "+why)
}

// node builds an ordered YAML mapping from key, value pairs, leaving out
// nil values.
func node(pairs ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == nil {
			continue
		}
		if sub, ok := pairs[i+1].(*yaml.Node); ok && sub == nil {
			continue
		}
		k := &yaml.Node{Kind: yaml.ScalarNode, Value: pairs[i].(string)}
		v, ok := pairs[i+1].(*yaml.Node)
		if !ok {
			v = &yaml.Node{}
			if err := v.Encode(pairs[i+1]); err != nil {
				v = &yaml.Node{Kind: yaml.ScalarNode, Value: fmt.Sprint(pairs[i+1])}
			}
		}
		n.Content = append(n.Content, k, v)
	}
	return n
}

func (c *aiHowConverter) convert(description string) (Converted, error) {
	s := c.src
	name, _ := s["name"].(string)
	if _, isText := s["name"].(string); !isText && s["name"] != nil {
		raw := s["name"]
		return Converted{}, fmt.Errorf("clusters.hpc.name is %v (%s): the cluster's name is text; quote it, or choose a name that starts with a letter", raw, yamlKind(raw))
	}
	if name == "" {
		return Converted{}, fmt.Errorf("clusters.hpc.name is missing: the cluster needs a name")
	}
	// The name becomes the output file's name: it must be one hpcvm takes
	// before anything is written.
	if len(name) > maxClusterNameLen || !nameRE.MatchString(name) {
		return Converted{}, fmt.Errorf("clusters.hpc.name %q is not a name hpcvm takes: use 1-%d lowercase letters, digits and '-', starting with a letter (rename it in the file, then convert)", name, maxClusterNameLen)
	}
	image := c.basePath("clusters.hpc.base_image_path", s["base_image_path"])
	if image == nil {
		image = c.sharedVMImage()
	}

	hw := c.mapping("clusters.hpc.hardware", s["hardware"])
	acc := c.mapping("clusters.hpc.hardware.acceleration", hw["acceleration"])
	if t := c.mapping("clusters.hpc.hardware.acceleration.cpu_topology", acc["cpu_topology"]); t != nil {
		sockets, _ := c.number("clusters.hpc.hardware.acceleration.cpu_topology.sockets", t["sockets"])
		cores, _ := c.number("clusters.hpc.hardware.acceleration.cpu_topology.cores", t["cores"])
		threads, _ := c.number("clusters.hpc.hardware.acceleration.cpu_topology.threads", t["threads"])
		c.topologyVCPUs = int(sockets * cores * threads)
	}
	net := c.mapping("clusters.hpc.network", s["network"])
	leases := map[string]string{}
	var leaseOrder []string

	ctl := c.mapping("clusters.hpc.controller", s["controller"])
	controller := c.vm("clusters.hpc.controller", ctl, "", image)
	if ip, ok := ctl["ip_address"].(string); ok && ip != "" {
		leases["controller-01"] = ip
		leaseOrder = append(leaseOrder, "controller-01")
	}

	var computes []*yaml.Node
	nodes, ok := s["compute_nodes"].([]any)
	if raw := s["compute_nodes"]; !ok && raw != nil {
		c.skip("clusters.hpc.compute_nodes", fmt.Sprintf("is %s, not a list of compute nodes", yamlKind(raw)))
	}
	n := 0
	for i, raw := range nodes {
		path := fmt.Sprintf("clusters.hpc.compute_nodes[%d]", i)
		entry, ok := raw.(map[string]any)
		if !ok {
			c.skip(path, fmt.Sprintf("is %s, not a mapping of a compute node's settings", yamlKind(raw)))
			continue
		}
		count := 1
		if cnt, ok := entry["count"]; ok {
			f, _ := c.number(path+".count", cnt)
			count = int(f)
			if f != float64(count) || count < 1 || n+count > maxConvertedNodes {
				c.skip(path, fmt.Sprintf("count %v is not a number of VMs hpcvm converts (1 to %d compute nodes in all)", cnt, maxConvertedNodes))
				continue
			}
		}
		ip, _ := entry["ip"].(string)
		if count > 1 && ip != "" && !strings.EqualFold(ip, "dhcp") {
			c.skip(path+".ip", "one address for a group of "+fmt.Sprint(count)+" VMs; hpcvm gives each its own lease")
		}
		for k := 0; k < count; k++ {
			n++
			vmName := fmt.Sprintf("compute-%02d", n)
			computes = append(computes, c.vm(path, entry, vmName, image))
			if count == 1 && ip != "" && !strings.EqualFold(ip, "dhcp") {
				leases[vmName] = ip
				leaseOrder = append(leaseOrder, vmName)
			}
		}
		if count > 1 {
			c.notes = append(c.notes, fmt.Sprintf("%s: a group of %d VMs became compute-%02d to compute-%02d, with addresses hpcvm plans", path, count, n-count+1, n))
		}
		if as, ok := entry["auto_start"].(bool); ok && !as {
			c.skip(path+".auto_start", "false: hpcvm starts every VM of the cluster")
		}
	}

	var leaseNode *yaml.Node
	if len(leases) > 0 {
		var pairs []any
		for _, vm := range leaseOrder {
			pairs = append(pairs, vm, leases[vm])
		}
		leaseNode = node(pairs...)
	}
	var network *yaml.Node
	if net != nil {
		for k := range net {
			if k != "subnet" && k != "bridge" {
				c.skip("clusters.hpc.network."+k, "not a network setting of the Python tool")
			}
		}
		network = node("network_range", net["subnet"], "bridge_name", net["bridge"], "static_leases", leaseNode)
	} else {
		c.skip("clusters.hpc.network", "missing: hpcvm plans a network of its own")
		network = node("static_leases", leaseNode)
	}

	var hardware *yaml.Node
	if hw != nil {
		if acc != nil {
			acc = copyMap(acc)
			if _, set := acc["cpu_model"]; !set {
				// The Python tool's default; hpcvm's own is QEMU's.
				acc["cpu_model"] = "host-model"
				c.notes = append(c.notes, "cpu_model: host-model, the Python tool's default, written out (hpcvm's default is QEMU's own model)")
			}
			if numa, ok := acc["numa_topology"]; ok && numa == nil {
				delete(acc, "numa_topology")
			}
			hardware = node("acceleration", orderedCopy(acc))
		}
		for k := range hw {
			if k != "acceleration" {
				c.skip("clusters.hpc.hardware."+k, "not a hardware setting of the Python tool")
			}
		}
	}
	storage := node("base_image", image)
	if st := c.mapping("clusters.hpc.storage", s["storage"]); st != nil {
		for _, k := range slices.Sorted(maps.Keys(st)) {
			c.skip("clusters.hpc.storage."+k, "a cluster-wide storage service; hpcvm sets up no storage services in the guests (share host directories with virtio_fs_mounts)")
		}
	}
	var inventory *yaml.Node
	if slurm := c.mapping("clusters.hpc.slurm_config", s["slurm_config"]); slurm != nil {
		var vars []any
		for _, k := range slices.Sorted(maps.Keys(slurm)) {
			vars = append(vars, "slurm_"+k, slurm[k])
		}
		inventory = node("vars", node(vars...))
		c.notes = append(c.notes, "slurm_config became variables of the Ansible inventory (inventory.vars.slurm_*): Slurm runs in the guests, not in hpcvm")
	}
	known := map[string]bool{"name": true, "base_image_path": true, "network": true, "controller": true, "compute_nodes": true,
		"hardware": true, "storage": true, "slurm_config": true}
	for _, k := range slices.Sorted(maps.Keys(s)) {
		if !known[k] {
			c.skip("clusters.hpc."+k, "not a setting of the Python tool's HPC cluster")
		}
	}
	var computeList *yaml.Node
	if len(computes) > 0 {
		computeList = &yaml.Node{Kind: yaml.SequenceNode, Content: computes}
	}
	root := node(
		"cluster", node("name", name, "storage", storage, "hardware", hardware),
		"network", network,
		"controller", controller,
		"compute_nodes", computeList,
		"inventory", inventory,
	)
	var head strings.Builder
	fmt.Fprintf(&head, "hpcvm cluster %s, converted from a configuration file of the Python tool (ai-how).\n", name)
	if description != "" {
		fmt.Fprintf(&head, "%s\n", description)
	}
	head.WriteString("A new cluster to hpcvm: its domains are named <cluster>-controller-01 and\n<cluster>-compute-NN and get hpcvm's MAC addresses; VMs the Python tool made are not adopted.\n")
	for _, n := range c.notes {
		fmt.Fprintf(&head, "converted: %s\n", n)
	}
	for _, n := range c.notCarried {
		fmt.Fprintf(&head, "NOT CARRIED OVER: %s\n", n)
	}
	root.HeadComment = strings.TrimRight(head.String(), "\n")
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return Converted{}, err
	}
	out := Converted{Name: name, YAML: buf.String(), NotCarried: c.notCarried}
	if _, err := Parse(buf.Bytes()); err != nil {
		if v, ok := err.(ValidationError); ok {
			for _, p := range v {
				out.Problems = append(out.Problems, p.Error())
			}
		} else {
			out.Problems = append(out.Problems, err.Error())
		}
	}
	return out, nil
}

// vm converts the controller (name "") or a compute node.
func (c *aiHowConverter) vm(path string, src map[string]any, name string, clusterImage any) *yaml.Node {
	var memory, cpus, disk any
	if gb, ok := c.number(path+".memory_gb", src["memory_gb"]); ok {
		memory = int(gb * 1024)
		if gb != float64(int(gb)) {
			c.notes = append(c.notes, fmt.Sprintf("%s.memory_gb %v became memory_mb %d", path, gb, memory))
		}
	}
	if n, ok := c.whole(path+".cpu_cores", src["cpu_cores"]); ok {
		cpus = n
	}
	if n, ok := c.whole(path+".disk_gb", src["disk_gb"]); ok {
		disk = n
	}
	if img, ok := src["base_image_path"]; ok {
		own := c.basePath(path+".base_image_path", img)
		if own != clusterImage {
			c.skip(path+".base_image_path", fmt.Sprintf("%v differs from the cluster's base image; hpcvm gives every VM of a cluster the same base image", own))
		}
	}
	var pcie, mounts *yaml.Node
	if pt := c.mapping(path+".pcie_passthrough", src["pcie_passthrough"]); pt != nil {
		if name == "" {
			c.skip(path+".pcie_passthrough", "hpcvm passes PCI devices through to compute nodes (or with cluster.hardware.pcie_passthrough), not to the controller")
		} else {
			pcie = orderedCopy(pt)
		}
	}
	if m, ok := src["virtio_fs_mounts"].([]any); ok && len(m) > 0 {
		mounts = orderedSequence(m)
	} else if raw := src["virtio_fs_mounts"]; !ok && raw != nil {
		c.skip(path+".virtio_fs_mounts", fmt.Sprintf("is %s, not a list of mounts", yamlKind(raw)))
	}
	// A cluster-wide topology the VM's vCPUs do not fill: the VM gets one
	// of its own, all its vCPUs as cores of one socket.
	var topology *yaml.Node
	if cores, _ := cpus.(int); c.topologyVCPUs > 0 && cores > 0 && cores != c.topologyVCPUs {
		topology = node("sockets", 1, "cores", cores, "threads", 1)
		who := name
		if who == "" {
			who = "controller"
		}
		c.notes = append(c.notes, fmt.Sprintf("%s has %d vCPUs, not the %d of the cluster's cpu_topology: it got a topology of its own, 1 socket × %d cores × 1 thread", who, cores, c.topologyVCPUs, cores))
	}
	known := map[string]bool{"cpu_cores": true, "memory_gb": true, "disk_gb": true, "ip_address": true, "ip": true, "count": true,
		"auto_start": true, "base_image_path": true, "pcie_passthrough": true, "virtio_fs_mounts": true}
	for _, k := range slices.Sorted(maps.Keys(src)) {
		if !known[k] {
			c.skip(path+"."+k, "not a VM setting of the Python tool")
		}
	}
	if name == "" {
		return node("count", 1, "cpu_cores", cpus, "memory_mb", memory, "disk_size_gb", disk, "cpu_topology", topology, "virtio_fs_mounts", mounts)
	}
	return node("name", name, "cpu_cores", cpus, "memory_mb", memory, "disk_size_gb", disk,
		"cpu_topology", topology, "pcie_passthrough", pcie, "virtio_fs_mounts", mounts)
}

// basePath expands variables in an image path and makes it absolute; a
// variable with no value is kept and reported.
func (c *aiHowConverter) basePath(path string, raw any) any {
	p, ok := raw.(string)
	if !ok || p == "" {
		return nil
	}
	var unset []string
	p = aiHowVarRE.ReplaceAllStringFunc(p, func(m string) string {
		sub := aiHowVarRE.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if v, ok := c.o.LookupEnv(name); ok {
			return v
		}
		unset = append(unset, name)
		return m
	})
	if len(unset) > 0 {
		c.skip(path, fmt.Sprintf("uses %s, which is not set here: set it and convert again, or fix the path in the result", strings.Join(unset, ", ")))
		return p
	}
	if !filepath.IsAbs(p) && c.o.WorkDir != "" {
		abs := filepath.Join(c.o.WorkDir, p)
		c.notes = append(c.notes, fmt.Sprintf("%s %s made absolute: %s", path, p, abs))
		p = abs
	}
	return filepath.Clean(p)
}

// mapping is the mapping at path; a value of another kind is reported
// with its path and taken as absent.
func (c *aiHowConverter) mapping(path string, v any) map[string]any {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		c.skip(path, fmt.Sprintf("is %s, not a mapping", yamlKind(v)))
	}
	return m
}

// number is the number at path. Text that holds a number ("8") is read as
// one, as the Python tool's schema coerced it; other text, a list or a
// mapping is reported with its path and taken as absent.
func (c *aiHowConverter) number(path string, v any) (float64, bool) {
	switch x := v.(type) {
	case nil:
		return 0, false
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
			c.notes = append(c.notes, fmt.Sprintf("%s %q (text) read as the number %v", path, x, f))
			return f, true
		}
	}
	c.skip(path, fmt.Sprintf("%v is %s, not a number", v, yamlKind(v)))
	return 0, false
}

// whole is the whole number at path (number's rules; 2.5 is reported).
func (c *aiHowConverter) whole(path string, v any) (int, bool) {
	f, ok := c.number(path, v)
	if !ok {
		return 0, false
	}
	if f != float64(int(f)) {
		c.skip(path, fmt.Sprintf("%v is not a whole number", f))
		return 0, false
	}
	return int(f), true
}

// sharedVMImage is the base image every VM names when the cluster names
// none: hpcvm's base image is the cluster's, so one all VMs agree on is
// it. VMs that disagree are reported by vm.
func (c *aiHowConverter) sharedVMImage() any {
	var images []any
	if ctl, ok := c.src["controller"].(map[string]any); ok {
		images = append(images, ctl["base_image_path"])
	}
	if nodes, ok := c.src["compute_nodes"].([]any); ok {
		for _, raw := range nodes {
			if n, ok := raw.(map[string]any); ok {
				images = append(images, n["base_image_path"])
			}
		}
	}
	if len(images) == 0 {
		return nil
	}
	first, ok := images[0].(string)
	if !ok || first == "" {
		return nil
	}
	for _, img := range images[1:] {
		if s, ok := img.(string); !ok || s != first {
			return nil // differing or not text: vm reports each
		}
	}
	// The VMs' paths are expanded (and reported) as each VM is read.
	quiet := &aiHowConverter{o: c.o}
	img := quiet.basePath("", images[0])
	c.notes = append(c.notes, fmt.Sprintf("clusters.hpc has no base_image_path; every VM names %v, which became the cluster's base image", images[0]))
	return img
}

// yamlKind names what a decoded YAML value is, for messages.
func yamlKind(v any) string {
	switch v.(type) {
	case nil:
		return "empty"
	case string:
		return "text"
	case bool:
		return "a yes/no value"
	case int, int64, uint64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("a %T", v)
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// orderedCopy is a mapping with its keys sorted, nested mappings too: the
// output does not depend on Go's map order.
func orderedCopy(m map[string]any) *yaml.Node {
	var pairs []any
	for _, k := range slices.Sorted(maps.Keys(m)) {
		pairs = append(pairs, k, ordered(m[k]))
	}
	return node(pairs...)
}

func orderedSequence(items []any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode}
	for _, it := range items {
		v := ordered(it)
		if sub, ok := v.(*yaml.Node); ok {
			n.Content = append(n.Content, sub)
			continue
		}
		scalar := &yaml.Node{}
		_ = scalar.Encode(v)
		n.Content = append(n.Content, scalar)
	}
	return n
}

func ordered(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return orderedCopy(x)
	case []any:
		return orderedSequence(x)
	}
	return v
}
