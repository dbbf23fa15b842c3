package campaign_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"outreach/campaign"
)

// countingStore counts DeliveryCounts calls, each taking delay.
type countingStore struct {
	campaign.Store
	delay atomic.Int64 // a time.Duration
	calls atomic.Int64
}

func (s *countingStore) DeliveryCounts(ctx context.Context, tenantID, id string) (campaign.Counts, error) {
	s.calls.Add(1)
	time.Sleep(time.Duration(s.delay.Load()))
	return s.Store.DeliveryCounts(ctx, tenantID, id)
}

// The stats of a campaign whose deliveries take long to count share one
// count between the requests that come while it runs and keep it for a
// few times as long as it took, saying when it was counted, until the
// campaign's state changes (a count from before it completed is not its
// final numbers). A campaign counted quickly is counted every time.
func TestABigCampaignsCountIsSharedAndKeptAWhile(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.promo(t, nil)
	slow := &countingStore{Store: e.st}
	slow.delay.Store(int64(100 * time.Millisecond))
	e.svc.Store = slow

	var wg sync.WaitGroup
	stats := make([]campaign.Stats, 8)
	for i := range stats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if stats[i], err = e.svc.Stats(ctx, e.p, c.ID); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := slow.calls.Load(); n != 1 {
		t.Fatalf("8 requests at once counted the deliveries %d times, want once", n)
	}
	for _, s := range stats {
		if !s.CountedAt.Equal(stats[0].CountedAt) || s.CountedAt.IsZero() {
			t.Fatalf("counted_at %v and %v: want the one count's time", s.CountedAt, stats[0].CountedAt)
		}
	}
	if _, err := e.svc.Act(ctx, e.p, c.ID, campaign.ActionCancel); err != nil {
		t.Fatal(err)
	}
	again, err := e.svc.Stats(ctx, e.p, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if slow.calls.Load() != 2 || !again.CountedAt.After(stats[0].CountedAt) {
		t.Errorf("a request after the campaign was cancelled used the counts kept from when it ran (%d counts, counted at %v)",
			slow.calls.Load(), again.CountedAt)
	}
	if again.State != campaign.StateCancelled {
		t.Errorf("state %s: the state must be read afresh", again.State)
	}
	// In the same state, a request right after uses the kept count.
	if kept, err := e.svc.Stats(ctx, e.p, c.ID); err != nil || slow.calls.Load() != 2 || !kept.CountedAt.Equal(again.CountedAt) {
		t.Errorf("a request right after counted again (%d counts, counted at %v, %v)", slow.calls.Load(), kept.CountedAt, err)
	}
	// A caller who leaves is answered at once, whatever the count's
	// progress.
	slow.delay.Store(int64(time.Second))
	gone, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	third := e.promo(t, nil)
	if _, err := e.svc.Stats(gone, e.p, third.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a caller whose deadline passed during the count: %v, want context.DeadlineExceeded", err)
	}
	slow.delay.Store(0)

	fast := &countingStore{Store: e.st}
	e.svc.Store = fast
	other := e.promo(t, nil)
	for range 3 {
		if _, err := e.svc.Stats(ctx, e.p, other.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := fast.calls.Load(); n != 3 {
		t.Errorf("a campaign counted quickly was counted %d times for 3 requests, want 3", n)
	}
}
