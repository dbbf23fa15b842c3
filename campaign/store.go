package campaign

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"outreach/tenant"
)

// Store is what campaigns, fan-out and sending need from persistence.
// Methods taking a tenantID scope every read and write to that tenant and
// answer apperr.ErrNotFound for another tenant's object; the ones without
// are for the workers, which act on ids they got from the store itself.
type Store interface {
	// TenantPolicy and SetTenantPolicy: the tenant's own marketing policy
	// settings (see tenant.Store).
	TenantPolicy(ctx context.Context, tenantID string) (tenant.Policy, error)
	SetTenantPolicy(ctx context.Context, tenantID string, p tenant.Policy) error

	CreateTemplate(ctx context.Context, t *MessageTemplate) error
	// GetTemplate reads a template of this tenant.
	GetTemplate(ctx context.Context, tenantID, id string) (MessageTemplate, error)

	CreateCampaign(ctx context.Context, c *Campaign) error
	GetCampaign(ctx context.Context, tenantID, id string) (Campaign, error)
	// CampaignByID reads a campaign of any tenant (workers).
	CampaignByID(ctx context.Context, id string) (Campaign, error)
	// ListCampaigns lists newest first; kind "" means all kinds. after, when
	// not "", is the id of the tenant's campaign the page starts after.
	ListCampaigns(ctx context.Context, tenantID string, kind Kind, after string, limit int) ([]Campaign, error)
	// TransitionCampaign moves the campaign to `to` if its state is one of
	// `from`, else apperr.ErrConflict. Entering running sets started_at (if
	// unset); entering a final state sets finished_at.
	TransitionCampaign(ctx context.Context, tenantID, id string, from []State, to State, at time.Time) (Campaign, error)
	// DueScheduled returns scheduled campaigns whose start_at <= now.
	DueScheduled(ctx context.Context, now time.Time) ([]Campaign, error)
	// ActiveCampaigns returns running and paused campaigns of every tenant.
	ActiveCampaigns(ctx context.Context) ([]Campaign, error)
	// UnsettledCampaigns returns the cancelled campaigns, finished from
	// `from` up to `to`, that still have deliveries pending or sending: the
	// monitor settles them again should the settle queued at the cancel be
	// lost.
	UnsettledCampaigns(ctx context.Context, from, to time.Time) ([]Campaign, error)

	// AddContacts sets the audience of an exposure alert (subscriber ids).
	AddContacts(ctx context.Context, campaignID string, subscriberIDs []int64) error
	// ClaimRequestKey records that the tenant's idempotency key names the
	// request hashed hash, answered by campaignID, at `at`, unless a claim
	// of the key made since `since` holds it: then it answers that claim
	// (held.CampaignID != ""). An older claim is replaced.
	ClaimRequestKey(ctx context.Context, tenantID, key, hash, campaignID string, at, since time.Time) (held RequestKey, err error)
	// ReleaseRequestKey drops the key's claim by campaignID (its request
	// failed: a retry creates anew).
	ReleaseRequestKey(ctx context.Context, tenantID, key, campaignID string) error
	// FinishRequestKey marks the key's claim by campaignID done: its
	// campaign is whole, and a retry is answered it.
	FinishRequestKey(ctx context.Context, tenantID, key, campaignID string) error
	// AudiencePage returns up to limit subscriber ids of the campaign's
	// audience greater than afterID, ascending: the filter for a promotion,
	// the contact list for an alert. Evaluated in the store, never loaded
	// whole.
	AudiencePage(ctx context.Context, c Campaign, afterID int64, limit int) ([]int64, error)
	// AudienceUnreached is AudiencePage of the subscribers short of a
	// delivery of the campaign on one of its channels: fan-out's catch-up
	// pass, for those the walk by id passed before they matched (a list
	// or an import that landed meanwhile, an id committed out of order)
	// and those of a round that failed between channels.
	AudienceUnreached(ctx context.Context, c Campaign, afterID int64, limit int) ([]int64, error)
	// InsertDeliveries writes pending deliveries for one channel in bulk,
	// ignoring any that already exist; returns how many were new.
	InsertDeliveries(ctx context.Context, c Campaign, ch Channel, ds []NewDelivery) (int, error)
	// SetFanoutProgress records the cursor (and whether fan-out is done).
	SetFanoutProgress(ctx context.Context, campaignID string, cursor int64, done bool) error
	// RestartFanout rewinds the fan-out to the start of the audience, not
	// done, whatever SetFanoutProgress recorded: an alert whose hold was
	// lost while its list was written pages the whole list again.
	RestartFanout(ctx context.Context, campaignID string) error

	// ClaimDeliveries moves the given pending deliveries to sending
	// (attempts+1) and returns them with their subscribers (and, for push,
	// their devices); deliveries not pending are left alone and not
	// returned. A claimed delivery of an install promotion without a
	// referral code gets one (NewReferralCode) and keeps it on later
	// claims: codes are made when a message is about to go out, not at
	// fan-out.
	ClaimDeliveries(ctx context.Context, campaignID string, ch Channel, subscriberIDs []int64) ([]Recipient, error)
	// RecordOutcomes writes send results in one batch. Status pending puts a
	// delivery back for a retry.
	RecordOutcomes(ctx context.Context, outs []Outcome) error
	// ApplyCap applies the frequency cap to deliveries the caller has
	// claimed (sending), atomically across workers: per subscriber it counts
	// the tenant's other marketing deliveries sent, delivered, unknown or in
	// flight since q.Since. Those below q.Limit are reserved (sent_at set to
	// q.At, so every later check counts them while they are in flight); the
	// others are returned, unreserved: Capped at the cap by messages that
	// went out (to skip), Held there only with messages still in flight,
	// which may yet fail (to try again later).
	ApplyCap(ctx context.Context, q CapCheck) (CapResult, error)
	// UnfinishedPage returns up to limit subscriber ids after afterID whose
	// delivery on ch is pending or sending (older than olderThan), for the
	// reconciler and for completion checks.
	UnfinishedPage(ctx context.Context, campaignID string, ch Channel, afterID int64, olderThan time.Time, limit int) ([]int64, error)
	// CountUnfinished counts deliveries pending or sending.
	CountUnfinished(ctx context.Context, campaignID string) (int64, error)
	// AmbiguousSends lists, in subscriber order, up to limit of the
	// campaign's deliveries on ch whose send through provider was
	// ambiguous (unknown), recorded so at or after since, with their
	// subscribers (those with a number: a purged contact has none).
	AmbiguousSends(ctx context.Context, campaignID string, ch Channel, provider string, since time.Time, limit int) ([]AmbiguousSend, error)
	// RequeueAmbiguous puts back to pending those of these sends (their
	// provider never took them) whose deliveries on ch are still unknown
	// from the same attempt, and says how many.
	RequeueAmbiguous(ctx context.Context, campaignID string, ch Channel, sends []AmbiguousSend) (int64, error)
	// HeldMessageIDs answers which of these provider message ids a
	// delivery already holds.
	HeldMessageIDs(ctx context.Context, ids []string) (map[string]bool, error)
	// ApplyReceipt moves the receipt's delivery forward to its status
	// (never backward); reports whether anything changed. The delivery is
	// r.Delivery when given (its message id, if on record, must be
	// r.MessageID, which it takes if none is), else the one with the
	// provider's message id.
	ApplyReceipt(ctx context.Context, r Receipt) (bool, error)
	// DeliveryCounts summarises a campaign's deliveries.
	DeliveryCounts(ctx context.Context, tenantID, campaignID string) (Counts, error)
	// ListDeliveries pages deliveries by id; status "" means all.
	ListDeliveries(ctx context.Context, tenantID, campaignID string, status Status, afterID int64, limit int) ([]Delivery, error)

	// Audit appends to the audit trail.
	Audit(ctx context.Context, e AuditEntry) error
	ListAudit(ctx context.Context, tenantID string, limit int) ([]AuditEntry, error)
}

// RequestKey is a claim of an idempotency key: the request it names (its
// hash), the campaign that answers it, when it was made, and whether that
// campaign's creation is over (Done).
type RequestKey struct {
	CampaignID string
	Hash       string
	At         time.Time
	Done       bool
}

// AuditEntry records who did what.
type AuditEntry struct {
	ID         int64           `json:"id"`
	TenantID   string          `json:"-"`
	Actor      string          `json:"actor"` // API key id, or "system"
	Action     string          `json:"action"`
	ObjectType string          `json:"object_type"`
	ObjectID   string          `json:"object_id"`
	Details    json.RawMessage `json:"details,omitempty"`
	At         time.Time       `json:"at"`
}

// CapCheck is one batch's frequency-cap check (Store.ApplyCap).
type CapCheck struct {
	TenantID, CampaignID string
	Channel              Channel
	SubscriberIDs        []int64
	Since                time.Time // the start of the cap's period
	Limit                int       // marketing messages allowed per subscriber in it
	At                   time.Time // now: the reservation's time
	// StaleBefore: a message in flight claimed before it (its worker
	// likely dead) counts as gone out, so that it holds no one for long.
	StaleBefore time.Time
}

// CapResult sorts the subscribers of a CapCheck the cap does not let through.
type CapResult struct {
	Capped []int64 // at the cap with messages that went out: skip
	Held   []int64 // at the cap only with messages in flight: try again later
}

// Sort files one subscriber counted by a store: gone messages that went
// out and all of them, in flight included, against the limit.
func (r *CapResult) Sort(id, gone, all int64, limit int) {
	switch {
	case gone >= int64(limit):
		r.Capped = append(r.Capped, id)
	case all >= int64(limit):
		r.Held = append(r.Held, id)
	}
}

// Room is the ids of ids neither capped nor held, sorted: the ones to
// reserve and send.
func (r CapResult) Room(ids []int64) []int64 {
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(r.Capped, id) && !slices.Contains(r.Held, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
