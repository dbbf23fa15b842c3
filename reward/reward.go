// Package reward is the exactly-once ledger of data-bonus rewards: at most
// one live reward (pending or granted) per (campaign, subscriber) and per
// device across the tenant's campaigns, never past a campaign's budget
// under any concurrency (the store enforces both in one atomic step), and
// the fulfilment that provisions each reward through the carrier's API
// exactly once. It declares the Store it needs.
package reward

import (
	"context"
	"time"
)

// State of a reward: pending → granted | failed, or rejected at once.
type State string

const (
	StatePending  State = "pending"
	StateGranted  State = "granted"
	StateFailed   State = "failed"
	StateRejected State = "rejected"
)

// AllStates in report order.
var AllStates = []State{StatePending, StateGranted, StateFailed, StateRejected}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, x := range AllStates {
		if x == s {
			return true
		}
	}
	return false
}

// Reason says why a reward was rejected.
type Reason string

const (
	ReasonBudgetExhausted       Reason = "budget_exhausted"
	ReasonAlreadyRewarded       Reason = "already_rewarded"
	ReasonDeviceAlreadyRewarded Reason = "device_already_rewarded"
	ReasonOutsideWindow         Reason = "outside_window"
)

// Reward is one data bonus for one install.
type Reward struct {
	ID       string `json:"id"`
	TenantID string `json:"-"`
	// Seq orders a tenant's rewards for paging.
	Seq          int64  `json:"-"`
	CampaignID   string `json:"campaign_id"`
	SubscriberID int64  `json:"-"`
	MSISDN       string `json:"msisdn"`
	DeviceID     string `json:"device_id"`
	// InstallID is the install that earned it; one reward per install.
	InstallID string     `json:"install_id"`
	DataMB    int64      `json:"data_mb"`
	State     State      `json:"state"`
	Reason    Reason     `json:"reason,omitempty"`
	Attempts  int        `json:"attempts"`
	LastError string     `json:"last_error,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	GrantedAt *time.Time `json:"granted_at,omitempty"`
	// ConfirmDue: granted, and its confirmation SMS not yet sent, refused
	// or given up (Store.DueConfirmations).
	ConfirmDue bool `json:"-"`
}

// Query pages a tenant's rewards by Seq; empty filters mean all.
type Query struct {
	CampaignID string
	State      State
	After      int64
	Limit      int
}

// Totals sum a campaign's (or a tenant's) rewards by state.
type Totals struct {
	Count map[State]int64 `json:"count"`
	MB    map[State]int64 `json:"mb"`
}

// Store is what the ledger needs from persistence.
type Store interface {
	// CreateReward stores r atomically and reports whether it is new.
	//
	// r.ID is set when empty. The install id is the idempotency key: if a
	// reward for r.InstallID exists, r becomes that one and created is
	// false. A reward given as rejected (r.Reason set) is stored as such,
	// touching no budget. Otherwise, in one atomic step: if the campaign
	// and subscriber already have a live reward (pending or granted: a
	// failed one credited nothing), r is stored rejected already_rewarded;
	// else if the tenant's device has one, rejected device_already_rewarded; else if debiting r.DataMB
	// would take the campaign's spent past budgetMB (the budget row is
	// created on first use with budgetMB), rejected budget_exhausted;
	// else the budget is debited and r stored pending. r is filled with
	// what was stored.
	CreateReward(ctx context.Context, r *Reward, budgetMB int64) (created bool, err error)
	// GetReward reads a reward of any tenant (workers).
	GetReward(ctx context.Context, id string) (Reward, error)
	// RewardOfInstall reads the reward stored for an install, if any.
	RewardOfInstall(ctx context.Context, installID string) (r Reward, found bool, err error)
	// RecordAttempt counts a provisioning attempt of a pending reward and
	// its error.
	RecordAttempt(ctx context.Context, id string, errMsg string, at time.Time) error
	// FinishReward moves a pending reward to granted or failed (failed
	// gives its MB back to the campaign's budget); false when the reward
	// was not pending, which changes nothing.
	FinishReward(ctx context.Context, id string, to State, errMsg string, at time.Time) (bool, error)
	// PendingRewards returns up to limit pending rewards last updated
	// before `before`, oldest first (the reconciler).
	PendingRewards(ctx context.Context, before time.Time, limit int) ([]Reward, error)
	// DueConfirmations returns the ids of up to limit granted rewards
	// whose confirmation is due (FinishReward to granted makes it so) and
	// that were granted before `before`, oldest first (the reconciler).
	DueConfirmations(ctx context.Context, before time.Time, limit int) ([]string, error)
	// ConfirmationDone records that a reward's confirmation is no longer
	// due: sent, not wanted, or given up.
	ConfirmationDone(ctx context.Context, id string) error
	// ListRewards pages a tenant's rewards by Seq.
	ListRewards(ctx context.Context, tenantID string, q Query) ([]Reward, error)
	// RewardTotals sums a tenant's rewards, of one campaign when
	// campaignID is not empty.
	RewardTotals(ctx context.Context, tenantID, campaignID string) (Totals, error)
}

// Enqueuer hands a reward to the background fulfilment (the worker wires
// it to its queue with the reward id as task id, so enqueuing twice is
// harmless). The store is the truth: a reward whose task is lost stays
// pending and PendingRewards finds it.
type Enqueuer interface {
	EnqueueFulfil(ctx context.Context, rewardID string) error
}

// EnqueuerFunc adapts a function to Enqueuer.
type EnqueuerFunc func(ctx context.Context, rewardID string) error

// EnqueueFulfil calls f.
func (f EnqueuerFunc) EnqueueFulfil(ctx context.Context, rewardID string) error {
	return f(ctx, rewardID)
}
