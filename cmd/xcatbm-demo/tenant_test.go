package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeyAsSSHKeygenReadsIt: the demo's key pair is one OpenSSH reads, and the
// fingerprint it prints is ssh-keygen's.
func TestKeyAsSSHKeygenReadsIt(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("needs ssh-keygen (openssh-client)")
	}
	key, err := demoKey("demo-tenant")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "id.pub")
	if err := os.WriteFile(f, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ssh-keygen", "-l", "-f", f).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v: %s", err, out)
	}
	fp, err := fingerprint(key)
	if err != nil {
		t.Fatal(err)
	}
	// "256 SHA256:... demo-tenant (ED25519)"
	if fields := strings.Fields(string(out)); len(fields) < 2 || fields[1] != fp {
		t.Errorf("ssh-keygen reads %q; the demo prints %s", out, fp)
	}
	if _, err := fingerprint("ssh-ed25519 not-base64!"); err == nil {
		t.Error("fingerprint of a broken key: no error")
	}
}
