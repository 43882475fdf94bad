package sim

import (
	"slices"
	"time"
)

// FaultKind names a fault the server can inject.
type FaultKind int

// The faults.
const (
	// FaultInstallFail makes the Nodes' installs end with status failed.
	FaultInstallFail FaultKind = iota + 1
	// FaultInstallHang keeps the Nodes in installing forever.
	FaultInstallHang
	// FaultBMCTimeout makes rpower, rsetboot and rbootseq answer an IPMI timeout
	// (IPMITimeoutMessage, errorcode 1) for the Nodes; Count limits it to that many
	// node calls (0: until cleared).
	FaultBMCTimeout
	// FaultDropConnection closes the connection before serverdone for the next Count
	// requests (at least 1) of Command ("" for any command).
	FaultDropConnection
	// FaultSlow delays answers to Command ("" for any) by Delay; Count limits it to
	// that many requests (0: until cleared).
	FaultSlow
	// FaultChDefNode makes chdef, with a noderange or a -z stanza, answer a node error
	// (ChDefFaultMessage, errorcode 1) for the Nodes and leave them unchanged while the
	// other nodes are changed; Count limits it to that many node changes (0: until
	// cleared). Real chdef reports its refusals at the top level; this stands for a
	// refusal that concerns one node, as the simulator's answer for an unknown node in
	// a stanza does, on a node that resolves.
	FaultChDefNode
	// FaultCleanFail makes the Nodes' runimages (cleaning) end with status failed,
	// the node left on.
	FaultCleanFail
)

// IPMITimeoutMessage is the node error a BMC timeout produces. A client classifies it
// as transient.
const IPMITimeoutMessage = "Error: timeout"

// ChDefFaultMessage is the node error FaultChDefNode produces. A client classifies it
// as permanent.
const ChDefFaultMessage = "Could not change the object definition (simulated fault)"

// Fault is one injected fault.
type Fault struct {
	Kind    FaultKind
	Nodes   []string
	Command string
	Count   int
	Delay   time.Duration
}

type faults struct{ list []*Fault }

func (f *faults) add(x Fault) { f.list = append(f.list, &x) }

func (f *faults) remove(i int) { f.list = slices.Delete(f.list, i, i+1) }

// nodeHas reports an install fault for node.
func (f *faults) nodeHas(kind FaultKind, node string) bool {
	for _, x := range f.list {
		if x.Kind == kind && slices.Contains(x.Nodes, node) {
			return true
		}
	}
	return false
}

// takeNode consumes one node fault of kind for node.
func (f *faults) takeNode(kind FaultKind, node string) bool {
	for i, x := range f.list {
		if x.Kind == kind && slices.Contains(x.Nodes, node) {
			if x.Count > 0 {
				x.Count--
				if x.Count == 0 {
					f.remove(i)
				}
			}
			return true
		}
	}
	return false
}

func (f *faults) takeDrop(command string) bool {
	for i, x := range f.list {
		if x.Kind == FaultDropConnection && (x.Command == "" || x.Command == command) {
			x.Count--
			if x.Count <= 0 {
				f.remove(i)
			}
			return true
		}
	}
	return false
}

func (f *faults) slowDelay(command string) time.Duration {
	for i, x := range f.list {
		if x.Kind == FaultSlow && (x.Command == "" || x.Command == command) {
			d := x.Delay
			if x.Count > 0 {
				x.Count--
				if x.Count == 0 {
					f.remove(i)
				}
			}
			return d
		}
	}
	return 0
}

// SetFault adds a fault; it applies from the next request on.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Kind == FaultDropConnection && f.Count < 1 {
		f.Count = 1
	}
	f.Nodes = slices.Clone(f.Nodes)
	s.faults.add(f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults.list = nil
	s.mu.Unlock()
}
