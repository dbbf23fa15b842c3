package api_test

import (
	"encoding/json"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/store/storetest"
)

// An app backend whose clock runs two minutes slow (within the five the
// signature window and the reward ledger allow) dates an install a minute
// before the SMS that drove it. It is that message's, by number as by
// code; it used to go to an older campaign's message, whose budget paid.
func TestAnInstallFromASlowClockGoesToTheMessageJustBeforeIt(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			h := newInstallHarness(t, kind.open(t))
			ids := h.seed(t, 1)
			now := time.Now()
			promote := func(name string, at time.Time) campaign.Campaign {
				c := &campaign.Campaign{TenantID: h.tenant.ID, Name: name, Kind: campaign.KindInstallPromotion,
					Channels: []campaign.Channel{campaign.ChannelSMS}, State: campaign.StateRunning,
					Reward: &campaign.Reward{DataMB: 100, BudgetMB: 100000, AttributionDays: 14}}
				if err := h.st.CreateCampaign(h.ctx, c); err != nil {
					t.Fatal(err)
				}
				if err := storetest.SendPromotion(h.ctx, h.st, *c, campaign.ChannelSMS,
					[]campaign.NewDelivery{{SubscriberID: ids[msisdnN(1)]}}, at); err != nil {
					t.Fatal(err)
				}
				return *c
			}
			promote("three days ago", now.Add(-72*time.Hour))
			recent := promote("a minute ago", now.Add(-time.Minute))
			slow := now.Add(-2 * time.Minute) // the backend's clock
			body, _ := json.Marshal(map[string]any{"msisdn": msisdnN(1), "device_id": "d1", "platform": "android",
				"installed_at": slow.Format(time.RFC3339Nano)})
			code, ans, raw := h.do(t, signedRequest(h.srv.URL, installTenant, installSecret, body, slow))
			if code != 200 || ans.CampaignID == nil || *ans.CampaignID != recent.ID {
				t.Errorf("%d %s: want the install attributed to campaign %s, sent a minute before our now", code, raw, recent.ID)
			}
		})
	}
}
