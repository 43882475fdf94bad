package worker

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"xcatbm/xcat"
)

// Registerer is where the worker registers its metrics (a prometheus.Registerer).
type Registerer = prometheus.Registerer

type metrics struct {
	jobsAccepted  *prometheus.CounterVec
	transitions   *prometheus.CounterVec
	stepDuration  *prometheus.HistogramVec
	deadLetters   prometheus.Counter
	duplicates    prometheus.Counter
	reconnects    *prometheus.CounterVec
	published     prometheus.Counter
	openJobs      prometheus.Gauge
	oldestJob     prometheus.Gauge
	outboxPending prometheus.Gauge
	outboxLag     prometheus.Gauge
	powerChanges  prometheus.Counter
}

func newMetrics(reg Registerer, host string) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	labels := prometheus.Labels{"compute_host": host}
	f := func(c prometheus.Collector) prometheus.Collector {
		if err := reg.Register(c); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				return are.ExistingCollector
			}
		}
		return c
	}
	m := &metrics{
		jobsAccepted:  f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xcatbm_jobs_accepted_total", Help: "Jobs recorded from received casts, by kind.", ConstLabels: labels}, []string{"kind"})).(*prometheus.CounterVec),
		transitions:   f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xcatbm_job_transitions_total", Help: "Job transitions recorded, by state entered.", ConstLabels: labels}, []string{"state"})).(*prometheus.CounterVec),
		stepDuration:  f(prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "xcatbm_step_duration_seconds", Help: "Time one batch of a step took, xCAT calls included.", ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.005, 3, 10)}, []string{"kind", "step"})).(*prometheus.HistogramVec),
		deadLetters:   f(prometheus.NewCounter(prometheus.CounterOpts{Name: "xcatbm_dead_letters_total", Help: "Messages sent to the dead-letter queue.", ConstLabels: labels})).(prometheus.Counter),
		duplicates:    f(prometheus.NewCounter(prometheus.CounterOpts{Name: "xcatbm_duplicate_messages_total", Help: "Redelivered casts dropped by _unique_id.", ConstLabels: labels})).(prometheus.Counter),
		reconnects:    f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xcatbm_amqp_reconnects_total", Help: "AMQP reconnections, by connection.", ConstLabels: labels}, []string{"connection"})).(*prometheus.CounterVec),
		published:     f(prometheus.NewCounter(prometheus.CounterOpts{Name: "xcatbm_outbox_published_total", Help: "Outbox messages published with a broker confirm.", ConstLabels: labels})).(prometheus.Counter),
		openJobs:      f(prometheus.NewGauge(prometheus.GaugeOpts{Name: "xcatbm_jobs_open", Help: "Jobs not finished (queued or running).", ConstLabels: labels})).(prometheus.Gauge),
		oldestJob:     f(prometheus.NewGauge(prometheus.GaugeOpts{Name: "xcatbm_jobs_oldest_open_seconds", Help: "Age of the oldest unfinished job.", ConstLabels: labels})).(prometheus.Gauge),
		outboxPending: f(prometheus.NewGauge(prometheus.GaugeOpts{Name: "xcatbm_outbox_pending", Help: "Outbox messages not yet published.", ConstLabels: labels})).(prometheus.Gauge),
		outboxLag:     f(prometheus.NewGauge(prometheus.GaugeOpts{Name: "xcatbm_outbox_lag_seconds", Help: "Age of the oldest unpublished outbox message.", ConstLabels: labels})).(prometheus.Gauge),
		powerChanges:  f(prometheus.NewCounter(prometheus.CounterOpts{Name: "xcatbm_power_state_changes_total", Help: "Power state changes found by the power sync.", ConstLabels: labels})).(prometheus.Counter),
	}
	return m
}

// InstrumentXCAT wraps an xCAT backend so that every request's duration is recorded
// in xcatbm_xcat_request_duration_seconds, by command and outcome (ok, node_error,
// command_error, unavailable).
func InstrumentXCAT(b xcat.Backend, reg Registerer) xcat.Backend {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "xcatbm_xcat_request_duration_seconds",
		Help: "Duration of xCAT requests, by command and outcome.", Buckets: prometheus.ExponentialBuckets(0.005, 3, 10)},
		[]string{"command", "outcome"})
	if reg != nil {
		if err := reg.Register(h); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				h = are.ExistingCollector.(*prometheus.HistogramVec)
			}
		}
	}
	return &timedBackend{b: b, h: h}
}

type timedBackend struct {
	b xcat.Backend
	h *prometheus.HistogramVec
}

func (t *timedBackend) Do(ctx context.Context, req xcat.Request) (*xcat.Response, error) {
	began := time.Now()
	resp, err := t.b.Do(ctx, req)
	outcome := "ok"
	var cmdErr *xcat.CommandError
	switch {
	case errors.As(err, &cmdErr):
		outcome = "command_error"
	case err != nil:
		outcome = "unavailable"
	case resp != nil && resp.ErrorCode != 0:
		outcome = "node_error"
	}
	t.h.WithLabelValues(req.Command, outcome).Observe(time.Since(began).Seconds())
	return resp, err
}
