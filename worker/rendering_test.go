package worker_test

import (
	"errors"
	"strings"
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
		c := h.failsForTheFirst([]subscriber.Row{
			{MSISDN: "+84912000001", Region: "HN", Attributes: map[string]string{"name": "A"}}, // slice 2 of "A" fails
			{MSISDN: "+84912000002", Region: "HN", Attributes: map[string]string{"name": "Lan"}},
			{MSISDN: "+84912000003", Region: "HN", Attributes: map[string]string{"name": "Binh"}},
		}, campaign.TemplateInput{Body: "Chao {{if .Name}}{{slice .Name 2}}{{end}}, cai Bluezone: {{.InstallLink}}"})
		// A test send to that subscriber names the template's field (422),
		// not an internal error.
		_, err := h.service.SendTest(h.ctx, h.admin, c.ID, "+84912000001")
		var fe apperr.FieldErrors
		if !errors.As(err, &fe) || fe["templates.sms"] == "" {
			t.Errorf("a test send whose template fails: %v, want templates.sms named", err)
		}
	})
}

// A message longer than the provider takes (Twilio's 1,600 characters) is
// failed as its template's, without a call that would be refused.
func TestAnSMSLongerThanTheProviderTakesFailsWithoutASend(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.failsForTheFirst([]subscriber.Row{
			{MSISDN: "+84912000001", Region: "HN", Attributes: map[string]string{"note": strings.Repeat("a", 1590)}},
			{MSISDN: "+84912000002", Region: "HN", Attributes: map[string]string{"note": "ngắn"}},
		}, campaign.TemplateInput{Body: `{{.Attr "note"}} Cai Bluezone: {{.InstallLink}}`})
	})
}

// failsForTheFirst runs a campaign of template tpl (an SMS body, or a
// push whose subscribers have devices) to rows and checks that the first
// row's delivery failed with the template's error code, and only it,
// without a call to the provider, and that every other row was sent.
func (h *harness) failsForTheFirst(rows []subscriber.Row, tpl campaign.TemplateInput) campaign.Campaign {
	t := h.t
	t.Helper()
	if _, err := h.store.UpsertSubscribers(h.ctx, h.tenant.ID, rows, ""); err != nil {
		t.Fatal(err)
	}
	if tpl.Channel == "" {
		tpl.Channel = campaign.ChannelSMS
	}
	tpl.Name, tpl.Locale = "per-subscriber", "vi"
	id := h.template(tpl)
	c, err := h.service.CreateCampaign(h.ctx, h.admin, campaign.CampaignInput{Name: "per-subscriber",
		Channels: []campaign.Channel{tpl.Channel}, Templates: map[campaign.Channel]string{tpl.Channel: id}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.startWorker(worker.Settings{})()
	h.act(c.ID, campaign.ActionStart)
	st := h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
	sent := int64(len(rows) - 1)
	calls := h.twilio.Count
	if tpl.Channel == campaign.ChannelPush {
		calls = h.fcm.Attempts
	}
	if st.Deliveries[campaign.StatusSent] != sent || st.Deliveries[campaign.StatusFailed] != 1 || calls() != int(sent) {
		t.Errorf("deliveries %v, %d sent to the provider: want %d sent and 1 failed", st.Deliveries, calls(), sent)
	}
	failed, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, c.ID, campaign.StatusFailed, 0, 10)
	if err != nil || len(failed) != 1 || failed[0].MSISDN != rows[0].MSISDN || failed[0].ErrorCode != campaign.ErrorTemplate {
		t.Errorf("failed deliveries %+v, %v: want the one to %s, error code %s", failed, err, rows[0].MSISDN, campaign.ErrorTemplate)
	}
	return c
}
