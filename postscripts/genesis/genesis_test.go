package genesis

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Skip("shellcheck not installed")
	}
	if out, err := exec.Command("shellcheck", "runme.sh").CombinedOutput(); err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

// unpack runs what genesis does with a runimage tarball: unpack it in a folder.
func unpack(t *testing.T, tgz []byte) string {
	t.Helper()
	dir := t.TempDir()
	gz, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, h.Name), b, os.FileMode(h.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCleanErasesRealDisks runs the cleaning on loop devices holding an ext4
// filesystem with data: afterwards nothing identifies a filesystem, the data is gone
// in full mode, and the node powers off (the worker's signal of success). lsblk is
// narrowed to the test's loop devices so no other disk of this machine is touched.
func TestCleanErasesRealDisks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices")
	}
	for _, mode := range []string{CleanMetadata, CleanFull} {
		t.Run(mode, func(t *testing.T) {
			tgz, err := CleanImage(mode)
			if err != nil {
				t.Fatal(err)
			}
			dir := unpack(t, tgz)
			img := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(img, make([]byte, 32<<20), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("losetup", "--find", "--show", img).Output()
			if err != nil {
				t.Skipf("no loop device here: %v", err)
			}
			dev := strings.TrimSpace(string(out))
			t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
			if out, err := exec.Command("mkfs.ext4", "-q", "-F", dev).CombinedOutput(); err != nil {
				t.Fatalf("mkfs: %v %s", err, out)
			}
			secret := []byte("tenant-secret-bytes-4c2e")
			f, err := os.OpenFile(dev, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(secret, 16<<20); err != nil {
				t.Fatal(err)
			}
			_ = f.Close()
			if out, _ := exec.Command("blkid", "-p", dev).CombinedOutput(); !strings.Contains(string(out), "ext4") {
				t.Fatalf("no filesystem to erase: %s", out)
			}
			bin := t.TempDir()
			fake := fmt.Sprintf("#!/bin/sh\necho '%s disk 0'\n", dev)
			if err := os.WriteFile(filepath.Join(bin, "lsblk"), []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			off := filepath.Join(t.TempDir(), "powered-off")
			cmd := exec.Command("sh", filepath.Join(dir, "runme.sh"))
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "XCATBM_CLEAN_POWEROFF=touch "+off, "MASTER=")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("runme.sh: %v\n%s", err, out)
			}
			if _, err := os.Stat(off); err != nil {
				t.Errorf("the node was not powered off after cleaning")
			}
			if out, _ := exec.Command("blkid", "-p", dev).CombinedOutput(); strings.Contains(string(out), "TYPE=") {
				t.Errorf("a signature survived: %s", out)
			}
			disk, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			if mode == CleanFull && bytes.Contains(disk, secret) {
				t.Errorf("full cleaning left the tenant's data")
			}
			if mode == CleanMetadata && !bytes.Equal(disk[:1<<20], make([]byte, 1<<20)) {
				t.Errorf("the first MiB is not zero")
			}
		})
	}
}

func TestCleanImageRefusesUnknownModes(t *testing.T) {
	if _, err := CleanImage("off"); err == nil {
		t.Fatal("a mode that erases nothing should not make an image")
	}
}
