package worker

import (
	"errors"
	"strings"
	"testing"

	"xcatbm/messages"
)

func TestChecks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		ok   bool
	}{
		{"uuid", checkUUID("0f4a9c1e-5b2d-4c8e-9a7f-1e2d3c4b5a69"), true},
		{"uuid upper case", checkUUID("0F4A9C1E-5B2D-4C8E-9A7F-1E2D3C4B5A69"), true},
		{"uuid without dashes", checkUUID("0f4a9c1e5b2d4c8e9a7f1e2d3c4b5a69"), false},
		{"uuid with a g", checkUUID("0f4a9c1e-5b2d-4c8e-9a7f-1e2d3c4b5a6g"), false},
		{"uuid dash moved", checkUUID("0f4a9c1e5-b2d-4c8e-9a7f-1e2d3c4b5a69"), false},
		{"hostname", checkHostname("web-01"), true},
		{"fqdn", checkHostname("web-01.example.org"), true},
		{"hostname 63", checkHostname(strings.Repeat("a", 63)), true},
		{"hostname 64", checkHostname(strings.Repeat("a", 64)), false},
		{"hostname 254", checkHostname(strings.Repeat("a.", 126) + "ab"), false},
		{"leading dash", checkHostname("-web"), false},
		{"trailing dash", checkHostname("web-"), false},
		{"empty label", checkHostname("web..org"), false},
		{"underscore", checkHostname("web_01"), false},
		{"comma", checkHostname("a,b"), false},
		{"dollar", checkHostname("a$(id)"), false},
		{"ip", checkIPv4("ip", "192.0.2.1", false), true},
		{"ip v6", checkIPv4("ip", "2001:db8::1", false), false},
		{"ip v4-mapped v6", checkIPv4("ip", "::ffff:192.0.2.1", false), false},
		{"ip suffix", checkIPv4("ip", "192.0.2.1x", false), false},
		{"mask", checkIPv4("mask", "255.255.255.0", true), true},
		{"mask not contiguous", checkIPv4("mask", "255.0.255.0", true), false},
		{"mask zero", checkIPv4("mask", "0.0.0.0", true), false},
	}
	for _, tc := range cases {
		if (tc.err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, tc.err, tc.ok)
		}
		if tc.err != nil && !errors.Is(tc.err, ErrBadInput) {
			t.Errorf("%s: %v is not ErrBadInput", tc.name, tc.err)
		}
	}
}

func TestTenantAddress(t *testing.T) {
	t.Parallel()
	vif := func(cidr string, ips ...string) messages.VIF {
		sn := messages.Subnet{CIDR: cidr}
		for _, ip := range ips {
			sn.IPs = append(sn.IPs, messages.FixedIP{IPAddress: messages.IPAddress{Address: ip}})
		}
		return messages.VIF{ID: "p1", Address: "aa:bb:cc:dd:ee:ff", Network: messages.VIFNetwork{Subnets: []messages.Subnet{sn}}}
	}
	cases := []struct {
		name              string
		vifs              []messages.VIF
		nets              []messages.NetworkRequest
		ip, mask, wantErr string
	}{
		{name: "first v4 of the network info", vifs: []messages.VIF{vif("2001:db8::/64", "2001:db8::5"), vif("10.1.0.0/16", "10.1.2.3", "10.1.2.4")}, ip: "10.1.2.3", mask: "255.255.0.0"},
		{name: "requested address", nets: []messages.NetworkRequest{{Address: "10.9.9.9"}}, ip: "10.9.9.9"},
		{name: "no address", ip: ""},
		{name: "bad fixed IP after a good one", vifs: []messages.VIF{vif("10.1.0.0/16", "10.1.2.3", "10.1.2.x")}, wantErr: `fixed IP "10.1.2.x"`},
		{name: "bad CIDR", vifs: []messages.VIF{vif("10.1.0.0/99", "10.1.2.3")}, wantErr: `subnet "10.1.0.0/99"`},
		{name: "bad requested address", nets: []messages.NetworkRequest{{Address: "10.9.9.9;x"}}, wantErr: `requested address "10.9.9.9;x"`},
	}
	for _, tc := range cases {
		ip, mask, _, err := tenantAddress(&messages.Instance{NetworkInfo: tc.vifs}, tc.nets)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || ip != tc.ip || mask != tc.mask):
			t.Errorf("%s: = %q %q %v, want %q %q", tc.name, ip, mask, err, tc.ip, tc.mask)
		}
	}
}
