package publisher

import (
	"bytes"
	"strings"
	"testing"

	"xcatbm/messages"
)

func TestSummary(t *testing.T) {
	item := func(name, status string) messages.JobItemResult {
		return messages.JobItemResult{Name: name, Status: status, Message: status + " " + name}
	}
	for _, c := range []struct {
		name     string
		results  []messages.JobItemResult
		wantCode int
		wantLine string
	}{
		{"all ok", []messages.JobItemResult{item("n1", messages.ItemOK), item("n2", messages.ItemSkipped)}, ExitOK,
			"register_nodes j1 on mn1: 1 ok, 0 failed, 1 skipped"},
		{"pending", []messages.JobItemResult{item("n1", messages.ItemOK), item("n2", messages.ItemPending)}, ExitPending,
			"register_nodes j1 on mn1: 1 ok, 1 pending, 0 failed, 0 skipped"},
		{"failed wins over pending", []messages.JobItemResult{item("n1", messages.ItemFailed), item("n2", messages.ItemPending)}, ExitFailed,
			"register_nodes j1 on mn1: 0 ok, 1 pending, 1 failed, 0 skipped"},
		{"nothing", nil, ExitOK, "register_nodes j1 on mn1: 0 ok, 0 failed, 0 skipped"},
	} {
		s := Summarize(&Job{Host: "mn1"}, &messages.JobPayload{JobID: "j1", Kind: "register_nodes", Results: c.results})
		var out bytes.Buffer
		if err := s.WriteText(&out, "node"); err != nil {
			t.Fatal(err)
		}
		if s.ExitCode() != c.wantCode || !strings.HasSuffix(out.String(), c.wantLine+"\n") {
			t.Errorf("%s: exit %d (want %d), output:\n%s\nwant last line %q", c.name, s.ExitCode(), c.wantCode, out.String(), c.wantLine)
		}
		for _, r := range c.results {
			if !strings.Contains(out.String(), r.Message) {
				t.Errorf("%s: output lacks %q", c.name, r.Message)
			}
		}
	}
}
