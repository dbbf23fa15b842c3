package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/reward"
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

// A reward's confirmation goes in the subscriber's locale: an en
// subscriber gets the campaign's English confirmation, the others the main
// one. A confirmation named for a locale must be in that locale.
func TestARewardConfirmationIsInTheSubscribersLocale(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const vi, en = "+84910000041", "+84910000042"
		for _, r := range []subscriber.Row{{MSISDN: vi, Region: "HN", Locale: "vi"}, {MSISDN: en, Region: "HN", Locale: "en"}} {
			h.subscriberWithDevices(r)
		}
		tpl := func(in campaign.TemplateInput) string { return h.template(in) }
		thanksVI := tpl(campaign.TemplateInput{Name: "thanks-vi", Channel: campaign.ChannelSMS, Locale: "vi",
			Body: "Cảm ơn bạn! Bạn đã được cộng {{.RewardMB}}MB data.", Transliterate: true})
		thanksEN := tpl(campaign.TemplateInput{Name: "thanks-en", Channel: campaign.ChannelSMS, Locale: "en",
			Body: "Thank you! {{.RewardMB}}MB of data is yours."})
		in := campaign.CampaignInput{Name: "Bluezone Q4", Kind: campaign.KindInstallPromotion,
			Channels: []campaign.Channel{campaign.ChannelSMS},
			Templates: map[campaign.Channel]string{campaign.ChannelSMS: tpl(campaign.TemplateInput{Name: "promo",
				Channel: campaign.ChannelSMS, Locale: "vi", Body: "Cài Bluezone: {{.InstallLink}}", Transliterate: true})},
			Reward: &campaign.Reward{DataMB: 5120, BudgetMB: 51200, AttributionDays: 14, ConfirmTemplate: thanksVI,
				LocaleConfirmTemplates: map[string]string{"en": thanksVI}}}
		if _, err := h.service.CreateCampaign(h.ctx, h.admin, in); err == nil ||
			!strings.Contains(err.Error(), "reward.locale_confirm_templates.en") {
			t.Errorf("a Vietnamese confirmation named for en: %v, want an error naming reward.locale_confirm_templates.en", err)
		}
		in.Reward.LocaleConfirmTemplates["en"] = thanksEN
		c, err := h.service.CreateCampaign(h.ctx, h.admin, in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := h.store.CampaignByID(h.ctx, c.ID)
		if err != nil || got.Reward == nil || got.Reward.LocaleConfirmTemplates["en"] != thanksEN {
			t.Fatalf("campaign read back %+v, %v: want the en confirmation kept", got.Reward, err)
		}
		rr := h.rewardRig(c, 0, worker.Settings{SMSRate: 100000})
		for i, m := range []string{vi, en} {
			r := reward.Reward{ID: fmt.Sprintf("reward-%d", i), CampaignID: c.ID, MSISDN: m, DataMB: 5120}
			if err := rr.engine.ConfirmReward(h.ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		want := map[string]string{vi: "Cam on ban! Ban da duoc cong 5120MB data.", en: "Thank you! 5120MB of data is yours."}
		msgs := h.twilio.Messages()
		if len(msgs) != 2 {
			t.Fatalf("%d confirmations sent, want 2: %+v", len(msgs), msgs)
		}
		for _, m := range msgs {
			if m.Body != want[m.To] {
				t.Errorf("confirmation to %s: %q, want %q", m.To, m.Body, want[m.To])
			}
		}
	})
}

// flakySubscribers fails every subscriber read, as a dropped database
// connection would.
type flakySubscribers struct{ subscriber.Store }

func (flakySubscribers) GetSubscriber(context.Context, string, string) (subscriber.Subscriber, error) {
	return subscriber.Subscriber{}, errors.New("read tcp 127.0.0.1:5432: connection reset by peer")
}

// A confirmation whose subscriber cannot be read for now is retried, not
// sent in the main template's locale and counted done: an en subscriber
// used to get the Vietnamese text after a database blip.
func TestAConfirmationWaitsOutASubscriberReadError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const en = "+84910000043"
		h.subscriberWithDevices(subscriber.Row{MSISDN: en, Region: "HN", Locale: "en"})
		thanksVI := h.template(campaign.TemplateInput{Name: "thanks-vi", Channel: campaign.ChannelSMS, Locale: "vi",
			Body: "Cam on ban! {{.RewardMB}}MB."})
		thanksEN := h.template(campaign.TemplateInput{Name: "thanks-en", Channel: campaign.ChannelSMS, Locale: "en",
			Body: "Thank you! {{.RewardMB}}MB."})
		c, err := h.service.CreateCampaign(h.ctx, h.admin, campaign.CampaignInput{Name: "Q4", Kind: campaign.KindInstallPromotion,
			Channels: []campaign.Channel{campaign.ChannelSMS},
			Templates: map[campaign.Channel]string{campaign.ChannelSMS: h.template(campaign.TemplateInput{Name: "promo",
				Channel: campaign.ChannelSMS, Locale: "vi", Body: "Cai Bluezone: {{.InstallLink}}"})},
			Reward: &campaign.Reward{DataMB: 5120, BudgetMB: 51200, AttributionDays: 14, ConfirmTemplate: thanksVI,
				LocaleConfirmTemplates: map[string]string{"en": thanksEN}}})
		if err != nil {
			t.Fatal(err)
		}
		e := worker.New(worker.Deps{Store: h.store, Subscribers: flakySubscribers{h.store}, Queue: h.conn(), SMS: h.sms,
			Push: h.push, Policy: h.policy, Settings: worker.Settings{SMSRate: 1000},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		t.Cleanup(func() { e.Close() })
		r := reward.Reward{ID: "reward-1", CampaignID: c.ID, MSISDN: en, DataMB: 5120}
		if err := e.ConfirmReward(h.ctx, r); err == nil || h.twilio.Count() != 0 {
			t.Errorf("confirmation with its subscriber unreadable: %v, %d sent (%+v); want an error to retry and nothing sent",
				err, h.twilio.Count(), h.twilio.Messages())
		}
	})
}
