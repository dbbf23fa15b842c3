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
				_, ok, _, err := l.Reserve(ctx, key, rate, 20, maxAhead, false)
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
			r, ok, _, err := l.Reserve(ctx, key, rate, 300, maxAhead, true)
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
			_, ok, wait, err := l.Reserve(ctx, key, rate, 1, time.Hour, false)
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
			r, ok, _, err = l.Reserve(ctx, key, rate, 1, maxAhead, false)
			if err != nil || !ok {
				t.Fatalf("marketing was refused after the alert: %v", err)
			}
			if r.Delay > 10*time.Millisecond {
				t.Fatalf("marketing's first slot after the alert is %v away", r.Delay)
			}
		})
	}
}
