package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"outreach/campaign"
)

var _ campaign.Settler = (*Engine)(nil)

// settlePayload names a cancelled campaign whose unsent deliveries are to be
// skipped; Round counts the passes (each a task of its own id).
type settlePayload struct {
	CampaignID string `json:"c"`
	Round      int    `json:"r"`
}

// settleDelay is how long after a cancel its settling starts: the workers
// still sending see the cancel within a second and put back what they had
// claimed and not sent, which the settling then skips.
const settleDelay = 2 * time.Second

// settleAfterFanout is the round of the settling a fan-out chain queues
// when it finds its campaign cancelled; the cancel's own rounds count up
// from 0.
const settleAfterFanout = -1

// Settle queues the settling of a cancelled campaign (campaign.Settler).
func (e *Engine) Settle(ctx context.Context, c campaign.Campaign) error {
	return e.enqueueSettle(ctx, settlePayload{CampaignID: c.ID}, settleDelay)
}

func (e *Engine) enqueueSettle(ctx context.Context, p settlePayload, in time.Duration) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode settle task: %w", err)
	}
	task := asynq.NewTask(TypeSettle, b, asynq.MaxRetry(25), asynq.TaskID("settle:"+p.CampaignID+":"+strconv.Itoa(p.Round)))
	if _, err := e.client.EnqueueContext(ctx, task, asynq.ProcessIn(in)); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue settle: %w", err)
	}
	return nil
}

// handleSettle skips the pending deliveries of a cancelled campaign, a page
// at a time (claimed first, so that none is skipped while a worker sends
// it). Deliveries still being sent are left to their workers; a dead
// worker's claims go back to pending after SendingStaleAfter. While any
// remain unfinished, another round follows.
func (e *Engine) handleSettle(ctx context.Context, t *asynq.Task) error {
	var p settlePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("%w: bad settle payload: %v", asynq.SkipRetry, err)
	}
	c, err := e.Store.CampaignByID(ctx, p.CampaignID)
	if err != nil {
		return err
	}
	if c.State != campaign.StateCancelled {
		return nil
	}
	if err := e.resetStaleSending(ctx, c); err != nil {
		return err
	}
	const page = 1000
	now := e.Now()
	for _, ch := range c.Channels {
		var after int64
		for {
			if e.stopped() {
				// A stopping engine leaves the rest to the next round,
				// which another worker (or this one, restarted) runs.
				p.Round++
				return e.enqueueSettle(ctx, p, 0)
			}
			ids, err := e.Store.UnfinishedPage(ctx, c.ID, ch, after, now, page)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				break
			}
			if err := e.expire(ctx, c, sendPayload{CampaignID: c.ID, Channel: ch, SubscriberIDs: ids},
				campaign.SkipCampaignCancelled); err != nil {
				return err
			}
			after = ids[len(ids)-1]
			if len(ids) < page {
				break
			}
		}
	}
	left, err := e.Store.CountUnfinished(ctx, c.ID)
	if err != nil {
		return err
	}
	if left > 0 {
		p.Round++
		return e.enqueueSettle(ctx, p, min(30*time.Second, e.set.SendingStaleAfter/2))
	}
	e.dropBacklog(ctx, c.ID)
	return nil
}
