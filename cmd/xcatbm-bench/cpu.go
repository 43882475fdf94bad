package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat; Linux has
// used 100 on every architecture this runs on.
const clockTicks = 100

// cpuSample is the CPU time used so far by the bench process (the worker and the
// simulator in it), by every PostgreSQL process and by RabbitMQ's Erlang VM, and the
// wall time of the sample. Two samples give where a row's CPU went, which on a
// two-core machine shared by all three is what bounds a rate.
type cpuSample struct {
	at                     time.Time
	self, postgres, broker time.Duration
}

// sampleCPU reads /proc; a process that ends while it is read is left out.
func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now(), self: procCPU("self")}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(d + "/comm")
		if err != nil {
			continue
		}
		switch strings.TrimSpace(string(comm)) {
		case "postgres":
			s.postgres += procCPU(filepath.Base(d))
		case "beam.smp":
			s.broker += procCPU(filepath.Base(d))
		}
	}
	return s
}

// procCPU returns utime+stime+cutime+cstime of /proc/<pid>/stat, 0 when unreadable:
// the children's times count the processes that ended and were reaped (PostgreSQL's
// backends, whose CPU the postmaster collects), so the sum over a server's processes
// only grows.
func procCPU(pid string) time.Duration {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; the fields after its ')' are
	// state (3), ..., utime (14), stime (15), cutime (16), cstime (17).
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, v := range f[11:15] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// cpuPer describes the CPU used between two samples per unit of work (n units):
// "CPU per job: bench 1.20 ms, postgres 0.80 ms, rabbitmq 0.40 ms; cores busy 1.9 of 2".
func cpuPer(from, to cpuSample, n int, unit string) string {
	if n <= 0 {
		return ""
	}
	per := func(d time.Duration) string {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)/float64(n))
	}
	wall := to.at.Sub(from.at)
	busy := to.self - from.self + to.postgres - from.postgres + to.broker - from.broker
	cores := 0.0
	if wall > 0 {
		cores = float64(busy) / float64(wall)
	}
	return fmt.Sprintf("CPU per %s: bench process %s, postgres %s, rabbitmq %s; %.1f cores busy", unit,
		per(to.self-from.self), per(to.postgres-from.postgres), per(to.broker-from.broker), cores)
}
