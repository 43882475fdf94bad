package main

import "testing"

func TestPassMissMarksScaledVerdicts(t *testing.T) {
	for _, tc := range []struct {
		scale float64
		ok    bool
		want  string
	}{
		{1, true, "pass"},
		{1, false, "miss"},
		{0.05, true, "pass (scaled)"},
		{0.05, false, "miss (scaled)"},
	} {
		b := &bench{o: options{scale: tc.scale}}
		if got := b.passMiss(tc.ok); got != tc.want {
			t.Errorf("scale %g, ok %v: %q, want %q", tc.scale, tc.ok, got, tc.want)
		}
	}
}
