package sim

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ConfigDriveFetch is what one simulated node fetched of its tenant's config drive,
// as config_ops_bmnode --config-drive does on a real node: the tree's manifest from
// the management node's install directory, then every file it lists.
type ConfigDriveFetch struct {
	// Node is the node that fetched.
	Node string
	// Time is when it fetched: when its postbootscripts ran, at the end of its
	// install (the status time of booted or failed).
	Time time.Time
	// Location is the --config-drive argument ("xcatbm/<token>").
	Location string
	// Paths are the URL paths asked for, in order ("/install/xcatbm/<token>/manifest",
	// then the files).
	Paths []string
	// Files maps each path the manifest lists ("config-drive/openstack/latest/
	// meta_data.json", "authorized_keys") to the content fetched.
	Files map[string][]byte
	// Err says why the fetch failed, "" when it succeeded. A failed fetch fails
	// the node's install, as the postscript's exit status does.
	Err string
}

// configDriveArg returns the --config-drive argument of the node's
// config_ops_bmnode postbootscript entry, "" when it has none.
func configDriveArg(postbootscripts string) string {
	for _, entry := range splitList(postbootscripts) {
		f := strings.Fields(entry)
		if len(f) == 0 || f[0] != "config_ops_bmnode" {
			continue
		}
		for i := 1; i < len(f)-1; i++ {
			if f[i] == "--config-drive" {
				return f[i+1]
			}
		}
	}
	return ""
}

// validTreePath accepts the paths config_ops_bmnode accepts in a manifest.
func validTreePath(p string) bool {
	if p != "authorized_keys" && !strings.HasPrefix(p, "config-drive/openstack/") && !strings.HasPrefix(p, "config-drive/ec2/") {
		return false
	}
	if path.Clean(p) != p || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		return false
	}
	return !strings.ContainsFunc(p, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == '/')
	})
}

// fetchConfigDrive models the node's postscript fetching its config drive at the
// end of its install; it reports whether the fetch succeeded (or there was none to
// do). The caller holds s.mu.
func (s *Server) fetchConfigDrive(n *node, at time.Time) bool {
	loc := configDriveArg(n.attrs["postbootscripts"])
	if loc == "" {
		return true
	}
	f := ConfigDriveFetch{Node: n.name, Time: at, Location: loc, Files: map[string][]byte{}}
	if err := s.readConfigDrive(&f); err != nil {
		f.Err = err.Error()
	}
	s.driveFetches = append(s.driveFetches, f)
	rec := Record{Time: at, Command: "GET", Noderange: n.name, Args: slices.Clone(f.Paths), Nodes: []string{n.name}}
	if f.Err != "" {
		rec.ErrorCode = 1
	}
	s.records = append(s.records, rec)
	s.logf("xcatbm-sim: %s fetched its config drive: %d files, error %q", n.name, len(f.Files), f.Err)
	return f.Err == ""
}

func (s *Server) readConfigDrive(f *ConfigDriveFetch) error {
	if s.cfg.InstallDir == "" {
		return errors.New("the simulator has no install directory (Config.InstallDir)")
	}
	if strings.HasPrefix(f.Location, "/") || path.Clean(f.Location) != f.Location || strings.Contains(f.Location, "..") {
		return fmt.Errorf("invalid config drive location %q", f.Location)
	}
	base := "/install/" + f.Location
	read := func(rel string) ([]byte, error) {
		f.Paths = append(f.Paths, base+"/"+rel)
		b, err := os.ReadFile(filepath.Join(s.cfg.InstallDir, filepath.FromSlash(f.Location), filepath.FromSlash(rel)))
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", rel, err)
		}
		return b, nil
	}
	manifest, err := read("manifest")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(manifest), "\n") {
		if line == "" {
			continue
		}
		if !validTreePath(line) {
			return fmt.Errorf("the manifest lists an invalid path %q", line)
		}
		b, err := read(line)
		if err != nil {
			return err
		}
		f.Files[line] = b
	}
	return nil
}

// ConfigDriveFetches returns what node fetched of config drives, one entry per
// completed install whose postbootscripts carried config_ops_bmnode
// --config-drive, oldest first; every node's when node is "".
func (s *Server) ConfigDriveFetches(node string) []ConfigDriveFetch {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, nn := range s.st.order {
		s.advance(s.st.nodes[nn], s.cfg.Now())
	}
	var out []ConfigDriveFetch
	for _, f := range s.driveFetches {
		if node == "" || f.Node == node {
			c := f
			c.Paths = slices.Clone(f.Paths)
			c.Files = make(map[string][]byte, len(f.Files))
			for k, v := range f.Files {
				c.Files[k] = slices.Clone(v)
			}
			out = append(out, c)
		}
	}
	return out
}
