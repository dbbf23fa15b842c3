package worker_test

import (
	"strings"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/subscriber"
	"outreach/worker"
)

// A campaign with an English template per channel sends it to the
// subscribers whose locale is en, and the Vietnamese ones to the rest
// (through the real twilio-go and FCM clients against the fakes).
func TestEachSubscriberGetsTheTemplateOfTheirLocale(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const vi, en, unset = "+84910000031", "+84910000032", "+84910000033"
		for _, r := range []subscriber.Row{{MSISDN: vi, Region: "HN", Locale: "vi"}, {MSISDN: en, Region: "HN", Locale: "en"},
			{MSISDN: unset, Region: "HN"}} {
			h.subscriberWithDevices(r, subscriber.Device{Platform: subscriber.PlatformFCM, Token: "fcm-" + r.MSISDN})
		}
		tpl := func(in campaign.TemplateInput) string { return h.template(in) }
		c, err := h.service.CreateCampaign(h.ctx, h.admin, campaign.CampaignInput{Name: "Bluezone Q3",
			Channels: []campaign.Channel{campaign.ChannelSMS, campaign.ChannelPush},
			Templates: map[campaign.Channel]string{
				campaign.ChannelSMS: tpl(campaign.TemplateInput{Name: "sms-vi", Channel: campaign.ChannelSMS, Locale: "vi",
					Body: "Cài Bluezone để bảo vệ cộng đồng: {{.InstallLink}}", Transliterate: true}),
				campaign.ChannelPush: tpl(campaign.TemplateInput{Name: "push-vi", Channel: campaign.ChannelPush, Locale: "vi",
					Title: "Bluezone", Body: "Cài Bluezone để bảo vệ cộng đồng"}),
			},
			LocaleTemplates: map[string]map[campaign.Channel]string{"en": {
				campaign.ChannelSMS: tpl(campaign.TemplateInput{Name: "sms-en", Channel: campaign.ChannelSMS, Locale: "en",
					Body: "Install Bluezone to protect your community: {{.InstallLink}}"}),
				campaign.ChannelPush: tpl(campaign.TemplateInput{Name: "push-en", Channel: campaign.ChannelPush, Locale: "en",
					Title: "Bluezone", Body: "Install Bluezone to protect your community"}),
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer h.startWorker(worker.Settings{})()
		h.act(c.ID, campaign.ActionStart)
		h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)

		english := map[string]bool{en: true}
		sms := map[string]string{}
		for _, m := range h.twilio.Messages() {
			sms[m.To] = m.Body
		}
		push := map[string]string{}
		for _, m := range h.fcm.Messages() {
			push[strings.TrimPrefix(m.Token, "fcm-")] = m.Body
		}
		for _, m := range []string{vi, en, unset} {
			wantSMS, wantPush := "Cai Bluezone de bao ve cong dong", "Cài Bluezone để bảo vệ cộng đồng"
			if english[m] {
				wantSMS, wantPush = "Install Bluezone to protect your community", "Install Bluezone to protect your community"
			}
			if !strings.Contains(sms[m], wantSMS) {
				t.Errorf("SMS to %s: %q, want it to say %q", m, sms[m], wantSMS)
			}
			if push[m] != wantPush {
				t.Errorf("push to %s: %q, want %q", m, push[m], wantPush)
			}
		}
	})
}
