package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/provider"
	"outreach/subscriber"
	"outreach/worker"
)

// A subscriber's live device failing for now (FCM 503) and another device
// whose token is dead (APNs 410) leave the delivery to be retried for the
// live one: the last device's error used to decide, and the dead token
// failed the delivery for good.
func TestATransientErrorOnOneDeviceOutweighsADeadTokenOnAnother(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const m = "+84910000001"
		dead := "00000000000000000000000000000000000000000000000000000000000000ff"
		h.apns.Unregister(dead)
		h.subscriberWithDevices(subscriber.Row{MSISDN: m, Region: "HN", Locale: "vi"},
			subscriber.Device{Platform: subscriber.PlatformFCM, Token: "fcm-live"},
			subscriber.Device{Platform: subscriber.PlatformAPNs, Token: dead})
		c := h.act(h.promo([]campaign.Channel{campaign.ChannelPush}, 0).ID, campaign.ActionStart) // no worker
		ids := h.pendingDeliveriesOn(c, campaign.ChannelPush, 1)
		e := h.newEngine(worker.Settings{RetryBase: time.Hour})
		h.fcm.FailRate(1, 503, "UNAVAILABLE")
		if err := e.RunCountedSendTask(h.ctx, c.ID, campaign.ChannelPush, ids); err != nil {
			t.Fatal(err)
		}
		ds, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, c.ID, "", 0, 10)
		if err != nil || len(ds) != 1 || ds[0].Status != campaign.StatusPending {
			t.Errorf("deliveries %+v, %v: want the one pending for a retry", ds, err)
		}
	})
}

// The deployment's push credentials refused (the FCM service account
// revoked: invalid_grant at the token endpoint; the APNs key refused: 403
// InvalidProviderToken) fail no delivery for good: they are retried behind
// the breaker until an operator fixes them, as Twilio's own credential
// errors are. Every push of a campaign used to fail at its first attempt.
func TestRefusedPushCredentialsFailNoDeliveryForGood(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(60) // 40 with a device (20 FCM, 20 APNs), some opted out
		h.fcm.FailTokenFetch(400, "invalid_grant")
		h.apns.FailRate(1, 403, "InvalidProviderToken")
		c := h.promo([]campaign.Channel{campaign.ChannelPush}, 0)
		defer h.startWorker(worker.Settings{RetryBase: 50 * time.Millisecond})()
		h.act(c.ID, campaign.ActionStart)
		time.Sleep(3 * time.Second)
		if st := h.stats(c.ID); st.Deliveries[campaign.StatusFailed] > 0 || st.Deliveries[campaign.StatusSent] > 0 {
			t.Errorf("deliveries %v: want none failed (nor sent) while the credentials are refused", st.Deliveries)
		}
	})
}

// A push that renders larger than APNs and FCM take for one subscriber
// fails as its template's, without a call the services would refuse
// (PayloadTooLarge), and the others go.
func TestAPushTooLargeForOneSubscriberFailsOnlyTheirDelivery(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		rows := []subscriber.Row{
			{MSISDN: "+84912000001", Region: "HN", Attributes: map[string]string{"note": strings.Repeat("a", 1000)}},
			{MSISDN: "+84912000002", Region: "HN", Attributes: map[string]string{"note": "ngắn"}},
		}
		for i, r := range rows {
			h.subscriberWithDevices(r, subscriber.Device{Platform: subscriber.PlatformFCM, Token: fmt.Sprintf("fcm-%d", i)})
		}
		h.failsForTheFirst(rows, campaign.TemplateInput{Channel: campaign.ChannelPush, Title: "Bluezone",
			Body: `{{.Attr "note"}}{{.Attr "note"}}{{.Attr "note"}}{{.Attr "note"}}{{.Attr "note"}}`})
	})
}

// A subscriber whose every device turns out dead (their tokens removed)
// has no device: a campaign that asked for the SMS fallback sends it to
// them, once, as to one who never had a device. They used to get nothing.
func TestEveryDeviceDeadFallsBackToSMS(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const m = "+84910000002"
		h.fcm.Unregister("fcm-dead")
		h.subscriberWithDevices(subscriber.Row{MSISDN: m, Region: "HN", Locale: "vi"},
			subscriber.Device{Platform: subscriber.PlatformFCM, Token: "fcm-dead"})
		c := h.fallbackPromo()
		defer h.startWorker(worker.Settings{RetryBase: 100 * time.Millisecond})()
		h.act(c.ID, campaign.ActionStart)
		st := h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		sub, err := h.store.GetSubscriber(h.ctx, h.tenant.ID, m)
		if err != nil || len(sub.Devices) != 0 || h.twilio.CountTo(m) != 1 || st.Deliveries[campaign.StatusSent] != 1 {
			t.Errorf("deliveries %v, %d SMS, devices left %v (%v): want the dead token removed and one fallback SMS sent",
				st.Deliveries, h.twilio.CountTo(m), sub.Devices, err)
		}
	})
}

// subscriberWithDevices stores r with devs, registered in that order (the
// order a push tries them in).
func (h *harness) subscriberWithDevices(r subscriber.Row, devs ...subscriber.Device) {
	h.t.Helper()
	if _, err := h.store.UpsertSubscribers(h.ctx, h.tenant.ID, []subscriber.Row{r}, ""); err != nil {
		h.t.Fatal(err)
	}
	for i, d := range devs {
		if i > 0 {
			time.Sleep(5 * time.Millisecond) // registration times apart
		}
		if err := h.store.PutDevice(h.ctx, h.tenant.ID, r.MSISDN, d); err != nil {
			h.t.Fatal(err)
		}
	}
}

// Every push of a delivery carries one collapse id, the campaign's and the
// subscriber's: the same on each of the subscriber's devices (FCM's tag and
// apns-collapse-id, APNs's apns-collapse-id) and on any push of it sent
// again, so that the device shows it once, and another for each subscriber.
func TestAPushCarriesItsDeliverysCollapseID(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const a, b = "+84910000051", "+84910000052"
		apnsTok := "00000000000000000000000000000000000000000000000000000000000000a1"
		h.subscriberWithDevices(subscriber.Row{MSISDN: a, Region: "HN", Locale: "vi"},
			subscriber.Device{Platform: subscriber.PlatformFCM, Token: "fcm-a"},
			subscriber.Device{Platform: subscriber.PlatformAPNs, Token: apnsTok})
		h.subscriberWithDevices(subscriber.Row{MSISDN: b, Region: "HN", Locale: "vi"},
			subscriber.Device{Platform: subscriber.PlatformFCM, Token: "fcm-b"})
		c := h.promo([]campaign.Channel{campaign.ChannelPush}, 0)
		defer h.startWorker(worker.Settings{})()
		h.act(c.ID, campaign.ActionStart)
		h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)

		ids := map[string]string{}
		for _, m := range h.fcm.Messages() {
			if m.Tag != m.APNSCollapseID {
				t.Errorf("FCM push to %s: tag %q, apns-collapse-id %q; want them the same", m.Token, m.Tag, m.APNSCollapseID)
			}
			ids[m.Token] = m.Tag
		}
		for _, m := range h.apns.Messages() {
			ids[m.Token] = m.CollapseID
		}
		if len(ids) != 3 {
			t.Fatalf("pushes reached %v, want fcm-a, fcm-b and the APNs device", ids)
		}
		subs := map[string]int64{}
		for _, m := range []string{a, b} {
			s, err := h.store.GetSubscriber(h.ctx, h.tenant.ID, m)
			if err != nil {
				t.Fatal(err)
			}
			subs[m] = s.ID
		}
		want := map[string]string{"fcm-a": fmt.Sprintf("%s.%d", c.ID, subs[a]), apnsTok: fmt.Sprintf("%s.%d", c.ID, subs[a]),
			"fcm-b": fmt.Sprintf("%s.%d", c.ID, subs[b])}
		for tok, id := range want {
			if ids[tok] != id || len(id) > provider.MaxCollapseIDBytes {
				t.Errorf("push to %s: collapse id %q, want %q (at most %d bytes)", tok, ids[tok], id, provider.MaxCollapseIDBytes)
			}
		}
	})
}

// A deployment with no APNs credentials cannot push to an Apple device: a
// push-only exposure alert that asked for the SMS fallback sends a contact
// whose only device is Apple the SMS, as one with no device. The push used
// to fail (no_provider) and the contact was never warned. A contact with a
// reachable device too gets the push there and no SMS.
func TestADeviceNoPushServiceReachesFallsBackToSMS(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const appleOnly, both = "+84910000061", "+84910000062"
		h.subscriberWithDevices(subscriber.Row{MSISDN: appleOnly, Region: "HN", Locale: "vi"},
			subscriber.Device{Platform: subscriber.PlatformAPNs, Token: "00000000000000000000000000000000000000000000000000000000000000b1"})
		h.subscriberWithDevices(subscriber.Row{MSISDN: both, Region: "HN", Locale: "vi"},
			subscriber.Device{Platform: subscriber.PlatformAPNs, Token: "00000000000000000000000000000000000000000000000000000000000000b2"},
			subscriber.Device{Platform: subscriber.PlatformFCM, Token: "fcm-both"})
		delete(h.push, subscriber.PlatformAPNs) // no APNs credentials
		sms := h.template(campaign.TemplateInput{Name: "f1-sms", Channel: campaign.ChannelSMS, Locale: "vi",
			Body: "Ban da o gan nguoi nhiem COVID-19. Hay tu cach ly va goi 1900 9095."})
		push := h.template(campaign.TemplateInput{Name: "f1-push", Channel: campaign.ChannelPush, Locale: "vi",
			Title: "Cảnh báo tiếp xúc", Body: "Bạn đã ở gần người nhiễm COVID-19."})
		a, err := h.service.CreateAlert(h.ctx, h.admin, campaign.AlertInput{Name: "F1 contacts 2026-12-07",
			Channels:        []campaign.Channel{campaign.ChannelPush},
			Templates:       map[campaign.Channel]string{campaign.ChannelSMS: sms, campaign.ChannelPush: push},
			PushFallbackSMS: true, Contacts: []string{appleOnly, both}})
		if err != nil {
			t.Fatal(err)
		}
		defer h.startWorker(worker.Settings{})()
		st := h.waitState(a.ID, campaign.StateCompleted, 30*time.Second)
		if h.twilio.CountTo(appleOnly) != 1 || h.twilio.CountTo(both) != 0 || h.fcm.CountToken("fcm-both") != 1 ||
			len(h.apns.Messages()) != 0 || st.Deliveries[campaign.StatusSent] != 2 {
			t.Errorf("SMS %d to the Apple-only contact, %d to the other, FCM %d, APNs %d, deliveries %v: "+
				"want one SMS to the Apple-only contact, the push by FCM to the other, both sent",
				h.twilio.CountTo(appleOnly), h.twilio.CountTo(both), h.fcm.CountToken("fcm-both"), len(h.apns.Messages()), st.Deliveries)
		}
	})
}

// A stored number that is not a valid mobile, whose only device is on a
// platform with no push service, is skipped invalid_number as one with no
// device is: it was sent the fallback SMS.
func TestAnInvalidNumberWithAnUnreachableDeviceIsSkipped(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const bad = "+841623456789"
		h.subscriberWithDevices(subscriber.Row{MSISDN: bad, Region: "HN", Locale: "vi"},
			subscriber.Device{Platform: subscriber.PlatformAPNs, Token: "00000000000000000000000000000000000000000000000000000000000000c1"})
		delete(h.push, subscriber.PlatformAPNs)
		c := h.fallbackPromo()
		defer h.startWorker(worker.Settings{})()
		h.act(c.ID, campaign.ActionStart)
		st := h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		if n := h.twilio.CountTo(bad); n != 0 || st.Skipped[campaign.SkipInvalidNumber] != 1 {
			t.Errorf("invalid stored number %s was sent %d SMS; deliveries %v skipped %v (want 0 SMS, skipped invalid_number)",
				bad, n, st.Deliveries, st.Skipped)
		}
	})
}

// fallbackPromo creates a push install promotion that falls back to SMS.
func (h *harness) fallbackPromo() campaign.Campaign {
	h.t.Helper()
	sms := h.template(campaign.TemplateInput{Name: "fb-sms", Channel: campaign.ChannelSMS, Locale: "vi",
		Body: "Cai Bluezone: {{.InstallLink}}"})
	push := h.template(campaign.TemplateInput{Name: "fb-push", Channel: campaign.ChannelPush, Locale: "vi",
		Title: "Bluezone", Body: "Cài Bluezone"})
	c, err := h.service.CreateCampaign(h.ctx, h.admin, campaign.CampaignInput{Name: "fb",
		Kind: campaign.KindInstallPromotion, Channels: []campaign.Channel{campaign.ChannelPush},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: sms, campaign.ChannelPush: push}, PushFallbackSMS: true})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}
