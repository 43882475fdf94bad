package configdrive

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"xcatbm/messages"
)

// Network is an instance's network as the drive tells it: network_data.json (nova's
// virt/netutils get_network_metadata) and the addresses ec2's meta-data lists. Build
// it with NetworkFromVIFs; the zero value and nil are "no network" ({} in
// network_data.json, local-ipv4 null in ec2).
type Network struct {
	data        object // nil: no network
	fixedIPv4   []string
	floatingIPs []string
}

// legacyExposedVIFTypes are the VIF types nova names in network_data.json's links;
// every other type is "phy" (nova.network.model.LEGACY_EXPOSED_VIF_TYPES).
var legacyExposedVIFTypes = []string{"bridge", "dvs", "hw_veb", "hyperv", "ovs", "tap", "vhostuser", "vif"}

// NetworkFromVIFs lays out network_data.json from nova's network_info model (the
// instance's info_cache, or VIFs built with VIFFromPort) as nova does: per VIF with
// subnets, one link (the VIF's devname or "interface<N>", its MAC, the network's MTU
// unless a subnet has a DHCP server, type "phy" unless a legacy VIF type), and one
// network for the first IPv4 and the first IPv6 subnet that have an address (static,
// with the default route, the subnet's host routes and DNS; "ipv4_dhcp" when Neutron
// serves DHCP on it; "ipv6_<mode>" for an IPv6 address mode); DNS servers also once
// each under services. No VIFs is no network. A CIDR, address or gateway that does
// not parse is an error (nova would fail there too).
func NetworkFromVIFs(vifs []messages.VIF) (*Network, error) {
	n := &Network{}
	if len(vifs) == 0 {
		return n, nil
	}
	links, nets, services := []any{}, []any{}, []any{}
	seenDNS := map[string]bool{}
	addDNS := func(sn *messages.Subnet) {
		for _, d := range sn.DNS {
			if !seenDNS[d.Address] {
				seenDNS[d.Address] = true
				services = append(services, dnsService(d))
			}
		}
	}
	ifc, netNum := -1, -1
	for vi, vif := range vifs {
		for _, sn := range vif.Network.Subnets {
			for _, ip := range sn.IPs {
				if ip.Version == 4 {
					n.fixedIPv4 = append(n.fixedIPv4, ip.Address)
				}
				for _, f := range ip.FloatingIPs {
					n.floatingIPs = append(n.floatingIPs, f.Address)
				}
			}
		}
		if len(vif.Network.Subnets) == 0 {
			continue
		}
		v4, v6 := firstSubnet(vif.Network.Subnets, 4), firstSubnet(vif.Network.Subnets, 6)
		ifc++
		if v4 == nil && v6 == nil {
			continue
		}
		link := object{}
		linkID := vif.DevName
		if linkID == "" {
			linkID = fmt.Sprintf("interface%d", ifc)
		}
		nicType := "phy"
		if slices.Contains(legacyExposedVIFTypes, vif.Type) {
			nicType = vif.Type
		}
		link.add("id", linkID)
		link.add("vif_id", vif.ID)
		link.add("type", nicType)
		link.add("mtu", linkMTU(vif))
		link.add("ethernet_mac_address", nullable(vif.Address))
		links = append(links, link)
		for _, s := range []struct {
			sn      *messages.Subnet
			version int
		}{{v4, 4}, {v6, 6}} {
			if s.sn == nil || len(s.sn.IPs) == 0 {
				continue
			}
			netNum++
			nw, err := networkEntry(vif, s.sn, s.version, netNum, linkID)
			if err != nil {
				return nil, fmt.Errorf("configdrive: network_info VIF %d (%s): %w", vi, vif.ID, err)
			}
			nets = append(nets, nw)
			addDNS(s.sn)
		}
	}
	n.data = object{{"links", links}, {"networks", nets}, {"services", services}}
	return n, nil
}

func firstSubnet(subnets []messages.Subnet, version int) *messages.Subnet {
	for i := range subnets {
		if subnets[i].Version == version {
			return &subnets[i]
		}
	}
	return nil
}

// linkMTU is the network's MTU, or nil when a subnet has a DHCP server (nova leaves
// the MTU to DHCP then) or the network has none.
func linkMTU(vif messages.VIF) any {
	for _, sn := range vif.Network.Subnets {
		if truthy(sn.Meta["dhcp_server"]) {
			return nil
		}
	}
	return jsonNumber(vif.Network.Meta["mtu"])
}

// truthy is Python's truth value of a JSON-decoded value.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case float64:
		return x != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// jsonNumber turns a JSON-decoded number into what pyJSON writes: an integral
// float64 as an integer (nova's MTU is an int); nil stays nil.
func jsonNumber(v any) any {
	switch x := v.(type) {
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
		return nil
	case string:
		return x
	}
	return nil
}

// dnsService is a DNS server as a network_data.json service.
func dnsService(d messages.IPAddress) object {
	return object{{"type", "dns"}, {"address", nullable(d.Address)}}
}

// networkEntry is one entry of network_data.json's networks.
func networkEntry(vif messages.VIF, sn *messages.Subnet, version, netNum int, linkID string) (object, error) {
	id := fmt.Sprintf("network%d", netNum)
	netType := ""
	if mode, ok := sn.Meta["ipv6_address_mode"]; ok && mode != nil {
		netType = fmt.Sprintf("_%v", mode)
	} else if dhcp, ok := sn.Meta["dhcp_server"]; ok && dhcp != nil {
		return object{{"id", id}, {"type", fmt.Sprintf("ipv%d_dhcp", version)}, {"link", linkID}, {"network_id", nullable(vif.Network.ID)}}, nil
	}
	_, cidr, err := net.ParseCIDR(sn.CIDR)
	if err != nil {
		return nil, fmt.Errorf("subnet CIDR %q: %w", sn.CIDR, err)
	}
	routes := []any{}
	if gw := sn.Gateway.Address; gw != "" {
		def := "0.0.0.0"
		if version == 6 {
			def = "::"
		}
		routes = append(routes, object{{"network", def}, {"netmask", def}, {"gateway", gw}})
	}
	for _, r := range sn.Routes {
		_, rnet, err := net.ParseCIDR(r.CIDR)
		if err != nil {
			return nil, fmt.Errorf("route CIDR %q: %w", r.CIDR, err)
		}
		routes = append(routes, object{{"network", rnet.IP.String()}, {"netmask", maskString(rnet.Mask)}, {"gateway", nullable(r.Gateway.Address)}})
	}
	dns := []any{}
	for _, d := range sn.DNS {
		dns = append(dns, dnsService(d))
	}
	nw := object{
		{"id", id},
		{"type", fmt.Sprintf("ipv%d%s", version, netType)},
		{"link", linkID},
		{"ip_address", nullable(sn.IPs[0].Address)},
		{"netmask", maskString(cidr.Mask)},
		{"routes", routes},
		{"network_id", nullable(vif.Network.ID)},
		{"services", dns},
	}
	return nw, nil
}

// maskString writes a netmask as netaddr does: dotted for IPv4, an IPv6 address
// for IPv6.
func maskString(m net.IPMask) string {
	if len(m) == net.IPv4len {
		return net.IP(m).String()
	}
	return net.IP(m).To16().String()
}

// JSON returns network_data.json's content.
func (n *Network) JSON() []byte {
	if n == nil || n.data == nil {
		return []byte("{}")
	}
	b, err := pyJSON(n.data)
	if err != nil {
		// The tree holds only the types pyJSON encodes.
		return []byte("{}")
	}
	return b
}

// Port is a Neutron port with what nova reads of its network and subnets to build
// the instance's network_info (nova's network/neutron _build_network_info_model),
// for addresses that come from Neutron rather than from the cast.
type Port struct {
	ID        string // the port's id
	MAC       string // mac_address
	NetworkID string
	Label     string // the network's name
	MTU       int    // the network's mtu; 0 when unknown
	VIFType   string // binding:vif_type; "" or any non-legacy type is "phy"
	DevName   string // "" for interface<N>
	// FixedIPs are the port's fixed_ips: an address on one of Subnets.
	FixedIPs []PortIP
	Subnets  []PortSubnet
}

// PortIP is one fixed IP of a port.
type PortIP struct {
	SubnetID string
	Address  string
}

// PortSubnet is a subnet of a port.
type PortSubnet struct {
	ID              string
	CIDR            string
	GatewayIP       string // "" for none
	DNSNameservers  []string
	HostRoutes      []HostRoute
	IPv6AddressMode string // "" for none
	// DHCPServer is the address of Neutron's DHCP port on the subnet (a port with
	// device_owner network:dhcp), "" for none: the guest is then told to use DHCP.
	DHCPServer string
}

// HostRoute is a subnet's host route.
type HostRoute struct {
	Destination string // CIDR
	NextHop     string
}

// VIFFromPort builds the network_info VIF nova would build for p. Subnets without
// an address of the port are left out, as nova leaves them out.
func VIFFromPort(p Port) (messages.VIF, error) {
	vif := messages.VIF{ID: p.ID, Address: p.MAC, DevName: p.DevName, Type: p.VIFType, Active: true,
		Network: messages.VIFNetwork{ID: p.NetworkID, Label: p.Label, Meta: map[string]any{}}}
	if p.MTU > 0 {
		vif.Network.Meta["mtu"] = float64(p.MTU)
	}
	if p.ID == "" {
		return vif, errors.New("configdrive: port without id")
	}
	for _, ps := range p.Subnets {
		_, cidr, err := net.ParseCIDR(ps.CIDR)
		if err != nil {
			return vif, fmt.Errorf("configdrive: port %s: subnet %s: CIDR %q: %w", p.ID, ps.ID, ps.CIDR, err)
		}
		version := 4
		if cidr.IP.To4() == nil {
			version = 6
		}
		sn := messages.Subnet{CIDR: ps.CIDR, Version: version, Meta: map[string]any{}}
		if ps.GatewayIP != "" {
			sn.Gateway = messages.IPAddress{Address: ps.GatewayIP, Type: "gateway", Version: version}
		}
		if ps.IPv6AddressMode != "" {
			sn.Meta["ipv6_address_mode"] = ps.IPv6AddressMode
		}
		if ps.DHCPServer != "" {
			sn.Meta["dhcp_server"] = ps.DHCPServer
		}
		for _, d := range ps.DNSNameservers {
			sn.DNS = append(sn.DNS, messages.IPAddress{Address: d, Type: "dns", Version: ipVersion(d)})
		}
		for _, r := range ps.HostRoutes {
			sn.Routes = append(sn.Routes, messages.Route{CIDR: r.Destination,
				Gateway: messages.IPAddress{Address: r.NextHop, Type: "gateway", Version: ipVersion(r.NextHop)}})
		}
		for _, ip := range p.FixedIPs {
			if ip.SubnetID != ps.ID {
				continue
			}
			a := net.ParseIP(ip.Address)
			if a == nil || !cidr.Contains(a) {
				return vif, fmt.Errorf("configdrive: port %s: address %q is not on subnet %s (%s)", p.ID, ip.Address, ps.ID, ps.CIDR)
			}
			sn.IPs = append(sn.IPs, messages.FixedIP{IPAddress: messages.IPAddress{Address: ip.Address, Type: "fixed", Version: version}})
		}
		if len(sn.IPs) > 0 {
			vif.Network.Subnets = append(vif.Network.Subnets, sn)
		}
	}
	return vif, nil
}

func ipVersion(s string) int {
	if ip := net.ParseIP(s); ip != nil && ip.To4() == nil {
		return 6
	}
	return 4
}
