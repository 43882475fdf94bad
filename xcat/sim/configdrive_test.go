package sim

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"xcatbm/internal/config"
	"xcatbm/worker/configdrive"
	"xcatbm/xcat"
)

// install runs n's install to its end (booted or failed) and returns the status.
func install(t *testing.T, srv *Server, n string) string {
	t.Helper()
	do(t, srv, xcat.Request{Command: "nodeset", Noderange: n, Args: []string{"osimage=rhels7.5-x86_64-install-compute"}})
	do(t, srv, xcat.Request{Command: "rpower", Noderange: n, Args: []string{"boot"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		ns, _ := srv.Node(n)
		if ns.Status == "booted" || ns.Status == "failed" {
			return ns.Status
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: install did not end: %s", n, ns.Status)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestConfigDriveFetch(t *testing.T) {
	t.Parallel()
	installDir := t.TempDir()
	store, err := configdrive.OpenStore(installDir, configdrive.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICympHXpUTGkr/k6ikER7ej/1JJ+qTG20PJzBuKUQpmZ mi-test\n"
	tree, err := configdrive.Build(&configdrive.Instance{UUID: "4b45a405-9a64-40fa-a63e-82f04644e7bf", Hostname: "s1", KeyName: "k1", KeyData: key,
		UserData: configdrive.NewUserData([]byte("#!/bin/sh\necho hi\n")), AdminPassword: config.NewSecret("pw")}, nil, configdrive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	loc, err := store.Write(tree)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := store.Write(tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Remove(gone); err != nil {
		t.Fatal(err)
	}
	srv := start(t, GenerateCluster("n", 3, "mn1"), Config{InstallDir: installDir})
	set := func(n, pbs string) {
		do(t, srv, xcat.Request{Command: "chdef", Noderange: n, Args: []string{"postbootscripts=" + pbs}})
	}
	set("n1", "otherpkgs,config_ops_bmnode --config-drive "+loc.Path()+" s1 10.0.0.9 255.255.255.0")
	set("n2", "config_ops_bmnode --config-drive "+gone.Path()+" s2")
	set("n3", "otherpkgs,config_ops_bmnode s3")

	if st := install(t, srv, "n1"); st != "booted" {
		t.Fatalf("n1 ended %s", st)
	}
	fs := srv.ConfigDriveFetches("n1")
	if len(fs) != 1 || fs[0].Err != "" || fs[0].Location != loc.Path() {
		t.Fatalf("n1 fetches %+v", fs)
	}
	f := fs[0]
	if len(f.Files) != len(tree.Drive)+1 || string(f.Files["authorized_keys"]) != key {
		t.Errorf("n1 fetched %d files, keys %q", len(f.Files), f.Files["authorized_keys"])
	}
	for _, d := range tree.Drive {
		if string(f.Files["config-drive/"+d.Path]) != string(d.Data) {
			t.Errorf("n1: %s differs", d.Path)
		}
	}
	if len(f.Paths) != len(f.Files)+1 || f.Paths[0] != "/install/"+loc.Path()+"/manifest" {
		t.Errorf("n1 paths %q", f.Paths)
	}
	ns, _ := srv.Node("n1")
	if got := f.Time.Format("01-02-2006 15:04:05"); got != ns.StatusTime {
		t.Errorf("fetched at %s, booted at %s", got, ns.StatusTime)
	}
	calls := srv.NodeCalls("n1")
	var get *Record
	for i := range calls {
		if calls[i].Command == "GET" {
			get = &calls[i]
		}
	}
	if get == nil || !slices.Equal(get.Args, f.Paths) || get.ErrorCode != 0 || get.Noderange != "n1" {
		t.Errorf("request record of the fetch: %+v", get)
	}

	// A tree removed before the node fetched it fails the install, as the
	// postscript's exit status does.
	if st := install(t, srv, "n2"); st != "failed" {
		t.Errorf("n2 ended %s", st)
	}
	if fs := srv.ConfigDriveFetches("n2"); len(fs) != 1 || !strings.Contains(fs[0].Err, "manifest") || len(fs[0].Files) != 0 {
		t.Errorf("n2 fetches %+v", fs)
	}
	if n := srv.CountRequests("GET"); n != 2 {
		t.Errorf("%d GET records, want 2", n)
	}

	// Without --config-drive nothing is fetched.
	if st := install(t, srv, "n3"); st != "booted" {
		t.Errorf("n3 ended %s", st)
	}
	if fs := srv.ConfigDriveFetches("n3"); len(fs) != 0 {
		t.Errorf("n3 fetched %+v", fs)
	}
	if all := srv.ConfigDriveFetches(""); len(all) != 2 {
		t.Errorf("%d fetches in all, want 2", len(all))
	}
}

func TestConfigDriveFetchNeedsInstallDir(t *testing.T) {
	t.Parallel()
	srv := start(t, GenerateCluster("n", 1, "mn1"), Config{})
	do(t, srv, xcat.Request{Command: "chdef", Noderange: "n1", Args: []string{"postbootscripts=config_ops_bmnode --config-drive xcatbm/0123456789abcdef0123456789abcdef h"}})
	if st := install(t, srv, "n1"); st != "failed" {
		t.Errorf("n1 ended %s", st)
	}
	if fs := srv.ConfigDriveFetches("n1"); len(fs) != 1 || !strings.Contains(fs[0].Err, "install directory") {
		t.Errorf("fetches %+v", fs)
	}
}

func TestConfigDriveArgAndPaths(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ pbs, want string }{
		{"", ""},
		{"otherpkgs", ""},
		{"config_ops_bmnode h1 10.0.0.1 24", ""},
		{"config_ops_bmnode --config-drive xcatbm/abc h1", "xcatbm/abc"},
		{"otherpkgs,config_ops_bmnode --login-user u --config-drive x/y h", "x/y"},
		{"config_ops_bmnode --config-drive", ""},
		{"other --config-drive xcatbm/abc", ""},
	} {
		if got := configDriveArg(c.pbs); got != c.want {
			t.Errorf("configDriveArg(%q) = %q, want %q", c.pbs, got, c.want)
		}
	}
	for p, ok := range map[string]bool{
		"authorized_keys": true, "config-drive/openstack/latest/meta_data.json": true, "config-drive/ec2/latest/user-data": true,
		"manifest": false, "config-drive/openstack/../../etc/passwd": false, "/etc/passwd": false, "config-drive/openstack/a b": false,
		"config-drive/other/x": false,
	} {
		if validTreePath(p) != ok {
			t.Errorf("validTreePath(%q) = %v", p, !ok)
		}
	}
}
