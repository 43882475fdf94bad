package worker

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

var updateMachine = flag.Bool("update-machine", false, "rewrite MACHINE.md from the state machine's tables")

// TestMachineDocument renders the state machine's tables (machine.go) to MACHINE.md
// and fails when the committed document differs, so the picture people read cannot
// drift from the code. `go test ./worker -run TestMachineDocument -update-machine`
// rewrites it.
func TestMachineDocument(t *testing.T) {
	got := renderMachine()
	if *updateMachine {
		if err := os.WriteFile("MACHINE.md", got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile("MACHINE.md")
	if err != nil {
		t.Fatalf("read MACHINE.md: %v (rewrite it with -update-machine)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("MACHINE.md is out of date with machine.go; run: go test ./worker -run TestMachineDocument -update-machine")
	}
}

// TestMachineTableIsWhole checks what the executor relies on: every state of every
// flow has a step, every kind a decoder, a flow and a deadline, and no two kinds
// share a request method.
func TestMachineTableIsWhole(t *testing.T) {
	seen := map[castKey]Kind{}
	internal := 0
	for k, ks := range kinds {
		if len(ks.flow) == 0 || ks.deadline <= 0 {
			t.Errorf("%s: flow and deadline are required", k)
		}
		if ks.internal {
			internal++
			if ks.decode != nil || ks.method != "" {
				t.Errorf("%s: a job no request makes has no method and no decoder", k)
			}
			continue
		}
		if ks.decode == nil || ks.method == "" {
			t.Errorf("%s: decoder and method are required", k)
		}
		if ks.then != "" && spec(ks.then) == nil {
			t.Errorf("%s leaves %s, which is no kind", k, ks.then)
		}
		if other, dup := seen[castKey{ks.namespace, ks.method}]; dup {
			t.Errorf("%s and %s both serve %s", k, other, ks.method)
		}
		seen[castKey{ks.namespace, ks.method}] = k
		for _, s := range ks.flow {
			if st, ok := stateTable[s]; !ok || st.step == nil || st.does == "" || st.recovery == "" {
				t.Errorf("%s: state %s has no complete row in stateTable", k, s)
			}
		}
		if ks.registration != (ks.register != nil) {
			t.Errorf("%s: a registration job needs its register function, and only it", k)
		}
		if !ks.registration && !ks.internal && (ks.nova.event == "" || ks.nova.action == "" || ks.nova.start == nil || ks.nova.end == nil) {
			t.Errorf("%s: a job about an instance needs nova's event, action, start and end", k)
		}
		if e := ks.nova.error; e != nil && !e.quiet && ks.nova.fault == "" {
			t.Errorf("%s: an error notification needs a fault class", k)
		}
		if slices.Contains(ks.flow, StatePower) && (ks.rpower == "" || ks.node.power == "") {
			t.Errorf("%s: the power step needs an rpower action and the power state to wait for", k)
		}
	}
	if len(byMethod) != len(kinds)-internal {
		t.Errorf("byMethod has %d methods for %d kinds requests make", len(byMethod), len(kinds)-internal)
	}
}

func sortedKinds() []Kind {
	out := make([]Kind, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	// Instance jobs first, in flow order of a server's life, then xcatbm's own.
	order := map[Kind]int{KindSpawn: 0, KindPowerOff: 1, KindPowerOn: 2, KindReboot: 3, KindRebuild: 4, KindRescue: 5, KindUnrescue: 6, KindDestroy: 9}
	sort.Slice(out, func(i, j int) bool {
		oi, iok := order[out[i]]
		oj, jok := order[out[j]]
		switch {
		case iok && jok:
			return oi < oj
		case iok != jok:
			return iok
		}
		return out[i] < out[j]
	})
	return out
}

func renderMachine() []byte {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# The job state machine\n\n")
	p("Rendered from `worker/machine.go` by `TestMachineDocument`; do not edit by hand\n")
	p("(`go test ./worker -run TestMachineDocument -update-machine` rewrites it).\n\n")
	p("Every job walks its kind's flow one step at a time. After each step it goes on to the\n")
	p("next (advance), runs the same step again later (wait: polling; retry: a transient\n")
	p("error, with backoff), or ends `failed` (a permanent error, the deadline). A job of an\n")
	p("instance ends `cancelled` at its next step boundary when the instance's terminate\n")
	p("arrives, and before its first step when the terminate was recorded first. After the\n")
	p("last step it is `done`. A kind with undo steps that fails after changing xCAT first\n")
	p("runs them (\"on failure, first\"), past the deadline and uncancelled, each taking back\n")
	p("only what the job did; then it ends `failed` with the original fault and its node free.\n\n")

	p("## Kinds\n\n")
	p("| kind | request | flow | on failure, first | deadline | node | nova event |\n|---|---|---|---|---|---|---|\n")
	for _, k := range sortedKinds() {
		ks := kinds[k]
		req := "`" + ks.method + "`"
		if ks.namespace != "" {
			req = "`" + ks.namespace + "." + ks.method + "`"
		}
		if ks.internal {
			req = "left by another job"
		}
		flow := make([]string, len(ks.flow))
		for i, s := range ks.flow {
			flow[i] = "`" + string(s) + "`"
		}
		undo := make([]string, len(ks.undo))
		for i, s := range ks.undo {
			undo[i] = "`" + string(s) + "`"
		}
		undoText := "–"
		if len(undo) > 0 {
			undoText = strings.Join(undo, " → ")
		}
		p("| `%s` | %s | %s | %s | %s | %s | %s |\n", k, req, strings.Join(flow, " → "), undoText, ks.deadline, nodeText(ks), code(ks.nova.event))
	}

	p("\n## Steps\n\n")
	p("| step | what it does in xCAT | after a crash mid-step | past the deadline |\n|---|---|---|---|\n")
	var states []State
	for s := range stateTable {
		states = append(states, s)
	}
	slices.Sort(states)
	for _, s := range states {
		st := stateTable[s]
		past := "fails before running"
		if st.pastDeadline {
			past = "runs; decides itself"
		}
		p("| `%s` | %s | %s | %s |\n", s, strings.ReplaceAll(st.does, "|", `\|`), st.recovery, past)
	}

	p("\n## What nova sees\n\n")
	p("Notifications `instance.<action>.<phase>` (versioned and legacy) report the instance\n")
	p("state shown; `Instance.save` calls go through nova-conductor in the order listed\n")
	p("(`expected` is the expected_task_state guard).\n\n")
	p("| kind | phase | notification (vm / power / task) | Instance.save |\n|---|---|---|---|\n")
	for _, k := range sortedKinds() {
		ks := kinds[k]
		if ks.registration || ks.internal {
			continue
		}
		for _, ph := range []struct {
			name string
			p    *phase
		}{{"start", ks.nova.start}, {"end", ks.nova.end}, {"error", ks.nova.error}, {"cancelled", ks.nova.cancelled}} {
			if ph.p == nil {
				continue
			}
			note := "none"
			if !ph.p.quiet {
				vm, power := ph.p.vm, fmt.Sprint(int(ph.p.power))
				if vm == "" {
					vm, power = "as cast", "as cast"
				}
				task := ph.p.task
				if task == "" {
					task = "null"
				}
				switch ph.name {
				case "error":
					note = fmt.Sprintf("`instance.%s.error`: %s / %s / %s (fault %s)", ks.nova.action, vm, power, task, ks.nova.fault)
				case "cancelled":
					note = fmt.Sprintf("`instance.%s.error`: %s / %s / %s (fault %s)", ks.nova.action, vm, power, task, ks.nova.cancelFault)
				default:
					note = fmt.Sprintf("`instance.%s.%s`: %s / %s / %s", ks.nova.action, ph.name, vm, power, task)
				}
			}
			var saves []string
			for _, sv := range ph.p.saves {
				saves = append(saves, saveText(sv))
			}
			if ph.name == "end" {
				for _, op := range ks.nova.endOps {
					saves = append(saves, "then "+op)
				}
			}
			if len(saves) == 0 {
				saves = []string{"–"}
			}
			p("| `%s` | %s | %s | %s |\n", k, ph.name, note, strings.Join(saves, "<br>"))
		}
	}

	p("\n## Diagrams\n\n")
	for _, k := range sortedKinds() {
		ks := kinds[k]
		p("### %s\n\n```mermaid\nstateDiagram-v2\n", k)
		prev := "[*]"
		for _, s := range ks.flow {
			p("    %s --> %s\n", prev, s)
			prev = string(s)
		}
		p("    %s --> done\n    done --> [*]\n", prev)
		for _, s := range ks.flow {
			if st := stateTable[s]; st.pastDeadline {
				p("    %s --> %s: wait\n", s, s)
			}
		}
		if len(ks.undo) > 0 {
			p("    state \"undo (a failure after xCAT was changed)\" as undo\n    state undo {\n")
			prev := "[*]"
			for _, s := range ks.undo {
				p("        %s --> %s\n", prev, s)
				prev = string(s)
			}
			p("        %s --> [*]\n    }\n    undo --> failed\n", prev)
		}
		p("    failed --> [*]\n    note left of failed: from any step (a permanent error, the deadline)\n")
		if !ks.registration && !ks.internal {
			p("    cancelled --> [*]\n    note left of cancelled: from any step boundary, once the instance is terminated\n")
		}
		p("```\n\n")
	}
	return b.Bytes()
}

func code(s string) string {
	if s == "" {
		return "–"
	}
	return "`" + s + "`"
}

func nodeText(ks *kindSpec) string {
	var parts []string
	if ks.node.claim {
		parts = append(parts, "claims it for the instance")
	}
	if ks.node.owned {
		parts = append(parts, "must run the instance")
	}
	if ks.bootFrom != "" {
		parts = append(parts, "boots from "+ks.bootFrom)
	}
	if ks.node.power != "" {
		parts = append(parts, "power "+ks.node.power)
	}
	if ks.node.free {
		parts = append(parts, "frees it")
	}
	if ks.lastWord {
		parts = append(parts, "cancels the instance's earlier jobs")
	}
	if ks.then != "" {
		parts = append(parts, "leaves a "+string(ks.then)+" job when cleaning is on")
	}
	if ks.node.cleans {
		parts = append(parts, "node in maintenance until done")
	}
	if ks.registration {
		parts = append(parts, "registration")
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, "; ")
}

func saveText(sv NovaSave) string {
	keys := make([]string, 0, len(sv.Updates))
	for k := range sv.Updates {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%s", k, valueText(sv.Updates[k]))
	}
	out := strings.Join(parts, ", ")
	if sv.HasExpected {
		out += " (expected " + valueText(sv.Expected) + ")"
	}
	return out
}

func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case NovaValue:
		return string(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = valueText(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		return fmt.Sprint(x)
	}
}
