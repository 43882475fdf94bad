package worker_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"xcatbm/worker"
)

// TestSpawnHistorySaysWhyTheIPStays: the set_ip step's history says why the node's
// xCAT ip was left alone, in the words that fit the spawn.
func TestSpawnHistorySaysWhyTheIPStays(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n01", "10.0.0.11"), ipmiNode("n02", "10.0.0.12"))
	e.startWorker(testConfig())
	for _, tc := range []struct {
		node, uuid, ip, cidr, want string
	}{
		{"n01", "a1a1a1a1-1111-4111-8111-111111111111", "", "", "skipped: no tenant IP (no tenant network): the node keeps its xCAT ip"},
		{"n02", "a2a2a2a2-1111-4111-8111-111111111111", "192.168.7.21", "192.168.7.0/24",
			"skipped: tenant IP is not in the node's xCAT subnet; the postscript adds it as an alias"},
	} {
		e.cast(castSpec{file: "cast-build_and_run_instance.json", node: tc.node, uuid: tc.uuid, hostname: "t-" + tc.node, image: image, ip: tc.ip, cidr: tc.cidr})
		j := e.waitJob(tc.uuid, worker.KindSpawn, 30*time.Second)
		if j.State != string(worker.StateDone) {
			t.Fatalf("%s: spawn ended %s: %s", tc.node, j.State, j.Error)
		}
		hist, err := e.st.History(context.Background(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		var detail string
		for _, h := range hist {
			if h.From == "set_ip" {
				detail = h.Detail
			}
		}
		if detail != tc.want {
			t.Errorf("%s: set_ip detail %q, want %q", tc.node, detail, tc.want)
		}
	}
}

// TestPowerOffHistory: a power-off run by a worker leaves one history row per thing
// that happened, in order: accepted, its first step started once (by the claim that
// took it), then each step's end starting the next, then the end.
func TestPowerOffHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ipmiNode("n01", "10.0.0.11"))
	e.startWorker(testConfig())
	const uuid = "b1b1b1b1-1111-4111-8111-111111111111"
	e.cast(castSpec{file: "cast-stop_instance.json", node: "n01", uuid: uuid})
	j := e.waitJob(uuid, worker.KindPowerOff, 30*time.Second)
	if j.State != string(worker.StateDone) {
		t.Fatalf("power-off ended %s: %s", j.State, j.Error)
	}
	hist, err := e.st.History(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hist {
		row := h.From + ">" + h.To + " " + h.Detail
		if h.StartedNext {
			row += " (next started)"
		}
		got = append(got, row)
	}
	want := []string{">resolve accepted", "resolve>resolve started", "resolve>power node n01 (next started)",
		"power>verify_power rpower off (next started)", "verify_power>done rpower stat: off"}
	if !slices.Equal(got, want) {
		t.Errorf("history\n %q\nwant\n %q", got, want)
	}
}
