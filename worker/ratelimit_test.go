package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"outreach/internal/testenv"
	"outreach/worker"
)

// TestAnUrgentReservationComesAfterMarketingsAndHoldsItOff checks the
// shared limiter's order: marketing reserves up to its look-ahead, an
// alert's first slot comes after what marketing holds (the key's rate holds
// for both), marketing is refused while the alert holds slots, and takes
// the rate back once they have passed.
func TestAnUrgentReservationComesAfterMarketingsAndHoldsItOff(t *testing.T) {
	backends := map[string]func(t *testing.T) *redis.Client{
		"the in-process Redis": func(t *testing.T) *redis.Client {
			return redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
		},
		"a real Redis": func(t *testing.T) *redis.Client {
			opt, err := redis.ParseURL(testenv.RedisURL(t))
			if err != nil {
				t.Fatal(err)
			}
			return redis.NewClient(opt)
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			rdb := open(t)
			defer rdb.Close()
			ctx := context.Background()
			l := worker.NewLimiter(rdb)
			const (
				rate     = 1000 // a slot a millisecond
				maxAhead = 100 * time.Millisecond
			)
			key := "test:" + t.Name()
			// Marketing reserves chunks of 20 until its look-ahead is full.
			held, began := 0, time.Now()
			for {
				_, ok, _, err := l.Reserve(ctx, key, rate, 20, maxAhead, 0, false)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				held += 20
			}
			// Marketing's slots run from when it began for held ms; the
			// look-ahead bounds how far they reach past the last call.
			heldUntil := began.Add(time.Duration(held) * time.Millisecond)
			if ahead := time.Until(heldUntil); held < 100 || ahead > maxAhead+20*time.Millisecond {
				t.Fatalf("marketing held %d slots, up to %v ahead; its look-ahead is %v", held, ahead, maxAhead)
			}
			// The alert's first slot comes after marketing's.
			r, ok, _, err := l.Reserve(ctx, key, rate, 300, maxAhead, 0, true)
			if err != nil || !ok {
				t.Fatalf("an urgent reservation was refused: %v", err)
			}
			if due := time.Now().Add(r.Delay); due.Before(heldUntil.Add(-15 * time.Millisecond)) {
				t.Fatalf("the alert's first slot is due %v before marketing's last", heldUntil.Sub(due))
			}
			if r.Delay > maxAhead+20*time.Millisecond {
				t.Fatalf("the alert's first slot is %v away; marketing holds at most %v", r.Delay, maxAhead)
			}
			alertEnd := time.Now().Add(r.Delay + 300*time.Millisecond)
			// Marketing stands aside while the alert holds slots, even when
			// its look-ahead would allow more.
			_, ok, wait, err := l.Reserve(ctx, key, rate, 1, time.Hour, 0, false)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				t.Fatal("marketing got a slot while an alert held the sender")
			}
			if wait < 30*time.Millisecond || wait > 500*time.Millisecond {
				t.Fatalf("marketing was told to wait %v; the alert holds the sender for about %v", wait, time.Until(alertEnd))
			}
			// And takes the rate back after.
			time.Sleep(time.Until(alertEnd) + 5*time.Millisecond)
			r, ok, _, err = l.Reserve(ctx, key, rate, 1, maxAhead, 0, false)
			if err != nil || !ok {
				t.Fatalf("marketing was refused after the alert: %v", err)
			}
			if r.Delay > 10*time.Millisecond {
				t.Fatalf("marketing's first slot after the alert is %v away", r.Delay)
			}
		})
	}
}

// TestALateCallerKeepsTheRatesTimeline checks, on the in-process Redis with
// its clock set, that a reservation made a little after its slot was due
// (up to behind) gets that slot, so the slots stay an interval apart however
// late each caller wakes; a caller later than that starts behind ago; one
// that comes early is refused until the slot is due.
func TestALateCallerKeepsTheRatesTimeline(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	l := worker.NewLimiter(rdb)
	const (
		rate     = 100 // a slot every 10 ms
		interval = 10 * time.Millisecond
		behind   = 2500 * time.Microsecond
	)
	reserve := func(at time.Time, behind time.Duration) (worker.Reservation, bool, time.Duration) {
		t.Helper()
		m.SetTime(at)
		r, ok, wait, err := l.Reserve(ctx, "sms:late", rate, 1, 0, behind, false)
		if err != nil {
			t.Fatal(err)
		}
		return r, ok, wait
	}
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	if r, ok, _ := reserve(t0, behind); !ok || r.Delay != -behind {
		t.Fatalf("the first reservation: ok %v, delay %v; want its slot %v ago", ok, r.Delay, behind)
	}
	slot := t0.Add(-behind)
	// Twenty callers, each 1 ms late for its slot: each gets it.
	for i := 1; i <= 20; i++ {
		slot = slot.Add(interval)
		r, ok, _ := reserve(slot.Add(time.Millisecond), behind)
		if !ok || r.Delay != -time.Millisecond {
			t.Fatalf("caller %d, 1 ms late: ok %v, delay %v; want its slot, 1 ms ago", i, ok, r.Delay)
		}
	}
	// One that comes early is told to wait for its slot.
	slot = slot.Add(interval)
	if _, ok, wait := reserve(slot.Add(-3*time.Millisecond), behind); ok || wait != 3*time.Millisecond {
		t.Fatalf("a caller 3 ms early: ok %v, wait %v; want refused for 3 ms", ok, wait)
	}
	// One later than behind gets a slot behind ago: the timeline moves on
	// by the rest.
	if r, ok, _ := reserve(slot.Add(4*time.Millisecond), behind); !ok || r.Delay != -behind {
		t.Fatalf("a caller 4 ms late: ok %v, delay %v; want a slot %v ago", ok, r.Delay, behind)
	}
	slot = slot.Add(4 * time.Millisecond).Add(-behind)
	// Without behind a late caller's slot is its arrival.
	slot = slot.Add(interval)
	if r, ok, _ := reserve(slot.Add(time.Millisecond), 0); !ok || r.Delay != 0 {
		t.Fatalf("a caller 1 ms late, nothing behind: ok %v, delay %v; want its arrival", ok, r.Delay)
	}
}
