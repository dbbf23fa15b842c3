package worker

import (
	"context"

	"outreach/campaign"
)

// RunCountedSendTask runs, in the calling goroutine, the send task that
// fan-out enqueues for these deliveries (counted into the backlog), as a
// worker runs it the first time.
func (e *Engine) RunCountedSendTask(ctx context.Context, campaignID string, ch campaign.Channel, subscriberIDs []int64) error {
	t, err := newSendTask(sendPayload{CampaignID: campaignID, Channel: ch, SubscriberIDs: subscriberIDs, Counted: true})
	if err != nil {
		return err
	}
	return e.handleSend(ctx, t)
}

// BacklogKey names the Redis counter of a campaign's queued deliveries.
func BacklogKey(campaignID string) string { return backlogKey(campaignID) }

// TaskSize is how many deliveries of c on ch fan-out puts in one send task.
func (e *Engine) TaskSize(c campaign.Campaign, ch campaign.Channel) int { return e.taskSize(c, ch) }

// ReconcileRewards runs the reward reconciler's pass now, as the monitor
// does every StaleAfter/2.
func (e *Engine) ReconcileRewards(ctx context.Context) error { return e.reconcileRewards(ctx) }
