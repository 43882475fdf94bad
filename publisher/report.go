package publisher

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"xcatbm/messages"
)

func jsonString(raw json.RawMessage, dst *string) error { return json.Unmarshal(raw, dst) }

// Summary is a finished job as the commands print it.
type Summary struct {
	JobID   string                   `json:"job_id"`
	Kind    string                   `json:"kind"`
	Host    string                   `json:"compute_host"`
	OK      int                      `json:"ok"`
	Pending int                      `json:"pending"`
	Failed  int                      `json:"failed"`
	Skipped int                      `json:"skipped"`
	Results []messages.JobItemResult `json:"results"`
}

// Summarize counts an end payload's results.
func Summarize(j *Job, p *messages.JobPayload) *Summary {
	s := &Summary{JobID: p.JobID, Kind: p.Kind, Results: p.Results}
	if j != nil {
		s.Host = j.Host
	}
	if s.Results == nil {
		s.Results = []messages.JobItemResult{}
	}
	for _, r := range p.Results {
		switch r.Status {
		case messages.ItemOK:
			s.OK++
		case messages.ItemPending:
			s.Pending++
		case messages.ItemFailed:
			s.Failed++
		case messages.ItemSkipped:
			s.Skipped++
		}
	}
	return s
}

// Exit codes of a followed job.
const (
	// ExitOK: every item succeeded or was skipped.
	ExitOK = 0
	// ExitFailed: an item failed.
	ExitFailed = 1
	// ExitPending: nothing failed, but some nodes are recorded and not yet in nova
	// and placement.
	ExitPending = 3
)

// ExitCode is ExitFailed when an item failed, else ExitPending when one is pending,
// else ExitOK.
func (s *Summary) ExitCode() int {
	switch {
	case s.Failed > 0:
		return ExitFailed
	case s.Pending > 0:
		return ExitPending
	}
	return ExitOK
}

// WriteText prints one line per item and the counts; item is "node" or "image".
func (s *Summary) WriteText(w io.Writer, item string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tSTATUS\tMESSAGE\n", strings.ToUpper(item))
	for _, r := range s.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Status, r.Message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	pending := ""
	if s.Pending > 0 {
		pending = fmt.Sprintf(", %d pending", s.Pending)
	}
	_, err := fmt.Fprintf(w, "%s %s on %s: %d ok%s, %d failed, %d skipped\n", s.Kind, s.JobID, s.Host, s.OK, pending, s.Failed, s.Skipped)
	return err
}

// WriteJSON prints the summary as one JSON object.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// Progress shows a job's progress on w: a bar redrawn in place on a terminal, a
// plain line per notification otherwise.
type Progress struct {
	w     io.Writer
	tty   bool
	item  string
	drawn bool
}

// NewProgress returns a progress display on w for items named item ("nodes").
func NewProgress(w io.Writer, item string) *Progress {
	return &Progress{w: w, tty: IsTerminal(w), item: item}
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

const barWidth = 30

// Update shows p.
func (pr *Progress) Update(p *messages.JobPayload) {
	if !pr.tty {
		fmt.Fprintf(pr.w, "progress: %d/%d %s\n", p.Done, p.Total, pr.item)
		return
	}
	fill := 0
	if p.Total > 0 {
		fill = barWidth * p.Done / p.Total
	}
	fmt.Fprintf(pr.w, "\r[%s%s] %d/%d %s", strings.Repeat("#", fill), strings.Repeat("-", barWidth-fill), p.Done, p.Total, pr.item)
	pr.drawn = true
}

// Done ends the display (the bar's line) before the summary is printed.
func (pr *Progress) Done(p *messages.JobPayload) {
	if pr.tty {
		pr.Update(p)
		fmt.Fprintln(pr.w)
	}
}
