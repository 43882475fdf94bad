package osplane

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "env"), []byte("OS_NOVA_URL=http://127.0.0.1:1/v2.1\nnot a pair\nOS_VHOST=v=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars, err := ReadEnv(dir, "OS_NOVA_URL", "OS_VHOST")
	if err != nil || vars["OS_NOVA_URL"] != "http://127.0.0.1:1/v2.1" || vars["OS_VHOST"] != "v=1" {
		t.Fatalf("ReadEnv = %v, %v", vars, err)
	}
	if _, err := ReadEnv(dir, "OS_GLANCE_URL"); err == nil || !strings.Contains(err.Error(), "OS_GLANCE_URL") {
		t.Errorf("missing key: %v", err)
	}
	if _, err := ReadEnv(t.TempDir()); err == nil {
		t.Error("no env file gave no error")
	}
}

func TestScriptAndTail(t *testing.T) {
	t.Parallel()
	s, err := Script()
	if err != nil || !strings.HasSuffix(s, "scripts/openstack/plane.sh") {
		t.Fatalf("Script = %q, %v", s, err)
	}
	if got := Tail([]byte("a\nb\nc\n"), 2); got != "b\nc" {
		t.Errorf("Tail = %q", got)
	}
	if p, err := FreePort(); err != nil || p <= 0 {
		t.Errorf("FreePort = %d, %v", p, err)
	}
}
