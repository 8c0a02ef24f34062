// Package cluster owns the cluster.yaml model: loading it, filling defaults,
// validating it with field paths, and deriving the deterministic plan of every
// libvirt object a cluster owns. It knows nothing of Temporal or libvirt.
package cluster

// Spec is cluster.yaml as the operator wrote it, after defaults were applied.
// Field tags are the YAML keys of the plan's "Enhanced Cluster Configuration".
type Spec struct {
	Global            map[string]any `mapstructure:"global" json:"global,omitempty"`
	Cluster           ClusterSpec    `mapstructure:"cluster" json:"cluster"`
	Network           NetworkSpec    `mapstructure:"network" json:"network"`
	HostConfiguration map[string]any `mapstructure:"host_configuration" json:"host_configuration,omitempty"`
	Controller        ControllerSpec `mapstructure:"controller" json:"controller"`
	ComputeNodes      []NodeSpec     `mapstructure:"compute_nodes" json:"compute_nodes"`
	// Inventory is read by the CLI alone (it writes the Ansible inventory);
	// it is not part of what a workflow is asked to do.
	Inventory *InventorySpec `mapstructure:"inventory" json:"-"`
}

// InventorySpec is `inventory:`: the Ansible inventory `hpcvm start`
// writes and `hpcvm inventory` prints.
type InventorySpec struct {
	// Path is where start writes the inventory, relative to the directory
	// hpcvm runs in (default inventory/<cluster>.ini, or .yml for yaml).
	Path   string `mapstructure:"path" json:"path,omitempty"`
	Format string `mapstructure:"format" json:"format,omitempty"` // ini (default) or yaml
	// The connection settings every host of the cluster gets.
	SSHUser           string `mapstructure:"ssh_user" json:"ssh_user,omitempty"`
	SSHPrivateKeyFile string `mapstructure:"ssh_private_key_file" json:"ssh_private_key_file,omitempty"`
	SSHPort           int    `mapstructure:"ssh_port" json:"ssh_port,omitempty"`
	SSHCommonArgs     string `mapstructure:"ssh_common_args" json:"ssh_common_args,omitempty"`
	PythonInterpreter string `mapstructure:"python_interpreter" json:"python_interpreter,omitempty"`
	// Vars are further variables of the cluster's group (a Slurm
	// partition list, a site name).
	Vars map[string]any `mapstructure:"vars" json:"vars,omitempty"`
}

// Inventory formats.
const (
	InventoryINI  = "ini"
	InventoryYAML = "yaml"
)

// ClusterSpec is the `cluster:` section.
type ClusterSpec struct {
	Name string `mapstructure:"name" json:"name"`
	// Host names the hypervisor host whose worker runs this cluster; its
	// worker listens on the task queue derived from it. Default: this
	// machine's hostname.
	Host     string       `mapstructure:"host" json:"host"`
	Storage  StorageSpec  `mapstructure:"storage" json:"storage"`
	Hardware HardwareSpec `mapstructure:"hardware" json:"hardware"`
}

// StorageSpec is `cluster.storage`.
type StorageSpec struct {
	PoolPath  string `mapstructure:"pool_path" json:"pool_path"`
	PoolType  string `mapstructure:"pool_type" json:"pool_type"`
	BaseImage string `mapstructure:"base_image" json:"base_image"`
}

// HardwareSpec is `cluster.hardware`.
type HardwareSpec struct {
	Acceleration    AccelerationSpec     `mapstructure:"acceleration" json:"acceleration"`
	PCIePassthrough *PCIePassthroughSpec `mapstructure:"pcie_passthrough" json:"pcie_passthrough,omitempty"`
}

// PCIePassthroughSpec is `cluster.hardware.pcie_passthrough` (devices name
// the VM they go to) or a VM's own `pcie_passthrough` (devices go to it).
type PCIePassthroughSpec struct {
	Enabled bool `mapstructure:"enabled" json:"enabled"`
	// ExclusiveMode: a device may be held by one cluster at a time on the
	// host. Unset means true, as in the plan's schema.
	ExclusiveMode *bool           `mapstructure:"exclusive_mode" json:"exclusive_mode,omitempty"`
	Devices       []PCIDeviceSpec `mapstructure:"devices" json:"devices,omitempty"`
}

// PCIDeviceSpec is one host PCI function to pass through.
type PCIDeviceSpec struct {
	PCIAddress string `mapstructure:"pci_address" json:"pci_address"`
	DeviceType string `mapstructure:"device_type" json:"device_type"`
	VendorID   string `mapstructure:"vendor_id" json:"vendor_id,omitempty"`
	DeviceID   string `mapstructure:"device_id" json:"device_id,omitempty"`
	AssignedTo string `mapstructure:"assigned_to" json:"assigned_to,omitempty"`
	IOMMUGroup *int   `mapstructure:"iommu_group" json:"iommu_group,omitempty"`
}

// AccelerationSpec is `cluster.hardware.acceleration`.
type AccelerationSpec struct {
	// EnableKVM is a pointer so that "not said" (use KVM when the host can)
	// differs from an explicit false (always TCG).
	EnableKVM    *bool    `mapstructure:"enable_kvm" json:"enable_kvm,omitempty"`
	EnableNested bool     `mapstructure:"enable_nested" json:"enable_nested"`
	CPUModel     string   `mapstructure:"cpu_model" json:"cpu_model"`
	CPUFeatures  []string `mapstructure:"cpu_features" json:"cpu_features,omitempty"`
	// NUMATopology is nil for `numa_topology: null`: one guest NUMA node.
	NUMATopology *NUMATopologySpec `mapstructure:"numa_topology" json:"numa_topology,omitempty"`
	CPUTopology  *CPUTopologySpec  `mapstructure:"cpu_topology" json:"cpu_topology,omitempty"`
	Performance  PerformanceSpec   `mapstructure:"performance" json:"performance"`
}

// NUMATopologySpec is `cluster.hardware.acceleration.numa_topology`: every
// VM gets Nodes guest NUMA cells, its vCPUs and memory split between them.
type NUMATopologySpec struct {
	Nodes int `mapstructure:"nodes" json:"nodes"`
	// MemoryPerNode, when given ("4G", "4096M"), must make up each VM's
	// memory exactly; left out, the memory is split evenly.
	MemoryPerNode string `mapstructure:"memory_per_node" json:"memory_per_node,omitempty"`
}

// PerformanceSpec is `cluster.hardware.acceleration.performance`.
type PerformanceSpec struct {
	EnableHugepages bool   `mapstructure:"enable_hugepages" json:"enable_hugepages"`
	HugepageSize    string `mapstructure:"hugepage_size" json:"hugepage_size"`
	CPUPinning      bool   `mapstructure:"cpu_pinning" json:"cpu_pinning"`
	MemoryBacking   string `mapstructure:"memory_backing" json:"memory_backing"`
}

// Hugepages says whether guest memory comes from hugepages: asked for by
// enable_hugepages or by memory_backing "hugepages".
func (p PerformanceSpec) Hugepages() bool {
	return p.EnableHugepages || p.MemoryBacking == "hugepages"
}

// CPUTopologySpec is `cluster.hardware.acceleration.cpu_topology`.
type CPUTopologySpec struct {
	Sockets int `mapstructure:"sockets" json:"sockets"`
	Cores   int `mapstructure:"cores" json:"cores"`
	Threads int `mapstructure:"threads" json:"threads"`
}

// NetworkSpec is the `network:` section.
type NetworkSpec struct {
	NetworkRange string `mapstructure:"network_range" json:"network_range"`
	BridgeName   string `mapstructure:"bridge_name" json:"bridge_name"`
	GatewayIP    string `mapstructure:"gateway_ip" json:"gateway_ip"`
	DHCPStart    string `mapstructure:"dhcp_start" json:"dhcp_start"`
	DHCPEnd      string `mapstructure:"dhcp_end" json:"dhcp_end"`
	DNSMode      string `mapstructure:"dns_mode" json:"dns_mode"`
	// Forward is how the guests reach beyond their bridge: "nat" (the
	// default: out through the host's addresses, libvirt's own NAT rules,
	// nothing in from other clusters) or "none" (air-gapped). Empty: a new
	// network gets nat, an existing one keeps what it was created with.
	Forward      string            `mapstructure:"forward" json:"forward,omitempty"`
	DNSServers   []string          `mapstructure:"dns_servers" json:"dns_servers,omitempty"`
	StaticLeases map[string]string `mapstructure:"static_leases" json:"static_leases,omitempty"`
}

// ControllerSpec is the `controller:` section.
type ControllerSpec struct {
	Count      int `mapstructure:"count" json:"count"`
	MemoryMB   int `mapstructure:"memory_mb" json:"memory_mb"`
	CPUCores   int `mapstructure:"cpu_cores" json:"cpu_cores"`
	DiskSizeGB int `mapstructure:"disk_size_gb" json:"disk_size_gb"`
	// CPUTopology overrides the cluster's cpu_topology for the controllers,
	// whose vCPU count usually differs from the compute nodes'.
	CPUTopology    *CPUTopologySpec    `mapstructure:"cpu_topology" json:"cpu_topology,omitempty"`
	VirtioFSMounts []VirtioFSMountSpec `mapstructure:"virtio_fs_mounts" json:"virtio_fs_mounts,omitempty"`
}

// VirtioFSMountSpec is one host directory shared into a VM (the Python
// tool's per-VM virtio_fs_mounts).
type VirtioFSMountSpec struct {
	Tag        string `mapstructure:"tag" json:"tag"`
	HostPath   string `mapstructure:"host_path" json:"host_path"`
	MountPoint string `mapstructure:"mount_point" json:"mount_point"`
	Owner      string `mapstructure:"owner" json:"owner,omitempty"`
	Group      string `mapstructure:"group" json:"group,omitempty"`
	Mode       string `mapstructure:"mode" json:"mode,omitempty"`
	Options    string `mapstructure:"options" json:"options,omitempty"`
}

// NodeSpec is one entry of `compute_nodes:`.
type NodeSpec struct {
	Name            string               `mapstructure:"name" json:"name"`
	MemoryMB        int                  `mapstructure:"memory_mb" json:"memory_mb"`
	CPUCores        int                  `mapstructure:"cpu_cores" json:"cpu_cores"`
	DiskSizeGB      int                  `mapstructure:"disk_size_gb" json:"disk_size_gb"`
	CPUTopology     *CPUTopologySpec     `mapstructure:"cpu_topology" json:"cpu_topology,omitempty"`
	PCIePassthrough *PCIePassthroughSpec `mapstructure:"pcie_passthrough" json:"pcie_passthrough,omitempty"`
	VirtioFSMounts  []VirtioFSMountSpec  `mapstructure:"virtio_fs_mounts" json:"virtio_fs_mounts,omitempty"`
}

// Defaults, as in the plan's configuration example and JSON schema.
const (
	DefaultPoolPath     = "/var/lib/libvirt/images"
	DefaultPoolType     = "dir"
	DefaultNetworkRange = "192.168.100.0/24"
	DefaultDNSMode      = "isolated"
	// Forward modes of network.forward.
	ForwardNAT               = "nat"
	ForwardNone              = "none"
	DefaultHugepageSize      = "2M"
	DefaultMemoryBacking     = "default"
	DefaultControllerCount   = 1
	DefaultControllerMemory  = 4096
	DefaultControllerCPU     = 2
	DefaultControllerDiskGB  = 50
	DefaultComputeMemory     = 8192
	DefaultComputeCPU        = 4
	DefaultComputeDiskGB     = 100
	defaultDHCPStartHostPart = 10
)
