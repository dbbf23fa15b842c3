package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"outreach/campaign"
	"outreach/internal/queue"
	"outreach/worker"
)

func (h *harness) alert(contacts []string) campaign.AlertResult {
	h.t.Helper()
	sms := h.template(campaign.TemplateInput{Name: "f1-sms", Channel: campaign.ChannelSMS, Locale: "vi",
		Body: "Ban da o gan nguoi nhiem COVID-19. Hay tu cach ly va goi 1900 9095."})
	push := h.template(campaign.TemplateInput{Name: "f1-push", Channel: campaign.ChannelPush, Locale: "vi",
		Title: "Cảnh báo tiếp xúc", Body: "Bạn đã ở gần người nhiễm COVID-19. Hãy tự cách ly."})
	res, err := h.service.CreateAlert(h.ctx, h.admin, campaign.AlertInput{Name: "F1 contacts 2026-11-24",
		Channels:  []campaign.Channel{campaign.ChannelSMS, campaign.ChannelPush},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: sms, campaign.ChannelPush: push},
		Contacts:  contacts})
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

func TestAnAlertOvertakesASaturatingCampaignAndBothFinishExactlyOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const rate = 200
		msisdns := h.seed(1500) // 1,350 marketing SMS: about 7 s at the sender's full rate
		set := worker.Settings{SMSRate: rate}
		h.startWorker(set)
		h.startWorker(set)
		promo := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(promo.ID, campaign.ActionStart)
		for h.twilio.Count() < 2*rate { // marketing is saturating the sender
			time.Sleep(20 * time.Millisecond)
		}
		// 500 contacts: 450 subscribers (45 of them opted out of marketing)
		// and 50 numbers that are not subscribers yet, in national form.
		contacts := append([]string{}, msisdns[1000:1450]...)
		for i := 0; i < 50; i++ {
			contacts = append(contacts, fmt.Sprintf("098%07d", i))
		}
		before := time.Now()
		a := h.alert(contacts)
		if a.Contacts != 500 || len(a.InvalidContacts) != 0 {
			t.Fatalf("alert took %d contacts (%d invalid), want 500", a.Contacts, len(a.InvalidContacts))
		}
		h.waitState(a.ID, campaign.StateCompleted, 60*time.Second)
		took := time.Since(before)
		for i, m := range contacts {
			if len(m) == 10 {
				m = "+84" + m[1:]
			}
			min := 1
			if i < 450 && (1000+i)%10 != 0 {
				min = 2 // also this subscriber's marketing message, sent or still to come
			}
			if got := h.twilio.CountTo(m); got < 1 || got > min {
				t.Fatalf("contact %d got %d SMS", i, got)
			}
		}
		ps := h.stats(promo.ID)
		mktLeft := ps.Deliveries[campaign.StatusPending] + ps.Deliveries[campaign.StatusSending]
		t.Logf("alert of 500 reached the provider in %v while marketing saturated %d/s; %d marketing deliveries still pending then", took, rate, mktLeft)
		if mktLeft == 0 {
			t.Error("marketing finished before the alert: the test did not overlap them")
		}
		h.waitState(promo.ID, campaign.StateCompleted, 60*time.Second)
		for i, m := range msisdns {
			want := 0
			if i%10 != 0 {
				want++ // marketing
			}
			if i >= 1000 && i < 1450 {
				want++ // the alert reaches opted-out contacts too
			}
			if got := h.twilio.CountTo(m); got != want {
				t.Fatalf("subscriber %d got %d SMS, want %d", i, got, want)
			}
		}
	})
}

func TestAnAlertIgnoresTheMarketingSendWindow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(20)
		h.policy.Window.Start, h.policy.Window.End = 7*60, 22*60
		h.clock.Set(time.Date(2026, 11, 24, 23, 30, 0, 0, h.policy.Zone))
		h.startWorker(worker.Settings{})
		a := h.alert(msisdns)
		h.waitState(a.ID, campaign.StateCompleted, 30*time.Second)
		for i, m := range msisdns {
			if got := h.twilio.CountTo(m); got != 1 {
				t.Fatalf("contact %d got %d alert SMS at 23:30, want 1", i, got)
			}
		}
	})
}

func TestAlertContactListsArePurgedAfterRetentionLeavingCounts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(30)
		e := h.newEngine(worker.Settings{AlertRetention: 14 * 24 * time.Hour})
		h.startWorker(worker.Settings{})
		a := h.alert(msisdns[:20])
		before := h.waitState(a.ID, campaign.StateCompleted, 30*time.Second)
		if n, err := e.PurgeAlertContacts(h.ctx); err != nil || n != 0 {
			t.Fatalf("purge right after the alert: %d, %v; want nothing purged", n, err)
		}
		h.clock.Set(time.Now().Add(15 * 24 * time.Hour))
		if n, err := e.PurgeAlertContacts(h.ctx); err != nil || n != 1 {
			t.Fatalf("purge after 15 days: %d, %v; want the one alert", n, err)
		}
		after := h.stats(a.ID)
		for _, st := range campaign.AllStatuses {
			if before.Deliveries[st] != after.Deliveries[st] {
				t.Errorf("%s: %d before the purge, %d after", st, before.Deliveries[st], after.Deliveries[st])
			}
		}
		page, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, a.ID, "", 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 40 {
			t.Fatalf("a purged alert lists %d deliveries, want its 40 (20 SMS, 20 push)", len(page))
		}
		for _, d := range page {
			if d.MSISDN != "" || d.ProviderMessageID != "" {
				t.Fatalf("a purged alert still names who it reached: %+v", d)
			}
		}
	})
}

func TestACancelledAlertStopsWithinASecond(t *testing.T) {
	forEachBackendAlone(t, func(t *testing.T, h *harness) {
		// 1,500 alert SMS at 50/s: thirty seconds. Fifteen tasks of 100
		// start at once and each claims 20: 300 claimed, six seconds of
		// the sender's rate, when the cancel comes.
		msisdns := h.seed(1500)
		h.startWorker(worker.Settings{SMSRate: 50})
		a := h.alert(msisdns)
		for h.twilio.Count() < 25 {
			time.Sleep(10 * time.Millisecond)
		}
		h.act(a.ID, campaign.ActionCancel)
		time.Sleep(time.Second) // a cancel takes effect within a second
		stopped := h.twilio.Count()
		time.Sleep(1500 * time.Millisecond)
		if n := h.twilio.Count(); n != stopped {
			t.Fatalf("a cancelled alert sent %d more SMS after the first second", n-stopped)
		}
		if stopped >= 1200 {
			t.Fatalf("the alert sent %d before the cancel could be tested", stopped)
		}
		// What the workers had claimed and not sent goes back (and is then
		// settled as cancelled), however long a loaded machine takes.
		deadline := time.Now().Add(30 * time.Second)
		st := h.stats(a.ID)
		for st.Deliveries[campaign.StatusSending] != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d deliveries left sending: %+v", st.Deliveries[campaign.StatusSending], st.Deliveries)
			}
			time.Sleep(100 * time.Millisecond)
			st = h.stats(a.ID)
		}
		t.Logf("%d alert SMS before the cancel took effect; deliveries %v", stopped, st.Deliveries)
	})
}

// A worker killed while sending an alert batch leaves the batch's task
// "active" under a lease nobody renews; asynq takes it back only once the
// lease has run out, and the monitor re-drives its deliveries only after
// OUTREACH_STALE_AFTER. A live worker hands an orphaned batch to a new task
// without waiting for either: here every batch of the alert is left active
// under an hour-long lease by a dead worker, with the re-drive an hour away,
// so the contacts are reached only if the sweep finds the orphans.
func TestAnAlertBatchOrphanedByADeadWorkerIsSentByAnother(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(30)
		sms := h.template(campaign.TemplateInput{Name: "f1-sms", Channel: campaign.ChannelSMS, Locale: "vi",
			Body: "Ban da o gan nguoi nhiem COVID-19. Hay tu cach ly va goi 1900 9095."})
		res, err := h.service.CreateAlert(h.ctx, h.admin, campaign.AlertInput{Name: "F1 contacts 2026-11-24",
			Channels: []campaign.Channel{campaign.ChannelSMS}, Templates: map[campaign.Channel]string{campaign.ChannelSMS: sms},
			Contacts: msisdns})
		if err != nil {
			t.Fatal(err)
		}
		conn := h.conn()
		insp := asynq.NewInspectorFromRedisClient(conn.Redis)
		queued, err := insp.ListPendingTasks(queue.QueueAlerts)
		if err != nil {
			t.Fatal(err)
		}
		var orphans int
		for _, task := range queued {
			if task.Type == worker.TypeSend {
				h.orphan(conn, queue.QueueAlerts, task.ID)
				orphans++
			}
		}
		if orphans == 0 {
			t.Fatalf("the alert queued no send batch ahead of its fan-out (%d tasks queued)", len(queued))
		}

		h.startWorker(worker.Settings{StaleAfter: time.Hour, SendingStaleAfter: time.Hour})
		st := h.waitState(res.ID, campaign.StateCompleted, time.Minute)
		for _, m := range msisdns {
			if got := h.twilio.CountTo(m); got != 1 {
				t.Fatalf("a contact got %d alerts, want 1 (stats %v)", got, st.Deliveries)
			}
		}
	})
}
