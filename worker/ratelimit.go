package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limiter is a rate limit shared by every worker process through Redis. A
// caller reserves n units (SMS segments, pushes) in one round trip and gets
// the instant its first unit is due; units then follow one interval apart.
// It is GCRA in reservation form: go-redis/redis_rate answers allow/deny per
// call, which would cost a round trip per message and cannot pace a batch.
type Limiter struct {
	rdb redis.UniversalClient
}

// NewLimiter returns a limiter on rdb.
func NewLimiter(rdb redis.UniversalClient) *Limiter { return &Limiter{rdb: rdb} }

// reserveScript keeps, per key, the theoretical arrival time (TAT) of the
// next free unit in microseconds of Redis's own clock, so processes on
// different machines agree. Every reservation, urgent or not, starts at the
// TAT, so the key's rate holds whoever reserves. An ordinary reservation is
// refused ({0, how long to wait}) when its first unit would be due more
// than max_ahead from now, or while an urgent one holds slots ahead (the
// ':prio' key keeps the end of the last urgent reservation): marketing
// queues at most max_ahead ahead of the provider and stands aside while an
// alert sends, so an alert waits at most max_ahead for its first slot and
// then has the whole rate until it stops reserving. A reservation starts
// no earlier than behind ago, and at the TAT if that is later: a caller
// that comes late for the slot it waited for gets that slot, so the slots
// keep the rate's timeline (see Reserve). It answers {1, delay}, the delay
// negative for a slot already due.
//
// KEYS[1] tat key, KEYS[2] its priority key (in one hash slot, for Redis
// Cluster: a script may touch only the keys it is given, on one node);
// ARGV: interval_us, n, max_ahead_us, priority (1 = urgent), behind_us.
var reserveScript = redis.NewScript(rateScriptSource)

const rateScriptSource = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local max_ahead = tonumber(ARGV[3])
local prio = tonumber(ARGV[4])
local behind = tonumber(ARGV[5])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local prio_key = KEYS[2]
local start = math.max(now - behind, tat)
if prio == 1 then
  redis.call('SET', prio_key, start + n * interval, 'PX', 60000)
else
  local ptat = tonumber(redis.call('GET', prio_key) or '0')
  if ptat > now then
    return {0, ptat - now}
  end
  if start - now > max_ahead then
    return {0, start - now}
  end
end
redis.call('SET', KEYS[1], start + n * interval, 'PX', 60000)
return {1, start - now}
`

// rateKeys are the tat and priority keys of key, hash-tagged into one
// slot.
func rateKeys(key string) []string {
	tat := "outreach:rate:{" + key + "}"
	return []string{tat, tat + ":prio"}
}

// Reservation says when reserved units are due.
type Reservation struct {
	// Delay until the first unit is due.
	Delay time.Duration
	// Interval between units.
	Interval time.Duration
}

// Reserve reserves n units at rate per second on key. ok is false when the
// first unit would be due later than maxAhead; wait then says how long.
// An urgent reservation (alerts) is never refused, and ordinary ones are
// refused while it holds slots ahead, so marketing yields its share to an
// alert and takes it back after.
//
// The first unit may have been due up to behind ago (a negative Delay). A
// caller that reserves only once its slot is due comes a little late each
// time (its timer's slack, the round trip); were each reservation to start
// from its caller's arrival, each would lose that much of the rate, about
// a tenth at 100 a second. With behind, slots stay an interval apart on the
// key's timeline as long as callers come within behind of them.
func (l *Limiter) Reserve(ctx context.Context, key string, rate int, n int, maxAhead, behind time.Duration, urgent bool) (r Reservation, ok bool, wait time.Duration, err error) {
	if rate <= 0 || n <= 0 {
		return Reservation{}, true, 0, nil
	}
	interval := time.Second / time.Duration(rate)
	prio := 0
	if urgent {
		prio = 1
	}
	res, err := reserveScript.Run(ctx, l.rdb, rateKeys(key),
		interval.Microseconds(), n, maxAhead.Microseconds(), prio, max(behind, 0).Microseconds()).Int64Slice()
	if err != nil {
		return Reservation{}, false, 0, fmt.Errorf("rate limit %s: %w", key, err)
	}
	if len(res) != 2 {
		return Reservation{}, false, 0, fmt.Errorf("rate limit %s: %d values in the answer", key, len(res))
	}
	d := time.Duration(res[1]) * time.Microsecond
	if res[0] == 0 {
		return Reservation{}, false, d, nil
	}
	return Reservation{Delay: d, Interval: interval}, true, 0, nil
}
