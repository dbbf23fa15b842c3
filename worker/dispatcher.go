package worker

import (
	"context"
	"fmt"

	"outreach/campaign"
	"outreach/subscriber"
)

// SendTest renders the campaign's messages for one number and sends them
// now, outside the ledger and the rate limits: a marketer's proof.
func (e *Engine) SendTest(ctx context.Context, c campaign.Campaign, msisdn string) ([]campaign.TestResult, error) {
	norm, err := subscriber.NormalizeMSISDN(msisdn)
	if err != nil {
		return nil, err
	}
	r := campaign.Recipient{Delivery: campaign.Delivery{CampaignID: c.ID, TenantID: c.TenantID, MSISDN: norm}}
	if s, err := e.Subscribers.GetSubscriber(ctx, c.TenantID, norm); err == nil {
		r.Region, r.Locale, r.Attributes, r.Devices = s.Region, s.Locale, s.Attributes, s.Devices
	}
	if c.Kind == campaign.KindInstallPromotion {
		r.ReferralCode = "TEST"
	}
	var out []campaign.TestResult
	for _, ch := range c.Channels {
		r.Channel = ch
		j := &job{r: r, channel: ch}
		if err := e.render(ctx, c, j); err != nil {
			return nil, fmt.Errorf("render %s: %w", ch, err)
		}
		tr := campaign.TestResult{Channel: j.channel}
		if j.out.Status == campaign.StatusSkipped {
			tr.Error = string(j.out.SkipReason)
			out = append(out, tr)
			continue
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
