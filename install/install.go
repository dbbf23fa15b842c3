// Package install takes install callbacks from the app's backend: it checks
// their signature, attributes each install to the campaign that drove it,
// records the first install of a subscriber (later ones as duplicates,
// replays as nothing new) and asks the reward ledger for the data bonus.
// It also holds the adoption report. It declares the Store it needs.
package install

import (
	"context"
	"time"

	"outreach/campaign"
	"outreach/reward"
	"outreach/subscriber"
)

// Via says how an install was attributed.
type Via string

const (
	// ViaReferral: the callback carried the referral code of a delivery.
	ViaReferral Via = "referral"
	// ViaLastMessage: the most recent install-promotion message sent to
	// the subscriber within its campaign's attribution window.
	ViaLastMessage Via = "last_message"
	// ViaOrganic: no message drove it.
	ViaOrganic Via = "organic"
)

// Install is one recorded install.
type Install struct {
	ID       string `json:"id"`
	TenantID string `json:"-"`
	// SubscriberID is 0 when the number is not one of the tenant's
	// subscribers (the install is still counted, never rewarded).
	SubscriberID int64     `json:"-"`
	MSISDN       string    `json:"msisdn"`
	DeviceID     string    `json:"device_id"`
	Platform     Platform  `json:"platform"`
	InstalledAt  time.Time `json:"installed_at"`
	ReceivedAt   time.Time `json:"received_at"`
	ReferralCode string    `json:"referral_code,omitempty"`
	// Region is the subscriber's region when the install came in: the
	// adoption report counts it there.
	Region     string `json:"region,omitempty"`
	CampaignID string `json:"campaign_id,omitempty"`
	Via        Via    `json:"via"`
	// AttributedAt is when the attributed message was sent.
	AttributedAt *time.Time `json:"attributed_at,omitempty"`
	// Duplicate: the subscriber had installed before; only the first
	// install counts.
	Duplicate bool `json:"duplicate"`
}

// ReplayKey is what makes two callbacks the same install.
type ReplayKey struct {
	TenantID    string
	DeviceID    string
	MSISDN      string
	InstalledAt time.Time
}

// Key returns the install's replay key.
func (in Install) Key() ReplayKey {
	return ReplayKey{TenantID: in.TenantID, DeviceID: in.DeviceID, MSISDN: in.MSISDN, InstalledAt: in.InstalledAt}
}

// Target is a subscriber an install is about.
type Target struct {
	SubscriberID int64
	MSISDN       string
	Region       string
}

// Attribution is an install-promotion delivery an install may be credited
// to, with its campaign's reward terms (nil when it pays none).
type Attribution struct {
	CampaignID string
	Target     Target
	// SentAt is when the message went out (its creation time if the store
	// never recorded a send).
	SentAt time.Time
	Reward *campaign.Reward
}

// RecordResult is what RecordInstall did.
type RecordResult struct {
	// Replay: this exact install (same replay key) was recorded before;
	// the Install returned is the stored one, nothing was written.
	Replay bool
}

// Store is what this package needs from persistence. Every call is scoped
// to one tenant except RecordClick, whose code is globally random.
type Store interface {
	// InstallTarget finds one of the tenant's subscribers by E.164 number;
	// found is false when there is none.
	InstallTarget(ctx context.Context, tenantID, msisdn string) (t Target, found bool, err error)
	// AttributionByReferral finds the install-promotion delivery of the
	// tenant carrying this referral code.
	AttributionByReferral(ctx context.Context, tenantID, code string) (a Attribution, found bool, err error)
	// LastPromotion finds the most recent install-promotion delivery sent
	// (status sent or delivered) to the subscriber at or before `at` and
	// no earlier than its campaign's attribution window before `at`
	// (defaultDays for a campaign without reward terms).
	LastPromotion(ctx context.Context, tenantID string, subscriberID int64, at time.Time, defaultDays int) (a Attribution, found bool, err error)
	// RecordInstall stores in atomically. The first install of a number in
	// the tenant counts: it marks the subscriber installed (keeping an
	// earlier installed_at) and adds to the region's install count; any
	// later one is stored with Duplicate set. An install whose replay key
	// is stored already is a replay: in is overwritten with the stored one
	// and nothing is written. in.ID is set when empty.
	RecordInstall(ctx context.Context, in *Install) (RecordResult, error)
	// RecordClick counts a click on the install link with this referral
	// code; false when no delivery has it.
	RecordClick(ctx context.Context, code string, at time.Time) (bool, error)
	// InstallCounts returns the tenant's counted installs by region (""
	// for numbers with no region).
	InstallCounts(ctx context.Context, tenantID string) (map[string]int64, error)
	// ListRegions returns the tenant's regions (subscriber.Store's).
	ListRegions(ctx context.Context, tenantID string) ([]subscriber.Region, error)
}

// RewardingStore is a Store that can record a counted install and its
// pending reward in one atomic step: one commit instead of two on the hot
// path. The Service uses it when the store has it.
type RewardingStore interface {
	// RecordInstallRewarded is RecordInstall that, when the install is new
	// and counts, also stores r (pending) and debits r.DataMB from the
	// campaign's budget of budgetMB, in the same atomic step, if it can do
	// so with no conflict and within the budget; rewarded reports whether
	// it did. When rewarded is false, the install is recorded exactly as
	// RecordInstall records it, r is not stored, and the caller creates
	// the reward through the ledger, which applies every rule.
	RecordInstallRewarded(ctx context.Context, in *Install, r *reward.Reward, budgetMB int64) (res RecordResult, rewarded bool, err error)
}

// AttributionLookup is what attribute needs to know about one callback,
// found in one step by an AttributionStore.
type AttributionLookup struct {
	// ByCode is the install-promotion delivery the referral code names;
	// nil when the callback has no code or no delivery has it.
	ByCode *Attribution
	// TargetLooked says the number was looked up: the callback names one,
	// and the code's delivery (if any) went to another number. Target is
	// then the tenant's subscriber with that number, nil when there is
	// none.
	TargetLooked bool
	Target       *Target
	// Last is Target's LastPromotion at the install time (nil: none).
	Last *Attribution
}

// AttributionStore is a Store that makes attribute's look-ups (the
// referral code's delivery, the subscriber by number, the last promotion
// sent to them) in one step, so that a callback costs one read instead of
// up to three. The Service uses it when the store has it.
type AttributionStore interface {
	// LookUpAttribution answers, for the tenant's callback cb, what
	// AttributionByReferral(cb.ReferralCode) would (when the code is
	// given); then, when cb.MSISDN is given and the code's delivery did
	// not go to that number, InstallTarget(cb.MSISDN); and for the
	// subscriber found, LastPromotion(cb.InstalledAt, defaultDays).
	LookUpAttribution(ctx context.Context, tenantID string, cb Callback, defaultDays int) (AttributionLookup, error)
}
