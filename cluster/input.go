package cluster

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file reads cluster.yaml into a Spec without repairing anything. The
// decoded YAML is walked against the Spec's types, rather than handed to a
// weakly typed decoder, so that:
//   - a key the operator wrote, even with 0 or "", is told apart from a key
//     left out: only keys left out get defaults, and a written 0 reaches
//     Validate and is refused;
//   - a value of the wrong type is refused with its path, the value and what
//     belongs there, instead of being converted (true to 1, 4096.5 to 4096,
//     "x" to ["x"]);
//   - a misspelt key is refused with the nearest key that exists there.
// Keys are matched case-insensitively and kept lowercase, as viper did when
// it read the file, so files that loaded before mean the same now.

// decodeYAML parses the file with the YAML library viper's own codec uses
// (and as that codec does), which keeps what viper's merged view loses:
// keys whose value is null, empty sections, and keys that contain a dot.
// Not through viper: the cluster model stays free of it, so that the
// contract a composing workflow imports does not drag it in.
func decodeYAML(data []byte) (doc map[string]any, err error) {
	defer func() {
		// A parser bug must not take the CLI or a worker down with it; the
		// operator gets a refusal and the input to report.
		if p := recover(); p != nil {
			doc, err = nil, &InputError{Msg: fmt.Sprintf("the YAML parser failed on this file (%v); please report it with the file", p)}
		}
	}()
	doc = map[string]any{}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		if msg := err.Error(); strings.Contains(msg, "cannot unmarshal") {
			// Valid YAML whose top level is a list or a scalar. The Go type
			// it could not be stored in means nothing to the operator.
			msg = strings.ReplaceAll(msg, " into map[string]interface {}", "")
			return nil, &InputError{Msg: fmt.Sprintf("not a cluster file: %s; cluster.yaml is a mapping of sections such as cluster:, network:, controller: and compute_nodes:", msg)}
		}
		return nil, &InputError{Msg: fmt.Sprintf("not valid YAML: %v; fix the syntax at the line named", err)}
	}
	if doc == nil { // an empty or null document
		doc = map[string]any{}
	}
	return doc, nil
}

// readInput turns the decoded document into a Spec. It returns the paths of
// the settings the document gives a value to, and every problem found.
// Settings with a problem are left at their zero value and are not reported
// as given, so defaults fill them and the checks of other settings that
// depend on them still run on something sensible.
func readInput(doc map[string]any) (Spec, map[string]bool, ValidationError) {
	r := &inputReader{given: map[string]bool{}}
	var s Spec
	entries, _ := mapEntries(doc)
	r.readFields("", "", entries, reflect.ValueOf(&s).Elem())
	return s, r.given, r.problems
}

type inputReader struct {
	given    map[string]bool
	problems ValidationError
}

// yamlEntry is one key of a YAML mapping, with its key as text.
type yamlEntry struct {
	key   string
	value any
}

var freeFormType = reflect.TypeOf(map[string]any(nil))

func (r *inputReader) problem(path string, value any, problem, want string) {
	r.problems = append(r.problems, FieldError{Path: path, Value: value, Problem: problem, Want: want})
}

// read stores raw, found at path, into out. pattern is path with list
// indices written as [] and free map keys as *, the key of settingHints.
// It reports whether out now holds raw.
func (r *inputReader) read(path, pattern string, raw any, out reflect.Value) bool {
	if raw == nil {
		switch out.Kind() {
		case reflect.Struct, reflect.Map, reflect.Slice, reflect.Pointer:
			// A section, list or optional setting written with nothing
			// after it (`global:` above commented-out lines) says nothing.
			return false
		}
		r.problem(path, nil, "has no value", settingHint(pattern))
		return false
	}
	if out.Type() == freeFormType {
		entries, ok := mapEntries(raw)
		if !ok {
			r.problem(path, shownInput(raw), "is not a mapping", settingHint(pattern))
			return false
		}
		out.Set(reflect.ValueOf(r.freeFormMap(path, entries)))
		r.given[path] = true
		return true
	}
	switch out.Kind() {
	case reflect.Pointer:
		elem := reflect.New(out.Type().Elem())
		if !r.read(path, pattern, raw, elem.Elem()) {
			return false
		}
		out.Set(elem)
		return true
	case reflect.Struct:
		entries, ok := mapEntries(raw)
		if !ok {
			r.problem(path, shownInput(raw), "is not a mapping", settingHint(pattern))
			return false
		}
		r.readFields(path, pattern, entries, out)
		return true
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			r.problem(path, shownInput(raw), notTextProblem(raw), settingHint(pattern))
			return false
		}
		if s == "" {
			// An empty value is more often a template variable that was
			// not set than a wish for the default; leaving the key out is
			// how to ask for the default.
			r.problem(path, "", "is empty", settingHint(pattern))
			return false
		}
		out.SetString(s)
	case reflect.Int:
		n, problem := wholeNumber(raw)
		if problem != "" {
			r.problem(path, shownInput(raw), problem, settingHint(pattern))
			return false
		}
		out.SetInt(int64(n))
	case reflect.Bool:
		b, ok := trueOrFalse(raw)
		if !ok {
			r.problem(path, shownInput(raw), "is not true or false", settingHint(pattern))
			return false
		}
		out.SetBool(b)
	case reflect.Slice:
		items, ok := raw.([]any)
		if !ok {
			r.problem(path, shownInput(raw), "is not a list", settingHint(pattern))
			return false
		}
		list := reflect.MakeSlice(out.Type(), len(items), len(items))
		for i, item := range items {
			r.read(fmt.Sprintf("%s[%d]", path, i), pattern+"[]", item, list.Index(i))
		}
		out.Set(list)
	case reflect.Map:
		entries, ok := mapEntries(raw)
		if !ok {
			r.problem(path, shownInput(raw), "is not a mapping", settingHint(pattern))
			return false
		}
		m := reflect.MakeMapWithSize(out.Type(), len(entries))
		for _, e := range r.foldKeys(path, entries) {
			value := reflect.New(out.Type().Elem()).Elem()
			if r.read(settingPath(path, e.key), pattern+".*", e.value, value) {
				m.SetMapIndex(reflect.ValueOf(e.key), value)
			}
		}
		out.Set(m)
	default:
		// Only a new kind of field in spec.go gets here; the tests read
		// every field, so this is caught before a release.
		r.problem(path, nil, "has a type this version of hpcvm cannot read", "this is a bug in hpcvm; please report it")
		return false
	}
	r.given[path] = true
	return true
}

// readFields reads a mapping into the struct out, field by field in the
// order of the Spec, then reports the keys no field has.
func (r *inputReader) readFields(path, pattern string, entries []yamlEntry, out reflect.Value) {
	byKey := map[string]any{}
	for _, e := range r.foldKeys(path, entries) {
		byKey[e.key] = e.value
	}
	fields := settingFields(out.Type())
	known := make([]string, len(fields))
	for i, f := range fields {
		known[i] = f.key
	}
	for _, f := range fields {
		key := f.key
		raw, ok := byKey[key]
		if !ok {
			if requiredSettings[joinPattern(pattern, key)] {
				r.problem(settingPath(path, key), nil, "is missing", settingHint(joinPattern(pattern, key)))
			}
			continue
		}
		delete(byKey, key)
		r.read(settingPath(path, key), joinPattern(pattern, key), raw, out.Field(f.index))
	}
	unknown := make([]string, 0, len(byKey))
	for key := range byKey {
		unknown = append(unknown, key)
	}
	sort.Strings(unknown)
	for _, key := range unknown {
		want := "the settings here are " + strings.Join(known, ", ")
		if section, rest, dotted := strings.Cut(key, "."); dotted && slices.Contains(known, section) {
			// viper used to expand `controller.count: 2`; YAML does not.
			want = fmt.Sprintf("write %s indented under %s: (a key does not contain dots)", rest, settingPath(path, section))
		} else if near := nearestKey(key, known); near != "" {
			want = "did you mean " + settingPath(path, near) + "?"
		}
		r.problem(settingPath(path, key), nil, "is not a known setting", want)
	}
}

// foldKeys lowercases the keys of a mapping and reports keys that differ
// only in case: YAML keeps both, and one of them would silently win.
func (r *inputReader) foldKeys(path string, entries []yamlEntry) []yamlEntry {
	out := make([]yamlEntry, 0, len(entries))
	spelled := map[string]string{}
	for _, e := range entries {
		key := strings.ToLower(e.key)
		if first, dup := spelled[key]; dup {
			r.problem(settingPath(path, key), nil, fmt.Sprintf("is given twice, as %q and %q", first, e.key), "keep one of them: keys are not case-sensitive")
			continue
		}
		spelled[key] = e.key
		out = append(out, yamlEntry{key: key, value: e.value})
	}
	return out
}

// freeFormMap keeps a section hpcvm does not interpret as the operator wrote
// it, with lowercase keys like the rest of the file. It refuses only what
// could not travel on: the Spec goes to the workflow as JSON, which has no
// NaN or infinity.
func (r *inputReader) freeFormMap(path string, entries []yamlEntry) map[string]any {
	out := map[string]any{}
	if !caseSensitive(path) {
		entries = r.foldKeys(path, entries)
	}
	for _, e := range entries {
		out[e.key] = r.freeFormValue(settingPath(path, e.key), e.value)
	}
	return out
}

// caseSensitive says the keys under path are names for another program
// that tells case apart: Ansible's variables (inventory.vars) keep their
// spelling.
func caseSensitive(path string) bool {
	return path == "inventory.vars" || strings.HasPrefix(path, "inventory.vars.") || strings.HasPrefix(path, "inventory.vars[")
}

func (r *inputReader) freeFormValue(path string, raw any) any {
	if entries, ok := mapEntries(raw); ok {
		return r.freeFormMap(path, entries)
	}
	switch v := raw.(type) {
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = r.freeFormValue(fmt.Sprintf("%s[%d]", path, i), item)
		}
		return out
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			r.problem(path, shownInput(v), "is not a finite number", "give a number, or quote the value to make it text")
			return nil
		}
	}
	return raw
}

// mapEntries returns the keys of a YAML mapping as text, sorted so that
// problems are reported in the same order on every run. The YAML decoder
// gives map[any]any when a key is not a string (`1: x`, `true: y`).
func mapEntries(raw any) ([]yamlEntry, bool) {
	var out []yamlEntry
	switch m := raw.(type) {
	case map[string]any:
		out = make([]yamlEntry, 0, len(m))
		for k, v := range m {
			out = append(out, yamlEntry{key: k, value: v})
		}
	case map[any]any:
		out = make([]yamlEntry, 0, len(m))
		for k, v := range m {
			out = append(out, yamlEntry{key: shownInput(k), value: v})
		}
	default:
		return nil, false
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, true
}

// wholeNumber accepts a YAML integer, a float with nothing after the point
// (4096.0, 1e3) and a quoted integer ("4096"); it refuses anything that
// would have to be rounded, guessed or wrapped. problem is empty on success.
func wholeNumber(raw any) (n int, problem string) {
	switch v := raw.(type) {
	case int:
		return v, ""
	case int64:
		return int(v), ""
	case uint64:
		if v > math.MaxInt64 {
			return 0, "is too large a number"
		}
		return int(v), ""
	case float64:
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0) || v != math.Trunc(v):
			return 0, "is not a whole number"
		case v >= math.MaxInt64 || v <= math.MinInt64:
			return 0, "is too large a number"
		}
		return int(v), ""
	case string:
		n, err := strconv.Atoi(v)
		switch {
		case err == nil:
			return n, ""
		case errors.Is(err, strconv.ErrRange):
			return 0, "is too large a number"
		}
	}
	return 0, "is not a whole number"
}

// trueOrFalse accepts YAML booleans and the quoted words "true" and "false".
// yes/no/on/off are refused: YAML 1.2 reads them as text, and guessing
// would make `enable_kvm: off` mean whatever this version guesses.
func trueOrFalse(raw any) (bool, bool) {
	switch v := raw.(type) {
	case bool:
		return v, true
	case string:
		switch v {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	return false, false
}

func notTextProblem(raw any) string {
	switch raw.(type) {
	case bool:
		return "is true/false, not text"
	case int, int64, uint64, float64:
		return "is a number, not text"
	case time.Time:
		return "is a date, not text"
	case []any:
		return "is a list, not text"
	case map[string]any, map[any]any:
		return "is a mapping, not text"
	}
	return "is not text"
}

// shownInput renders a decoded YAML value for a message the way the
// operator would recognise it in the file: [1, 2] and {a: 1}, not Go's
// [1 2] and map[a:1]. It stops early on huge values; FieldError shortens
// the rest.
func shownInput(raw any) string {
	var b strings.Builder
	writeInput(&b, raw)
	return b.String()
}

func writeInput(b *strings.Builder, raw any) {
	if b.Len() > maxShownValueLen {
		return
	}
	switch v := raw.(type) {
	case nil:
		b.WriteString("null")
	case string:
		b.WriteString(v)
	case float64:
		format := byte('g')
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			// 4096 as written rather than 4.096e+03; a larger float is no
			// longer the digits the operator wrote, so say it is a float.
			format = 'f'
		}
		b.WriteString(strconv.FormatFloat(v, format, -1, 64))
	case time.Time:
		if v.Equal(v.Truncate(24 * time.Hour)) {
			b.WriteString(v.Format(time.DateOnly))
		} else {
			b.WriteString(v.Format(time.RFC3339))
		}
	case []any:
		b.WriteString("[")
		for i, item := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			writeInput(b, item)
		}
		b.WriteString("]")
	default:
		entries, ok := mapEntries(raw)
		if !ok {
			fmt.Fprint(b, v)
			return
		}
		b.WriteString("{")
		for i, e := range entries {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(e.key + ": ")
			writeInput(b, e.value)
		}
		b.WriteString("}")
	}
}

// plainKeyRE matches keys that read unambiguously in a dotted path; others
// (spaces, dots, quotes, control characters from a hostile file) are quoted
// so a message stays on one line and its path stays readable.
var plainKeyRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

// settingPath joins a key to the path of its mapping, as messages show it.
func settingPath(parent, key string) string {
	if len(key) > maxShownValueLen || !plainKeyRE.MatchString(key) {
		key = strconv.Quote(shortened(key))
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func joinPattern(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// settingField is a field of a Spec struct and its YAML key.
type settingField struct {
	key   string
	index int
}

// settingFields lists the fields of a Spec struct that have a YAML key, in
// the order spec.go declares them, which is also the order messages use.
func settingFields(t reflect.Type) []settingField {
	fields := make([]settingField, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		if key := strings.Split(t.Field(i).Tag.Get("mapstructure"), ",")[0]; key != "" {
			fields = append(fields, settingField{key: key, index: i})
		}
	}
	return fields
}

// nearestKey is the known key a misspelt key most likely meant: the one
// fewest edits away (a swap of two neighbours counts as one edit), if it is
// close enough to be a typo, or one that contains the key or is contained
// in it (mem, memory for memory_mb). Ties go to the earlier key.
func nearestKey(key string, known []string) string {
	best, bestDist := "", math.MaxInt
	for _, k := range known {
		d := editDistance(key, k)
		close := d <= max(2, len(k)/3) || (len(key) >= 3 && (strings.Contains(k, key) || strings.Contains(key, k)))
		if close && d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of adjacent characters.
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	if len(x) > 64 || len(y) > 64 {
		// A key this long is no typo of a setting name; spare the work.
		return math.MaxInt
	}
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}

// requiredSettings must be given whenever their section is: they have no
// default, and 0 would only be refused later with a value the operator
// never wrote.
var requiredSettings = map[string]bool{
	"cluster.hardware.acceleration.cpu_topology.sockets":      true,
	"cluster.hardware.acceleration.cpu_topology.cores":        true,
	"cluster.hardware.acceleration.cpu_topology.threads":      true,
	"controller.cpu_topology.sockets":                         true,
	"controller.cpu_topology.cores":                           true,
	"controller.cpu_topology.threads":                         true,
	"compute_nodes[].cpu_topology.sockets":                    true,
	"compute_nodes[].cpu_topology.cores":                      true,
	"compute_nodes[].cpu_topology.threads":                    true,
	"cluster.hardware.acceleration.numa_topology.nodes":       true,
	"cluster.hardware.pcie_passthrough.devices[].pci_address": true,
	"cluster.hardware.pcie_passthrough.devices[].device_type": true,
	"compute_nodes[].pcie_passthrough.devices[].pci_address":  true,
	"compute_nodes[].pcie_passthrough.devices[].device_type":  true,
	"controller.virtio_fs_mounts[].tag":                       true,
	"controller.virtio_fs_mounts[].host_path":                 true,
	"controller.virtio_fs_mounts[].mount_point":               true,
	"compute_nodes[].virtio_fs_mounts[].tag":                  true,
	"compute_nodes[].virtio_fs_mounts[].host_path":            true,
	"compute_nodes[].virtio_fs_mounts[].mount_point":          true,
}

// settingHint says what the operator may write at a setting; pattern is the
// setting's path with list indices as [] and free map keys as *.
func settingHint(pattern string) string {
	if h, ok := settingHints[pattern]; ok {
		return h
	}
	return "see the configuration reference in README.md"
}

const freeFormHint = "give a mapping of key: value settings, or leave the key out"

var settingHints = map[string]string{
	"global":             freeFormHint,
	"host_configuration": freeFormHint,

	"inventory":                      "write it as a mapping with path, format, ssh_user, ssh_private_key_file, ssh_port, ssh_common_args, python_interpreter and vars, or leave the key out",
	"inventory.path":                 "give the file start writes the Ansible inventory to, such as inventory/lab.ini, or leave the key out for inventory/<cluster>.ini",
	"inventory.format":               `give "ini" or "yaml", or leave the key out for "ini"`,
	"inventory.ssh_user":             "give the user Ansible logs in as, such as root, or leave the key out for Ansible's default",
	"inventory.ssh_private_key_file": "give the private key file Ansible logs in with, such as ~/.ssh/id_ed25519, or leave the key out",
	"inventory.ssh_port":             "give a TCP port from 1 to 65535, or leave the key out for 22",
	"inventory.ssh_common_args":      `give extra ssh arguments, such as "-o StrictHostKeyChecking=no", or leave the key out`,
	"inventory.python_interpreter":   "give the guest's Python, such as /usr/bin/python3, or leave the key out for Ansible's discovery",
	"inventory.vars":                 "give a mapping of variable: value for the cluster's group, or leave the key out",

	"cluster":      "write it as a mapping with name, storage and, if wanted, host and hardware",
	"cluster.name": fmt.Sprintf("give 1-%d lowercase letters, digits and '-', starting with a letter, such as lab", maxClusterNameLen),
	"cluster.host": "give the host name of the hypervisor whose hpcvm-worker runs the cluster, such as hv1, or leave the key out to use this machine's hostname",

	"cluster.storage":            "write it as a mapping with base_image and, if wanted, pool_path and pool_type",
	"cluster.storage.pool_path":  "give an absolute directory such as " + DefaultPoolPath + ", or leave the key out for that default",
	"cluster.storage.pool_type":  `give "` + DefaultPoolType + `", or leave the key out for that default`,
	"cluster.storage.base_image": "give the absolute path of the base disk image, such as /var/lib/libvirt/images/base.qcow2",

	"cluster.hardware":              "write it as a mapping with acceleration and pcie_passthrough",
	"cluster.hardware.acceleration": "write it as a mapping with enable_kvm, enable_nested, cpu_model, cpu_features, cpu_topology, numa_topology and performance",

	"cluster.hardware.acceleration.enable_kvm":           "give true or false, or leave the key out to use KVM when the host has it",
	"cluster.hardware.acceleration.enable_nested":        "give true or false, or leave the key out for false",
	"cluster.hardware.acceleration.cpu_model":            "give host-passthrough, host-model or a CPU model the host lists (virsh domcapabilities), or leave the key out for QEMU's default",
	"cluster.hardware.acceleration.cpu_features":         `give a list such as ["+vmx", "-svm"]`,
	"cluster.hardware.acceleration.cpu_features[]":       `give a feature as "+name" to require it or "-name" to disable it`,
	"cluster.hardware.acceleration.cpu_topology":         "write it as {sockets: 1, cores: 4, threads: 1}, or leave it out",
	"cluster.hardware.acceleration.cpu_topology.sockets": fmt.Sprintf("give the number of sockets, 1 to %d, such as 1", maxCPUCores),
	"cluster.hardware.acceleration.cpu_topology.cores":   fmt.Sprintf("give the number of cores per socket, 1 to %d, such as 4", maxCPUCores),
	"cluster.hardware.acceleration.cpu_topology.threads": fmt.Sprintf("give the number of threads per core, 1 to %d, such as 1", maxCPUCores),

	"network":                 "write it as a mapping with network_range, gateway_ip, dhcp_start, dhcp_end and the other network settings",
	"network.network_range":   "give an IPv4 network in CIDR form such as " + DefaultNetworkRange + ", or leave the key out for that default",
	"network.bridge_name":     fmt.Sprintf("give a Linux interface name of at most %d characters, or leave the key out to have one derived from the cluster name", maxBridgeLen),
	"network.gateway_ip":      "give an IPv4 address inside network.network_range, or leave the key out to use its first host address",
	"network.dhcp_start":      "give an IPv4 address inside network.network_range, or leave the key out to use its 10th host address",
	"network.dhcp_end":        "give an IPv4 address inside network.network_range, or leave the key out to use its last host address",
	"network.dns_mode":        `give "` + DefaultDNSMode + `" (the default), "shared_dns", "routed" or "service_discovery"`,
	"network.forward":         `give "nat" (the guests reach out through the host's addresses) or "none" (air-gapped), or leave the key out: nat for a new network, what it has for an existing one`,
	"network.dns_servers":     `give a list of IPv4 addresses such as ["1.1.1.1", "8.8.8.8"]`,
	"network.dns_servers[]":   "give an IPv4 address such as 1.1.1.1",
	"network.static_leases":   "write it as a mapping from VM name to IPv4 address, such as {compute-01: 192.168.100.11}",
	"network.static_leases.*": "give an IPv4 address inside network.network_range, such as 192.168.100.11",

	"controller":              fmt.Sprintf("write it as a mapping such as {count: %d, memory_mb: %d, cpu_cores: %d, disk_size_gb: %d}", DefaultControllerCount, DefaultControllerMemory, DefaultControllerCPU, DefaultControllerDiskGB),
	"controller.count":        fmt.Sprintf("give the number of controllers, 1 to %d, or leave the key out for %d", maxControllers, DefaultControllerCount),
	"controller.memory_mb":    fmt.Sprintf("give a number of MiB such as %d, or leave the key out for %d", DefaultControllerMemory, DefaultControllerMemory),
	"controller.cpu_cores":    fmt.Sprintf("give a number of cores such as %d, or leave the key out for %d", DefaultControllerCPU, DefaultControllerCPU),
	"controller.disk_size_gb": fmt.Sprintf("give a number of GiB such as %d, or leave the key out for %d", DefaultControllerDiskGB, DefaultControllerDiskGB),

	"compute_nodes":                "write it as a list of nodes, each a mapping such as {name: compute-01, memory_mb: 8192}",
	"compute_nodes[]":              "write each node as a mapping such as {name: compute-01, memory_mb: 8192}",
	"compute_nodes[].name":         fmt.Sprintf("give 1-%d lowercase letters, digits and '-', starting with a letter, such as compute-01", maxVMNameLen),
	"compute_nodes[].memory_mb":    fmt.Sprintf("give a number of MiB such as %d, or leave the key out for %d", DefaultComputeMemory, DefaultComputeMemory),
	"compute_nodes[].cpu_cores":    fmt.Sprintf("give a number of cores such as %d, or leave the key out for %d", DefaultComputeCPU, DefaultComputeCPU),
	"compute_nodes[].disk_size_gb": fmt.Sprintf("give a number of GiB such as %d, or leave the key out for %d", DefaultComputeDiskGB, DefaultComputeDiskGB),
}

func init() {
	hw := map[string]string{
		"cluster.hardware.acceleration.numa_topology":                 "write it as {nodes: 2} or {nodes: 2, memory_per_node: 4G}, or null for one cell",
		"cluster.hardware.acceleration.numa_topology.nodes":           "give the number of guest NUMA cells of every VM, such as 2",
		"cluster.hardware.acceleration.numa_topology.memory_per_node": `give the memory of each cell, such as "4G" or "4096M", or leave the key out to split each VM's memory evenly`,
		"cluster.hardware.acceleration.performance":                   "write it as a mapping with enable_hugepages, hugepage_size, cpu_pinning and memory_backing",
		"cluster.hardware.acceleration.performance.enable_hugepages":  "give true or false, or leave the key out for false",
		"cluster.hardware.acceleration.performance.hugepage_size":     `give "2M" or "1G", or leave the key out for "2M"`,
		"cluster.hardware.acceleration.performance.cpu_pinning":       "give true to pin every vCPU to a host CPU of its own, or leave the key out for false",
		"cluster.hardware.acceleration.performance.memory_backing":    `give "default", "hugepages" or "memfd", or leave the key out for "default"`,
	}
	pci := map[string]string{
		"":                       `write it as {enabled: true, devices: [{pci_address: "0000:01:00.0", device_type: gpu}]}`,
		".enabled":               "give true to pass the devices through, or false",
		".exclusive_mode":        "give true (the default) so that no other cluster may hold these devices, or false",
		".devices":               `give a list of devices, each a mapping such as {pci_address: "0000:01:00.0", device_type: gpu}`,
		".devices[]":             `write each device as a mapping such as {pci_address: "0000:01:00.0", device_type: gpu}`,
		".devices[].pci_address": `give the device's address as lspci -D shows it, such as "0000:01:00.0"`,
		".devices[].device_type": "give one of " + strings.Join(PCIDeviceTypes, ", "),
		".devices[].vendor_id":   `give the 4-digit hex vendor ID, such as "10de", or leave the key out`,
		".devices[].device_id":   `give the 4-digit hex device ID, such as "2805", or leave the key out`,
		".devices[].iommu_group": "give the device's IOMMU group number, or leave the key out",
		".devices[].assigned_to": "name the VM the device goes to",
	}
	for k, v := range pci {
		hw["cluster.hardware.pcie_passthrough"+k] = v
		if k != ".devices[].assigned_to" {
			hw["compute_nodes[].pcie_passthrough"+k] = v
		} else {
			hw["compute_nodes[].pcie_passthrough"+k] = "leave the key out: a VM's own devices go to that VM"
		}
	}
	topo := map[string]string{
		"":         "write it as {sockets: 1, cores: 4, threads: 1}, multiplying to the VM's cpu_cores, or leave it out to use the cluster's",
		".sockets": fmt.Sprintf("give the number of sockets, 1 to %d, such as 1", maxCPUCores),
		".cores":   fmt.Sprintf("give the number of cores per socket, 1 to %d, such as 4", maxCPUCores),
		".threads": fmt.Sprintf("give the number of threads per core, 1 to %d, such as 1", maxCPUCores),
	}
	fs := map[string]string{
		"":               "give a list of host directories to share, each a mapping such as {tag: data, host_path: /srv/data, mount_point: /data}",
		"[]":             "write each mount as a mapping such as {tag: data, host_path: /srv/data, mount_point: /data}",
		"[].tag":         "give the virtiofs tag the guest mounts, such as data",
		"[].host_path":   "give the absolute path of a directory on the host",
		"[].mount_point": "give the absolute path where the guest mounts it",
		"[].owner":       "give the user that owns the mount point in the guest, or leave the key out",
		"[].group":       "give the group that owns the mount point in the guest, or leave the key out",
		"[].mode":        `give the mount point's mode in octal, such as "0755", or leave the key out`,
		"[].options":     "give extra mount options, such as ro, or leave the key out",
	}
	for _, vm := range []string{"controller", "compute_nodes[]"} {
		for k, v := range topo {
			hw[vm+".cpu_topology"+k] = v
		}
		for k, v := range fs {
			hw[vm+".virtio_fs_mounts"+k] = v
		}
	}
	for k, v := range hw {
		settingHints[k] = v
	}
}
