package worker

import (
	"context"
	"time"

	"outreach/campaign"
	"outreach/provider"
)

// monitor runs in every worker process. Each pass is idempotent, so several
// processes may run it at once: it starts scheduled campaigns that are due,
// re-kicks running campaigns whose fan-out chain died (its lease expired),
// re-drives deliveries left pending with no progress (a lost task, an
// emptied Redis), and completes campaigns with nothing left to send.
func (e *Engine) monitor(ctx context.Context) {
	tick := time.NewTicker(e.set.MonitorEvery)
	defer tick.Stop()
	lastRedrive := time.Now()
	var lastPurge, lastSweep time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		redrive := time.Since(lastRedrive) >= e.set.StaleAfter/2
		if redrive {
			lastRedrive = time.Now()
		}
		if err := e.monitorPass(ctx, redrive); err != nil && ctx.Err() == nil {
			e.Logger.Warn("campaign monitor", "err", err)
		}
		if redrive {
			if err := e.reconcileRewards(ctx); err != nil && ctx.Err() == nil {
				e.Logger.Warn("reward reconciler", "err", err)
			}
		}
		if time.Since(lastSweep) >= orphanSweepEvery {
			lastSweep = time.Now()
			if err := e.sweepOrphans(ctx); err != nil && ctx.Err() == nil {
				e.Logger.Warn("orphaned tasks", "err", err)
			}
		}
		if time.Since(lastPurge) >= time.Hour {
			lastPurge = time.Now()
			if _, err := e.PurgeAlertContacts(ctx); err != nil && ctx.Err() == nil {
				e.Logger.Warn("alert retention", "err", err)
			}
		}
	}
}

// recoverRestart queues again, as the process starts, the work a dead
// process left (Settings.SoleWorker): its claims still marked sending go
// back to pending, every running campaign gets a fan-out chain that first
// re-drives its unfinished deliveries from the store (an alert too, whose
// creating request died with that process), and pending rewards are handed
// to the fulfiller. Otherwise a restarted server sent nothing for minutes.
func (e *Engine) recoverRestart(ctx context.Context, start time.Time) error {
	active, err := e.Store.ActiveCampaigns(ctx)
	if err != nil {
		return err
	}
	for _, c := range active {
		if c.State != campaign.StateRunning {
			continue
		}
		if err := e.resetSendingBefore(ctx, c, start); err != nil {
			return err
		}
		if err := e.startChain(ctx, c, true, "restart"); err != nil {
			return err
		}
	}
	return e.reconcileRewards(ctx)
}

// MonitorPass runs one pass now (tests and the reconciler command).
func (e *Engine) MonitorPass(ctx context.Context, redrive bool) error {
	return e.monitorPass(ctx, redrive)
}

func (e *Engine) monitorPass(ctx context.Context, redrive bool) error {
	now := e.Now()
	due, err := e.Store.DueScheduled(ctx, now)
	if err != nil {
		return err
	}
	for _, c := range due {
		from, to, _ := campaign.Transition(campaign.ActionStart)
		c, err := e.Store.TransitionCampaign(ctx, c.TenantID, c.ID, from, to, now)
		if err != nil {
			continue // another process started it
		}
		if err := e.Kick(ctx, c); err != nil {
			return err
		}
	}
	active, err := e.Store.ActiveCampaigns(ctx)
	if err != nil {
		return err
	}
	for _, c := range active {
		if c.State == campaign.StatePaused && c.EndBy != nil && !now.Before(*c.EndBy) {
			// Past its end_by a paused campaign ends as a running one
			// does: it goes on only to skip its unsent deliveries
			// (campaign_ended) and completes. It used to stay paused, its
			// deliveries pending, until someone resumed it.
			if err := e.endPaused(ctx, c, now); err != nil {
				return err
			}
			continue
		}
		if c.State != campaign.StateRunning {
			continue
		}
		if redrive {
			// Claims of a dead worker go back to pending during fan-out
			// too: the retry of its task (after asynq's lease) or the
			// re-drive at the end of fan-out sends them. An SMS among
			// them is looked up first.
			if err := e.resetStaleSending(ctx, c); err != nil {
				return err
			}
			if !c.FanoutDone {
				e.resolveOrWait(ctx, c) // during fan-out too: the sends it puts back go now
			}
		}
		if !c.FanoutDone && c.Kind == campaign.KindExposureAlert && c.StartedAt != nil && now.Sub(*c.StartedAt) < alertHold {
			// The request creating the alert may still be writing its
			// list: it lets the fan-out go when the list is whole
			// (HoldFanout). Its hold in Redis keeps chains out, but an
			// emptied Redis loses it, and a chain started now would page
			// part of the list, mark it done, and complete the alert
			// without the rest. Past alertHold the request is gone.
			continue
		}
		if !c.FanoutDone {
			// startChain does nothing while a live chain holds the lease.
			if err := e.startChain(ctx, c, false, "monitor"); err != nil {
				return err
			}
			continue
		}
		left, err := e.Store.CountUnfinished(ctx, c.ID)
		if err != nil {
			return err
		}
		if left == 0 || redrive {
			// Looked up after the count: a claim another process has
			// reset since is unknown by now, not uncounted. Counted again
			// after the look-ups: another process's may have put a send
			// back to pending meanwhile.
			if e.resolveOrWait(ctx, c) && left == 0 {
				continue // not complete while sends may still have to go
			}
			if left == 0 {
				if left, err = e.Store.CountUnfinished(ctx, c.ID); err != nil {
					return err
				}
			}
		}
		if left == 0 {
			from, to, _ := campaign.Transition(campaign.ActionComplete)
			if _, err := e.Store.TransitionCampaign(ctx, c.TenantID, c.ID, from, to, now); err == nil {
				e.Store.Audit(ctx, campaign.AuditEntry{TenantID: c.TenantID, Actor: "system", Action: "campaign.complete",
					ObjectType: "campaign", ObjectID: c.ID, At: now})
				e.dropBacklog(ctx, c.ID)
			}
			continue
		}
		if redrive && !e.holding(c, now) {
			if err := e.redriveStale(ctx, c); err != nil {
				return err
			}
		}
	}
	if redrive {
		return e.settleUnsettled(ctx, now)
	}
	return nil
}

// endPaused moves paused campaign c, past its end_by, back to running so
// that its chain and tasks skip what it has left and it completes.
func (e *Engine) endPaused(ctx context.Context, c campaign.Campaign, now time.Time) error {
	from, to, _ := campaign.Transition(campaign.ActionResume)
	c, err := e.Store.TransitionCampaign(ctx, c.TenantID, c.ID, from, to, now)
	if err != nil {
		return nil // another process moved it
	}
	e.Store.Audit(ctx, campaign.AuditEntry{TenantID: c.TenantID, Actor: "system", Action: "campaign.end_by",
		ObjectType: "campaign", ObjectID: c.ID, At: now})
	return e.Kick(ctx, c)
}

// unsettledWithin is how long after its cancel a campaign's unsent
// deliveries are still settled by the monitor.
const unsettledWithin = 7 * 24 * time.Hour

// settleUnsettled queues the settle of every campaign cancelled lately that
// still has deliveries pending or sending: the backstop for a settle lost
// (the queue unreachable at the cancel, or Redis emptied since). It leaves
// alone a campaign cancelled less than SendingStaleAfter and a minute ago,
// whose own settle may still be waiting for claims to go stale.
func (e *Engine) settleUnsettled(ctx context.Context, now time.Time) error {
	cs, err := e.Store.UnsettledCampaigns(ctx, now.Add(-unsettledWithin), now.Add(-e.set.SendingStaleAfter-time.Minute))
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := e.Settle(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// holding reports whether c's deliveries may be waiting in held tasks for
// the send window: it is closed, or opened less than StaleAfter ago. Their
// pending deliveries make no progress meanwhile, and re-driving them as
// lost would add a copy of them to Redis on every pass through the night.
// Past the campaign's end_by nothing is held (a task skips them at once).
func (e *Engine) holding(c campaign.Campaign, now time.Time) bool {
	if c.EndBy != nil && !now.Before(*c.EndBy) {
		return false
	}
	pol := e.windowPolicy(c.TenantID)
	return !pol.HoldUntil(c.Kind, now).IsZero() || !pol.HoldUntil(c.Kind, now.Add(-e.set.StaleAfter)).IsZero()
}

// redriveStale re-enqueues deliveries that have made no progress for
// StaleAfter: their task was lost. Claiming is idempotent, so one that was
// only slow costs an extra task, never an extra message.
func (e *Engine) redriveStale(ctx context.Context, c campaign.Campaign) error {
	older := e.Now().Add(-e.set.StaleAfter)
	for _, ch := range c.Channels {
		var after int64
		for {
			ids, err := e.Store.UnfinishedPage(ctx, c.ID, ch, after, older, 5000)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				break
			}
			if err := e.enqueueBatches(ctx, c, ch, ids, false); err != nil {
				return err
			}
			after = ids[len(ids)-1]
			if len(ids) < 5000 {
				break
			}
		}
	}
	return nil
}

// resolveOrWait looks up c's ambiguous sends (resolveAmbiguous) and
// reports whether some still wait. An error is logged and taken for
// waiting: it must not hold up the pass for the other campaigns.
func (e *Engine) resolveOrWait(ctx context.Context, c campaign.Campaign) bool {
	waiting, err := e.resolveAmbiguous(ctx, c)
	if err != nil && ctx.Err() == nil {
		e.Logger.Warn("looking up ambiguous sends", "campaign", c.ID, "err", err)
	}
	return waiting || err != nil
}

// resetStaleSending puts back to pending the campaign's deliveries claimed
// more than SendingStaleAfter ago and never recorded: their worker died.
// An SMS among them (or a push sent by SMS to a subscriber with no
// device) may have gone just before: when the SMS provider can look
// messages up, it is recorded unknown instead, and looked up
// (resolveAmbiguous). A cancelled campaign's are put back to be skipped.
func (e *Engine) resetStaleSending(ctx context.Context, c campaign.Campaign) error {
	// A claim is stamped by the store with the wall clock, not the
	// engine's (a test's or a replay's) clock, and is judged by it.
	return e.resetSendingBefore(ctx, c, time.Now().Add(-e.set.SendingStaleAfter))
}

// resetSendingBefore puts back to pending the campaign's deliveries
// claimed before olderThan and never recorded (see resetStaleSending).
func (e *Engine) resetSendingBefore(ctx context.Context, c campaign.Campaign, olderThan time.Time) error {
	r, ok := e.Store.(staleResetter)
	if !ok {
		return nil
	}
	lookup := ""
	if _, finds := e.SMS.(provider.SMSFinder); finds && c.State == campaign.StateRunning {
		lookup = e.SMS.Name()
	}
	n, err := r.ResetStaleSending(ctx, c.ID, olderThan, lookup, fallsBackToSMS(c))
	if err != nil {
		return err
	}
	if n > 0 {
		e.Logger.Warn("deliveries claimed by a worker that never finished put back to pending (an SMS: looked up first)",
			"campaign", c.ID, "deliveries", n)
	}
	return nil
}

// alertPurger is the store's retention of exposure-alert contact lists.
type alertPurger interface {
	PurgeAlertContacts(ctx context.Context, before time.Time) (int, error)
}

// PurgeAlertContacts cuts alerts finished more than AlertRetention ago from
// the people they reached, leaving only their counts.
func (e *Engine) PurgeAlertContacts(ctx context.Context) (int, error) {
	p, ok := e.Store.(alertPurger)
	if !ok {
		return 0, nil
	}
	n, err := p.PurgeAlertContacts(ctx, e.Now().Add(-e.set.AlertRetention))
	if n > 0 {
		e.Logger.Info("alert contact lists purged after retention", "alerts", n)
	}
	return n, err
}

// staleResetter is the store's recovery of deliveries a dead worker had
// claimed.
type staleResetter interface {
	ResetStaleSending(ctx context.Context, campaignID string, olderThan time.Time, lookup string, fallback bool) (int64, error)
}
