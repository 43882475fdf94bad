package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"xcatbm/internal/config"
	"xcatbm/internal/testkit/testdb"
	"xcatbm/worker/store"
)

func TestNodesListing(t *testing.T) {
	t.Parallel()
	fsys, dir := store.Migrations()
	db := testdb.New(t, fsys, dir)
	st := store.New(db.DB)
	ctx := context.Background()
	if _, err := st.UpsertNodes(ctx, []*store.Node{
		{Name: "n01", ComputeHost: "mn1", ResourceClass: "gold", BMCPassword: config.NewSecret("pw-n01")},
		{Name: "n02", ComputeHost: "mn1", ResourceClass: "gold"},
		{Name: "n03", ComputeHost: "mn1", ResourceClass: "gold"},
		{Name: "m01", ComputeHost: "mn2", ResourceClass: "silver"},
	}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetNodeRegistrations(ctx, []store.NodeRegistration{
		{Name: "n01", State: store.RegistrationReady, Detail: "compute node and resource provider u-1, inventory CUSTOM_GOLD: 1", ComputeNode: "u-1"},
		{Name: "n02", State: store.RegistrationFailed, Detail: "resource provider: name taken", ComputeNode: "u-2"},
		{Name: "m01", State: store.RegistrationReady, Detail: "compute node and resource provider u-9, inventory CUSTOM_SILVER: 1", ComputeNode: "u-9"},
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		notOut   []string
	}{
		{"every node", nil, 1, []string{"NODE", "m01", "n01", "ready", "CUSTOM_GOLD", "n02", "failed", "name taken", "n03", "pending",
			"not synced to nova and placement yet", "4 nodes: 2 ready, 1 pending, 1 failed"}, nil},
		{"one host", []string{"-s", "mn2"}, 0, []string{"m01", "CUSTOM_SILVER", "1 node: 1 ready"}, []string{"n01"}},
		{"a range with a pending node", []string{"n[01-03]", "-s", "mn1"}, 1, []string{"n01", "n02", "n03"}, []string{"m01"}},
		{"pending only", []string{"n01,n03"}, 3, []string{"2 nodes: 1 ready, 1 pending"}, []string{"n02"}},
		{"ready only", []string{"n01"}, 0, []string{"1 node: 1 ready"}, nil},
		{"not registered", []string{"n01,n07"}, 1, []string{"n07", "unregistered", "not registered"}, nil},
		{"none on a host", []string{"-s", "mn9"}, 0, []string{"no registered nodes"}, nil},
		{"bad noderange", []string{"n[01-"}, 2, nil, nil},
		{"two noderanges", []string{"n01", "n02"}, 2, nil, nil},
		{"bad output", []string{"--output", "yaml"}, 2, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			env := &environment{stdout: &out, stderr: &errOut, getenv: func(k string) (string, bool) {
				if k == "XCATBM_DATABASE_URL" {
					return db.URL, true
				}
				return "", false
			}}
			code := run(ctx, env, append([]string{"xcatbm", "nodes"}, c.args...))
			if code != c.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.wantCode, out.String(), errOut.String())
			}
			for _, w := range c.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range append(c.notOut, "pw-n01") {
				if strings.Contains(out.String()+errOut.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}

	var out bytes.Buffer
	env := &environment{stdout: &out, stderr: &out, getenv: func(k string) (string, bool) {
		if k == "XCATBM_DATABASE_URL" {
			return db.URL, true
		}
		return "", false
	}}
	if code := run(ctx, env, []string{"xcatbm", "nodes", "--output", "json", "n01,n02"}); code != 1 {
		t.Errorf("json: exit %d", code)
	}
	var rows []nodeRow
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if len(rows) != 2 || rows[0].Node != "n01" || rows[0].State != "ready" || rows[0].ComputeNode != "u-1" || rows[0].Since.IsZero() ||
		rows[0].ResourceClass != "CUSTOM_GOLD" || rows[1].State != "failed" {
		t.Errorf("json rows %+v", rows)
	}

	// A database without xcatbm's tables: said so, exit 1.
	empty := testdb.New(t, nil, "")
	out.Reset()
	env.getenv = func(k string) (string, bool) { return empty.URL, k == "XCATBM_DATABASE_URL" }
	if code := run(ctx, env, []string{"xcatbm", "nodes"}); code != 1 || !strings.Contains(out.String(), "no xcatbm tables") {
		t.Errorf("empty database: exit %d: %s", code, out.String())
	}
}
