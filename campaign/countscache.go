package campaign

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Counting a campaign's deliveries reads every one of them (about 2.3 s for
// 20 million on PostgreSQL): a dashboard polling the stats of a big
// campaign from several screens would keep the database busy with nothing
// else. countsCache shares one count between the requests that arrive
// while it runs, and keeps a count that took long for a few times as long
// as it took, at most maxCountsAge. A count that takes less than
// cheapCount is never kept: small campaigns' stats are always fresh.
//
// There is one per process (campaign ids are UUIDs), so that a Service may
// be copied.
var campaignCounts countsCache

type countsCache struct {
	group singleflight.Group
	mu    sync.Mutex
	kept  map[string]keptCounts
}

type keptCounts struct {
	counts Counts
	state  State // the campaign's state when counted: a change counts afresh
	at     time.Time
	until  time.Time
}

const (
	cheapCount   = 50 * time.Millisecond
	countsKeptX  = 4
	maxCountsAge = 30 * time.Second
	maxKept      = 10000
	// countTimeout bounds the shared count, which runs on no one
	// request's context.
	countTimeout = 2 * time.Minute
)

// get answers the campaign's counts and when they were counted. Counts
// kept from when c was in another state are not used: a campaign that has
// just completed shows its final numbers, not those of an hour before.
func (cc *countsCache) get(ctx context.Context, st Store, c Campaign) (Counts, time.Time, error) {
	now := time.Now()
	cc.mu.Lock()
	k, ok := cc.kept[c.ID]
	cc.mu.Unlock()
	if ok && k.state == c.State && now.Before(k.until) {
		return k.counts, k.at, nil
	}
	ch := cc.group.DoChan(c.ID+"/"+string(c.State), func() (any, error) {
		start := time.Now()
		// The count is shared: one caller leaving must not cancel it for
		// the others.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), countTimeout)
		defer cancel()
		counts, err := st.DeliveryCounts(cctx, c.TenantID, c.ID)
		if err != nil {
			return nil, err
		}
		k := keptCounts{counts: counts, state: c.State, at: start}
		if took := time.Since(start); took >= cheapCount {
			k.until = start.Add(min(maxCountsAge, countsKeptX*took))
			cc.mu.Lock()
			if cc.kept == nil || len(cc.kept) >= maxKept {
				cc.kept = map[string]keptCounts{}
			}
			cc.kept[c.ID] = k
			cc.mu.Unlock()
		}
		return k, nil
	})
	select {
	case <-ctx.Done():
		return Counts{}, time.Time{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return Counts{}, time.Time{}, r.Err
		}
		k = r.Val.(keptCounts)
		return k.counts, k.at, nil
	}
}
