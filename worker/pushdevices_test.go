package worker_test

import (
	"testing"
	"time"

	"outreach/campaign"
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
		if _, err := h.store.UpsertSubscribers(h.ctx, h.tenant.ID, []subscriber.Row{{MSISDN: m, Region: "HN", Locale: "vi"}}, ""); err != nil {
			t.Fatal(err)
		}
		for _, d := range []subscriber.Device{{Platform: subscriber.PlatformFCM, Token: "fcm-live"},
			{Platform: subscriber.PlatformAPNs, Token: dead}} {
			if err := h.store.PutDevice(h.ctx, h.tenant.ID, m, d); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // devices are tried in registration order
		}
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
