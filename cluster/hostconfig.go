package cluster

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
)

// The plan's host_configuration says which changes outside libvirt's own
// objects (sysctl, firewall rules beyond libvirt's, the host's resolver,
// hugepage and module setup) hpcvm may make. Every one is off by default.
// hpcvm makes three: the routing between routed clusters
// (enable_cross_cluster_routing with dns_mode routed), the registry file
// of dns_mode service_discovery (enable_service_discovery), and the host
// resolver's entry of a shared_dns or routed cluster
// (enable_host_dns_integration). A key that keeps a
// change off is accepted (it says what hpcvm does anyway); a key that turns
// on a change hpcvm does not make is refused with what to do by hand, so no
// setting is accepted and then silently not acted on.

// hostSwitch is a host_configuration key that would let hpcvm change the
// host: accepted as false; as true, refused unless hpcvm makes that change.
type hostSwitch struct {
	what string // the change it allows
	made bool   // hpcvm makes it when the switch is on
}

const (
	routingSwitch   = "network.enable_cross_cluster_routing"
	discoverySwitch = "network.enable_service_discovery"
	resolverSwitch  = "network.enable_host_dns_integration"
	// DefaultResolverDir is where the host resolver's entry goes: the
	// host dnsmasq's drop-in directory, as the plan names it.
	DefaultResolverDir = "/etc/dnsmasq.d"
	// DefaultResolverAddress is where the clusters' networks reach the
	// host's dnsmasq: its loopback address (their dnsmasq runs on the host).
	DefaultResolverAddress = "127.0.0.1"
	// DefaultDiscoveryDir is where the registry file goes: Consul's
	// configuration directory, as the plan names it.
	DefaultDiscoveryDir = "/etc/consul.d"
)

var hostSwitches = map[string]hostSwitch{
	resolverSwitch:                       {what: "the host's resolver (dnsmasq) learning the cluster's names", made: true},
	routingSwitch:                        {what: "IP forwarding and firewall rules between the clusters' bridges", made: true},
	discoverySwitch:                      {what: "the cluster's names and addresses written for a service registry (Consul, etcd)", made: true},
	"system.enable_hugepage_config":      {what: "hugepages reserved on the host"},
	"system.enable_numa_config":          {what: "the host's NUMA tuning"},
	"system.enable_kernel_module_config": {what: "kernel modules loaded on the host"},
	"development_mode":                   {what: "every host change at once"},
	"allow_destructive_changes":          {what: "host changes that cannot be undone"},
}

// hostSettingKinds are the other keys of the plan's host_configuration:
// how a change that is on would be made. With every change off they
// change nothing, and say so in Warnings.
var hostSettingKinds = map[string]string{
	"require_confirmation":                               "bool",
	"enable_audit_logging":                               "bool",
	"rollback_on_failure":                                "bool",
	"skip_confirmation":                                  "bool",
	"network.dnsmasq_config_path":                        "text",
	"network.dnsmasq_address":                            "text",
	"network.require_confirmation":                       "bool",
	"network.cross_cluster_routing.enable_ip_forwarding": "bool",
	"network.cross_cluster_routing.add_iptables_rules":   "bool",
	"network.cross_cluster_routing.permanent_changes":    "bool",
	"network.service_discovery.consul_path":              "text",
	"network.service_discovery.etcd_path":                "text",
	"network.service_discovery.config_dir":               "text",
	"system.performance.hugepage_size":                   "text",
	"system.performance.numa_memory_policy":              "text",
	"system.performance.cpu_governor":                    "text",
	"security.require_root_access":                       "bool",
	"security.validate_changes":                          "bool",
	"security.backup_configs":                            "bool",
	"security.max_rollback_attempts":                     "number",
}

// walkHostConfiguration calls visit for every setting of host_configuration
// (its sections walked into), in key order, with its path below
// host_configuration ("network.enable_cross_cluster_routing").
func walkHostConfiguration(hc map[string]any, visit func(rel string, v any)) {
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			rel := k
			if prefix != "" {
				rel = prefix + "." + k
			}
			if sub, ok := m[k].(map[string]any); ok && isHostSection(rel) {
				walk(rel, sub)
				continue
			}
			visit(rel, m[k])
		}
	}
	walk("", hc)
}

// validateHostConfiguration checks host_configuration against the plan's
// keys: unknown keys, wrong kinds and switched-on changes hpcvm does not
// make are refused.
func validateHostConfiguration(hc map[string]any, add func(path string, value any, problem, want string)) {
	seen := map[string]bool{}
	walkHostConfiguration(hc, func(rel string, v any) {
		path := "host_configuration." + rel
		// A dotted key ("network.enable_x") and the nested one name the
		// same setting: which one wins would be an accident of key order.
		if seen[rel] {
			add(path, v, "is given twice, nested and as a dotted key (or twice dotted)", "keep one of them")
			return
		}
		seen[rel] = true
		if sw, ok := hostSwitches[rel]; ok {
			on, isBool := v.(bool)
			switch {
			case !isBool:
				add(path, v, "is not true or false", "give false (hpcvm's default), or leave the key out")
			case on && !sw.made:
				add(path, v, "would let hpcvm change the host ("+sw.what+"), which hpcvm does not do yet",
					"leave it false and make the change by hand; the warning of the dns_mode that needs it lists the steps")
			}
			return
		}
		kind, ok := hostSettingKinds[rel]
		if !ok {
			add(path, v, "is not a host_configuration setting", "see host_configuration in the README for the keys")
			return
		}
		if !hasKind(v, kind) {
			add(path, v, "is not "+map[string]string{"bool": "true or false", "text": "text", "number": "a whole number"}[kind], "fix the value, or leave the key out")
		}
	})
}

// validateHostChanges checks what a cluster that lets hpcvm change the host
// asks of it: settings hpcvm cannot honour are refused rather than
// ignored.
func validateHostChanges(s Spec, add func(path string, value any, problem, want string)) {
	hc := s.HostConfiguration
	if v, ok := hostSetting(hc, "network.cross_cluster_routing.permanent_changes").(bool); ok && v {
		add("host_configuration.network.cross_cluster_routing.permanent_changes", v,
			"would make hpcvm write the host's boot configuration (/etc/sysctl.d, saved firewall rules), which it does not do: its changes last until reboot or destroy",
			"leave it false; to keep forwarding across reboots: echo 'net.ipv4.ip_forward=1' | sudo tee /etc/sysctl.d/90-hpcvm.conf")
	}
	// Directories hpcvm writes into as root: clean, as the other host
	// paths (checkHostPath), so that the worker's root check and the
	// kernel see the same path.
	checkDirSetting(hc, "network.service_discovery.config_dir", "give the registry agent's configuration directory, e.g. "+DefaultDiscoveryDir, add)
	checkDirSetting(hc, "network.dnsmasq_config_path", "give the host dnsmasq's drop-in directory (its conf-dir), e.g. "+DefaultResolverDir, add)
	if v, ok := hostSetting(hc, "network.dnsmasq_address").(string); ok {
		if a, err := netip.ParseAddr(v); err != nil || !a.Is4() {
			add("host_configuration.network.dnsmasq_address", v, "is not an IPv4 address", "give the address the host's dnsmasq listens on, e.g. "+DefaultResolverAddress)
		}
	}
	if !HostChangesOf(s).Any() {
		return
	}
	if v, ok := hostSetting(hc, "network.cross_cluster_routing.add_iptables_rules").(bool); ok && !v && HostChangesOf(s).Routing {
		add("host_configuration.network.cross_cluster_routing.add_iptables_rules", v,
			"forbids the firewall rules that routing between clusters is made of",
			"leave it true (the default), or set enable_cross_cluster_routing false and make the rules by hand (the routed warning lists them)")
	}
	if v, ok := hostSetting(hc, "security.validate_changes").(bool); ok && !v {
		add("host_configuration.security.validate_changes", v,
			"cannot be turned off: hpcvm checks every rule after adding it, and a start that cannot account for its changes fails",
			"leave it out or true")
	}
	if v, ok := hostSetting(hc, "enable_audit_logging").(bool); ok && !v {
		add("host_configuration.enable_audit_logging", v,
			"cannot be turned off: the audit log is how a destroy knows which host changes hpcvm made and may undo",
			"leave it out or true")
	}
	if s.Network.Forward == ForwardNone && HostChangesOf(s).Routing {
		add("network.forward", s.Network.Forward,
			"gives the guests no route off their bridge, so dns_mode routed could not reach the other clusters",
			`use "nat" (the default) with dns_mode routed`)
	}
}

// checkDirSetting checks a host_configuration directory hpcvm writes into
// as root: absolute and clean, as the other host paths (checkHostPath).
func checkDirSetting(hc map[string]any, rel, want string, add func(path string, value any, problem, want string)) {
	v, ok := hostSetting(hc, rel).(string)
	if !ok {
		return
	}
	path := "host_configuration." + rel
	if !filepath.IsAbs(v) {
		add(path, v, "is not an absolute directory", want)
		return
	}
	checkHostPath(path, v, want, add)
}

// hostSetting is host_configuration's value at a dotted path, nil if unset.
func hostSetting(hc map[string]any, rel string) any {
	var found any
	walkHostConfiguration(hc, func(r string, v any) {
		if r == rel {
			found = v
		}
	})
	return found
}

func hostFlag(hc map[string]any, rel string, def bool) bool {
	if v, ok := hostSetting(hc, rel).(bool); ok {
		return v
	}
	return def
}

// HostChangesPlan is what hpcvm changes on the host for a cluster, and how,
// as host_configuration allows.
type HostChangesPlan struct {
	// Routing joins the cluster to the host's routed clusters: forwarding
	// and firewall rules between their bridges (dns_mode routed, allowed
	// by network.enable_cross_cluster_routing).
	Routing bool `json:"routing,omitempty"`
	// EnableIPForwarding lets hpcvm turn IP forwarding on if it is off.
	EnableIPForwarding bool `json:"enable_ip_forwarding,omitempty"`
	// Confirm: a person must say yes before the run (require_confirmation,
	// default true, unless skip_confirmation).
	Confirm bool `json:"confirm,omitempty"`
	// KeepOnFailure: a failed start leaves its host changes in place
	// (rollback_on_failure: false).
	KeepOnFailure bool `json:"keep_on_failure,omitempty"`
	// RequireRoot: the worker must run as root (security.require_root_access).
	RequireRoot bool `json:"require_root,omitempty"`
	// Discovery writes the cluster's registry file into DiscoveryDir
	// (dns_mode service_discovery, allowed by enable_service_discovery).
	Discovery    bool   `json:"discovery,omitempty"`
	DiscoveryDir string `json:"discovery_dir,omitempty"`
	// Resolver writes the host dnsmasq's entry for the cluster's domain
	// into ResolverDir, and the cluster's network sends *.local to the
	// host's dnsmasq at ResolverAddress (dns_mode shared_dns or routed,
	// allowed by enable_host_dns_integration).
	Resolver        bool   `json:"resolver,omitempty"`
	ResolverDir     string `json:"resolver_dir,omitempty"`
	ResolverAddress string `json:"resolver_address,omitempty"`
}

// ApplyTo sets what the host changes change in the cluster's own objects:
// the network of a cluster whose names the host's resolver knows sends
// *.local there.
func (h HostChangesPlan) ApplyTo(p *Plan) {
	p.Network.HostResolver = ""
	if h.Resolver {
		p.Network.HostResolver = h.ResolverAddress
	}
}

// Any says the cluster changes the host.
func (h HostChangesPlan) Any() bool { return h.Routing || h.Discovery || h.Resolver }

// resolverModes are the dns_modes whose names other clusters resolve
// through the host's resolver, when allowed.
func resolverMode(mode string) bool { return mode == "shared_dns" || mode == "routed" }

// HostChangesOf reads what host_configuration lets hpcvm change for a
// validated spec.
func HostChangesOf(s Spec) HostChangesPlan {
	hc := s.HostConfiguration
	var h HostChangesPlan
	h.Routing = s.Network.DNSMode == "routed" && hostFlag(hc, routingSwitch, false)
	h.Discovery = s.Network.DNSMode == "service_discovery" && hostFlag(hc, discoverySwitch, false)
	h.Resolver = resolverMode(s.Network.DNSMode) && hostFlag(hc, resolverSwitch, false)
	if !h.Any() {
		return h
	}
	if h.Resolver {
		h.ResolverDir, h.ResolverAddress = DefaultResolverDir, DefaultResolverAddress
		if v, ok := hostSetting(hc, "network.dnsmasq_config_path").(string); ok && v != "" {
			h.ResolverDir = filepath.Clean(v)
		}
		if v, ok := hostSetting(hc, "network.dnsmasq_address").(string); ok && v != "" {
			h.ResolverAddress = v
		}
	}
	if h.Discovery {
		h.DiscoveryDir = DefaultDiscoveryDir
		if v, ok := hostSetting(hc, "network.service_discovery.config_dir").(string); ok && v != "" {
			h.DiscoveryDir = filepath.Clean(v)
		}
	}
	if h.Routing {
		h.EnableIPForwarding = hostFlag(hc, "network.cross_cluster_routing.enable_ip_forwarding", true)
	}
	confirm := hostFlag(hc, "network.require_confirmation", hostFlag(hc, "require_confirmation", true))
	h.Confirm = confirm && !hostFlag(hc, "skip_confirmation", false)
	h.KeepOnFailure = !hostFlag(hc, "rollback_on_failure", true)
	h.RequireRoot = hostFlag(hc, "security.require_root_access", true)
	return h
}

// actedOn says whether a setting of how host changes are made changes
// something, given the changes the cluster makes.
func actedOn(h HostChangesPlan, rel string) bool {
	switch rel {
	case "require_confirmation", "network.require_confirmation", "skip_confirmation", "enable_audit_logging", "rollback_on_failure",
		"security.require_root_access", "security.validate_changes":
		return h.Any()
	case "network.cross_cluster_routing.enable_ip_forwarding", "network.cross_cluster_routing.add_iptables_rules", "network.cross_cluster_routing.permanent_changes":
		return h.Routing
	case "network.service_discovery.config_dir":
		return h.Discovery
	case "network.dnsmasq_config_path", "network.dnsmasq_address":
		return h.Resolver
	}
	return false
}

// HostChangeSummary says, a line each, what a start of the cluster will
// change on its host: what an operator confirms.
func HostChangeSummary(p Plan, h HostChangesPlan) []string {
	if !h.Any() {
		return nil
	}
	out := []string{}
	if h.Routing && h.EnableIPForwarding {
		out = append(out, "turn IP forwarding on (sysctl net.ipv4.ip_forward=1) if it is off")
	}
	if h.Routing {
		out = append(out, fmt.Sprintf("add iptables rules (filter FORWARD, nat POSTROUTING, chains HPCVM_ROUTED and HPCVM_ROUTED_TO) letting bridge %s (%s) and the other routed clusters' bridges reach each other, unmasqueraded", p.Network.Bridge, p.Network.Range))
	}
	if h.Discovery {
		out = append(out, fmt.Sprintf("write the names and addresses of its %d VM(s) to %s (a Consul service definition; `consul reload` loads it)", len(p.VMs), filepath.Join(h.DiscoveryDir, "hpcvm-"+p.Cluster+".json")))
	}
	if h.Resolver {
		out = append(out, fmt.Sprintf("write %s (dnsmasq: the queries for %s go to the cluster's network at %s) and restart the host's dnsmasq (the worker's --resolver-reload); the network forwards *.local to the host's dnsmasq at %s",
			filepath.Join(h.ResolverDir, "hpcvm-"+p.Cluster+".conf"), p.Network.DomainName, p.Network.Gateway, h.ResolverAddress))
	}
	return append(out, "record each change in the host's audit log (hpcvm audit); hpcvm destroy undoes them")
}

func isHostSection(rel string) bool {
	switch rel {
	case "network", "network.cross_cluster_routing", "network.service_discovery", "system", "system.performance", "security":
		return true
	}
	return false
}

func hasKind(v any, kind string) bool {
	switch kind {
	case "bool":
		_, ok := v.(bool)
		return ok
	case "text":
		_, ok := v.(string)
		return ok
	case "number":
		// YAML gives int; the spec a worker receives went through JSON,
		// which gives float64.
		switch n := v.(type) {
		case int, int64, uint64:
			return true
		case float64:
			return n == float64(int64(n))
		}
	}
	return false
}

// hostSettingsNote is the warning for host_configuration keys that say how
// a host change would be made, when they change nothing: every change is
// off, or the change they tune is not one hpcvm makes.
func hostSettingsNote(s Spec) string {
	h := HostChangesOf(s)
	var given []string
	walkHostConfiguration(s.HostConfiguration, func(rel string, _ any) {
		if _, ok := hostSettingKinds[rel]; ok && !actedOn(h, rel) {
			given = append(given, rel)
		}
	})
	if len(given) == 0 {
		return ""
	}
	if h.Any() {
		return "host_configuration: hpcvm makes only the host change this cluster's dns_mode asks for, so " + strings.Join(given, ", ") + " change nothing"
	}
	return "host_configuration: every host change is off, so " + strings.Join(given, ", ") + " change nothing"
}

// routingAllowedUnused is the warning of a cluster that allows routing
// without asking for it.
func routingAllowedUnused(s Spec) string {
	var out []string
	if hostFlag(s.HostConfiguration, routingSwitch, false) && s.Network.DNSMode != "routed" {
		out = append(out, fmt.Sprintf("host_configuration.network.enable_cross_cluster_routing is true but network.dns_mode is %q: hpcvm makes no routing on the host (use dns_mode routed to join the routed clusters)", s.Network.DNSMode))
	}
	if hostFlag(s.HostConfiguration, resolverSwitch, false) && !resolverMode(s.Network.DNSMode) {
		out = append(out, fmt.Sprintf("host_configuration.network.enable_host_dns_integration is true but network.dns_mode is %q: hpcvm teaches the host's resolver nothing (use dns_mode shared_dns or routed)", s.Network.DNSMode))
	}
	if hostFlag(s.HostConfiguration, discoverySwitch, false) && s.Network.DNSMode != "service_discovery" {
		out = append(out, fmt.Sprintf("host_configuration.network.enable_service_discovery is true but network.dns_mode is %q: hpcvm writes no service discovery record (use dns_mode service_discovery)", s.Network.DNSMode))
	}
	return strings.Join(out, "\n")
}

// dnsModeFallback is the warning of a dns_mode that needs host changes,
// which are off: what the mode would need, the exact steps to make it by
// hand, and that the cluster runs isolated meanwhile. "" for isolated.
func dnsModeFallback(s Spec) string {
	n := s.Network
	name := s.Cluster.Name
	bridge := BridgeName(name, n.BridgeName)
	domain := name + ".local"
	var b strings.Builder
	switch n.DNSMode {
	case "shared_dns":
		if HostChangesOf(s).Resolver {
			return ""
		}
		fmt.Fprintf(&b, "Shared DNS requested for %s but host changes are disabled; the cluster runs isolated: its names (%s) resolve inside it only.\n", name, domain)
		b.WriteString("To let hpcvm teach the host's dnsmasq the cluster's names (and take them back at destroy), add to your configuration:\nhost_configuration:\n  network:\n    enable_host_dns_integration: true\n    dnsmasq_config_path: \"/etc/dnsmasq.d\"\n    require_confirmation: true\n\n")
		fmt.Fprintf(&b, "Manual steps required (after `hpcvm start`; undo them before `hpcvm destroy`):\n")
		fmt.Fprintf(&b, "1. Create dnsmasq config: echo 'server=/%s/%s' | sudo tee /etc/dnsmasq.d/hpcvm-%s.conf\n", domain, n.GatewayIP, name)
		fmt.Fprintf(&b, "   (with systemd-resolved instead: resolvectl dns %s %s && resolvectl domain %s '~%s')\n", bridge, n.GatewayIP, bridge, domain)
		b.WriteString("2. Restart dnsmasq service: sudo systemctl restart dnsmasq\n")
		b.WriteString("Other clusters' guests resolve these names only through their networks' DNS forwarders, which hpcvm sets when a network is created (with enable_host_dns_integration) and does not change afterwards")
	case "routed":
		if HostChangesOf(s).Routing {
			return ""
		}
		fmt.Fprintf(&b, "Cross-cluster routing requested for %s but host changes are disabled; the cluster runs isolated: other clusters cannot reach it.\n", name)
		b.WriteString("To let hpcvm make it (and undo it at destroy), add to your configuration:\nhost_configuration:\n  network:\n    enable_cross_cluster_routing: true\n    require_confirmation: true\n\n")
		fmt.Fprintf(&b, "Manual steps required:\n1. Enable IP forwarding: sudo sysctl -w net.ipv4.ip_forward=1\n")
		fmt.Fprintf(&b, "2. Let bridge %s (network %s) and each other routed cluster's bridge BR through libvirt's rules: sudo iptables -I FORWARD -i %s -o BR -j ACCEPT && sudo iptables -I FORWARD -i BR -o %s -j ACCEPT\n", bridge, n.NetworkRange, bridge, bridge)
		fmt.Fprintf(&b, "3. Make IP forwarding permanent: echo 'net.ipv4.ip_forward=1' | sudo tee -a /etc/sysctl.conf")
	case "service_discovery":
		if HostChangesOf(s).Discovery {
			return ""
		}
		fmt.Fprintf(&b, "Service discovery requested for %s but host changes are disabled; the cluster runs isolated, registered nowhere.\n", name)
		b.WriteString("To let hpcvm write the cluster's names and addresses for the registry (and remove them at destroy), add to your configuration:\nhost_configuration:\n  network:\n    enable_service_discovery: true\n    service_discovery: {config_dir: /etc/consul.d}\n\n")
		fmt.Fprintf(&b, "Manual steps required:\n1. Install and configure Consul/etcd service discovery\n")
		fmt.Fprintf(&b, "2. Register the cluster's nodes with it: `hpcvm inventory -c FILE -o yaml` lists each node's name and address (domain %s)\n", domain)
		fmt.Fprintf(&b, "3. Update DNS to point to the service discovery service: set network.dns_servers to its address")
	default:
		return ""
	}
	return b.String()
}
