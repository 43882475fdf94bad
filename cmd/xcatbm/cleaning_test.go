package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"xcatbm/internal/testkit/testdb"
	"xcatbm/worker"
	"xcatbm/worker/store"
)

func TestCleaningCommand(t *testing.T) {
	t.Parallel()
	fsys, dir := store.Migrations()
	db := testdb.New(t, fsys, dir)
	st := store.New(db.DB)
	ctx := context.Background()
	var nodes []*store.Node
	for _, n := range []string{"n01", "n02", "n03", "n04"} {
		nodes = append(nodes, &store.Node{Name: n, ComputeHost: "mn1"})
	}
	if _, err := st.UpsertNodes(ctx, nodes, ""); err != nil {
		t.Fatal(err)
	}
	set := func(node, m string) {
		if _, err := db.Exec(`UPDATE nodes SET maintenance = $2 WHERE name = $1`, node, m); err != nil {
			t.Fatal(err)
		}
	}
	set("n01", "cleaning failed: xCAT reports node n01 failed while erasing its disks")
	set("n02", "cleaning failed: deadline passed")
	set("n04", "cleaning failed: deadline passed")
	// n02's cleaning runs again: it is neither retried nor cleared now.
	if ok, err := st.RetryCleaning(ctx, "n02", worker.NewCleanJob("mn1", "n02", time.Now(), 0)); err != nil || !ok {
		t.Fatalf("retry n02: %v %v", ok, err)
	}
	run1 := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		env := &environment{stdout: &out, stderr: &errOut, getenv: func(k string) (string, bool) {
			if k == "XCATBM_DATABASE_URL" {
				return db.URL, true
			}
			return "", false
		}}
		return run(ctx, env, append([]string{"xcatbm", "cleaning"}, args...)), out.String(), errOut.String()
	}
	cleanJobs := func(node string) int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM jobs WHERE kind = 'clean' AND node = $1 AND finished_at IS NULL`, node).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, c := range []struct {
		name      string
		args      []string
		code      int
		out, errs []string
	}{
		{"list", nil, 1, []string{"n01", "erasing its disks", "n02", "cleaning", "n04"}, nil},
		{"retry a held node", []string{"retry", "n01"}, 0, []string{"n01: cleaning again"}, nil},
		{"retry an available node", []string{"retry", "n03"}, 1, nil, []string{"n03: not held"}},
		{"clear a node whose cleaning runs", []string{"clear", "n02"}, 1, nil, []string{"n02: not held"}},
		{"clear a held node", []string{"clear", "n04"}, 0, []string{"n04: cleared"}, nil},
		{"retry without nodes", []string{"retry"}, 2, nil, []string{"needs a noderange"}},
	} {
		code, out, errs := run1(c.args...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", c.name, code, c.code, out, errs)
		}
		for _, w := range c.out {
			if !strings.Contains(out, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", c.name, w, out)
			}
		}
		for _, w := range c.errs {
			if !strings.Contains(errs, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, w, errs)
			}
		}
	}
	if cleanJobs("n01") != 1 || cleanJobs("n02") != 1 || cleanJobs("n03") != 0 {
		t.Errorf("open clean jobs: n01 %d, n02 %d, n03 %d", cleanJobs("n01"), cleanJobs("n02"), cleanJobs("n03"))
	}
	for node, want := range map[string]string{"n01": "cleaning", "n02": "cleaning", "n03": "", "n04": ""} {
		n, err := st.Node(ctx, node)
		if err != nil || n.Maintenance != want {
			t.Errorf("%s maintenance %q, %v; want %q", node, n.Maintenance, err, want)
		}
	}
}
