package main

import (
	"math"
	"testing"
)

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		name  string
		t     target
		v     float64
		scale float64
		want  string
	}{
		{"storm ratio met", targetStormRatio, 0.95, 1, "pass"},
		{"storm ratio at the limit", targetStormRatio, 0.9, 1, "pass"},
		{"storm ratio under", targetStormRatio, 0.25, 1, "FAIL"},
		{"spawn ratio met", targetSpawnRatio, 1.0, 1, "pass"},
		{"spawn ratio under", targetSpawnRatio, 0.19, 1, "FAIL"},
		{"p99 under", targetNotifyP99, 249.9, 1, "pass"},
		{"p99 at the limit is a fail (strict)", targetNotifyP99, 250, 1, "FAIL"},
		{"p99 of unpublished rows", targetNotifyP99, math.Inf(1), 1, "FAIL"},
		{"sweep at the limit", targetSweep, 30, 1, "pass"},
		{"sweep over", targetSweep, 63.6, 1, "FAIL"},
		{"rss under", targetRSS, 92, 1, "pass"},
		{"rss at the limit", targetRSS, 150, 1, "FAIL"},
		{"xcat per 100 at the limit", targetXCATPer100, 1, 1, "pass"},
		{"xcat per 100 over", targetXCATPer100, 1.01, 1, "FAIL"},
		{"below scale 1, met: informational", targetStormRatio, 0.95, 0.05, "pass (informational, scale 0.05)"},
		{"below scale 1, missed: informational", targetSpawnRatio, 0.5, 0.05, "FAIL (informational, scale 0.05)"},
		{"unknown operator never passes", target{"==", 1, ""}, 1, 1, "FAIL"},
	} {
		if got := verdict(tc.t, tc.v, tc.scale); got != tc.want {
			t.Errorf("%s: verdict(%v, %g, scale %g) = %q, want %q", tc.name, tc.t, tc.v, tc.scale, got, tc.want)
		}
	}
}

func TestPassFail(t *testing.T) {
	for _, tc := range []struct {
		scale float64
		ok    bool
		want  string
	}{
		{1, true, "pass"},
		{1, false, "FAIL"},
		{0.05, true, "pass (informational, scale 0.05)"},
		{0.05, false, "FAIL (informational, scale 0.05)"},
	} {
		b := &bench{o: options{scale: tc.scale}}
		if got := b.passFail(tc.ok); got != tc.want {
			t.Errorf("scale %g, ok %v: %q, want %q", tc.scale, tc.ok, got, tc.want)
		}
	}
}
