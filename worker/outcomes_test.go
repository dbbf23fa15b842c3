package worker_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"outreach/campaign"
	"outreach/subscriber"
	"outreach/worker"
)

// A push that one device's provider took is recorded and counted as that
// provider's, whichever device was tried last.
func TestAPushIsRecordedAsSentByTheProviderThatTookIt(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const m = "+84910000001"
		bad := "00000000000000000000000000000000000000000000000000000000000000ff"
		h.apns.BadToken(bad)
		// Devices are tried in the order they were registered.
		h.subscriberWithDevices(subscriber.Row{MSISDN: m, Region: "HN", Locale: "vi"},
			subscriber.Device{Platform: subscriber.PlatformFCM, Token: "fcm-good"},
			subscriber.Device{Platform: subscriber.PlatformAPNs, Token: bad})
		c := h.promo([]campaign.Channel{campaign.ChannelPush}, 100)
		defer h.startWorker(worker.Settings{})()
		h.act(c.ID, campaign.ActionStart)
		h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		ds, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, c.ID, "", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if h.fcm.Count() != 1 || len(ds) != 1 || ds[0].Status != campaign.StatusSent || ds[0].Provider != "fcm" {
			t.Errorf("FCM took %d; deliveries %+v: want one sent by fcm", h.fcm.Count(), ds)
		}
		if fcm, apns := testutil.ToFloat64(h.metrics.Messages.WithLabelValues("push", "fcm", "sent")),
			testutil.ToFloat64(h.metrics.Messages.WithLabelValues("push", "apns", "sent")); fcm != 1 || apns != 0 {
			t.Errorf("messages sent counted fcm %v, apns %v; want 1 and 0", fcm, apns)
		}
	})
}

// A test send writes no delivery, so it counts no skipped one.
func TestATestSendCountsNoSkip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		c := h.promo([]campaign.Channel{campaign.ChannelPush}, 100)
		skips := h.metrics.Skips.WithLabelValues("push", string(campaign.SkipNoDevice))
		before := testutil.ToFloat64(skips)
		res, err := h.service.SendTest(h.ctx, h.admin, c.ID, "+84910000009")
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || res[0].Error != string(campaign.SkipNoDevice) {
			t.Errorf("test send %+v: want no_device", res)
		}
		if after := testutil.ToFloat64(skips); after != before {
			t.Errorf("skips counted %v -> %v", before, after)
		}
	})
}

// A send whose answer was lost may have gone and been billed: it keeps
// its segments, and the campaign's count has them once a receipt confirms it.
func TestAnUnknownSendKeepsItsSegments(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const m = "+84910000002"
		if _, err := h.store.UpsertSubscribers(h.ctx, h.tenant.ID, []subscriber.Row{{MSISDN: m, Region: "HN", Locale: "vi"}}, ""); err != nil {
			t.Fatal(err)
		}
		h.twilio.LoseAnswerTo(m, true)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 100)
		defer h.startWorker(worker.Settings{})()
		h.act(c.ID, campaign.ActionStart)
		deadline := time.Now().Add(30 * time.Second)
		for h.stats(c.ID).Deliveries[campaign.StatusUnknown] == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		msgs := h.twilio.Messages()
		if len(msgs) != 1 || msgs[0].Segments < 1 {
			t.Fatalf("the fake took %+v", msgs)
		}
		if st := h.stats(c.ID); st.Deliveries[campaign.StatusUnknown] != 1 || st.Segments != int64(msgs[0].Segments) {
			t.Errorf("unknown: deliveries %v, segments %d; want 1 unknown of %d segments", st.Deliveries, st.Segments, msgs[0].Segments)
		}
		ds, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, c.ID, "", 0, 10)
		if err != nil || len(ds) != 1 {
			t.Fatalf("deliveries %+v, %v", ds, err)
		}
		key := &campaign.DeliveryKey{CampaignID: c.ID, SubscriberID: ds[0].SubscriberID, Channel: campaign.ChannelSMS}
		if ok, err := h.store.ApplyReceipt(h.ctx, campaign.Receipt{Provider: "twilio", MessageID: msgs[0].SID, Delivery: key,
			Status: campaign.StatusDelivered, At: time.Now()}); err != nil || !ok {
			t.Fatalf("receipt: %v, %v", ok, err)
		}
		if st := h.stats(c.ID); st.Deliveries[campaign.StatusDelivered] != 1 || st.Segments != int64(msgs[0].Segments) {
			t.Errorf("delivered: deliveries %v, segments %d; want %d", st.Deliveries, st.Segments, msgs[0].Segments)
		}
	})
}
