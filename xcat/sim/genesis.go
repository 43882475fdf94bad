package sim

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The simulator's model of xCAT's genesis running a runimage (nodeset <node>
// runimage=<url>): once the node is powered on from the network, genesis fetches the
// tarball at url from the management node's web server (the install directory,
// Config.InstallDir, served at /install), unpacks it and runs its runme.sh for
// Timeline.Cleaning. xcatbm's cleaning image (postscripts/genesis) reads its mode from
// the tarball's mode file and powers the node off when done; the simulator does
// the same, and with FaultCleanFail reports status failed and leaves the node on, as
// the script does when a disk cannot be erased.

// Cleaning is one runimage a node ran.
type Cleaning struct {
	Node string
	// Start is when genesis started it; End when it ended (powered off or failed).
	Start, End time.Time
	// URL is the runimage argument; Mode the tarball's mode file ("" if none).
	URL, Mode string
	// Err says why it failed ("" when it succeeded).
	Err string
}

// Cleanings returns the runimages node ran, oldest first.
func (s *Server) Cleanings(node string) []Cleaning {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Cleaning
	for _, c := range s.cleanings {
		if c.Node == node {
			out = append(out, c)
		}
	}
	return out
}

// runImage ends a node's runimage at end: it reads the tarball as genesis would and
// powers the node off, or fails it.
func (s *Server) runImage(n *node, url string, start, end time.Time) {
	c := Cleaning{Node: n.name, Start: start, End: end, URL: url}
	mode, err := s.readRunImage(url)
	c.Mode = mode
	switch {
	case err != nil:
		c.Err = err.Error()
	case s.faults.nodeHas(FaultCleanFail, n.name):
		c.Err = "a disk could not be erased"
	}
	s.cleanings = append(s.cleanings, c)
	rec := Record{Time: end, Command: "GET", Noderange: n.name, Args: []string{url}, Nodes: []string{n.name}}
	if c.Err != "" {
		rec.ErrorCode = 1
		s.records = append(s.records, rec)
		s.setStatus(n, "failed", end)
		return
	}
	s.records = append(s.records, rec)
	n.power = "off"
}

// readRunImage fetches a runimage tarball from the install directory and returns its
// mode file's content.
func (s *Server) readRunImage(raw string) (string, error) {
	if s.cfg.InstallDir == "" {
		return "", errors.New("the simulator has no install directory (Config.InstallDir)")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("runimage %q is not an http URL", raw)
	}
	rel, ok := strings.CutPrefix(u.Path, "/install/")
	if !ok || strings.Contains(rel, "..") {
		return "", fmt.Errorf("runimage %q is not under /install/", raw)
	}
	b, err := os.ReadFile(filepath.Join(s.cfg.InstallDir, filepath.FromSlash(rel)))
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", u.Path, err)
	}
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("runimage %s: %w", u.Path, err)
	}
	tr := tar.NewReader(gz)
	var mode string
	runme := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("runimage %s: %w", u.Path, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return "", fmt.Errorf("runimage %s: %w", u.Path, err)
		}
		switch h.Name {
		case "runme.sh":
			runme = true
		case "mode":
			mode = strings.TrimSpace(string(data))
		}
	}
	if !runme {
		return mode, fmt.Errorf("runimage %s has no runme.sh", u.Path)
	}
	return mode, nil
}
