package worker

import (
	"context"
	"time"

	"xcatbm/messages"
	"xcatbm/xcat"
)

// This file is the whole state machine as data. A job's kind is one row of kinds:
// the RPC method that makes it and how its arguments are read, its flow of steps,
// its deadline, what it does to xcatbm's record of its node, and how nova sees it
// (the instance action event, the notifications and the Instance.save writes of
// each phase). Each step is one row of stateTable: the function that runs it
// (steps.go), what recovery does when a crashed worker had started it, and whether
// it runs past the job's deadline. The executor (executor.go) reads these tables and
// holds no branch on a kind or a state.
//
// To add an operation: add its Kind and a row in kinds, and, for a step xCAT does not
// do yet, a State, a row in stateTable and its step function. MACHINE.md, rendered
// from these tables by TestMachineDocument, shows them as tables and a diagram.

// Kind is a kind of job.
type Kind string

// The kinds of job a worker runs.
const (
	KindSpawn    Kind = "spawn"     // build_and_run_instance
	KindDestroy  Kind = "destroy"   // terminate_instance
	KindPowerOn  Kind = "power_on"  // start_instance
	KindPowerOff Kind = "power_off" // stop_instance
	KindReboot   Kind = "reboot"    // reboot_instance
	KindRebuild  Kind = "rebuild"   // rebuild_instance
	KindRescue   Kind = "rescue"    // rescue_instance
	KindUnrescue Kind = "unrescue"  // unrescue_instance
	KindClean    Kind = "clean"     // left by a destroy: erase the node's disks (clean.go)

	// xcatbm's own jobs (namespace "xcatbm"), published by the admin commands.
	KindRegisterNodes  Kind = "register_nodes"  // opsaddbmnode
	KindRegisterImages Kind = "register_images" // opsaddimage
	KindRemoveNodes    Kind = "remove_nodes"    // rmbmnode
)

// State is a job's place in its flow: the step it is about to run, or a final state.
type State string

// Steps and final states. A step's name says what it does in xCAT terms.
const (
	StateResolve          State = "resolve"           // find the xCAT node, image, IP; check ownership
	StateSetIP            State = "set_ip"            // chdef ip=<ip>; makehosts (IP in the node's subnet)
	StateAddPostscript    State = "add_postscript"    // chdef -p postbootscripts="config_ops_bmnode ..."
	StateNodeSet          State = "nodeset"           // nodeset osimage=<image> / shell / boot
	StateSetBoot          State = "set_boot"          // rsetboot net (ipmi) / rbootseq net (blade, fsp)
	StateNoteStatus       State = "note_status"       // nodels nodelist.status statustime, for boot's recovery
	StateBoot             State = "boot"              // rpower boot (ipmi, blade, fsp) / rnetboot (hmc)
	StateWaitBooted       State = "wait_booted"       // poll nodelist.status until booted / failed / deadline
	StateDeconfig         State = "deconfig"          // updatenode -P "deconfig_ops_bmnode <ip>" while reachable
	StatePowerOff         State = "power_off"         // rpower off, unless rpower stat already says off
	StateRemovePostscript State = "remove_postscript" // chdef -m postbootscripts=<config_ops_bmnode entry>
	StateRestoreIP        State = "restore_ip"        // chdef ip=<original>; makehosts
	StateResetBoot        State = "reset_boot"        // nodeset offline; rsetboot default (undo of a spawn)
	StatePower            State = "power"             // rpower on / off
	StateReboot           State = "reboot"            // rpower boot of an installed node
	StateVerifyPower      State = "verify_power"      // rpower stat until it shows the wanted state
	StateRegister         State = "register"          // lsdef/tabdump, then the nodes table or glance (register.go)
	StateCleanPrepare     State = "clean_prepare"     // nodeset runimage=<the cleaning image> (clean.go)
	StateWaitCleaned      State = "wait_cleaned"      // rpower stat until off (erased), or status failed
	StateCleanFinish      State = "clean_finish"      // nodeset offline

	StateDone      State = "done"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

// kindSpec is one row of the state machine: everything about one kind of job.
type kindSpec struct {
	// namespace and method name the RPC request that makes the job; decode reads
	// its arguments into the job's request and returns the instance it is about
	// (nil for xcatbm's own jobs).
	namespace string
	method    string
	decode    castDecoder
	// flow is the job's steps in order; after the last one it is done.
	flow []State
	// undo are the steps a failure runs before the job ends failed, to take back
	// what the flow changed in xCAT (each skips what the job did not do). They run
	// past the deadline and are not cancelled. nil: a failure ends the job at once.
	undo []State
	// deadline bounds the job from its arrival.
	deadline time.Duration
	// node is what the job does to xcatbm's record of its node.
	node nodeEffect
	// lastWord marks the instance's last job (terminate): it cancels every earlier
	// unfinished job of the instance at its next step boundary.
	lastWord bool
	// then is the job a done job leaves for its node (the cleaning after a
	// destroy, when Config.CleanMode erases something).
	then Kind
	// internal marks a job no request makes (method ""): another job leaves it.
	internal bool
	// nova is how nova sees the job; zero for xcatbm's own jobs.
	nova novaSpec
	// rpower is the action of the power step (StatePower); node.power is the state
	// verify_power waits for.
	rpower xcat.PowerAction
	// bootFrom is the device set_boot makes the next boot from: "net" (the
	// default: install, netboot, genesis) or "hd" (the installed OS).
	bootFrom string
	// registration marks xcatbm's own jobs: they report per item to the admin who
	// sent them (xcatbm.job.progress/end) instead of telling nova. register is the
	// work of their one step; nodesChanged says a done job changed the nodes table,
	// so nova's compute nodes and placement follow at once.
	registration bool
	register     func(w *Worker, ctx context.Context, r *run) error
	nodesChanged bool
}

// nodeEffect is what a job does to xcatbm's record of its node.
type nodeEffect struct {
	// claim: resolve binds the node to the job's instance, and fails the job when
	// the node runs another instance.
	claim bool
	// owned: the node must run the job's instance already (rebuild, rescue).
	owned bool
	// power is the node's power state once the job is done ("" leaves it).
	power string
	// free: once done, the node runs no instance; with cleaning on, it is in
	// maintenance until its clean job (then) is done.
	free bool
	// cleans: the job erases the node's disks; done, the node leaves maintenance;
	// failed, it stays held out with the reason.
	cleans bool
}

// novaSpec is how nova-compute reports a kind of job: its instance action event, the
// notification action and fault class, and per phase the instance state the
// notifications report and the Instance.save writes made through the conductor.
type novaSpec struct {
	// event is the InstanceActionEvent nova-compute records (compute_...).
	event string
	// action is the notification action: instance.<action>.<phase>.
	action string
	// fault is the exception class error notifications and faults name.
	fault string
	// start is when the job is accepted, end when it is done, error when it failed
	// (nil: no notification and no save).
	start, end, error *phase
	// endOps are the writes after end's saves: scheduler casts, Instance.destroy,
	// the placement allocation delete.
	endOps []string
	// cancelled is how nova reports the job when the instance's terminate stopped
	// it (nil: only the action event's failed finish); the notification names
	// cancelFault, its text cancelText with the instance uuid.
	cancelled   *phase
	cancelFault string
	cancelText  string
}

// phase is one phase of a job as nova sees it.
type phase struct {
	// vm, power and task are the instance's state as the phase's notifications
	// report it (task "" is null); vm "" reports the instance as it was cast.
	vm    string
	power messages.PowerState
	task  string
	// quiet: nova sends no notification for this phase.
	quiet bool
	// saves are nova-compute's Instance.save calls of the phase, in order.
	saves []NovaSave
}

// NovaSave is one Instance.save nova-compute makes: the fields it sets and, when
// HasExpected, the expected_task_state it guards the save with (nil, a task state, or
// a list of them).
type NovaSave struct {
	Updates     map[string]any
	Expected    any
	HasExpected bool
}

// NovaValue is a placeholder in NovaSave.Updates for a value known only when the
// write is queued; the nova integration fills it in.
type NovaValue string

// The placeholders of NovaSave.Updates.
const (
	NovaHost NovaValue = "(compute host)" // the compute host the worker serves
	NovaNode NovaValue = "(node)"         // the job's xCAT node
	NovaNow  NovaValue = "(now)"          // the time of the write
)

// Ops of novaSpec.endOps, named as the nova integration queues them.
const (
	OpUpdateInstanceInfo = "update_instance_info" // cast to scheduler_fanout
	OpDeleteInstanceInfo = "delete_instance_info" // cast to scheduler_fanout
	OpInstanceDestroy    = "instance_destroy"     // Instance.destroy
	OpAllocationDelete   = "allocation_delete"    // placement DELETE /allocations/<uuid>
)

// save is a NovaSave without an expected task state; guarded adds one.
func save(updates map[string]any) NovaSave { return NovaSave{Updates: updates} }
func guarded(expected any, updates map[string]any) NovaSave {
	return NovaSave{Updates: updates, Expected: expected, HasExpected: true}
}

// fields are the fields of an Instance.save.
type fields = map[string]any

// stateSpec is one step of the state machine.
type stateSpec struct {
	// step runs the step for a batch of jobs in this state (steps.go).
	step stepFunc
	// recover is what the executor does when a previous worker had started the step
	// and may have run it: nil runs it again (the step is safe to repeat), else it
	// returns the runs to run again and sets the others' outcome.
	recover func(w *Worker, ctx context.Context, runs []*run) []*run
	// recovery says in words what recover does, for people.
	recovery string
	// pastDeadline lets the step run after the job's deadline: it decides itself
	// when the job has waited too long (polling steps).
	pastDeadline bool
	// does says what the step does in xCAT terms.
	does string
}

// Recovery texts of stateSpec.recovery.
const (
	rerunSafe   = "run again: repeating it is harmless"
	checkStatus = "run again only if nodelist.status has not moved since note_status"
)

// kinds is the state machine's table of job kinds.
//
// destroy runs deconfig first, while the node is still on and reachable, then powers
// it off: the reverse order would leave nothing to reach.
var kinds = map[Kind]*kindSpec{
	KindSpawn: {
		method: messages.MethodBuildAndRunInstance, decode: decodeSpawn,
		flow:     []State{StateResolve, StateSetIP, StateAddPostscript, StateNodeSet, StateSetBoot, StateNoteStatus, StateBoot, StateWaitBooted},
		undo:     []State{StatePowerOff, StateRemovePostscript, StateRestoreIP, StateResetBoot},
		deadline: 60 * time.Minute,
		node:     nodeEffect{claim: true, power: powerOn},
		nova: novaSpec{
			event: "compute__do_build_and_run_instance", action: "create", fault: "BuildAbortException",
			start: &phase{vm: "building", power: messages.NoState, task: "spawning", saves: []NovaSave{
				guarded([]any{"scheduling", nil}, fields{"vm_state": "building", "task_state": nil}),
				save(fields{"host": NovaHost, "node": NovaNode, "launched_on": NovaHost}),
				guarded([]any{nil}, fields{"vm_state": "building", "task_state": "networking"}),
				save(fields{"vm_state": "building", "task_state": "block_device_mapping"}),
				guarded("block_device_mapping", fields{"vm_state": "building", "task_state": "spawning"}),
			}},
			end: &phase{vm: "active", power: messages.Running, saves: []NovaSave{
				guarded("spawning", fields{"vm_state": "active", "task_state": nil, "power_state": 1, "launched_at": NovaNow}),
			}},
			error: &phase{vm: "error", power: messages.NoState, saves: []NovaSave{
				save(fields{"vm_state": "error", "task_state": nil}),
			}},
			endOps: []string{OpUpdateInstanceInfo},
			// nova-compute finds the instance deleting at its next save
			// (_build_and_run_instance's UnexpectedDeletingTaskStateError branch).
			cancelled:   &phase{vm: "error", power: messages.NoState},
			cancelFault: "UnexpectedDeletingTaskStateError",
			cancelText:  "Conflict updating instance %s. Expected: {'task_state': ['spawning']}. Actual: {'task_state': 'deleting'}",
		},
	},
	KindDestroy: {
		method: messages.MethodTerminateInstance, decode: decodeDestroy,
		flow:     []State{StateResolve, StateDeconfig, StatePowerOff, StateRemovePostscript, StateRestoreIP},
		deadline: 15 * time.Minute,
		node:     nodeEffect{power: powerOf, free: true},
		lastWord: true,
		then:     KindClean,
		nova: novaSpec{
			event: "compute_terminate_instance", action: "delete",
			start: &phase{task: "deleting"},
			end: &phase{vm: "deleted", power: messages.NoState, saves: []NovaSave{
				save(fields{"vm_state": "deleted", "task_state": nil, "power_state": 0, "terminated_at": NovaNow}),
			}},
			error:  &phase{quiet: true, saves: []NovaSave{save(fields{"vm_state": "error", "task_state": nil})}},
			endOps: []string{OpDeleteInstanceInfo, OpInstanceDestroy, OpAllocationDelete},
		},
	},
	KindPowerOn: {
		method: messages.MethodStartInstance, decode: decodePowerOn,
		flow:     []State{StateResolve, StatePower, StateVerifyPower},
		rpower:   xcat.PowerOn,
		deadline: 10 * time.Minute,
		node:     nodeEffect{power: powerOn},
		nova: novaSpec{
			event: "compute_start_instance", action: "power_on",
			start: &phase{vm: "stopped", power: messages.Shutdown, task: "powering-on"},
			end: &phase{vm: "active", power: messages.Running, saves: []NovaSave{
				guarded("powering-on", fields{"vm_state": "active", "task_state": nil, "power_state": 1}),
			}},
			error: &phase{quiet: true, saves: []NovaSave{save(fields{"task_state": nil})}},
		},
	},
	KindPowerOff: {
		method: messages.MethodStopInstance, decode: decodePowerOff,
		flow:     []State{StateResolve, StatePower, StateVerifyPower},
		rpower:   xcat.PowerOff,
		deadline: 10 * time.Minute,
		node:     nodeEffect{power: powerOf},
		nova: novaSpec{
			event: "compute_stop_instance", action: "power_off",
			start: &phase{vm: "active", power: messages.Running, task: "powering-off"},
			end: &phase{vm: "stopped", power: messages.Shutdown, saves: []NovaSave{
				guarded([]any{"powering-off"}, fields{"vm_state": "stopped", "task_state": nil, "power_state": 4}),
			}},
			error: &phase{quiet: true, saves: []NovaSave{save(fields{"task_state": nil})}},
		},
	},
	KindReboot: {
		method: messages.MethodRebootInstance, decode: decodeReboot,
		flow:     []State{StateResolve, StateNoteStatus, StateReboot, StateVerifyPower},
		deadline: 10 * time.Minute,
		node:     nodeEffect{power: powerOn},
		nova: novaSpec{
			event: "compute_reboot_instance", action: "reboot", fault: "InstanceRebootFailure",
			start: &phase{vm: "active", power: messages.Running, task: "rebooting", saves: []NovaSave{
				guarded([]any{"rebooting", "reboot_pending", "reboot_started"}, fields{"task_state": "reboot_pending", "power_state": 1}),
				guarded("reboot_pending", fields{"task_state": "reboot_started"}),
			}},
			end: &phase{vm: "active", power: messages.Running, saves: []NovaSave{
				save(fields{"vm_state": "active", "task_state": nil, "power_state": 1}),
			}},
			error: &phase{vm: "active", power: messages.Running, saves: []NovaSave{
				save(fields{"vm_state": "error", "task_state": nil}),
			}},
		},
	},
	KindRebuild: {
		method: messages.MethodRebuildInstance, decode: decodeRebuild,
		flow:     []State{StateResolve, StateAddPostscript, StateNodeSet, StateSetBoot, StateNoteStatus, StateBoot, StateWaitBooted},
		deadline: 60 * time.Minute,
		node:     nodeEffect{owned: true, power: powerOn},
		nova: novaSpec{
			event: "compute_rebuild_instance", action: "rebuild", fault: "InstanceDeployFailure",
			start: &phase{vm: "active", power: messages.Running, task: "rebuilding", saves: []NovaSave{
				guarded([]any{"rebuilding"}, fields{"task_state": "rebuilding", "power_state": 1}),
				guarded([]any{"rebuilding"}, fields{"task_state": "rebuild_block_device_mapping"}),
				guarded([]any{"rebuild_block_device_mapping"}, fields{"task_state": "rebuild_spawning"}),
			}},
			end: &phase{vm: "active", power: messages.Running, saves: []NovaSave{
				guarded([]any{"rebuild_spawning"}, fields{"vm_state": "active", "task_state": nil, "power_state": 1, "launched_at": NovaNow}),
			}},
			error: &phase{vm: "error", power: messages.Running, saves: []NovaSave{
				save(fields{"vm_state": "error", "task_state": nil}),
			}},
			endOps: []string{OpUpdateInstanceInfo},
		},
	},
	KindRescue: {
		method: messages.MethodRescueInstance, decode: decodeRescue,
		flow:     []State{StateResolve, StateAddPostscript, StateNodeSet, StateSetBoot, StateNoteStatus, StateBoot, StateWaitBooted},
		deadline: 30 * time.Minute,
		node:     nodeEffect{owned: true, power: powerOn},
		nova: novaSpec{
			event: "compute_rescue_instance", action: "rescue", fault: "InstanceNotRescuable",
			start: &phase{vm: "active", power: messages.Running, task: "rescuing"},
			end: &phase{vm: "rescued", power: messages.Running, saves: []NovaSave{
				guarded("rescuing", fields{"vm_state": "rescued", "task_state": nil, "power_state": 1, "launched_at": NovaNow}),
			}},
			error: &phase{quiet: true, saves: []NovaSave{save(fields{"vm_state": "error", "task_state": nil})}},
		},
	},
	KindUnrescue: {
		method: messages.MethodUnrescueInstance, decode: decodeUnrescue,
		flow:     []State{StateResolve, StateRemovePostscript, StateNodeSet, StateSetBoot, StateNoteStatus, StateReboot, StateVerifyPower},
		deadline: 15 * time.Minute,
		node:     nodeEffect{owned: true, power: powerOn},
		bootFrom: "hd",
		nova: novaSpec{
			event: "compute_unrescue_instance", action: "unrescue",
			start: &phase{vm: "rescued", power: messages.Running, task: "unrescuing"},
			end: &phase{vm: "active", power: messages.Running, saves: []NovaSave{
				guarded("unrescuing", fields{"vm_state": "active", "task_state": nil, "power_state": 1}),
			}},
			error: &phase{quiet: true, saves: []NovaSave{save(fields{"vm_state": "error", "task_state": nil})}},
		},
	},
	KindClean: {
		internal: true,
		flow:     []State{StateResolve, StateCleanPrepare, StateSetBoot, StateNoteStatus, StateBoot, StateWaitCleaned, StateCleanFinish},
		deadline: 2 * time.Hour,
		node:     nodeEffect{power: powerOf, cleans: true},
		// The node leaves maintenance (or stays held): placement follows at once.
		nodesChanged: true,
	},

	KindRegisterNodes: {
		namespace: messages.XCATBMNamespace, method: messages.MethodRegisterNodes, decode: decodeRegisterNodes,
		flow: []State{StateRegister}, deadline: 30 * time.Minute,
		registration: true, register: (*Worker).registerNodes, nodesChanged: true,
	},
	KindRegisterImages: {
		namespace: messages.XCATBMNamespace, method: messages.MethodRegisterImages, decode: decodeRegisterImages,
		flow: []State{StateRegister}, deadline: 30 * time.Minute,
		registration: true, register: (*Worker).registerImages,
	},
	KindRemoveNodes: {
		namespace: messages.XCATBMNamespace, method: messages.MethodRemoveNodes, decode: decodeRemoveNodes,
		flow: []State{StateRegister}, deadline: 10 * time.Minute,
		registration: true, register: (*Worker).removeNodes, nodesChanged: true,
	},
}

// stateTable is the state machine's table of steps.
var stateTable = map[State]stateSpec{
	StateResolve: {step: (*Worker).stepResolve, recovery: rerunSafe,
		does: "lsdef the node (named by nova, or by MAC); check it is this management node's and free; the tenant address"},
	StateSetIP: {step: (*Worker).stepSetIP, recovery: rerunSafe,
		does: "chdef ip=<tenant IP>; makehosts (when the IP is in the node's xCAT subnet)"},
	StateAddPostscript: {step: (*Worker).stepAddPostscript, recovery: rerunSafe,
		does: "chdef -m stale config_ops_bmnode entries; chdef -p postbootscripts=\"config_ops_bmnode ...\""},
	StateNodeSet: {step: (*Worker).stepNodeSet, recovery: rerunSafe,
		does: "nodeset osimage=<xcat_image_name> (spawn, rebuild, a rescue osimage), shell (genesis), boot (unrescue)"},
	StateSetBoot: {step: (*Worker).stepSetBoot, recovery: rerunSafe,
		does: "rsetboot net|hd (ipmi) / rbootseq net|hd (blade, fsp): the kind's boot device"},
	StateNoteStatus: {step: (*Worker).stepNoteStatus, recovery: rerunSafe,
		does: "nodels nodelist.status nodelist.statustime: what a recovered boot compares against"},
	StateBoot: {step: (*Worker).stepBoot, recover: (*Worker).recoverBoot, recovery: checkStatus,
		does: "rpower boot (ipmi, blade, fsp) / rnetboot (hmc)"},
	StateWaitBooted: {step: (*Worker).stepWaitBooted, recovery: rerunSafe, pastDeadline: true,
		does: "nodels nodelist.status until booted (shell for genesis); failed, or no change by the deadline, fails"},
	StateDeconfig: {step: (*Worker).stepDeconfig, recovery: rerunSafe,
		does: "updatenode -P \"deconfig_ops_bmnode <ip>\" when the node is on and had an address alias"},
	StatePowerOff: {step: (*Worker).stepPowerOff, recovery: rerunSafe,
		does: "rpower off, unless rpower stat says off"},
	StateRemovePostscript: {step: (*Worker).stepRemovePostscript, recovery: rerunSafe,
		does: "chdef -m postbootscripts=<config_ops_bmnode entries> (the node's; an undone spawn's own)"},
	StateRestoreIP: {step: (*Worker).stepRestoreIP, recovery: rerunSafe,
		does: "chdef ip=<original>; makehosts; delete the Neutron port spawn created"},
	StateResetBoot: {step: (*Worker).stepResetBoot, recovery: rerunSafe,
		does: "nodeset offline where the spawn ran nodeset; rsetboot default (ipmi) where it set the boot device and did not boot"},
	StatePower: {step: (*Worker).stepPower, recovery: rerunSafe,
		does: "rpower on / off (repeating it changes nothing)"},
	StateReboot: {step: (*Worker).stepReboot, recover: (*Worker).recoverBoot, recovery: checkStatus,
		does: "rpower boot"},
	StateVerifyPower: {step: (*Worker).stepVerifyPower, recovery: rerunSafe, pastDeadline: true,
		does: "rpower stat until it shows the wanted state, or the deadline"},
	StateCleanPrepare: {step: (*Worker).stepCleanPrepare, recovery: rerunSafe,
		does: "nodeset runimage=http://<site.master><site.installdir>/xcatbm/clean-<mode>.tgz (genesis erases the disks)"},
	StateWaitCleaned: {step: (*Worker).stepWaitCleaned, recovery: rerunSafe, pastDeadline: true,
		does: "nodels nodelist.status and rpower stat until the node is off (erased); status failed, or the deadline, fails"},
	StateCleanFinish: {step: (*Worker).stepCleanFinish, recovery: rerunSafe,
		does: "nodeset offline: the node boots nothing until its next tenant"},
	StateRegister: {step: (*Worker).stepRegister, recovery: rerunSafe,
		does: "lsdef / tabdump / lsdef -t osimage, then the nodes table or Glance (register.go)"},
}

// spec returns kind's row; nil for a kind this version does not know.
func spec(kind Kind) *kindSpec { return kinds[kind] }

// next returns the state after s in kind's flow, or in its undo steps when undoing;
// last says s ended them.
func next(kind Kind, s State, undoing bool) (st State, last bool) {
	k := spec(kind)
	if k == nil {
		return StateFailed, true
	}
	flow := k.flow
	if undoing {
		flow = k.undo
	}
	for i, st := range flow {
		if st == s && i+1 < len(flow) {
			return flow[i+1], false
		}
	}
	return StateDone, true
}

// castKey names a request method in its namespace.
type castKey struct{ namespace, method string }

// byMethod maps each request method to the kind of job it makes.
var byMethod = func() map[castKey]Kind {
	m := make(map[castKey]Kind, len(kinds))
	for k, s := range kinds {
		if !s.internal {
			m[castKey{s.namespace, s.method}] = k
		}
	}
	return m
}()

// outcomeKind says what happens to a job after a step.
type outcomeKind int

const (
	advance outcomeKind = iota // the step is done: go to the next state
	wait                       // not yet: run the same step again after a delay (polling)
	retry                      // a transient error: run the same step again after backoff
	fail                       // a permanent error: the job ends failed
)

// outcome is a step's verdict for one job.
type outcome struct {
	kind   outcomeKind
	err    error         // the reason for retry or fail
	delay  time.Duration // for wait
	detail string        // a note for the history row
}

func advanced(detail string) outcome          { return outcome{kind: advance, detail: detail} }
func waiting(d time.Duration) outcome         { return outcome{kind: wait, delay: d} }
func failed(err error) outcome                { return outcome{kind: fail, err: err} }
func transient(err error) outcome             { return outcome{kind: retry, err: err} }
func skipped(why string) outcome              { return outcome{kind: advance, detail: "skipped: " + why} }
func (o outcome) String() string              { return [...]string{"advance", "wait", "retry", "fail"}[o.kind] }
func (o outcome) is(k outcomeKind) bool       { return o.kind == k }
func (o outcome) withDetail(d string) outcome { o.detail = d; return o }
