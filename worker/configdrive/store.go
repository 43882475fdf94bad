package configdrive

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// StoreDir is the directory of the install tree that holds the trees, and the first
// element of every Location's path.
const StoreDir = "xcatbm"

// The names inside one tree's directory.
const (
	// ManifestName lists the tree's other files, one path (relative to the
	// tree's directory: "config-drive/openstack/latest/meta_data.json",
	// "authorized_keys") a line, sorted: what a node fetches.
	ManifestName = "manifest"
	// KeysName is the authorized_keys file for images without cloud-init; absent
	// when the instance has no SSH key.
	KeysName = "authorized_keys"
	// DriveDir holds the config drive (openstack/..., ec2/...).
	DriveDir = "config-drive"
)

const (
	tokenBytes = 16 // 128 bits
	partial    = ".partial-"
)

// Location names one tree in a Store: its token, 32 lower-case hex digits. The
// token is what lets a node fetch its tree, so it is handed to that node only.
type Location string

// Path is the tree's directory relative to the install directory ("xcatbm/<token>"):
// the argument config_ops_bmnode's --config-drive takes.
func (l Location) Path() string { return StoreDir + "/" + string(l) }

// Valid reports whether l is a well-formed token.
func (l Location) Valid() bool {
	if len(l) != 2*tokenBytes {
		return false
	}
	for _, c := range []byte(l) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ParseLocation reads a token or a Location's Path.
func ParseLocation(s string) (Location, error) {
	l := Location(strings.TrimPrefix(s, StoreDir+"/"))
	if !l.Valid() {
		return "", fmt.Errorf("configdrive: %q is not a config drive location", s)
	}
	return l, nil
}

// StoreOptions configure a Store.
type StoreOptions struct {
	// Group, when set (a group name or number), owns the trees and is the only
	// one besides root that can read them: directories 0710 and files 0640,
	// root:Group. Set it to the web server's group (apache, www-data, wwwrun).
	// Empty: directories 0711 and files 0644, so that any web server can read a
	// file whose path it is given, and no one but root can list a directory.
	Group string
	// Now is the clock of List; nil is time.Now.
	Now func() time.Time
}

// Store writes the config drive trees of deployments under <installdir>/xcatbm,
// which xCAT's web server serves at http://<master><installdir>/xcatbm/. Each tree
// lives in a directory named by a random 128-bit token; no directory of the store
// can be listed except by root, so a tree can only be fetched by whoever knows its
// token. Its methods are safe for concurrent use.
type Store struct {
	root              string
	gid               int // -1: leave the group alone
	dirMode, fileMode fs.FileMode
	now               func() time.Time
}

// OpenStore opens (creating it when missing) the store under installDir, and sets
// the store directory's owner and mode.
func OpenStore(installDir string, opts StoreOptions) (*Store, error) {
	if installDir == "" {
		return nil, errors.New("configdrive: no install directory")
	}
	s := &Store{root: filepath.Join(installDir, StoreDir), gid: -1, dirMode: 0o711, fileMode: 0o644, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.Group != "" {
		gid, err := lookupGroup(opts.Group)
		if err != nil {
			return nil, err
		}
		s.gid, s.dirMode, s.fileMode = gid, 0o710, 0o640
	}
	if err := os.MkdirAll(s.root, 0o700); err != nil {
		return nil, fmt.Errorf("configdrive: store: %w", err)
	}
	if err := s.own(s.root, s.dirMode); err != nil {
		return nil, fmt.Errorf("configdrive: store: %w", err)
	}
	return s, nil
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("configdrive: group %q: %w", name, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("configdrive: group %q has gid %q", name, g.Gid)
	}
	return gid, nil
}

// own sets p's mode and, when the store has a group, its group.
func (s *Store) own(p string, mode fs.FileMode) error {
	if s.gid >= 0 {
		if err := os.Lchown(p, -1, s.gid); err != nil {
			return err
		}
	}
	return os.Chmod(p, mode)
}

// Dir is the store's directory (<installdir>/xcatbm).
func (s *Store) Dir() string { return s.root }

// Write writes t as a new tree under a new random token and returns its location.
// The tree appears whole or not at all: it is written under a partial name and
// renamed into place. The drive's file paths must be relative and clean.
func (s *Store) Write(t *Tree) (Location, error) {
	if t == nil || len(t.Drive) == 0 {
		return "", errors.New("configdrive: write: empty tree")
	}
	buf := make([]byte, tokenBytes)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("configdrive: write: token: %w", err)
	}
	loc := Location(hex.EncodeToString(buf))
	tmp := filepath.Join(s.root, partial+string(loc))
	if err := s.writeTree(tmp, t); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("configdrive: write: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.root, string(loc))); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("configdrive: write: %w", err)
	}
	return loc, nil
}

func (s *Store) writeTree(dir string, t *Tree) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	var manifest bytes.Buffer
	paths := make([]string, 0, len(t.Drive))
	seen := map[string]bool{}
	for _, f := range t.Drive {
		if err := checkPath(f.Path); err != nil {
			return err
		}
		if seen[f.Path] {
			return fmt.Errorf("%s given twice", f.Path)
		}
		seen[f.Path] = true
		paths = append(paths, DriveDir+"/"+f.Path)
		p := filepath.Join(dir, DriveDir, filepath.FromSlash(f.Path))
		if err := s.mkdirs(dir, filepath.Dir(p)); err != nil {
			return err
		}
		if err := s.writeFile(p, f.Data); err != nil {
			return err
		}
	}
	if len(t.AuthorizedKeys) > 0 {
		if err := s.writeFile(filepath.Join(dir, KeysName), t.AuthorizedKeys); err != nil {
			return err
		}
		paths = append(paths, KeysName)
	}
	slices.Sort(paths)
	for _, p := range paths {
		manifest.WriteString(p + "\n")
	}
	if err := s.writeFile(filepath.Join(dir, ManifestName), manifest.Bytes()); err != nil {
		return err
	}
	return s.own(dir, s.dirMode)
}

// checkPath accepts a clean relative slash path of [A-Za-z0-9._-] names.
func checkPath(p string) error {
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == "." || strings.HasPrefix(p, "../") || p == ".." {
		return fmt.Errorf("drive path %q is not a clean relative path", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == "." || part == ".." {
			return fmt.Errorf("drive path %q is not a clean relative path", p)
		}
		for _, c := range []byte(part) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("drive path %q has a character other than [A-Za-z0-9._-]", p)
			}
		}
	}
	return nil
}

// mkdirs creates dir and its parents below top with the store's directory mode.
func (s *Store) mkdirs(top, dir string) error {
	rel, err := filepath.Rel(top, dir)
	if err != nil {
		return err
	}
	cur := top
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." {
			continue
		}
		cur = filepath.Join(cur, part)
		err := os.Mkdir(cur, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := s.own(cur, s.dirMode); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes data to p (which must not exist) with the store's file mode.
func (s *Store) writeFile(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return s.own(p, s.fileMode)
}

// Update replaces files of the drive at loc (NetworkFiles, once the address is
// known), each atomically. Every file must already be in the drive: the manifest
// does not change. Call it before the node boots: a node fetching meanwhile may get
// old and new files mixed.
func (s *Store) Update(loc Location, files []File) error {
	if !loc.Valid() {
		return fmt.Errorf("configdrive: update: invalid location %q", loc)
	}
	dir := filepath.Join(s.root, string(loc))
	manifest, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return fmt.Errorf("configdrive: update %s: %w", loc, err)
	}
	have := map[string]bool{}
	for _, line := range strings.Split(string(manifest), "\n") {
		if line != "" {
			have[line] = true
		}
	}
	for _, f := range files {
		if err := checkPath(f.Path); err != nil {
			return fmt.Errorf("configdrive: update %s: %w", loc, err)
		}
		if !have[DriveDir+"/"+f.Path] {
			return fmt.Errorf("configdrive: update %s: %s is not in the drive", loc, f.Path)
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, DriveDir, filepath.FromSlash(f.Path))
		tmp := filepath.Join(filepath.Dir(p), partial+filepath.Base(p))
		_ = os.Remove(tmp)
		if err := s.writeFile(tmp, f.Data); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("configdrive: update %s: %w", loc, err)
		}
		if err := os.Rename(tmp, p); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("configdrive: update %s: %w", loc, err)
		}
	}
	return nil
}

// Remove deletes the tree at loc, and any partial tree of that token. Removing a
// tree that is not there is not an error.
func (s *Store) Remove(loc Location) error {
	if !loc.Valid() {
		return fmt.Errorf("configdrive: remove: invalid location %q", loc)
	}
	for _, name := range []string{string(loc), partial + string(loc)} {
		if err := os.RemoveAll(filepath.Join(s.root, name)); err != nil {
			return fmt.Errorf("configdrive: remove %s: %w", loc, err)
		}
	}
	return nil
}

// Entry is one tree found in the store.
type Entry struct {
	Location Location
	// Written is when the tree was written (its directory's modification time).
	Written time.Time
	// Partial is true for a tree whose Write did not finish (a crash): never
	// delivered, always safe to remove.
	Partial bool
}

// Stale returns the trees written at least minAge ago (by the store's clock) that
// inUse says no deployment needs, partial trees included, oldest first: what a
// sweeper removes with Remove, after a crash between a Write and the moment the
// worker recorded its Location, or between a node's boot and the Remove. minAge
// keeps a sweeper away from a Write in progress.
func (s *Store) Stale(minAge time.Duration, inUse func(Location) bool) ([]Entry, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	cutoff := s.now().Add(-minAge)
	var out []Entry
	for _, e := range all {
		if e.Written.After(cutoff) || (!e.Partial && inUse != nil && inUse(e.Location)) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// List returns the trees in the store, oldest first. Names that are not trees are
// ignored.
func (s *Store) List() ([]Entry, error) {
	des, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("configdrive: list: %w", err)
	}
	var out []Entry
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		name, isPartial := strings.CutPrefix(de.Name(), partial)
		loc := Location(name)
		if !loc.Valid() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			return nil, fmt.Errorf("configdrive: list: %w", err)
		}
		out = append(out, Entry{Location: loc, Written: fi.ModTime(), Partial: isPartial})
	}
	slices.SortFunc(out, func(a, b Entry) int { return a.Written.Compare(b.Written) })
	return out, nil
}
