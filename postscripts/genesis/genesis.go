// Package genesis holds what xcatbm runs in xCAT's genesis environment (the small
// Linux xCAT network-boots for discovery and maintenance), embedded in the binary:
// the disk cleaning between tenants, as a runimage tarball (nodeset <node>
// runimage=<url>: genesis fetches the tarball, unpacks it and runs its runme.sh).
package genesis

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"time"
)

//go:embed runme.sh
var runme []byte

// Cleaning modes: erase every disk's metadata (signatures and the first and last
// MiB), or every disk whole.
const (
	CleanMetadata = "metadata"
	CleanFull     = "full"
)

// CleanImageName is the file name of a mode's runimage tarball.
func CleanImageName(mode string) string { return "clean-" + mode + ".tgz" }

// CleanImage returns the runimage tarball that erases the node's disks as mode says:
// runme.sh and a file mode naming the mode. The same mode gives the same bytes.
func CleanImage(mode string) ([]byte, error) {
	if mode != CleanMetadata && mode != CleanFull {
		return nil, fmt.Errorf("cleaning mode %q: want %s or %s", mode, CleanMetadata, CleanFull)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"runme.sh", 0o755, runme}, {"mode", 0o644, []byte(mode + "\n")}} {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
