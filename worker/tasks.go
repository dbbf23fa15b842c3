// Package worker runs the engine's background work on asynq: fan-out of
// campaigns into deliveries, paced sending through the providers, the
// campaign monitor (scheduled starts, completion) and the reconciler.
package worker

import (
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"

	"outreach/campaign"
	"outreach/internal/queue"
)

// Task types.
const (
	TypeFanout = "campaign:fanout"
	TypeSend   = "delivery:send"
	TypeSettle = "campaign:settle"
)

// fanoutPayload is one step of a campaign's fan-out chain.
type fanoutPayload struct {
	CampaignID string `json:"c"`
	// Chain identifies one fan-out chain; only the chain that owns the
	// campaign's fan-out lease proceeds.
	Chain string `json:"ch"`
	// Redrive first re-enqueues pending deliveries (after a resume or a
	// lost task), channel by channel, from RedriveAfter.
	Redrive      bool   `json:"r,omitempty"`
	RedriveChan  int    `json:"rc,omitempty"`
	RedriveAfter int64  `json:"ra,omitempty"`
	Reason       string `json:"why,omitempty"`
	// CatchUp: the walk of a marketing audience is through, and its
	// catch-up pass goes on from CatchUpAfter (audienceRound).
	CatchUp      bool  `json:"cu,omitempty"`
	CatchUpAfter int64 `json:"ca,omitempty"`
	// FullSince (Unix ms) is when the backlog was first seen full at
	// FullBacklog, unchanged since (checkStuckBacklog).
	FullSince   int64 `json:"fs,omitempty"`
	FullBacklog int64 `json:"fb,omitempty"`
}

// sendPayload is a batch of deliveries of one campaign on one channel,
// named by subscriber id (deliveries are unique per campaign, subscriber and
// channel).
type sendPayload struct {
	CampaignID    string           `json:"c"`
	Channel       campaign.Channel `json:"ch"`
	SubscriberIDs []int64          `json:"s"`
	// Counted batches were counted into the campaign's backlog by fan-out.
	Counted bool `json:"n,omitempty"`
}

func queueFor(k campaign.Kind) string {
	if k == campaign.KindExposureAlert {
		return queue.QueueAlerts
	}
	return queue.QueueMarketing
}

func fanoutQueue(k campaign.Kind) string {
	if k == campaign.KindExposureAlert {
		return queue.QueueAlerts
	}
	return queue.QueueDefault
}

func newSendTask(p sendPayload) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode send task: %w", err)
	}
	// The store is the ledger: a send task that keeps failing (say, the
	// store is down) is retried with backoff, and one that is given up is
	// re-driven from the store by the reconciler.
	return asynq.NewTask(TypeSend, b, asynq.MaxRetry(10)), nil
}

func newFanoutTask(p fanoutPayload, k campaign.Kind) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode fanout task: %w", err)
	}
	return asynq.NewTask(TypeFanout, b, asynq.MaxRetry(25), asynq.Queue(fanoutQueue(k))), nil
}
