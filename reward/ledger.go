package reward

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"outreach/internal/apperr"
	"outreach/subscriber"
)

// Limits of a reward listing page.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// DefaultStaleAfter is how long a pending reward may sit untouched before
// PendingRewards hands it back to the reconciler.
const DefaultStaleAfter = time.Minute

// Request asks for the reward of one counted install.
type Request struct {
	TenantID     string
	CampaignID   string
	SubscriberID int64
	MSISDN       string
	DeviceID     string
	InstallID    string
	// DataMB is the campaign's bonus per install, BudgetMB its total.
	DataMB   int64
	BudgetMB int64
	// The install is outside the window when InstalledAt is more than
	// AttributionDays after SentAt (the attributed message's send time).
	InstalledAt     time.Time
	SentAt          time.Time
	AttributionDays int
}

// Ledger creates rewards. It decides the window rule; the store enforces
// uniqueness and the budget atomically.
type Ledger struct {
	Store Store
	// Enqueuer, when set, receives every new pending reward (and a replay
	// of one still pending).
	Enqueuer   Enqueuer
	Now        func() time.Time
	StaleAfter time.Duration
	Logger     *slog.Logger
	Metrics    *Metrics // nil: none
}

func (l *Ledger) now() time.Time {
	if l.Now != nil {
		return l.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

func (l *Ledger) logger() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.Default()
}

// OfInstall reads the reward recorded for an install, if any.
func (l *Ledger) OfInstall(ctx context.Context, installID string) (Reward, bool, error) {
	return l.Store.RewardOfInstall(ctx, installID)
}

// Create records the reward of req.InstallID, once: a repeated request
// returns the stored reward with created false. A pending reward is handed
// to the Enqueuer; a failure to enqueue is logged, not returned (the reward
// is in the store, and the reconciler finds it).
func (l *Ledger) Create(ctx context.Context, req Request) (Reward, bool, error) {
	r, err := l.Prepare(req)
	if err != nil {
		return Reward{}, false, err
	}
	created, err := l.Store.CreateReward(ctx, &r, req.BudgetMB)
	if err != nil {
		return Reward{}, false, fmt.Errorf("create reward: %w", err)
	}
	l.Recorded(ctx, r, created)
	return r, created, nil
}

// Prepare validates req and returns the reward Create would try to store:
// pending, or rejected outside_window. A store that records it together
// with something else (the install, in one commit) must still apply every
// rule of Store.CreateReward; then call Recorded.
func (l *Ledger) Prepare(req Request) (Reward, error) {
	fe := apperr.FieldErrors{}
	if req.TenantID == "" {
		fe.Add("tenant_id", "required")
	}
	if _, err := uuid.Parse(req.CampaignID); err != nil {
		fe.Add("campaign_id", "must be a campaign id")
	}
	if req.SubscriberID <= 0 {
		fe.Add("subscriber_id", "required")
	}
	if req.InstallID == "" {
		fe.Add("install_id", "required")
	}
	if req.DeviceID == "" {
		fe.Add("device_id", "required")
	}
	if req.DataMB <= 0 {
		fe.Add("data_mb", "must be more than 0")
	}
	if err := fe.Err(); err != nil {
		return Reward{}, err
	}
	now := l.now()
	r := Reward{
		ID: uuid.NewString(), TenantID: req.TenantID, CampaignID: req.CampaignID,
		SubscriberID: req.SubscriberID, MSISDN: req.MSISDN, DeviceID: req.DeviceID,
		InstallID: req.InstallID, DataMB: req.DataMB, State: StatePending,
		CreatedAt: now, UpdatedAt: now,
	}
	if outsideWindow(req) {
		r.State, r.Reason = StateRejected, ReasonOutsideWindow
	}
	return r, nil
}

// Recorded logs a reward just stored (created) or found (a repeat) and
// hands it to the Enqueuer while it is pending.
func (l *Ledger) Recorded(ctx context.Context, r Reward, created bool) {
	if created {
		l.Metrics.recorded(r)
		l.logger().InfoContext(ctx, "reward recorded", "reward_id", r.ID, "campaign_id", r.CampaignID,
			"msisdn", subscriber.Mask(r.MSISDN), "state", r.State, "reason", r.Reason, "data_mb", r.DataMB)
	}
	if r.State == StatePending {
		l.enqueue(ctx, r.ID)
	}
}

// InstallSkew is how much earlier than its message an install may be
// dated and still be in the window (and be attributed to it, by code or by
// number): the app backend's clock is not ours.
const InstallSkew = 5 * time.Minute

// outsideWindow reports whether the install falls outside its message's
// attribution window: after it closed, or before the message was sent (a
// referral code can name such a message; it cannot have driven the
// install).
func outsideWindow(req Request) bool {
	if req.AttributionDays <= 0 || req.SentAt.IsZero() || req.InstalledAt.IsZero() {
		return false
	}
	return req.InstalledAt.Before(req.SentAt.Add(-InstallSkew)) ||
		req.InstalledAt.After(req.SentAt.Add(time.Duration(req.AttributionDays)*24*time.Hour))
}

func (l *Ledger) enqueue(ctx context.Context, id string) {
	if l.Enqueuer == nil {
		return
	}
	if err := l.Enqueuer.EnqueueFulfil(ctx, id); err != nil {
		l.logger().WarnContext(ctx, "enqueue reward fulfilment failed; the reconciler will pick it up",
			"reward_id", id, "err", err)
	}
}

// PendingRewards returns up to limit pending rewards untouched for
// StaleAfter (default a minute), oldest first: the reconciler enqueues them
// again.
func (l *Ledger) PendingRewards(ctx context.Context, limit int) ([]Reward, error) {
	before, limit := l.stale(limit)
	return l.Store.PendingRewards(ctx, before, limit)
}

// stale is the reconciler's bound: untouched before StaleAfter ago
// (default a minute), up to limit (default a page).
func (l *Ledger) stale(limit int) (time.Time, int) {
	stale := l.StaleAfter
	if stale <= 0 {
		stale = DefaultStaleAfter
	}
	if limit <= 0 {
		limit = DefaultPageSize
	}
	return l.now().Add(-stale), limit
}

// DueConfirmations returns the ids of up to limit granted rewards whose
// confirmation is still due StaleAfter after the grant, oldest first: its
// task was lost, and the reconciler queues it again.
func (l *Ledger) DueConfirmations(ctx context.Context, limit int) ([]string, error) {
	before, limit := l.stale(limit)
	return l.Store.DueConfirmations(ctx, before, limit)
}

// Page is one page of rewards; NextAfter, when not 0, is the After of the
// next one.
type Page struct {
	Rewards   []Reward `json:"rewards"`
	NextAfter int64    `json:"next_after,omitempty"`
}

// List pages a tenant's rewards, filtered by campaign and state.
func (l *Ledger) List(ctx context.Context, tenantID string, q Query) (Page, error) {
	fe := apperr.FieldErrors{}
	if q.CampaignID != "" {
		u, err := uuid.Parse(q.CampaignID)
		if err != nil {
			fe.Add("campaign_id", "must be a campaign id")
		} else {
			q.CampaignID = u.String()
		}
	}
	if q.State != "" && !q.State.Valid() {
		fe.Add("status", "must be pending, granted, failed or rejected, not %q", q.State)
	}
	if q.After < 0 {
		fe.Add("after", "must be 0 or more")
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultPageSize
	case q.Limit < 0 || q.Limit > MaxPageSize:
		fe.Add("limit", "must be 1 to %d", MaxPageSize)
	}
	if err := fe.Err(); err != nil {
		return Page{}, err
	}
	rs, err := l.Store.ListRewards(ctx, tenantID, q)
	if err != nil {
		return Page{}, err
	}
	if rs == nil {
		rs = []Reward{}
	}
	p := Page{Rewards: rs}
	if len(rs) == q.Limit {
		p.NextAfter = rs[len(rs)-1].Seq
	}
	return p, nil
}

// Totals sums a tenant's rewards by state, of one campaign when campaignID
// is not empty.
func (l *Ledger) Totals(ctx context.Context, tenantID, campaignID string) (Totals, error) {
	return l.Store.RewardTotals(ctx, tenantID, campaignID)
}
