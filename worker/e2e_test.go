package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"outreach/campaign"
	"outreach/config"
	"outreach/worker"
)

// forEachBackend runs a scenario on each backend in turn. Scenarios run in
// parallel with each other (-parallel, GOMAXPROCS by default): each has its
// own store, Redis database, fakes and clock, and most of their time is
// spent waiting on rates, windows and stale claims.
func forEachBackend(t *testing.T, fn func(t *testing.T, h *harness)) {
	t.Parallel()
	eachBackend(t, fn)
}

// forEachBackendAlone is forEachBackend for a scenario that checks an
// effect within a second (a pause, a cancel, a window's close) or a bound
// measured as it goes (messages in any one second, tasks queued): it runs
// before the parallel ones, with no other scenario of the package.
func forEachBackendAlone(t *testing.T, fn func(t *testing.T, h *harness)) {
	eachBackend(t, fn)
}

func eachBackend(t *testing.T, fn func(t *testing.T, h *harness)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, newHarness(t, b)) })
	}
}

func (h *harness) promo(channels []campaign.Channel, rate int) campaign.Campaign {
	h.t.Helper()
	tpl := map[campaign.Channel]string{}
	for _, ch := range channels {
		if ch == campaign.ChannelSMS {
			tpl[ch] = h.template(campaign.TemplateInput{Name: "promo-sms", Channel: ch, Locale: "vi",
				Body: "Cài Bluezone để nhận {{.RewardMB}}MB: {{.InstallLink}}", Transliterate: true})
		} else {
			tpl[ch] = h.template(campaign.TemplateInput{Name: "promo-push", Channel: ch, Locale: "vi",
				Title: "Bluezone", Body: "Chào {{.Name}}, cài Bluezone để bảo vệ cộng đồng"})
		}
	}
	c, err := h.service.CreateCampaign(h.ctx, h.admin, campaign.CampaignInput{Name: "Bluezone Q3",
		Kind: campaign.KindInstallPromotion, Channels: channels, Templates: tpl, RatePerSecond: rate,
		Reward: &campaign.Reward{DataMB: 5120, BudgetMB: 5120 * 1000, AttributionDays: 14}})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func TestACampaignReachesEveryEligibleSubscriberExactlyOncePerChannel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(2000)
		h.startWorker(worker.Settings{})
		c := h.promo([]campaign.Channel{campaign.ChannelSMS, campaign.ChannelPush}, 0)
		h.act(c.ID, campaign.ActionStart)
		s := h.waitState(c.ID, campaign.StateCompleted, 90*time.Second)

		var wantSMS, wantPush, optedOut, noDevice int
		for i, m := range msisdns {
			got := h.twilio.CountTo(m)
			switch {
			case i%10 == 0:
				optedOut++
				if got != 0 {
					t.Fatalf("opted-out %s got %d SMS", m, got)
				}
			default:
				wantSMS++
				if got != 1 {
					t.Fatalf("subscriber %d got %d SMS, want exactly 1 (stats %v)", i, got, s.Deliveries)
				}
			}
			var token string
			var pushes int
			if i%3 != 0 {
				if i%2 == 0 {
					token = fmt.Sprintf("%064x", i)
					pushes = h.apns.CountToken(token)
				} else {
					token = fmt.Sprintf("fcm-token-%d", i)
					pushes = h.fcm.CountToken(token)
				}
			}
			switch {
			case i%10 == 0:
				if pushes != 0 {
					t.Fatalf("opted-out subscriber %d got %d pushes", i, pushes)
				}
			case i%3 == 0:
				noDevice++
			default:
				wantPush++
				if pushes != 1 {
					t.Fatalf("subscriber %d got %d pushes, want exactly 1", i, pushes)
				}
			}
		}
		if got := h.twilio.Count(); got != wantSMS {
			t.Errorf("fake Twilio saw %d messages, want %d", got, wantSMS)
		}
		if got := h.fcm.Count() + h.apns.Count(); got != wantPush {
			t.Errorf("push fakes saw %d messages, want %d", got, wantPush)
		}
		// The stats equal the fakes' own counts, and every skip has its reason.
		sent := s.Deliveries[campaign.StatusSent] + s.Deliveries[campaign.StatusDelivered]
		if fakes := int64(h.twilio.Count() + h.fcm.Count() + h.apns.Count()); sent != fakes {
			t.Errorf("stats say %d sent, the fakes saw %d", sent, fakes)
		}
		if s.Skipped[campaign.SkipOptedOut] != int64(2*optedOut) {
			t.Errorf("skipped opted_out = %d, want %d (SMS and push)", s.Skipped[campaign.SkipOptedOut], 2*optedOut)
		}
		if s.Skipped[campaign.SkipNoDevice] != int64(noDevice) {
			t.Errorf("skipped no_device = %d, want %d", s.Skipped[campaign.SkipNoDevice], noDevice)
		}
		if s.Deliveries[campaign.StatusSkipped] != int64(2*optedOut+noDevice) {
			t.Errorf("skipped = %d, want %d", s.Deliveries[campaign.StatusSkipped], 2*optedOut+noDevice)
		}
		if s.Audience != 2000 {
			t.Errorf("audience = %d, want 2000", s.Audience)
		}
		// Marketing SMS carry the label, the opt-out text and an install link,
		// transliterated to GSM-7.
		m := h.twilio.Messages()[0]
		if !strings.HasPrefix(m.Body, "QC: Cai Bluezone de nhan 5120MB: https://outreach.test/i/") ||
			!strings.HasSuffix(m.Body, "Tu choi: soan TC gui 9241") {
			t.Errorf("SMS body %q lacks the label, link or opt-out text", m.Body)
		}
	})
}

// Two marketing campaigns to one audience, started together and sent by two
// workers, under a cap of one marketing message a day: each subscriber gets
// exactly one SMS, from one campaign or the other, and the other campaign
// records its delivery skipped for the cap.
func TestTwoCampaignsAtOnceKeepTheFrequencyCap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.policy.Cap = config.Cap{Count: 1, Period: 24 * time.Hour}
		msisdns := h.seed(400)
		for range 2 {
			h.startWorker(worker.Settings{BatchSize: 20, FastBatchSize: 20})
		}
		a := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		b := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(a.ID, campaign.ActionStart)
		h.act(b.ID, campaign.ActionStart)
		sa := h.waitState(a.ID, campaign.StateCompleted, 60*time.Second)
		sb := h.waitState(b.ID, campaign.StateCompleted, 60*time.Second)

		eligible := 0
		for i, m := range msisdns {
			want := 1
			if i%10 == 0 {
				want = 0 // opted out
			}
			eligible += want
			if got := h.twilio.CountTo(m); got != want {
				t.Fatalf("subscriber %d got %d SMS, want %d (stats %v and %v)", i, got, want, sa.Deliveries, sb.Deliveries)
			}
		}
		sent := sa.Deliveries[campaign.StatusSent] + sb.Deliveries[campaign.StatusSent]
		capped := sa.Skipped[campaign.SkipFrequencyCap] + sb.Skipped[campaign.SkipFrequencyCap]
		if sent != int64(eligible) || capped != int64(eligible) {
			t.Errorf("sent %d and capped %d across the two campaigns, want %d each (stats %v %v and %v %v)",
				sent, capped, eligible, sa.Deliveries, sa.Skipped, sb.Deliveries, sb.Skipped)
		}
	})
}

// A subscriber at the cap only because another campaign's message to them
// is still on its way is not skipped: the delivery waits, and when that
// message fails, this one goes. Under a cap of one a day, campaign A holds
// every subscriber's one slot with a message in flight; campaign B sends
// nothing meanwhile, and once A's messages fail, B reaches everyone once.
func TestAMessageHeldByTheCapGoesWhenTheOneInFlightFails(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.policy.Cap = config.Cap{Count: 1, Period: 24 * time.Hour}
		msisdns := h.seed(20)
		a := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		a = h.act(a.ID, campaign.ActionStart) // no worker runs yet
		// A worker of A's has claimed them and passed the cap check.
		var ids []int64
		for _, r := range h.claimedDeliveries(a, 20) {
			ids = append(ids, r.SubscriberID)
		}
		now := h.clock.Now()
		if res, err := h.store.ApplyCap(h.ctx, campaign.CapCheck{TenantID: a.TenantID, CampaignID: a.ID,
			Channel: campaign.ChannelSMS, SubscriberIDs: ids, Since: now.Add(-24 * time.Hour), Limit: 1, At: now}); err != nil ||
			len(res.Capped)+len(res.Held) != 0 {
			t.Fatalf("A's cap check: %+v, %v", res, err)
		}

		h.startWorker(worker.Settings{RetryBase: 200 * time.Millisecond})
		b := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(b.ID, campaign.ActionStart)
		time.Sleep(2 * time.Second)
		if n := h.twilio.Count(); n != 0 {
			t.Fatalf("B sent %d while A's messages were in flight", n)
		}
		var outs []campaign.Outcome
		for _, id := range ids {
			outs = append(outs, campaign.Outcome{CampaignID: a.ID, SubscriberID: id, Channel: campaign.ChannelSMS,
				Status: campaign.StatusFailed, ErrorCode: "30003", At: h.clock.Now()})
		}
		if err := h.store.RecordOutcomes(h.ctx, outs); err != nil {
			t.Fatal(err)
		}
		s := h.waitState(b.ID, campaign.StateCompleted, 30*time.Second)
		for i, m := range msisdns {
			want := 1
			if i%10 == 0 {
				want = 0 // opted out
			}
			if got := h.twilio.CountTo(m); got != want {
				t.Fatalf("subscriber %d got %d SMS from B, want %d (stats %v, skipped %v)", i, got, want, s.Deliveries, s.Skipped)
			}
		}
		if s.Skipped[campaign.SkipFrequencyCap] != 0 {
			t.Errorf("B skipped %d for the cap: a message held by one in flight must wait, not be skipped", s.Skipped[campaign.SkipFrequencyCap])
		}
		if n := testutil.ToFloat64(h.metrics.Deferred.WithLabelValues("sms", campaign.ErrorCapWait)); n < 18 {
			t.Errorf("outreach_deferred_total{reason=%q} = %v, want at least one per held subscriber (18)", campaign.ErrorCapWait, n)
		}
		// Waiting used up no send attempt: each went out on its first.
		ds, err := h.store.ListDeliveries(h.ctx, b.TenantID, b.ID, campaign.StatusSent, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			t.Fatal("B sent nothing: no attempt count to check")
		}
		for _, d := range ds {
			if d.Attempts != 1 {
				t.Fatalf("subscriber %d: %d attempts after waiting for the cap, want 1", d.SubscriberID, d.Attempts)
			}
		}
	})
}

// A push to a subscriber with no device is skipped as no_device even when
// the subscriber is at the frequency cap: that is why it does not go, and
// it takes no place under the cap.
func TestAPushToNoDeviceIsSkippedAsSuchWhateverTheCap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.policy.Cap = config.Cap{Count: 1, Period: 24 * time.Hour}
		h.seed(20) // 0 and 10 opted out; 3, 6, 9, 12, 15 and 18 without a device
		h.startWorker(worker.Settings{})
		a := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(a.ID, campaign.ActionStart)
		h.waitState(a.ID, campaign.StateCompleted, 60*time.Second) // every eligible one now at the cap
		b := h.promo([]campaign.Channel{campaign.ChannelPush}, 0)
		h.act(b.ID, campaign.ActionStart)
		sb := h.waitState(b.ID, campaign.StateCompleted, 60*time.Second)
		if sb.Skipped[campaign.SkipNoDevice] != 6 || sb.Skipped[campaign.SkipFrequencyCap] != 12 {
			t.Errorf("push to 18 eligible subscribers at the cap, 6 without a device: skipped %v, want 6 no_device and 12 frequency_cap", sb.Skipped)
		}
	})
}
