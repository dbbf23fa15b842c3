package worker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"outreach/campaign"
	"outreach/provider"
	"outreach/subscriber"
)

// An SMS whose request went out and whose answer was lost may or may not
// have been taken by the provider; Twilio has no idempotency key, so it is
// recorded unknown and never blindly sent again. A receipt resolves it if
// the provider took it (the callback names its delivery). If the provider
// never took it, no receipt will ever come, and the subscriber would never
// be told (an exposure alert's contact never warned): so once LookupAfter
// has passed, the engine asks the provider for the messages to that
// number from its sender around the attempt (provider.SMSFinder), and
// renders the delivery's message again to tell it from the others (an
// alert, a promotion or a test send to the same number in the same
// minutes): the same text, or the delivery's own referral code in its
// install link.
//
//   - Found (that text or that code), and no other delivery holds that
//     message: the delivery is sent, with the provider's message id and
//     segments.
//   - None: the provider never took it. The delivery goes back to pending,
//     from that attempt only, and is sent again, unless it has had
//     MaxAttempts attempts already: then it is failed.
//   - The provider cannot answer: asked again half a minute later, for up
//     to LookupWithin after the delivery was recorded unknown; past that
//     it stays unknown.
//
// The monitor looks them up at each re-drive pass of a running campaign
// (during its fan-out too), and at every pass once nothing else is left
// to send: it is not completed while it has such sends to look up.
//
// An SMS a worker claimed and never recorded (it died) may have gone too,
// and so may a push campaign's SMS to a subscriber with no device: once
// its claim is stale it is recorded unknown in the same way, from the
// claim's time (campaign.ErrorStaleClaim), and looked up over the claim's
// whole deadline, so that a killed worker's last messages are not sent
// twice.

// lookupBefore and lookupAfterAttempt bound the provider's creation time
// of the message an attempt may have made: from the attempt's start less
// a difference between the two clocks, to its end (the client's timeout,
// well under a minute) plus that difference, both taken generously. The
// text tells the attempt's message from others in the window.
const (
	lookupBefore       = 2 * time.Minute
	lookupAfterAttempt = 5 * time.Minute
)

// lookupPause is how long look-ups wait after the provider could not
// answer some.
const lookupPause = 30 * time.Second

// lookupPage is the most ambiguous sends of one campaign channel looked
// at per pass, lookupParallel the provider calls in flight meanwhile: the
// monitor waits for them (at Twilio's usual answer time, a page takes a
// few seconds).
const (
	lookupPage     = 200
	lookupParallel = 8
)

// lookupLeaseTTL bounds how long one process holds a campaign's look-ups
// (lookupLeaseKey) should it die meanwhile; a pass takes seconds.
const lookupLeaseTTL = time.Minute

func lookupLeaseKey(campaignID string) string { return "outreach:lookup:" + campaignID }

// resolveAmbiguous looks up c's ambiguous SMS sends that are due (see
// above). One process at a time does it for a campaign: the others take
// its sends for waiting. waiting reports sends still to be looked up (too
// recent, another process on them, or the provider could not answer) or
// put back to be sent: c is not complete yet.
func (e *Engine) resolveAmbiguous(ctx context.Context, c campaign.Campaign) (waiting bool, err error) {
	finder, ok := e.SMS.(provider.SMSFinder)
	if !ok {
		return false, nil
	}
	name := e.SMS.Name()
	now := e.Now()
	since := now.Add(-e.set.LookupWithin)
	token := uuid.NewString()
	leased := false
	defer func() {
		if leased {
			releaseScript.Run(context.WithoutCancel(ctx), e.Queue.Redis, []string{lookupLeaseKey(c.ID)}, token)
		}
	}()
	var pol *campaign.Policy // read once a send is due
	paused := e.lookupsPaused(time.Now())
	for _, ch := range c.Channels {
		// A push campaign's SMS fallback is recorded on its push delivery.
		sends, err := e.Store.AmbiguousSends(ctx, c.ID, ch, name, since, lookupPage)
		if err != nil {
			return true, err
		}
		var due []campaign.AmbiguousSend
		for _, a := range sends {
			if paused || !a.Claimed && now.Sub(a.AttemptedAt) < e.set.LookupAfter {
				// A stale claim is due at once: it was reset only after
				// SendingStaleAfter, twice its deadline.
				waiting = true
				continue
			}
			due = append(due, a)
		}
		if len(due) == 0 {
			continue
		}
		if !leased {
			ok, err := e.Queue.Redis.SetNX(ctx, lookupLeaseKey(c.ID), token, lookupLeaseTTL).Result()
			if err != nil || !ok {
				return true, err // another process looks them up
			}
			leased = true
		}
		if pol == nil {
			p, err := e.sendPolicy(c)
			if err != nil {
				return true, err // the messages cannot be rendered again to compare
			}
			pol = &p
		}
		found, failed := e.lookUp(ctx, c, *pol, finder, due)
		if failed > 0 {
			waiting = true
			e.pauseLookups(time.Now().Add(lookupPause))
			e.Logger.Warn("ambiguous sends could not be looked up; look-ups wait",
				"campaign", c.ID, "provider", name, "failed", failed, "for", lookupPause.String())
		}
		var outs []campaign.Outcome
		var requeue []campaign.AmbiguousSend
		for i, a := range due {
			result := ""
			switch f := found[i]; {
			case f.err != nil:
				result = "error"
			case f.msg != nil:
				result = "taken"
				outs = append(outs, campaign.Outcome{CampaignID: c.ID, SubscriberID: a.SubscriberID, Channel: ch,
					Status: campaign.StatusSent, Provider: name, ProviderMessageID: f.msg.MessageID,
					Segments: f.msg.Segments, At: a.AttemptedAt})
			case a.Attempts >= e.set.MaxAttempts:
				// Every attempt went out and none got in: no more.
				result = "given_up"
				outs = append(outs, campaign.Outcome{CampaignID: c.ID, SubscriberID: a.SubscriberID, Channel: ch,
					Status: campaign.StatusFailed, Provider: name, ErrorCode: a.ErrorCode, At: now})
			default:
				result = "not_taken"
				requeue = append(requeue, a)
			}
			e.Metrics.Ambiguous.WithLabelValues(name, result).Inc()
		}
		if err := e.Store.RecordOutcomes(ctx, outs); err != nil {
			return true, err
		}
		if len(requeue) == 0 {
			continue
		}
		n, err := e.Store.RequeueAmbiguous(ctx, c.ID, ch, requeue)
		if err != nil {
			return true, err
		}
		e.Logger.Info("ambiguous sends the provider never took put back to be sent", "campaign", c.ID,
			"channel", ch, "deliveries", n)
		ids := make([]int64, len(requeue))
		for i, a := range requeue {
			ids[i] = a.SubscriberID
		}
		if err := e.enqueueBatches(ctx, c, ch, ids, false); err != nil {
			return true, err
		}
		waiting = true
	}
	return waiting, nil
}

// lookup is the answer of one look-up: the message found (nil: none), or
// the error that kept the provider from answering.
type lookup struct {
	msg *provider.Found
	err error
}

// lookupsPaused reports whether look-ups wait at now for the provider,
// which could not answer lately.
func (e *Engine) lookupsPaused(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return now.Before(e.lookupPausedUntil)
}

func (e *Engine) pauseLookups(until time.Time) {
	e.mu.Lock()
	e.lookupPausedUntil = until
	e.mu.Unlock()
}

// lookUp looks up each send, lookupParallel at a time; failed counts the
// look-ups the provider could not answer.
func (e *Engine) lookUp(ctx context.Context, c campaign.Campaign, pol campaign.Policy, finder provider.SMSFinder,
	sends []campaign.AmbiguousSend) (out []lookup, failed int) {
	out = make([]lookup, len(sends))
	sem := make(chan struct{}, lookupParallel)
	var wg sync.WaitGroup
	for i, a := range sends {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i].msg, out[i].err = e.findTaken(ctx, c, pol, finder, a)
		}()
	}
	wg.Wait()
	for _, l := range out {
		if l.err != nil {
			failed++
		}
	}
	return out, failed
}

// findTaken asks the provider for the message a's attempt made: among
// those with its text that no delivery holds yet, the one created nearest
// the attempt; nil when the provider took none.
func (e *Engine) findTaken(ctx context.Context, c campaign.Campaign, pol campaign.Policy, finder provider.SMSFinder,
	a campaign.AmbiguousSend) (*provider.Found, error) {
	// The text again, as the attempt rendered it: templates never change,
	// and a push delivery sent by SMS went so for want of a device.
	j := &job{r: a.Recipient, channel: a.Channel}
	j.r.Devices = nil
	if err := e.render(ctx, c, pol, j); err != nil {
		return nil, fmt.Errorf("render the message again: %w", err)
	}
	if j.sms.Body == "" {
		return nil, fmt.Errorf("render the message again: no SMS (%s)", j.out.SkipReason)
	}
	until := a.AttemptedAt.Add(lookupAfterAttempt)
	if a.Claimed {
		until = until.Add(e.claimDeadline()) // a claim's send may come that much later
	}
	found, err := finder.FindSMS(ctx, a.MSISDN, a.AttemptedAt.Add(-lookupBefore), until)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	// The same text, or for a message carrying the delivery's own
	// referral code (an install link), that code: it names the delivery
	// whatever the link's base or the policy's text were at the attempt.
	code := a.ReferralCode
	if code == "" || !strings.Contains(j.sms.Body, code) {
		code = ""
	}
	same := func(f provider.Found) bool {
		return f.Body == j.sms.Body || code != "" && strings.Contains(f.Body, code)
	}
	var ids []string
	for _, f := range found {
		if same(f) {
			ids = append(ids, f.MessageID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	held, err := e.Store.HeldMessageIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	var best *provider.Found
	for i, f := range found {
		if !same(f) || held[f.MessageID] {
			continue // another message to the same number
		}
		if best == nil || absDuration(f.Created.Sub(a.AttemptedAt)) < absDuration(best.Created.Sub(a.AttemptedAt)) {
			best = &found[i]
		}
	}
	if best != nil {
		e.Logger.Debug("ambiguous send found at the provider", "subscriber", subscriber.Mask(a.MSISDN))
	}
	return best, nil
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
