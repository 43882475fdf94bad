package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"xcatbm/messages"
	"xcatbm/worker/store"
)

// NovaWriter builds the writes to nova's database and placement a job owes when the
// worker stands in for nova-compute (package worker/nova). They are queued with the
// job's transitions, so a crash neither loses nor repeats them. nil when nova is not
// integrated.
type NovaWriter interface {
	// JobStarted returns the writes due when a job is accepted.
	JobStarted(ev JobEvent) []store.NovaOp
	// JobEnded returns the writes due when a job ends (done, failed or cancelled).
	JobEnded(ev JobEvent) []store.NovaOp
	// NodesChanged says the nodes table changed (a registration job ended), so
	// compute nodes and resource providers should be brought in line now rather than
	// at the next periodic sync. It must not block.
	NodesChanged()
	// SyncNodes brings the named registered nodes into nova and placement now (their
	// compute nodes, resource providers and inventory), records where each stands
	// and returns that by name; a name missing from the result was not synced (not
	// registered, or ctx ended). It blocks until then; it is safe for concurrent use.
	SyncNodes(ctx context.Context, names []string) map[string]store.NodeRegistration
}

// JobEvent is what a NovaWriter is told of a job.
type JobEvent struct {
	// Kind is the job's kind (spawn, destroy, power_on, power_off, reboot).
	Kind string
	// InstanceUUID, Node name the instance and its xCAT node (Node may be empty).
	InstanceUUID string
	Node         string
	// Instance is the instance primitive the job was cast with.
	Instance json.RawMessage
	// Context is the request context of the cast (for the request ids).
	Context *messages.Context
	// Err is why the job failed; nil when it is done. Cancelled says a later job
	// (a destroy) stopped it.
	Err       error
	Cancelled bool
	// Rejected says the cast was refused before it became a job (it was
	// dead-lettered, Err saying why): nova-compute's answer to a request that fails
	// unexpectedly is due, the instance in ERROR with a fault.
	Rejected bool
	// Unsupported names the method of a rejected cast that is no kind of job (Kind
	// is empty then): an instance operation xcatbm does not implement, such as
	// pause_instance. nova-compute answers one its driver lacks by recording a fault
	// and clearing the task state (reverts_task_state), the instance left as it was.
	Unsupported string
}

// NovaPlan is what nova-compute writes for one kind of job, read from the state
// machine's table (machine.go): the instance action event, the Instance.save calls
// when the job is accepted (Start), done (End) or failed (Error), and the writes
// after End (EndOps: OpUpdateInstanceInfo, ...).
type NovaPlan struct {
	Event             string
	Start, End, Error []NovaSave
	EndOps            []string
}

// PlanOf returns the nova writes of a kind of job; false for kinds nova does not see
// (xcatbm's own jobs, unknown kinds).
func PlanOf(kind string) (NovaPlan, bool) {
	ks := spec(Kind(kind))
	if ks == nil || ks.nova.event == "" {
		return NovaPlan{}, false
	}
	saves := func(p *phase) []NovaSave {
		if p == nil {
			return nil
		}
		return p.saves
	}
	nv := ks.nova
	return NovaPlan{Event: nv.event, Start: saves(nv.start), End: saves(nv.end), Error: saves(nv.error), EndOps: nv.endOps}, true
}

// novaStarted returns the nova writes of an accepted job.
// instance is the primitive as it is stored: without its secrets.
func (w *Worker) novaStarted(kind Kind, instance json.RawMessage, uuid, node string, ctx *messages.Context) []store.NovaOp {
	if w.nova == nil {
		return nil
	}
	return w.nova.JobStarted(JobEvent{Kind: string(kind), InstanceUUID: uuid, Node: node, Instance: instance, Context: ctx})
}

// novaRejected returns the nova writes for a cast refused before it became a job,
// when it names an instance that decodes: nil without the nova integration.
func (w *Worker) novaRejected(req *messages.Request, f *messages.Failure) []store.NovaOp {
	if w.nova == nil || req.IsCall() {
		return nil
	}
	kind, isJob := byMethod[castKey{req.Namespace, req.Method}]
	if isJob {
		if ks := spec(kind); ks.registration || ks.internal {
			return nil
		}
	} else if req.Namespace != "" {
		return nil // not nova-compute's API
	}
	raw, ok := req.Arg("instance")
	if !ok {
		return nil
	}
	inst, err := messages.DecodeInstance(raw)
	if err != nil || inst.UUID == "" {
		return nil // nothing nova could save
	}
	stored, err := json.Marshal(messages.WithoutInstanceSecrets(inst.Object))
	if err != nil {
		return nil
	}
	ev := JobEvent{Kind: string(kind), InstanceUUID: inst.UUID, Node: inst.Node, Instance: stored,
		Context: req.Context, Err: f, Rejected: true}
	if !isJob {
		ev.Kind, ev.Unsupported = "", req.Method
	}
	return w.nova.JobEnded(ev)
}

// novaEnded returns the nova writes of a finished job.
func (w *Worker) novaEnded(r *run, jobErr error) []store.NovaOp {
	if w.nova == nil {
		return nil
	}
	if ks := spec(r.kind()); ks.registration || ks.internal { // nova learns of images from Glance
		if ks.nodesChanged {
			w.nova.NodesChanged()
		}
		return nil
	}
	ctx := messages.NewContext()
	for k, v := range r.req.Context {
		_ = ctx.SetRaw(k, v)
	}
	ev := JobEvent{Kind: string(r.kind()), InstanceUUID: r.req.InstanceUUID, Node: r.node(), Instance: r.req.Instance, Context: ctx,
		Err: jobErr, Cancelled: errors.Is(jobErr, errCancelled)}
	if ev.Node == "" {
		ev.Node = r.req.Node
	}
	return w.nova.JobEnded(ev)
}

// hostUptime answers get_host_uptime as nova's drivers do: the output of uptime(1),
// read from /proc.
func hostUptime(now time.Time) (string, error) {
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "", fmt.Errorf("uptime: %w", err)
	}
	f := strings.Fields(string(up))
	if len(f) == 0 {
		return "", errors.New("uptime: /proc/uptime is empty")
	}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return "", fmt.Errorf("uptime: %w", err)
	}
	load := "0.00, 0.00, 0.00"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if l := strings.Fields(string(b)); len(l) >= 3 {
			load = l[0] + ", " + l[1] + ", " + l[2]
		}
	}
	return formatUptime(now, time.Duration(secs*float64(time.Second)), load), nil
}

// formatUptime renders uptime(1)'s line: " 08:32:11 up 93 days, 18:25,  0 users,  load average: 0.20, 0.16, 0.15".
func formatUptime(now time.Time, up time.Duration, load string) string {
	days := int(up.Hours()) / 24
	h, m := int(up.Hours())%24, int(up.Minutes())%60
	var upStr string
	switch {
	case days > 0:
		unit := "days"
		if days == 1 {
			unit = "day"
		}
		upStr = fmt.Sprintf("%d %s, %2d:%02d", days, unit, h, m)
	case h > 0:
		upStr = fmt.Sprintf("%2d:%02d", h, m)
	default:
		upStr = fmt.Sprintf("%d min", m)
	}
	return fmt.Sprintf(" %s up %s,  0 users,  load average: %s", now.Format("15:04:05"), upStr, load)
}
