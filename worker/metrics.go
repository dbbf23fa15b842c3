package worker

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus series.
type Metrics struct {
	Messages *prometheus.CounterVec // by channel, provider, outcome
	Skips    *prometheus.CounterVec // by channel, reason
	Deferred *prometheus.CounterVec // by channel, reason
	Fanout   prometheus.Counter
	// SlotsMissed counts paced sender slots given up because the wait for
	// them overshot (a starved process): by channel.
	SlotsMissed *prometheus.CounterVec
	Breaker     *prometheus.GaugeVec
	SendTime    *prometheus.HistogramVec
	// Ambiguous counts this process's look-ups of sends whose answer was
	// lost, by provider and result (see the series' help).
	Ambiguous *prometheus.CounterVec
}

// NewMetrics registers the series on reg (nil: a private registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "outreach_messages_total",
			Help: "Send attempts by channel, provider and outcome."}, []string{"channel", "provider", "outcome"}),
		Skips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "outreach_skips_total",
			Help: "Deliveries skipped, by channel and reason."}, []string{"channel", "reason"}),
		Deferred: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "outreach_deferred_total",
			Help: "Deliveries put back for later without a send attempt, by channel and reason " +
				"(frequency_cap_wait: the subscriber is at the cap only with messages in flight; breaker_open)."},
			[]string{"channel", "reason"}),
		Fanout: prometheus.NewCounter(prometheus.CounterOpts{Name: "outreach_fanout_deliveries_total",
			Help: "Deliveries written by fan-out."}),
		SlotsMissed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "outreach_rate_slots_missed_total",
			Help: "Slots of a paced sender's rate given up because the worker woke too late to keep the limit, by channel."},
			[]string{"channel"}),
		Breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "outreach_breaker_open",
			Help: "1 while a provider's circuit breaker is open."}, []string{"provider"}),
		SendTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "outreach_provider_call_seconds",
			Help: "Provider call latency.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"provider"}),
	}
	m.Ambiguous = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "outreach_ambiguous_lookups_total",
		Help: "Look-ups at their provider of sends whose answer was lost, made by this process, by provider and result " +
			"(taken: the provider had the message, now recorded sent; not_taken: it did not, and the delivery is sent again; " +
			"given_up: not taken after the last attempt, and failed; error: the look-up could not be made)."},
		[]string{"provider", "result"})
	reg.MustRegister(m.Messages, m.Skips, m.Deferred, m.Fanout, m.SlotsMissed, m.Breaker, m.SendTime, m.Ambiguous)
	return m
}
