package configdrive

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"xcatbm/internal/config"
)

// sampleTree is the first tenant build's tree, with its admin password.
func sampleTree(t *testing.T) *Tree {
	t.Helper()
	a := tenantBuilds(t)[0]
	in, err := FromInstance(a.Instance, a.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := Build(in, nil, Options{DHCPDomain: DefaultDHCPDomain})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// modes maps every path under dir (relative; "." for dir) to its permission bits.
func modes(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	out := map[string]fs.FileMode{}
	err := filepath.Walk(dir, func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = fi.Mode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStoreWrite(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name              string
		group             string
		dirMode, fileMode fs.FileMode
		gid               int // -1: not checked
	}{
		{"no group", "", 0o711, 0o644, -1},
		{"web server group", "65534", 0o710, 0o640, 65534},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.gid >= 0 && os.Geteuid() != 0 {
				t.Skip("setting a group needs root")
			}
			install := t.TempDir()
			s, err := OpenStore(install, StoreOptions{Group: c.group})
			if err != nil {
				t.Fatal(err)
			}
			tree := sampleTree(t)
			loc, err := s.Write(tree)
			if err != nil {
				t.Fatal(err)
			}
			if !loc.Valid() || loc.Path() != "xcatbm/"+string(loc) {
				t.Fatalf("location %q path %q", loc, loc.Path())
			}
			dir := filepath.Join(install, filepath.FromSlash(loc.Path()))
			ms := modes(t, filepath.Join(install, StoreDir))
			for p, m := range ms {
				want := c.fileMode
				if m.IsDir() {
					want = fs.ModeDir | c.dirMode
				}
				if m != want {
					t.Errorf("%s: mode %v, want %v", p, m, want)
				}
			}
			if c.gid >= 0 {
				_ = filepath.Walk(filepath.Join(install, StoreDir), func(p string, fi fs.FileInfo, err error) error {
					if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Gid) != c.gid {
						t.Errorf("%s: gid %d, want %d", p, st.Gid, c.gid)
					}
					return err
				})
			}
			// The drive, the manifest (sorted) and the keys, and nothing else.
			got := readTree(t, dir)
			want := []string{KeysName}
			for _, f := range tree.Drive {
				want = append(want, DriveDir+"/"+f.Path)
				if string(got[DriveDir+"/"+f.Path]) != string(f.Data) {
					t.Errorf("%s: content differs", f.Path)
				}
			}
			slices.Sort(want)
			if got[ManifestName] == nil || string(got[ManifestName]) != strings.Join(want, "\n")+"\n" {
				t.Errorf("manifest:\n%s", got[ManifestName])
			}
			if string(got[KeysName]) != string(tree.AuthorizedKeys) || len(tree.AuthorizedKeys) == 0 {
				t.Errorf("authorized_keys %q", got[KeysName])
			}
			if len(got) != len(tree.Drive)+2 {
				t.Errorf("%d files, want %d", len(got), len(tree.Drive)+2)
			}
			// A second tree gets another token.
			loc2, err := s.Write(tree)
			if err != nil || loc2 == loc {
				t.Errorf("second write: %q, %v", loc2, err)
			}
		})
	}
}

// TestStoreNotListable checks, as an unprivileged user, that the store's
// directories cannot be listed while a file whose path is known can be read: what
// xCAT's web server (not root) can do, and what it cannot.
func TestStoreNotListable(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run commands as another user")
	}
	base := t.TempDir()
	// t.TempDir's directories are 0700; open them to others as /install is.
	for p := base; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err := OpenStore(base, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	loc, err := s.Write(sampleTree(t))
	if err != nil {
		t.Fatal(err)
	}
	nobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	run := func(argv ...string) (string, error) {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.SysProcAttr = nobody
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	tree := filepath.Join(base, filepath.FromSlash(loc.Path()))
	if out, err := run("cat", filepath.Join(tree, DriveDir, "openstack", "latest", "meta_data.json")); err != nil || !strings.Contains(out, `"uuid": "4b45a405`) {
		t.Errorf("reading a known file as nobody: %v %s", err, out)
	}
	if out, err := run("cat", filepath.Join(tree, ManifestName)); err != nil || !strings.Contains(out, "config-drive/openstack/latest/user_data\n") {
		t.Errorf("reading the manifest as nobody: %v %s", err, out)
	}
	for _, d := range []string{s.Dir(), tree, filepath.Join(tree, DriveDir), filepath.Join(tree, DriveDir, "openstack")} {
		if out, err := run("ls", d); err == nil {
			t.Errorf("nobody listed %s: %s", d, out)
		}
	}
}

func TestStoreWriteRefusesAndLeavesNothing(t *testing.T) {
	t.Parallel()
	s, err := OpenStore(t.TempDir(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		tree *Tree
	}{
		{"nil", nil},
		{"empty", &Tree{}},
		{"absolute", &Tree{Drive: []File{{Path: "/etc/passwd"}}}},
		{"dot-dot", &Tree{Drive: []File{{Path: "openstack/../../x"}}}},
		{"unclean", &Tree{Drive: []File{{Path: "openstack//x"}}}},
		{"space", &Tree{Drive: []File{{Path: "open stack/x"}}}},
		{"twice", &Tree{Drive: []File{{Path: "a/b", Data: []byte("1")}, {Path: "a/b", Data: []byte("2")}}}},
		{"file under a file", &Tree{Drive: []File{{Path: "a"}, {Path: "a/b"}}}},
	} {
		if _, err := s.Write(c.tree); err == nil {
			t.Errorf("%s: written", c.name)
		}
	}
	left, err := os.ReadDir(s.Dir())
	if err != nil || len(left) != 0 {
		t.Errorf("left behind: %v %v", left, err)
	}
}

func TestStoreUpdateRemoveList(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	s, err := OpenStore(t.TempDir(), StoreOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tree := sampleTree(t)
	loc, err := s.Write(tree)
	if err != nil {
		t.Fatal(err)
	}
	// The address arrives: the network files are replaced, the rest is kept.
	b := tenantBuilds(t)[2]
	edited := editedInstance(t, b.Instance)
	nw, err := NetworkFromVIFs(edited.NetworkInfo)
	if err != nil {
		t.Fatal(err)
	}
	a := tenantBuilds(t)[0]
	in, err := FromInstance(a.Instance, config.Secret{})
	if err != nil {
		t.Fatal(err)
	}
	nf, err := NetworkFiles(in, nw, Options{DHCPDomain: DefaultDHCPDomain})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(loc, nf); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.Dir(), string(loc))
	got := readTree(t, dir)
	for _, f := range nf {
		if string(got[DriveDir+"/"+f.Path]) != string(f.Data) {
			t.Errorf("%s not updated", f.Path)
		}
	}
	if !strings.Contains(string(got[DriveDir+"/openstack/latest/network_data.json"]), `"ip_address": "10.20.30.40"`) {
		t.Errorf("network_data.json: %s", got[DriveDir+"/openstack/latest/network_data.json"])
	}
	if !strings.Contains(string(got[DriveDir+"/openstack/latest/meta_data.json"]), `"admin_pass": "VYGfyuvYu5tQ"`) {
		t.Error("update lost meta_data.json")
	}
	if len(got) != len(tree.Drive)+2 {
		t.Errorf("%d files after update, want %d", len(got), len(tree.Drive)+2)
	}
	for p, m := range modes(t, dir) {
		if !m.IsDir() && m != 0o644 {
			t.Errorf("%s: mode %v after update", p, m)
		}
	}
	for _, bad := range [][]File{
		{{Path: "openstack/latest/new.json", Data: []byte("{}")}},
		{{Path: "../manifest", Data: []byte("x")}},
	} {
		if err := s.Update(loc, bad); err == nil {
			t.Errorf("update with %v accepted", bad)
		}
	}
	if err := s.Update("nope", nf); err == nil {
		t.Error("update of an invalid location accepted")
	}
	if err := s.Update(Location(strings.Repeat("0", 32)), nf); err == nil {
		t.Error("update of a missing tree accepted")
	}

	// A partial tree (a crash during Write) and a stray name.
	partialLoc := Location(strings.Repeat("a", 32))
	if err := os.MkdirAll(filepath.Join(s.Dir(), partial+string(partialLoc), DriveDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(s.Dir(), "not-a-tree"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Times on the store's clock: the tree two hours old, the partial one ten
	// minutes.
	old, recent := now.Add(-2*time.Hour), now.Add(-10*time.Minute)
	if err := os.Chtimes(filepath.Join(s.Dir(), string(loc)), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(s.Dir(), partial+string(partialLoc)), recent, recent); err != nil {
		t.Fatal(err)
	}
	entries, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Location != loc || entries[0].Partial || entries[1].Location != partialLoc || !entries[1].Partial {
		t.Fatalf("entries %+v", entries)
	}
	stale := func(minAge time.Duration, inUse func(Location) bool) []Location {
		t.Helper()
		es, err := s.Stale(minAge, inUse)
		if err != nil {
			t.Fatal(err)
		}
		var out []Location
		for _, e := range es {
			out = append(out, e.Location)
		}
		return out
	}
	inUse := func(l Location) bool { return l == loc }
	if got := stale(time.Hour, inUse); len(got) != 0 {
		t.Errorf("stale (in use, partial too young): %v", got)
	}
	if got := stale(time.Hour, nil); !slices.Equal(got, []Location{loc}) {
		t.Errorf("stale (old, unused): %v", got)
	}
	if got := stale(5*time.Minute, inUse); !slices.Equal(got, []Location{partialLoc}) {
		t.Errorf("stale (partial even when its token is in use): %v", got)
	}

	for _, l := range []Location{loc, partialLoc, loc} {
		if err := s.Remove(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Remove("../x"); err == nil {
		t.Error("remove of an invalid location accepted")
	}
	left, _ := os.ReadDir(s.Dir())
	if len(left) != 1 || left[0].Name() != "not-a-tree" {
		t.Errorf("left: %v", left)
	}
}

func TestParseLocation(t *testing.T) {
	t.Parallel()
	tok := "0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		in   string
		want Location
		ok   bool
	}{
		{tok, Location(tok), true},
		{"xcatbm/" + tok, Location(tok), true},
		{"xcatbm/" + strings.ToUpper(tok), "", false},
		{tok[:31], "", false},
		{tok + "0", "", false},
		{"other/" + tok, "", false},
		{"xcatbm/../" + tok[:22], "", false},
	} {
		got, err := ParseLocation(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseLocation(%q) = %q, %v", c.in, got, err)
		}
	}
}

func TestOpenStoreErrors(t *testing.T) {
	t.Parallel()
	if _, err := OpenStore("", StoreOptions{}); err == nil {
		t.Error("empty install dir accepted")
	}
	if _, err := OpenStore(t.TempDir(), StoreOptions{Group: "no-such-group-xcatbm"}); err == nil {
		t.Error("unknown group accepted")
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(f, StoreOptions{}); err == nil {
		t.Error("a file as install dir accepted")
	}
	// An existing store directory with another mode is put right.
	install := t.TempDir()
	if err := os.Mkdir(filepath.Join(install, StoreDir), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(install, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(s.Dir()); err != nil || fi.Mode().Perm() != 0o711 {
		t.Errorf("store dir mode %v, %v", fi.Mode(), err)
	}
}
