package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"xcatbm/internal/logging"
	"xcatbm/internal/loop"
	"xcatbm/worker/store"
)

// executor claims runnable jobs and runs their steps in batches: all claimed jobs in
// the same state run their step together, so their xCAT calls share one noderange and
// their transitions share one transaction.
type executor struct {
	w    *Worker
	loop *loop.Loop

	mu       sync.Mutex
	inflight map[int64]bool
	batches  sync.WaitGroup
}

func newExecutor(w *Worker) *executor {
	e := &executor{w: w, inflight: map[int64]bool{}}
	// New work pokes the loop; the settle lets what arrives with it catch up, so it
	// runs its steps together with it.
	e.loop = &loop.Loop{Name: "claim jobs", Interval: w.cfg.ClaimInterval, Settle: w.cfg.GatherWindow,
		Backoff: w.cfg.Backoff, Log: w.log, Pass: e.claimAndRun}
	return e
}

// poke makes the executor look for work now.
func (e *executor) poke() { e.loop.Poke() }

// run claims and dispatches jobs until ctx ends, then waits for running batches.
func (e *executor) run(ctx context.Context) error {
	defer e.batches.Wait()
	return e.loop.Run(ctx)
}

// claimAndRun claims due jobs and starts their batches; more says it claimed some,
// so more may be due.
func (e *executor) claimAndRun(ctx context.Context) (bool, error) {
	claimed, err := e.claim(ctx)
	if err != nil || len(claimed) == 0 {
		return false, err
	}
	for _, batch := range batches(claimed) {
		e.batches.Add(1)
		go func() {
			defer e.batches.Done()
			e.runBatch(ctx, batch)
		}()
	}
	return true, nil
}

func (e *executor) claim(ctx context.Context) ([]*store.Job, error) {
	e.mu.Lock()
	room := e.w.cfg.MaxInFlight - len(e.inflight)
	exclude := make([]int64, 0, len(e.inflight))
	for id := range e.inflight {
		exclude = append(exclude, id)
	}
	e.mu.Unlock()
	if room <= 0 {
		return nil, nil
	}
	start := startRule
	start.Now = e.w.now()
	jobs, err := e.w.store.ClaimJobsStarting(ctx, e.w.id, e.w.cfg.ComputeHost, min(room, e.w.cfg.ClaimBatch), e.w.cfg.Lease, exclude, &start)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	for _, j := range jobs {
		e.inflight[j.ID] = true
	}
	e.mu.Unlock()
	return jobs, nil
}

// startRule is the part of step's rule a claim can apply in the database: a job whose
// step has not started runs it when its state has a step, its cancellation was not
// requested and its deadline has not passed (or its step runs past deadlines). The
// claim records those jobs' steps as started (store.ClaimJobsStarting), so prepare
// has nothing left to mark for them. The jobs it leaves out (cancelled, past their
// deadline, an undo that runs whatever comes) go through step's rule as before.
var startRule = func() store.StartRule {
	var r store.StartRule
	for st, spec := range stateTable {
		if spec.step == nil {
			continue
		}
		r.States = append(r.States, string(st))
		if spec.pastDeadline {
			r.PastDeadline = append(r.PastDeadline, string(st))
		}
	}
	sort.Strings(r.States)
	sort.Strings(r.PastDeadline)
	return r
}()

// batches groups jobs by (kind, state), in id order.
func batches(jobs []*store.Job) [][]*store.Job {
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].ID < jobs[j].ID })
	var keys []string
	groups := map[string][]*store.Job{}
	for _, j := range jobs {
		k := j.Kind + "/" + j.State
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], j)
	}
	out := make([][]*store.Job, 0, len(keys))
	for _, k := range keys {
		out = append(out, groups[k])
	}
	return out
}

// runBatch runs the steps of jobs that share a kind and state. After each step the
// jobs that advanced to another step go straight on with it in this goroutine, still
// together: the transition that ends one step records the next as started, so a job
// costs one transaction per step and no trip back through the claim loop.
func (e *executor) runBatch(ctx context.Context, jobs []*store.Job) {
	held := make([]int64, len(jobs))
	for i, j := range jobs {
		held[i] = j.ID
	}
	defer func() {
		e.mu.Lock()
		for _, id := range held {
			delete(e.inflight, id)
		}
		e.mu.Unlock()
		e.poke()
	}()
	var cont []*run
	for first := true; first || len(cont) > 0; first = false {
		if ctx.Err() != nil {
			return
		}
		cont = e.step(ctx, jobs, cont)
		jobs = nil
	}
}

// step runs one step for freshly claimed jobs or for runs continuing from their
// previous step, records every outcome in one transaction, and returns the runs that
// go on to their next step now.
func (e *executor) step(ctx context.Context, jobs []*store.Job, cont []*run) []*run {
	w := e.w
	var runs, ended []*run
	var ts []store.Transition
	ids := make([]int64, 0, len(jobs)+len(cont))
	for _, j := range jobs {
		ids = append(ids, j.ID)
		r, err := newRun(j)
		if err != nil { // a row this version cannot read: fail it rather than loop on it
			ts = append(ts, store.Transition{JobID: j.ID, From: j.State, To: string(StateFailed), Finish: true, Error: err.Error(), Detail: err.Error()})
			continue
		}
		runs = append(runs, r)
	}
	for _, r := range cont {
		ids = append(ids, r.job.ID)
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		e.apply(ctx, ts)
		return nil
	}
	stopRenew := e.renewLeases(ctx, ids)
	defer stopRenew()
	kind, state := runs[0].kind(), runs[0].state()
	st, ok := stateTable[state]
	active := runs[:0:0]
	for _, r := range runs {
		switch {
		case !ok || spec(kind) == nil:
			r.out = failed(fmt.Errorf("no step %q in flow %s", state, kind))
			ended = append(ended, r)
		case r.data.Undoing: // an undo runs to its end, whatever comes
			active = append(active, r)
		case r.job.ClaimStarted: // the claim found it neither cancelled nor late, and started its step
			active = append(active, r)
		case r.job.CancelRequested:
			r.out = outcome{kind: fail, err: errCancelled}
			ended = append(ended, r)
		case w.now().After(r.job.Deadline) && !st.pastDeadline:
			r.out = failed(fmt.Errorf("%w before step %s", ErrDeadline, state))
			ended = append(ended, r)
		default:
			active = append(active, r)
		}
	}
	if len(active) > 0 {
		todo := e.prepare(ctx, st, active)
		if len(todo) > 0 {
			began := time.Now()
			st.step(w, ctx, todo)
			w.metrics.stepDuration.WithLabelValues(string(kind), string(state)).Observe(time.Since(began).Seconds())
		}
	}
	if ctx.Err() != nil {
		return nil // shutting down: the step runs again later, and recovery decides if that is safe
	}
	// Renewal and the transitions would lock the same rows; stop renewing first.
	stopRenew()
	var goOn, finished []*run
	next := map[int64]store.Transition{}
	for _, r := range append(ended, active...) {
		if r.lost {
			continue
		}
		t := w.transition(r)
		if r.out.is(advance) && !t.Finish && t.To != t.From {
			t.StartNext = true
			goOn = append(goOn, r)
			next[r.job.ID] = t
		}
		if t.Finish {
			finished = append(finished, r)
		}
		ts = append(ts, t)
	}
	// A job that ends needs its tenant data no more: the node fetched it during
	// the install, or never will. It goes before the commit that ends the job, so
	// nobody who sees the job ended finds the data still on disk; should the
	// commit fail, the step that runs again (a status poll, an undo) needs none.
	for _, r := range finished {
		w.removeDrive(r.req.ConfigDrive)
	}
	lost, cancel := e.apply(ctx, ts)
	var out []*run
	for _, r := range goOn {
		if lost[r.job.ID] {
			continue
		}
		t := next[r.job.ID]
		r.job.State, r.job.StepStarted, r.job.Attempts, r.job.CancelRequested = t.To, true, 1, cancel[r.job.ID]
		r.out, r.chained = outcome{}, true
		out = append(out, r)
	}
	return out
}

var errCancelled = errors.New("cancelled by a later request for the same instance")

// prepare records the step as started for the runs that have not started it, and
// decides for the runs a previous worker had started (and maybe run) whether running
// the step again is safe. It returns the runs the step must run for; the others have
// their outcome set, or are marked lost.
func (e *executor) prepare(ctx context.Context, st stateSpec, runs []*run) []*run {
	w := e.w
	var fresh, restarted, chained, claimed []*run
	for _, r := range runs {
		switch {
		case r.chained: // marked started by the transition that ended its last step
			chained = append(chained, r)
		case r.job.ClaimStarted: // marked started by the claim that took it
			claimed = append(claimed, r)
		case r.job.StepStarted:
			restarted = append(restarted, r)
		default:
			fresh = append(fresh, r)
		}
	}
	if len(restarted) > 0 && st.recover != nil {
		for _, r := range restarted {
			w.jobLog(r).Info().Str("recovery", st.recovery).Msg("recovering a step a previous run started")
		}
		restarted = st.recover(w, ctx, restarted)
	}
	todo := append(append(chained, restarted...), claimed...)
	if len(fresh) == 0 {
		return todo
	}
	starts := make([]store.StepStart, len(fresh))
	for i, r := range fresh {
		starts[i] = store.StepStart{JobID: r.job.ID, State: r.job.State}
	}
	marked, err := w.store.MarkStarted(ctx, w.id, starts)
	if err != nil {
		w.log.Warn().Err(err).Str(logging.FieldStep, fresh[0].job.State).Msg("cannot record step start; will retry")
		for _, r := range fresh {
			r.lost = true
		}
		return todo
	}
	ok := map[int64]bool{}
	for _, id := range marked {
		ok[id] = true
	}
	for _, r := range fresh {
		if !ok[r.job.ID] {
			r.lost = true
			continue
		}
		r.job.Attempts++
		todo = append(todo, r)
	}
	return todo
}

// apply writes the transitions, retrying while the database is unreachable: the xCAT
// work is done, and its record must not be lost. It returns the jobs whose
// transitions were dropped (moved on elsewhere) and those whose cancellation was
// requested meanwhile.
func (e *executor) apply(ctx context.Context, ts []store.Transition) (lostSet, cancelSet map[int64]bool) {
	w := e.w
	lostSet, cancelSet = map[int64]bool{}, map[int64]bool{}
	if len(ts) == 0 {
		return
	}
	for attempt := 0; ; attempt++ {
		lost, cancel, err := w.store.Apply(ctx, w.id, ts)
		if err == nil {
			for _, id := range lost {
				lostSet[id] = true
			}
			for _, id := range cancel {
				cancelSet[id] = true
			}
			for _, t := range ts {
				w.metrics.transitions.WithLabelValues(t.To).Inc()
			}
			if len(lost) > 0 {
				w.log.Warn().Ints64("jobs", lost).Msg("jobs moved on elsewhere; transitions dropped")
			}
			w.outbox.poke()
			return
		}
		if ctx.Err() != nil {
			for _, t := range ts {
				lostSet[t.JobID] = true
			}
			return
		}
		d := w.cfg.Backoff.Delay(attempt)
		w.log.Warn().Err(err).Stringer("retry_in", d).Msg("recording transitions failed")
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
}

// renewLeases keeps the lease on ids while a batch runs; the returned func stops it.
func (e *executor) renewLeases(ctx context.Context, ids []int64) func() {
	w := e.w
	l := &loop.Loop{Name: "lease renewal", Interval: w.cfg.Lease / 3, Log: w.log, Pass: func(ctx context.Context) (bool, error) {
		_, err := w.store.RenewLease(ctx, w.id, ids, w.cfg.Lease)
		return false, err
	}}
	l.Start(ctx)
	return l.Stop
}

// transition turns a run's outcome into the transition to record, with its
// notifications, node record changes and call reply.
//
// A job whose kind has undo steps and that failed after changing something in xCAT
// goes on to those steps (data.Undoing) instead of ending; after the last one it ends
// failed with the error that started the undo, its node freed. An undo step that
// fails for good ends the job with both errors and leaves the node bound to the
// instance, so that the terminate nova sends for it cleans up.
func (w *Worker) transition(r *run) store.Transition {
	from := r.state()
	t := store.Transition{JobID: r.job.ID, From: string(from), Node: r.data.Node, Detail: r.out.detail}
	o := r.out
	undoing := r.data.Undoing
	if o.is(retry) {
		d := w.cfg.Backoff.Delay(max(0, r.job.Attempts-1))
		if !undoing && w.now().Add(d).After(r.job.Deadline) {
			o = failed(fmt.Errorf("%w while retrying: %v", ErrDeadline, o.err))
		} else {
			t.To, t.KeepAttempts, t.RunAfter = string(from), true, w.now().Add(d)
			t.Error = o.err.Error()
			t.Detail = "retry: " + o.err.Error()
		}
	}
	var endErr error // why the job ends, when it ends other than done
	switch o.kind {
	case wait:
		t.To, t.KeepAttempts, t.RunAfter = string(from), true, w.now().Add(o.delay)
	case advance:
		to, last := next(r.kind(), from, undoing)
		t.To = string(to)
		if r.bind {
			// The binding is written once, by the transition that ends the step
			// that found the node; the steps chained after it have none to write.
			t.NodeUpdate, r.bind = w.claimNode(r), false
		}
		if last && undoing { // undone: the job ends with the error that failed it
			endErr = errors.New(r.data.Failure)
			t.To, t.Finish, t.Error = string(StateFailed), true, r.data.Failure
			t.NodeUpdate = w.freeNode(r)
		}
	case fail:
		endErr = o.err
		ks := spec(r.kind())
		switch {
		case undoing:
			endErr = fmt.Errorf("%s; undoing it failed at %s: %w (the node stays the instance's until its terminate cleans up)", r.data.Failure, from, o.err)
		case errors.Is(o.err, errCancelled):
		case ks != nil && len(ks.undo) > 0 && r.data.changedXCAT():
			r.data.Undoing, r.data.Failure = true, o.err.Error()
			t.To, t.StartNext = string(ks.undo[0]), false
			t.Detail = "undoing: " + o.err.Error()
			endErr = nil
		}
		if endErr != nil {
			t.To, t.Finish, t.Error, t.Detail = string(StateFailed), true, endErr.Error(), endErr.Error()
			if errors.Is(endErr, errCancelled) {
				t.To = string(StateCancelled)
			}
		}
	}
	data, err := json.Marshal(r.data)
	if err == nil {
		t.Data = data
	}
	if t.To == string(StateDone) {
		t.Finish = true
		t.NodeUpdate = w.releaseNode(r)
		if ks := spec(r.kind()); ks.then != "" && w.cleaning() && t.NodeUpdate != nil {
			// The node is held out of scheduling from this very commit until its
			// cleaning is done.
			m := store.MaintenanceCleaning
			t.NodeUpdate.Maintenance = &m
			f := NewCleanJob(w.cfg.ComputeHost, t.NodeUpdate.Name, w.now(), w.deadline(ks.then))
			t.FollowUp = &f
		}
	} else if t.Finish && spec(r.kind()).node.cleans && r.node() != "" {
		why := fmt.Sprintf("%s: %v", ErrCleaningFailed, endErr)
		t.NodeUpdate = &store.NodeUpdate{Name: r.node(), ComputeHost: w.cfg.ComputeHost, Maintenance: &why}
	}
	if t.Finish {
		msgs, err := w.notify.ended(r, endErr)
		if err != nil {
			w.jobLog(r).Error().Err(err).Msg("cannot build end notifications")
		}
		t.Outbox = append(t.Outbox, msgs...)
		t.NovaOps, t.ComputeHost = w.novaEnded(r, endErr), w.cfg.ComputeHost
		w.jobLog(r).Info().Str("to", t.To).Str("error", t.Error).Msg("job finished")
	} else if o.is(retry) {
		w.jobLog(r).Warn().Str("to", t.To).Str("detail", t.Detail).Msg("transition")
	} else if t.To != t.From || t.Detail != "" {
		w.jobLog(r).Info().Str("to", t.To).Str("detail", t.Detail).Msg("transition")
	}
	return t
}

// freeNode records that an undone job's node runs no instance and is off.
func (w *Worker) freeNode(r *run) *store.NodeUpdate {
	if r.data.Node == "" {
		return nil
	}
	none, off := "", powerOf
	return &store.NodeUpdate{Name: r.data.Node, ComputeHost: w.cfg.ComputeHost, InstanceUUID: &none, PowerState: &off}
}

// claimNode records that a job's node belongs to its instance (run.bind: the step
// that found the node free for it).
func (w *Worker) claimNode(r *run) *store.NodeUpdate {
	if r.data.Node == "" {
		return nil
	}
	uuid := r.req.InstanceUUID
	orig := r.data.OriginalIP
	return &store.NodeUpdate{Name: r.data.Node, ComputeHost: w.cfg.ComputeHost, InstanceUUID: &uuid, Mgt: r.data.Mgt, MAC: r.req.MAC, OriginalIP: orig}
}

// releaseNode records what a finished job leaves of its node.
func (w *Worker) releaseNode(r *run) *store.NodeUpdate {
	if r.data.Node == "" {
		return nil
	}
	u := &store.NodeUpdate{Name: r.data.Node, ComputeHost: w.cfg.ComputeHost}
	effect := spec(r.kind()).node
	if effect.power != "" {
		u.PowerState = &effect.power
	}
	if effect.cleans {
		available := ""
		u.Maintenance = &available
	}
	if effect.free {
		none := ""
		u.InstanceUUID = &none
	}
	return u
}

func (w *Worker) jobLog(r *run) *zerolog.Logger {
	l := w.log.With().Int64(logging.FieldJob, r.job.ID).Str(logging.FieldInstance, r.req.InstanceUUID).
		Str(logging.FieldNode, r.node()).Str(logging.FieldStep, r.job.State).Str(logging.FieldRequestID, r.req.RequestID).
		Str("kind", r.job.Kind).Logger()
	return &l
}
