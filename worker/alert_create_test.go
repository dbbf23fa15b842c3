package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/internal/queue"
	"outreach/subscriber"
	"outreach/worker"
)

// hookSubs runs hook once, before the second EnsureSubscribers call: after
// an alert's first part of its list is stored and queued, while the rest is
// being written.
type hookSubs struct {
	subscriber.Store
	calls atomic.Int32
	hook  func()
}

func (s *hookSubs) EnsureSubscribers(ctx context.Context, tenantID string, msisdns []string) (map[string]int64, error) {
	if s.calls.Add(1) == 2 {
		s.hook()
	}
	return s.Store.EnsureSubscribers(ctx, tenantID, msisdns)
}

// alertContacts are n numbers for an alert, and its SMS template.
func (h *harness) alertContacts(n int) (contacts []string, template string) {
	for i := range n {
		contacts = append(contacts, fmt.Sprintf("+8498%07d", i))
	}
	return contacts, h.template(campaign.TemplateInput{Name: "f1-sms", Channel: campaign.ChannelSMS, Locale: "vi",
		Body: "Bạn đã ở gần người nhiễm COVID-19. Hãy tự cách ly và gọi 1900 9095."})
}

// createAlert creates an SMS alert to contacts with template, on ctx.
func (h *harness) createAlert(ctx context.Context, svc *campaign.Service, contacts []string, template string) (campaign.AlertResult, error) {
	return svc.CreateAlert(ctx, h.admin, campaign.AlertInput{Name: "F1", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: template}, Contacts: contacts})
}

// waitReached waits up to within for every contact to have had an SMS and
// says how many had.
func (h *harness) waitReached(contacts []string, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		reached := 0
		for _, m := range contacts {
			if h.twilio.CountTo(m) > 0 {
				reached++
			}
		}
		if reached == len(contacts) || time.Now().After(deadline) {
			return reached
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Redis emptied while an alert's list is written loses the hold on its
// fan-out. The monitor used to page the part of the list stored so far,
// mark fan-out done and complete the alert, and the rest of the contacts
// were never alerted, with a success answered.
func TestAnAlertWhoseHoldIsLostWhileItsListIsWrittenReachesEveryContact(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.startWorker(worker.Settings{MonitorEvery: 100 * time.Millisecond})
		contacts, sms := h.alertContacts(1200)
		conn := h.conn()
		subs := &hookSubs{Store: h.store}
		subs.hook = func() {
			keys, _ := conn.Redis.Keys(h.ctx, "outreach:fanout:*").Result()
			if len(keys) > 0 {
				conn.Redis.Del(h.ctx, keys...)
			}
			time.Sleep(time.Second) // ten monitor passes
		}
		svc := *h.service
		svc.Subscribers = subs
		res, err := h.createAlert(h.ctx, &svc, contacts, sms)
		if err != nil {
			t.Fatal(err)
		}
		if n := h.waitReached(contacts, 30*time.Second); n != len(contacts) {
			t.Errorf("%d of %d contacts alerted (state %s)", n, len(contacts), h.stats(res.ID).State)
		}
	})
}

// A health official whose client hangs up while the alert's list is
// written (a proxy's timeout, a dropped connection) does not stop the
// alert: it used to be cancelled with its first part sent, unaudited.
func TestAnAlertGoesOnWhenItsCallerHangsUp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.startWorker(worker.Settings{})
		contacts, sms := h.alertContacts(1200)
		reqCtx, hangUp := context.WithCancel(h.ctx)
		subs := &hookSubs{Store: h.store, hook: hangUp}
		svc := *h.service
		svc.Subscribers = subs
		h.createAlert(reqCtx, &svc, contacts, sms) // its answer goes nowhere
		if n := h.waitReached(contacts, 30*time.Second); n != len(contacts) {
			t.Errorf("%d of %d contacts alerted after the caller hung up", n, len(contacts))
		}
		cs, err := h.store.ListCampaigns(h.ctx, h.tenant.ID, campaign.KindExposureAlert, "", 10)
		if err != nil || len(cs) != 1 {
			t.Fatalf("alerts %v, %v", cs, err)
		}
		entries, err := h.store.(interface {
			ListAudit(ctx context.Context, tenantID string, limit int) ([]campaign.AuditEntry, error)
		}).ListAudit(h.ctx, h.tenant.ID, 100)
		if err != nil || !slices.ContainsFunc(entries, func(e campaign.AuditEntry) bool {
			return e.ObjectID == cs[0].ID && e.Action == "alert.create"
		}) {
			t.Errorf("no alert.create audit entry for the alert: %v", err)
		}
	})
}

// An alert whose creation fails once it is stored (here: its Redis is out
// of reach) is cancelled, so that the retention purge removes its contact
// list; it used to stay a draft, holding health data for good.
func TestAFailedAlertCreationLeavesNothingRetentionCannotPurge(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		contacts, sms := h.alertContacts(50)
		dead, err := queue.Connect("redis://127.0.0.1:1/0")
		if err != nil {
			t.Fatal(err)
		}
		defer dead.Close()
		eng := worker.New(worker.Deps{Store: h.store, Subscribers: h.store, Queue: dead, SMS: h.sms, Push: h.push,
			Policy: h.policy, Now: h.clock.Now, Metrics: h.metrics, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		defer eng.Close()
		svc := *h.service
		svc.Dispatcher = eng
		if _, err := h.createAlert(h.ctx, &svc, contacts, sms); err == nil {
			t.Fatal("an alert created with its Redis out of reach")
		}
		cs, err := h.store.ListCampaigns(h.ctx, h.tenant.ID, campaign.KindExposureAlert, "", 10)
		if err != nil || len(cs) != 1 || cs[0].State != campaign.StateCancelled {
			t.Fatalf("alerts left %+v, %v: want one, cancelled", cs, err)
		}
		h.clock.Set(time.Now().Add(15 * 24 * time.Hour)) // past the retention
		if _, err := h.newEngine(worker.Settings{}).PurgeAlertContacts(h.ctx); err != nil {
			t.Fatal(err)
		}
		if ids, err := h.store.AudiencePage(h.ctx, cs[0], 0, 1000); err != nil || len(ids) > 0 {
			t.Errorf("the failed alert still holds %d contacts after the retention period (%v)", len(ids), err)
		}
		if _, err := h.store.GetSubscriber(h.ctx, h.tenant.ID, contacts[0]); err == nil {
			t.Error("its alert-only contact is still a subscriber after the retention period")
		}
	})
}

// A worker that stops cleanly (SIGTERM, a rolling deploy) while sending an
// alert hands the rest of its batches to the next worker: they used to
// stay pending, with no task, until the reconciler's re-drive minutes
// later.
func TestACleanWorkerRestartDoesNotStallAnAlert(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		set := worker.Settings{SMSRate: 200, StaleAfter: 2 * time.Minute}
		stop := h.startWorker(set)
		contacts, sms := h.alertContacts(500)
		if _, err := h.createAlert(h.ctx, h.service, contacts, sms); err != nil {
			t.Fatal(err)
		}
		for h.twilio.Count() < 60 {
			time.Sleep(10 * time.Millisecond)
		}
		stop()
		h.startWorker(set)
		// 500 SMS at 200 a second: 2.5 s of sending.
		if n := h.waitReached(contacts, 30*time.Second); n != len(contacts) {
			t.Errorf("30 s after a clean worker restart %d of %d contacts alerted", n, len(contacts))
		}
	})
}
