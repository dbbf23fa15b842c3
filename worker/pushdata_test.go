package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/worker"
)

// A push template's data values are templates, as its title and body are:
// each device gets them rendered for its subscriber, so that a deep link
// carries the delivery's own install link.
func TestPushDataIsRenderedForEachSubscriber(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(12)
		tpl := h.template(campaign.TemplateInput{Name: "promo-push-data", Channel: campaign.ChannelPush, Locale: "vi",
			Title: "Chào {{.Name}}", Body: "Cài Bluezone nhận {{.RewardMB}}MB",
			Data: map[string]string{"link": "{{.InstallLink}}", "who": "{{.Name}}", "screen": "install"}})
		c, err := h.service.CreateCampaign(h.ctx, h.admin, campaign.CampaignInput{Name: "push data",
			Channels: []campaign.Channel{campaign.ChannelPush}, Templates: map[campaign.Channel]string{campaign.ChannelPush: tpl},
			Reward: &campaign.Reward{DataMB: 5120, BudgetMB: 5120 * 100, AttributionDays: 7}})
		if err != nil {
			t.Fatal(err)
		}
		defer h.startWorker(worker.Settings{})()
		h.act(c.ID, campaign.ActionStart)
		h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		msgs := h.fcm.Messages()
		if len(msgs) == 0 {
			t.Fatal("no push reached the FCM fake")
		}
		links := map[string]bool{}
		for _, m := range msgs {
			var i int
			if _, err := fmt.Sscanf(m.Token, "fcm-token-%d", &i); err != nil {
				t.Fatalf("token %q", m.Token)
			}
			name := fmt.Sprintf("Khách %d", i)
			code, ok := strings.CutPrefix(m.Data["link"], "https://outreach.test/i/")
			if m.Title != "Chào "+name || m.Data["who"] != name || m.Data["screen"] != "install" ||
				!ok || len(code) != campaign.ReferralCodeLength {
				t.Errorf("to %s: title %q, data %v; want the title and data rendered for %s with an install link",
					m.Token, m.Title, m.Data, name)
			}
			links[m.Data["link"]] = true
		}
		if len(links) != len(msgs) {
			t.Errorf("%d distinct links in %d pushes: each delivery has its own", len(links), len(msgs))
		}
	})
}
