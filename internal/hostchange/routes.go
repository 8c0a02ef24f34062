package hostchange

import (
	"context"
	"strings"
)

// Route is one IPv4 route of the hypervisor's network namespace: a subnet
// something on the host reaches through a device (a LAN, a VPN, a
// container bridge).
type Route struct {
	Subnet string // CIDR
	Device string
}

// Routes lists the IPv4 routes of the main table of the namespace the
// hypervisor's bridges live in (the worker's own without --netns); the
// default route is left out. Without the ip tool it lists none.
func (h *Host) Routes(ctx context.Context) ([]Route, error) {
	if !h.hasTool("ip") {
		return nil, nil
	}
	out, err := h.output(ctx, "ip", "-4", "-o", "route", "show")
	if err != nil {
		return nil, err
	}
	var routes []Route
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "default" || f[0] == "unreachable" || f[0] == "blackhole" || f[0] == "prohibit" {
			continue
		}
		subnet := f[0]
		if !strings.Contains(subnet, "/") {
			subnet += "/32"
		}
		routes = append(routes, Route{Subnet: subnet, Device: valueOf(f, "dev")})
	}
	return routes, nil
}
