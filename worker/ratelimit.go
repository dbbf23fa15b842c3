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
// refused (-1 and how long to wait) when its first unit would be due more
// than max_ahead from now, or while an urgent one holds slots ahead (the
// ':prio' key keeps the end of the last urgent reservation): marketing
// queues at most max_ahead ahead of the provider and stands aside while an
// alert sends, so an alert waits at most max_ahead for its first slot and
// then has the whole rate until it stops reserving.
//
// KEYS[1] tat key; ARGV: interval_us, n, max_ahead_us, priority (1 = urgent).
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local max_ahead = tonumber(ARGV[3])
local prio = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local prio_key = KEYS[1] .. ':prio'
local start = math.max(now, tat)
if prio == 1 then
  redis.call('SET', prio_key, start + n * interval, 'PX', 60000)
else
  local ptat = tonumber(redis.call('GET', prio_key) or '0')
  if ptat > now then
    return {-1, ptat - now}
  end
  if start - now > max_ahead then
    return {-1, start - now}
  end
end
redis.call('SET', KEYS[1], start + n * interval, 'PX', 60000)
return {start - now, now}
`)

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
func (l *Limiter) Reserve(ctx context.Context, key string, rate int, n int, maxAhead time.Duration, urgent bool) (r Reservation, ok bool, wait time.Duration, err error) {
	if rate <= 0 || n <= 0 {
		return Reservation{}, true, 0, nil
	}
	interval := time.Second / time.Duration(rate)
	prio := 0
	if urgent {
		prio = 1
	}
	res, err := reserveScript.Run(ctx, l.rdb, []string{"outreach:rate:" + key},
		interval.Microseconds(), n, maxAhead.Microseconds(), prio).Int64Slice()
	if err != nil {
		return Reservation{}, false, 0, fmt.Errorf("rate limit %s: %w", key, err)
	}
	if res[0] < 0 {
		return Reservation{}, false, time.Duration(res[1]) * time.Microsecond, nil
	}
	return Reservation{Delay: time.Duration(res[0]) * time.Microsecond, Interval: interval}, true, 0, nil
}
