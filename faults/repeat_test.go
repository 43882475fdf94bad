package faults

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"xcatbm/messages/novacast"
	"xcatbm/xcat/sim"
)

// rescueImage is the netboot osimage the scenarios' workers rescue into.
const rescueImage = "rescue-x86_64-netboot-compute"

// repeatCase is one operation of TestRepeatedCommands.
type repeatCase struct {
	kind string // the job kind under test
	file string // the cast that makes it (for clean: the terminate that leaves it)
	// prepare are the casts run to done first, in order (the spawn, the rescue).
	prepare []string
	// killOn is the rpower action whose request the kill waits for (sent to the
	// simulator, slowed, not yet answered); killState the job's state then.
	killOn, killState string
	// boots is how many rpower boot requests the job must send: exactly that many.
	boots int
	// forbidden are rpower actions the job must never send.
	forbidden []string
}

// repeatCases are every operation a worker runs for nova, and the cleaning a destroy
// leaves.
var repeatCases = []repeatCase{
	{kind: "spawn", file: novacast.Build, killOn: "boot", killState: "boot", boots: 1, forbidden: []string{"on", "off"}},
	{kind: "destroy", file: novacast.Terminate, prepare: []string{novacast.Build}, killOn: "off", killState: "power_off", forbidden: []string{"boot", "on"}},
	{kind: "power_off", file: novacast.Stop, prepare: []string{novacast.Build}, killOn: "off", killState: "power", forbidden: []string{"boot", "on"}},
	{kind: "power_on", file: novacast.Start, prepare: []string{novacast.Build, novacast.Stop}, killOn: "on", killState: "power", forbidden: []string{"boot", "off"}},
	{kind: "reboot", file: novacast.Reboot, prepare: []string{novacast.Build}, killOn: "boot", killState: "reboot", boots: 1, forbidden: []string{"on", "off"}},
	{kind: "rebuild", file: novacast.TenantRebuild, prepare: []string{novacast.Build}, killOn: "boot", killState: "boot", boots: 1, forbidden: []string{"on"}},
	{kind: "rescue", file: novacast.TenantRescue, prepare: []string{novacast.Build}, killOn: "boot", killState: "boot", boots: 1, forbidden: []string{"on"}},
	{kind: "unrescue", file: novacast.TenantUnrescue, prepare: []string{novacast.Build, novacast.TenantRescue}, killOn: "boot", killState: "reboot", boots: 1, forbidden: []string{"on"}},
	{kind: "clean", file: novacast.Terminate, prepare: []string{novacast.Build}, killOn: "boot", killState: "boot", boots: 1, forbidden: []string{"on"}},
}

// kindOf is the job kind a cast of file makes.
var kindOf = map[string]string{
	novacast.Build: "spawn", novacast.Terminate: "destroy", novacast.Stop: "power_off", novacast.Start: "power_on",
	novacast.Reboot: "reboot", novacast.TenantRebuild: "rebuild", novacast.TenantRescue: "rescue", novacast.TenantUnrescue: "unrescue",
}

// TestRepeatedCommands runs every operation on its own instance and node with its
// cast delivered twice (same _unique_id), SIGKILLs the worker while the operation's
// rpower request is at xCAT (slowed, not yet answered), starts a new worker and
// delivers the cast a third time. Each operation must make one job, end done, and
// reach its node with exactly the rpower boot requests it needs (none again after a
// crash: a node is never rebooted twice for one operation), no nodeset after its boot,
// and no power action its kind never sends — counted from the simulator's record over
// the job's lifetime.
func TestRepeatedCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t, len(repeatCases), "--rescue-osimage", rescueImage)
	e.start()
	kills, jobs := 0, 0
	want := expect{}
	for i, c := range repeatCases {
		node, uuid := nodeName(i+1), instanceUUID(i+1)
		for _, f := range c.prepare {
			pc := spawnCast(i + 1)
			pc.file = f
			e.cast(pc)
			jobs++
			if st := e.waitState(uuid, kindOf[f], "done", 30*time.Second); st != "done" {
				t.Fatalf("%s: preparing %s ended %s", c.kind, kindOf[f], st)
			}
		}
		before := e.sim.CountRequests("rpower", c.killOn)
		e.sim.SetFault(sim.Fault{Kind: sim.FaultSlow, Command: "rpower", Delay: 1500 * time.Millisecond})
		oc := spawnCast(i + 1)
		oc.file, oc.uniqueID = c.file, fmt.Sprintf("repeat%026d", i+1)
		e.cast(oc)
		e.cast(oc)
		jobs++
		if c.kind == "clean" {
			jobs++ // the destroy that leaves it
		}
		deadline := time.Now().Add(30 * time.Second)
		for e.sim.CountRequests("rpower", c.killOn) <= before && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		st := e.jobState(node, c.kind)
		if st != c.killState {
			t.Errorf("%s: rpower %s sent in state %q, want %s", c.kind, c.killOn, st, c.killState)
		}
		e.kill()
		kills++
		e.sim.ClearFaults()
		e.start()
		e.cast(oc)
		if got := e.waitNodeJob(node, c.kind, 60*time.Second); got != "done" {
			t.Errorf("%s: ended %s", c.kind, got)
		}
	}
	row := e.verify("kill mid-step + duplicate casts (×3), every operation", kills, jobs, want, 90*time.Second)
	repeats := 0
	for i, c := range repeatCases {
		repeats += e.checkRepeats(c, nodeName(i+1))
	}
	table.Add(Row{Fault: row.Fault, HarmfulRepeats: repeats})
}

// jobState returns the state of the latest job of kind on node ("" when none).
func (e *env) jobState(node, kind string) string {
	var st string
	_ = e.db.QueryRow(`SELECT state FROM jobs WHERE node = $1 AND kind = $2 ORDER BY id DESC LIMIT 1`, node, kind).Scan(&st)
	return st
}

// waitNodeJob waits until the latest job of kind on node has ended; it returns its state.
func (e *env) waitNodeJob(node, kind string, within time.Duration) string {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		switch st := e.jobState(node, kind); st {
		case "done", "failed", "cancelled":
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e.jobState(node, kind)
}

// checkRepeats counts the harmful requests c's job sent to node: rpower boot other
// than c.boots times, nodeset (but offline) after its first boot, a forbidden power action; and
// more than one job for the thrice-delivered cast.
func (e *env) checkRepeats(c repeatCase, node string) int {
	e.t.Helper()
	var n int
	var from, to time.Time
	err := e.db.QueryRow(`SELECT count(*), min(created_at), max(coalesce(finished_at, 'infinity')) FROM jobs WHERE node = $1 AND kind = $2`, node, c.kind).Scan(&n, &from, &to)
	if err != nil {
		e.t.Errorf("%s: jobs: %v", c.kind, err)
		return 1
	}
	bad := 0
	if n != 1 {
		bad++
		e.t.Errorf("%s: %d jobs on %s for one cast delivered three times", c.kind, n, node)
	}
	boots := 0
	for _, r := range e.sim.NodeCalls(node) {
		if r.Time.Before(from) || r.Time.After(to) {
			continue
		}
		what := callKind(r)
		switch {
		case what == "rpower boot":
			boots++
		case r.Command == "nodeset" && !slices.Contains(r.Args, "offline"):
			// nodeset offline after the boot is a step (clean_finish), not a repeat.
			if boots > 0 {
				bad++
				e.t.Errorf("%s: nodeset %v on %s after its rpower boot", c.kind, r.Args, node)
			}
		}
		if a, ok := strings.CutPrefix(what, "rpower "); ok && slices.Contains(c.forbidden, a) {
			bad++
			e.t.Errorf("%s: rpower %s on %s, which a %s never sends", c.kind, a, node, c.kind)
		}
	}
	if boots != c.boots {
		bad++
		e.t.Errorf("%s: rpower boot sent %d times to %s, want %d", c.kind, boots, node, c.boots)
	}
	return bad
}
