package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"outreach/campaign"
	"outreach/provider"
	"outreach/subscriber"
	"outreach/templates"
)

// job is one message about to go out for one claimed delivery.
type job struct {
	r        campaign.Recipient
	channel  campaign.Channel // the channel actually used (push may fall back to SMS)
	sms      provider.SMS
	pushes   []provider.Push
	segments int
	out      campaign.Outcome
	retry    bool
	retryIn  time.Duration
	// abandoned: not sent because its claim grew too old (see
	// claimDeadline); nothing is recorded for it.
	abandoned bool
	// slot is when a paced sender's slot for it was due (acquire), zero
	// when its sender is not paced message by message.
	slot time.Time
	// deadDevices is how many of its pushes met a dead token (removed).
	deadDevices int
}

func (e *Engine) handleSend(ctx context.Context, t *asynq.Task) error {
	var p sendPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("%w: bad send payload: %v", asynq.SkipRetry, err)
	}
	// The backlog counts deliveries waiting in Redis: a task leaves it when
	// it starts, once, not per asynq retry of it (or the count drifts below
	// what is really queued and fan-out stops being paced). Not when it
	// ends: a task whose worker is killed never ends, and asynq runs it
	// again after its lease as a retry, so its deliveries would stay
	// counted for good; a full backlog of them would stop the campaign's
	// fan-out. A batch held for the send window stays counted.
	n, _ := asynq.GetRetryCount(ctx)
	counted := p.Counted && n == 0
	leave := func() {
		if counted {
			e.leaveBacklog(ctx, p)
			counted = false
		}
	}
	c, err := e.campaign(ctx, p.CampaignID)
	if err != nil {
		leave()
		return err
	}
	if c.State.Final() {
		// Cancelled or completed: nothing more goes out, and nothing of
		// the campaign is paced any more. Its backlog count goes (leaving
		// it would write it back, below zero, for good).
		e.dropBacklog(ctx, c.ID)
		return nil
	}
	if c.State != campaign.StateRunning {
		// Paused: the deliveries stay pending in the store and a resume
		// re-drives them.
		leave()
		return nil
	}
	if done, err := e.holdOrExpire(ctx, c, p, counted); done || err != nil {
		return err
	}
	leave()
	// At provider rates claim just before the slots: the deliveries due in
	// the next maxAhead (one at 40/s or less, 25 at 1,000/s), and only
	// while fewer than pacedClaimers tasks of this campaign channel in
	// this process hold claims not yet handed to the provider. A delivery
	// is "sending" only while it is about to go out, so a killed worker
	// leaves few in flight, the rest of its batch stays pending, and the
	// reconciler can tell a dead claim from a slow one.
	// An alert claims a rate-limit chunk at a time: it takes slots ahead of
	// marketing, so its claims never wait long, it pays one store round trip
	// per twenty messages, and a killed worker leaves at most a chunk per
	// task claimed and unrecorded. Faster marketing claims its whole batch.
	step, gated := len(p.SubscriberIDs), false
	switch {
	case !c.Kind.Marketing():
		step = min(alertStep, max(e.set.SendConcurrency, 1))
	case e.precise(c, p.Channel):
		step, gated = e.pacedStep(c, p.Channel), true
	}
	putBack := false // some of the batch went back to pending unsent
	// handBack are the deliveries put back unsent with no retry of their
	// own (sending stopped): what a stopping worker hands on with the
	// part of the batch it has not claimed.
	var handBack []int64
	// The current chunk's place at the claim gate: left once its messages
	// are handed on (sendAll), at the next chunk, after the loop, or by the
	// deferred call on every other way out, a panic included (asynq
	// recovers the handler's).
	leaveGate := func() {}
	defer func() { leaveGate() }()
	for start := 0; start < len(p.SubscriberIDs); start += step {
		leaveGate() // the last chunk's, if any path kept it
		leaveGate = func() {}
		// A stopping worker claims nothing more: what it has not sent
		// goes to the next worker at once.
		if e.stopped() {
			e.handOn(ctx, c, p.Channel, append(handBack, p.SubscriberIDs[start:]...))
			return nil
		}
		if gated {
			var ok bool
			if leaveGate, ok = e.enterClaimGate(ctx, p.CampaignID+":"+string(p.Channel)); !ok {
				e.handOn(ctx, c, p.Channel, append(handBack, p.SubscriberIDs[start:]...)) // stopping
				return nil
			}
		}
		// Later chunks, and a paced one that waited for the gate, look
		// again at the campaign first.
		if start > 0 || gated {
			if e.stopped() {
				e.handOn(ctx, c, p.Channel, append(handBack, p.SubscriberIDs[start:]...))
				return nil
			}
			if c, err = e.campaign(ctx, p.CampaignID); err != nil {
				return err
			}
			if c.State != campaign.StateRunning {
				return nil
			}
			// The window closed or the campaign's end came meanwhile: the
			// rest (and what was put back) waits for the window or ends.
			if done, err := e.holdOrExpire(ctx, c, p, false); done || err != nil {
				return err
			}
		}
		ids := p.SubscriberIDs[start:min(start+step, len(p.SubscriberIDs))]
		claimed := time.Now()
		recips, err := e.Store.ClaimDeliveries(ctx, p.CampaignID, p.Channel, ids)
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		if len(recips) == 0 {
			continue
		}
		// A fast batch is claimed at once but sent and recorded BatchSize
		// at a time, so that a killed worker leaves at most that many per
		// task sent and unrecorded.
		for len(recips) > 0 {
			part := recips[:min(e.set.BatchSize, len(recips))]
			recips = recips[len(part):]
			jobs, err := e.prepare(ctx, c, part)
			if err != nil {
				// Put the claim back so that a retry or the reconciler finds them.
				e.putBack(ctx, append(part, recips...))
				return err
			}
			abandoned := e.sendAll(ctx, c, jobs, claimed.Add(e.claimDeadline()), leaveGate)
			for _, j := range jobs {
				if j.out.Status == campaign.StatusPending {
					putBack = true
					if !j.retry {
						handBack = append(handBack, j.r.SubscriberID)
					}
				}
			}
			if err := e.finish(ctx, c, jobs); err != nil {
				e.putBack(ctx, recips)
				return err
			}
			if abandoned {
				// This worker was held up (starved of CPU, the store or
				// the rate): what it had not sent goes back to pending,
				// while it is still surely its own, or else stays for
				// the monitor to reset.
				if time.Since(claimed) < e.set.SendingStaleAfter*3/4 {
					var rest []campaign.Recipient
					for _, j := range jobs {
						if j.abandoned {
							rest = append(rest, j.r)
						}
					}
					e.putBack(ctx, append(rest, recips...))
				}
				return nil
			}
		}
	}
	leaveGate()
	// Sending stopped (at the window's close or the campaign's end, say) and
	// put deliveries back: they wait for the window or end with the
	// campaign. The whole batch is held: its sent ones are claimed no more.
	if putBack {
		if e.stopped() {
			// Put back because this worker is stopping: the next one
			// takes them (those with a retry of their own wait for it).
			e.handOn(ctx, c, p.Channel, handBack)
			return nil
		}
		if _, err := e.holdOrExpire(ctx, c, p, false); err != nil {
			return err
		}
	}
	return nil
}

// holdOrExpire handles a marketing batch that may not go out now. Past the
// campaign's end_by, or outside the send window when the campaign ends
// before it reopens, its pending deliveries are skipped. Outside the window
// the batch waits for it to open, unclaimed, without counting as a failure,
// and still counted in the campaign's backlog, so that fan-out does not fill
// Redis with the audience through a night. counted says the batch is still
// in the backlog's count (a task's first start); it leaves the count here
// unless it is held. done reports that the batch was dealt with (nothing
// may be sent now).
func (e *Engine) holdOrExpire(ctx context.Context, c campaign.Campaign, p sendPayload, counted bool) (done bool, err error) {
	now := e.Now()
	hold, expired := e.blocked(c, now)
	if hold.IsZero() && expired == "" {
		return false, nil
	}
	if expired != "" {
		if counted {
			e.leaveBacklog(ctx, p)
		}
		return true, e.expire(ctx, c, p, expired)
	}
	held := sendPayload{CampaignID: p.CampaignID, Channel: p.Channel, SubscriberIDs: p.SubscriberIDs, Counted: p.Counted}
	task, err := newSendTask(held)
	if err != nil {
		if counted {
			e.leaveBacklog(ctx, p)
		}
		return true, err
	}
	if held.Counted && !counted {
		// Back into the count: the held task leaves it when it starts.
		if err := e.Queue.Redis.IncrBy(ctx, backlogKey(c.ID), int64(len(held.SubscriberIDs))).Err(); err != nil {
			return true, fmt.Errorf("backlog: %w", err)
		}
	}
	// Re-check at least every HoldRecheck rather than sleeping until the
	// computed opening: the policy (or the clock) may change meanwhile.
	wait := min(hold.Sub(now), e.set.HoldRecheck)
	if _, err := e.client.EnqueueContext(ctx, task, asynq.Queue(queueFor(c.Kind)), asynq.ProcessIn(wait)); err != nil {
		if held.Counted {
			e.leaveBacklog(context.WithoutCancel(ctx), held)
		}
		return true, fmt.Errorf("hold for send window: %w", err)
	}
	return true, nil
}

// dropBacklog deletes a finished campaign's backlog count.
func (e *Engine) dropBacklog(ctx context.Context, campaignID string) {
	if err := e.Queue.Redis.Del(context.WithoutCancel(ctx), backlogKey(campaignID)).Err(); err != nil {
		e.Logger.Warn("backlog", "campaign", campaignID, "err", err)
	}
}

// leaveBacklogScript decrements KEYS[1] by ARGV[1] only while it exists.
var leaveBacklogScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('DECRBY', KEYS[1], ARGV[1])
end
return 0`)

// leaveBacklog takes p's deliveries out of the campaign's backlog count,
// if it still has one: a task that read its campaign running just before a
// cancel settled it (and deleted the count) must not write it back, below
// zero, for good.
func (e *Engine) leaveBacklog(ctx context.Context, p sendPayload) {
	if err := leaveBacklogScript.Run(ctx, e.Queue.Redis, []string{backlogKey(p.CampaignID)}, len(p.SubscriberIDs)).Err(); err != nil {
		e.Logger.Warn("backlog", "campaign", p.CampaignID, "err", err)
	}
}

// blocked says why a message of c may not go out at now: expired (the skip
// reason) past the campaign's end_by, or outside the send window when the
// campaign ends before it reopens; else hold, the window's next opening.
// Both zero: it may go out.
func (e *Engine) blocked(c campaign.Campaign, now time.Time) (hold time.Time, expired campaign.SkipReason) {
	if !c.Kind.Marketing() && !e.Policy.AlertsRespectWindow {
		return time.Time{}, ""
	}
	if c.EndBy != nil && !now.Before(*c.EndBy) {
		return time.Time{}, campaign.SkipCampaignEnded
	}
	pol, err := e.sendPolicy(c)
	if err != nil {
		// The tenant's own window is not known yet: hold the batch a
		// moment; never skip it on the deployment's window.
		return now.Add(5 * policyTTL), ""
	}
	hold = pol.HoldUntil(c.Kind, now)
	if !hold.IsZero() && c.EndBy != nil && hold.After(*c.EndBy) {
		return time.Time{}, campaign.SkipQuietHoursExpired
	}
	return hold, ""
}

// sendable reports whether a message of c may go out now: inside the send
// window and before the campaign's end.
func (e *Engine) sendable(c campaign.Campaign) bool {
	hold, expired := e.blocked(c, e.Now())
	return hold.IsZero() && expired == ""
}

// claimDeadline is how long after its claim a delivery may still be sent.
// The monitor takes a delivery "sending" for longer than SendingStaleAfter
// for a dead worker's and puts it back to pending, for another worker to
// send: a live but held-up worker must not send it after that, or the
// subscriber gets it twice. Half the period leaves the other half for a
// send already on its way (a provider call is bounded well below that).
func (e *Engine) claimDeadline() time.Duration { return e.set.SendingStaleAfter / 2 }

// expire skips the batch's pending deliveries: their campaign has ended, or
// ends before the window reopens.
func (e *Engine) expire(ctx context.Context, c campaign.Campaign, p sendPayload, why campaign.SkipReason) error {
	recips, err := e.Store.ClaimDeliveries(ctx, c.ID, p.Channel, p.SubscriberIDs)
	if err != nil {
		return err
	}
	outs := make([]campaign.Outcome, len(recips))
	for i, r := range recips {
		outs[i] = e.skip(r, p.Channel, why)
	}
	return e.Store.RecordOutcomes(ctx, outs)
}

func (e *Engine) putBack(ctx context.Context, recips []campaign.Recipient) {
	if len(recips) == 0 {
		return
	}
	outs := make([]campaign.Outcome, len(recips))
	for i, r := range recips {
		outs[i] = campaign.Outcome{CampaignID: r.CampaignID, SubscriberID: r.SubscriberID, Channel: r.Channel,
			Status: campaign.StatusPending, At: e.Now(), Unattempted: true}
	}
	if err := e.Store.RecordOutcomes(context.WithoutCancel(ctx), outs); err != nil {
		e.Logger.Error("put back claimed deliveries", "campaign", recips[0].CampaignID, "err", err)
	}
}

func (e *Engine) skip(r campaign.Recipient, ch campaign.Channel, why campaign.SkipReason) campaign.Outcome {
	e.Metrics.Skips.WithLabelValues(string(ch), string(why)).Inc()
	return e.skipped(r, why)
}

// skipped is the outcome of a skip, not counted in the metrics (render's:
// a test send renders too, and writes no delivery).
func (e *Engine) skipped(r campaign.Recipient, why campaign.SkipReason) campaign.Outcome {
	return campaign.Outcome{CampaignID: r.CampaignID, SubscriberID: r.SubscriberID, Channel: r.Channel,
		Status: campaign.StatusSkipped, SkipReason: why, At: e.Now()}
}

// prepare applies the policy and renders every message of a batch.
func (e *Engine) prepare(ctx context.Context, c campaign.Campaign, recips []campaign.Recipient) ([]*job, error) {
	pol, err := e.sendPolicy(c)
	if err != nil {
		return nil, err
	}
	// skipFor says why r is skipped before the cap is asked, "" if it is
	// not: such a skip takes no place under the cap.
	// - An audience of subscribers who have not installed the app is
	//   checked again at the claim: one who installed since fan-out chose
	//   them is not urged to install it.
	// - A number stored before it could be checked (imported before the
	//   mobile-only rule, or under a prefix since retired) is not sent an
	//   SMS.
	// - A push to a subscriber with no device (and no SMS to fall back to)
	//   is skipped as such, whatever the cap.
	notInstalledAudience := c.Kind == campaign.KindInstallPromotion && c.Audience.Installed != nil && !*c.Audience.Installed
	skipFor := func(r campaign.Recipient) campaign.SkipReason {
		noDevice := r.Channel == campaign.ChannelPush && len(e.pushDevices(c, r.Devices)) == 0
		switch {
		case r.OptedOut && pol.SkipsOptedOut(c.Kind):
			return campaign.SkipOptedOut
		case r.Installed && notInstalledAudience:
			return campaign.SkipAlreadyInstalled
		case noDevice && !fallsBackToSMS(c):
			return campaign.SkipNoDevice
		}
		if r.Channel == campaign.ChannelSMS || noDevice {
			if _, err := subscriber.NormalizeMSISDN(r.MSISDN); err != nil {
				return campaign.SkipInvalidNumber
			}
		}
		return ""
	}
	skips := make([]campaign.SkipReason, len(recips))
	for i, r := range recips {
		skips[i] = skipFor(r)
	}
	var capped campaign.CapResult
	if pol.Capped(c.Kind) {
		ids := make([]int64, 0, len(recips))
		for i, r := range recips {
			if skips[i] == "" {
				ids = append(ids, r.SubscriberID)
			}
		}
		now := e.Now()
		var err error
		capped, err = e.Store.ApplyCap(ctx, campaign.CapCheck{TenantID: c.TenantID, CampaignID: c.ID,
			Channel: recips[0].Channel, SubscriberIDs: ids, Since: now.Add(-pol.Cap.Period),
			// A claim's stamp is the store's wall clock (see resetStaleSending).
			Limit: pol.Cap.Count, At: now, StaleBefore: time.Now().Add(-e.set.SendingStaleAfter)})
		if err != nil {
			return nil, fmt.Errorf("frequency cap: %w", err)
		}
	}
	jobs := make([]*job, 0, len(recips))
	for i, r := range recips {
		j := &job{r: r, channel: r.Channel}
		jobs = append(jobs, j)
		switch {
		case skips[i] != "":
			j.out = e.skip(r, r.Channel, skips[i])
			continue
		case slices.Contains(capped.Capped, r.SubscriberID):
			j.out = e.skip(r, r.Channel, campaign.SkipFrequencyCap)
			continue
		case slices.Contains(capped.Held, r.SubscriberID):
			// At the cap only with another campaign's message still on its
			// way: if that one fails, this one may go. Ask again later.
			j.out = campaign.Outcome{CampaignID: r.CampaignID, SubscriberID: r.SubscriberID, Channel: r.Channel, At: e.Now()}
			e.retryLater(j, e.set.RetryBase, capWaitCode)
			continue
		}
		if err := e.render(ctx, c, pol, j); err != nil {
			var te *templates.Error
			if !errors.As(err, &te) || !te.Rendering {
				return nil, err
			}
			// The template fails on this subscriber's values (a builtin
			// such as slice on a short name): this delivery fails, for
			// good, and the rest of the batch goes.
			j.out = campaign.Outcome{CampaignID: r.CampaignID, SubscriberID: r.SubscriberID, Channel: r.Channel,
				Status: campaign.StatusFailed, ErrorCode: campaign.ErrorTemplate, At: e.Now()}
			e.Logger.Warn("template cannot be rendered for a subscriber", "campaign", c.ID,
				"subscriber", subscriber.Mask(r.MSISDN), "reason", te.Reason)
			continue
		}
		if j.out.Status == campaign.StatusSkipped {
			e.Metrics.Skips.WithLabelValues(string(r.Channel), string(j.out.SkipReason)).Inc()
		}
	}
	return jobs, nil
}

// render builds the provider messages of one job, or marks it skipped.
func (e *Engine) render(ctx context.Context, c campaign.Campaign, pol campaign.Policy, j *job) error {
	r := j.r
	vars := templates.Vars{Name: nameOf(r.Attributes), Region: r.Region, Attributes: r.Attributes}
	if r.ReferralCode != "" {
		vars.InstallLink = e.set.InstallBaseURL + r.ReferralCode
	}
	if c.Reward != nil {
		vars.RewardMB = c.Reward.DataMB
	}
	if r.Channel == campaign.ChannelPush {
		devices := e.pushDevices(c, r.Devices)
		if len(devices) == 0 {
			if !fallsBackToSMS(c) {
				j.out = e.skipped(r, campaign.SkipNoDevice)
				return nil
			}
			j.channel = campaign.ChannelSMS // fallback, recorded on the push delivery
		} else {
			ct, err := e.template(ctx, c.TenantID, c.TemplateFor(campaign.ChannelPush, r.Locale))
			if err != nil {
				return err
			}
			body, err := ct.body.Render(vars)
			if err != nil {
				return err
			}
			title := ""
			if ct.title != nil {
				if title, err = ct.title.Render(vars); err != nil {
					return err
				}
			}
			var data map[string]string
			for k, t := range ct.data {
				if data == nil {
					data = make(map[string]string, len(ct.data))
				}
				if data[k], err = t.Render(vars); err != nil {
					return err
				}
			}
			if n := provider.PushPayloadBytes(title, body, data); n > provider.MaxPushPayloadBytes {
				// The services would refuse it (PayloadTooLarge): fail it
				// here, as a template that cannot be rendered for this
				// subscriber.
				return &templates.Error{Template: ct.t.Name, Rendering: true, Reason: fmt.Sprintf(
					"the push payload is %d bytes, over the %d APNs and FCM take", n, provider.MaxPushPayloadBytes)}
			}
			// A push sent again (its worker died before recording it) carries
			// the same collapse id: the device shows it once.
			collapse := c.ID + "." + strconv.FormatInt(r.SubscriberID, 10)
			for _, d := range devices {
				j.pushes = append(j.pushes, provider.Push{Platform: string(d.Platform), Token: d.Token, Title: title,
					Body: body, Data: data, Urgent: !c.Kind.Marketing(), TTL: time.Hour, CollapseID: collapse})
			}
			return nil
		}
	}
	ct, err := e.template(ctx, c.TenantID, c.TemplateFor(campaign.ChannelSMS, r.Locale))
	if err != nil {
		return err
	}
	body, err := ct.body.Render(vars)
	if err != nil {
		return err
	}
	text := pol.DecorateSMS(c.Kind, body, ct.t.Transliterate)
	count := templates.CountSMS(text)
	if count.Characters > templates.MaxSMSCharacters {
		// The provider would refuse it (Twilio's 21617): fail it here,
		// as a template that cannot be rendered for this subscriber.
		return &templates.Error{Template: ct.t.Name, Rendering: true, Reason: fmt.Sprintf(
			"the message is %d characters, over the %d an SMS may have", count.Characters, templates.MaxSMSCharacters)}
	}
	j.segments = count.Segments
	callback := e.set.StatusCallback // a test send has no delivery to name
	if r.SubscriberID > 0 {
		callback = campaign.CallbackURL(callback,
			campaign.DeliveryKey{CampaignID: r.CampaignID, SubscriberID: r.SubscriberID, Channel: r.Channel})
	}
	j.sms = provider.SMS{To: r.MSISDN, Body: text, StatusCallback: callback, ValidityPeriod: time.Hour}
	return nil
}

// sendAll sends the prepared jobs within the shared rate limits, with
// bounded concurrency. At provider rates (up to a thousand a second) every
// message takes a slot of its own and waits for it (acquire), so that no
// worker's late wake-up can bunch messages past the limit. Faster limits
// reserve in chunks and pace them locally. No
// message goes out after deadline (see claimDeadline): sendAll reports
// whether it left some unsent for that, marked abandoned.
func (e *Engine) sendAll(ctx context.Context, c campaign.Campaign, jobs []*job, deadline time.Time, handedOn func()) (abandoned bool) {
	urgent := !c.Kind.Marketing()
	pending := make([]*job, 0, len(jobs))
	for _, j := range jobs {
		if j.out.Status == "" {
			pending = append(pending, j)
		}
	}
	// SendConcurrency goroutines take the messages as they come due: a
	// goroutine per message would grow a new stack through the provider
	// client's deep calls every time.
	work := make(chan *job)
	var (
		wg      sync.WaitGroup
		late    atomic.Bool
		stopped bool // paused, cancelled or shutting down
	)
	putBack := func(rest []*job) {
		for _, j := range rest {
			j.out = campaign.Outcome{CampaignID: j.r.CampaignID, SubscriberID: j.r.SubscriberID,
				Channel: j.r.Channel, Status: campaign.StatusPending, At: e.Now(), Unattempted: true}
		}
	}
	for range min(e.set.SendConcurrency, len(pending)) {
		wg.Go(func() {
			for j := range work {
				if time.Now().After(deadline) { // it waited for a free hand too long
					j.abandoned = true
					late.Store(true)
					continue
				}
				if e.handedLate(j) {
					// It reached this hand past its slot's lateness (a
					// paced task claims no more than it has hands, so only
					// a starved scheduler does that): sent now, it could
					// fall in one second with the messages of the slots
					// after it. It takes a fresh slot.
					e.Metrics.SlotsMissed.WithLabelValues(string(j.channel)).Inc()
					ok, missed := e.acquire(ctx, c, j, urgent, deadline)
					if missed {
						j.abandoned = true
						late.Store(true)
						continue
					}
					if !ok {
						putBack([]*job{j})
						continue
					}
				}
				e.sendOne(ctx, c, j)
			}
		})
	}
	// Slots are reserved a chunk at a time: one at provider rates paced
	// message by message, else about 10 ms of the rate (20 to 100), one
	// trip to Redis each.
	chunk := 20
	if len(pending) > 0 {
		_, rate := e.senderKeyFor(pending[0].channel)
		if c.RatePerSecond > 0 && c.Kind.Marketing() {
			rate = min(rate, c.RatePerSecond)
		}
		chunk = min(max(rate/100, 20), 100)
		if e.precise(c, pending[0].channel) {
			chunk = 1
		}
	}
	for start := 0; start < len(pending); start += chunk {
		part := pending[start:min(start+chunk, len(pending))]
		var due time.Time
		var interval time.Duration
		var ok bool
		if chunk == 1 {
			// Waited for: sent as soon as it is handed on.
			var missed bool
			if ok, missed = e.acquire(ctx, c, part[0], urgent, deadline); missed {
				for _, j := range pending[start:] {
					j.abandoned = true
				}
				abandoned = true
				break
			}
		} else {
			due, interval, ok = e.reserve(ctx, c, part, urgent)
		}
		if !ok {
			// Paused, cancelled or shutting down: what was not sent goes
			// back to pending for a resume to re-drive.
			putBack(pending[start:])
			break
		}
		for i, j := range part {
			if chunk > 1 && !e.sleepWhileRunning(ctx, c.ID, due.Add(time.Duration(i)*interval)) {
				putBack(pending[start+i:])
				stopped = true
				break
			}
			if time.Now().After(deadline) {
				for _, j := range pending[start+i:] {
					j.abandoned = true
				}
				abandoned = true
				break
			}
			work <- j
		}
		if abandoned || stopped {
			break
		}
	}
	close(work)
	// Every message is with a sender goroutine or put back: the next
	// paced task may claim while these calls are answered.
	handedOn()
	wg.Wait()
	return abandoned || late.Load()
}

// pacedClaimers is how many paced tasks of one campaign channel may, in
// one process, hold claimed deliveries that are not yet with the provider:
// one sending its slots while the next claims, so the rate is kept, and no
// more, however many of the campaign's tasks run at once.
const pacedClaimers = 2

// pacedStep is how many deliveries a paced task claims at a time: those
// due within maxAhead at the rate that binds, at least one, and no more
// than the task has provider calls in flight (so that handing them on
// never waits for an answer) nor than it sends and records at a time.
// Claiming and recording a chunk costs the store one transaction each
// instead of one per message.
func (e *Engine) pacedStep(c campaign.Campaign, ch campaign.Channel) int {
	_, rate := e.senderKeyFor(ch)
	if c.RatePerSecond > 0 {
		rate = min(rate, c.RatePerSecond)
	}
	return max(1, min(rate*int(maxAhead/time.Millisecond)/1000, e.set.SendConcurrency, e.set.BatchSize))
}

// namedSems holds counting semaphores by name, each removed when its last
// user leaves (a campaign's are used only while it sends).
type namedSems struct {
	mu sync.Mutex
	m  map[string]*namedSem
}

type namedSem struct {
	slots chan struct{}
	users int
}

// join counts a user of key's semaphore of size places, creating it if
// needed; done undoes that, removing it after its last user.
func (n *namedSems) join(key string, size int) (sem chan struct{}, done func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[string]*namedSem{}
	}
	s := n.m[key]
	if s == nil {
		s = &namedSem{slots: make(chan struct{}, size)}
		n.m[key] = s
	}
	s.users++
	return s.slots, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if s.users--; s.users == 0 {
			delete(n.m, key)
		}
	}
}

// enterClaimGate waits for one of the pacedClaimers places of key; ok is
// false when the context ends or the engine stops first. leave is safe to
// call more than once, and when ok is false.
func (e *Engine) enterClaimGate(ctx context.Context, key string) (leave func(), ok bool) {
	slots, done := e.claimGates.join(key, pacedClaimers)
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		done()
		return func() {}, false
	case <-e.stopping:
		done()
		return func() {}, false
	}
	var once sync.Once
	return func() { once.Do(func() { <-slots; done() }) }, true
}

// alertStep is how many deliveries an alert claims, sends and records at
// a time.
const alertStep = 20

// preciseRate is the fastest limit paced message by message.
const preciseRate = 1000

// precise reports whether sends on ch are paced message by message.
func (e *Engine) precise(c campaign.Campaign, ch campaign.Channel) bool {
	_, rate := e.senderKeyFor(ch)
	return rate <= preciseRate || (c.RatePerSecond > 0 && c.RatePerSecond <= preciseRate && c.Kind.Marketing())
}

// senderKeyFor names the rate-limit key and rate of a channel.
func (e *Engine) senderKeyFor(ch campaign.Channel) (string, int) {
	if ch == campaign.ChannelSMS {
		return "sms:" + e.set.SMSSender, e.set.SMSRate
	}
	return "push", e.set.PushRate
}

// senderKey names the rate-limit key and rate of a batch's channel.
func (e *Engine) senderKey(part []*job) (string, int) {
	for _, j := range part {
		if j.channel == campaign.ChannelSMS {
			return "sms:" + e.set.SMSSender, e.set.SMSRate
		}
	}
	return "push", e.set.PushRate
}

func (e *Engine) units(j *job) int {
	if j.channel == campaign.ChannelSMS {
		return max(j.segments, 1)
	}
	return max(len(j.pushes), 1)
}

// acquire takes one message's slot in the campaign's rate and then in the
// sender's and waits for it: the message may go out when it answers ok.
// It gives up (ok false) if the campaign stops running meanwhile, and
// answers missed if it gave up a late slot after deadline. A campaign's
// slot, and a sender's above exactRate, is reserved up to maxAhead before
// it is due, so that the next caller can reserve the one after while this
// one waits: slots follow one another whatever the timers' slack, and the
// rate is reached. Up to exactRate an ordinary sender slot is taken only
// when due, or up to slotBehind after (an alert's, never refused, may be
// ahead). The sender's slot is
// reserved only once the campaign's has come. A paced sender's slot that
// the wait overshot by more than lateness is given up for the next free one
// (an alert's too, which moves its priority hold on marketing on by as
// much): a message is handed to its sender goroutine no earlier than its
// slot and less than a third of an interval after it (2 ms above 166/s), and one
// that reaches the goroutine later than that (a starved scheduler) takes a
// fresh slot there (handedLate), so a limit of R/s is not exceeded by more
// than one message in any second (by rate × 2 ms above 166/s). One
// goroutine per process reserves on a key at a time.
func (e *Engine) acquire(ctx context.Context, c campaign.Campaign, j *job, urgent bool, deadline time.Time) (ok, missed bool) {
	if c.RatePerSecond > 0 && !urgent {
		at, ok := e.slot(ctx, c, "campaign:"+c.ID, "campaign:"+c.ID, c.RatePerSecond, 1, false, maxAhead, 0)
		if !ok || !e.sleepUntil(ctx, c.ID, at) {
			return false, false
		}
	}
	key, rate := e.senderKey([]*job{j})
	lock := key
	if urgent {
		lock += ":urgent"
	}
	// Up to exactRate a sender's slot is taken only once it is due (an
	// ordinary reservation is refused until then, and waited for): a slot
	// is then the moment its message is ready, so a late wake-up delays the
	// slots after it instead of bunching with them. Faster, the timers'
	// slack is a good part of an interval, and slots are reserved ahead.
	// Such a slot may also have come a little before its caller did (the
	// wake-up's slack, the round trip to Redis): the caller still gets it,
	// up to slotBehind after it, so that the slots keep the rate's timeline
	// instead of each starting from its late caller.
	ahead, behind := maxAhead, time.Duration(0)
	if rate <= exactRate {
		ahead, behind = 0, slotBehind(rate)
	}
	for {
		at, ok := e.slot(ctx, c, lock, key, rate, e.units(j), urgent, ahead, behind)
		if !ok || !e.sleepUntil(ctx, c.ID, at) {
			return false, false
		}
		if rate > preciseRate {
			return true, false
		}
		if time.Since(at) <= lateness(rate) {
			j.slot = at
			return true, false
		}
		e.Metrics.SlotsMissed.WithLabelValues(string(j.channel)).Inc()
		if time.Now().After(deadline) {
			return false, true
		}
	}
}

// sleepUntil is sleepWhileRunning, then the last millisecond too: a paced
// message never goes before its slot.
func (e *Engine) sleepUntil(ctx context.Context, id string, at time.Time) bool {
	if !e.sleepWhileRunning(ctx, id, at) {
		return false
	}
	if d := time.Until(at); d > 0 {
		time.Sleep(d)
	}
	return true
}

// handedLate reports whether j, paced message by message, reached a sender
// goroutine later than its slot's lateness (see acquire).
func (e *Engine) handedLate(j *job) bool {
	if j.slot.IsZero() {
		return false
	}
	_, rate := e.senderKey([]*job{j})
	return time.Since(j.slot) > lateness(rate)
}

// lateness is how long after its slot a paced sender's message may still
// be handed on: a third of an interval, leaving two thirds for the
// hand-off to the provider (building the request, the connection, a
// starved scheduler), so that a second holds no more than one message over
// the limit; but not less than the timers' 2 ms granularity, above which
// (above 166/s) a second may hold up to rate × 2 ms over it.
func lateness(rate int) time.Duration {
	return max(time.Second/3/time.Duration(rate), 2*time.Millisecond)
}

// exactRate is the fastest sender limit whose slots are taken only when
// due (see acquire).
const exactRate = 250

// slotBehind is how long after its slot a caller of a sender at exactRate
// or less still gets that slot: enough for a wake-up's usual slack and the
// round trip to Redis (under 1 ms here), which at 100 to 250 a second cost
// a tenth to a fifth of the rate when each slot began at its caller's
// arrival; at most 2 ms, and half the lateness, so that a message's hand-off
// to the provider keeps most of its margin within the interval (a second
// holds no more than one message over the limit while hand-off and slot
// lag stay within an interval together).
func slotBehind(rate int) time.Duration {
	return min(lateness(rate)/2, 2*time.Millisecond)
}

// slot reserves units on key at rate, under the process's lock named lock,
// trying again while the key is held further than ahead ahead; the slot
// may be up to behind in the past (see Limiter.Reserve). The slot is timed
// from the limiter's answer: if anything, a little late.
func (e *Engine) slot(ctx context.Context, c campaign.Campaign, lock, key string, rate, units int, urgent bool, ahead, behind time.Duration) (due time.Time, ok bool) {
	unlock := e.lockKey(lock)
	defer unlock()
	for {
		if !e.stillRunning(ctx, c.ID) {
			return time.Time{}, false
		}
		r, got, wait, err := e.limiter.Reserve(ctx, key, rate, units, ahead, behind, urgent)
		if err != nil || !got {
			// Refused for being too far ahead, it may reserve in wait -
			// ahead; refused while an alert holds the sender, not before
			// wait: a fifth of ahead at least, so as not to poll Redis.
			sleepCtx(ctx, clampWait(max(wait-ahead, ahead/5), err))
			continue
		}
		return time.Now().Add(r.Delay), true
	}
}

// lockKey locks the process's mutex named key and answers its unlock.
func (e *Engine) lockKey(key string) (unlock func()) {
	slots, done := e.keyLocks.join(key, 1)
	slots <- struct{}{}
	return func() {
		<-slots
		done()
	}
}

// reserve waits for room in the sender's and the campaign's rate for part;
// it answers when the first message is due and the spacing after it. It
// gives up (ok false) if the campaign stops running while it waits.
func (e *Engine) reserve(ctx context.Context, c campaign.Campaign, part []*job, urgent bool) (due time.Time, interval time.Duration, ok bool) {
	key, rate := e.senderKey(part)
	units := 0
	for _, j := range part {
		units += e.units(j)
	}
	for {
		if ctx.Err() != nil || e.stopped() {
			return time.Time{}, 0, false
		}
		if !e.stillRunning(ctx, c.ID) {
			return time.Time{}, 0, false
		}
		now := time.Now()
		var campDelay time.Duration
		if c.RatePerSecond > 0 && !urgent {
			r, ok, wait, err := e.limiter.Reserve(ctx, "campaign:"+c.ID, c.RatePerSecond, len(part), maxAhead, 0, false)
			if err != nil || !ok {
				sleepCtx(ctx, clampWait(wait, err))
				continue
			}
			campDelay = r.Delay
		}
		r, ok, wait, err := e.limiter.Reserve(ctx, key, rate, units, maxAhead, 0, urgent)
		if err != nil || !ok {
			sleepCtx(ctx, clampWait(wait, err))
			continue
		}
		interval = r.Interval * time.Duration(units) / time.Duration(len(part))
		delay := max(r.Delay, campDelay)
		if c.RatePerSecond > 0 && !urgent {
			interval = max(interval, time.Second/time.Duration(c.RatePerSecond))
		}
		return now.Add(delay), interval, true
	}
}

// maxAhead is how far ahead of its slot marketing may reserve: an alert's
// first slot comes after what marketing holds (the limit holds for both),
// so this bounds how long an alert waits for it.
const maxAhead = 25 * time.Millisecond

// stillRunning reports whether the campaign is running, may send now (see
// sendable) and the engine is not stopping; the campaign is read through the cache, so a pause or a
// cancel is seen within its 250 ms.
func (e *Engine) stillRunning(ctx context.Context, id string) bool {
	if ctx.Err() != nil || e.stopped() {
		return false
	}
	cur, err := e.campaign(ctx, id)
	if err != nil {
		return true
	}
	return cur.State == campaign.StateRunning && e.sendable(cur)
}

// sleepWhileRunning waits until at, a message's reserved slot, and answers
// false as soon as the campaign stops running or the engine stops: an
// alert may hold slots seconds ahead behind other alerts, and a cancel must
// stop it within a second, not after every slot it holds.
func (e *Engine) sleepWhileRunning(ctx context.Context, id string, at time.Time) bool {
	for {
		if !e.stillRunning(ctx, id) {
			return false
		}
		d := time.Until(at)
		if d <= time.Millisecond {
			return true
		}
		time.Sleep(min(d, 100*time.Millisecond))
	}
}

func clampWait(wait time.Duration, err error) time.Duration {
	if err != nil {
		return 200 * time.Millisecond
	}
	return min(max(wait, time.Millisecond), 200*time.Millisecond)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// sendOne makes the provider call(s) of one job and classifies the result.
func (e *Engine) sendOne(ctx context.Context, c campaign.Campaign, j *job) {
	now := e.Now()
	j.out = campaign.Outcome{CampaignID: j.r.CampaignID, SubscriberID: j.r.SubscriberID, Channel: j.r.Channel, At: now}
	var (
		res  provider.Result
		err  error
		name string
	)
	if j.channel == campaign.ChannelSMS {
		name = e.SMS.Name()
		if ok, wait := e.breakers.allow(name); !ok {
			e.retryLater(j, wait, breakerOpenCode)
			return
		}
		start := time.Now()
		res, err = e.SMS.SendSMS(ctx, j.sms)
		e.Metrics.SendTime.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if res.Segments == 0 {
			res.Segments = j.segments
		}
	} else {
		res, name, err = e.sendPushes(ctx, j)
		if err != nil && len(j.pushes) > 0 && j.deadDevices == len(j.pushes) && fallsBackToSMS(c) {
			// Every device's token was dead, and is removed: the subscriber
			// has no device now, and the campaign asked for an SMS then.
			// The next attempt renders it (with its own slot in the SMS
			// sender's rate), as for a subscriber who never had a device.
			j.out.Provider = name
			e.Metrics.Messages.WithLabelValues(string(j.channel), name, provider.ClassOf(err).String()).Inc()
			e.retryLater(j, 0, provider.CodeOf(err))
			return
		}
	}
	j.out.Provider = name
	class := provider.ClassOf(err)
	// A push's devices are recorded in the breakers one by one as they
	// are tried (sendPushes); an SMS is recorded here.
	sms := j.channel == campaign.ChannelSMS
	if err == nil {
		if sms {
			e.breakers.record(name, false)
		}
		j.out.Status, j.out.ProviderMessageID, j.out.Segments = campaign.StatusSent, res.MessageID, res.Segments
		e.Metrics.Messages.WithLabelValues(string(j.channel), name, "sent").Inc()
		return
	}
	j.out.ErrorCode = provider.CodeOf(err)
	if j.out.ErrorCode == breakerOpenCode {
		// No device was tried: not a failure of the provider's (counting
		// one would keep its breaker open for as long as pushes come).
		e.retryLater(j, provider.RetryAfterOf(err), j.out.ErrorCode)
		return
	}
	if sms {
		e.breakers.record(name, failed(err))
	}
	e.Metrics.Messages.WithLabelValues(string(j.channel), name, class.String()).Inc()
	switch class {
	case provider.Transient:
		if ok, held := e.failLog.allow(name, time.Now()); ok {
			// Provider errors quote no whole number (RedactNumbers).
			e.Logger.Warn("provider failing: the send is retried", "provider", name, "channel", j.channel,
				"code", j.out.ErrorCode, "err", subscriber.RedactNumbers(err.Error()), "similar_failures_not_logged", held)
		}
		e.retryLater(j, provider.RetryAfterOf(err), j.out.ErrorCode)
	case provider.Ambiguous:
		// It may have gone (and be billed): its segments count as a sent
		// message's do.
		j.out.Status, j.out.Segments = campaign.StatusUnknown, j.segments
	case provider.OptedOut:
		j.out.Status = campaign.StatusFailed
		// Twilio's 21610: the recipient replied STOP to the sender. The
		// senders are the deployment's, shared by its tenants, so the number
		// is opted out in every tenant, as an inbound STOP is.
		if _, err := e.Subscribers.OptOutEverywhere(context.WithoutCancel(ctx), j.r.MSISDN, true); err != nil {
			e.Logger.Error("opt out after provider refusal", "subscriber", subscriber.Mask(j.r.MSISDN), "err", err)
		}
	default:
		j.out.Status = campaign.StatusFailed
	}
	if class != provider.Transient {
		e.Logger.Debug("send failed", "campaign", c.ID, "channel", j.channel, "subscriber",
			subscriber.Mask(j.r.MSISDN), "class", class.String(), "code", j.out.ErrorCode)
	}
}

// sendPushes sends to every device of the subscriber; the delivery is sent
// if any device took it. Dead tokens are removed.
func (e *Engine) sendPushes(ctx context.Context, j *job) (provider.Result, string, error) {
	var (
		best    provider.Result
		lastErr error
		errName string // the provider of lastErr
		// breakerErr: a device skipped for its provider's open breaker.
		breakerErr  error
		breakerName string
		sentName    string // the provider that took the message first
		sent        bool
	)
	for _, m := range j.pushes {
		p := e.Push[subscriber.Platform(m.Platform)]
		if p == nil {
			lastErr = &provider.Error{Provider: "push", Class: provider.Permanent, Code: "no_provider",
				Message: "no push provider for platform " + m.Platform}
			errName = "push"
			continue
		}
		name := p.Name()
		if ok, wait := e.breakers.allow(name); !ok {
			breakerErr = &provider.Error{Provider: name, Class: provider.Transient, Code: breakerOpenCode, RetryAfter: wait}
			breakerName = name
			continue
		}
		start := time.Now()
		res, err := p.SendPush(ctx, m)
		e.Metrics.SendTime.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if err == nil {
			e.breakers.record(name, false)
			if !sent {
				best, sentName, sent = res, name, true
			}
			continue
		}
		e.breakers.record(name, failed(err))
		if provider.ClassOf(err) == provider.TokenInvalid {
			j.deadDevices++
			if derr := e.Subscribers.RemoveDevice(context.WithoutCancel(ctx), j.r.TenantID,
				subscriber.Platform(m.Platform), m.Token); derr != nil {
				e.Logger.Error("remove dead push token", "err", derr)
			}
		}
		// The error that says most about the message wins: one worth a
		// retry (a live device's 503) over one that may have gone, over
		// one that ends it (a dead token on another device).
		if lastErr == nil || pushErrRank(err) >= pushErrRank(lastErr) {
			lastErr, errName = err, name
		}
	}
	if sent {
		return best, sentName, nil
	}
	// A device skipped for an open breaker may still take the message
	// later: unless a device failed in a way worth retrying anyway, the
	// delivery waits for the breaker (a dead token elsewhere, say, must
	// not fail it).
	if breakerErr != nil && (lastErr == nil || provider.ClassOf(lastErr) != provider.Transient) {
		return provider.Result{}, breakerName, breakerErr
	}
	if lastErr == nil {
		lastErr = errors.New("no device")
	}
	return provider.Result{}, errName, lastErr
}

// pushDevices are the devices c pushes to: in a campaign that falls back
// to SMS, not those on a platform this deployment has no push service for
// (APNs not configured), which cannot be reached: their subscriber gets
// the SMS rather than a failed push and no message.
func (e *Engine) pushDevices(c campaign.Campaign, devices []subscriber.Device) []subscriber.Device {
	unreachable := func(d subscriber.Device) bool { return e.Push[d.Platform] == nil }
	if !fallsBackToSMS(c) || !slices.ContainsFunc(devices, unreachable) {
		return devices
	}
	return slices.DeleteFunc(slices.Clone(devices), unreachable)
}

// fallsBackToSMS reports whether c sends its SMS template to a
// subscriber without a push device: it asked to, and does not send SMS to
// everyone anyway.
func fallsBackToSMS(c campaign.Campaign) bool {
	return c.PushFallbackSMS && !c.HasChannel(campaign.ChannelSMS) && c.Templates[campaign.ChannelSMS] != ""
}

// pushErrRank orders a subscriber's device errors by what they leave to
// do: retry (transient), nothing safe (ambiguous), nothing (the rest).
func pushErrRank(err error) int {
	switch provider.ClassOf(err) {
	case provider.Transient:
		return 2
	case provider.Ambiguous:
		return 1
	}
	return 0
}

// throttleCodes are refusals that say "not now" (the provider's rate
// limits, a full sender queue, our own open breaker, a wait for the cap),
// not "this message fails": their claims do not count as attempts (the
// store gives them back, Outcome.Unattempted), so a delivery keeps every
// retry for real failures.
var throttleCodes = map[string]bool{"20429": true, "429": true, "21611": true, "30001": true,
	"QUOTA_EXCEEDED": true, "TooManyRequests": true, breakerOpenCode: true, capWaitCode: true}

// breakerOpenCode marks a delivery put back unsent because its provider's
// circuit breaker is open.
const breakerOpenCode = "breaker_open"

// capWaitCode marks a delivery put back because the subscriber is at the
// frequency cap only with messages still in flight.
const capWaitCode = campaign.ErrorCapWait

func (e *Engine) retryLater(j *job, after time.Duration, code string) {
	if j.r.Attempts >= e.set.MaxAttempts && !throttleCodes[code] {
		j.out.Status, j.out.ErrorCode = campaign.StatusFailed, code
		return
	}
	j.out.Status = campaign.StatusPending
	j.out.ErrorCode = code
	j.out.Unattempted = throttleCodes[code]
	j.retry = true
	if code == capWaitCode || code == breakerOpenCode { // no send attempt: not in Messages
		e.Metrics.Deferred.WithLabelValues(string(j.channel), code).Inc()
	}
	limit := 5 * time.Minute
	if throttleCodes[code] {
		// "Not now" is about the sender, not this message: every retry
		// takes its slot in the sender's rate like any send, so the
		// provider sees no more than the rate whatever the backoff. A
		// message unlucky many times in a row under a storm of refusals
		// waits at most half a minute a time (at five minutes it was
		// keeping a campaign open for half an hour for a handful).
		limit = throttleBackoffMax
	}
	j.retryIn = max(after, backoff(min(j.r.Attempts, e.set.MaxAttempts), e.set.RetryBase, limit))
}

// throttleBackoffMax bounds the backoff of a refusal in throttleCodes
// (the provider's Retry-After, when longer, still wins).
const throttleBackoffMax = 30 * time.Second

// finish writes every outcome in one batch and schedules the retries.
func (e *Engine) finish(ctx context.Context, c campaign.Campaign, jobs []*job) error {
	outs := make([]campaign.Outcome, 0, len(jobs))
	var retry []int64
	var retryIn time.Duration
	for _, j := range jobs {
		if j.abandoned {
			continue
		}
		outs = append(outs, j.out)
		if j.retry {
			retry = append(retry, j.r.SubscriberID)
			retryIn = max(retryIn, j.retryIn)
		}
	}
	if err := e.recordOutcomes(ctx, outs); err != nil {
		return err
	}
	if len(retry) == 0 {
		return nil
	}
	task, err := newSendTask(sendPayload{CampaignID: c.ID, Channel: jobs[0].r.Channel, SubscriberIDs: retry})
	if err != nil {
		return err
	}
	if _, err := e.client.EnqueueContext(context.WithoutCancel(ctx), task, asynq.Queue(queueFor(c.Kind)), asynq.ProcessIn(retryIn)); err != nil {
		// The deliveries are pending in the store: the reconciler will
		// re-drive them.
		e.Logger.Warn("enqueue retry", "campaign", c.ID, "n", len(retry), "err", err)
	}
	return nil
}

// handOn queues the deliveries of a batch that this worker, stopping, will
// not send (pending, unclaimed) as a task of its own, so
// that a clean stop (a rolling deploy) hands them to the next worker at
// once instead of leaving them to the reconciler's re-drive, StaleAfter
// later: minutes for an exposure alert. Claiming is idempotent, so a
// delivery sent meanwhile is not sent again. The backlog does not count
// them (this task left it when it started).
func (e *Engine) handOn(ctx context.Context, c campaign.Campaign, ch campaign.Channel, rest []int64) {
	if len(rest) == 0 {
		return
	}
	task, err := newSendTask(sendPayload{CampaignID: c.ID, Channel: ch, SubscriberIDs: rest})
	if err == nil {
		_, err = e.client.EnqueueContext(context.WithoutCancel(ctx), task, asynq.Queue(queueFor(c.Kind)))
	}
	if err != nil {
		// Pending in the store: the reconciler re-drives them.
		e.Logger.Warn("hand on the rest of a batch at stop", "campaign", c.ID, "n", len(rest), "err", err)
	}
}

// recordOutcomes writes a batch's results, retrying a busy or briefly
// unreachable store: the messages have gone out, and an outcome lost here
// would leave its delivery "sending" until the reconciler re-sends it.
func (e *Engine) recordOutcomes(ctx context.Context, outs []campaign.Outcome) error {
	ctx = context.WithoutCancel(ctx)
	deadline := time.Now().Add(5 * time.Minute)
	for attempt := 1; ; attempt++ {
		err := e.Store.RecordOutcomes(ctx, outs)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("record outcomes: %w", err)
		}
		e.Logger.Warn("record outcomes: retrying", "attempt", attempt, "deliveries", len(outs), "err", err)
		time.Sleep(backoff(attempt, 100*time.Millisecond, 5*time.Second))
	}
}
