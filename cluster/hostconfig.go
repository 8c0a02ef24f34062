package cluster

import (
	"fmt"
	"sort"
	"strings"
)

// The plan's host_configuration says which changes outside libvirt's own
// objects (sysctl, firewall rules beyond libvirt's, the host's resolver,
// hugepage and module setup) hpcvm may make. Every one is off by default,
// and hpcvm makes none of them yet: a key that keeps a change off is
// accepted (it says what hpcvm does anyway), a key that turns one on is
// refused with what to do by hand, so no setting is accepted and then
// silently not acted on.

// hostSwitch is a host_configuration key that would let hpcvm change the
// host: accepted as false, refused as true.
type hostSwitch struct {
	what string // the change it allows
}

var hostSwitches = map[string]hostSwitch{
	"network.enable_host_dns_integration":  {"the host's resolver (dnsmasq or systemd-resolved) learning the cluster's names"},
	"network.enable_cross_cluster_routing": {"IP forwarding and firewall rules between the clusters' bridges"},
	"network.enable_service_discovery":     {"a service discovery agent (Consul, etcd) set up on the host"},
	"system.enable_hugepage_config":        {"hugepages reserved on the host"},
	"system.enable_numa_config":            {"the host's NUMA tuning"},
	"system.enable_kernel_module_config":   {"kernel modules loaded on the host"},
	"development_mode":                     {"every host change at once"},
	"allow_destructive_changes":            {"host changes that cannot be undone"},
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
// keys: unknown keys, wrong kinds and switched-on changes are refused.
func validateHostConfiguration(hc map[string]any, add func(path string, value any, problem, want string)) {
	walkHostConfiguration(hc, func(rel string, v any) {
		path := "host_configuration." + rel
		if sw, ok := hostSwitches[rel]; ok {
			on, isBool := v.(bool)
			switch {
			case !isBool:
				add(path, v, "is not true or false", "give false (hpcvm's default), or leave the key out")
			case on:
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
// a host change would be made: with every change off they change nothing.
func hostSettingsNote(hc map[string]any) string {
	var given []string
	walkHostConfiguration(hc, func(rel string, _ any) {
		if _, ok := hostSettingKinds[rel]; ok {
			given = append(given, rel)
		}
	})
	if len(given) == 0 {
		return ""
	}
	return "host_configuration: every host change is off (hpcvm makes none yet), so " + strings.Join(given, ", ") + " change nothing"
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
		fmt.Fprintf(&b, "Shared DNS requested for %s but host changes are disabled; the cluster runs isolated: its names (%s) resolve inside it only.\n", name, domain)
		b.WriteString("hpcvm would make it with host_configuration.network.enable_host_dns_integration: true, which it does not support yet (the key is refused).\n\n")
		fmt.Fprintf(&b, "Manual steps required (after `hpcvm start`; undo them before `hpcvm destroy`):\n")
		fmt.Fprintf(&b, "1. With systemd-resolved: resolvectl dns %s %s && resolvectl domain %s '~%s'\n", bridge, n.GatewayIP, bridge, domain)
		fmt.Fprintf(&b, "   With dnsmasq: echo 'server=/%s/%s' | sudo tee /etc/dnsmasq.d/hpcvm-%s.conf && sudo systemctl restart dnsmasq\n", domain, n.GatewayIP, name)
		fmt.Fprintf(&b, "2. For other shared_dns clusters to resolve these names: virsh net-edit <their network> and add <forwarder domain='%s' addr='%s'/> to its <dns>, then restart that network", domain, n.GatewayIP)
	case "routed":
		fmt.Fprintf(&b, "Cross-cluster routing requested for %s but host changes are disabled; the cluster runs isolated: other clusters cannot reach it.\n", name)
		b.WriteString("hpcvm would make it with host_configuration.network.enable_cross_cluster_routing: true, which it does not support yet (the key is refused).\n\n")
		fmt.Fprintf(&b, "Manual steps required:\n1. Enable IP forwarding: sudo sysctl -w net.ipv4.ip_forward=1\n")
		fmt.Fprintf(&b, "2. Let bridge %s (network %s) and each other routed cluster's bridge BR through libvirt's rules: sudo iptables -I FORWARD -i %s -o BR -j ACCEPT && sudo iptables -I FORWARD -i BR -o %s -j ACCEPT\n", bridge, n.NetworkRange, bridge, bridge)
		fmt.Fprintf(&b, "3. Make IP forwarding permanent: echo 'net.ipv4.ip_forward=1' | sudo tee -a /etc/sysctl.conf")
	case "service_discovery":
		fmt.Fprintf(&b, "Service discovery requested for %s but host changes are disabled; the cluster runs isolated, registered nowhere.\n", name)
		b.WriteString("hpcvm would make it with host_configuration.network.enable_service_discovery: true, which it does not support yet (the key is refused).\n\n")
		fmt.Fprintf(&b, "Manual steps required:\n1. Install and configure Consul/etcd service discovery\n")
		fmt.Fprintf(&b, "2. Register the cluster's nodes with it: `hpcvm inventory -c FILE -o yaml` lists each node's name and address (domain %s)\n", domain)
		fmt.Fprintf(&b, "3. Update DNS to point to the service discovery service: set network.dns_servers to its address")
	default:
		return ""
	}
	return b.String()
}
