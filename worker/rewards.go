package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/internal/queue"
	"outreach/provider"
	"outreach/reward"
	"outreach/templates"
)

// TypeFulfil provisions one reward.
const TypeFulfil = "reward:fulfil"

var _ reward.Enqueuer = (*Engine)(nil)

// EnqueueFulfil queues the provisioning of a reward. The task id is the
// reward id, so a reward is never queued twice at once; a task orphaned by
// a dead worker gives way to the next generation's id (reward:ID:1, …).
func (e *Engine) EnqueueFulfil(ctx context.Context, rewardID string) error {
	for gen := range maxFulfilGenerations {
		id := "reward:" + rewardID
		if gen > 0 {
			id += ":" + strconv.Itoa(gen)
		}
		task := asynq.NewTask(TypeFulfil, []byte(rewardID), asynq.MaxRetry(20), asynq.Queue(queue.QueueDefault),
			asynq.TaskID(id))
		_, err := e.client.EnqueueContext(ctx, task)
		if err == nil {
			e.forgetOrphan(id)
		}
		if errors.Is(err, asynq.ErrTaskIDConflict) {
			var orphaned bool
			orphaned, err = e.replaceDeadTask(ctx, task, id)
			if err == nil && orphaned {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("enqueue reward %s: %w", rewardID, err)
		}
		return nil
	}
	return fmt.Errorf("enqueue reward %s: its last %d tasks were orphaned by dead workers", rewardID, maxFulfilGenerations)
}

// maxFulfilGenerations bounds the task ids one reward uses: each new one
// follows a kill -9 of the worker running the one before.
const maxFulfilGenerations = 8

// replaceDeadTask enqueues task again when the task holding its id will
// never run: asynq keeps an archived task (retries used up, say through a
// long provisioning outage, or a lease that expired on the last retry) and
// its id for months, and a pending reward whose only task is archived would
// never be granted. A live task (queued, scheduled, retrying, running) is
// left alone. A task active under no live worker (its worker was killed)
// is orphaned: asynq's own recovery waits for its lease and runs only once
// a minute; the caller gives the reward the next id instead. Running the
// orphan again later is harmless: the reward is final by then, and the
// provisioning API takes the reward id as its idempotency key.
func (e *Engine) replaceDeadTask(ctx context.Context, task *asynq.Task, id string) (orphaned bool, err error) {
	insp := asynq.NewInspectorFromRedisClient(e.Queue.Redis)
	info, err := insp.GetTaskInfo(queue.QueueDefault, id)
	if err == nil && info.State != asynq.TaskStateActive || errors.Is(err, asynq.ErrTaskNotFound) {
		// Not running: a sighting of it orphaned is over (it may run
		// again later, under a live worker, and must start afresh).
		e.forgetOrphan(id)
	}
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound):
	case err != nil:
		return false, err
	case info.State == asynq.TaskStateActive:
		live, err := liveTaskIDs(insp)
		if err != nil {
			return false, err
		}
		return e.orphaned(live, id), nil
	case info.State != asynq.TaskStateArchived && info.State != asynq.TaskStateCompleted:
		return false, nil
	default:
		if err := insp.DeleteTask(queue.QueueDefault, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return false, err
		}
	}
	if _, err := e.client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, err
	}
	return false, nil
}

func (e *Engine) handleFulfil(ctx context.Context, t *asynq.Task) error {
	if e.Fulfiller == nil {
		return fmt.Errorf("%w: no fulfiller configured", asynq.SkipRetry)
	}
	err := e.Fulfiller.Fulfil(ctx, string(t.Payload()))
	if errors.Is(err, reward.ErrStillPending) {
		return err // asynq retries with backoff; the reconciler is the backstop
	}
	return err
}

// reconcileRewards re-enqueues pending rewards that have made no progress.
func (e *Engine) reconcileRewards(ctx context.Context) error {
	if e.Ledger == nil || e.Fulfiller == nil {
		return nil
	}
	if _, err := reward.Reconcile(ctx, e.Ledger, e, 1000); err != nil {
		return err
	}
	// Confirmations still due after StaleAfter lost their task (one still
	// queued or retrying keeps its id: queuing it again does nothing).
	ids, err := e.Ledger.DueConfirmations(ctx, 1000)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := e.enqueueConfirm(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// TypeConfirm sends a granted reward's confirmation SMS.
const TypeConfirm = "reward:confirm"

// confirmRetries bounds the retries of one confirmation (with the engine's
// backoff of 1 s doubling to a minute: about a quarter of an hour).
const confirmRetries = 20

// EnqueueConfirm queues the confirmation SMS of a granted reward: the
// fulfiller's Confirm, called once, when the grant is recorded. The SMS
// goes in a task of its own, so that a transient provider error (a 503, a
// sender rate held by an exposure alert) is retried with backoff instead
// of losing the confirmation. The task id is the reward's.
func (e *Engine) EnqueueConfirm(ctx context.Context, r reward.Reward) error {
	return e.enqueueConfirm(ctx, r.ID)
}

// enqueueConfirm queues the confirmation task of a reward. A task of that
// id that will never run again (archived: its retries used up, or a
// failure to record the outcome on its last one) is replaced, as a
// fulfilment's is (replaceDeadTask); a live one is left to run.
func (e *Engine) enqueueConfirm(ctx context.Context, rewardID string) error {
	id := "confirm:" + rewardID
	task := asynq.NewTask(TypeConfirm, []byte(rewardID), asynq.MaxRetry(confirmRetries),
		asynq.Queue(queue.QueueDefault), asynq.TaskID(id))
	_, err := e.client.EnqueueContext(ctx, task)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		// An orphan (active under a dead worker) runs again once asynq
		// recovers its lease.
		_, err = e.replaceDeadTask(ctx, task, id)
	}
	if err != nil {
		return fmt.Errorf("enqueue the confirmation of reward %s: %w", rewardID, err)
	}
	return nil
}

// handleConfirm sends one confirmation. A transient failure is retried; a
// permanent one (the number refused, the template gone or failing on
// these values) and an ambiguous one (the SMS may have gone: a second
// would be a duplicate) end the task.
func (e *Engine) handleConfirm(ctx context.Context, t *asynq.Task) error {
	if e.Ledger == nil {
		return fmt.Errorf("%w: no reward ledger configured", asynq.SkipRetry)
	}
	r, err := e.Ledger.Store.GetReward(ctx, string(t.Payload()))
	if errors.Is(err, apperr.ErrNotFound) {
		return fmt.Errorf("%w: %w", asynq.SkipRetry, err)
	}
	if err != nil {
		return err
	}
	if r.State != reward.StateGranted || !r.ConfirmDue {
		// Sent, refused or given up already: this is a task the
		// reconciler queued again as the last one finished.
		return nil
	}
	err = e.ConfirmReward(ctx, r)
	var te *templates.Error
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	switch {
	case err == nil:
		return e.confirmationDone(ctx, r.ID)
	case errors.As(err, &te), errors.Is(err, apperr.ErrNotFound), provider.ClassOf(err) != provider.Transient:
		e.Logger.WarnContext(ctx, "reward confirmation not sent", "reward_id", r.ID, "err", err)
		if derr := e.confirmationDone(ctx, r.ID); derr != nil {
			return derr // retried: the ledger must learn it is not due
		}
		return fmt.Errorf("%w: %w", asynq.SkipRetry, err)
	case retried >= maxRetry:
		e.Logger.WarnContext(ctx, "reward confirmation given up after its retries", "reward_id", r.ID, "err", err)
		return errors.Join(err, e.confirmationDone(ctx, r.ID))
	}
	e.Logger.InfoContext(ctx, "reward confirmation failed transiently; retrying", "reward_id", r.ID, "err", err)
	return err
}

// confirmationDone records in the ledger that a reward's confirmation is
// no longer due (sent, not wanted, or given up), so that the reconciler
// leaves it. A failure to record it fails the task, which is retried (the
// SMS may then go twice, never not at all), or, on its last retry, left
// archived for the reconciler to replace.
func (e *Engine) confirmationDone(ctx context.Context, id string) error {
	if err := e.Ledger.Store.ConfirmationDone(context.WithoutCancel(ctx), id); err != nil {
		return fmt.Errorf("record the confirmation of reward %s: %w", id, err)
	}
	return nil
}

// ConfirmReward sends the subscriber of a granted reward its campaign's
// confirmation SMS, when the campaign has one (Reward.ConfirmTemplate, or
// the one for the subscriber's locale, LocaleConfirmTemplates). It
// is a service message, not marketing: no label, no opt-out text, no send
// window; it takes its slots in the sender's rate like any SMS. The
// confirmation task (EnqueueConfirm) calls it.
func (e *Engine) ConfirmReward(ctx context.Context, r reward.Reward) error {
	c, err := e.Store.CampaignByID(ctx, r.CampaignID)
	if err != nil {
		return fmt.Errorf("confirm reward %s: %w", r.ID, err)
	}
	if c.Reward == nil || c.Reward.ConfirmTemplate == "" {
		return nil
	}
	vars, locale := templates.Vars{RewardMB: r.DataMB}, ""
	s, err := e.Subscribers.GetSubscriber(ctx, c.TenantID, r.MSISDN)
	switch {
	case err == nil:
		vars.Name, vars.Region, vars.Attributes = nameOf(s.Attributes), s.Region, s.Attributes
		locale = s.Locale
	case !errors.Is(err, apperr.ErrNotFound):
		// A blip: retried, rather than sent in the wrong locale and done.
		return fmt.Errorf("confirm reward %s: read subscriber: %w", r.ID, err)
	}
	ct, err := e.template(ctx, c.TenantID, c.Reward.ConfirmTemplateFor(locale))
	if err != nil {
		return fmt.Errorf("confirm reward %s: %w", r.ID, err)
	}
	body, err := ct.body.Render(vars)
	if err != nil {
		return fmt.Errorf("confirm reward %s: render: %w", r.ID, err)
	}
	text := strings.TrimSpace(body)
	if ct.t.Transliterate {
		text = templates.Transliterate(text)
	}
	if err := e.waitForSender(ctx, campaign.ChannelSMS, templates.CountSMS(text).Segments); err != nil {
		return fmt.Errorf("confirm reward %s: %w", r.ID, err)
	}
	if _, err := e.SMS.SendSMS(ctx, provider.SMS{To: r.MSISDN, Body: text,
		StatusCallback: e.set.StatusCallback, ValidityPeriod: time.Hour}); err != nil {
		return fmt.Errorf("confirm reward %s: %w", r.ID, err)
	}
	return nil
}

// senderAhead is how far ahead a message outside the send tasks (a reward's
// confirmation, a test send) may hold the sender's rate, as marketing does.
const senderAhead = 25 * time.Millisecond

// waitForSender takes units in the sender's rate for one message on ch that
// is not part of a campaign's sending, waiting for them: the provider's
// limit holds for every message.
func (e *Engine) waitForSender(ctx context.Context, ch campaign.Channel, units int) error {
	key, rate := e.senderKeyFor(ch)
	for {
		res, ok, wait, err := e.limiter.Reserve(ctx, key, rate, max(units, 1), senderAhead, 0, false)
		if err == nil && ok {
			sleepCtx(ctx, res.Delay)
			return ctx.Err()
		}
		sleepCtx(ctx, clampWait(wait, err))
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for the sender's rate: %w", ctx.Err())
		}
	}
}

// nameOf is a subscriber's {{.Name}}: the "name" attribute, whatever the
// case of the import's column header.
func nameOf(attrs map[string]string) string {
	n, _ := campaign.NameOf(attrs)
	return n
}
