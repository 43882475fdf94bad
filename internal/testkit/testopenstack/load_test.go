package testopenstack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The env file as plane.sh start writes it.
const envFile = `OS_CONFIG_DIR=/tmp/os
OS_NOVA_CONF=/tmp/os/nova.conf
OS_NOVA_URL=http://127.0.0.1:8774/v2.1
OS_PLACEMENT_URL=http://127.0.0.1:8778
OS_GLANCE_URL=http://127.0.0.1:9292
OS_NEUTRON_URL=http://127.0.0.1:9696
OS_TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/xcatbm-os
OS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/xcatbm-os
OS_VHOST=xcatbm-os
OS_DB_PREFIX=xcatbm_os_
OS_TOKEN=admin:admin
OS_START_SECONDS=79
`

func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     string
		wantErr string
	}{
		{name: "complete", env: envFile},
		{name: "missing nova", env: strings.Replace(envFile, "OS_NOVA_URL=http://127.0.0.1:8774/v2.1\n", "", 1), wantErr: "OS_NOVA_URL"},
		{name: "empty amqp", env: strings.Replace(envFile, "OS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/xcatbm-os", "OS_AMQP_URL=", 1), wantErr: "OS_AMQP_URL"},
		{name: "no file", wantErr: "read plane environment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if tc.env != "" {
				if err := os.WriteFile(filepath.Join(dir, "env"), []byte(tc.env), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p, err := load(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("load = %v, want an error naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			want := Plane{
				NovaURL: "http://127.0.0.1:8774/v2.1", PlacementURL: "http://127.0.0.1:8778",
				GlanceURL: "http://127.0.0.1:9292", NeutronURL: "http://127.0.0.1:9696",
				TransportURL: "rabbit://guest:guest@127.0.0.1:5672/xcatbm-os",
				AMQPURL:      "amqp://guest:guest@127.0.0.1:5672/xcatbm-os",
				Vhost:        "xcatbm-os", ConfigDir: "/tmp/os",
			}
			got := *p
			got.http = nil
			if got != want {
				t.Errorf("load =\n%+v\nwant\n%+v", got, want)
			}
			c := p.ImageClient()
			if c.ResourceBaseURL() != "http://127.0.0.1:9292/v2/" || c.ProviderClient.Token() != Token {
				t.Errorf("image client base %s token %q", c.ResourceBaseURL(), c.ProviderClient.Token())
			}
			if c := p.ComputeClient(); c.ResourceBaseURL() != "http://127.0.0.1:8774/v2.1/" || c.Microversion != ComputeMicroversion {
				t.Errorf("compute client base %s microversion %s", c.ResourceBaseURL(), c.Microversion)
			}
		})
	}
}

func TestStartSkipsUnlessEnabled(t *testing.T) {
	t.Setenv(EnvEnable, "")
	t.Setenv(EnvDir, "")
	skipped := true
	t.Run("start", func(t *testing.T) {
		Start(t)
		skipped = false
	})
	if !skipped {
		t.Fatal("Start went on without XCATBM_TEST_OPENSTACK or XCATBM_TEST_OPENSTACK_DIR")
	}
}
