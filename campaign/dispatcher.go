package campaign

import "context"

// Dispatcher hands campaigns to the workers. The worker package implements
// it on the queue; the campaign service calls it after a state change.
type Dispatcher interface {
	// Kick makes the workers pick up a campaign that is now running: it
	// enqueues (idempotently) the campaign's fan-out.
	Kick(ctx context.Context, c Campaign) error
	// SendTest renders the campaign's messages for one MSISDN and sends them
	// now, outside the campaign's ledger.
	SendTest(ctx context.Context, c Campaign, msisdn string) ([]TestResult, error)
}

// AlertStarter is what a Dispatcher can do to get an alert's messages out
// while its contact list is still being written.
type AlertStarter interface {
	// HoldFanout keeps the alert's fan-out from starting (a monitor sees
	// a running campaign whose chain is missing and starts one) until
	// release is called. release(queuedAll) marks the fan-out done when
	// QueueContacts queued every contact, and starts it otherwise.
	HoldFanout(ctx context.Context, c Campaign) (release func(ctx context.Context, queuedAll bool) error, err error)
	// QueueContacts writes and queues the deliveries of these contacts of
	// a running alert at once.
	QueueContacts(ctx context.Context, c Campaign, subscriberIDs []int64) error
}

// Settler is what a Dispatcher can do once a campaign is cancelled: skip its
// deliveries that were never sent (reason cancelled), so that its stats
// settle instead of showing them pending for good.
type Settler interface {
	Settle(ctx context.Context, c Campaign) error
}

// TestResult is what one channel of a test send did.
type TestResult struct {
	Channel   Channel `json:"channel"`
	Text      string  `json:"text"`
	Provider  string  `json:"provider"`
	MessageID string  `json:"message_id,omitempty"`
	Segments  int     `json:"segments,omitempty"`
	Error     string  `json:"error,omitempty"`
}
