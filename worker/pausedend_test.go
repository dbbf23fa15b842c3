package worker_test

import (
	"testing"
	"time"

	"outreach/campaign"
	"outreach/worker"
)

// A campaign paused before its end_by may be resumed after it: it sends
// nothing more and completes. Resume used to be refused (409) and nothing
// else moved it, so it stayed paused for good.
func TestACampaignPausedPastItsEndResumesToComplete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(20)
		now := time.Now()
		h.clock.Set(now)
		sms := h.template(campaign.TemplateInput{Name: "s", Channel: campaign.ChannelSMS, Body: "Cai Bluezone: {{.InstallLink}}"})
		end := now.Add(time.Hour)
		c, err := h.service.CreateCampaign(h.ctx, h.admin, campaign.CampaignInput{Name: "e", Channels: []campaign.Channel{campaign.ChannelSMS},
			Templates: map[campaign.Channel]string{campaign.ChannelSMS: sms}, EndBy: &end})
		if err != nil {
			t.Fatal(err)
		}
		h.act(c.ID, campaign.ActionStart)
		h.act(c.ID, campaign.ActionPause)
		h.clock.Set(now.Add(2 * time.Hour))
		defer h.startWorker(worker.Settings{})()
		if _, err := h.service.Act(h.ctx, h.admin, c.ID, campaign.ActionResume); err != nil {
			t.Fatalf("resume past end_by: %v", err)
		}
		st := h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		if st.Deliveries[campaign.StatusSent] != 0 || h.twilio.Count() != 0 {
			t.Errorf("deliveries %v, %d sent: want nothing sent past end_by", st.Deliveries, h.twilio.Count())
		}
	})
}
