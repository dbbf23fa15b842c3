package worker

import (
	"context"
	"errors"
	"fmt"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/subscriber"
	"outreach/templates"
)

// testSendRate is how many test sends a tenant may make per second.
const testSendRate = 1

// SendTest renders the campaign's messages for one number and sends them
// now, outside the ledger: a marketer's (or a health official's) proof. It
// keeps the rules that protect subscribers and the sender: an opted-out
// subscriber gets no marketing test, each message takes its slots in the
// sender's rate, and a tenant may make one test send a second.
func (e *Engine) SendTest(ctx context.Context, c campaign.Campaign, msisdn string) ([]campaign.TestResult, error) {
	norm, err := subscriber.NormalizeMSISDN(msisdn)
	if err != nil {
		return nil, err
	}
	r := campaign.Recipient{Delivery: campaign.Delivery{CampaignID: c.ID, TenantID: c.TenantID, MSISDN: norm}}
	if s, err := e.Subscribers.GetSubscriber(ctx, c.TenantID, norm); err == nil {
		r.Region, r.Locale, r.Attributes, r.Devices = s.Region, s.Locale, s.Attributes, s.Devices
		r.OptedOut = s.OptedOut
	}
	pol, err := e.sendPolicy(c)
	if err != nil {
		return nil, err
	}
	if r.OptedOut && pol.SkipsOptedOut(c.Kind) {
		// Nothing would go out: no test slot is taken.
		out := make([]campaign.TestResult, 0, len(c.Channels))
		for _, ch := range c.Channels {
			out = append(out, campaign.TestResult{Channel: ch, Error: string(campaign.SkipOptedOut)})
		}
		return out, nil
	}
	if _, ok, wait, err := e.limiter.Reserve(ctx, "test:"+c.TenantID, testSendRate, 1, 0, 0, false); err != nil {
		return nil, fmt.Errorf("test send rate: %w", err)
	} else if !ok {
		return nil, fmt.Errorf("%w: test sends are limited to %d a second per tenant; retry in %d ms",
			apperr.ErrLimited, testSendRate, max(wait.Milliseconds(), 1))
	}
	if c.Kind == campaign.KindInstallPromotion {
		// A code of the real length (never stored: its link leads
		// nowhere), so that the test counts the segments a real message
		// has.
		r.ReferralCode = campaign.NewReferralCode()
	}
	var out []campaign.TestResult
	for _, ch := range c.Channels {
		r.Channel = ch
		j := &job{r: r, channel: ch}
		if err := e.render(ctx, c, pol, j); err != nil {
			if te := (*templates.Error)(nil); errors.As(err, &te) && te.Rendering {
				return nil, apperr.FieldErrors{"templates." + string(ch): "cannot be rendered for this subscriber: " + te.Reason}
			}
			return nil, fmt.Errorf("render %s: %w", ch, err)
		}
		tr := campaign.TestResult{Channel: j.channel}
		if j.out.Status == campaign.StatusSkipped {
			tr.Error = string(j.out.SkipReason)
			out = append(out, tr)
			continue
		}
		units := j.segments
		if j.channel == campaign.ChannelPush {
			units = len(j.pushes)
		}
		if err := e.waitForSender(ctx, j.channel, units); err != nil {
			return nil, err
		}
		if j.channel == campaign.ChannelSMS {
			tr.Text = j.sms.Body
			res, err := e.SMS.SendSMS(ctx, j.sms)
			tr.Provider, tr.MessageID, tr.Segments = e.SMS.Name(), res.MessageID, max(res.Segments, j.segments)
			if err != nil {
				tr.Error = err.Error()
			}
		} else {
			tr.Text = j.pushes[0].Title + "\n" + j.pushes[0].Body
			res, name, err := e.sendPushes(ctx, j)
			tr.Provider, tr.MessageID = name, res.MessageID
			if err != nil {
				tr.Error = err.Error()
			}
		}
		out = append(out, tr)
	}
	return out, nil
}
