package worker

import (
	"context"
	"time"

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
// number from its sender around the attempt (provider.SMSFinder).
//
//   - Found, and no other delivery holds that message: the delivery is
//     sent, with the provider's message id and segments.
//   - None: the provider never took it. The delivery goes back to pending,
//     from that attempt only, and is sent again.
//   - The provider cannot answer: asked again at the next pass, for up to
//     LookupWithin after the attempt; past that it stays unknown.
//
// A running campaign is not completed while it has such sends to look up.

// lookupBefore and lookupAfterAttempt bound the provider's creation time
// of the message an attempt may have made: the attempt's start less some
// clock difference, to its end (the client's timeout, well under a
// minute) and more.
const (
	lookupBefore       = 30 * time.Second
	lookupAfterAttempt = 90 * time.Second
)

// lookupPage is the most ambiguous sends of one campaign channel looked
// at per pass: each is a call to the provider, made in the monitor's pass.
const lookupPage = 50

// resolveAmbiguous looks up c's ambiguous SMS sends that are old enough
// (see above). waiting reports sends still to be looked up (too recent,
// or the provider could not answer) or put back to be sent: c is not
// complete yet.
func (e *Engine) resolveAmbiguous(ctx context.Context, c campaign.Campaign) (waiting bool, err error) {
	finder, ok := e.SMS.(provider.SMSFinder)
	if !ok {
		return false, nil
	}
	name := e.SMS.Name()
	now := e.Now()
	for _, ch := range c.Channels {
		// A push campaign's SMS fallback is recorded on its push delivery.
		sends, err := e.Store.AmbiguousSends(ctx, c.ID, ch, now.Add(-e.set.LookupWithin), lookupPage)
		if err != nil {
			return true, err
		}
		var requeue []campaign.AmbiguousSend
		for _, a := range sends {
			if a.Provider != name || a.MSISDN == "" {
				continue // another provider's (a push service's), or a contact purged since
			}
			if now.Sub(a.AttemptedAt) < e.set.LookupAfter {
				waiting = true
				continue
			}
			found, err := e.findTaken(ctx, finder, a)
			if err != nil {
				// The provider cannot answer now: the rest of this pass
				// would not fare better.
				e.Logger.Warn("looking up an ambiguous send", "campaign", c.ID, "provider", name, "err", err)
				waiting = true
				break
			}
			if found == nil {
				requeue = append(requeue, a)
				continue
			}
			if err := e.Store.RecordOutcomes(ctx, []campaign.Outcome{{CampaignID: c.ID, SubscriberID: a.SubscriberID,
				Channel: ch, Status: campaign.StatusSent, Provider: name, ProviderMessageID: found.MessageID,
				Segments: found.Segments, At: a.AttemptedAt}}); err != nil {
				return true, err
			}
			e.Metrics.Ambiguous.WithLabelValues(name, "taken").Inc()
		}
		if len(requeue) == 0 {
			continue
		}
		n, err := e.Store.RequeueAmbiguous(ctx, c.ID, ch, requeue)
		if err != nil {
			return true, err
		}
		e.Metrics.Ambiguous.WithLabelValues(name, "not_taken").Add(float64(n))
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

// findTaken asks the provider for the message a's attempt made: the one
// created nearest the attempt among those no delivery holds yet, or nil
// when the provider took none.
func (e *Engine) findTaken(ctx context.Context, finder provider.SMSFinder, a campaign.AmbiguousSend) (*provider.Found, error) {
	found, err := finder.FindSMS(ctx, a.MSISDN, a.AttemptedAt.Add(-lookupBefore), a.AttemptedAt.Add(lookupAfterAttempt))
	if err != nil || len(found) == 0 {
		return nil, err
	}
	ids := make([]string, len(found))
	for i, f := range found {
		ids[i] = f.MessageID
	}
	held, err := e.Store.HeldMessageIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	var best *provider.Found
	for i, f := range found {
		if held[f.MessageID] {
			continue // another delivery's message to the same number
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
