package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"xcatbm/messages"
	"xcatbm/worker/store"
)

// notifier builds the notifications of job events as outbox rows: nova's versioned
// and legacy instance notifications (as configured), and xcatbm's own job end.
type notifier struct{ w *Worker }

// action is nova's notification action for a kind of job.
var action = map[Kind]string{
	KindSpawn:    "create",
	KindDestroy:  "delete",
	KindPowerOn:  "power_on",
	KindPowerOff: "power_off",
	KindReboot:   "reboot",
}

// instanceState is what a notification reports of the instance.
type instanceState struct {
	vm    string
	power messages.PowerState
	task  string
}

// states gives, per kind and phase, the instance state nova-compute reports.
var states = map[Kind]map[string]instanceState{
	KindSpawn: {
		"start": {"building", messages.PowerState(0), "spawning"},
		"end":   {"active", messages.PowerState(1), ""},
		"error": {"error", messages.PowerState(0), ""},
	},
	KindDestroy: {
		"start": {"active", messages.PowerState(1), "deleting"},
		"end":   {"deleted", messages.PowerState(0), ""},
	},
	KindPowerOn: {
		"start": {"stopped", messages.PowerState(4), "powering-on"},
		"end":   {"active", messages.PowerState(1), ""},
	},
	KindPowerOff: {
		"start": {"active", messages.PowerState(1), "powering-off"},
		"end":   {"stopped", messages.PowerState(4), ""},
	},
	KindReboot: {
		"start": {"active", messages.PowerState(1), "rebooting"},
		"end":   {"active", messages.PowerState(1), ""},
		"error": {"active", messages.PowerState(1), ""},
	},
}

// faultClass names the exception an .error notification reports.
var faultClass = map[Kind]string{KindSpawn: "BuildAbortException", KindReboot: "InstanceRebootFailure"}

func (n *notifier) wanted() (versioned, legacy bool) {
	f := n.w.cfg.Notifications
	return f == "both" || f == "versioned", f == "both" || f == "unversioned"
}

// instance returns the outbox rows of one instance event; phases nova has no
// notification for give none.
func (n *notifier) instance(kind Kind, inst *messages.Instance, ctx *messages.Context, phase string, fault error) ([]store.OutboxMessage, error) {
	st, ok := states[kind][phase]
	if !ok {
		return nil, nil
	}
	in := messages.NotifyInput{Instance: inst, Host: n.w.cfg.ComputeHost, Action: action[kind], Phase: phase,
		VMState: st.vm, PowerState: st.power, TaskState: st.task, Time: n.w.now(), Context: ctx}
	if phase == "start" && kind == KindDestroy {
		in.VMState, in.PowerState = inst.VMState, inst.PowerState
		if in.VMState == "" {
			in.VMState = "active"
		}
	}
	if fault != nil {
		in.Fault = &messages.Fault{Exception: faultClass[kind], Message: fault.Error(), ModuleName: "xcatbm.worker"}
	}
	v, l, err := messages.NewInstanceNotifications(in)
	if err != nil {
		return nil, fmt.Errorf("%s.%s notification: %w", action[kind], phase, err)
	}
	wantV, wantL := n.wanted()
	var out []store.OutboxMessage
	for _, pair := range []struct {
		on bool
		n  *messages.Notification
	}{{wantV, v}, {wantL, l}} {
		if !pair.on {
			continue
		}
		m, err := n.row(pair.n)
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
func (n *notifier) started(kind Kind, inst *messages.Instance, ctx *messages.Context) []store.OutboxMessage {
	msgs, err := n.instance(kind, inst, ctx.ForNotification(), "start", nil)
	if err != nil {
		n.w.log.Error().Err(err).Str("instance", inst.UUID).Msg("cannot build start notification")
	}
	return msgs
}

// ended returns what a finished job publishes: its end or error notifications,
// xcatbm's job end, and the reply when the job was a call.
func (n *notifier) ended(r *run, jobErr error) ([]store.OutboxMessage, error) {
	if isRegistration(r.kind()) {
		return n.registrationEnded(r, jobErr)
	}
	var out []store.OutboxMessage
	var errs []error
	inst, err := messages.DecodeInstance(r.req.Instance)
	ctx := messages.NewContext()
	for k, v := range r.req.Context {
		_ = ctx.SetRaw(k, v)
	}
	if err == nil {
		phase := "end"
		if jobErr != nil {
			phase = "error"
		}
		if !errors.Is(jobErr, errCancelled) {
			msgs, err := n.instance(r.kind(), inst, ctx, phase, jobErr)
			errs = append(errs, err)
			out = append(out, msgs...)
		}
	} else {
		errs = append(errs, fmt.Errorf("stored instance: %w", err))
	}
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
	if err == nil {
		var m store.OutboxMessage
		m, err = n.row(jn)
		out = append(out, m)
	}
	errs = append(errs, err)
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

// rejected returns the error notifications for a cast the worker refused, when it
// names an instance and its kind has an error notification.
func (n *notifier) rejected(req *messages.Request, f *messages.Failure) []store.OutboxMessage {
	kind, ok := map[string]Kind{"build_and_run_instance": KindSpawn, "reboot_instance": KindReboot}[req.Method]
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
	msgs, err := n.instance(kind, inst, req.Context.ForNotification(), "error", f)
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
