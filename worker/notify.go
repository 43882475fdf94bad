package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"xcatbm/messages"
	"xcatbm/worker/store"
)

// notifier builds the notifications of job events as outbox rows: nova's versioned
// and legacy instance notifications (as configured), and xcatbm's own job end.
type notifier struct{ w *Worker }

func (n *notifier) wanted() (versioned, legacy bool) {
	f := n.w.cfg.Notifications
	return f == "both" || f == "versioned", f == "both" || f == "unversioned"
}

// instance returns the outbox rows of one instance event; phases nova has no
// notification for give none.
func (n *notifier) instance(kind Kind, inst *messages.Instance, ctx *messages.Context, phaseName string, fault error, req *request) ([]store.OutboxMessage, error) {
	ks := spec(kind)
	if ks == nil {
		return nil, nil
	}
	nv := ks.nova
	ph := map[string]*phase{"start": nv.start, "end": nv.end, "error": nv.error, "cancelled": nv.cancelled}[phaseName]
	if ph == nil || ph.quiet {
		return nil, nil
	}
	faultClass := nv.fault
	if phaseName == "cancelled" {
		phaseName, faultClass = "error", nv.cancelFault
		fault = fmt.Errorf(nv.cancelText, inst.UUID)
	}
	in := messages.NotifyInput{Instance: inst, Host: n.w.cfg.ComputeHost, Action: nv.action, Phase: phaseName,
		VMState: ph.vm, PowerState: ph.power, TaskState: ph.task, Time: n.w.now(), Context: ctx}
	if req != nil {
		in.RescueImageRef = req.RescueImageRef
	}
	if ph.vm == "" { // the instance as it was cast
		in.VMState, in.PowerState = inst.VMState, inst.PowerState
		if in.VMState == "" {
			in.VMState = "active"
		}
	}
	if fault != nil {
		in.Fault = &messages.Fault{Exception: faultClass, Message: fault.Error(), ModuleName: "xcatbm.worker"}
	}
	wantV, wantL := n.wanted()
	var out []store.OutboxMessage
	for _, b := range []struct {
		on    bool
		build func(messages.NotifyInput) (*messages.Notification, error)
	}{{wantV, messages.NewVersionedInstanceNotification}, {wantL, messages.NewLegacyInstanceNotification}} {
		if !b.on {
			continue
		}
		note, err := b.build(in)
		if err != nil {
			return nil, fmt.Errorf("%s.%s notification: %w", nv.action, phaseName, err)
		}
		m, err := n.row(note)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (n *notifier) row(note *messages.Notification) (store.OutboxMessage, error) {
	body, err := note.Encode()
	if err != nil {
		return store.OutboxMessage{}, fmt.Errorf("encode %s: %w", note.EventType, err)
	}
	return store.OutboxMessage{Exchange: n.w.cfg.Exchange, RoutingKey: note.RoutingKey(), MessageID: note.MessageID, Body: body}, nil
}

// started returns the start notifications of a job, written with the job itself.
func (n *notifier) started(kind Kind, inst *messages.Instance, ctx *messages.Context, req *request) []store.OutboxMessage {
	msgs, err := n.instance(kind, inst, ctx.ForNotification(), "start", nil, req)
	if err != nil {
		n.w.log.Error().Err(err).Str("instance", inst.UUID).Msg("cannot build start notification")
	}
	return msgs
}

// ended returns what a finished job publishes: its end or error notifications,
// xcatbm's job end when Config.JobEvents asks for it, and the reply when the job was
// a call.
func (n *notifier) ended(r *run, jobErr error) ([]store.OutboxMessage, error) {
	if spec(r.kind()).registration {
		return n.registrationEnded(r, jobErr)
	}
	var out []store.OutboxMessage
	var errs []error
	ctx := messages.NewContext()
	for k, v := range r.req.Context {
		_ = ctx.SetRaw(k, v)
	}
	inst, err := messages.DecodeInstance(r.req.Instance)
	switch {
	case spec(r.kind()).internal: // about a node, not an instance: only the job's end
	case err == nil:
		phase := "end"
		switch {
		case errors.Is(jobErr, errCancelled):
			phase = "cancelled"
		case jobErr != nil:
			phase = "error"
		}
		msgs, err := n.instance(r.kind(), inst, ctx, phase, jobErr, &r.req)
		errs = append(errs, err)
		out = append(out, msgs...)
	default:
		errs = append(errs, fmt.Errorf("stored instance: %w", err))
	}
	if n.w.cfg.JobEvents == JobEventsAll {
		m, err := n.jobEnd(r, jobErr, ctx)
		if err == nil {
			out = append(out, m)
		}
		errs = append(errs, err)
	}
	if c := r.req.Call; c != nil {
		var body []byte
		if jobErr != nil {
			body, err = messages.EncodeFailureReply(c.MsgID, &messages.Failure{Class: "InstanceInvalidState", Module: "nova.exception",
				Message: jobErr.Error(), Kwargs: map[string]any{}})
		} else {
			body, err = messages.EncodeReply(c.MsgID, nil)
		}
		errs = append(errs, err)
		if err == nil {
			out = append(out, store.OutboxMessage{Exchange: "", RoutingKey: c.ReplyQueue, MessageID: messages.NewUniqueID(), Body: body})
		}
	}
	return out, errors.Join(errs...)
}

// Which jobs publish xcatbm.job.end (Config.JobEvents). The jobs of xcatbm's own
// senders (registrations: opsaddbmnode, opsaddimage, their removals) always do, since
// the publisher package follows them to their end. A job of nova's casts ends in
// nova's own notifications (instance.<action>.end or .error); its xcatbm.job.end
// would go to an exchange where, unless an operator bound a queue to
// xcatbm_notifications.*, nobody reads it, and it cost about a seventh of a power-off
// job's CPU (BENCHMARKS.md, 2026-12-06). JobEventsAll publishes it for every job.
const (
	JobEventsRegistrations = "registrations"
	JobEventsAll           = "all"
)

// jobEnd is the xcatbm.job.end of a job that is not a registration.
func (n *notifier) jobEnd(r *run, jobErr error, ctx *messages.Context) (store.OutboxMessage, error) {
	item := messages.JobItemResult{Name: r.node(), Status: messages.ItemOK, Message: "done"}
	if jobErr != nil {
		item.Status, item.Message = messages.ItemFailed, jobErr.Error()
	}
	if item.Name == "" {
		item.Name = r.req.InstanceUUID
	}
	jn, err := messages.NewJobNotification(n.w.cfg.ComputeHost, true, messages.JobPayload{
		JobID: strconv.FormatInt(r.job.ID, 10), Kind: string(r.kind()), Results: []messages.JobItemResult{item}, Done: 1, Total: 1,
	}, n.w.now(), ctx)
	if err != nil {
		return store.OutboxMessage{}, err
	}
	return n.row(jn)
}

// rejected returns the error notifications for a cast the worker refused, when it
// names an instance and its kind has an error notification.
func (n *notifier) rejected(req *messages.Request, f *messages.Failure) []store.OutboxMessage {
	kind, ok := byMethod[castKey{req.Namespace, req.Method}]
	if !ok {
		return nil
	}
	raw, ok := req.Arg("instance")
	if !ok {
		return nil
	}
	inst, err := messages.DecodeInstance(raw)
	if err != nil {
		inst = bareInstance(raw)
		if inst == nil {
			return nil
		}
	}
	msgs, err := n.instance(kind, inst, req.Context.ForNotification(), "error", f, nil)
	if err != nil {
		n.w.log.Warn().Err(err).Msg("cannot build error notification for a rejected cast")
	}
	return msgs
}

// bareInstance keeps what can be read of an instance primitive that does not decode
// (its uuid), so the error can still be reported against it.
func bareInstance(raw json.RawMessage) *messages.Instance {
	var p struct {
		Data struct {
			UUID string `json:"uuid"`
		} `json:"nova_object.data"`
	}
	if json.Unmarshal(raw, &p) != nil || p.Data.UUID == "" {
		return nil
	}
	obj := &messages.Object{Name: "Instance", Namespace: "nova", Version: "2.8", Data: map[string]json.RawMessage{}}
	if err := obj.Set("uuid", p.Data.UUID); err != nil {
		return nil
	}
	inst, err := messages.InstanceFromObject(obj)
	if err != nil {
		return nil
	}
	return inst
}

// jobProgress builds a job progress or end notification row of a registration job,
// with job_id the request's _unique_id: results are the items it carries (a progress
// notification's are those since the previous one), done how many items are done.
func (n *notifier) jobProgress(r *run, end bool, results []messages.JobItemResult, done, total int) (store.OutboxMessage, error) {
	ctx := messages.NewContext()
	for k, v := range r.req.Context {
		_ = ctx.SetRaw(k, v)
	}
	done = max(done, len(results))
	total = max(total, done)
	jn, err := messages.NewJobNotification(n.w.cfg.ComputeHost, end, messages.JobPayload{
		JobID: r.req.JobID, Kind: string(r.kind()), Results: results, Done: done, Total: total,
	}, n.w.now(), ctx)
	if err != nil {
		return store.OutboxMessage{}, err
	}
	return n.row(jn)
}

// registrationEnded returns the end notification of a registration job: every item's
// result, and, when the job failed as a whole, one failed item naming the job's error.
func (n *notifier) registrationEnded(r *run, jobErr error) ([]store.OutboxMessage, error) {
	results := slices.Clone(r.data.Results)
	if jobErr != nil {
		results = append(results, messages.JobItemResult{Name: string(r.kind()), Status: messages.ItemFailed, Message: jobErr.Error()})
	}
	m, err := n.jobProgress(r, true, results, len(results), len(results))
	if err != nil {
		return nil, err
	}
	out := []store.OutboxMessage{m}
	if c := r.req.Call; c != nil {
		var body []byte
		if jobErr != nil {
			body, err = messages.EncodeFailureReply(c.MsgID, &messages.Failure{Class: "RegistrationFailed", Module: "xcatbm.worker", Message: jobErr.Error(), Kwargs: map[string]any{}})
		} else {
			body, err = messages.EncodeReply(c.MsgID, r.req.JobID)
		}
		if err != nil {
			return out, err
		}
		out = append(out, store.OutboxMessage{RoutingKey: c.ReplyQueue, MessageID: messages.NewUniqueID(), Body: body})
	}
	return out, nil
}

// powerChanged is the xcatbm.node.power_state notification of a node whose power
// state changed outside xcatbm (powersync.go).
func (n *notifier) powerChanged(node *store.Node, old string) []store.OutboxMessage {
	payload := map[string]string{"node": node.Name, "instance_uuid": node.InstanceUUID, "old_state": old, "state": node.PowerState}
	note, err := messages.NewNotification(messages.XCATBMTopic, "xcatbm-worker:"+n.w.cfg.ComputeHost, "xcatbm.node.power_state",
		messages.PriorityInfo, payload, n.w.now(), nil)
	if err != nil {
		n.w.log.Error().Err(err).Msg("cannot build power notification")
		return nil
	}
	m, err := n.row(note)
	if err != nil {
		n.w.log.Error().Err(err).Msg("cannot encode power notification")
		return nil
	}
	return []store.OutboxMessage{m}
}
