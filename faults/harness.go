// Package faults is a fault-injection harness for the xcatbm worker: it runs the
// worker as a real process against a simulated xCAT, a fresh PostgreSQL schema and a
// fresh RabbitMQ vhost, kills and restarts it, breaks its connections and feeds it
// duplicates and bad input, and checks that no job, xCAT side effect or
// notification is lost or repeated.
//
// The package holds only the harness and its tests (faults_test.go); `go test
// ./faults/` runs the short form, XCATBM_FAULTS=full the long one (make faults).
package faults

import (
	"encoding/base64"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Canary is the secret planted in every cast (auth token, admin password) and in the
// simulated cluster's BMC passwords; it must never show up where secrets do not belong.
const Canary = "CANARY-s3cr3t-7d1f0c"

// Row is one line of the reliability table: what one kind of fault did over its runs.
type Row struct {
	Fault string
	// Runs is how many times the fault was injected.
	Runs int
	// Jobs is how many jobs the scenarios created.
	Jobs int
	// Lost counts jobs (or casts) that never ended.
	Lost int
	// WronglyFailed counts jobs that ended failed or cancelled where done was right
	// (or done where failure was right).
	WronglyFailed int
	// HarmfulRepeats counts nodeset or rpower boot sent again to a node that had
	// already started installing.
	HarmfulRepeats int
	// MissingNotes counts expected notifications never seen on the broker.
	MissingNotes int
	// Reordered counts instances whose jobs were recorded or ran, or whose xCAT
	// calls reached the node, out of nova's cast order; Residue counts nodes that
	// kept something of a deleted or failed instance (lsdef attributes, the
	// postscript entry, power, the binding, tenant data trees). OrderChecked and
	// ResidueChecked say whether the scenario checked them at all.
	Reordered, Residue           int
	OrderChecked, ResidueChecked bool
	// Canary counts places a secret was found (log, notifications, schema,
	// dead-letter queue, the simulator's request record).
	Canary int
	// Resume holds, per restart, the time from the new process's start to its first
	// recorded transition; with several processes, per job of a killed one, the time
	// from the kill to the job's first transition by another.
	Resume []time.Duration
}

// Table collects rows from concurrent scenarios.
type Table struct {
	mu    sync.Mutex
	rows  map[string]*Row
	order []string
}

// Add merges r into the row for r.Fault.
func (t *Table) Add(r Row) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rows == nil {
		t.rows = map[string]*Row{}
	}
	x, ok := t.rows[r.Fault]
	if !ok {
		x = &Row{Fault: r.Fault}
		t.rows[r.Fault] = x
		t.order = append(t.order, r.Fault)
	}
	x.Runs += r.Runs
	x.Jobs += r.Jobs
	x.Lost += r.Lost
	x.WronglyFailed += r.WronglyFailed
	x.HarmfulRepeats += r.HarmfulRepeats
	x.MissingNotes += r.MissingNotes
	x.Reordered += r.Reordered
	x.Residue += r.Residue
	x.OrderChecked = x.OrderChecked || r.OrderChecked
	x.ResidueChecked = x.ResidueChecked || r.ResidueChecked
	x.Canary += r.Canary
	x.Resume = append(x.Resume, r.Resume...)
}

// Empty reports whether nothing was added.
func (t *Table) Empty() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.rows) == 0
}

// Write prints the table as Markdown, rows in order of the fault names.
func (t *Table) Write(w io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := append([]string(nil), t.order...)
	sort.Strings(names)
	fmt.Fprintln(w, "| fault | runs | jobs | lost | wrongly failed | harmful repeats | reordered | residue | canary | missing notifications | time to resume (median / max) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, n := range names {
		r := t.rows[n]
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %s | %s | %d | %d | %s |\n", r.Fault, r.Runs, r.Jobs, r.Lost, r.WronglyFailed,
			r.HarmfulRepeats, checked(r.OrderChecked, r.Reordered), checked(r.ResidueChecked, r.Residue), r.Canary,
			r.MissingNotes, resumeText(r.Resume))
	}
}

// checked prints a count, or "–" when the scenario did not check it.
func checked(ok bool, n int) string {
	if !ok {
		return "–"
	}
	return fmt.Sprint(n)
}

func resumeText(ds []time.Duration) string {
	if len(ds) == 0 {
		return "–"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	return fmt.Sprintf("%s / %s (n=%d)", r(s[len(s)/2]), r(s[len(s)-1]), len(s))
}

// action is the notification action of a kind of job.
var action = map[string]string{
	"spawn": "create", "destroy": "delete", "power_on": "power_on", "power_off": "power_off", "reboot": "reboot",
}

// errorPhase lists the kinds whose failure nova reports with an .error notification.
var errorPhase = map[string]bool{"spawn": true, "reboot": true}

// ExpectedEvents returns the versioned instance notifications a job of kind that
// ended in state must have published.
func ExpectedEvents(kind, state string) []string {
	if action[kind] == "" {
		return nil // a job about a node (cleaning), not an instance
	}
	a := "instance." + action[kind]
	out := []string{a + ".start"}
	switch state {
	case "done":
		out = append(out, a+".end")
	case "failed":
		if errorPhase[kind] {
			out = append(out, a+".error")
		}
	case "cancelled":
		if kind == "spawn" { // nova-compute's create.error when deleted during build
			out = append(out, a+".error")
		}
	}
	return out
}

// UserData is the tenant user data every cast carries (base64 in the cast, as nova
// sends it): a secret of the tenant's, with the canary inside.
const UserData = "#!/bin/sh\n# " + Canary + "\necho tenant-user-data\n"

// SecretForms are the forms in which a secret of the scenarios can travel: the canary
// itself (token, passwords, decoded user data) and the user data as nova encodes it.
var SecretForms = []string{Canary, base64.StdEncoding.EncodeToString([]byte(UserData))}

// ContainsCanary reports whether s holds a secret in any of SecretForms.
func ContainsCanary(s string) bool {
	for _, f := range SecretForms {
		if strings.Contains(s, f) {
			return true
		}
	}
	return false
}
