package worker_test

import (
	"errors"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/subscriber"
	"outreach/worker"
)

// A template that fails on one subscriber's values (a builtin on a short
// name) fails that delivery, for good, and the rest of the batch goes; it
// used to fail the whole batch, retried without end, so that no one in it
// was sent.
func TestATemplateThatFailsForOneSubscriberFailsOnlyTheirDelivery(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		rows := []subscriber.Row{
			{MSISDN: "+84912000001", Region: "HN", Attributes: map[string]string{"name": "A"}}, // slice 2 of "A" fails
			{MSISDN: "+84912000002", Region: "HN", Attributes: map[string]string{"name": "Lan"}},
			{MSISDN: "+84912000003", Region: "HN", Attributes: map[string]string{"name": "Binh"}},
		}
		if _, err := h.store.UpsertSubscribers(h.ctx, h.tenant.ID, rows, ""); err != nil {
			t.Fatal(err)
		}
		tpl := h.template(campaign.TemplateInput{Name: "nickname", Channel: campaign.ChannelSMS, Locale: "vi",
			Body: "Chao {{if .Name}}{{slice .Name 2}}{{end}}, cai Bluezone: {{.InstallLink}}"})
		c, err := h.service.CreateCampaign(h.ctx, h.admin, campaign.CampaignInput{Name: "nickname",
			Channels: []campaign.Channel{campaign.ChannelSMS}, Templates: map[campaign.Channel]string{campaign.ChannelSMS: tpl}})
		if err != nil {
			t.Fatal(err)
		}
		defer h.startWorker(worker.Settings{})()
		h.act(c.ID, campaign.ActionStart)
		st := h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		if st.Deliveries[campaign.StatusSent] != 2 || st.Deliveries[campaign.StatusFailed] != 1 || h.twilio.Count() != 2 {
			t.Errorf("deliveries %v, %d sent to the provider: want 2 sent and 1 failed", st.Deliveries, h.twilio.Count())
		}
		failed, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, c.ID, campaign.StatusFailed, 0, 10)
		if err != nil || len(failed) != 1 || failed[0].MSISDN != "+84912000001" || failed[0].ErrorCode != campaign.ErrorTemplate {
			t.Errorf("failed deliveries %+v, %v: want the one to A, error code %s", failed, err, campaign.ErrorTemplate)
		}
		// A test send to that subscriber names the template's field (422),
		// not an internal error.
		_, err = h.service.SendTest(h.ctx, h.admin, c.ID, "+84912000001")
		var fe apperr.FieldErrors
		if !errors.As(err, &fe) || fe["templates.sms"] == "" {
			t.Errorf("a test send whose template fails: %v, want templates.sms named", err)
		}
	})
}
