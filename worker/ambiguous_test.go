package worker_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"outreach/campaign"
	"outreach/worker"
)

// An exposure alert's SMS whose answer was lost is looked up at Twilio
// (twilio-go's message list, against the fake): the one Twilio took is
// recorded sent with its SID and not sent again; the one whose request
// never got in is sent again, so that the contact is warned, once. The
// alert completes only when both are settled.
func TestAnAmbiguousSendIsLookedUpSentAgainOnlyIfTwilioNeverTookIt(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const lost, dropped, plain = "+84910000021", "+84910000022", "+84910000023"
		h.twilio.LoseAnswerTo(lost, true)     // taken, then the connection cut
		h.twilio.DropRequestTo(dropped, true) // cut before Twilio took it
		defer h.startWorker(worker.Settings{LookupAfter: time.Second})()
		a := h.alert([]string{lost, dropped, plain})

		// Both sends end unknown first; then the network is healthy again.
		deadline := time.Now().Add(60 * time.Second)
		for h.stats(a.ID).Deliveries[campaign.StatusUnknown] < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("no two ambiguous sends: %v", h.stats(a.ID).Deliveries)
			}
			time.Sleep(20 * time.Millisecond)
		}
		h.twilio.DropRequestTo(dropped, false)

		st := h.waitState(a.ID, campaign.StateCompleted, 30*time.Second)
		if st.Deliveries[campaign.StatusUnknown] != 0 || st.Deliveries[campaign.StatusSent] != 3 {
			t.Errorf("alert completed with deliveries %v; want the 3 SMS sent, none unknown", st.Deliveries)
		}
		sids := map[string]string{}
		for _, m := range h.twilio.Messages() {
			sids[m.To] = m.SID
		}
		for _, m := range []string{lost, dropped, plain} {
			if n := h.twilio.CountTo(m); n != 1 {
				t.Errorf("Twilio took %d messages to %s, want exactly 1", n, m)
			}
		}
		ds, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, a.ID, "", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Channel != campaign.ChannelSMS {
				continue
			}
			if d.Status != campaign.StatusSent || d.ProviderMessageID != sids[d.MSISDN] || d.Segments < 1 {
				t.Errorf("SMS delivery to %s: %s, message %q, %d segments; want sent as Twilio's %q",
					d.MSISDN, d.Status, d.ProviderMessageID, d.Segments, sids[d.MSISDN])
			}
		}
		if taken, notTaken := testutil.ToFloat64(h.metrics.Ambiguous.WithLabelValues("twilio", "taken")),
			testutil.ToFloat64(h.metrics.Ambiguous.WithLabelValues("twilio", "not_taken")); taken != 1 || notTaken != 1 {
			t.Errorf("ambiguous sends resolved: taken %v, not taken %v; want 1 and 1", taken, notTaken)
		}
	})
}

// A worker claimed twenty SMS deliveries, sent them (but to the two
// opted-out subscribers) and never recorded anything, as a worker killed
// mid-batch. Once its claims are stale the eighteen
// are found at Twilio, by number, time and text, and recorded sent with
// their SIDs; the two others go back to be sent (and are skipped as opted
// out): every subscriber gets exactly one message. They used to go back
// to pending, and the eighteen were sent twice.
func TestADeadWorkersLastSendsAreFoundNotSentAgain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(100)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		c = h.act(c.ID, campaign.ActionStart) // no worker runs yet
		ids := h.pendingDeliveries(c, 20)
		h.dyingTask(c, campaign.ChannelSMS, ids)
		deadline := time.Now().Add(30 * time.Second)
		for h.twilio.Count() < 18 {
			if time.Now().After(deadline) {
				t.Fatalf("the dying worker sent %d messages, want 18", h.twilio.Count())
			}
			time.Sleep(10 * time.Millisecond)
		}
		sent := map[string]string{}
		for _, m := range h.twilio.Messages() {
			sent[m.To] = m.SID
		}
		if len(sent) != 18 {
			t.Fatalf("the dying worker sent %d messages, want 18", len(sent))
		}
		h.startWorker(worker.Settings{StaleAfter: time.Second, SendingStaleAfter: 3 * time.Second})
		h.waitState(c.ID, campaign.StateCompleted, 60*time.Second)
		h.expectOnce(msisdns)
		ds, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, c.ID, "", 0, 200)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if sid, ok := sent[d.MSISDN]; ok && (d.Status != campaign.StatusSent || d.ProviderMessageID != sid) {
				t.Errorf("the dead worker's send to %s: %s with message %q, want sent as %q", d.MSISDN, d.Status, d.ProviderMessageID, sid)
			}
		}
		if taken, notTaken := testutil.ToFloat64(h.metrics.Ambiguous.WithLabelValues("twilio", "taken")),
			testutil.ToFloat64(h.metrics.Ambiguous.WithLabelValues("twilio", "not_taken")); taken != 18 || notTaken != 2 {
			t.Errorf("stale claims looked up: taken %v, not taken %v; want 18 and 2", taken, notTaken)
		}
	})
}

// dyingTask runs a send task of c's deliveries on ch in a worker whose
// store never records an outcome: it sends and then hangs, its claims left
// "sending", as a worker killed mid-batch.
func (h *harness) dyingTask(c campaign.Campaign, ch campaign.Channel, ids []int64) {
	gone := make(chan struct{})
	plain := h.store
	h.store = recordHangStore{testStore: plain, gone: gone}
	dying := h.newEngine(worker.Settings{})
	h.store = plain
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = dying.RunCountedSendTask(h.ctx, c.ID, ch, ids) }()
	h.t.Cleanup(func() { close(gone); wg.Wait() })
}

// recordHangStore never records an outcome, as a worker's store lost
// mid-batch (or the worker frozen, then killed), until the test is gone.
type recordHangStore struct {
	testStore
	gone <-chan struct{}
}

func (s recordHangStore) RecordOutcomes(context.Context, []campaign.Outcome) error {
	<-s.gone
	return nil
}

// waitUnknown waits until a campaign has n ambiguous sends.
func (h *harness) waitUnknown(id string, n int64) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.stats(id).Deliveries[campaign.StatusUnknown] < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("campaign %s: no %d unknown: %v", id, n, h.stats(id).Deliveries)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// textsTo counts the messages Twilio took for a number, by text.
func (h *harness) textsTo(msisdn string) map[string]int {
	texts := map[string]int{}
	for _, m := range h.twilio.Messages() {
		if m.To == msisdn {
			texts[m.Body]++
		}
	}
	return texts
}

// Two alerts to one contact while Twilio is flaky: the first's request
// never got in, the second's got in and its answer was lost. Each look-up
// finds its own message by its text (not the other alert's, which is as
// near in time), so each alert reaches the contact once.
func TestTwoAlertsToOneContactEachFindTheirOwnMessage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const n = "+84910000031"
		alert := func(body string) campaign.AlertResult {
			tp := h.template(campaign.TemplateInput{Name: body, Channel: campaign.ChannelSMS, Locale: "vi", Body: body})
			res, err := h.service.CreateAlert(h.ctx, h.admin, campaign.AlertInput{Name: "F1", Channels: []campaign.Channel{campaign.ChannelSMS},
				Templates: map[campaign.Channel]string{campaign.ChannelSMS: tp}, Contacts: []string{n}})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		h.twilio.DropRequestTo(n, true)
		defer h.startWorker(worker.Settings{LookupAfter: 2 * time.Second})()
		one := alert("Canh bao 1: ban da o gan nguoi nhiem")
		h.waitUnknown(one.ID, 1)
		h.twilio.DropRequestTo(n, false)
		h.twilio.LoseAnswerTo(n, true)
		two := alert("Canh bao 2: hay tu cach ly")
		h.waitUnknown(two.ID, 1)
		h.twilio.LoseAnswerTo(n, false)
		h.waitState(one.ID, campaign.StateCompleted, 30*time.Second)
		h.waitState(two.ID, campaign.StateCompleted, 30*time.Second)
		texts := h.textsTo(n)
		if len(texts) != 2 || texts["Canh bao 1: ban da o gan nguoi nhiem"] != 1 || texts["Canh bao 2: hay tu cach ly"] != 1 {
			t.Errorf("the contact got %v, want each alert once", texts)
		}
	})
}

// An operator's test send to a number just before an alert to it whose
// request never got in is not taken for the alert's message: the alert
// is sent.
func TestATestSendIsNotTakenForAnAlertsMessage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		n := h.seed(5)[1]
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		if _, err := h.newEngine(worker.Settings{}).SendTest(h.ctx, c, n); err != nil {
			t.Fatal(err)
		}
		h.twilio.DropRequestTo(n, true)
		defer h.startWorker(worker.Settings{LookupAfter: 2 * time.Second})()
		a := h.alert([]string{n})
		h.waitUnknown(a.ID, 1)
		h.twilio.DropRequestTo(n, false)
		h.waitState(a.ID, campaign.StateCompleted, 30*time.Second)
		alerts := 0
		for text, k := range h.textsTo(n) {
			if strings.HasPrefix(text, "Ban da o gan") {
				alerts += k
			}
		}
		if alerts != 1 {
			t.Errorf("the contact got %d alert messages, want 1 (texts %v)", alerts, h.textsTo(n))
		}
	})
}

// A number whose every request is cut before Twilio takes it: each
// attempt is looked up, found missing and sent again, until MaxAttempts;
// then the delivery is failed and the alert completes.
func TestASendThatNeverGetsInStopsAtMaxAttempts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const n = "+84910000041"
		h.twilio.DropRequestTo(n, true)
		defer h.startWorker(worker.Settings{LookupAfter: 500 * time.Millisecond, MaxAttempts: 3})()
		a := h.alert([]string{n})
		st := h.waitState(a.ID, campaign.StateCompleted, 30*time.Second)
		ds, err := h.store.ListDeliveries(h.ctx, h.tenant.ID, a.ID, "", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Channel == campaign.ChannelSMS && (d.Status != campaign.StatusFailed || d.Attempts != 3) {
				t.Errorf("SMS delivery %s after %d attempts, want failed after 3", d.Status, d.Attempts)
			}
		}
		if got := h.twilio.Attempts(); got != 3 {
			t.Errorf("Twilio got %d requests, want 3 (deliveries %v)", got, st.Deliveries)
		}
	})
}

// A dead worker's claims found stale only after a pause longer than the
// look-up window (LookupWithin, a day by default) are still looked up and
// sent: the window runs from when they were recorded unknown.
func TestStaleClaimsOlderThanTheLookupWindowAreStillSent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(30)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		c = h.act(c.ID, campaign.ActionStart)
		h.claimedDeliveries(c, 10) // the worker dies holding them
		h.act(c.ID, campaign.ActionPause)
		time.Sleep(3 * time.Second)
		h.act(c.ID, campaign.ActionResume)
		h.startWorker(worker.Settings{StaleAfter: time.Second, SendingStaleAfter: time.Second, LookupWithin: 2 * time.Second})
		h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		h.expectOnce(msisdns)
	})
}

// A push campaign falling back to SMS for subscribers with no device: a
// dead worker's fallback SMS are looked up like any SMS and not sent again.
func TestADeadWorkersFallbackSMSAreNotSentAgain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(30) // every third subscriber has no device
		sms := h.template(campaign.TemplateInput{Name: "fb-sms", Channel: campaign.ChannelSMS, Locale: "vi", Body: "Cai Bluezone: {{.InstallLink}}"})
		push := h.template(campaign.TemplateInput{Name: "fb-push", Channel: campaign.ChannelPush, Locale: "vi", Title: "Bluezone", Body: "Cài Bluezone"})
		c, err := h.service.CreateCampaign(h.ctx, h.admin, campaign.CampaignInput{Name: "fallback",
			Channels: []campaign.Channel{campaign.ChannelPush}, PushFallbackSMS: true,
			Templates: map[campaign.Channel]string{campaign.ChannelSMS: sms, campaign.ChannelPush: push}})
		if err != nil {
			t.Fatal(err)
		}
		c = h.act(c.ID, campaign.ActionStart) // no worker runs yet
		ids := h.pendingDeliveriesOn(c, campaign.ChannelPush, 30)
		h.dyingTask(c, campaign.ChannelPush, ids)
		// 10 without a device, 1 of them opted out; 20 with one, 2 opted out.
		deadline := time.Now().Add(30 * time.Second)
		for h.twilio.Count() < 9 || h.fcm.Count()+h.apns.Count() < 18 {
			if time.Now().After(deadline) {
				t.Fatalf("the dying worker sent %d SMS and %d pushes, want 9 and 18", h.twilio.Count(), h.fcm.Count()+h.apns.Count())
			}
			time.Sleep(10 * time.Millisecond)
		}
		h.startWorker(worker.Settings{StaleAfter: time.Second, SendingStaleAfter: 3 * time.Second})
		h.waitState(c.ID, campaign.StateCompleted, 60*time.Second)
		for _, m := range h.twilio.Messages() {
			if k := h.twilio.CountTo(m.To); k != 1 {
				t.Errorf("%s got %d fallback SMS, want 1", m.To, k)
			}
		}
		if got := h.twilio.Count(); got != 9 {
			t.Errorf("Twilio took %d fallback SMS, want 9", got)
		}
	})
}

// countHookStore runs hook once, the first time CountUnfinished finds a
// campaign with nothing unfinished, before answering.
type countHookStore struct {
	testStore
	hook func()
}

func (s *countHookStore) CountUnfinished(ctx context.Context, id string) (int64, error) {
	n, err := s.testStore.CountUnfinished(ctx, id)
	if n == 0 && s.hook != nil {
		hook := s.hook
		s.hook = nil
		hook()
	}
	return n, err
}

// Two monitors: B puts an ambiguous send back to pending just after A has
// counted nothing unfinished. A must not complete the alert then: its
// delivery would never be sent.
func TestAMonitorDoesNotCompleteACampaignWhoseSendAnotherPutBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		const n = "+84910000051"
		h.twilio.DropRequestTo(n, true)
		stop := h.startWorker(worker.Settings{LookupAfter: time.Hour})
		a := h.alert([]string{n})
		h.waitUnknown(a.ID, 1)
		stop()
		h.twilio.DropRequestTo(n, false)
		set := worker.Settings{LookupAfter: time.Millisecond, MonitorEvery: time.Hour, StaleAfter: time.Hour, SendingStaleAfter: time.Hour}
		b := h.newEngine(set)
		hooked := &countHookStore{testStore: h.store, hook: func() {
			if err := b.MonitorPass(h.ctx, false); err != nil {
				t.Error(err)
			}
		}}
		plain := h.store
		h.store = hooked
		monitorA := h.newEngine(set)
		h.store = plain
		if err := monitorA.MonitorPass(h.ctx, false); err != nil {
			t.Fatal(err)
		}
		if st := h.stats(a.ID); st.State == campaign.StateCompleted {
			t.Fatalf("the alert completed with deliveries %v", st.Deliveries)
		}
		h.startWorker(worker.Settings{})
		h.waitState(a.ID, campaign.StateCompleted, 30*time.Second)
		if got := h.twilio.CountTo(n); got != 1 {
			t.Errorf("Twilio took %d messages to the contact, want 1", got)
		}
	})
}

// beforeCountStore runs hook once, before the first CountUnfinished.
type beforeCountStore struct {
	testStore
	hook func()
}

func (s *beforeCountStore) CountUnfinished(ctx context.Context, id string) (int64, error) {
	if hook := s.hook; hook != nil {
		s.hook = nil
		hook()
	}
	return s.testStore.CountUnfinished(ctx, id)
}

// Monitor A, on a re-drive pass, has looked up the ambiguous sends (none
// yet) when another process records a dead worker's stale SMS claims
// unknown. A then counts nothing unfinished: it must look up again before
// it completes the campaign, or the claims would never be looked up or
// sent.
func TestAReDrivePassDoesNotCompleteOverClaimsJustFoundStale(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(6)
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		c = h.act(c.ID, campaign.ActionStart) // no worker runs
		claimed := h.claimedDeliveries(c, 2)
		if err := h.store.SetFanoutProgress(h.ctx, c.ID, claimed[len(claimed)-1].SubscriberID+1000, true); err != nil {
			t.Fatal(err)
		}
		hooked := &beforeCountStore{testStore: h.store, hook: func() {
			// The other process's reset (its clock ahead, say).
			if n, err := h.store.(interface {
				ResetStaleSending(context.Context, string, time.Time, string, bool) (int64, error)
			}).ResetStaleSending(h.ctx, c.ID, time.Now().Add(time.Second), "twilio", false); err != nil || n != 2 {
				t.Errorf("the other process reset %d, %v; want 2", n, err)
			}
		}}
		plain := h.store
		h.store = hooked
		a := h.newEngine(worker.Settings{SendingStaleAfter: time.Hour, StaleAfter: time.Hour, MonitorEvery: time.Hour})
		h.store = plain
		if err := a.MonitorPass(h.ctx, true); err != nil {
			t.Fatal(err)
		}
		if st := h.stats(c.ID); st.State == campaign.StateCompleted {
			t.Errorf("campaign completed with deliveries %v: the stale claims would never be looked up nor sent", st.Deliveries)
		}
	})
}
