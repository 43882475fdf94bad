package worker

import (
	"time"
)

// Kind is a kind of job.
type Kind string

// The kinds of job a worker runs. Each maps to a nova compute RPC method.
const (
	KindSpawn    Kind = "spawn"     // build_and_run_instance
	KindDestroy  Kind = "destroy"   // terminate_instance
	KindPowerOn  Kind = "power_on"  // start_instance
	KindPowerOff Kind = "power_off" // stop_instance
	KindReboot   Kind = "reboot"    // reboot_instance

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
	StateNodeSet          State = "nodeset"           // nodeset osimage=<image>
	StateSetBoot          State = "set_boot"          // rsetboot net (ipmi) / rbootseq net (blade, fsp)
	StateBoot             State = "boot"              // rpower boot (ipmi, blade, fsp) / rnetboot (hmc)
	StateWaitBooted       State = "wait_booted"       // poll nodelist.status until booted / failed / deadline
	StateDeconfig         State = "deconfig"          // updatenode -P "deconfig_ops_bmnode <ip>" while reachable
	StatePowerOff         State = "power_off"         // rpower off, unless rpower stat already says off
	StateRemovePostscript State = "remove_postscript" // chdef -m postbootscripts=<config_ops_bmnode entry>
	StateRestoreIP        State = "restore_ip"        // chdef ip=<original>; makehosts
	StatePower            State = "power"             // rpower on / off / boot
	StateVerifyPower      State = "verify_power"      // rpower stat until it shows the wanted state
	StateRegister         State = "register"          // lsdef/tabdump, then the nodes table or glance (register.go)

	StateDone      State = "done"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

// flows is the whole state machine: each kind of job walks its steps in order and
// ends in StateDone; any step may end it in StateFailed (a permanent error, the
// deadline) or StateCancelled (a later destroy of the same instance). What a step does
// is in steps.go, one function per State.
//
// destroy runs deconfig first, while the node is still on and reachable, then powers
// it off: the reverse order would leave nothing to reach.
var flows = map[Kind][]State{
	KindSpawn:    {StateResolve, StateSetIP, StateAddPostscript, StateNodeSet, StateSetBoot, StateBoot, StateWaitBooted},
	KindDestroy:  {StateResolve, StateDeconfig, StatePowerOff, StateRemovePostscript, StateRestoreIP},
	KindPowerOn:  {StateResolve, StatePower, StateVerifyPower},
	KindPowerOff: {StateResolve, StatePower, StateVerifyPower},
	KindReboot:   {StateResolve, StatePower, StateVerifyPower},

	KindRegisterNodes:  {StateRegister},
	KindRegisterImages: {StateRegister},
	KindRemoveNodes:    {StateRegister},
}

// defaultDeadlines bound each kind of job from its arrival.
var defaultDeadlines = map[Kind]time.Duration{
	KindSpawn:    60 * time.Minute,
	KindDestroy:  15 * time.Minute,
	KindPowerOn:  10 * time.Minute,
	KindPowerOff: 10 * time.Minute,
	KindReboot:   10 * time.Minute,

	KindRegisterNodes:  30 * time.Minute,
	KindRegisterImages: 30 * time.Minute,
	KindRemoveNodes:    10 * time.Minute,
}

// next returns the state after s in kind's flow (StateDone after the last step).
func next(kind Kind, s State) State {
	flow := flows[kind]
	for i, st := range flow {
		if st == s && i+1 < len(flow) {
			return flow[i+1]
		}
	}
	return StateDone
}

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
