package worker

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"outreach/provider"
)

// breaker opens after a run of consecutive transient failures of one
// provider and keeps calls away from it for a cool-down; then one probe at
// a time is let through (half-open) until a success closes it.
type breaker struct {
	mu        sync.Mutex
	failures  int
	openUntil time.Time
	probing   bool
}

const (
	breakerThreshold = 20
	breakerCooldown  = 10 * time.Second
)

type breakers struct {
	now func() time.Time
	// gauge is outreach_breaker_open: 1 from the moment a provider's
	// breaker opens until a probe is let through (half-open) or it closes.
	gauge *prometheus.GaugeVec
	mu    sync.Mutex
	m     map[string]*breaker
}

func newBreakers(now func() time.Time, gauge *prometheus.GaugeVec) *breakers {
	return &breakers{now: now, gauge: gauge, m: map[string]*breaker{}}
}

// show sets the provider's gauge (the caller holds its breaker's lock, so
// that the gauge follows the breaker's own order of changes).
func (bs *breakers) show(name string, open bool) {
	if bs.gauge == nil {
		return
	}
	v := 0.0
	if open {
		v = 1
	}
	bs.gauge.WithLabelValues(name).Set(v)
}

func (bs *breakers) get(name string) *breaker {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b, ok := bs.m[name]
	if !ok {
		b = &breaker{}
		bs.m[name] = b
	}
	return b
}

// allow reports whether a call may go out now; when not, wait says until
// when the breaker stays open.
func (bs *breakers) allow(name string) (ok bool, wait time.Duration) {
	b := bs.get(name)
	now := bs.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openUntil.IsZero() {
		return true, 0
	}
	if now.Before(b.openUntil) {
		return false, b.openUntil.Sub(now)
	}
	if b.probing {
		return false, time.Second
	}
	b.probing = true
	bs.show(name, false)
	return true, 0
}

// record notes the outcome of a call: failures (a transient error, or no
// answer in time) count, anything else (success or a permanent answer)
// shows the provider is up.
func (bs *breakers) record(name string, failure bool) {
	b := bs.get(name)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !failure {
		if !b.openUntil.IsZero() {
			bs.show(name, false)
		}
		b.failures, b.openUntil, b.probing = 0, time.Time{}, false
		return
	}
	b.failures++
	if b.probing || b.failures >= breakerThreshold {
		b.openUntil = bs.now().Add(breakerCooldown)
		b.probing = false
		bs.show(name, true)
	}
}

// failed reports whether a call's outcome counts against its provider's
// breaker: a transient error, an ambiguous one (a timeout, an answer
// lost), which is what a provider that hangs gives every time, or a
// refusal that may be the deployment's setup (provider.IsSetup).
func failed(err error) bool {
	c := provider.ClassOf(err)
	return err != nil && (c == provider.Transient || c == provider.Ambiguous || provider.IsSetup(err))
}

// open reports whether the breaker is open now (for metrics and tests).
func (bs *breakers) open(name string) bool {
	b := bs.get(name)
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.openUntil.IsZero() && bs.now().Before(b.openUntil)
}

// backoff is exponential with full jitter, from base, capped at max.
func backoff(attempt int, base, max time.Duration) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := base << min(attempt-1, 16)
	if d > max || d <= 0 {
		d = max
	}
	return d/2 + rand.N(d/2+1)
}
