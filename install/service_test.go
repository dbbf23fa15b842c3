package install_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/install"
	"outreach/internal/apperr"
	"outreach/reward"
	"outreach/store/sqlite"
	"outreach/store/storetest"
	"outreach/subscriber"
	"outreach/tenant"
)

type env struct {
	st     *sqlite.Store
	svc    *install.Service
	ledger *reward.Ledger
	queued []string
	ctx    context.Context
	tenant tenant.Tenant // has its own secret
	shared tenant.Tenant // uses the deployment-wide secret
	now    time.Time
	promo  campaign.Campaign
	ids    map[string]int64
}

const (
	ownSecret    = "tenant-secret"
	sharedSecret = "deployment-secret"
)

func number(n int) string { return fmt.Sprintf("+849%08d", n) }

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "outreach.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, ctx: ctx, now: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	if e.tenant, err = st.EnsureTenant(ctx, "viettel"); err != nil {
		t.Fatal(err)
	}
	if err := st.SetInstallSecret(ctx, e.tenant.ID, ownSecret); err != nil {
		t.Fatal(err)
	}
	if e.shared, err = st.EnsureTenant(ctx, "mobifone"); err != nil {
		t.Fatal(err)
	}
	var rows []subscriber.Row
	var nums []string
	for n := 1; n <= 8; n++ {
		rows = append(rows, subscriber.Row{MSISDN: number(n), Region: "DN"})
		nums = append(nums, number(n))
	}
	if _, err := st.UpsertSubscribers(ctx, e.tenant.ID, rows, ""); err != nil {
		t.Fatal(err)
	}
	if e.ids, err = st.EnsureSubscribers(ctx, e.tenant.ID, nums); err != nil {
		t.Fatal(err)
	}
	e.promo = e.campaign(t, &campaign.Reward{DataMB: 5120, BudgetMB: 5120 * 3, AttributionDays: 14})
	e.ledger = &reward.Ledger{Store: st, Now: e.clock, Enqueuer: reward.EnqueuerFunc(func(_ context.Context, id string) error {
		e.queued = append(e.queued, id)
		return nil
	})}
	e.svc = &install.Service{Store: st, Tenants: st, Ledger: e.ledger, DefaultSecret: sharedSecret, Now: e.clock}
	return e
}

func (e *env) clock() time.Time { return e.now }

func (e *env) campaign(t *testing.T, r *campaign.Reward) campaign.Campaign {
	t.Helper()
	c := &campaign.Campaign{TenantID: e.tenant.ID, Name: "promo", Kind: campaign.KindInstallPromotion,
		Channels: []campaign.Channel{campaign.ChannelSMS}, State: campaign.StateRunning, Reward: r}
	if err := e.st.CreateCampaign(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	return *c
}

func (e *env) send(t *testing.T, c campaign.Campaign, at time.Time, ns ...int) {
	t.Helper()
	var ds []campaign.NewDelivery
	for _, n := range ns {
		ds = append(ds, campaign.NewDelivery{SubscriberID: e.ids[number(n)], ReferralCode: fmt.Sprintf("ref%s%d", c.ID[:4], n)})
	}
	if err := storetest.SendPromotion(e.ctx, e.st, c, campaign.ChannelSMS, ds, at); err != nil {
		t.Fatal(err)
	}
}

func code(c campaign.Campaign, n int) string { return fmt.Sprintf("ref%s%d", c.ID[:4], n) }

func body(fields map[string]any) []byte {
	b, _ := json.Marshal(fields)
	return b
}

func (e *env) signed(tenantName, secret string, b []byte, at time.Time) install.Signed {
	ts := strconv.FormatInt(at.Unix(), 10)
	return install.Signed{Tenant: tenantName, Timestamp: ts, Signature: install.Sign(secret, ts, b), Body: b}
}

func (e *env) handle(t *testing.T, fields map[string]any) install.Result {
	t.Helper()
	res, err := e.svc.Handle(e.ctx, e.signed("viettel", ownSecret, body(fields), e.now))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func installedAt(e *env) string { return e.now.Add(-time.Minute).Format(time.RFC3339) }

func TestRefusedCallbacksWriteNothing(t *testing.T) {
	e := newEnv(t)
	b := body(map[string]any{"msisdn": number(1), "device_id": "d1", "platform": "android", "installed_at": installedAt(e)})
	stale := e.signed("viettel", ownSecret, b, e.now.Add(-6*time.Minute))
	cases := []struct {
		name string
		in   install.Signed
		want *install.AuthError
	}{
		{"no tenant header", install.Signed{Timestamp: stale.Timestamp, Signature: stale.Signature, Body: b}, install.ErrTenantMissing},
		// Answered as a known tenant's forgery: tenant names cannot be probed.
		{"an unknown tenant", e.signed("vinaphone", ownSecret, b, e.now), install.ErrBadSignature},
		{"an unknown tenant, unsigned", install.Signed{Tenant: "vinaphone", Timestamp: stale.Timestamp, Body: b}, install.ErrSignatureMissing},
		{"an unknown tenant's name over 200 bytes", e.signed(strings.Repeat("v", 201), ownSecret, b, e.now), install.ErrBadSignature},
		{"signed with the deployment secret for a tenant with its own", e.signed("viettel", sharedSecret, b, e.now), install.ErrBadSignature},
		{"signed with another tenant's secret", e.signed("mobifone", ownSecret, b, e.now), install.ErrBadSignature},
		{"a stale timestamp", stale, install.ErrTimestampStale},
		{"a future timestamp", e.signed("viettel", ownSecret, b, e.now.Add(10*time.Minute)), install.ErrTimestampFuture},
		{"a tampered body", install.Signed{Tenant: "viettel", Timestamp: stale.Timestamp, Signature: e.signed("viettel", ownSecret, b, e.now).Signature, Body: append(b, ' ')}, install.ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.svc.Handle(e.ctx, c.in)
			status := apperr.ErrUnauthorized // 401: no valid credentials
			if c.want == install.ErrBadSignature {
				status = apperr.ErrForbidden // 403: forged, as a forged Twilio webhook is
			}
			if !errors.Is(err, c.want) || !errors.Is(err, status) {
				t.Fatalf("err = %v, want %v (%v)", err, c.want, status)
			}
		})
	}
	counts, _ := e.st.InstallCounts(e.ctx, e.tenant.ID)
	sub, _ := e.st.GetSubscriber(e.ctx, e.tenant.ID, number(1))
	rs, _ := e.st.ListRewards(e.ctx, e.tenant.ID, reward.Query{Limit: 10})
	if len(counts) != 0 || sub.Installed || len(rs) != 0 {
		t.Errorf("refused callbacks wrote: counts %v, installed %v, rewards %d", counts, sub.Installed, len(rs))
	}
}

func TestTheDeploymentSecretServesTenantsWithoutTheirOwn(t *testing.T) {
	e := newEnv(t)
	b := body(map[string]any{"msisdn": number(1), "device_id": "d1", "platform": "android", "installed_at": installedAt(e)})
	if _, err := e.svc.Handle(e.ctx, e.signed("mobifone", sharedSecret, b, e.now)); err != nil {
		t.Fatalf("shared secret: %v", err)
	}
	e.svc.DefaultSecret = ""
	fresh := &install.Service{Store: e.st, Tenants: e.st, Now: e.clock}
	if _, err := fresh.Handle(e.ctx, e.signed("mobifone", "", b, e.now)); !errors.Is(err, install.ErrBadSignature) {
		t.Fatalf("no secret anywhere: err = %v, want %v (the reason is logged, not told)", err, install.ErrBadSignature)
	}
}

func TestAttributionAndRewards(t *testing.T) {
	e := newEnv(t)
	e.send(t, e.promo, e.now.Add(-48*time.Hour), 1, 2, 3, 4, 7)

	t.Run("a referral code attributes the install and earns a pending reward", func(t *testing.T) {
		res := e.handle(t, map[string]any{"referral_code": code(e.promo, 1), "device_id": "d1", "platform": "android",
			"installed_at": installedAt(e)})
		if res.Via != install.ViaReferral || res.CampaignID == nil || *res.CampaignID != e.promo.ID || res.Duplicate ||
			res.Reward == nil || res.Reward.State != reward.StatePending || res.Reward.DataMB != 5120 {
			t.Fatalf("result = %+v reward %+v", res, res.Reward)
		}
		if len(e.queued) != 1 || e.queued[0] != res.Reward.ID {
			t.Errorf("queued %v, want the reward", e.queued)
		}
		again := e.handle(t, map[string]any{"referral_code": code(e.promo, 1), "device_id": "d1", "platform": "android",
			"installed_at": installedAt(e)})
		if !again.Replay || again.InstallID != res.InstallID || again.Reward == nil || again.Reward.ID != res.Reward.ID {
			t.Errorf("replay = %+v", again)
		}
	})
	t.Run("a number alone is attributed to the last message sent to it", func(t *testing.T) {
		res := e.handle(t, map[string]any{"msisdn": "0" + number(2)[3:], "device_id": "d2", "platform": "ios",
			"installed_at": installedAt(e)})
		if res.Via != install.ViaLastMessage || res.CampaignID == nil || *res.CampaignID != e.promo.ID ||
			res.Reward == nil || res.Reward.State != reward.StatePending {
			t.Fatalf("result = %+v", res)
		}
	})
	t.Run("another subscriber's code does not move a number's install", func(t *testing.T) {
		res := e.handle(t, map[string]any{"msisdn": number(5), "referral_code": code(e.promo, 3), "device_id": "d5",
			"platform": "ios", "installed_at": installedAt(e)})
		if res.Via != install.ViaOrganic || res.CampaignID != nil || res.Reward != nil {
			t.Fatalf("result = %+v", res)
		}
	})
	t.Run("a second device of an installed subscriber is a duplicate with no reward", func(t *testing.T) {
		res := e.handle(t, map[string]any{"msisdn": number(2), "device_id": "d2-tablet", "platform": "android",
			"installed_at": installedAt(e)})
		if !res.Duplicate || res.Reward != nil {
			t.Fatalf("result = %+v", res)
		}
	})
	t.Run("a device already rewarded earns nothing for another subscriber", func(t *testing.T) {
		res := e.handle(t, map[string]any{"msisdn": number(3), "device_id": "d1", "platform": "android",
			"installed_at": installedAt(e)})
		if res.Reward == nil || res.Reward.State != reward.StateRejected || res.Reward.Reason != reward.ReasonDeviceAlreadyRewarded {
			t.Fatalf("result = %+v reward %+v", res, res.Reward)
		}
	})
	t.Run("an unknown number counts, organic and unrewarded", func(t *testing.T) {
		res := e.handle(t, map[string]any{"msisdn": "+84987654321", "device_id": "dx", "platform": "android",
			"installed_at": installedAt(e)})
		if res.Via != install.ViaOrganic || res.Duplicate || res.Reward != nil {
			t.Fatalf("result = %+v", res)
		}
	})
	t.Run("an unknown code with no number is refused", func(t *testing.T) {
		_, err := e.svc.Handle(e.ctx, e.signed("viettel", ownSecret, body(map[string]any{"referral_code": "nope",
			"device_id": "d", "platform": "ios", "installed_at": installedAt(e)}), e.now))
		var fe apperr.FieldErrors
		if !errors.As(err, &fe) || fe["referral_code"] == "" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("an install dated in the future is refused", func(t *testing.T) {
		_, err := e.svc.Handle(e.ctx, e.signed("viettel", ownSecret, body(map[string]any{"msisdn": number(6),
			"device_id": "d6", "platform": "ios", "installed_at": e.now.Add(time.Hour).Format(time.RFC3339)}), e.now))
		var fe apperr.FieldErrors
		if !errors.As(err, &fe) || fe["installed_at"] == "" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("the budget runs out on the fourth paid reward and another campaign pays from its own", func(t *testing.T) {
		// 1 and 2 are pending, 3 was rejected for its device: one left.
		res := e.handle(t, map[string]any{"msisdn": number(4), "device_id": "d4", "platform": "ios", "installed_at": installedAt(e)})
		if res.Reward == nil || res.Reward.State != reward.StatePending {
			t.Fatalf("third paid reward: %+v", res.Reward)
		}
		res = e.handle(t, map[string]any{"msisdn": number(7), "device_id": "d7", "platform": "ios", "installed_at": installedAt(e)})
		if res.Reward == nil || res.Reward.State != reward.StateRejected || res.Reward.Reason != reward.ReasonBudgetExhausted {
			t.Fatalf("fourth reward: %+v", res.Reward)
		}
		late := e.campaign(t, &campaign.Reward{DataMB: 5120, BudgetMB: 5120, AttributionDays: 14})
		e.send(t, late, e.now.Add(-time.Hour), 6)
		res = e.handle(t, map[string]any{"msisdn": number(6), "device_id": "d6", "platform": "ios", "installed_at": installedAt(e)})
		if res.Reward == nil || res.Reward.State != reward.StatePending || *res.CampaignID != late.ID {
			t.Fatalf("another campaign's budget: %+v", res.Reward)
		}
		tot, _ := e.ledger.Totals(e.ctx, e.tenant.ID, e.promo.ID)
		if tot.Count[reward.StatePending] != 3 || tot.MB[reward.StatePending] != 3*5120 {
			t.Errorf("totals = %+v", tot)
		}
	})
	t.Run("campaign stats count the installs and granted rewards", func(t *testing.T) {
		installs, granted, mb, err := e.st.CampaignRewardStats(e.ctx, e.tenant.ID, e.promo.ID)
		if err != nil || installs != 5 || granted != 0 || mb != 0 {
			t.Errorf("stats = %d installs, %d granted, %d MB, %v; want 5, 0, 0", installs, granted, mb, err)
		}
	})
}

func TestAReferralOutsideTheWindowIsRecordedRejected(t *testing.T) {
	e := newEnv(t)
	e.send(t, e.promo, e.now.Add(-20*24*time.Hour), 1)
	res := e.handle(t, map[string]any{"referral_code": code(e.promo, 1), "device_id": "d1", "platform": "android",
		"installed_at": installedAt(e)})
	if res.Via != install.ViaReferral || res.Reward == nil || res.Reward.State != reward.StateRejected ||
		res.Reward.Reason != reward.ReasonOutsideWindow {
		t.Fatalf("result = %+v reward %+v", res, res.Reward)
	}
	if len(e.queued) != 0 {
		t.Errorf("a rejected reward was queued: %v", e.queued)
	}
}

// An install dated before its referral code's message was sent cannot have
// been driven by it: recorded by the code, its reward rejected.
func TestAReferralInstallDatedBeforeItsMessageIsRecordedRejected(t *testing.T) {
	e := newEnv(t)
	e.send(t, e.promo, e.now.Add(-time.Hour), 1)
	res := e.handle(t, map[string]any{"referral_code": code(e.promo, 1), "device_id": "d1", "platform": "android",
		"installed_at": e.now.Add(-10 * 24 * time.Hour).Format(time.RFC3339)})
	if res.Via != install.ViaReferral || res.Reward == nil || res.Reward.Reason != reward.ReasonOutsideWindow {
		t.Fatalf("result = %+v reward %+v", res, res.Reward)
	}
	// A few minutes of clock skew between the app backend and us is not.
	e.send(t, e.promo, e.now.Add(-time.Hour), 2)
	res = e.handle(t, map[string]any{"referral_code": code(e.promo, 2), "device_id": "d2", "platform": "android",
		"installed_at": e.now.Add(-time.Hour - 2*time.Minute).Format(time.RFC3339)})
	if res.Reward == nil || res.Reward.State != reward.StatePending {
		t.Fatalf("an install 2 minutes before its message: %+v reward %+v", res, res.Reward)
	}
}

func TestACampaignWithoutRewardAttributesOnly(t *testing.T) {
	e := newEnv(t)
	free := e.campaign(t, nil)
	e.send(t, free, e.now.Add(-time.Hour), 1)
	res := e.handle(t, map[string]any{"msisdn": number(1), "device_id": "d1", "platform": "android", "installed_at": installedAt(e)})
	if res.CampaignID == nil || *res.CampaignID != free.ID || res.Reward != nil {
		t.Fatalf("result = %+v", res)
	}
}

func TestClicks(t *testing.T) {
	e := newEnv(t)
	e.send(t, e.promo, e.now.Add(-time.Hour), 1)
	for _, c := range []struct {
		code string
		want bool
	}{{code(e.promo, 1), true}, {"unknown", false}, {"../etc", false}, {"", false}} {
		ok, err := e.svc.Click(e.ctx, c.code)
		if err != nil || ok != c.want {
			t.Errorf("Click(%q) = %v, %v; want %v", c.code, ok, err, c.want)
		}
	}
}

// A replay answers as the first time, from what was stored: a receipt that
// marks the attributed message undelivered since does not hide the reward
// the install was given.
func TestAReplayAnswersWithTheRewardStoredTheFirstTime(t *testing.T) {
	e := newEnv(t)
	e.send(t, e.promo, e.now.Add(-time.Hour), 1)
	fields := map[string]any{"msisdn": number(1), "device_id": "d1", "platform": "android", "installed_at": installedAt(e)}
	first := e.handle(t, fields)
	if first.Reward == nil || first.Reward.State != reward.StatePending {
		t.Fatalf("first answer %+v: want a pending reward", first)
	}
	ds, err := e.st.ListDeliveries(e.ctx, e.tenant.ID, e.promo.ID, "", 0, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries %+v, %v", ds, err)
	}
	ok, err := e.st.ApplyReceipt(e.ctx, campaign.Receipt{Provider: ds[0].Provider, MessageID: ds[0].ProviderMessageID,
		Status: campaign.StatusUndelivered, At: e.now,
		Delivery: &campaign.DeliveryKey{CampaignID: e.promo.ID, SubscriberID: e.ids[number(1)], Channel: campaign.ChannelSMS}})
	if err != nil || !ok {
		t.Fatalf("receipt: %v, %v", ok, err)
	}
	again := e.handle(t, fields)
	if !again.Replay || again.InstallID != first.InstallID || again.Reward == nil || again.Reward.ID != first.Reward.ID {
		t.Errorf("replay %+v (reward %+v): want the first answer's install and reward %s", again, again.Reward, first.Reward.ID)
	}
}
