// Package postscripts holds the xCAT postbootscripts xcatbm ships, embedded in the
// binary, and places them where xCAT serves postscripts from.
//
// config_ops_bmnode [--config-drive <location>] [--login-user <user>] <hostname> [<ip>
// <netmask>] runs on a deployed tenant node at first boot: it sets the hostname and
// adds the tenant's IP to the install NIC, now and persistently; with --config-drive it
// fetches the tenant's config drive from the management node and installs it as
// cloud-init's seed, or, without cloud-init, puts the tenant's keys in the login user's
// authorized_keys and leaves the user data in /var/lib/xcatbm/user_data.
// deconfig_ops_bmnode <ip>|--no-ip undoes it. Both are POSIX sh; see the scripts for
// the environment they read.
package postscripts

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

//go:embed config_ops_bmnode deconfig_ops_bmnode
var files embed.FS

// DefaultDir is where xCAT serves postscripts from.
const DefaultDir = "/install/postscripts"

// Mode is the file mode the scripts are installed with.
const Mode fs.FileMode = 0o755

// Names returns the names of the shipped scripts, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".") // the embedded root always reads
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// Content returns the text of the shipped script name, or an error wrapping
// fs.ErrNotExist for a name Names does not list.
func Content(name string) ([]byte, error) {
	return files.ReadFile(name)
}

// Action says what Install did to one file.
type Action string

// The actions Install reports.
const (
	Created   Action = "created"
	Updated   Action = "updated"
	Unchanged Action = "unchanged"
)

// Change is what Install did to one script.
type Change struct {
	// Path is the file's path in the target directory.
	Path string
	// Action is Created, Updated (content or mode differed) or Unchanged.
	Action Action
}

// Install writes every script into dir (created if missing) with mode Mode, leaving
// files that already hold the same content and mode untouched, and returns one Change
// per script in Names order. A file is replaced atomically (written beside it, then
// renamed), so xCAT never serves a half-written script. On error, the changes made so
// far are returned with it. Install is safe to run again at any time.
func Install(dir string) (changes []Change, err error) {
	if dir == "" {
		return nil, errors.New("install postscripts: no directory given")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("install postscripts: %w", err)
	}
	for _, name := range Names() {
		want, err := files.ReadFile(name)
		if err != nil {
			return changes, fmt.Errorf("install postscripts: %w", err)
		}
		path := filepath.Join(dir, name)
		action, err := installFile(path, want)
		if err != nil {
			return changes, fmt.Errorf("install postscripts: %s: %w", path, err)
		}
		changes = append(changes, Change{Path: path, Action: action})
	}
	return changes, nil
}

func installFile(path string, want []byte) (Action, error) {
	action, err := compare(path, want)
	if err != nil || action == Unchanged {
		return action, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(want); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(Mode); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return action, nil
}

// Diff reports, without writing anything, what Install(dir) would do: Created for a
// missing script, Updated for one whose content or mode differs, Unchanged for one
// installed as shipped. One Change per script, in Names order.
func Diff(dir string) ([]Change, error) {
	changes := make([]Change, 0, len(Names()))
	for _, name := range Names() {
		want, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, name)
		action, err := compare(path, want)
		if err != nil {
			return nil, fmt.Errorf("postscripts: %s: %w", path, err)
		}
		changes = append(changes, Change{Path: path, Action: action})
	}
	return changes, nil
}

// compare says what writing want to path would be.
func compare(path string, want []byte) (Action, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Created, nil
	}
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != Mode {
		return Updated, nil
	}
	have, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if !bytes.Equal(have, want) {
		return Updated, nil
	}
	return Unchanged, nil
}
