package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"outreach/campaign"
	"outreach/install"
	"outreach/internal/apperr"
	"outreach/reward"
	"outreach/subscriber"
	"outreach/tenant"
)

// InstallStore is the part of a store the installs and rewards contract
// covers; it seeds tenants, subscribers, campaigns and deliveries through
// the other halves.
type InstallStore interface {
	tenant.Store
	subscriber.Store
	campaign.Store
	install.Store
	reward.Store
	campaign.RewardStats
	// AddInstallCounts adds installs counted elsewhere (a backfill).
	AddInstallCounts(ctx context.Context, tenantID string, counts map[string]int64) error
	// CampaignBudget reports a campaign's budget and what is committed.
	CampaignBudget(ctx context.Context, campaignID string) (budgetMB, spentMB int64, err error)
}

// SendPromotion writes deliveries of an install promotion on ch and marks
// them sent at `at`, as fan-out and a send task would.
func SendPromotion(ctx context.Context, st campaign.Store, c campaign.Campaign, ch campaign.Channel, ds []campaign.NewDelivery, at time.Time) error {
	for start := 0; start < len(ds); start += 1000 {
		batch := ds[start:min(start+1000, len(ds))]
		if _, err := st.InsertDeliveries(ctx, c, ch, batch); err != nil {
			return fmt.Errorf("insert deliveries: %w", err)
		}
		ids := make([]int64, len(batch))
		for i, d := range batch {
			ids[i] = d.SubscriberID
		}
		rs, err := st.ClaimDeliveries(ctx, c.ID, ch, ids)
		if err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		outs := make([]campaign.Outcome, len(rs))
		for i, r := range rs {
			outs[i] = campaign.Outcome{CampaignID: c.ID, SubscriberID: r.SubscriberID, Channel: ch,
				Status: campaign.StatusSent, Provider: "test", ProviderMessageID: fmt.Sprintf("m-%s-%d", ch, r.ID),
				Segments: 1, At: at}
		}
		if err := st.RecordOutcomes(ctx, outs); err != nil {
			return fmt.Errorf("record outcomes: %w", err)
		}
	}
	return nil
}

type instFixture struct {
	st     InstallStore
	ctx    context.Context
	tenant string
	other  string
	ids    map[string]int64 // msisdn → subscriber id, tenant A
	now    time.Time
}

func instMSISDN(n int) string { return fmt.Sprintf("+849%08d", n) }

// newInstFixture seeds two tenants: A with subscribers 1..n in regions HN
// (odd) and DN (even), B with subscriber 1 (the same number).
func newInstFixture(t *testing.T, st InstallStore, n int) *instFixture {
	t.Helper()
	ctx := context.Background()
	a, err := st.EnsureTenant(ctx, "carrier-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.EnsureTenant(ctx, "carrier-b")
	if err != nil {
		t.Fatal(err)
	}
	var rows []subscriber.Row
	for i := 1; i <= n; i++ {
		rows = append(rows, subscriber.Row{MSISDN: instMSISDN(i), Region: []string{"DN", "HN"}[i%2], Locale: "vi"})
	}
	for start := 0; start < len(rows); start += 5000 {
		if _, err := st.UpsertSubscribers(ctx, a.ID, rows[start:min(start+5000, len(rows))], ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.UpsertSubscribers(ctx, b.ID, []subscriber.Row{{MSISDN: instMSISDN(1), Region: "HN"}}, ""); err != nil {
		t.Fatal(err)
	}
	numbers := make([]string, n)
	for i := range numbers {
		numbers[i] = instMSISDN(i + 1)
	}
	ids, err := st.EnsureSubscribers(ctx, a.ID, numbers)
	if err != nil {
		t.Fatal(err)
	}
	return &instFixture{st: st, ctx: ctx, tenant: a.ID, other: b.ID, ids: ids,
		now: time.Now().UTC().Truncate(time.Second)}
}

func (f *instFixture) id(n int) int64 { return f.ids[instMSISDN(n)] }

// promotion creates a running install promotion of tenantID paying dataMB
// per install from budgetMB, attributing over days.
func (f *instFixture) promotion(t *testing.T, tenantID string, dataMB, budgetMB int64, days int) campaign.Campaign {
	t.Helper()
	c := &campaign.Campaign{TenantID: tenantID, Name: "promo", Kind: campaign.KindInstallPromotion,
		Channels: []campaign.Channel{campaign.ChannelSMS}, State: campaign.StateRunning, RatePerSecond: 100}
	if dataMB > 0 {
		c.Reward = &campaign.Reward{DataMB: dataMB, BudgetMB: budgetMB, AttributionDays: days}
	}
	if err := f.st.CreateCampaign(f.ctx, c); err != nil {
		t.Fatal(err)
	}
	return *c
}

// send delivers c's SMS to subscribers ns at `at`, each with referral code
// "<prefix><n>".
func (f *instFixture) send(t *testing.T, c campaign.Campaign, prefix string, at time.Time, ns ...int) {
	t.Helper()
	ds := make([]campaign.NewDelivery, len(ns))
	for i, n := range ns {
		ds[i] = campaign.NewDelivery{SubscriberID: f.id(n), ReferralCode: fmt.Sprintf("%s%d", prefix, n)}
	}
	if err := SendPromotion(f.ctx, f.st, c, campaign.ChannelSMS, ds, at); err != nil {
		t.Fatal(err)
	}
}

func (f *instFixture) install(n int, device string, at time.Time) *install.Install {
	return &install.Install{TenantID: f.tenant, SubscriberID: f.id(n), MSISDN: instMSISDN(n), DeviceID: device,
		Platform: install.PlatformAndroid, InstalledAt: at, ReceivedAt: f.now, Region: []string{"DN", "HN"}[n%2],
		Via: install.ViaOrganic}
}

func (f *instFixture) record(t *testing.T, in *install.Install) install.RecordResult {
	t.Helper()
	res, err := f.st.RecordInstall(f.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (f *instFixture) reward(c campaign.Campaign, n int, device string) *reward.Reward {
	return &reward.Reward{TenantID: c.TenantID, CampaignID: c.ID, SubscriberID: f.id(n), MSISDN: instMSISDN(n),
		DeviceID: device, InstallID: uuid.NewString(), DataMB: c.Reward.DataMB, State: reward.StatePending,
		CreatedAt: f.now}
}

func (f *instFixture) create(t *testing.T, r *reward.Reward, budget int64) bool {
	t.Helper()
	created, err := f.st.CreateReward(f.ctx, r, budget)
	if err != nil {
		t.Fatal(err)
	}
	return created
}

func (f *instFixture) spent(t *testing.T, c campaign.Campaign) int64 {
	t.Helper()
	_, spent, err := f.st.CampaignBudget(f.ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	return spent
}

// RunInstalls is the contract of install.Store and reward.Store. newStore
// returns a fresh, migrated, empty store.
func RunInstalls(t *testing.T, newStore func(t *testing.T) InstallStore) {
	t.Run("the first install of a number counts, a later one is a duplicate and a replay writes nothing", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 4)
		at := f.now.Add(-time.Hour).Add(123456 * time.Microsecond)
		first := f.install(1, "dev-1", at)
		if res := f.record(t, first); res.Replay || first.Duplicate || first.ID == "" {
			t.Fatalf("first install: replay %v duplicate %v id %q", res.Replay, first.Duplicate, first.ID)
		}
		again := f.install(1, "dev-1", at)
		res := f.record(t, again)
		if !res.Replay || again.ID != first.ID || again.Duplicate {
			t.Fatalf("replay: replay %v id %q (want %q) duplicate %v", res.Replay, again.ID, first.ID, again.Duplicate)
		}
		if !again.InstalledAt.Equal(at) || again.MSISDN != instMSISDN(1) || again.Region != "HN" {
			t.Errorf("replay read back %+v", again)
		}
		second := f.install(1, "dev-2", at.Add(time.Hour))
		if res := f.record(t, second); res.Replay || !second.Duplicate || second.ID == first.ID {
			t.Fatalf("second device: replay %v duplicate %v", res.Replay, second.Duplicate)
		}
		secondAgain := f.install(1, "dev-2", at.Add(time.Hour))
		if res := f.record(t, secondAgain); !res.Replay || !secondAgain.Duplicate || secondAgain.ID != second.ID {
			t.Fatalf("replay of the duplicate: replay %v duplicate %v", res.Replay, secondAgain.Duplicate)
		}
		sub, err := f.st.GetSubscriber(f.ctx, f.tenant, instMSISDN(1))
		if err != nil {
			t.Fatal(err)
		}
		if !sub.Installed || sub.InstalledAt == nil || !sub.InstalledAt.Equal(at) {
			t.Errorf("subscriber installed %v at %v, want true at %v", sub.Installed, sub.InstalledAt, at)
		}
		counts, err := f.st.InstallCounts(f.ctx, f.tenant)
		if err != nil {
			t.Fatal(err)
		}
		if len(counts) != 1 || counts["HN"] != 1 {
			t.Errorf("counts = %v, want HN 1", counts)
		}
		// The same number in another tenant is another subscriber.
		theirs := &install.Install{TenantID: f.other, MSISDN: instMSISDN(1), DeviceID: "dev-1", Platform: install.PlatformIOS,
			InstalledAt: at, ReceivedAt: f.now, Via: install.ViaOrganic}
		if res := f.record(t, theirs); res.Replay || theirs.Duplicate {
			t.Errorf("other tenant's install: replay %v duplicate %v", res.Replay, theirs.Duplicate)
		}
		if c, _ := f.st.InstallCounts(f.ctx, f.tenant); c["HN"] != 1 {
			t.Errorf("tenant A counts after B's install = %v", c)
		}
	})

	t.Run("an install of an unknown number counts with no region and a backfill adds to the counts", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 2)
		in := &install.Install{TenantID: f.tenant, MSISDN: "+84987000111", DeviceID: "d", Platform: install.PlatformIOS,
			InstalledAt: f.now, ReceivedAt: f.now, Via: install.ViaOrganic}
		f.record(t, in)
		f.record(t, f.install(2, "d2", f.now))
		if err := f.st.AddInstallCounts(f.ctx, f.tenant, map[string]int64{"DN": 456000, "QN": 371000}); err != nil {
			t.Fatal(err)
		}
		counts, err := f.st.InstallCounts(f.ctx, f.tenant)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"": 1, "DN": 456001, "QN": 371000}
		if fmt.Sprint(counts) != fmt.Sprint(want) {
			t.Errorf("counts = %v, want %v", counts, want)
		}
	})

	t.Run("a number that installed before it joined the base starts installed", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 1)
		at := f.now.Add(-time.Hour)
		for _, m := range []string{"+84987000211", "+84987000212"} {
			f.record(t, &install.Install{TenantID: f.tenant, MSISDN: m, DeviceID: "d" + m, Platform: install.PlatformIOS,
				InstalledAt: at, ReceivedAt: f.now, Via: install.ViaOrganic})
		}
		// Imported, and named by an alert: both are installed, so that an
		// audience of subscribers without the app leaves them out.
		if _, err := f.st.UpsertSubscribers(f.ctx, f.tenant, []subscriber.Row{{MSISDN: "+84987000211", Region: "HN"}}, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.EnsureSubscribers(f.ctx, f.tenant, []string{"+84987000212"}); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"+84987000211", "+84987000212"} {
			s, err := f.st.GetSubscriber(f.ctx, f.tenant, m)
			if err != nil || !s.Installed || s.InstalledAt == nil || !s.InstalledAt.Equal(at) {
				t.Errorf("subscriber %s: installed %v at %v (%v), want installed at %v", m, s.Installed, s.InstalledAt, err, at)
			}
		}
		// The other tenant's install of a number says nothing here.
		if _, err := f.st.UpsertSubscribers(f.ctx, f.other, []subscriber.Row{{MSISDN: "+84987000211"}}, ""); err != nil {
			t.Fatal(err)
		}
		if s, err := f.st.GetSubscriber(f.ctx, f.other, "+84987000211"); err != nil || s.Installed {
			t.Errorf("the other tenant's subscriber: installed %v (%v), want not", s.Installed, err)
		}
	})

	t.Run("concurrent installs of one number count exactly one", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 1)
		var wg sync.WaitGroup
		var mu sync.Mutex
		ids := map[string]bool{}
		counted := 0
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// four devices, each reported four times
				in := f.install(1, fmt.Sprintf("dev-%d", g%4), f.now)
				res, err := f.st.RecordInstall(f.ctx, in)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				ids[in.ID] = true
				if !in.Duplicate && !res.Replay {
					counted++
				}
			}()
		}
		wg.Wait()
		if len(ids) != 4 || counted != 1 {
			t.Errorf("%d installs stored (want 4), %d counted (want 1)", len(ids), counted)
		}
		if c, _ := f.st.InstallCounts(f.ctx, f.tenant); c["HN"] != 1 {
			t.Errorf("counts = %v, want HN 1", c)
		}
	})

	t.Run("a referral code finds its delivery in its tenant only", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 3)
		c := f.promotion(t, f.tenant, 100, 1000, 14)
		sent := f.now.Add(-2 * time.Hour)
		f.send(t, c, "code", sent, 1, 2)
		a, found, err := f.st.AttributionByReferral(f.ctx, f.tenant, "code2")
		if err != nil || !found {
			t.Fatalf("found %v err %v", found, err)
		}
		if a.CampaignID != c.ID || a.Target.SubscriberID != f.id(2) || a.Target.MSISDN != instMSISDN(2) ||
			a.Target.Region != "DN" || !a.SentAt.Equal(sent) || a.Reward == nil || a.Reward.DataMB != 100 ||
			a.Reward.BudgetMB != 1000 || a.Reward.AttributionDays != 14 {
			t.Errorf("attribution = %+v (reward %+v)", a, a.Reward)
		}
		for _, q := range []struct{ tenant, code string }{{f.other, "code2"}, {f.tenant, "code3"}, {f.tenant, "nope"}} {
			if _, found, err := f.st.AttributionByReferral(f.ctx, q.tenant, q.code); err != nil || found {
				t.Errorf("%v: found %v err %v", q, found, err)
			}
		}
	})

	t.Run("the last promotion is the latest message sent within its campaign's window", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 6)
		long := f.promotion(t, f.tenant, 100, 10000, 30)
		short := f.promotion(t, f.tenant, 100, 10000, 2)
		none := f.promotion(t, f.tenant, 0, 0, 0)
		at := f.now
		f.send(t, long, "l", at.Add(-10*24*time.Hour), 1, 2, 3, 4)
		f.send(t, short, "s", at.Add(-5*24*time.Hour), 1, 2) // outside its 2 days
		f.send(t, short, "s", at.Add(-24*time.Hour), 3)      // inside
		f.send(t, none, "n", at.Add(-3*24*time.Hour), 4)     // default window 14 days
		f.send(t, long, "l", at.Add(time.Hour), 5)           // after the install
		want := map[int]string{1: long.ID, 2: long.ID, 3: short.ID, 4: none.ID}
		for n := 1; n <= 6; n++ {
			a, found, err := f.st.LastPromotion(f.ctx, f.tenant, f.id(n), at, 14)
			if err != nil {
				t.Fatal(err)
			}
			if want[n] == "" {
				if found {
					t.Errorf("subscriber %d: attributed to %s, want none", n, a.CampaignID)
				}
				continue
			}
			if !found || a.CampaignID != want[n] {
				t.Errorf("subscriber %d: found %v campaign %s, want %s", n, found, a.CampaignID, want[n])
			}
		}
		a, _, _ := f.st.LastPromotion(f.ctx, f.tenant, f.id(3), at, 14)
		if !a.SentAt.Equal(at.Add(-24*time.Hour)) || a.Reward == nil || a.Reward.AttributionDays != 2 {
			t.Errorf("subscriber 3: %+v", a)
		}
		// 31 days after the message its 30-day window is over.
		if _, found, _ := f.st.LastPromotion(f.ctx, f.tenant, f.id(1), at.Add(21*24*time.Hour), 14); found {
			t.Errorf("subscriber 1 attributed 31 days after the message")
		}
		// Another tenant never sees these messages.
		if _, found, _ := f.st.LastPromotion(f.ctx, f.other, f.id(1), at, 14); found {
			t.Errorf("another tenant's lookup found tenant A's message")
		}
	})

	t.Run("the window's edge is exact to the microsecond", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 2)
		c := f.promotion(t, f.tenant, 100, 10000, 14)
		sent := f.now.Add(-20*24*time.Hour + 500*time.Microsecond)
		f.send(t, c, "e", sent, 1)
		closes := sent.Add(14 * 24 * time.Hour)
		if _, found, err := f.st.LastPromotion(f.ctx, f.tenant, f.id(1), closes, 14); err != nil || !found {
			t.Errorf("at the window's last microsecond: found %v, %v", found, err)
		}
		if _, found, err := f.st.LastPromotion(f.ctx, f.tenant, f.id(1), closes.Add(400*time.Microsecond), 14); err != nil || found {
			t.Errorf("0.4 ms after the window: found %v, %v", found, err)
		}
	})

	t.Run("a message not sent or sent by an exposure alert does not attribute", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 2)
		c := f.promotion(t, f.tenant, 100, 1000, 14)
		if _, err := f.st.InsertDeliveries(f.ctx, c, campaign.ChannelSMS,
			[]campaign.NewDelivery{{SubscriberID: f.id(1), ReferralCode: "pending1"}}); err != nil {
			t.Fatal(err)
		}
		alert := &campaign.Campaign{TenantID: f.tenant, Name: "alert", Kind: campaign.KindExposureAlert,
			Channels: []campaign.Channel{campaign.ChannelSMS}, State: campaign.StateRunning}
		if err := f.st.CreateCampaign(f.ctx, alert); err != nil {
			t.Fatal(err)
		}
		if err := SendPromotion(f.ctx, f.st, *alert, campaign.ChannelSMS,
			[]campaign.NewDelivery{{SubscriberID: f.id(2), ReferralCode: "alert2"}}, f.now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		for n := 1; n <= 2; n++ {
			if _, found, err := f.st.LastPromotion(f.ctx, f.tenant, f.id(n), f.now, 14); err != nil || found {
				t.Errorf("subscriber %d: found %v err %v", n, found, err)
			}
		}
		if _, found, _ := f.st.AttributionByReferral(f.ctx, f.tenant, "alert2"); found {
			t.Error("an alert's code attributed an install")
		}
	})

	t.Run("a click on a known link is counted and an unknown one records nothing", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 1)
		c := f.promotion(t, f.tenant, 100, 1000, 14)
		f.send(t, c, "click", f.now, 1)
		for i := range 3 {
			ok, err := f.st.RecordClick(f.ctx, "click1", f.now.Add(time.Duration(i)*time.Second))
			if err != nil || !ok {
				t.Fatalf("click %d: ok %v err %v", i, ok, err)
			}
		}
		if ok, err := f.st.RecordClick(f.ctx, "unknown", f.now); err != nil || ok {
			t.Errorf("unknown code: ok %v err %v", ok, err)
		}
		if cl, ok := f.st.(interface {
			Clicks(ctx context.Context, tenantID, campaignID string) (int64, int64, error)
		}); ok {
			links, clicks, err := cl.Clicks(f.ctx, f.tenant, c.ID)
			if err != nil || links != 1 || clicks != 3 {
				t.Errorf("clicks: %d links, %d clicks, %v; want 1, 3", links, clicks, err)
			}
		}
	})

	t.Run("a reward debits the budget once per install and a repeat returns it", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 3)
		c := f.promotion(t, f.tenant, 100, 250, 14)
		r := f.reward(c, 1, "dev-1")
		if !f.create(t, r, 250) || r.State != reward.StatePending || r.Reason != "" || r.Seq == 0 {
			t.Fatalf("first reward: %+v", r)
		}
		if got := f.spent(t, c); got != 100 {
			t.Errorf("spent %d, want 100", got)
		}
		again := *r
		again.ID = ""
		if f.create(t, &again, 250) || again.ID != r.ID || again.State != reward.StatePending {
			t.Errorf("repeat: %+v", again)
		}
		if got := f.spent(t, c); got != 100 {
			t.Errorf("spent after repeat %d, want 100", got)
		}
		got, err := f.st.GetReward(f.ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.InstallID != r.InstallID || got.MSISDN != instMSISDN(1) || got.DeviceID != "dev-1" ||
			got.TenantID != f.tenant || got.SubscriberID != f.id(1) || got.DataMB != 100 || !got.CreatedAt.Equal(f.now) {
			t.Errorf("read back %+v", got)
		}
		wantNotFoundInst(t, "an unknown reward", func() error { _, err := f.st.GetReward(f.ctx, uuid.NewString()); return err })
		wantNotFoundInst(t, "a malformed reward id", func() error { _, err := f.st.GetReward(f.ctx, "x"); return err })
	})

	t.Run("the ledger rejects a second reward of a subscriber, a rewarded device and an exhausted budget, and records each", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 5)
		c := f.promotion(t, f.tenant, 100, 200, 14)
		other := f.promotion(t, f.tenant, 100, 1000, 14)
		first := f.reward(c, 1, "dev-1")
		f.create(t, first, 200)
		if got, found, err := f.st.RewardOfInstall(f.ctx, first.InstallID); err != nil || !found || got.ID != first.ID {
			t.Errorf("RewardOfInstall = %+v, %v, %v; want %s", got, found, err, first.ID)
		}
		if _, found, err := f.st.RewardOfInstall(f.ctx, uuid.NewString()); err != nil || found {
			t.Errorf("RewardOfInstall of an install without one = %v, %v", found, err)
		}

		sameSub := f.reward(c, 1, "dev-9")
		if !f.create(t, sameSub, 200) || sameSub.State != reward.StateRejected || sameSub.Reason != reward.ReasonAlreadyRewarded {
			t.Errorf("same subscriber: %s %s", sameSub.State, sameSub.Reason)
		}
		sameDevice := f.reward(other, 2, "dev-1")
		if !f.create(t, sameDevice, 1000) || sameDevice.State != reward.StateRejected ||
			sameDevice.Reason != reward.ReasonDeviceAlreadyRewarded {
			t.Errorf("same device in another campaign: %s %s", sameDevice.State, sameDevice.Reason)
		}
		f.create(t, f.reward(c, 3, "dev-3"), 200)
		over := f.reward(c, 4, "dev-4")
		if !f.create(t, over, 200) || over.State != reward.StateRejected || over.Reason != reward.ReasonBudgetExhausted {
			t.Errorf("over budget: %s %s", over.State, over.Reason)
		}
		window := f.reward(other, 5, "dev-5")
		window.State, window.Reason = reward.StateRejected, reward.ReasonOutsideWindow
		if !f.create(t, window, 1000) || window.State != reward.StateRejected || window.Reason != reward.ReasonOutsideWindow {
			t.Errorf("outside window: %s %s", window.State, window.Reason)
		}
		if got := f.spent(t, c); got != 200 {
			t.Errorf("campaign spent %d, want 200", got)
		}
		if got := f.spent(t, other); got != 0 {
			t.Errorf("other campaign spent %d, want 0 (nothing granted there)", got)
		}
		// With the budget spent, the uniqueness rules still give their
		// reasons first (reward.Store's order).
		againSub := f.reward(c, 1, "dev-8")
		if f.create(t, againSub, 200); againSub.Reason != reward.ReasonAlreadyRewarded {
			t.Errorf("same subscriber, budget spent: %s %s", againSub.State, againSub.Reason)
		}
		againDevice := f.reward(c, 5, "dev-3")
		if f.create(t, againDevice, 200); againDevice.Reason != reward.ReasonDeviceAlreadyRewarded {
			t.Errorf("same device, budget spent: %s %s", againDevice.State, againDevice.Reason)
		}
		// A rejected device does not block the device elsewhere: dev-4 was
		// only ever rejected.
		dev4 := f.reward(other, 4, "dev-4")
		if f.create(t, dev4, 1000); dev4.State != reward.StatePending {
			t.Errorf("dev-4 in another campaign: %s %s", dev4.State, dev4.Reason)
		}
		tot, err := f.st.RewardTotals(f.ctx, f.tenant, "")
		if err != nil {
			t.Fatal(err)
		}
		if tot.Count[reward.StatePending] != 3 || tot.Count[reward.StateRejected] != 6 || tot.MB[reward.StatePending] != 300 {
			t.Errorf("totals = %+v", tot)
		}
		tc, _ := f.st.RewardTotals(f.ctx, f.tenant, c.ID)
		if tc.Count[reward.StatePending] != 2 || tc.Count[reward.StateRejected] != 4 {
			t.Errorf("campaign totals = %+v", tc)
		}
	})

	t.Run("a store that records an install with its reward does both at once or the install alone", func(t *testing.T) {
		t.Parallel()
		st := newStore(t)
		rs, ok := st.(install.RewardingStore)
		if !ok {
			t.Skip("the store records installs and rewards apart")
		}
		f := newInstFixture(t, st, 4)
		c := f.promotion(t, f.tenant, 100, 100_000, 14)
		f.create(t, f.reward(c, 4, "dev-4"), 100_000) // sets the budget up
		rewardOf := func(in *install.Install) *reward.Reward {
			return &reward.Reward{ID: uuid.NewString(), TenantID: f.tenant, CampaignID: c.ID, SubscriberID: in.SubscriberID,
				MSISDN: in.MSISDN, DeviceID: in.DeviceID, InstallID: in.ID, DataMB: 100, State: reward.StatePending,
				CreatedAt: f.now}
		}
		in := f.install(1, "dev-1", f.now)
		in.ID, in.CampaignID, in.Via = uuid.NewString(), c.ID, install.ViaLastMessage
		r := rewardOf(in)
		res, rewarded, err := rs.RecordInstallRewarded(f.ctx, in, r, 100_000)
		if err != nil || !rewarded || res.Replay || in.Duplicate {
			t.Fatalf("rewarded %v replay %v duplicate %v err %v", rewarded, res.Replay, in.Duplicate, err)
		}
		got, err := f.st.GetReward(f.ctx, r.ID)
		if err != nil || got.State != reward.StatePending || got.InstallID != in.ID || got.Seq != r.Seq || got.DataMB != 100 {
			t.Fatalf("stored reward %+v err %v (returned %+v)", got, err, r)
		}
		if spent := f.spent(t, c); spent != 200 {
			t.Errorf("spent %d, want 200", spent)
		}
		if sub, _ := f.st.GetSubscriber(f.ctx, f.tenant, instMSISDN(1)); !sub.Installed {
			t.Error("subscriber not marked installed")
		}
		// pay records subscriber n's install on dev at `at`, with its reward.
		pay := func(n int, dev string, at time.Time) (*install.Install, install.RecordResult, bool, error) {
			in := f.install(n, dev, at)
			in.ID, in.CampaignID = uuid.NewString(), c.ID
			res, rewarded, err := rs.RecordInstallRewarded(f.ctx, in, rewardOf(in), 100_000)
			return in, res, rewarded, err
		}
		// A replay is answered as RecordInstall answers it; nothing more is paid.
		if again, res, rewarded, err := pay(1, "dev-1", f.now); err != nil || rewarded || !res.Replay || again.ID != in.ID {
			t.Errorf("replay: rewarded %v replay %v id %s err %v", rewarded, res.Replay, again.ID, err)
		}
		// A device rewarded already: the install still counts, unpaid here.
		if other, res, rewarded, err := pay(2, "dev-1", f.now); err != nil || rewarded || res.Replay || other.Duplicate {
			t.Errorf("device rewarded: rewarded %v replay %v duplicate %v err %v", rewarded, res.Replay, other.Duplicate, err)
		}
		// A later install of a number is a duplicate, unpaid.
		if later, _, rewarded, err := pay(1, "dev-9", f.now.Add(time.Hour)); err != nil || rewarded || !later.Duplicate {
			t.Errorf("later install: rewarded %v duplicate %v err %v", rewarded, later.Duplicate, err)
		}
		counts, _ := f.st.InstallCounts(f.ctx, f.tenant)
		if counts["HN"] != 1 || counts["DN"] != 1 {
			t.Errorf("counts = %v, want HN 1 (subscriber 1) and DN 1 (subscriber 2)", counts)
		}
		if spent := f.spent(t, c); spent != 200 {
			t.Errorf("spent %d after the unpaid installs, want 200", spent)
		}
	})

	t.Run("a replay answers with the install as it was stored, empty fields included", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 2)
		c := f.promotion(t, f.tenant, 100, 1000, 14)
		at := f.now.Add(-time.Hour).Add(654321 * time.Microsecond)
		sent := f.now.Add(-2 * time.Hour)
		organic := &install.Install{TenantID: f.tenant, MSISDN: "+84999999999", DeviceID: "dev-x",
			Platform: install.PlatformIOS, InstalledAt: at, ReceivedAt: f.now, Via: install.ViaOrganic}
		attributed := f.install(2, "dev-2", at)
		attributed.CampaignID, attributed.Via, attributed.ReferralCode, attributed.AttributedAt =
			c.ID, install.ViaReferral, "code2", &sent
		for _, in := range []*install.Install{organic, attributed} {
			want := *in
			f.record(t, in)
			want.ID = in.ID
			again := want
			again.ID = ""
			if res := f.record(t, &again); !res.Replay {
				t.Fatalf("%s: not a replay", in.DeviceID)
			}
			if (again.AttributedAt == nil) != (want.AttributedAt == nil) ||
				again.AttributedAt != nil && !again.AttributedAt.Equal(*want.AttributedAt) {
				t.Errorf("%s: attributed_at %v, want %v", in.DeviceID, again.AttributedAt, want.AttributedAt)
			}
			again.AttributedAt, want.AttributedAt = nil, nil
			if !again.InstalledAt.Equal(want.InstalledAt) || !again.ReceivedAt.Equal(want.ReceivedAt) {
				t.Errorf("%s: times %v %v, want %v %v", in.DeviceID, again.InstalledAt, again.ReceivedAt, want.InstalledAt, want.ReceivedAt)
			}
			again.InstalledAt, again.ReceivedAt, want.InstalledAt, want.ReceivedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if again != want {
				t.Errorf("replay answered\n%+v\nwant\n%+v", again, want)
			}
		}
	})

	t.Run("a store that looks attribution up in one step answers as the three look-ups do", func(t *testing.T) {
		t.Parallel()
		st := newStore(t)
		as, ok := st.(install.AttributionStore)
		if !ok {
			t.Skip("the store looks attribution up step by step")
		}
		f := newInstFixture(t, st, 6)
		c := f.promotion(t, f.tenant, 100, 1000, 14)
		later := f.promotion(t, f.tenant, 0, 0, 0)
		f.send(t, c, "code", f.now.Add(-2*time.Hour), 1, 2, 3)
		f.send(t, later, "late", f.now.Add(-time.Hour), 1, 4)
		stranger := "+84999999999"
		type query struct {
			tenant string
			cb     install.Callback
		}
		var qs []query
		for _, code := range []string{"", "code1", "code2", "code3", "late4", "nope"} {
			for _, msisdn := range []string{"", instMSISDN(1), instMSISDN(2), instMSISDN(4), instMSISDN(5), stranger} {
				if code == "" && msisdn == "" {
					continue
				}
				for _, tenant := range []string{f.tenant, f.other} {
					qs = append(qs, query{tenant, install.Callback{ReferralCode: code, MSISDN: msisdn, InstalledAt: f.now}})
				}
			}
		}
		// What the three look-ups answer, made one by one.
		want := func(q query) install.AttributionLookup {
			var l install.AttributionLookup
			if q.cb.ReferralCode != "" {
				a, found, err := st.AttributionByReferral(f.ctx, q.tenant, q.cb.ReferralCode)
				if err != nil {
					t.Fatal(err)
				}
				if found {
					l.ByCode = &a
				}
			}
			if q.cb.MSISDN == "" || l.ByCode != nil && l.ByCode.Target.MSISDN == q.cb.MSISDN {
				return l
			}
			l.TargetLooked = true
			target, found, err := st.InstallTarget(f.ctx, q.tenant, q.cb.MSISDN)
			if err != nil || !found {
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			l.Target = &target
			a, found, err := st.LastPromotion(f.ctx, q.tenant, target.SubscriberID, q.cb.InstalledAt, install.DefaultAttributionDays)
			if err != nil {
				t.Fatal(err)
			}
			if found {
				l.Last = &a
			}
			return l
		}
		describe := func(l install.AttributionLookup) string {
			out := fmt.Sprintf("looked %v", l.TargetLooked)
			for _, p := range []struct {
				name string
				a    *install.Attribution
			}{{"code", l.ByCode}, {"last", l.Last}} {
				if p.a != nil {
					days := -1
					if p.a.Reward != nil {
						days = p.a.Reward.AttributionDays
					}
					out += fmt.Sprintf(" %s{%s %+v %s %d}", p.name, p.a.CampaignID, p.a.Target, p.a.SentAt.UTC().Format(time.RFC3339Nano), days)
				}
			}
			if l.Target != nil {
				out += fmt.Sprintf(" target{%+v}", *l.Target)
			}
			return out
		}
		// All at once, so that a batching store carries many in one go.
		got := make([]install.AttributionLookup, len(qs))
		var wg sync.WaitGroup
		errs := make(chan error, len(qs))
		for i, q := range qs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := as.LookUpAttribution(f.ctx, q.tenant, q.cb, install.DefaultAttributionDays)
				if err != nil {
					errs <- err
				}
				got[i] = l
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		found := 0
		for i, q := range qs {
			w := want(q)
			if describe(got[i]) != describe(w) {
				t.Errorf("tenant %s code %q msisdn %q: got %s, want %s", q.tenant, q.cb.ReferralCode, q.cb.MSISDN,
					describe(got[i]), describe(w))
			}
			if w.ByCode != nil || w.Last != nil {
				found++
			}
		}
		// The cases cover attribution by code and by last message.
		if found < 10 {
			t.Errorf("only %d of %d look-ups found a message: the fixture does not exercise attribution", found, len(qs))
		}
	})

	t.Run("concurrent installs with their rewards each get their own answer, conflicts or not", func(t *testing.T) {
		t.Parallel()
		st := newStore(t)
		rs, ok := st.(install.RewardingStore)
		if !ok {
			t.Skip("the store records installs and rewards apart")
		}
		const subscribers = 60
		f := newInstFixture(t, st, subscribers+1)
		c := f.promotion(t, f.tenant, 100, 100_000, 14)
		f.create(t, f.reward(c, subscribers+1, "setup"), 100_000) // sets the budget up
		// Each subscriber installs on a device of their own, except that
		// subscribers 41-60 install on the devices of 1-20 (whose rewards
		// then conflict), and every install is sent twice.
		device := func(n int) string {
			if n > 40 {
				n -= 40
			}
			return fmt.Sprintf("dev-%d", n)
		}
		type answer struct {
			n        int
			id       string
			rewarded bool
			replay   bool
			dup      bool
		}
		answers := make(chan answer, 2*subscribers)
		var wg sync.WaitGroup
		for k := range 2 {
			for n := 1; n <= subscribers; n++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					in := f.install(n, device(n), f.now.Add(time.Duration(n)*time.Millisecond))
					in.ID, in.CampaignID, in.Via = uuid.NewString(), c.ID, install.ViaLastMessage
					r := &reward.Reward{TenantID: f.tenant, CampaignID: c.ID, SubscriberID: in.SubscriberID,
						MSISDN: in.MSISDN, DeviceID: in.DeviceID, InstallID: in.ID, DataMB: 100,
						State: reward.StatePending, CreatedAt: f.now}
					res, rewarded, err := rs.RecordInstallRewarded(f.ctx, in, r, 100_000)
					if err != nil {
						t.Errorf("subscriber %d copy %d: %v", n, k, err)
						return
					}
					answers <- answer{n, in.ID, rewarded, res.Replay, in.Duplicate}
				}()
			}
		}
		wg.Wait()
		close(answers)
		installOf := map[int]string{}
		firsts, rewarded := 0, 0
		for a := range answers {
			if a.dup {
				t.Errorf("subscriber %d: answered as a duplicate", a.n)
			}
			if prev, ok := installOf[a.n]; ok && prev != a.id {
				t.Errorf("subscriber %d: installs %s and %s", a.n, prev, a.id)
			}
			installOf[a.n] = a.id
			if !a.replay {
				firsts++
			}
			if a.rewarded {
				rewarded++
				if a.replay {
					t.Errorf("subscriber %d: a replay was paid", a.n)
				}
			}
		}
		if len(installOf) != subscribers || firsts != subscribers {
			t.Errorf("%d subscribers answered, %d first answers; want %d of each", len(installOf), firsts, subscribers)
		}
		// One reward per device: the first install of each of the 40
		// devices is paid with it, the other is not (nor is any replay).
		if rewarded != 40 {
			t.Errorf("%d installs paid with their reward, want 40 (one per device)", rewarded)
		}
		tot, err := f.st.RewardTotals(f.ctx, f.tenant, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := tot.Count[reward.StatePending]; got != int64(rewarded)+1 {
			t.Errorf("%d pending rewards stored, want the %d paid with their install and the setup one", got, rewarded)
		}
		if spent := f.spent(t, c); spent != 100*(int64(rewarded)+1) {
			t.Errorf("spent %d, want %d", spent, 100*(rewarded+1))
		}
		counts, _ := f.st.InstallCounts(f.ctx, f.tenant)
		if counts["HN"]+counts["DN"] != subscribers {
			t.Errorf("counts = %v, want %d in all", counts, subscribers)
		}
	})

	t.Run("a budget smaller than one reward pays none", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 1)
		c := f.promotion(t, f.tenant, 100, 100, 14)
		r := f.reward(c, 1, "d1")
		if f.create(t, r, 99); r.State != reward.StateRejected || r.Reason != reward.ReasonBudgetExhausted {
			t.Errorf("reward: %s %s", r.State, r.Reason)
		}
		if spent := f.spent(t, c); spent != 0 {
			t.Errorf("spent %d", spent)
		}
	})

	t.Run("granting and failing finish a pending reward once and a failure gives its MB back", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 3)
		c := f.promotion(t, f.tenant, 100, 200, 14)
		a, b := f.reward(c, 1, "d1"), f.reward(c, 2, "d2")
		f.create(t, a, 200)
		f.create(t, b, 200)
		if err := f.st.RecordAttempt(f.ctx, a.ID, "503 Service Unavailable", f.now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		ok, err := f.st.FinishReward(f.ctx, a.ID, reward.StateGranted, "", f.now.Add(2*time.Second))
		if err != nil || !ok {
			t.Fatalf("grant: %v %v", ok, err)
		}
		if ok, _ := f.st.FinishReward(f.ctx, a.ID, reward.StateFailed, "late", f.now.Add(3*time.Second)); ok {
			t.Error("a granted reward was failed")
		}
		got, _ := f.st.GetReward(f.ctx, a.ID)
		if got.State != reward.StateGranted || got.Attempts != 2 || got.LastError != "" || got.GrantedAt == nil ||
			!got.GrantedAt.Equal(f.now.Add(2*time.Second)) {
			t.Errorf("granted reward = %+v", got)
		}
		if ok, err := f.st.FinishReward(f.ctx, b.ID, reward.StateFailed, "400 invalid msisdn", f.now); err != nil || !ok {
			t.Fatalf("fail: %v %v", ok, err)
		}
		got, _ = f.st.GetReward(f.ctx, b.ID)
		if got.State != reward.StateFailed || got.LastError != "400 invalid msisdn" {
			t.Errorf("failed reward = %+v", got)
		}
		if spent := f.spent(t, c); spent != 100 {
			t.Errorf("spent %d after one grant and one failure, want 100", spent)
		}
		// The refunded MB pay for another subscriber.
		if r := f.reward(c, 3, "d3"); f.create(t, r, 200) && r.State != reward.StatePending {
			t.Errorf("after the refund: %s %s", r.State, r.Reason)
		}
		// The failed reward credited nothing, so it holds neither its
		// subscriber's place in the campaign (a second reward is refused
		// only for the budget, now spent) nor its device's in the tenant
		// (another subscriber on that phone is rewarded in a campaign
		// with room).
		if r := f.reward(c, 2, "d9"); f.create(t, r, 200) && r.Reason != reward.ReasonBudgetExhausted {
			t.Errorf("the failed reward's subscriber again: %s %s, want rejected budget_exhausted", r.State, r.Reason)
		}
		c2 := f.promotion(t, f.tenant, 100, 200, 14)
		if r := f.reward(c2, 1, "d2"); f.create(t, r, 200) && r.State != reward.StatePending {
			t.Errorf("another subscriber on the failed reward's device: %s %s, want pending", r.State, r.Reason)
		}
		installs, granted, mb, err := f.st.CampaignRewardStats(f.ctx, f.tenant, c.ID)
		if err != nil || granted != 1 || mb != 100 || installs != 0 {
			t.Errorf("stats: installs %d granted %d mb %d err %v", installs, granted, mb, err)
		}
		if _, g, _, _ := f.st.CampaignRewardStats(f.ctx, f.other, c.ID); g != 0 {
			t.Error("another tenant sees the campaign's rewards")
		}
	})

	t.Run("pending rewards are listed oldest first once stale", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 3)
		rs := f.threePendingRewards(t)
		f.st.FinishReward(f.ctx, rs[1].ID, reward.StateGranted, "", f.now)
		got, err := f.st.PendingRewards(f.ctx, f.now.Add(10*time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != rs[0].ID || got[1].ID != rs[2].ID {
			t.Errorf("pending = %v", rewardIDs(got))
		}
		if got, _ := f.st.PendingRewards(f.ctx, f.now.Add(2*time.Minute), 10); len(got) != 1 {
			t.Errorf("pending before 2 min = %v, want the first only", rewardIDs(got))
		}
	})

	t.Run("a granted reward's confirmation is due until it is done", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 3)
		rs := f.threePendingRewards(t)
		f.st.FinishReward(f.ctx, rs[0].ID, reward.StateGranted, "", f.now.Add(time.Minute))
		f.st.FinishReward(f.ctx, rs[1].ID, reward.StateGranted, "", f.now.Add(2*time.Minute))
		f.st.FinishReward(f.ctx, rs[2].ID, reward.StateFailed, "400", f.now)
		due := func(before time.Time) []string {
			t.Helper()
			ids, err := f.st.DueConfirmations(f.ctx, before, 10)
			if err != nil {
				t.Fatal(err)
			}
			return ids
		}
		if got := due(f.now.Add(10 * time.Minute)); !slices.Equal(got, []string{rs[0].ID, rs[1].ID}) {
			t.Errorf("due = %v, want the two granted, oldest first", got)
		}
		if got := due(f.now.Add(90 * time.Second)); !slices.Equal(got, []string{rs[0].ID}) {
			t.Errorf("due before 90 s = %v, want the first only", got)
		}
		if err := f.st.ConfirmationDone(f.ctx, rs[0].ID); err != nil {
			t.Fatal(err)
		}
		if got := due(f.now.Add(10 * time.Minute)); !slices.Equal(got, []string{rs[1].ID}) {
			t.Errorf("due after the first is done = %v", got)
		}
		if err := f.st.ConfirmationDone(f.ctx, "not-a-uuid"); !errors.Is(err, apperr.ErrNotFound) {
			t.Errorf("ConfirmationDone of a bad id: %v", err)
		}
	})

	t.Run("rewards are listed by tenant in pages and filtered by campaign and state", func(t *testing.T) {
		t.Parallel()
		f := newInstFixture(t, newStore(t), 6)
		c1 := f.promotion(t, f.tenant, 100, 300, 14)
		c2 := f.promotion(t, f.tenant, 100, 1000, 14)
		for n := 1; n <= 4; n++ { // the 4th is over c1's budget
			f.create(t, f.reward(c1, n, fmt.Sprintf("d%d", n)), 300)
		}
		f.create(t, f.reward(c2, 5, "d5"), 1000)
		theirs := f.promotion(t, f.other, 100, 1000, 14)
		f.create(t, &reward.Reward{TenantID: f.other, CampaignID: theirs.ID, SubscriberID: 999, MSISDN: instMSISDN(1),
			DeviceID: "d1", InstallID: uuid.NewString(), DataMB: 100, CreatedAt: f.now}, 1000)

		var all []reward.Reward
		after := int64(0)
		for range 10 {
			page, err := f.st.ListRewards(f.ctx, f.tenant, reward.Query{After: after, Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			after = page[len(page)-1].Seq
		}
		if len(all) != 5 {
			t.Fatalf("listed %d rewards, want 5 (tenant A's)", len(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i].Seq <= all[i-1].Seq {
				t.Errorf("not ascending by seq: %d after %d", all[i].Seq, all[i-1].Seq)
			}
		}
		got, _ := f.st.ListRewards(f.ctx, f.tenant, reward.Query{CampaignID: c1.ID, Limit: 100})
		if len(got) != 4 {
			t.Errorf("campaign 1: %d rewards, want 4", len(got))
		}
		got, _ = f.st.ListRewards(f.ctx, f.tenant, reward.Query{CampaignID: c1.ID, State: reward.StateRejected, Limit: 100})
		if len(got) != 1 || got[0].Reason != reward.ReasonBudgetExhausted {
			t.Errorf("campaign 1 rejected: %+v", got)
		}
		got, _ = f.st.ListRewards(f.ctx, f.tenant, reward.Query{CampaignID: theirs.ID, Limit: 100})
		if len(got) != 0 {
			t.Errorf("tenant A listed tenant B's campaign: %d rewards", len(got))
		}
		got, _ = f.st.ListRewards(f.ctx, f.tenant, reward.Query{CampaignID: "not-a-uuid", Limit: 100})
		if len(got) != 0 {
			t.Errorf("malformed campaign id listed %d", len(got))
		}
	})

	t.Run("concurrent rewards never overspend the budget and each install gets one", func(t *testing.T) {
		t.Parallel()
		const subscribers, covered, copies, dataMB = 120, 47, 3, 5120
		f := newInstFixture(t, newStore(t), subscribers)
		budget := int64(covered*dataMB + dataMB - 1) // not a multiple: the last part must stay unspent
		c := f.promotion(t, f.tenant, dataMB, budget, 14)
		type job struct {
			r *reward.Reward
		}
		var jobs []job
		installs := make([]string, subscribers+1)
		for n := 1; n <= subscribers; n++ {
			installs[n] = uuid.NewString()
			for range copies {
				r := f.reward(c, n, fmt.Sprintf("dev-%d", n))
				r.InstallID = installs[n]
				jobs = append(jobs, job{r})
			}
		}
		rand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
		var wg sync.WaitGroup
		var mu sync.Mutex
		ids := map[string]string{} // install → reward id
		created := 0
		ch := make(chan job)
		for range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range ch {
					ok, err := f.st.CreateReward(f.ctx, j.r, budget)
					if err != nil {
						t.Error(err)
						continue
					}
					mu.Lock()
					if prev, seen := ids[j.r.InstallID]; seen && prev != j.r.ID {
						t.Errorf("install %s got rewards %s and %s", j.r.InstallID, prev, j.r.ID)
					}
					ids[j.r.InstallID] = j.r.ID
					if ok {
						created++
					}
					mu.Unlock()
				}
			}()
		}
		for _, j := range jobs {
			ch <- j
		}
		close(ch)
		wg.Wait()
		if created != subscribers {
			t.Errorf("%d rewards created, want %d (one per install)", created, subscribers)
		}
		tot, err := f.st.RewardTotals(f.ctx, f.tenant, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if tot.Count[reward.StatePending] != covered || tot.Count[reward.StateRejected] != subscribers-covered {
			t.Errorf("pending %d rejected %d, want %d and %d", tot.Count[reward.StatePending],
				tot.Count[reward.StateRejected], covered, subscribers-covered)
		}
		if spent := f.spent(t, c); spent != covered*dataMB || spent > budget {
			t.Errorf("spent %d of %d, want %d", spent, budget, covered*dataMB)
		}
	})
}

func rewardIDs(rs []reward.Reward) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return slices.Clip(out)
}

func wantNotFoundInst(t *testing.T, what string, call func() error) {
	t.Helper()
	if err := call(); !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("%s: err = %v, want not found", what, err)
	}
}

// threePendingRewards creates a campaign and a pending reward for each of
// the first three subscribers, created a minute apart.
func (f *instFixture) threePendingRewards(t *testing.T) []*reward.Reward {
	t.Helper()
	c := f.promotion(t, f.tenant, 100, 1000, 14)
	var rs []*reward.Reward
	for n := 1; n <= 3; n++ {
		r := f.reward(c, n, fmt.Sprintf("d%d", n))
		r.CreatedAt = f.now.Add(time.Duration(n) * time.Minute)
		f.create(t, r, 1000)
		rs = append(rs, r)
	}
	return rs
}

// CheckARewardOutlivesAFault creates one pending reward after fault has
// made the store's next write fail the way a deadlock's victim does (the
// statement rolled back whole): the reward is created, once, and its
// campaign's budget debited once.
func CheckARewardOutlivesAFault(t *testing.T, st InstallStore, fault func(t *testing.T)) {
	t.Helper()
	f := newInstFixture(t, st, 1)
	c := f.promotion(t, f.tenant, 100, 1000, 14)
	fault(t)
	r := f.reward(c, 1, "dev-1")
	if !f.create(t, r, 1000) || r.State != reward.StatePending {
		t.Fatalf("reward after a fault: %+v, want created pending", r)
	}
	if spent := f.spent(t, c); spent != 100 {
		t.Fatalf("budget spent %d MB after one reward of 100, want 100", spent)
	}
}
