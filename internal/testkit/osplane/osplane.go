// Package osplane finds and reads the real OpenStack control plane that
// scripts/openstack/plane.sh runs on loopback for the tests (internal/testopenstack)
// and the demo's nova path: where the script is, what its DIR/env file says, a free
// port for a service, the tail of a log.
package osplane

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Script locates scripts/openstack/plane.sh from the working directory upwards to the
// module root (a package directory under go test, or the source tree for make demo).
func Script() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			s := filepath.Join(dir, "scripts", "openstack", "plane.sh")
			if _, err := os.Stat(s); err != nil {
				return "", fmt.Errorf("module root %s: %w", dir, err)
			}
			return s, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scripts/openstack/plane.sh not found: no go.mod above the working directory")
		}
		dir = parent
	}
}

// ReadEnv reads DIR/env, the KEY=VALUE lines plane.sh start writes once every service
// answers, and checks the required keys are set.
func ReadEnv(dir string, required ...string) (map[string]string, error) {
	path := filepath.Join(dir, "env")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read plane environment: %w", err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vars[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	for _, k := range required {
		if vars[k] == "" {
			return nil, fmt.Errorf("%s has no %s", path, k)
		}
	}
	return vars, nil
}

// FreePort returns a loopback port nobody listens on now. Another process may take it
// before the plane binds it; plane.sh then fails naming the port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Tail returns the last lines of b.
func Tail(b []byte, lines int) string {
	parts := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}
