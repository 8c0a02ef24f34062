package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hpcvm/hpcvm/cluster"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func labInventory() inventory {
	return inventory{
		Cluster: "lab-2", Host: "hv1",
		Hosts: []inventoryHost{
			{Name: "controller-01", Domain: "lab-2-controller-01", Role: "controller", Address: "10.77.0.10"},
			{Name: "compute-01", Domain: "lab-2-compute-01", Role: "compute", Address: "10.77.0.11", GPUs: 1},
			{Name: "compute-02", Domain: "lab-2-compute-02", Role: "compute", Address: "10.77.0.12"},
		},
		Settings: cluster.InventorySpec{
			SSHUser: "hpc", SSHPrivateKeyFile: "~/.ssh/id_ed25519", SSHPort: 2222,
			SSHCommonArgs: "-o StrictHostKeyChecking=no", PythonInterpreter: "/usr/bin/python3",
			Vars: map[string]any{"slurm_partitions": []any{"gpu", "debug"}, "site": `lab "A"`, "hyperthreads": false,
				"SlurmConf": map[string]any{"enabled": true, "nodes": []any{true, 1, nil}, "ratio": 0.5}},
		},
		LeftOut: []string{"compute-03"},
	}
}

// ansibleList is what `ansible-inventory --list` makes of an inventory
// file: Debian's Ansible, the reader operators use.
func ansibleList(t *testing.T, file string) map[string]any {
	t.Helper()
	cmd := exec.Command("ansible-inventory", "-i", file, "--list")
	cmd.Env = append(os.Environ(), "ANSIBLE_INVENTORY_UNPARSED_FAILED=true", "ANSIBLE_LOCAL_TEMP="+t.TempDir(), "ANSIBLE_HOME="+t.TempDir())
	out, err := cmd.Output()
	var stderr []byte
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	require.NoError(t, err, "%s", stderr)
	var list map[string]any
	require.NoError(t, json.Unmarshal(out, &list), "%s", out)
	return list
}

func TestAnsibleReadsBothInventoryFormats(t *testing.T) {
	inv := labInventory()
	yml, err := inv.YAML()
	require.NoError(t, err)
	for format, text := range map[string]string{"ini": inv.INI(), "yml": yml} {
		t.Run(format, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "lab."+format)
			require.NoError(t, os.WriteFile(file, []byte(text), 0o644))
			list := ansibleList(t, file)

			hostvars := list["_meta"].(map[string]any)["hostvars"].(map[string]any)
			require.Len(t, hostvars, 3, text)
			c1 := hostvars["compute-01"].(map[string]any)
			assert.Equal(t, "10.77.0.11", c1["ansible_host"])
			assert.Equal(t, "compute", c1["hpcvm_role"])
			assert.Equal(t, "lab-2-compute-01", c1["hpcvm_domain"])
			assert.EqualValues(t, 1, c1["hpcvm_gpus"])
			// The cluster's settings reach every host, with their types.
			assert.Equal(t, "hpc", c1["ansible_user"])
			assert.Equal(t, "~/.ssh/id_ed25519", c1["ansible_ssh_private_key_file"])
			assert.EqualValues(t, 2222, c1["ansible_port"])
			assert.Equal(t, "-o StrictHostKeyChecking=no", c1["ansible_ssh_common_args"])
			assert.Equal(t, "/usr/bin/python3", c1["ansible_python_interpreter"])
			assert.Equal(t, []any{"gpu", "debug"}, c1["slurm_partitions"])
			assert.Equal(t, `lab "A"`, c1["site"])
			assert.Equal(t, false, c1["hyperthreads"])
			assert.Equal(t, map[string]any{"enabled": true, "nodes": []any{true, float64(1), nil}, "ratio": 0.5}, c1["SlurmConf"], "nested values keep their types, names their case")
			assert.Equal(t, "lab-2", c1["hpcvm_cluster"])
			assert.Equal(t, "10.77.0.10", hostvars["controller-01"].(map[string]any)["ansible_host"])

			hosts := func(group string) []any {
				g, ok := list[group].(map[string]any)
				require.True(t, ok, "group %s in %v", group, list)
				h, _ := g["hosts"].([]any)
				return h
			}
			assert.ElementsMatch(t, []any{"controller-01"}, hosts("controllers"))
			assert.ElementsMatch(t, []any{"compute-01", "compute-02"}, hosts("compute"))
			assert.ElementsMatch(t, []any{"compute-01"}, hosts("gpu_nodes"))
			assert.ElementsMatch(t, []any{"controllers", "compute", "gpu_nodes"}, list["lab_2"].(map[string]any)["children"])
		})
	}
}

func TestInventoryDefaults(t *testing.T) {
	assert.Equal(t, filepath.Join("inventory", "lab.ini"), inventoryPath("lab", cluster.InventorySpec{}))
	assert.Equal(t, filepath.Join("inventory", "lab.yml"), inventoryPath("lab", cluster.InventorySpec{Format: "yaml"}))
	assert.Equal(t, "hosts", inventoryPath("lab", cluster.InventorySpec{Path: "hosts", Format: "yaml"}))
	assert.Equal(t, "yaml", inventoryFormat("yaml", cluster.InventorySpec{Format: "ini"}))
	assert.Equal(t, "ini", inventoryFormat("", cluster.InventorySpec{}))

	// No settings: no connection variables Ansible would take literally.
	bare := inventory{Cluster: "lab", Host: "hv1", Hosts: []inventoryHost{{Name: "controller-01", Role: "controller"}}}
	text := bare.INI()
	assert.NotContains(t, text, "ansible_user")
	assert.Contains(t, text, "# controller-01 has no address yet")
	file := filepath.Join(t.TempDir(), "bare.ini")
	require.NoError(t, os.WriteFile(file, []byte(text), 0o644))
	list := ansibleList(t, file)
	vars := list["_meta"].(map[string]any)["hostvars"].(map[string]any)["controller-01"].(map[string]any)
	assert.NotContains(t, vars, "ansible_host")
}

func TestInventorySettingsAreValidated(t *testing.T) {
	base := "cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2}}\n"
	for yaml, want := range map[string]string{
		"inventory: {format: json}":             "inventory.format",
		"inventory: {ssh_port: 70000}":          "inventory.ssh_port",
		"inventory: {vars: {bad-name: 1}}":      "inventory.vars.bad-name",
		"inventory: {path: inventory/}":         "inventory.path",
		"inventory: {ssh_user: \"a\\nb\"}":      "inventory.ssh_user",
		"inventory: {ssh_usr: root}":            "did you mean inventory.ssh_user?",
		"inventory: {ssh_port: twenty-two}":     "inventory.ssh_port",
		"inventory: {vars: [a, b]}":             "inventory.vars",
		"inventory: {python_interpreter: 3}":    "is a number, not text",
		"inventory: {ssh_user: root, vars: {}}": "",
		"inventory: {vars: {A: 1, a: 2}}":       "",
	} {
		_, err := cluster.Parse([]byte(base + yaml + "\n"))
		if want == "" {
			assert.NoError(t, err, yaml)
			continue
		}
		require.Error(t, err, yaml)
		assert.Contains(t, err.Error(), want, yaml)
	}
}

// Ansible's variable names are case-sensitive: inventory.vars keeps them
// as written, at every depth, while the rest of cluster.yaml is not.
func TestInventoryVarsKeepTheirCase(t *testing.T) {
	spec, err := cluster.Parse([]byte("cluster: {name: lab, host: hv1, storage: {base_image: /x.qcow2}}\nINVENTORY: {VARS: {SlurmConf: x, nested: {Key: true}, a: 1, A: 2}}\n"))
	require.NoError(t, err)
	require.NotNil(t, spec.Inventory)
	assert.Equal(t, map[string]any{"SlurmConf": "x", "nested": map[string]any{"Key": true}, "a": 1, "A": 2}, spec.Inventory.Vars)
}
