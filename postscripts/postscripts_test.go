package postscripts

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestNames(t *testing.T) {
	t.Parallel()
	want := []string{"config_ops_bmnode", "deconfig_ops_bmnode"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, n := range want {
		b, err := Content(n)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("#!/bin/sh\n")) {
			t.Errorf("%s does not start with #!/bin/sh", n)
		}
	}
	if _, err := Content("nosuch"); err == nil {
		t.Error("Content(nosuch) succeeded")
	}
}

func actions(changes []Change) map[string]Action {
	m := map[string]Action{}
	for _, c := range changes {
		m[filepath.Base(c.Path)] = c.Action
	}
	return m
}

func TestInstall(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "install", "postscripts") // created by Install
	check := func(step string, changes []Change, want map[string]Action) {
		t.Helper()
		if got := actions(changes); len(changes) != len(want) || !maps.Equal(got, want) {
			t.Fatalf("%s: changes %v, want %v", step, changes, want)
		}
		for _, n := range Names() {
			p := filepath.Join(dir, n)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("%s: %s mode %v, want 0755", step, n, fi.Mode().Perm())
			}
			have, _ := os.ReadFile(p)
			want, _ := Content(n)
			if !bytes.Equal(have, want) {
				t.Errorf("%s: %s content differs from the embedded script", step, n)
			}
		}
		left, _ := filepath.Glob(filepath.Join(dir, ".*"))
		if len(left) != 0 {
			t.Errorf("%s: temporary files left: %v", step, left)
		}
	}

	diff, err := Diff(dir)
	if err != nil || !maps.Equal(actions(diff), map[string]Action{"config_ops_bmnode": Created, "deconfig_ops_bmnode": Created}) {
		t.Fatalf("Diff before Install: %v, %v", diff, err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("Diff created the directory")
	}
	changes, err := Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	check("first", changes, map[string]Action{"config_ops_bmnode": Created, "deconfig_ops_bmnode": Created})

	changes, err = Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	check("again", changes, map[string]Action{"config_ops_bmnode": Unchanged, "deconfig_ops_bmnode": Unchanged})

	// An edited script and a script with the wrong mode are both put right.
	if err := os.WriteFile(filepath.Join(dir, "config_ops_bmnode"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "deconfig_ops_bmnode"), 0o644); err != nil {
		t.Fatal(err)
	}
	diff, err = Diff(dir)
	if err != nil || !maps.Equal(actions(diff), map[string]Action{"config_ops_bmnode": Updated, "deconfig_ops_bmnode": Updated}) {
		t.Fatalf("Diff of edited scripts: %v, %v", diff, err)
	}
	changes, err = Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	check("repair", changes, map[string]Action{"config_ops_bmnode": Updated, "deconfig_ops_bmnode": Updated})

	// Other files in the directory are left alone.
	other := filepath.Join(dir, "syslog")
	if err := os.WriteFile(other, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(other); err != nil || string(b) != "x" {
		t.Errorf("other file changed: %q, %v", b, err)
	}
}

func TestInstallErrors(t *testing.T) {
	t.Parallel()
	if _, err := Install(""); err == nil {
		t.Error("Install(\"\") succeeded")
	}
	file := filepath.Join(t.TempDir(), "afile")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(file); err == nil {
		t.Error("Install into a regular file succeeded")
	}
}
