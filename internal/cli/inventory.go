package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hpcvm/hpcvm/cluster"
	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v3"
)

// inventoryHost is one VM as the Ansible inventory lists it.
type inventoryHost struct {
	Name    string // the VM's name, its guest hostname: controller-01
	Domain  string
	Role    string // controller or compute
	Address string // "" when the VM has none yet
	GPUs    int
}

// inventory is an Ansible inventory of one cluster.
type inventory struct {
	Cluster, Host string
	Hosts         []inventoryHost
	Settings      cluster.InventorySpec
	// Left out are the VMs of the plan that do not exist (yet).
	LeftOut []string
}

// Group names: Ansible takes letters, digits and _ in a group's name.
const (
	controllersGroup = "controllers"
	computeGroup     = "compute"
	gpuGroup         = "gpu_nodes"
)

// clusterGroup is the group holding every host of the cluster.
func clusterGroup(name string) string { return strings.ReplaceAll(name, "-", "_") }

// groupVars are the variables every host of the cluster gets, in order.
func (inv inventory) groupVars() [][2]any {
	s := inv.Settings
	vars := [][2]any{{"hpcvm_cluster", inv.Cluster}, {"hpcvm_host", inv.Host}}
	for _, v := range []struct {
		key   string
		value any
		set   bool
	}{
		{"ansible_user", s.SSHUser, s.SSHUser != ""},
		{"ansible_ssh_private_key_file", s.SSHPrivateKeyFile, s.SSHPrivateKeyFile != ""},
		{"ansible_port", s.SSHPort, s.SSHPort != 0},
		{"ansible_ssh_common_args", s.SSHCommonArgs, s.SSHCommonArgs != ""},
		{"ansible_python_interpreter", s.PythonInterpreter, s.PythonInterpreter != ""},
	} {
		if v.set {
			vars = append(vars, [2]any{v.key, v.value})
		}
	}
	keys := make([]string, 0, len(s.Vars))
	for k := range s.Vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vars = append(vars, [2]any{k, s.Vars[k]})
	}
	return vars
}

func (h inventoryHost) vars() [][2]any {
	var vars [][2]any
	if h.Address != "" {
		vars = append(vars, [2]any{"ansible_host", h.Address})
	}
	vars = append(vars, [2]any{"hpcvm_role", h.Role}, [2]any{"hpcvm_domain", h.Domain})
	if h.GPUs > 0 {
		vars = append(vars, [2]any{"hpcvm_gpus", h.GPUs})
	}
	return vars
}

// members are the hosts of one of the role groups.
func (inv inventory) members(group string) []inventoryHost {
	var out []inventoryHost
	for _, h := range inv.Hosts {
		switch {
		case group == gpuGroup && h.GPUs > 0,
			group == controllersGroup && h.Role == cluster.RoleController,
			group == computeGroup && h.Role == cluster.RoleCompute:
			out = append(out, h)
		}
	}
	return out
}

// header says what the file is and how to make it again.
func (inv inventory) header() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Ansible inventory of hpcvm cluster %s on host %s, written by hpcvm.\n", inv.Cluster, inv.Host)
	fmt.Fprintf(&b, "# Groups: %s (every VM), %s, %s, %s (VMs with a GPU passed through).\n", clusterGroup(inv.Cluster), controllersGroup, computeGroup, gpuGroup)
	fmt.Fprintf(&b, "# Made again by `hpcvm inventory`; edits here are overwritten by the next `hpcvm start`.\n")
	for _, h := range inv.Hosts {
		if h.Address == "" {
			fmt.Fprintf(&b, "# %s has no address yet: Ansible reaches it by its name only.\n", h.Name)
		}
	}
	if len(inv.LeftOut) > 0 {
		fmt.Fprintf(&b, "# Not listed, they do not exist: %s.\n", strings.Join(inv.LeftOut, ", "))
	}
	return b.String()
}

// iniValue renders a value the way Ansible's INI inventory reads it back
// (it evaluates a value as a Python literal): strings quoted, numbers as
// themselves, True/False/None, lists and mappings as Python literals.
func iniValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int, int64, uint64, float64:
		return fmt.Sprint(x)
	case []any:
		items := make([]string, len(x))
		for i, it := range x {
			items[i] = iniValue(it)
		}
		return "[" + strings.Join(items, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		items := make([]string, len(keys))
		for i, k := range keys {
			items[i] = iniValue(k) + ": " + iniValue(x[k])
		}
		return "{" + strings.Join(items, ", ") + "}"
	}
	// A string: JSON's quoting is a valid Python string literal for
	// everything JSON escapes (quotes, backslashes, control characters).
	raw, err := json.Marshal(fmt.Sprint(v))
	if err != nil {
		return `""`
	}
	return string(raw)
}

// INI renders the inventory in Ansible's INI format.
func (inv inventory) INI() string {
	var b strings.Builder
	b.WriteString(inv.header())
	for _, group := range []string{controllersGroup, computeGroup} {
		fmt.Fprintf(&b, "\n[%s]\n", group)
		for _, h := range inv.members(group) {
			b.WriteString(h.Name)
			for _, kv := range h.vars() {
				fmt.Fprintf(&b, " %s=%s", kv[0], iniValue(kv[1]))
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "\n[%s]\n", gpuGroup)
	for _, h := range inv.members(gpuGroup) {
		fmt.Fprintln(&b, h.Name)
	}
	fmt.Fprintf(&b, "\n[%s:children]\n%s\n%s\n%s\n", clusterGroup(inv.Cluster), controllersGroup, computeGroup, gpuGroup)
	fmt.Fprintf(&b, "\n[%s:vars]\n", clusterGroup(inv.Cluster))
	for _, kv := range inv.groupVars() {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], iniValue(kv[1]))
	}
	return b.String()
}

// YAML renders the inventory in Ansible's YAML format.
func (inv inventory) YAML() (string, error) {
	mapping := func(pairs ...any) *yaml.Node {
		n := &yaml.Node{Kind: yaml.MappingNode}
		for i := 0; i+1 < len(pairs); i += 2 {
			var k, v yaml.Node
			if err := k.Encode(pairs[i]); err != nil {
				panic(err)
			}
			if node, ok := pairs[i+1].(*yaml.Node); ok {
				v = *node
			} else if err := v.Encode(pairs[i+1]); err != nil {
				panic(err)
			}
			n.Content = append(n.Content, &k, &v)
		}
		return n
	}
	varsNode := func(vars [][2]any) *yaml.Node {
		var pairs []any
		for _, kv := range vars {
			pairs = append(pairs, kv[0], kv[1])
		}
		return mapping(pairs...)
	}
	hostsNode := func(group string, withVars bool) *yaml.Node {
		var pairs []any
		for _, h := range inv.members(group) {
			if withVars {
				pairs = append(pairs, h.Name, varsNode(h.vars()))
			} else {
				pairs = append(pairs, h.Name, mapping())
			}
		}
		return mapping("hosts", mapping(pairs...))
	}
	var out *yaml.Node
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("rendering the inventory: %v", r)
			}
		}()
		out = mapping("all", mapping("children", mapping(clusterGroup(inv.Cluster), mapping(
			"vars", varsNode(inv.groupVars()),
			"children", mapping(
				controllersGroup, hostsNode(controllersGroup, true),
				computeGroup, hostsNode(computeGroup, true),
				gpuGroup, hostsNode(gpuGroup, false),
			),
		))))
		return nil
	}()
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return "", err
	}
	return inv.header() + buf.String(), nil
}

// Render renders the inventory in format (ini or yaml).
func (inv inventory) Render(format string) (string, error) {
	if format == cluster.InventoryYAML {
		return inv.YAML()
	}
	return inv.INI(), nil
}

// inventoryFormat is the format asked for, or the file's, or ini.
func inventoryFormat(asked string, s cluster.InventorySpec) string {
	if asked != "" {
		return asked
	}
	if s.Format != "" {
		return s.Format
	}
	return cluster.InventoryINI
}

// inventoryPath is where start writes the inventory.
func inventoryPath(clusterName string, s cluster.InventorySpec) string {
	if s.Path != "" {
		return s.Path
	}
	ext := ".ini"
	if s.Format == cluster.InventoryYAML {
		ext = ".yml"
	}
	return filepath.Join("inventory", clusterName+ext)
}

// gpusByVM counts the GPUs cluster.yaml passes through to each VM.
func gpusByVM(s cluster.Spec) map[string]int {
	out := map[string]int{}
	for _, d := range cluster.RequestedPCIDevices(s) {
		if d.DeviceType == "gpu" {
			out[d.VM]++
		}
	}
	return out
}

// inventoryFromStatus lists the VMs that exist, each at its static lease.
func inventoryFromStatus(st Status, spec cluster.Spec) inventory {
	inv := inventory{Cluster: st.Cluster, Host: st.Host}
	if spec.Inventory != nil {
		inv.Settings = *spec.Inventory
	}
	gpus := gpusByVM(spec)
	for _, vm := range st.VMs {
		if vm.State == "absent" {
			inv.LeftOut = append(inv.LeftOut, vm.Name)
			continue
		}
		inv.Hosts = append(inv.Hosts, inventoryHost{Name: vm.Name, Domain: vm.Domain, Role: vm.Type, Address: vm.IP, GPUs: gpus[vm.Name]})
	}
	return inv
}

// writeFileAtomically replaces path with content, so a reader (Ansible)
// never sees half a file.
func writeFileAtomically(path, content string) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (a *app) inventoryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "Print the cluster's Ansible inventory",
		Long: `inventory asks the host's worker what exists of the cluster and prints an
Ansible inventory of its VMs: groups controllers, compute and gpu_nodes
(VMs cluster.yaml passes a GPU through to), all under a group named after
the cluster; each host is the VM's name (its guest hostname) with
ansible_host set to its static lease.

The inventory: section of cluster.yaml sets what every host gets:
ssh_user, ssh_private_key_file, ssh_port, ssh_common_args,
python_interpreter, and vars (more variables of the cluster's group);
format (ini or yaml) and path are where ` + "`hpcvm start`" + ` writes it after each
start (default inventory/<cluster>.ini, relative to where hpcvm runs).
--write writes that file instead of printing.`,
		Example: `  hpcvm inventory -c cluster.yaml > hosts.ini
  hpcvm inventory -c cluster.yaml -o yaml
  ansible -i inventory/lab.ini compute -m ping`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, _ := cmd.Flags().GetString("output")
			if format != "" && format != cluster.InventoryINI && format != cluster.InventoryYAML {
				return fail(ExitBadInput, "--output must be ini or yaml, not %q", format)
			}
			write, _ := cmd.Flags().GetBool("write")
			st, req, err := a.readStatus(cmd.Context())
			if err != nil {
				return err
			}
			if st.State == "absent" {
				return fail(ExitFailed, "cluster %s does not exist on host %s: start it first (hpcvm start)", st.Cluster, st.Host)
			}
			inv := inventoryFromStatus(st, req.Spec)
			settings := cluster.InventorySpec{}
			if req.Spec.Inventory != nil {
				settings = *req.Spec.Inventory
			}
			format = inventoryFormat(format, settings)
			text, err := inv.Render(format)
			if err != nil {
				return fail(ExitFailed, "%v", err)
			}
			if !write {
				fmt.Fprint(a.out, text)
				return nil
			}
			settings.Format = format
			path := inventoryPath(st.Cluster, settings)
			if err := writeFileAtomically(path, text); err != nil {
				return fail(ExitFailed, "writing the inventory: %v", err)
			}
			fmt.Fprintf(a.out, "Ansible inventory: %s (%d host(s))\n", path, len(inv.Hosts))
			return nil
		},
	}
	cmd.Flags().StringP("output", "o", "", "ini or yaml (default: inventory.format of cluster.yaml, else ini)")
	cmd.Flags().Bool("write", false, "write the file start writes (inventory.path) instead of printing")
	return cmd
}

// inventoryFromPlan lists the VMs of a cluster a start has just brought up.
func inventoryFromPlan(p cluster.Plan, spec cluster.Spec) inventory {
	inv := inventory{Cluster: p.Cluster, Host: p.Host}
	if spec.Inventory != nil {
		inv.Settings = *spec.Inventory
	}
	gpus := gpusByVM(spec)
	for _, vm := range p.VMs {
		inv.Hosts = append(inv.Hosts, inventoryHost{Name: vm.Name, Domain: vm.Domain, Role: vm.Role, Address: vm.IP, GPUs: gpus[vm.Name]})
	}
	return inv
}

// writeInventory writes the inventory of a started cluster to file, or
// where cluster.yaml says; failing to is a warning, not the start's failure.
func (a *app) writeInventory(p cluster.Plan, spec cluster.Spec, file string) {
	settings := cluster.InventorySpec{}
	if spec.Inventory != nil {
		settings = *spec.Inventory
	}
	inv := inventoryFromPlan(p, spec)
	path := inventoryPath(p.Cluster, settings)
	if file != "" {
		path = file
	}
	text, err := inv.Render(inventoryFormat("", settings))
	if err == nil {
		err = writeFileAtomically(path, text)
	}
	if err != nil {
		fmt.Fprintf(a.errOut, "warning: the Ansible inventory was not written to %s: %v (print it with `hpcvm inventory`)\n", path, err)
		return
	}
	if a.report != nil {
		a.report.Inventory = path
	}
	fmt.Fprintf(a.out, "Ansible inventory: %s (%d host(s))\n", path, len(inv.Hosts))
}
