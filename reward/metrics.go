package reward

import (
	"github.com/prometheus/client_golang/prometheus"

	"outreach/provider"
)

// Metrics are the rewards' Prometheus series: what the ledger decided,
// what the carrier's provisioning API answered, and what was granted.
// A nil *Metrics counts nothing.
type Metrics struct {
	// Recorded counts rewards recorded, by state (pending, rejected) and
	// reason (budget_exhausted, outside_window, …; "" for none).
	Recorded *prometheus.CounterVec
	// Calls counts provisioning calls by result: ok, transient (retried),
	// permanent.
	Calls *prometheus.CounterVec
	// Finished counts fulfilments by the state they ended in: granted,
	// failed.
	Finished *prometheus.CounterVec
	// GrantedMB is the data granted, in MB.
	GrantedMB prometheus.Counter
}

// NewMetrics registers the series on reg (nil: a private registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		Recorded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "outreach_rewards_recorded_total",
			Help: "Rewards recorded for attributed installs, by state (pending: to be granted; rejected) and reason."},
			[]string{"state", "reason"}),
		Calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "outreach_reward_provisioning_calls_total",
			Help: "Calls to the carrier's provisioning API, by result (ok, transient: retried, permanent)."},
			[]string{"result"}),
		Finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "outreach_rewards_finished_total",
			Help: "Reward fulfilments by the state they ended in (granted, failed)."}, []string{"state"}),
		GrantedMB: prometheus.NewCounter(prometheus.CounterOpts{Name: "outreach_reward_granted_mb_total",
			Help: "Mobile data granted as rewards, in MB."}),
	}
	reg.MustRegister(m.Recorded, m.Calls, m.Finished, m.GrantedMB)
	return m
}

func (m *Metrics) recorded(r Reward) {
	if m != nil {
		m.Recorded.WithLabelValues(string(r.State), string(r.Reason)).Inc()
	}
}

func (m *Metrics) called(err error) {
	if m == nil {
		return
	}
	result := "ok"
	switch c := provider.ClassOf(err); {
	case err == nil:
	case c == provider.Transient || c == provider.Ambiguous:
		result = "transient"
	default:
		result = "permanent"
	}
	m.Calls.WithLabelValues(result).Inc()
}

func (m *Metrics) finished(r Reward, to State) {
	if m == nil {
		return
	}
	m.Finished.WithLabelValues(string(to)).Inc()
	if to == StateGranted {
		m.GrantedMB.Add(float64(r.DataMB))
	}
}
