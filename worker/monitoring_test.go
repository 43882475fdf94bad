package worker_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"xcatbm/worker"
)

// recordingRegistry keeps the name of every metric registered on it.
type recordingRegistry struct {
	*prometheus.Registry
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([a-z_:][a-z0-9_:]*)"`)

func (r *recordingRegistry) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return r.Registry.Register(c)
}

// exportedMetrics is every metric name a worker serves on /metrics, read from the
// collectors it registers, not from a list kept by hand.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	e := newEnv(t)
	reg := &recordingRegistry{Registry: prometheus.NewRegistry(), names: map[string]bool{}}
	if _, err := worker.New(testConfig(), worker.Deps{Store: e.st, XCAT: e.xc, AMQPURLs: []string{e.vh.URL}, Metrics: reg,
		Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	worker.NewXCATHealth(reg, zerolog.Nop(), time.Minute)
	worker.InstrumentXCAT(nil, reg)
	if len(reg.names) < 10 {
		t.Fatalf("only %d metrics recorded: %v", len(reg.names), reg.names)
	}
	return reg.names
}

// metricNames returns the xcatbm_ metric names an expression reads, histogram
// series suffixes removed.
func metricNames(expr string) []string {
	var out []string
	for _, n := range regexp.MustCompile(`\bxcatbm_[a-z0-9_]+`).FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if strings.HasSuffix(n, "_seconds"+suffix) {
				n = strings.TrimSuffix(n, suffix)
			}
		}
		out = append(out, n)
	}
	return out
}

// checkExpr fails t when expr reads a metric the worker does not export, reads none,
// or has unbalanced brackets. It is no PromQL parser (promtool is not part of the
// build); it catches the mistakes a renamed metric or a hand edit makes.
func checkExpr(t *testing.T, where, expr string, exported map[string]bool) {
	t.Helper()
	names := metricNames(expr)
	if len(names) == 0 && !strings.Contains(expr, "up{") {
		t.Errorf("%s: %q reads no xcatbm metric", where, expr)
	}
	for _, n := range names {
		if !exported[n] {
			t.Errorf("%s: %q reads %s, which the worker does not export", where, expr, n)
		}
	}
	depth := map[rune]int{}
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for _, c := range expr {
		switch c {
		case '(', '[', '{':
			depth[c]++
		case ')', ']', '}':
			depth[pairs[c]]--
			if depth[pairs[c]] < 0 {
				t.Errorf("%s: %q closes %c before opening it", where, expr, c)
			}
		}
	}
	for c, d := range depth {
		if d != 0 {
			t.Errorf("%s: %q leaves %c unbalanced", where, expr, c)
		}
	}
}

// TestMonitoringFiles: the alert rules and the Grafana dashboard that packaging/
// ships read only metrics the worker exports, and have the shape Prometheus and
// Grafana load.
func TestMonitoringFiles(t *testing.T) {
	t.Parallel()
	exported := exportedMetrics(t)

	b, err := os.ReadFile("../packaging/monitoring/xcatbm-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true) // a misspelt key is an error, as Prometheus makes it
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("alert rules: %v", err)
	}
	seen := map[string]bool{}
	used := map[string]bool{}
	for _, g := range rules.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: a group needs a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || seen[r.Alert] {
				t.Errorf("alert %q: missing or repeated name", r.Alert)
			}
			seen[r.Alert] = true
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: needs a summary and a description", r.Alert)
			}
			checkExpr(t, "alert "+r.Alert, r.Expr, exported)
			for _, n := range metricNames(r.Expr) {
				used[n] = true
			}
		}
	}
	for _, want := range []string{"xcatbm_xcat_down", "xcatbm_job_transitions_total", "xcatbm_outbox_lag_seconds", "xcatbm_dead_letters_total"} {
		if !used[want] {
			t.Errorf("no alert reads %s", want)
		}
	}

	b, err = os.ReadFile("../packaging/monitoring/xcatbm-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard lacks a title, a uid or panels")
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] || p.Title == "" || p.Type == "" || len(p.Targets) == 0 {
			t.Errorf("panel %d %q: repeated id, or no title, type or target", p.ID, p.Title)
		}
		ids[p.ID] = true
		for _, tg := range p.Targets {
			checkExpr(t, "panel "+p.Title, tg.Expr, exported)
		}
	}
}
