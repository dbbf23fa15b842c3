package reward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"outreach/provider"
	"outreach/subscriber"
)

// Fulfilment defaults.
const (
	DefaultMaxAttempts = 5
	DefaultBackoff     = 200 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
	DefaultCallTimeout = 10 * time.Second
)

// ErrStillPending is what Fulfil returns when the provisioning API kept
// failing transiently: the reward stays pending, to be tried again later.
var ErrStillPending = errors.New("reward still pending: provisioning failed transiently")

// Fulfiller provisions pending rewards through the carrier's API. The
// reward id is the API's idempotency key, so two fulfilments of one reward
// (a retried task, the reconciler) credit the line once.
type Fulfiller struct {
	Store       Store
	Provisioner provider.Provisioner
	// Confirm, when set, runs after a grant (say, a confirmation SMS). Its
	// error is logged: the grant stands.
	Confirm func(ctx context.Context, r Reward) error
	// MaxAttempts bounds the calls of one Fulfil (default 5); Backoff is
	// the first wait between them, doubled each time up to MaxBackoff,
	// with jitter.
	MaxAttempts int
	Backoff     time.Duration
	MaxBackoff  time.Duration
	// CallTimeout bounds one provisioning call (default 10 s).
	CallTimeout time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	Metrics     *Metrics // nil: none
}

func (f *Fulfiller) now() time.Time {
	if f.Now != nil {
		return f.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

func (f *Fulfiller) logger() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.Default()
}

// Fulfil provisions one reward. It returns nil once the reward is final
// (granted, failed on a permanent error, or not pending to begin with: a
// repeated task is harmless) and an error wrapping ErrStillPending when
// transient failures outlasted MaxAttempts (retry later: the worker's queue
// or the reconciler). An unknown id is apperr.ErrNotFound.
func (f *Fulfiller) Fulfil(ctx context.Context, rewardID string) error {
	r, err := f.Store.GetReward(ctx, rewardID)
	if err != nil {
		return fmt.Errorf("fulfil reward %s: %w", rewardID, err)
	}
	if r.State != StatePending {
		return nil
	}
	attempts := f.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	g := provider.Grant{RewardID: r.ID, CampaignID: r.CampaignID, MSISDN: r.MSISDN, DataMB: r.DataMB}
	var last error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			if err := sleep(ctx, f.backoff(i, last)); err != nil {
				return fmt.Errorf("fulfil reward %s: %w: %w", r.ID, ErrStillPending, err)
			}
		}
		last = f.grant(ctx, g)
		f.Metrics.called(last)
		if last == nil {
			return f.finish(ctx, r, StateGranted, "")
		}
		if err := f.Store.RecordAttempt(ctx, r.ID, errText(last), f.now()); err != nil {
			f.logger().WarnContext(ctx, "record reward attempt failed", "reward_id", r.ID, "err", err)
		}
		if ctx.Err() != nil {
			break
		}
		// With the reward id as idempotency key an ambiguous call (the
		// answer was lost) is safe to repeat, like a transient one.
		if c := provider.ClassOf(last); c != provider.Transient && c != provider.Ambiguous {
			f.logger().WarnContext(ctx, "reward provisioning failed permanently", "reward_id", r.ID,
				"msisdn", subscriber.Mask(r.MSISDN), "err", last)
			return f.finish(ctx, r, StateFailed, errText(last))
		}
		f.logger().InfoContext(ctx, "reward provisioning failed transiently", "reward_id", r.ID,
			"attempt", i+1, "err", last)
	}
	return fmt.Errorf("fulfil reward %s: %w: %w", r.ID, ErrStillPending, last)
}

func (f *Fulfiller) grant(ctx context.Context, g provider.Grant) error {
	timeout := f.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return f.Provisioner.Grant(cctx, g)
}

func (f *Fulfiller) finish(ctx context.Context, r Reward, to State, errMsg string) error {
	// The call succeeded or failed for good: record it even if the task's
	// context is ending, or the grant would be made again later.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	changed, err := f.Store.FinishReward(wctx, r.ID, to, errMsg, f.now())
	if err != nil {
		return fmt.Errorf("fulfil reward %s: record %s: %w", r.ID, to, err)
	}
	if changed {
		f.Metrics.finished(r, to)
	}
	if !changed || to != StateGranted {
		return nil
	}
	f.logger().InfoContext(ctx, "reward granted", "reward_id", r.ID, "campaign_id", r.CampaignID,
		"msisdn", subscriber.Mask(r.MSISDN), "data_mb", r.DataMB)
	if f.Confirm != nil {
		r.State = StateGranted
		if err := f.Confirm(wctx, r); err != nil {
			f.logger().WarnContext(ctx, "reward confirmation failed", "reward_id", r.ID, "err", err)
		}
	}
	return nil
}

func (f *Fulfiller) backoff(attempt int, last error) time.Duration {
	base, ceiling := f.Backoff, f.MaxBackoff
	if base <= 0 {
		base = DefaultBackoff
	}
	if ceiling <= 0 {
		ceiling = DefaultMaxBackoff
	}
	d := base << (attempt - 1)
	if d > ceiling || d <= 0 {
		d = ceiling
	}
	if hint := provider.RetryAfterOf(last); hint > d {
		d = min(hint, ceiling)
	}
	// Full jitter over the upper half keeps retries of many rewards apart.
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errText is an error's message, bounded for the ledger.
func errText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

// Reconcile hands every stale pending reward (up to limit) back to enq, for
// the worker's reconciler; it returns how many.
func Reconcile(ctx context.Context, l *Ledger, enq Enqueuer, limit int) (int, error) {
	rs, err := l.PendingRewards(ctx, limit)
	if err != nil {
		return 0, err
	}
	for i, r := range rs {
		if err := enq.EnqueueFulfil(ctx, r.ID); err != nil {
			return i, fmt.Errorf("re-enqueue reward %s: %w", r.ID, err)
		}
	}
	return len(rs), nil
}
