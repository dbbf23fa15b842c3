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

// TestResult is what one channel of a test send did.
type TestResult struct {
	Channel   Channel `json:"channel"`
	Text      string  `json:"text"`
	Provider  string  `json:"provider"`
	MessageID string  `json:"message_id,omitempty"`
	Segments  int     `json:"segments,omitempty"`
	Error     string  `json:"error,omitempty"`
}
