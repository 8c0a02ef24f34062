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
}

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

// HardwareSpec is `cluster.hardware`. It is accepted in full; only the simple
// parts are carried into the domain XML for now (see templates).
type HardwareSpec struct {
	Acceleration    AccelerationSpec `mapstructure:"acceleration" json:"acceleration"`
	PCIePassthrough map[string]any   `mapstructure:"pcie_passthrough" json:"pcie_passthrough,omitempty"`
}

// AccelerationSpec is `cluster.hardware.acceleration`.
type AccelerationSpec struct {
	// EnableKVM is a pointer so that "not said" (use KVM when the host can)
	// differs from an explicit false (always TCG).
	EnableKVM    *bool            `mapstructure:"enable_kvm" json:"enable_kvm,omitempty"`
	EnableNested bool             `mapstructure:"enable_nested" json:"enable_nested"`
	CPUModel     string           `mapstructure:"cpu_model" json:"cpu_model"`
	CPUFeatures  []string         `mapstructure:"cpu_features" json:"cpu_features,omitempty"`
	NUMATopology map[string]any   `mapstructure:"numa_topology" json:"numa_topology,omitempty"`
	CPUTopology  *CPUTopologySpec `mapstructure:"cpu_topology" json:"cpu_topology,omitempty"`
	Performance  map[string]any   `mapstructure:"performance" json:"performance,omitempty"`
}

// CPUTopologySpec is `cluster.hardware.acceleration.cpu_topology`.
type CPUTopologySpec struct {
	Sockets int `mapstructure:"sockets" json:"sockets"`
	Cores   int `mapstructure:"cores" json:"cores"`
	Threads int `mapstructure:"threads" json:"threads"`
}

// NetworkSpec is the `network:` section.
type NetworkSpec struct {
	NetworkRange string            `mapstructure:"network_range" json:"network_range"`
	BridgeName   string            `mapstructure:"bridge_name" json:"bridge_name"`
	GatewayIP    string            `mapstructure:"gateway_ip" json:"gateway_ip"`
	DHCPStart    string            `mapstructure:"dhcp_start" json:"dhcp_start"`
	DHCPEnd      string            `mapstructure:"dhcp_end" json:"dhcp_end"`
	DNSMode      string            `mapstructure:"dns_mode" json:"dns_mode"`
	DNSServers   []string          `mapstructure:"dns_servers" json:"dns_servers,omitempty"`
	StaticLeases map[string]string `mapstructure:"static_leases" json:"static_leases,omitempty"`
}

// ControllerSpec is the `controller:` section.
type ControllerSpec struct {
	Count      int `mapstructure:"count" json:"count"`
	MemoryMB   int `mapstructure:"memory_mb" json:"memory_mb"`
	CPUCores   int `mapstructure:"cpu_cores" json:"cpu_cores"`
	DiskSizeGB int `mapstructure:"disk_size_gb" json:"disk_size_gb"`
}

// NodeSpec is one entry of `compute_nodes:`.
type NodeSpec struct {
	Name            string         `mapstructure:"name" json:"name"`
	MemoryMB        int            `mapstructure:"memory_mb" json:"memory_mb"`
	CPUCores        int            `mapstructure:"cpu_cores" json:"cpu_cores"`
	DiskSizeGB      int            `mapstructure:"disk_size_gb" json:"disk_size_gb"`
	PCIePassthrough map[string]any `mapstructure:"pcie_passthrough" json:"pcie_passthrough,omitempty"`
}

// Defaults, as in the plan's configuration example and JSON schema.
const (
	DefaultPoolPath          = "/var/lib/libvirt/images"
	DefaultPoolType          = "dir"
	DefaultNetworkRange      = "192.168.100.0/24"
	DefaultDNSMode           = "isolated"
	DefaultControllerCount   = 1
	DefaultControllerMemory  = 4096
	DefaultControllerCPU     = 2
	DefaultControllerDiskGB  = 50
	DefaultComputeMemory     = 8192
	DefaultComputeCPU        = 4
	DefaultComputeDiskGB     = 100
	defaultDHCPStartHostPart = 10
)
