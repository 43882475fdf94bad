package worker

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// crashClass is what a worker that takes over a job does with a step the dead one had
// started (its xCAT call may or may not have run).
type crashClass string

const (
	// reCheck: the step only reads xCAT's state (or xcatbm's record): it is read again.
	reCheck crashClass = "re-check"
	// resend: the step's change is sent again; repeating it changes nothing more.
	resend crashClass = "resend"
	// neverTwice: the step is sent again only when nodelist.status shows the first
	// one never happened; otherwise it is never resent.
	neverTwice crashClass = "never resend once it happened"
)

// readOnlySteps are the steps whose xCAT calls only read. Every state of stateTable
// must be classified: a read-only step here, a step with a recover function
// (neverTwice), or a change recovery resends (resend); TestCrashSemanticsDocument
// fails on a step this map and the table disagree on.
var readOnlySteps = map[State]bool{
	StateResolve: true, StateNoteStatus: true, StateWaitBooted: true, StateVerifyPower: true, StateWaitCleaned: true,
}

// classify reads a step's class from stateTable.
func classify(s State) (crashClass, error) {
	st, ok := stateTable[s]
	if !ok {
		return "", fmt.Errorf("state %s has no row in stateTable", s)
	}
	switch {
	case st.recover != nil:
		if st.recovery != checkStatus || readOnlySteps[s] {
			return "", fmt.Errorf("state %s: a recover function must be the status check (%q), got %q", s, checkStatus, st.recovery)
		}
		return neverTwice, nil
	case st.recovery != rerunSafe:
		return "", fmt.Errorf("state %s: no recover function but recovery %q", s, st.recovery)
	case readOnlySteps[s]:
		return reCheck, nil
	}
	return resend, nil
}

const (
	crashBegin = "<!-- crash-semantics: rendered from worker/machine.go by TestCrashSemanticsDocument; do not edit by hand -->\n"
	crashEnd   = "<!-- end crash-semantics -->\n"
)

// renderCrashSemantics renders, per kind of job, what a worker that takes the job
// over after a crash does with each step the dead worker had started.
func renderCrashSemantics() ([]byte, error) {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("%s\n", strings.TrimSuffix(crashBegin, "\n"))
	p("| kind | re-check (reads again) | resend (repeating changes nothing) | never resend once it happened (checked against `nodelist.status`) |\n")
	p("|---|---|---|---|\n")
	for _, k := range sortedKinds() {
		ks := kinds[k]
		cols := map[crashClass][]string{}
		seen := map[State]bool{}
		steps := append(append([]State(nil), ks.flow...), ks.undo...)
		for i, s := range steps {
			if seen[s] {
				continue
			}
			seen[s] = true
			c, err := classify(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			name := "`" + string(s) + "`"
			if i >= len(ks.flow) {
				name += " (undo)"
			}
			cols[c] = append(cols[c], name)
		}
		cell := func(c crashClass) string {
			if len(cols[c]) == 0 {
				return "–"
			}
			return strings.Join(cols[c], ", ")
		}
		p("| `%s` | %s | %s | %s |\n", k, cell(reCheck), cell(resend), cell(neverTwice))
	}
	p("%s", crashEnd)
	return b.Bytes(), nil
}

// TestCrashSemanticsDocument renders the crash semantics of every kind from the state
// machine's tables and fails when RELIABILITY.md's section differs, so the document
// cannot drift from the code. `go test ./worker -run TestCrashSemanticsDocument
// -update-machine` rewrites the section.
func TestCrashSemanticsDocument(t *testing.T) {
	for s := range stateTable {
		if _, err := classify(s); err != nil {
			t.Error(err)
		}
	}
	got, err := renderCrashSemantics()
	if err != nil {
		t.Fatal(err)
	}
	const path = "../RELIABILITY.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(doc, []byte(crashBegin))
	j := bytes.Index(doc, []byte(crashEnd))
	if i < 0 || j < i {
		t.Fatalf("%s has no crash-semantics section between its markers", path)
	}
	section := doc[i : j+len(crashEnd)]
	if bytes.Equal(section, got) {
		return
	}
	if *updateMachine {
		out := append(append(append([]byte(nil), doc[:i]...), got...), doc[j+len(crashEnd):]...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("RELIABILITY.md's crash semantics are out of date with machine.go; run: go test ./worker -run TestCrashSemanticsDocument -update-machine")
}
