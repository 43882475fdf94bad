package nova

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"xcatbm/messages"
	"xcatbm/worker/store"
)

// performDue performs the queued writes that are due, the oldest first per
// instance, marking each done once nova took it and retrying failures with backoff.
// more is true when it performed any: the next write of each instance may be due.
func (s *Service) performDue(ctx context.Context) (bool, error) {
	ops, err := s.store.ClaimNovaOps(ctx, s.cfg.ComputeHost, 64, 2*time.Minute)
	if err != nil {
		return false, fmt.Errorf("claiming nova writes: %w", err)
	}
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.performOne(ctx, op)
		}()
	}
	wg.Wait()
	return len(ops) > 0, nil
}

func (s *Service) performOne(ctx context.Context, op store.PendingNovaOp) {
	log := s.log.With().Str("instance", op.InstanceUUID).Str("op", op.Op).Int64("nova_op", op.ID).Logger()
	note, err := s.perform(ctx, op)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		d := s.cfg.Backoff.Delay(op.Attempts)
		log.Warn().Err(err).Stringer("retry_in", d).Msg("nova write failed")
		if ferr := s.store.NovaOpFailed(ctx, op.ID, err, s.now().Add(d)); ferr != nil {
			log.Error().Err(ferr).Msg("cannot record failed nova write")
		}
		return
	}
	if err := s.store.NovaOpDone(ctx, op.ID, note); err != nil {
		log.Error().Err(err).Msg("cannot mark nova write done")
		return
	}
	log.Debug().Str("note", note).Msg("nova write done")
}

// perform makes one write. A write nova no longer wants (the instance is gone, or
// already past the expected task state: a repeat after a crash) is done, skipped.
func (s *Service) perform(ctx context.Context, op store.PendingNovaOp) (string, error) {
	var p opPayload
	if err := json.Unmarshal(op.Payload, &p); err != nil {
		return "skipped: undecodable payload", nil
	}
	rctx := p.requestContext()
	skip := func(err error) (string, error) {
		if errors.Is(err, ErrInstanceNotFound) || errors.Is(err, ErrUnexpectedTaskState) || errors.Is(err, ErrNotFound) {
			return "skipped: " + err.Error(), nil
		}
		var re *RemoteError
		if errors.As(err, &re) && re.Class == "ObjectActionError" {
			return "skipped: " + err.Error(), nil
		}
		return "", err
	}
	switch op.Op {
	case opEventStart:
		_, err := s.classAction(ctx, "InstanceActionEvent", "event_start", []any{op.InstanceUUID, p.Event},
			map[string]any{"host": s.cfg.ComputeHost, "want_result": false}, rctx)
		if err != nil {
			return skip(err)
		}
	case opEventFinish:
		kw := map[string]any{"exc_val": nil, "exc_tb": nil, "want_result": false}
		if p.ExcVal != "" {
			kw["exc_val"] = p.ExcVal
			kw["exc_tb"] = "Traceback (most recent call last):\n  xcatbm worker\n" + p.ExcVal + "\n"
		}
		if _, err := s.classAction(ctx, "InstanceActionEvent", "event_finish_with_failure", []any{op.InstanceUUID, p.Event}, kw, rctx); err != nil {
			return skip(err)
		}
	case opInstanceSave:
		obj, err := messages.DecodeObject(p.Instance)
		if err != nil {
			return "skipped: stored instance: " + err.Error(), nil
		}
		obj.Changes = nil
		for k, v := range p.Updates {
			if err := obj.Set(k, v); err != nil {
				return "skipped: " + err.Error(), nil
			}
			obj.Changes = append(obj.Changes, k)
		}
		slices.Sort(obj.Changes)
		kw := map[string]any{}
		if p.HasExpected {
			kw["expected_task_state"] = p.Expected
		}
		if _, _, err := s.cond.ObjectAction(ctx, obj, "save", nil, kw, rctx); err != nil {
			return skip(err)
		}
	case opFaultCreate:
		f, _ := messages.NewObject("InstanceFault", objectVersions["InstanceFault"], map[string]any{
			"instance_uuid": op.InstanceUUID, "code": 500, "message": truncate(p.Message, 255), "details": p.Message, "host": s.cfg.ComputeHost})
		f.Changes = f.Keys()
		if _, _, err := s.cond.ObjectAction(ctx, f, "create", nil, nil, rctx); err != nil {
			return skip(err)
		}
	case opInstanceDestroy:
		obj, err := messages.DecodeObject(p.Instance)
		if err != nil {
			return "skipped: stored instance: " + err.Error(), nil
		}
		obj.Changes = []string{}
		if _, _, err := s.cond.ObjectAction(ctx, obj, "destroy", nil, nil, rctx); err != nil {
			return skip(err)
		}
	case opUpdateInfo:
		obj, err := messages.DecodeObject(p.Instance)
		if err != nil {
			return "skipped: stored instance: " + err.Error(), nil
		}
		_ = obj.Set("host", s.cfg.ComputeHost)
		_ = obj.Set("node", p.Node)
		list, _ := messages.NewList("InstanceList", objectVersions["InstanceList"], []*messages.Object{obj})
		list.Changes = []string{"objects"}
		if err := s.cond.Cast(ctx, "scheduler_fanout", "", "update_instance_info", "4.2",
			map[string]any{"host_name": s.cfg.ComputeHost, "instance_info": list}, rctx); err != nil {
			return "", err
		}
	case opDeleteInfo:
		if err := s.cond.Cast(ctx, "scheduler_fanout", "", "delete_instance_info", "4.2",
			map[string]any{"host_name": s.cfg.ComputeHost, "instance_uuid": op.InstanceUUID}, rctx); err != nil {
			return "", err
		}
	case opAllocDelete:
		// A node the destroy left in maintenance (cleaning) is reserved before the
		// allocation goes, so that nova cannot place a server on it in between.
		if p.Node != "" {
			if n, err := s.store.Node(ctx, p.Node); err == nil && n.Maintenance != "" {
				if _, err := s.syncNodes(ctx, []string{p.Node}); err != nil {
					return "", fmt.Errorf("reserve %s before freeing its allocation: %w", p.Node, err)
				}
			}
		}
		if err := s.place.DeleteAllocations(ctx, op.InstanceUUID); err != nil {
			return "", err
		}
		s.Kick() // the node is free: un-reserve its inventory now
	default:
		return "skipped: unknown op " + op.Op, nil
	}
	return "done", nil
}

func (s *Service) classAction(ctx context.Context, objName, objMethod string, args []any, kwargs map[string]any, rctx *messages.Context) (json.RawMessage, error) {
	return s.cond.Call(ctx, "object_class_action_versions", map[string]any{
		"objname": objName, "objmethod": objMethod, "object_versions": ObjectVersions(objName), "args": args, "kwargs": kwargs,
	}, CallOpts{Version: "3.0", Context: rctx})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
