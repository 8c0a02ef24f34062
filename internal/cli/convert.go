package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hpcvm/hpcvm/cluster"
	"github.com/spf13/cobra"
)

func (a *app) convertCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "convert FILE",
		Short: "Turn a configuration file of the Python tool (ai-how) into a cluster.yaml",
		Long: `convert reads a configuration file of the Python tool hpcvm succeeds (ai-how:
version "1.0", metadata, clusters.hpc) and writes the equivalent
cluster.yaml of its HPC cluster to DIR/<name>.cluster.yaml (--out-dir,
default the current directory).

What changes form is said in comments at the top of the file: memory_gb
becomes memory_mb, disk_gb disk_size_gb, subnet network_range, bridge
bridge_name; the controller's ip_address and each compute node's ip become
static leases; compute nodes are named compute-01, compute-02, ... in file
order, and a group (count: N, ip: DHCP) becomes N nodes with addresses
hpcvm plans; relative base_image_path values are made absolute from the
current directory and ${VAR} expanded; cpu_model, which defaulted to
host-model in the Python tool, is written out; slurm_config becomes
variables of the Ansible inventory. What cannot be carried over
(clusters.cloud, storage services, per-VM base images that differ,
auto_start: false, unknown keys) is listed, with why, on the terminal and
in the file.

The result is checked like any cluster.yaml: convert exits 2 when it has
problems to fix (the file is written all the same). The cluster is new to
hpcvm: its domains and MACs are hpcvm's, VMs the Python tool made are not
adopted. Run ` + "`hpcvm validate -c`" + ` on the result before starting it.`,
		Example: `  hpcvm convert ai-how.yaml
  hpcvm convert ai-how.yaml --out-dir clusters/ && hpcvm validate -c clusters/lab.cluster.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			outDir, _ := cmd.Flags().GetString("out-dir")
			force, _ := cmd.Flags().GetBool("force")
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fail(ExitBadInput, "%v", err)
			}
			wd, err := os.Getwd()
			if err != nil {
				return fail(ExitBadInput, "the current directory cannot be read (relative image paths are made absolute from it): %v", err)
			}
			converted, err := cluster.ConvertAIHow(data, cluster.AIHowOptions{WorkDir: wd})
			if err != nil {
				return fail(ExitBadInput, "%s: %v; nothing was written", args[0], err)
			}
			problems := 0
			for _, c := range converted {
				path := filepath.Join(outDir, c.Name+".cluster.yaml")
				if _, err := os.Stat(path); err == nil && !force {
					return fail(ExitBadInput, "%s exists: remove it, give --out-dir, or --force to overwrite it; nothing was written", path)
				} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fail(ExitBadInput, "%v", err)
				}
				if err := writeFileAtomically(path, c.YAML); err != nil {
					return fail(ExitFailed, "writing %s: %v", path, err)
				}
				fmt.Fprintf(a.out, "wrote %s: cluster %s\n", path, c.Name)
				for _, n := range c.NotCarried {
					fmt.Fprintln(a.out, "  not carried over:", n)
				}
				for _, p := range c.Problems {
					fmt.Fprintln(a.out, "  to fix before it starts:", p)
				}
				problems += len(c.Problems)
			}
			if problems > 0 {
				return fail(ExitBadInput, "the result has %d problem(s) to fix (listed above)", problems)
			}
			return nil
		},
	}
	cmd.Flags().String("out-dir", ".", "where to write <name>.cluster.yaml")
	cmd.Flags().Bool("force", false, "overwrite a file of that name")
	return cmd
}
