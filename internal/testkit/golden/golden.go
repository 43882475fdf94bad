// Package golden compares a program's output with a file kept under testdata, for
// tests of what an operator sees: help pages and usage errors.
package golden

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata with what the tests got")

// Run is one program run as a golden file holds it.
type Run struct {
	Code           int
	Stdout, Stderr string
}

// String is the golden file's form: the exit code, then each stream.
func (r Run) String() string {
	return fmt.Sprintf("exit %d\n--- stdout ---\n%s--- stderr ---\n%s", r.Code, r.Stdout, r.Stderr)
}

// Check fails t unless got equals testdata/<name>.golden; with -update it writes the
// file instead. It also holds every run to the rules all xcatbm programs keep: a run
// that exits 0 writes nothing to stderr, and a usage error (exit 2) writes nothing to
// stdout and exactly two lines to stderr, what is wrong and "see '... --help'".
func Check(t *testing.T, name string, got Run) {
	t.Helper()
	switch got.Code {
	case 0:
		if got.Stderr != "" {
			t.Errorf("%s: exit 0 with stderr %q", name, got.Stderr)
		}
	case 2:
		lines := strings.Split(strings.TrimSuffix(got.Stderr, "\n"), "\n")
		if got.Stdout != "" || len(lines) != 2 || !strings.HasPrefix(lines[1], "see '") || !strings.HasSuffix(lines[1], " --help'") {
			t.Errorf("%s: usage error is not one line and a pointer to --help: stdout %q stderr %q", name, got.Stdout, got.Stderr)
		}
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v (run the test with -update to create it)", name, err)
	}
	if got.String() != string(want) {
		t.Errorf("%s: got\n%s\nwant (%s)\n%s", name, got, path, want)
	}
}
