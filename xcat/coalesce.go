package xcat

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
)

// CoalesceConfig configures a Coalescer.
type CoalesceConfig struct {
	// Window is how long a request waits for others of the same command and
	// arguments before the merged request is sent. Zero or negative disables
	// coalescing: every request is sent as is.
	Window time.Duration
	// MaxNodes sends a merged request at once when it reaches this many nodes
	// (default 1000), whatever MaxInFlight says.
	MaxNodes int
	// MaxInFlight is how many merged requests of one command and arguments may be
	// in flight at once (default 1). While that many are, the next merged request
	// goes on gathering callers after its window and is sent when one returns, so a
	// stream of calls becomes about one request per round trip instead of one per
	// window.
	MaxInFlight int
	// MaxHold bounds how long a merged request whose window has passed waits for
	// room (default 1s): a long request of the same key, such as a power sweep over
	// thousands of nodes, must not hold back a small one for its whole duration.
	MaxHold time.Duration
	// Commands are the commands that may be merged; nil means DefaultCoalesced.
	Commands map[string]bool
}

// DefaultCoalesced are the commands whose answers are per node and whose arguments
// do not name nodes, so that requests with equal arguments can be sent as one.
var DefaultCoalesced = map[string]bool{
	"rpower": true, "nodeset": true, "nodels": true, "rsetboot": true,
	"rbootseq": true, "rnetboot": true, "makehosts": true,
}

// Coalescer is a Backend that merges concurrent requests of the same command with the
// same arguments into one request over the union noderange, then gives each caller
// the part of the answer for its own nodes. xCAT's cost is mostly per request, so a
// thousand jobs' "rpower boot" cost about what one does. Calls are gathered for a
// window, and for as long as MaxInFlight merged requests of the same command and
// arguments are in flight, so a steady stream of calls costs about one request per
// round trip.
//
// A request is merged only when its noderange is a plain list or range of names (it
// expands without asking xCAT) and it carries no environment and no standard input.
// When xCAT refuses a merged request as a whole (one unknown node makes xcatd reject
// it all) or answers at the top level, every caller's request is sent again on its
// own, so one caller's bad node never fails the others. It is safe for concurrent use.
type Coalescer struct {
	next Backend
	cfg  CoalesceConfig

	mu       sync.Mutex
	pending  map[string]*mergeBatch
	inFlight map[string]int // merged requests in flight, by key
	sent     int            // merged requests sent, for tests and metrics
}

// NewCoalescer wraps next.
func NewCoalescer(next Backend, cfg CoalesceConfig) *Coalescer {
	if cfg.MaxNodes <= 0 {
		cfg.MaxNodes = 1000
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 1
	}
	if cfg.MaxHold <= 0 {
		cfg.MaxHold = time.Second
	}
	if cfg.Commands == nil {
		cfg.Commands = DefaultCoalesced
	}
	return &Coalescer{next: next, cfg: cfg, pending: map[string]*mergeBatch{}, inFlight: map[string]int{}}
}

type mergeBatch struct {
	key     string
	req     Request
	callers []*mergeCaller
	nodes   map[string]bool
	order   []string
	timer   *time.Timer
	due     bool // the window has passed: send as soon as the key has room
	flushed bool
}

type mergeCaller struct {
	req   Request
	nodes []string
	done  chan struct{}
	resp  *Response
	err   error
}

// Do sends req, merged with concurrent requests of the same command and arguments
// when allowed; see Coalescer.
func (c *Coalescer) Do(ctx context.Context, req Request) (*Response, error) {
	// Standard input (a chdef -z stanza, say) is one request's own data: such requests
	// are never merged.
	if c.cfg.Window <= 0 || !c.cfg.Commands[req.Command] || req.Noderange == "" || len(req.Env) > 0 || req.Stdin != "" {
		return c.next.Do(ctx, req)
	}
	nodes, err := ExpandNoderange(ctx, req.Noderange, nil)
	if err != nil || len(nodes) == 0 {
		return c.next.Do(ctx, req)
	}
	call := &mergeCaller{req: req, nodes: nodes, done: make(chan struct{})}
	key := req.Command + "\x00" + strings.Join(req.Args, "\x00")
	c.mu.Lock()
	b := c.pending[key]
	if b == nil {
		b = &mergeBatch{key: key, req: req, nodes: map[string]bool{}}
		c.pending[key] = b
		b.timer = time.AfterFunc(c.cfg.Window, func() { c.windowPassed(b) })
	}
	b.callers = append(b.callers, call)
	for _, n := range nodes {
		if !b.nodes[n] {
			b.nodes[n] = true
			b.order = append(b.order, n)
		}
	}
	full := len(b.order) >= c.cfg.MaxNodes
	c.mu.Unlock()
	if full {
		go c.flush(b)
	}
	select {
	case <-call.done:
		return call.resp, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Sent returns how many merged requests were sent.
func (c *Coalescer) Sent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent
}

// windowPassed sends b when fewer than MaxInFlight merged requests of its key are in
// flight; otherwise b goes on gathering callers and is sent when one of them returns.
func (c *Coalescer) windowPassed(b *mergeBatch) {
	c.mu.Lock()
	b.due = true
	room := c.inFlight[b.key] < c.cfg.MaxInFlight
	if !room && !b.flushed {
		b.timer = time.AfterFunc(c.cfg.MaxHold, func() { c.flush(b) })
	}
	c.mu.Unlock()
	if room {
		c.flush(b)
	}
}

// returned is called when a merged request of key came back: the key's next batch,
// if its window has passed, goes out now.
func (c *Coalescer) returned(key string) {
	c.mu.Lock()
	c.inFlight[key]--
	if c.inFlight[key] <= 0 {
		delete(c.inFlight, key)
	}
	b := c.pending[key]
	ready := b != nil && b.due && !b.flushed
	c.mu.Unlock()
	if ready {
		c.flush(b)
	}
}

func (c *Coalescer) flush(b *mergeBatch) {
	c.mu.Lock()
	if b.flushed {
		c.mu.Unlock()
		return
	}
	b.flushed = true
	b.timer.Stop()
	if c.pending[b.key] == b {
		delete(c.pending, b.key)
	}
	c.sent++
	c.inFlight[b.key]++
	c.mu.Unlock()
	defer c.returned(b.key)

	// The merged request runs on its own context: one caller giving up must not cancel
	// the others' work. Each caller still stops waiting on its own context.
	ctx := context.Background()
	if len(b.callers) == 1 {
		only := b.callers[0]
		only.resp, only.err = c.next.Do(ctx, only.req)
		close(only.done)
		return
	}
	merged := b.req
	merged.Noderange = CompressNoderange(b.order)
	resp, err := c.next.Do(ctx, merged)
	var cmdErr *CommandError
	if errors.As(err, &cmdErr) || (err == nil && (len(resp.Errors) > 0 || len(resp.Data) > 0)) {
		// A whole-request refusal or a top-level answer cannot be split by node: ask
		// for each caller's nodes on their own.
		var wg sync.WaitGroup
		for _, call := range b.callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				call.resp, call.err = c.next.Do(ctx, call.req)
				close(call.done)
			}()
		}
		wg.Wait()
		return
	}
	for _, call := range b.callers {
		if err != nil {
			call.err = err
		} else {
			call.resp = split(resp, call.nodes)
		}
		close(call.done)
	}
}

// split returns the part of resp that concerns nodes.
func split(resp *Response, nodes []string) *Response {
	out := &Response{Warnings: append([]string(nil), resp.Warnings...)}
	for _, n := range nodes {
		o, ok := resp.Nodes[n]
		if !ok {
			continue
		}
		cp := *o
		out.Node(n)
		out.Nodes[n] = &cp
		out.ErrorCode |= o.ErrorCode
	}
	return out
}
