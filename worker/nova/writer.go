package nova

import (
	"encoding/json"
	"time"

	"xcatbm/messages"
	"xcatbm/worker"
	"xcatbm/worker/store"
)

// The ops a job queues (store.NovaOp.Op), performed by Service.perform.
const (
	opEventStart      = "event_start"               // InstanceActionEvent.event_start
	opEventFinish     = "event_finish"              // InstanceActionEvent.event_finish_with_failure
	opInstanceSave    = "instance_save"             // Instance.save (expected_task_state)
	opFaultCreate     = "fault_create"              // InstanceFault.create
	opInstanceDestroy = worker.OpInstanceDestroy    // Instance.destroy
	opUpdateInfo      = worker.OpUpdateInstanceInfo // cast to scheduler_fanout
	opDeleteInfo      = worker.OpDeleteInstanceInfo // cast to scheduler_fanout
	opAllocDelete     = worker.OpAllocationDelete   // placement DELETE /allocations/<uuid>
)

// opPayload is what an op needs; unused members are omitted.
type opPayload struct {
	// RequestID and friends rebuild the request context (the instance action is
	// found by request id).
	RequestID       string `json:"request_id,omitempty"`
	GlobalRequestID string `json:"global_request_id,omitempty"`
	UserID          string `json:"user_id,omitempty"`
	ProjectID       string `json:"project_id,omitempty"`

	Event    string          `json:"event,omitempty"`
	ExcVal   string          `json:"exc_val,omitempty"`
	Instance json.RawMessage `json:"instance,omitempty"`
	Updates  map[string]any  `json:"updates,omitempty"`
	// Expected is expected_task_state; HasExpected says it is sent (it may be null).
	Expected    any    `json:"expected,omitempty"`
	HasExpected bool   `json:"has_expected,omitempty"`
	Message     string `json:"message,omitempty"`
	Node        string `json:"node,omitempty"`
}

func novaTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// ops builds the ops of one job event.
type opsBuilder struct {
	ev  worker.JobEvent
	out []store.NovaOp
	ctx opPayload
}

func newOps(ev worker.JobEvent) *opsBuilder {
	b := &opsBuilder{ev: ev}
	str := func(k string) string {
		raw, ok := ev.Context.Get(k)
		if !ok {
			return ""
		}
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	}
	b.ctx = opPayload{RequestID: str("request_id"), GlobalRequestID: str("global_request_id"), UserID: str("user_id"), ProjectID: str("project_id")}
	return b
}

func (b *opsBuilder) add(op string, p opPayload) {
	p.RequestID, p.GlobalRequestID, p.UserID, p.ProjectID = b.ctx.RequestID, b.ctx.GlobalRequestID, b.ctx.UserID, b.ctx.ProjectID
	raw, _ := json.Marshal(p) // plain data always encodes
	b.out = append(b.out, store.NovaOp{InstanceUUID: b.ev.InstanceUUID, Op: op, Payload: raw})
}

// saves queues plan's Instance.save calls, filling in the placeholders.
func (b *opsBuilder) saves(plan []worker.NovaSave, host, now string) {
	for _, sv := range plan {
		updates := make(map[string]any, len(sv.Updates))
		for k, v := range sv.Updates {
			switch v {
			case worker.NovaHost:
				v = host
			case worker.NovaNode:
				v = b.ev.Node
			case worker.NovaNow:
				v = now
			}
			updates[k] = v
		}
		b.add(opInstanceSave, opPayload{Instance: b.ev.Instance, Updates: updates, Expected: sv.Expected, HasExpected: sv.HasExpected})
	}
}

// JobStarted returns the writes nova-compute makes when it takes a cast up: the
// action event's start and the kind's Start saves (worker.PlanOf).
func (s *Service) JobStarted(ev worker.JobEvent) []store.NovaOp {
	plan, ok := worker.PlanOf(ev.Kind)
	if !ok {
		return nil
	}
	b := newOps(ev)
	b.add(opEventStart, opPayload{Event: plan.Event})
	b.saves(plan.Start, s.cfg.ComputeHost, novaTime(s.now()))
	return b.out
}

// JobEnded returns the writes nova-compute makes when it has finished a cast: for a
// cancelled job only the action event's failed finish; for a failed one the fault,
// the kind's Error saves and the failed finish; for a done one the End saves, the
// kind's EndOps and the finish.
func (s *Service) JobEnded(ev worker.JobEvent) []store.NovaOp {
	if ev.Rejected && ev.Unsupported != "" && ev.Err != nil {
		// As nova-compute does when its driver raises NotImplementedError: the
		// action event (wrap_instance_event names it compute_<method>) finished with
		// the error, a fault (wrap_instance_fault), the task state cleared
		// (reverts_task_state); vm_state is left as it was.
		b := newOps(ev)
		event := "compute_" + ev.Unsupported
		b.add(opEventStart, opPayload{Event: event})
		b.add(opFaultCreate, opPayload{Message: ev.Err.Error(), Node: ev.Node})
		b.add(opInstanceSave, opPayload{Instance: ev.Instance, Updates: map[string]any{"task_state": nil}})
		b.add(opEventFinish, opPayload{Event: event, ExcVal: ev.Err.Error()})
		return b.out
	}
	plan, ok := worker.PlanOf(ev.Kind)
	if !ok {
		return nil
	}
	b := newOps(ev)
	now := novaTime(s.now())
	if ev.Rejected {
		// As nova-compute's wrap_instance_event, wrap_instance_fault and
		// _set_instance_obj_error_state do for a request that fails unexpectedly.
		b.add(opEventStart, opPayload{Event: plan.Event})
		b.add(opFaultCreate, opPayload{Message: ev.Err.Error(), Node: ev.Node})
		b.add(opInstanceSave, opPayload{Instance: ev.Instance, Updates: map[string]any{"vm_state": "error", "task_state": nil}})
		b.add(opEventFinish, opPayload{Event: plan.Event, ExcVal: ev.Err.Error()})
		return b.out
	}
	if ev.Cancelled {
		b.add(opEventFinish, opPayload{Event: plan.Event, ExcVal: "cancelled: the instance is being deleted"})
		return b.out
	}
	if ev.Err != nil {
		b.add(opFaultCreate, opPayload{Message: ev.Err.Error(), Node: ev.Node})
		b.saves(plan.Error, s.cfg.ComputeHost, now)
		b.add(opEventFinish, opPayload{Event: plan.Event, ExcVal: ev.Err.Error()})
		return b.out
	}
	b.saves(plan.End, s.cfg.ComputeHost, now)
	for _, op := range plan.EndOps {
		switch op {
		case worker.OpUpdateInstanceInfo:
			b.add(op, opPayload{Instance: ev.Instance, Node: ev.Node})
		case worker.OpInstanceDestroy:
			b.add(op, opPayload{Instance: ev.Instance})
		case worker.OpAllocationDelete:
			b.add(op, opPayload{Node: ev.Node})
		default:
			b.add(op, opPayload{})
		}
	}
	b.add(opEventFinish, opPayload{Event: plan.Event})
	return b.out
}

// requestContext rebuilds the request context of an op.
func (p *opPayload) requestContext() *messages.Context {
	ctx := serviceContext(p.RequestID)
	if p.GlobalRequestID != "" {
		_ = ctx.Set("global_request_id", p.GlobalRequestID)
	}
	if p.UserID != "" {
		_ = ctx.Set("user_id", p.UserID)
		_ = ctx.Set("user", p.UserID)
	}
	if p.ProjectID != "" {
		_ = ctx.Set("project_id", p.ProjectID)
		_ = ctx.Set("project", p.ProjectID)
	}
	return ctx
}
