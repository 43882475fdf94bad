package main

import (
	"strings"
	"testing"
	"time"
)

// TestProcCPU: the bench's own CPU time grows while it computes, as /proc says.
func TestProcCPU(t *testing.T) {
	before := procCPU("self")
	x := 0
	// A second of computing gets some CPU even on a machine busy with other tests;
	// /proc counts it in ticks of 10 ms.
	for began := time.Now(); time.Since(began) < time.Second; {
		x++
	}
	if after := procCPU("self"); after-before < 20*time.Millisecond {
		t.Errorf("CPU time grew %v over 1 s of computing (%d loops), want at least 20 ms", after-before, x)
	}
	if procCPU("0") != 0 {
		t.Error("no process 0: want 0")
	}
}

func TestCPUPer(t *testing.T) {
	at := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	from := cpuSample{at: at, self: time.Second, postgres: 2 * time.Second, broker: 3 * time.Second}
	to := cpuSample{at: at.Add(2 * time.Second), self: 3 * time.Second, postgres: 3 * time.Second, broker: 3500 * time.Millisecond}
	got := cpuPer(from, to, 1000, "cast")
	want := "CPU per cast: bench process 2.00 ms, postgres 1.00 ms, rabbitmq 0.50 ms; 1.8 cores busy"
	if got != want {
		t.Errorf("cpuPer = %q, want %q", got, want)
	}
	if cpuPer(from, to, 0, "cast") != "" {
		t.Error("no casts: want no figure")
	}
}

// TestMedian: a repeated row reports its median run (the lower middle of an even
// count) and lists every run in the order run.
func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		rates []float64
		want  float64
	}{
		{[]float64{5}, 5}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2}, {[]float64{900, 700, 800}, 800},
	} {
		var runs []measured
		for _, r := range tc.rates {
			runs = append(runs, measured{rate: r, note: "n"})
		}
		if got := median(runs).rate; got != tc.want {
			t.Errorf("median of %v = %v, want %v", tc.rates, got, tc.want)
		}
	}
	note := runsNote([]measured{{900, "a"}, {700, "b"}, {800, "c"}}, "jobs/s")
	if want := "median of 3 runs (900, 700, 800 jobs/s); median run: c"; note != want {
		t.Errorf("runsNote = %q, want %q", note, want)
	}
	if note := runsNote([]measured{{900, "a"}}, "jobs/s"); !strings.HasPrefix(note, "a") {
		t.Errorf("one run: %q, want its note alone", note)
	}
}
