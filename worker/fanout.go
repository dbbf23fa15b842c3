package worker

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"outreach/campaign"
)

// errRescheduled marks a task that handed its work to a later task: not a
// failure.
var errRescheduled = errors.New("rescheduled")

const (
	// fanoutStep bounds one fan-out task; the chain continues in a new task
	// so that no task runs for long and a crash loses at most one step.
	fanoutStep = 10 * time.Second
	// leaseTTL is how long a fan-out chain owns its campaign without
	// renewing; a dead chain is replaced by the monitor after that.
	leaseTTL = 30 * time.Second
)

func backlogKey(campaignID string) string { return "outreach:backlog:" + campaignID }
func leaseKey(campaignID string) string   { return "outreach:fanout:" + campaignID }

// Kick starts (or continues) a campaign's fan-out chain. A resume or a
// reconciliation first re-drives deliveries still pending in the store.
func (e *Engine) Kick(ctx context.Context, c campaign.Campaign) error {
	return e.startChain(ctx, c, c.FanoutCursor > 0 || c.FanoutDone, "kick")
}

func (e *Engine) startChain(ctx context.Context, c campaign.Campaign, redrive bool, why string) error {
	chain := newChainID()
	task, err := newFanoutTask(fanoutPayload{CampaignID: c.ID, Chain: chain, Redrive: redrive, Reason: why}, c.Kind)
	if err != nil {
		return err
	}
	// Taking the lease here means a new chain replaces an old one that is
	// still alive only if that one had given the campaign up.
	ok, err := e.Queue.Redis.SetNX(ctx, leaseKey(c.ID), chain, leaseTTL).Result()
	if err != nil {
		return fmt.Errorf("fan-out lease: %w", err)
	}
	if !ok {
		return nil // a live chain owns the fan-out already
	}
	if _, err := e.client.EnqueueContext(ctx, task); err != nil {
		e.Queue.Redis.Del(context.WithoutCancel(ctx), leaseKey(c.ID))
		return fmt.Errorf("enqueue fan-out: %w", err)
	}
	return nil
}

var _ campaign.AlertStarter = (*Engine)(nil)

// alertHold bounds how long an alert's fan-out may be held while its
// contact list is written (an api process that dies meanwhile holds it no
// longer than this).
const alertHold = 5 * time.Minute

// HoldFanout takes the alert's fan-out lease for a hold, so that no chain
// starts until release. release(queuedAll) gives the lease up and, when
// every contact was queued (QueueContacts), marks the fan-out done: the
// monitor completes the alert, and re-drives what a lost task left
// pending. Otherwise it starts the chain, which pages the whole list; if
// the hold was lost meanwhile (an emptied Redis) and a chain fanned out a
// part of the list, it is paged again from the start.
func (e *Engine) HoldFanout(ctx context.Context, c campaign.Campaign) (func(context.Context, bool) error, error) {
	hold := "hold:" + newChainID()
	ok, err := e.Queue.Redis.SetNX(ctx, leaseKey(c.ID), hold, alertHold).Result()
	if err != nil {
		return nil, fmt.Errorf("hold fan-out: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("hold fan-out: alert %s is already fanning out", c.ID)
	}
	return func(ctx context.Context, queuedAll bool) error {
		held, err := releaseScript.Run(ctx, e.Queue.Redis, []string{leaseKey(c.ID)}, hold).Int()
		if err != nil {
			return fmt.Errorf("release fan-out: %w", err)
		}
		cur, err := e.Store.CampaignByID(ctx, c.ID)
		if err != nil {
			return err
		}
		if cur.State != campaign.StateRunning {
			return nil
		}
		if held == 1 && queuedAll {
			return e.Store.SetFanoutProgress(ctx, c.ID, 0, true)
		}
		if held == 0 && (cur.FanoutCursor > 0 || cur.FanoutDone) {
			if err := e.Store.RestartFanout(ctx, c.ID); err != nil {
				return err
			}
			cur.FanoutCursor, cur.FanoutDone = 0, false
		}
		return e.startChain(ctx, cur, false, "alert")
	}, nil
}

// QueueContacts writes and queues the deliveries of these contacts of a
// running alert.
func (e *Engine) QueueContacts(ctx context.Context, c campaign.Campaign, subscriberIDs []int64) error {
	ids := slices.Clone(subscriberIDs)
	slices.Sort(ids) // each send task's ids a contiguous stretch
	return e.writeDeliveries(ctx, c, slices.Compact(ids))
}

func newChainID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// renewLease extends the chain's lease; false when another chain owns it.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]); return 1
end
return 0`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

func (e *Engine) renew(ctx context.Context, p fanoutPayload) (bool, error) {
	n, err := renewScript.Run(ctx, e.Queue.Redis, []string{leaseKey(p.CampaignID)}, p.Chain, leaseTTL.Milliseconds()).Int()
	return n == 1, err
}

func (e *Engine) release(ctx context.Context, p fanoutPayload) {
	releaseScript.Run(context.WithoutCancel(ctx), e.Queue.Redis, []string{leaseKey(p.CampaignID)}, p.Chain)
}

// backlogBound is how many deliveries may wait in Redis for this campaign.
func (e *Engine) backlogBound(c campaign.Campaign) int64 {
	if c.RatePerSecond > 0 {
		return int64(max(c.RatePerSecond*e.set.BacklogSeconds, 2*e.set.BatchSize))
	}
	return int64(e.set.MaxBacklog)
}

func (e *Engine) handleFanout(ctx context.Context, t *asynq.Task) error {
	var p fanoutPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("%w: bad fan-out payload: %v", asynq.SkipRetry, err)
	}
	owned, err := e.renew(ctx, p)
	if err != nil {
		return err
	}
	if !owned {
		return nil // superseded by another chain
	}
	deadline := time.Now().Add(fanoutStep)
	// A stopping engine hands the rest to a fresh task at once (below)
	// instead of holding its shutdown for the rest of the step.
	for time.Now().Before(deadline) && !e.stopped() {
		c, err := e.Store.CampaignByID(ctx, p.CampaignID)
		if err != nil {
			return err
		}
		if c.State != campaign.StateRunning {
			return e.endChain(ctx, p, c.State) // paused or over: a resume starts a new chain
		}
		backlog, err := e.Queue.Redis.Get(ctx, backlogKey(c.ID)).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		room := e.backlogBound(c) - backlog
		if room < int64(e.set.BatchSize) {
			e.checkStuckBacklog(ctx, c, &p, backlog)
			time.Sleep(50 * time.Millisecond)
			if ok, err := e.renew(ctx, p); err != nil || !ok {
				return err
			}
			continue
		}
		p.FullSince = 0
		limit := int(min(room, int64(e.set.FanoutChunk)))
		if c.FanoutCursor == 0 && !p.Redrive {
			// The first round writes one send task's worth, so that the
			// first messages (an alert's above all) go out while the next
			// rounds write the rest.
			limit = min(limit, e.set.BatchSize)
		}
		var more bool
		if p.Redrive {
			more, err = e.redriveRound(ctx, c, &p, limit)
		} else {
			if c.FanoutDone {
				e.release(ctx, p)
				return nil
			}
			more, err = e.audienceRound(ctx, c, &p, limit)
		}
		if err != nil {
			return err
		}
		if !more {
			if p.Redrive {
				p.Redrive = false // on to the audience
				continue
			}
			cur, err := e.Store.CampaignByID(ctx, p.CampaignID)
			if err != nil {
				return err
			}
			return e.endChain(ctx, p, cur.State)
		}
		if ok, err := e.renew(ctx, p); err != nil || !ok {
			return err
		}
	}
	// Continue in a fresh task; the lease stays with this chain.
	next, err := newFanoutTask(p, mustKind(ctx, e, p.CampaignID))
	if err != nil {
		return err
	}
	if _, err := e.client.EnqueueContext(ctx, next); err != nil {
		return fmt.Errorf("continue fan-out: %w", err)
	}
	return nil
}

// endChain ends a fan-out chain that writes no more, its campaign in
// state (as just read). A round may have
// written its deliveries after a cancel's settling ran (a slow audience
// scan, the last catch-up round): if the campaign is cancelled it is
// settled again, queued before the lease goes so that a failure to queue
// it is retried with the chain's task.
func (e *Engine) endChain(ctx context.Context, p fanoutPayload, state campaign.State) error {
	if state == campaign.StateCancelled {
		if err := e.enqueueSettle(ctx, settlePayload{CampaignID: p.CampaignID, Round: settleAfterFanout}, settleDelay); err != nil {
			return err
		}
	}
	e.release(ctx, p)
	return nil
}

func mustKind(ctx context.Context, e *Engine, id string) campaign.Kind {
	c, err := e.campaign(ctx, id)
	if err != nil {
		return campaign.KindInstallPromotion
	}
	return c.Kind
}

// checkStuckBacklog starts the campaign's backlog count afresh when it has
// stayed full and unchanged for StaleAfter while nothing is held for the
// send window: the deliveries it counts were never queued (a worker killed
// between counting a round and queuing its tasks), and fan-out would wait
// for them for good. Their rows are pending: the round is written again, or
// the monitor re-drives them once fan-out is done.
func (e *Engine) checkStuckBacklog(ctx context.Context, c campaign.Campaign, p *fanoutPayload, backlog int64) {
	now := time.Now()
	if p.FullSince == 0 || p.FullBacklog != backlog {
		p.FullSince, p.FullBacklog = now.UnixMilli(), backlog
		return
	}
	if now.Sub(time.UnixMilli(p.FullSince)) < e.set.StaleAfter || e.holding(c, e.Now()) {
		return
	}
	// Only if the count is still what was seen: a task starting now
	// leaves it as usual.
	if n, err := e.Queue.Redis.DecrBy(ctx, backlogKey(c.ID), backlog).Result(); err == nil {
		e.Logger.Warn("campaign backlog full and unchanged: its tasks were lost; counting afresh",
			"campaign", c.ID, "backlog", backlog, "now", n)
	}
	p.FullSince = 0
}

// audienceRound writes the deliveries of the next page of the audience and
// enqueues their send tasks; more is false when the audience is exhausted.
//
// The walk goes by subscriber id and never back, so a marketing audience
// ends with a catch-up pass (p.CatchUp) over the subscribers who match and
// have no delivery of the campaign: those the walk had passed when they
// came to match (a list or an attribute given by an import that landed
// meanwhile) or whose ids committed after higher ones (two import batches
// at once on PostgreSQL). They used to be missed for good, while new
// numbers of the same file were messaged. Fan-out is done once that pass
// is through; who matches later waits for the next campaign.
func (e *Engine) audienceRound(ctx context.Context, c campaign.Campaign, p *fanoutPayload, limit int) (more bool, err error) {
	if p.CatchUp {
		return e.catchUpRound(ctx, c, p, limit)
	}
	ids, err := e.Store.AudiencePage(ctx, c, c.FanoutCursor, limit)
	if err != nil {
		return false, fmt.Errorf("audience page: %w", err)
	}
	if err := e.writeDeliveries(ctx, c, ids); err != nil {
		return false, err
	}
	walked := len(ids) < limit
	cursor := c.FanoutCursor
	if len(ids) > 0 {
		cursor = ids[len(ids)-1]
	}
	// An alert's list is whole before its fan-out starts (HoldFanout).
	done := walked && c.Kind == campaign.KindExposureAlert
	if err := e.Store.SetFanoutProgress(ctx, c.ID, cursor, done); err != nil {
		return false, fmt.Errorf("fan-out progress: %w", err)
	}
	if walked && !done {
		p.CatchUp, p.CatchUpAfter = true, 0
	}
	return !done, nil
}

// catchUpRound writes the deliveries of the next page of the audience's
// unreached subscribers (see audienceRound); when none is left, fan-out is
// done.
func (e *Engine) catchUpRound(ctx context.Context, c campaign.Campaign, p *fanoutPayload, limit int) (more bool, err error) {
	ids, err := e.Store.AudienceUnreached(ctx, c, p.CatchUpAfter, limit)
	if err != nil {
		return false, fmt.Errorf("audience catch-up: %w", err)
	}
	if err := e.writeDeliveries(ctx, c, ids); err != nil {
		return false, err
	}
	if len(ids) == limit {
		p.CatchUpAfter = ids[len(ids)-1]
		return true, nil
	}
	if err := e.Store.SetFanoutProgress(ctx, c.ID, c.FanoutCursor, true); err != nil {
		return false, fmt.Errorf("fan-out progress: %w", err)
	}
	return false, nil
}

// writeDeliveries writes the deliveries of these subscribers on every
// channel of the campaign and enqueues their send tasks. Every id is
// enqueued, new or not: after a crash between insert and enqueue the rows
// exist but have no task; claiming is idempotent, so a repeat costs one
// task at most.
func (e *Engine) writeDeliveries(ctx context.Context, c campaign.Campaign, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	// Referral codes come with the claim (ClaimDeliveries), when a message
	// is about to go out: a delivery written here has none, so fan-out
	// writes no index entry for one, and every channel's rows are the same.
	nd := make([]campaign.NewDelivery, len(ids))
	for i, id := range ids {
		nd[i] = campaign.NewDelivery{SubscriberID: id}
	}
	for _, ch := range c.Channels {
		n, err := e.Store.InsertDeliveries(ctx, c, ch, nd)
		if err != nil {
			return fmt.Errorf("insert deliveries: %w", err)
		}
		e.Metrics.Fanout.Add(float64(n))
		if err := e.enqueueBatches(ctx, c, ch, ids, true); err != nil {
			return err
		}
	}
	return nil
}

// redriveRound re-enqueues deliveries the store still has pending, channel
// by channel; more is false when every channel is through.
func (e *Engine) redriveRound(ctx context.Context, c campaign.Campaign, p *fanoutPayload, limit int) (more bool, err error) {
	for p.RedriveChan < len(c.Channels) {
		ch := c.Channels[p.RedriveChan]
		ids, err := e.Store.UnfinishedPage(ctx, c.ID, ch, p.RedriveAfter, e.Now(), limit)
		if err != nil {
			return false, fmt.Errorf("redrive page: %w", err)
		}
		if len(ids) > 0 {
			if err := e.enqueueBatches(ctx, c, ch, ids, true); err != nil {
				return false, err
			}
			p.RedriveAfter = ids[len(ids)-1]
		}
		if len(ids) == limit {
			return true, nil
		}
		p.RedriveChan++
		p.RedriveAfter = 0
	}
	return false, nil
}

// taskSize is how many deliveries of campaign c on channel ch one send
// task carries: more when they go out faster than one by one, where each
// task's fixed cost (its claim, its trip through the queue) weighs.
func (e *Engine) taskSize(c campaign.Campaign, ch campaign.Channel) int {
	if c.Kind.Marketing() && !e.precise(c, ch) {
		return max(e.set.FastBatchSize, e.set.BatchSize)
	}
	return e.set.BatchSize
}

// enqueueBatches splits ids into send tasks and enqueues them a few at a
// time in parallel (asynq enqueues one task per round trip); counted
// batches add to the campaign's backlog, once for the lot.
func (e *Engine) enqueueBatches(ctx context.Context, c campaign.Campaign, ch campaign.Channel, ids []int64, counted bool) error {
	q := queueFor(c.Kind)
	size := e.taskSize(c, ch)
	var tasks []*asynq.Task
	for start := 0; start < len(ids); start += size {
		batch := ids[start:min(start+size, len(ids))]
		task, err := newSendTask(sendPayload{CampaignID: c.ID, Channel: ch, SubscriberIDs: batch, Counted: counted})
		if err != nil {
			return err
		}
		tasks = append(tasks, task)
	}
	if counted {
		if err := e.Queue.Redis.IncrBy(ctx, backlogKey(c.ID), int64(len(ids))).Err(); err != nil {
			return fmt.Errorf("backlog: %w", err)
		}
	}
	const parallel = 8
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		unsent   int64
		sem      = make(chan struct{}, parallel)
	)
	for i, task := range tasks {
		n := int64(min(size, len(ids)-i*size))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := e.client.EnqueueContext(ctx, task, asynq.Queue(q)); err != nil {
				mu.Lock()
				unsent += n
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		if counted {
			e.Queue.Redis.DecrBy(context.WithoutCancel(ctx), backlogKey(c.ID), unsent)
		}
		return fmt.Errorf("enqueue send: %w", firstErr)
	}
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
