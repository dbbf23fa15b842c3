package reward_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/provider"
	"outreach/provider/provisioning/provisioningfake"
	"outreach/reward"
	"outreach/store/sqlite"
)

type env struct {
	st     *sqlite.Store
	ctx    context.Context
	fake   *provisioningfake.Server
	ledger *reward.Ledger
	ful    *reward.Fulfiller
	tenant string
	promo  campaign.Campaign
}

func newEnv(t *testing.T, budgetMB int64) *env {
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
	tn, err := st.EnsureTenant(ctx, "viettel")
	if err != nil {
		t.Fatal(err)
	}
	c := &campaign.Campaign{TenantID: tn.ID, Name: "promo", Kind: campaign.KindInstallPromotion,
		Channels: []campaign.Channel{campaign.ChannelSMS}, State: campaign.StateRunning,
		Reward: &campaign.Reward{DataMB: 1024, BudgetMB: budgetMB, AttributionDays: 14}}
	if err := st.CreateCampaign(ctx, c); err != nil {
		t.Fatal(err)
	}
	fake := provisioningfake.New("rewards-secret")
	t.Cleanup(fake.Close)
	e := &env{st: st, ctx: ctx, fake: fake, tenant: tn.ID, promo: *c}
	e.ledger = &reward.Ledger{Store: st}
	e.ful = &reward.Fulfiller{Store: st, Provisioner: fake.Client(), Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	return e
}

func (e *env) request(n int) reward.Request {
	return reward.Request{TenantID: e.tenant, CampaignID: e.promo.ID, SubscriberID: int64(n),
		MSISDN: fmt.Sprintf("+849%08d", n), DeviceID: fmt.Sprintf("dev-%d", n), InstallID: uuid.NewString(),
		DataMB: 1024, BudgetMB: e.promo.Reward.BudgetMB, AttributionDays: 14}
}

func (e *env) create(t *testing.T, n int) reward.Reward {
	t.Helper()
	r, _, err := e.ledger.Create(e.ctx, e.request(n))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *env) get(t *testing.T, id string) reward.Reward {
	t.Helper()
	r, err := e.st.GetReward(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFulfilGrantsOnceAndConfirms(t *testing.T) {
	e := newEnv(t, 10*1024)
	var confirmed []string
	e.ful.Confirm = func(_ context.Context, r reward.Reward) error {
		confirmed = append(confirmed, r.ID)
		return errors.New("SMS down") // logged; the grant stands
	}
	r := e.create(t, 1)
	for range 3 {
		if err := e.ful.Fulfil(e.ctx, r.ID); err != nil {
			t.Fatal(err)
		}
	}
	got := e.get(t, r.ID)
	if got.State != reward.StateGranted || got.GrantedAt == nil || got.Attempts != 1 {
		t.Errorf("reward = %+v", got)
	}
	if tot := e.fake.Totals(); tot.Grants != 1 || tot.MB != 1024 || tot.Requests != 1 {
		t.Errorf("fake totals = %+v, want one grant of 1024 MB in one call", tot)
	}
	if len(confirmed) != 1 || confirmed[0] != r.ID {
		t.Errorf("confirmed %v, want the reward once", confirmed)
	}
}

func TestFulfilRetriesTransientFailures(t *testing.T) {
	e := newEnv(t, 10*1024)
	e.fake.FailNext(503, 500, 429)
	r := e.create(t, 1)
	if err := e.ful.Fulfil(e.ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	got := e.get(t, r.ID)
	if got.State != reward.StateGranted || got.Attempts != 4 || got.LastError != "" {
		t.Errorf("reward = %+v", got)
	}
}

func TestFulfilLeavesARewardPendingWhenFailuresOutlastTheAttempts(t *testing.T) {
	e := newEnv(t, 10*1024)
	e.fake.FailNext(503, 503, 503, 503, 503, 503)
	r := e.create(t, 1)
	err := e.ful.Fulfil(e.ctx, r.ID)
	if !errors.Is(err, reward.ErrStillPending) {
		t.Fatalf("err = %v, want still pending", err)
	}
	got := e.get(t, r.ID)
	if got.State != reward.StatePending || got.Attempts != 5 || got.LastError == "" {
		t.Errorf("reward = %+v", got)
	}
	// The next run (the queue's retry, or the reconciler) grants it.
	if err := e.ful.Fulfil(e.ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.get(t, r.ID); got.State != reward.StateGranted {
		t.Errorf("after retry: %s", got.State)
	}
}

func TestFulfilFailsOnAPermanentErrorAndRefundsTheBudget(t *testing.T) {
	e := newEnv(t, 1024)
	e.fake.FailNext(400)
	r := e.create(t, 1)
	if err := e.ful.Fulfil(e.ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	got := e.get(t, r.ID)
	if got.State != reward.StateFailed || got.Attempts != 1 || got.LastError == "" {
		t.Errorf("reward = %+v", got)
	}
	if _, spent, _ := e.st.CampaignBudget(e.ctx, e.promo.ID); spent != 0 {
		t.Errorf("spent %d after a failure, want 0", spent)
	}
	if next := e.create(t, 2); next.State != reward.StatePending {
		t.Errorf("the refunded budget did not pay the next reward: %s %s", next.State, next.Reason)
	}
}

func TestFulfilTreatsAlreadyGrantedAsSuccess(t *testing.T) {
	e := newEnv(t, 10*1024)
	r := e.create(t, 1)
	// The API granted it, but the answer was lost: the call is repeated.
	if err := e.fake.Client().Grant(e.ctx, provider.Grant{RewardID: r.ID, CampaignID: r.CampaignID, MSISDN: r.MSISDN, DataMB: r.DataMB}); err != nil {
		t.Fatal(err)
	}
	if err := e.ful.Fulfil(e.ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.get(t, r.ID); got.State != reward.StateGranted {
		t.Errorf("state %s", got.State)
	}
	if tot := e.fake.Totals(); tot.Grants != 1 || tot.Replays != 1 {
		t.Errorf("fake totals = %+v", tot)
	}
}

func TestFulfilOfAnUnknownReward(t *testing.T) {
	e := newEnv(t, 1024)
	if err := e.ful.Fulfil(e.ctx, uuid.NewString()); !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("err = %v, want not found", err)
	}
}

func TestConcurrentFulfilmentsCreditOnce(t *testing.T) {
	e := newEnv(t, 100*1024)
	e.fake.SetLatency(5 * time.Millisecond)
	var ids []string
	for n := 1; n <= 20; n++ {
		ids = append(ids, e.create(t, n).ID)
	}
	var wg sync.WaitGroup
	for range 4 {
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := e.ful.Fulfil(e.ctx, id); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	tot := e.fake.Totals()
	if tot.Grants != 20 || tot.MB != 20*1024 {
		t.Errorf("fake totals = %+v", tot)
	}
	for msisdn, n := range e.fake.MSISDNs() {
		if n != 1 {
			t.Errorf("%s credited %d times", msisdn, n)
		}
	}
}

func TestLedgerRules(t *testing.T) {
	e := newEnv(t, 2048)
	t.Run("an install more than the window after its message is rejected outside_window", func(t *testing.T) {
		req := e.request(1)
		req.SentAt = time.Now().Add(-15 * 24 * time.Hour)
		req.InstalledAt = time.Now()
		r, created, err := e.ledger.Create(e.ctx, req)
		if err != nil || !created || r.State != reward.StateRejected || r.Reason != reward.ReasonOutsideWindow {
			t.Fatalf("reward %+v created %v err %v", r, created, err)
		}
	})
	t.Run("a repeated request returns the stored reward", func(t *testing.T) {
		req := e.request(2)
		a, created, err := e.ledger.Create(e.ctx, req)
		if err != nil || !created {
			t.Fatal(err)
		}
		b, created, err := e.ledger.Create(e.ctx, req)
		if err != nil || created || b.ID != a.ID {
			t.Errorf("repeat: %+v created %v err %v", b, created, err)
		}
	})
	t.Run("an incomplete request names its fields", func(t *testing.T) {
		_, _, err := e.ledger.Create(e.ctx, reward.Request{TenantID: e.tenant})
		var fe apperr.FieldErrors
		if !errors.As(err, &fe) || fe["campaign_id"] == "" || fe["install_id"] == "" || fe["data_mb"] == "" {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("a listing is validated and paged", func(t *testing.T) {
		if _, err := e.ledger.List(e.ctx, e.tenant, reward.Query{State: "lost"}); err == nil {
			t.Error("an unknown state was accepted")
		}
		if _, err := e.ledger.List(e.ctx, e.tenant, reward.Query{Limit: 5000}); err == nil {
			t.Error("a limit over the maximum was accepted")
		}
		p, err := e.ledger.List(e.ctx, e.tenant, reward.Query{Limit: 1})
		if err != nil || len(p.Rewards) != 1 || p.NextAfter == 0 {
			t.Fatalf("page %+v err %v", p, err)
		}
		p2, err := e.ledger.List(e.ctx, e.tenant, reward.Query{Limit: 1, After: p.NextAfter})
		if err != nil || len(p2.Rewards) != 1 || p2.Rewards[0].ID == p.Rewards[0].ID {
			t.Errorf("second page %+v err %v", p2, err)
		}
	})
}

func TestLocalQueueAndReconcile(t *testing.T) {
	e := newEnv(t, 100*1024)
	q := reward.NewLocalQueue(e.ful, 4, 8)
	defer q.Close()
	e.ledger.Enqueuer = q
	for n := 1; n <= 30; n++ {
		e.create(t, n)
	}
	q.Wait()
	if tot := e.fake.Totals(); tot.Grants != 30 {
		t.Fatalf("granted %d of 30", tot.Grants)
	}

	// A reward whose task was lost stays pending until the reconciler
	// finds it.
	e.ledger.Enqueuer = nil
	lost := e.create(t, 31)
	e.ledger.StaleAfter = time.Nanosecond
	time.Sleep(time.Millisecond)
	var enqueued atomic.Int32
	n, err := reward.Reconcile(e.ctx, e.ledger, reward.EnqueuerFunc(func(ctx context.Context, id string) error {
		enqueued.Add(1)
		if id != lost.ID {
			t.Errorf("re-enqueued %s, want %s", id, lost.ID)
		}
		return q.EnqueueFulfil(ctx, id)
	}), 100)
	if err != nil || n != 1 {
		t.Fatalf("reconciled %d, %v", n, err)
	}
	q.Wait()
	if got := e.get(t, lost.ID); got.State != reward.StateGranted {
		t.Errorf("lost reward: %s", got.State)
	}
	q.Close()
	if err := q.EnqueueFulfil(e.ctx, lost.ID); !errors.Is(err, reward.ErrQueueClosed) {
		t.Errorf("enqueue after close: %v", err)
	}
}

// The rewards' series count what the ledger recorded, each provisioning
// call's result, the fulfilments' ends and the MB granted.
func TestRewardMetricsCountRecordsCallsAndGrants(t *testing.T) {
	e := newEnv(t, 2*1024)
	m := reward.NewMetrics(nil)
	e.ledger.Metrics, e.ful.Metrics = m, m
	e.fake.FailNext(503, 400)
	one, two := e.create(t, 1), e.create(t, 2)
	if over := e.create(t, 3); over.State != reward.StateRejected || over.Reason != reward.ReasonBudgetExhausted {
		t.Fatalf("third reward %s %s, want rejected for the budget", over.State, over.Reason)
	}
	if err := e.ful.Fulfil(e.ctx, one.ID); err != nil { // 503, then 400: failed
		t.Fatal(err)
	}
	if err := e.ful.Fulfil(e.ctx, two.ID); err != nil { // granted
		t.Fatal(err)
	}
	if err := e.ful.Fulfil(e.ctx, two.ID); err != nil { // final already: no call
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		got  prometheus.Collector
		want float64
	}{
		{"recorded pending", m.Recorded.WithLabelValues("pending", ""), 2},
		{"recorded rejected budget_exhausted", m.Recorded.WithLabelValues("rejected", "budget_exhausted"), 1},
		{"calls ok", m.Calls.WithLabelValues("ok"), 1},
		{"calls transient", m.Calls.WithLabelValues("transient"), 1},
		{"calls permanent", m.Calls.WithLabelValues("permanent"), 1},
		{"finished granted", m.Finished.WithLabelValues("granted"), 1},
		{"finished failed", m.Finished.WithLabelValues("failed"), 1},
		{"granted MB", m.GrantedMB, 1024},
	} {
		if got := testutil.ToFloat64(c.got); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
}
