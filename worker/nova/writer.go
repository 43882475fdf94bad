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
	opEventStart      = "event_start"          // InstanceActionEvent.event_start
	opEventFinish     = "event_finish"         // InstanceActionEvent.event_finish_with_failure
	opInstanceSave    = "instance_save"        // Instance.save (expected_task_state)
	opFaultCreate     = "fault_create"         // InstanceFault.create
	opInstanceDestroy = "instance_destroy"     // Instance.destroy
	opUpdateInfo      = "update_instance_info" // cast to scheduler_fanout
	opDeleteInfo      = "delete_instance_info" // cast to scheduler_fanout
	opAllocDelete     = "allocation_delete"    // placement DELETE /allocations/<uuid>
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

// nova's action event names per kind of job.
var eventNames = map[string]string{
	"spawn":     "compute__do_build_and_run_instance",
	"destroy":   "compute_terminate_instance",
	"power_on":  "compute_start_instance",
	"power_off": "compute_stop_instance",
	"reboot":    "compute_reboot_instance",
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

func (b *opsBuilder) save(updates map[string]any, expected ...any) {
	p := opPayload{Instance: b.ev.Instance, Updates: updates}
	if len(expected) > 0 {
		p.Expected, p.HasExpected = expected[0], true
	}
	b.add(opInstanceSave, p)
}

// JobStarted returns the writes nova-compute makes when it takes a cast up.
func (s *Service) JobStarted(ev worker.JobEvent) []store.NovaOp {
	b := newOps(ev)
	b.add(opEventStart, opPayload{Event: eventNames[ev.Kind]})
	switch ev.Kind {
	case "spawn":
		b.save(map[string]any{"vm_state": "building", "task_state": nil}, []any{"scheduling", nil})
		node := ev.Node
		b.save(map[string]any{"host": s.cfg.ComputeHost, "node": node, "launched_on": s.cfg.ComputeHost})
		b.save(map[string]any{"vm_state": "building", "task_state": "networking"}, []any{nil})
		b.save(map[string]any{"vm_state": "building", "task_state": "block_device_mapping"})
		b.save(map[string]any{"vm_state": "building", "task_state": "spawning"}, "block_device_mapping")
	case "reboot":
		b.save(map[string]any{"task_state": "reboot_pending", "power_state": 1}, []any{"rebooting", "reboot_pending", "reboot_started"})
		b.save(map[string]any{"task_state": "reboot_started"}, "reboot_pending")
	}
	return b.out
}

// JobEnded returns the writes nova-compute makes when it has finished a cast.
func (s *Service) JobEnded(ev worker.JobEvent) []store.NovaOp {
	b := newOps(ev)
	event := eventNames[ev.Kind]
	now := novaTime(s.now())
	if ev.Cancelled {
		b.add(opEventFinish, opPayload{Event: event, ExcVal: "cancelled: the instance is being deleted"})
		return b.out
	}
	if ev.Err != nil {
		b.add(opFaultCreate, opPayload{Message: ev.Err.Error(), Node: ev.Node})
		switch ev.Kind {
		case "power_on", "power_off":
			b.save(map[string]any{"task_state": nil})
		default:
			b.save(map[string]any{"vm_state": "error", "task_state": nil})
		}
		b.add(opEventFinish, opPayload{Event: event, ExcVal: ev.Err.Error()})
		return b.out
	}
	switch ev.Kind {
	case "spawn":
		b.save(map[string]any{"vm_state": "active", "task_state": nil, "power_state": 1, "launched_at": now}, "spawning")
		b.add(opUpdateInfo, opPayload{Instance: ev.Instance, Node: ev.Node})
	case "power_off":
		b.save(map[string]any{"vm_state": "stopped", "task_state": nil, "power_state": 4}, []any{"powering-off"})
	case "power_on":
		b.save(map[string]any{"vm_state": "active", "task_state": nil, "power_state": 1}, "powering-on")
	case "reboot":
		b.save(map[string]any{"vm_state": "active", "task_state": nil, "power_state": 1})
	case "destroy":
		b.save(map[string]any{"vm_state": "deleted", "task_state": nil, "power_state": 0, "terminated_at": now})
		b.add(opDeleteInfo, opPayload{})
		b.add(opInstanceDestroy, opPayload{Instance: ev.Instance})
		b.add(opAllocDelete, opPayload{})
	}
	b.add(opEventFinish, opPayload{Event: event})
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
