package configdrive

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"

	"xcatbm/internal/config"
	"xcatbm/internal/testkit/testcloudinit"
	"xcatbm/messages"
)

// These tests hand what xcatbm lays out to the real cloud-init (Debian's package):
// its ConfigDrive datasource reads the drive from a seed directory, as it reads
// /var/lib/cloud/seed/config_drive on a node, and its convert_net_json turns
// network_data.json into the network configuration it would apply.

// readDrive reads the drive of the tree at loc with cloud-init.
func readDrive(t *testing.T, s *Store, loc Location, macs map[string]string) testcloudinit.View {
	t.Helper()
	return testcloudinit.Read(t, filepath.Join(s.Dir(), string(loc), DriveDir), macs)
}

// netConfig is the part of cloud-init's network configuration v1 the tests check.
type netConfig struct {
	Version int `json:"version"`
	Config  []struct {
		Type    string `json:"type"`
		Name    string `json:"name"`
		MAC     string `json:"mac_address"`
		MTU     *int   `json:"mtu"`
		Address string `json:"address"`
		Subnets []struct {
			Type    string `json:"type"`
			Address string `json:"address"`
			Netmask string `json:"netmask"`
			Routes  []struct {
				Network, Netmask, Gateway string
			} `json:"routes"`
		} `json:"subnets"`
	} `json:"config"`
}

func TestCloudInitReadsTheDrive(t *testing.T) {
	t.Parallel()
	testcloudinit.Python(t)
	builds := tenantBuilds(t)
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICympHXpUTGkr/k6ikER7ej/1JJ+qTG20PJzBuKUQpmZ mi-test\n"
	const script = "#!/bin/sh\necho hello-from-user-data > /tmp/ud-ran\n"
	s, err := OpenStore(t.TempDir(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	str := func(s string) *string { return &s }
	for _, c := range []struct {
		name     string
		instance *messages.Instance
		password config.Secret
		keys     []string
		userData *string
		fqdn     string
		pass     *string
		meta     map[string]any
		az       *string
	}{
		{"key, user data and admin password", builds[0].Instance, builds[0].AdminPassword, []string{key}, str(script), "s1.novalocal", str("VYGfyuvYu5tQ"), nil, str("nova")},
		{"no key, no user data", builds[1].Instance, config.Secret{}, []string{}, str(""), "s2.novalocal", nil, nil, str("nova")},
		{"metadata and network", editedInstance(t, builds[2].Instance), config.Secret{}, []string{key}, str("#!/bin/sh\necho hello-from-user-data\n"), "e2e-21725.novalocal", nil,
			map[string]any{"role": "web", "zeta": "1", "ümlaut": "ünïcode ☃ 𝄞 \"q\" \\ \n\t\x7f\x01"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, err := FromInstance(c.instance, c.password)
			if err != nil {
				t.Fatal(err)
			}
			nw, err := NetworkFromVIFs(c.instance.NetworkInfo)
			if err != nil {
				t.Fatal(err)
			}
			tree, err := Build(in, nw, Options{DHCPDomain: DefaultDHCPDomain})
			if err != nil {
				t.Fatal(err)
			}
			loc, err := s.Write(tree)
			if err != nil {
				t.Fatal(err)
			}
			v := readDrive(t, s, loc, map[string]string{"fa:16:3e:12:34:56": "eth0", "fa:16:3e:ab:cd:ef": "eth1"})
			if v.InstanceID != c.instance.UUID || v.FQDN != c.fqdn || v.LocalHostname != c.instance.Hostname {
				t.Errorf("instance %q fqdn %q hostname %q", v.InstanceID, v.FQDN, v.LocalHostname)
			}
			if !reflect.DeepEqual(v.PublicKeys, c.keys) {
				t.Errorf("public keys %q, want %q", v.PublicKeys, c.keys)
			}
			var ud *string
			if v.UserData != nil {
				ud = str(string(v.UserData))
			}
			if !reflect.DeepEqual(ud, c.userData) {
				t.Errorf("user data %v, want %v", deref(ud), deref(c.userData))
			}
			if !reflect.DeepEqual(v.AdminPass, c.pass) || !reflect.DeepEqual(v.AvailabilityZone, c.az) {
				t.Errorf("admin_pass set %v, availability zone %v", v.AdminPass != nil, deref(v.AvailabilityZone))
			}
			if !reflect.DeepEqual(v.Meta, c.meta) {
				t.Errorf("meta %v, want %v", v.Meta, c.meta)
			}
			if len(c.instance.NetworkInfo) == 0 {
				if string(v.NetworkConfig) != "null" {
					t.Errorf("network config without a network: %s", v.NetworkConfig)
				}
				return
			}
			var nc netConfig
			if err := json.Unmarshal(v.NetworkConfig, &nc); err != nil {
				t.Fatal(err)
			}
			if nc.Version != 1 || len(nc.Config) != 4 {
				t.Fatalf("network config %s", v.NetworkConfig)
			}
			eth0, eth1 := nc.Config[0], nc.Config[1]
			if eth0.Type != "physical" || eth0.Name != "eth0" || eth0.MAC != "fa:16:3e:12:34:56" || eth0.MTU == nil || *eth0.MTU != 9000 || len(eth0.Subnets) != 2 {
				t.Fatalf("eth0: %+v", eth0)
			}
			v4 := eth0.Subnets[0]
			if v4.Type != "static" || v4.Address != "10.20.30.40" || v4.Netmask != "255.255.255.0" || len(v4.Routes) != 2 ||
				v4.Routes[0].Gateway != "10.20.30.1" || v4.Routes[0].Network != "0.0.0.0" ||
				v4.Routes[1].Network != "172.16.0.0" || v4.Routes[1].Netmask != "255.240.0.0" || v4.Routes[1].Gateway != "10.20.30.254" {
				t.Errorf("eth0 IPv4: %+v", v4)
			}
			if eth0.Subnets[1].Type != "ipv6_dhcpv6-stateful" {
				t.Errorf("eth0 IPv6: %+v", eth0.Subnets[1])
			}
			if eth1.Name != "eth1" || eth1.MTU != nil || len(eth1.Subnets) != 1 || eth1.Subnets[0].Type != "dhcp4" {
				t.Errorf("eth1: %+v", eth1)
			}
			if nc.Config[2].Type != "nameserver" || nc.Config[2].Address != "10.20.0.53" || nc.Config[3].Address != "10.20.0.54" {
				t.Errorf("nameservers: %+v %+v", nc.Config[2], nc.Config[3])
			}
			if v.EC2LocalIPv4 == nil || *v.EC2LocalIPv4 != "10.20.30.40" {
				t.Errorf("ec2 local-ipv4 %v", deref(v.EC2LocalIPv4))
			}
		})
	}
}

// TestCloudInitReadsAPortAddress writes a drive without network, then the network
// of a Neutron port, as the worker does when the address comes from Neutron.
func TestCloudInitReadsAPortAddress(t *testing.T) {
	t.Parallel()
	testcloudinit.Python(t)
	a := tenantBuilds(t)[0]
	in, err := FromInstance(a.Instance, a.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := Build(in, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(t.TempDir(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	loc, err := s.Write(tree)
	if err != nil {
		t.Fatal(err)
	}
	vif, err := VIFFromPort(Port{ID: "5b9f0c8e-4a1d-4c2e-9b7a-0d1e2f3a4b5c", MAC: "52:54:00:aa:bb:cc", NetworkID: "net-1", MTU: 1500,
		FixedIPs: []PortIP{{SubnetID: "sub-1", Address: "10.20.30.41"}},
		Subnets: []PortSubnet{{ID: "sub-1", CIDR: "10.20.30.0/24", GatewayIP: "10.20.30.1", DNSNameservers: []string{"10.20.0.53"},
			HostRoutes: []HostRoute{{Destination: "192.168.0.0/16", NextHop: "10.20.30.254"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	nw, err := NetworkFromVIFs([]messages.VIF{vif})
	if err != nil {
		t.Fatal(err)
	}
	// Only what the worker keeps: the instance without its secrets.
	kept, err := FromInstance(a.Instance, config.Secret{})
	if err != nil {
		t.Fatal(err)
	}
	kept.UserData = UserData{}
	nf, err := NetworkFiles(kept, nw, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(loc, nf); err != nil {
		t.Fatal(err)
	}
	v := readDrive(t, s, loc, map[string]string{"52:54:00:aa:bb:cc": "enp1s0"})
	var nc netConfig
	if err := json.Unmarshal(v.NetworkConfig, &nc); err != nil {
		t.Fatal(err)
	}
	if len(nc.Config) != 2 || nc.Config[0].Name != "enp1s0" || nc.Config[0].MTU == nil || *nc.Config[0].MTU != 1500 ||
		len(nc.Config[0].Subnets) != 1 || nc.Config[0].Subnets[0].Type != "static" || nc.Config[0].Subnets[0].Address != "10.20.30.41" ||
		len(nc.Config[0].Subnets[0].Routes) != 2 || nc.Config[0].Subnets[0].Routes[1].Network != "192.168.0.0" ||
		nc.Config[1].Type != "nameserver" || nc.Config[1].Address != "10.20.0.53" {
		t.Errorf("network config %s", v.NetworkConfig)
	}
	// The rest of the drive is as written: keys, user data, the admin password,
	// and the hostname without a domain.
	if v.AdminPass == nil || *v.AdminPass != "VYGfyuvYu5tQ" || len(v.PublicKeys) != 1 || len(v.UserData) == 0 || v.FQDN != "s1" {
		t.Errorf("drive after the update: admin_pass set %v, keys %q, user data set %v, fqdn %q", v.AdminPass != nil, v.PublicKeys, v.UserData != nil, v.FQDN)
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
