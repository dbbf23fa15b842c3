package campaign

import (
	"time"

	"outreach/subscriber"
)

// Status of a delivery.
type Status string

const (
	StatusPending     Status = "pending"
	StatusSending     Status = "sending"
	StatusSent        Status = "sent"
	StatusDelivered   Status = "delivered"
	StatusFailed      Status = "failed"
	StatusUndelivered Status = "undelivered"
	StatusUnknown     Status = "unknown"
	StatusSkipped     Status = "skipped"
)

// AllStatuses in report order.
var AllStatuses = []Status{StatusPending, StatusSending, StatusSent, StatusDelivered,
	StatusFailed, StatusUndelivered, StatusUnknown, StatusSkipped}

// Final reports whether the engine will do nothing more for this delivery
// (a receipt may still move sent to delivered).
func (s Status) Final() bool {
	return s != StatusPending && s != StatusSending
}

// rank orders statuses so a receipt only moves a delivery forward.
var rank = map[Status]int{
	StatusPending: 0, StatusSending: 1, StatusUnknown: 2, StatusSent: 3,
	StatusDelivered: 4, StatusUndelivered: 4, StatusFailed: 4, StatusSkipped: 4,
}

// Advances reports whether moving from s to next is forward.
func (s Status) Advances(next Status) bool { return rank[next] > rank[s] }

// SkipReason says why a delivery was not sent.
type SkipReason string

const (
	SkipOptedOut          SkipReason = "opted_out"
	SkipFrequencyCap      SkipReason = "frequency_cap"
	SkipQuietHoursExpired SkipReason = "quiet_hours_expired"
	SkipNoDevice          SkipReason = "no_device"
	SkipInvalidNumber     SkipReason = "invalid_number"
	SkipDuplicate         SkipReason = "duplicate"
	SkipCampaignCancelled SkipReason = "cancelled"
	// SkipCampaignEnded: the campaign's end_by came before the message
	// could go out.
	SkipCampaignEnded SkipReason = "campaign_ended"
	// SkipAlreadyInstalled: an install promotion to subscribers who have
	// not installed the app reached one who installed it after fan-out
	// wrote the delivery; the message would urge them to do what they did.
	SkipAlreadyInstalled SkipReason = "already_installed"
)

// Delivery is one message to one recipient on one channel. It is unique per
// (campaign, subscriber, channel).
type Delivery struct {
	ID                int64      `json:"id"`
	TenantID          string     `json:"-"`
	CampaignID        string     `json:"campaign_id"`
	SubscriberID      int64      `json:"-"`
	MSISDN            string     `json:"msisdn"`
	Channel           Channel    `json:"channel"`
	Status            Status     `json:"status"`
	SkipReason        SkipReason `json:"skip_reason,omitempty"`
	Provider          string     `json:"provider,omitempty"`
	ProviderMessageID string     `json:"provider_message_id,omitempty"`
	ErrorCode         string     `json:"error_code,omitempty"`
	Attempts          int        `json:"attempts"`
	Segments          int        `json:"segments"`
	ReferralCode      string     `json:"referral_code,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	SentAt            *time.Time `json:"sent_at,omitempty"`
}

// NewDelivery is a delivery fan-out is about to write.
type NewDelivery struct {
	SubscriberID int64
	ReferralCode string
}

// Recipient is a claimed delivery with what sending needs of its subscriber.
type Recipient struct {
	Delivery
	Region     string
	Locale     string
	Attributes map[string]string
	OptedOut   bool
	// Installed is the subscriber's install state when the delivery was
	// claimed, which may be later than when fan-out chose them.
	Installed bool
	Devices   []subscriber.Device
}

// Outcome is the result of one send attempt, written back in batches.
type Outcome struct {
	CampaignID        string
	SubscriberID      int64
	Channel           Channel
	Status            Status // sent, failed, unknown, skipped, or pending (retry later)
	SkipReason        SkipReason
	Provider          string
	ProviderMessageID string
	ErrorCode         string
	Segments          int
	At                time.Time
	// Unattempted, on a delivery put back pending, gives its claim's
	// attempt back: nothing went to the provider (a pause, the window
	// closing, an open breaker, a wait for the cap), or the provider said
	// "not now" (its rate limit). Only real send attempts count towards
	// the retry limit, so a rate-limit storm or an outage held off by the
	// breaker does not leave a delivery without retries.
	Unattempted bool
}

// Counts summarises a campaign's deliveries.
type Counts struct {
	// Audience is the number of distinct subscribers with a delivery.
	Audience  int64
	ByStatus  map[Status]int64
	BySkip    map[SkipReason]int64
	Segments  int64
	ByChannel map[Channel]int64
}

// ErrorCapWait is the error code of a delivery put back because its
// subscriber was at the frequency cap only with messages still in flight.
// The claim that found it so does not count as a send attempt
// (Outcome.Unattempted).
const ErrorCapWait = "frequency_cap_wait"

// ErrorTemplate is the error code of a delivery whose template failed on
// its subscriber's values (a builtin such as slice on a short name): it is
// failed for good, and the rest of its batch goes.
const ErrorTemplate = "template"

// AmbiguousSend is a delivery whose send was ambiguous (unknown): the
// request went out and its answer was lost, so the provider may or may
// not have taken the message. It carries what rendering the message again
// needs (the delivery's referral code, the subscriber's number, region,
// locale and attributes), to tell it from others at the provider.
type AmbiguousSend struct {
	Recipient
	// AttemptedAt is when the send began (the delivery's sent_at).
	AttemptedAt time.Time
	// Claimed: a dead worker's claim, taken for a send whose answer was
	// lost (ErrorStaleClaim). AttemptedAt is the claim's time; the send,
	// if any, came before the claim's deadline.
	Claimed bool
}

// ErrorStaleClaim is the error code of an SMS delivery claimed by a worker
// that died before recording it: it may have gone, so it is recorded
// unknown and looked up at its provider instead of being sent again.
const ErrorStaleClaim = "stale_claim"
