package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"outreach/install"
	"outreach/provider/provisioning"
	"outreach/provider/provisioning/provisioningfake"
)

// The reward scenarios: an install promotion with a data bonus and a budget
// that pays three installs in four; its subscribers then install the app,
// and the app's backend reports each install with a signed callback
// (POST /v1/installs) to the api process, paced, while a fault happens. The
// worker fulfils each pending reward through the provisioning API (the fake
// in the test process, answering every call late so that fulfilments are in
// flight at the fault), keyed by the reward id.
//
// At the end every reward must be final, and: every rightful reward (the
// ones within the budget) granted, none failed; the fake credited exactly
// the rewards the ledger says are granted, each once, and no MSISDN twice;
// the ledger's granted count and MB (GET /v1/rewards) equal the fake's; the
// budget's spent MB equals the granted MB and never passes the budget.

// rewardSizing is the scale of a reward scenario.
type rewardSizing struct {
	installs    int           // subscribers, every one of whom installs
	installRate int           // callbacks per second the app backend sends
	latency     time.Duration // the provisioning API's answer time
}

func rewardSizeOf() rewardSizing {
	// Installs come faster than the workers fulfil (worker concurrency /
	// latency per worker), so that at the fault some fulfilments are in
	// flight and more wait in the queue.
	if sizeOf().full {
		return rewardSizing{installs: 5000, installRate: 400, latency: 500 * time.Millisecond}
	}
	return rewardSizing{installs: 400, installRate: 100, latency: 250 * time.Millisecond}
}

// withRewards starts the carrier's provisioning API (the fake, in the test
// process) and points the processes at it, with the install-callback
// secret the test signs installs with. Call it before boot.
//
// The processes reach the fake through lateAnswers: a call goes through at
// once, so the credit is made, and its answer is held back for latency. A
// worker killed in that moment never learns that its grant was made: the
// ambiguous case the reward id as idempotency key has to absorb.
func (r *rig) withRewards(latency time.Duration) {
	secret := randHex(16)
	r.prov = provisioningfake.New(secret)
	r.t.Cleanup(r.prov.Close)
	target, err := url.Parse(r.prov.URL())
	if err != nil {
		r.t.Fatal(err)
	}
	path := target.Path
	target.Path = ""
	late := httptest.NewServer(lateAnswers(target, latency))
	r.t.Cleanup(late.Close)
	r.installSecret = randHex(16)
	r.env["OUTREACH_REWARDS_URL"] = late.URL + path
	r.env["OUTREACH_REWARDS_SECRET"] = secret
	r.env["OUTREACH_INSTALL_SECRET"] = r.installSecret
}

// lateAnswers forwards every request to target and holds its answer back
// for latency (dropped if the caller has gone meanwhile).
func lateAnswers(target *url.URL, latency time.Duration) http.Handler {
	p := httputil.NewSingleHostReverseProxy(target)
	p.ModifyResponse = func(resp *http.Response) error {
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-resp.Request.Context().Done():
			return resp.Request.Context().Err()
		}
	}
	p.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	return p
}

// rewardDataMB is the bonus per install.
const rewardDataMB = 1024

// installAnswer is the api's answer to one install callback.
type installAnswer struct {
	InstallID string `json:"install_id"`
	Duplicate bool   `json:"duplicate"`
	Replay    bool   `json:"replay"`
	Reward    *struct {
		ID     string `json:"id"`
		State  string `json:"state"`
		Reason string `json:"reason"`
	} `json:"reward"`
}

// callback is one install the app backend reports.
type callback struct {
	who  int    // the installer's index in rig.msisdns
	kind string // "first", "second" (another device later), "resend" (the first again)
	body []byte
}

// rewardRun is one reward scenario in progress.
type rewardRun struct {
	r  *rig
	rs rewardSizing
	// rightful is how many rewards the budget pays.
	rightful int
	hc       *http.Client
	workers  []*proc

	answered atomic.Int64 // callbacks answered 200
	retried  atomic.Int64 // callback attempts that failed and were sent again
	mu       sync.Mutex
	first    map[int]installAnswer // by installer: the answer to its first install
	firstCB  map[int]callback
	later    []laterAnswer // the second installs and the resends
	errs     []error
	done     chan struct{}
}

type laterAnswer struct {
	cb  callback
	ans installAnswer
}

// newRewardRun prepares a rig with the provisioning fake, runs the
// promotion to its whole audience to completion (an install is attributed
// to the message sent to its number) and returns before any install.
func newRewardRun(t *testing.T, proxyPG bool, tm timing, workers int) *rewardRun {
	t.Helper()
	rs := rewardSizeOf()
	r := newRig(t, proxyPG, tm)
	r.sz.recipients = rs.installs
	r.withRewards(rs.latency)
	rr := &rewardRun{r: r, rs: rs, rightful: rs.installs * 3 / 4, hc: &http.Client{Timeout: 10 * time.Second},
		first: map[int]installAnswer{}, firstCB: map[int]callback{}, done: make(chan struct{})}
	r.rewardMB, r.budgetMB = rewardDataMB, int64(rr.rightful)*rewardDataMB
	r.logf("this scenario: %d subscribers install; the budget pays %d rewards of %d MB (%d MB); the provisioning API answers in %v",
		rs.installs, rr.rightful, rewardDataMB, r.budgetMB, rs.latency)
	r.boot()
	r.seed()
	for i := 1; i <= workers; i++ {
		rr.workers = append(rr.workers, r.worker(fmt.Sprintf("worker-%d", i)))
	}
	r.startCampaign()
	s, _ := r.waitCompleted(r.sz.complete)
	if s.Deliveries["sent"]+s.Deliveries["delivered"] != int64(rs.installs) {
		t.Fatalf("the promotion sent %v, want %d sent: the installs could not be attributed", s.Deliveries, rs.installs)
	}
	r.logf("promotion completed: %d SMS sent", r.fake.Count())
	return rr
}

// installBody is the callback of installer i on device dev. installed_at
// keeps its fraction of a second: cut to the second, an install made in the
// second its promotion was sent would read as before it, and go
// unattributed.
func installBody(msisdn string, i int, dev string, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{"msisdn": msisdn, "device_id": fmt.Sprintf("chaos-%d-%s", i, dev),
		"platform": "android", "installed_at": at.UTC().Format(time.RFC3339Nano)})
	return b
}

// start sends the callbacks in the background: every installer's first
// install at installRate, then a second install on another device by one
// installer in ten and a resend of the first callback by another one in
// ten (both must earn nothing more). Each callback is sent again until it
// is answered 200, as an app backend would.
func (rr *rewardRun) start() {
	jobs := make(chan callback)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cb := range jobs {
				rr.post(cb)
			}
		}()
	}
	go func() {
		defer close(rr.done)
		defer wg.Wait()
		defer close(jobs)
		tick := time.NewTicker(time.Second / time.Duration(rr.rs.installRate))
		defer tick.Stop()
		for i, m := range rr.r.msisdns {
			<-tick.C
			cb := callback{who: i, kind: "first", body: installBody(m, i, "a", time.Now())}
			rr.mu.Lock()
			rr.firstCB[i] = cb
			rr.mu.Unlock()
			jobs <- cb
		}
		for i, m := range rr.r.msisdns {
			if i%10 != 0 && i%10 != 5 {
				continue
			}
			rr.waitAnswered(i)
			cb := callback{who: i, kind: "second", body: installBody(m, i, "b", time.Now())}
			if i%10 == 5 {
				rr.mu.Lock()
				cb = rr.firstCB[i]
				rr.mu.Unlock()
				cb.kind = "resend"
			}
			<-tick.C
			jobs <- cb
		}
	}()
}

// waitAnswered waits until installer i's first callback has its answer
// (or has failed for good: post records why).
func (rr *rewardRun) waitAnswered(i int) {
	deadline := time.Now().Add(rr.r.sz.complete)
	for time.Now().Before(deadline) {
		rr.mu.Lock()
		_, ok := rr.first[i]
		rr.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// post sends one callback, signed afresh on every attempt, until it is
// answered 200; a 4xx other than 429 is an error of the test.
func (rr *rewardRun) post(cb callback) {
	deadline := time.Now().Add(rr.r.sz.complete)
	for {
		ans, status, err := rr.send(cb.body)
		if err == nil && status == http.StatusOK {
			rr.answered.Add(1)
			rr.mu.Lock()
			if cb.kind == "first" {
				rr.first[cb.who] = ans
			} else {
				rr.later = append(rr.later, laterAnswer{cb, ans})
			}
			rr.mu.Unlock()
			return
		}
		if err == nil && status >= 400 && status < 500 && status != http.StatusTooManyRequests {
			rr.fail(fmt.Errorf("install callback of installer %d (%s) answered %d", cb.who, cb.kind, status))
			return
		}
		if time.Now().After(deadline) {
			rr.fail(fmt.Errorf("install callback of installer %d (%s) still failing after %v: %d %v",
				cb.who, cb.kind, rr.r.sz.complete, status, err))
			return
		}
		rr.retried.Add(1)
		time.Sleep(200 * time.Millisecond)
	}
}

func (rr *rewardRun) send(body []byte) (installAnswer, int, error) {
	var ans installAnswer
	req, err := http.NewRequest("POST", rr.r.api.base+"/v1/installs", bytes.NewReader(body))
	if err != nil {
		return ans, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	install.SignRequest(req.Header, "chaos", rr.r.installSecret, body, time.Now())
	resp, err := rr.hc.Do(req)
	if err != nil {
		return ans, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ans, resp.StatusCode, err
	}
	return ans, resp.StatusCode, json.Unmarshal(b, &ans)
}

func (rr *rewardRun) fail(err error) {
	rr.mu.Lock()
	rr.errs = append(rr.errs, err)
	rr.mu.Unlock()
}

// waitCredited waits until the fake has credited n rewards: the fault then
// lands in the middle of fulfilment.
func (rr *rewardRun) waitCredited(n int) {
	rr.r.t.Helper()
	deadline := time.Now().Add(rr.r.sz.complete)
	for rr.r.prov.Totals().Grants < n {
		if time.Now().After(deadline) {
			rr.r.t.Fatalf("the provisioning fake credited %d rewards in %v, want %d (%d callbacks answered)",
				rr.r.prov.Totals().Grants, rr.r.sz.complete, n, rr.answered.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ledgerCount counts the campaign's rewards in one state, straight from
// the store.
func (rr *rewardRun) ledgerCount(state string) int {
	rr.r.t.Helper()
	c := rr.r.db()
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(), `SELECT count(*) FROM rewards WHERE campaign_id = $1::uuid AND state = $2`,
		rr.r.campaign, state).Scan(&n); err != nil {
		rr.r.t.Fatalf("count %s rewards: %v", state, err)
	}
	return n
}

// pendingCredited lists the pending rewards the fake has already credited:
// fulfilments whose grant was made but not yet recorded.
func (rr *rewardRun) pendingCredited() (pending, credited int) {
	rr.r.t.Helper()
	c := rr.r.db()
	defer c.Close(context.Background())
	rows, err := c.Query(context.Background(), `SELECT id::text FROM rewards WHERE campaign_id = $1::uuid AND state = 'pending'`,
		rr.r.campaign)
	if err != nil {
		rr.r.t.Fatalf("pending rewards: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rr.r.t.Fatal(err)
		}
		pending++
		if rr.r.prov.Granted(id) {
			credited++
		}
	}
	return pending, credited
}

// waitFinal waits until every callback is answered and no reward is
// pending; it returns when.
func (rr *rewardRun) waitFinal() time.Time {
	rr.r.t.Helper()
	deadline := time.Now().Add(rr.r.sz.complete)
	select {
	case <-rr.done:
	case <-time.After(time.Until(deadline)):
		rr.r.t.Fatalf("the install callbacks were not all answered within %v (%d answered)", rr.r.sz.complete, rr.answered.Load())
	}
	for {
		if rr.ledgerCount("pending") == 0 {
			return time.Now()
		}
		if time.Now().After(deadline) {
			p, cr := rr.pendingCredited()
			rr.r.t.Fatalf("%d rewards still pending after %v (%d of them credited at the provisioning API); granted %d",
				p, rr.r.sz.complete, cr, rr.ledgerCount("granted"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ledgerReward is a reward as GET /v1/rewards lists it.
type ledgerReward struct {
	ID       string `json:"id"`
	MSISDN   string `json:"msisdn"`
	DeviceID string `json:"device_id"`
	State    string `json:"state"`
	Reason   string `json:"reason"`
	DataMB   int64  `json:"data_mb"`
	Attempts int    `json:"attempts"`
}

// ledger pages the campaign's rewards through the API.
func (rr *rewardRun) ledger() []ledgerReward {
	rr.r.t.Helper()
	var all []ledgerReward
	after := int64(0)
	for {
		var page struct {
			Rewards   []ledgerReward `json:"rewards"`
			NextAfter int64          `json:"next_after"`
		}
		q := url.Values{"campaign_id": {rr.r.campaign}, "limit": {"1000"}, "after": {strconv.FormatInt(after, 10)}}
		rr.r.must("GET", "/v1/rewards?"+q.Encode(), "", nil, &page)
		all = append(all, page.Rewards...)
		if page.NextAfter == 0 {
			return all
		}
		after = page.NextAfter
	}
}

// budget reads the campaign's budget and spent MB from the store.
func (rr *rewardRun) budget() (budget, spent int64) {
	rr.r.t.Helper()
	c := rr.r.db()
	defer c.Close(context.Background())
	if err := c.QueryRow(context.Background(), `SELECT COALESCE(sum(budget_mb), 0)::bigint, COALESCE(sum(spent_mb), 0)::bigint
		FROM campaign_budgets WHERE campaign_id = $1::uuid`, rr.r.campaign).Scan(&budget, &spent); err != nil {
		rr.r.t.Fatalf("campaign budget: %v", err)
	}
	return budget, spent
}

// check asserts the reward outcome (see the top of the file) and logs the
// figures.
func (rr *rewardRun) check() {
	r, t := rr.r, rr.r.t
	t.Helper()
	r.settle()
	rr.mu.Lock()
	errs := append([]error(nil), rr.errs...)
	first := rr.first
	later := append([]laterAnswer(nil), rr.later...)
	rr.mu.Unlock()
	for _, err := range errs {
		t.Error(err)
	}

	rows := rr.ledger()
	byMSISDN := map[string][]ledgerReward{}
	states := map[string]int{}
	var grantedMB int64
	granted := map[string]ledgerReward{}
	for _, x := range rows {
		byMSISDN[x.MSISDN] = append(byMSISDN[x.MSISDN], x)
		key := x.State
		if x.Reason != "" {
			key += "/" + x.Reason
		}
		states[key]++
		if x.State == "granted" {
			grantedMB += x.DataMB
			granted[x.ID] = x
		}
	}
	tot := r.prov.Totals()
	budget, spent := rr.budget()
	var st struct {
		Rewards struct{ Granted, MB int64 } `json:"rewards"`
	}
	r.must("GET", "/v1/campaigns/"+r.campaign+"/stats", "", nil, &st)
	r.logf("RESULT rewards: %d installers, %d rightful; ledger %v, %d MB granted (report: %d granted, %d MB); budget %d MB, spent %d MB",
		len(r.msisdns), rr.rightful, states, grantedMB, st.Rewards.Granted, st.Rewards.MB, budget, spent)
	r.logf("RESULT provisioning: %d rewards credited, %d MB; %d calls, of which %d answered 409 (a reward credited before: the idempotency key absorbed it); %d refused for signature or shape; callbacks sent again by the app backend: %d",
		tot.Grants, tot.MB, tot.Requests, tot.Replays, tot.Rejected, rr.retried.Load())

	// Every installer: exactly one reward, granted or turned away by the
	// budget; the answer to its callback named that reward.
	for i, m := range r.msisdns {
		xs := byMSISDN[m]
		if len(xs) != 1 {
			t.Errorf("installer %d has %d rewards in the ledger, want 1", i, len(xs))
			continue
		}
		x := xs[0]
		if x.State != "granted" && !(x.State == "rejected" && x.Reason == "budget_exhausted") {
			t.Errorf("installer %d: reward %s is %s %s, want granted or rejected budget_exhausted", i, x.ID, x.State, x.Reason)
		}
		ans, ok := first[i]
		switch {
		case !ok:
			t.Errorf("installer %d: no answer to its install callback", i)
		case ans.Reward == nil || ans.Reward.ID != x.ID:
			t.Errorf("installer %d: the callback's answer named reward %+v, the ledger has %s", i, ans.Reward, x.ID)
		}
	}
	if len(rows) != len(r.msisdns) {
		t.Errorf("the ledger holds %d rewards for %d installers", len(rows), len(r.msisdns))
	}
	if n := len(granted); n != rr.rightful {
		t.Errorf("%d rewards granted, want %d (the budget pays %d of the %d installers)", n, rr.rightful, rr.rightful, len(r.msisdns))
	}
	// A second device, or the same callback again, earns nothing more.
	for _, la := range later {
		switch {
		case la.cb.kind == "second" && (!la.ans.Duplicate || la.ans.Reward != nil):
			t.Errorf("installer %d's second device: duplicate=%v reward=%+v, want a duplicate install with no reward",
				la.cb.who, la.ans.Duplicate, la.ans.Reward)
		case la.cb.kind == "resend" && (!la.ans.Replay || la.ans.InstallID != first[la.cb.who].InstallID):
			t.Errorf("installer %d's resent callback: replay=%v install %s, want a replay of install %s",
				la.cb.who, la.ans.Replay, la.ans.InstallID, first[la.cb.who].InstallID)
		}
	}

	// The provisioning API credited exactly the granted rewards, each once
	// (it keys credits by reward id), and no number twice.
	credits := r.prov.Grants()
	for _, g := range credits {
		x, ok := granted[g.RewardID]
		switch {
		case !ok:
			t.Errorf("the provisioning API credited reward %s, which the ledger does not show granted", g.RewardID)
		case x.MSISDN != g.MSISDN || x.DataMB != g.DataMB || g.CampaignID != r.campaign:
			t.Errorf("reward %s credited as %d MB to another number or campaign than the ledger's", g.RewardID, g.DataMB)
		}
	}
	twice := 0
	for _, n := range r.prov.MSISDNs() {
		if n > 1 {
			twice++
		}
	}
	if twice > 0 {
		t.Errorf("%d numbers were credited more than once", twice)
	}
	if len(credits) != len(granted) || tot.MB != grantedMB {
		t.Errorf("the provisioning API credited %d rewards (%d MB), the ledger shows %d granted (%d MB)",
			len(credits), tot.MB, len(granted), grantedMB)
	}
	if st.Rewards.Granted != int64(len(granted)) || st.Rewards.MB != grantedMB {
		t.Errorf("the campaign report says %d granted, %d MB; the ledger %d, %d MB", st.Rewards.Granted, st.Rewards.MB, len(granted), grantedMB)
	}
	// The budget: what it has spent is what was granted, within it.
	if budget != r.budgetMB || spent != grantedMB || tot.MB > budget {
		t.Errorf("budget %d MB (want %d), spent %d MB, granted %d MB, credited %d MB: want spent = granted = credited <= budget",
			budget, r.budgetMB, spent, grantedMB, tot.MB)
	}
	if tot.Rejected > 0 {
		t.Errorf("the provisioning API refused %d calls for their signature or shape", tot.Rejected)
	}
	if f := r.foreignServers(); len(f) > 0 {
		t.Errorf("the Redis database was shared with processes of another test (%v): these figures mean nothing", f)
	}
	attempts := make([]int, 0, len(granted))
	for _, x := range granted {
		attempts = append(attempts, x.Attempts)
	}
	sort.Ints(attempts)
	if len(attempts) > 0 {
		r.logf("provisioning attempts recorded per granted reward: median %d, most %d",
			attempts[len(attempts)/2], attempts[len(attempts)-1])
	}
}

// TestRewardsSurviveKill9OfAWorkerMidFulfilment kills the only worker with
// SIGKILL while rewards are being provisioned and installs keep coming,
// then starts a new one. A reward whose grant reached the provisioning API
// but was not recorded stays pending with its task "active" in Redis under
// the dead worker's lease; the new worker sees the task running under no
// live asynq server and hands the reward to a new task, and the grant is
// made again, which the API answers 409 (already granted). The workers run
// with the default OUTREACH_STALE_AFTER, as shipped: the reward reconciler
// would wait two minutes, asynq's own recovery about one.
func TestRewardsSurviveKill9OfAWorkerMidFulfilment(t *testing.T) {
	t.Parallel()
	rr := newRewardRun(t, false, timing{}, 1)
	r, w1 := rr.r, rr.workers[0]
	rr.start()
	rr.waitCredited(rr.rightful / 3)
	w1.kill9()
	killedAt := time.Now()
	credited := r.prov.Totals().Grants
	time.Sleep(300 * time.Millisecond)
	pending, inflight := rr.pendingCredited()
	r.logf("FAULT: kill -9 of %s (pid %d) after %d rewards credited; the store has %d pending, %d of them already credited (in flight at the kill)",
		w1.name, w1.cmd.Process.Pid, credited, pending, inflight)
	r.worker("worker-2")
	done := rr.waitFinal()
	r.logf("RECOVERY: every reward final %v after the kill", done.Sub(killedAt).Round(time.Millisecond))
	rr.check()
}

// TestRewardsSurviveAnEmptiedRedis empties the Redis database while rewards
// are being provisioned: the queued fulfilment tasks are gone. The rewards
// stay pending in the store, and the workers' reconciler hands them back to
// the queue once they have been untouched for reward.DefaultStaleAfter.
func TestRewardsSurviveAnEmptiedRedis(t *testing.T) {
	t.Parallel()
	rr := newRewardRun(t, false, timing{staleAfter: sizeOf().staleAfter}, 2)
	r := rr.r
	rr.start()
	rr.waitCredited(rr.rightful / 3)
	credited := r.prov.Totals().Grants
	r.flushRedis()
	flushedAt := time.Now()
	pending, inflight := rr.pendingCredited()
	r.logf("FAULT: Redis emptied after %d rewards credited; the store has %d pending (%d of them already credited)",
		credited, pending, inflight)
	done := rr.waitFinal()
	r.logf("RECOVERY: every reward final %v after the flush", done.Sub(flushedAt).Round(time.Millisecond))
	rr.check()
}

// TestRewardsSurvivePostgresUnreachable cuts the processes off from
// PostgreSQL while rewards are being provisioned and installs keep coming:
// callbacks fail and are sent again by the app backend (a callback whose
// answer was lost is a replay), grants made during the outage cannot be
// recorded and are made again (409) once the store is back.
func TestRewardsSurvivePostgresUnreachable(t *testing.T) {
	t.Parallel()
	outage := sizeOf().pgOutage
	rr := newRewardRun(t, true, timing{staleAfter: sizeOf().staleAfter, sendingStaleAfter: outage + 20*time.Second}, 2)
	r := rr.r
	rr.start()
	rr.waitCredited(rr.rightful / 3)
	credited, answered, retried := r.prov.Totals().Grants, rr.answered.Load(), rr.retried.Load()
	cut := r.proxy.Cut()
	r.logf("FAULT: PostgreSQL unreachable for %v after %d rewards credited and %d callbacks answered: %d connections cut",
		outage, credited, answered, cut/2)
	time.Sleep(outage)
	r.proxy.Restore()
	upAt := time.Now()
	r.logf("PostgreSQL reachable again; during the outage %d rewards were credited, %d callbacks answered and %d callback attempts failed",
		r.prov.Totals().Grants-credited, rr.answered.Load()-answered, rr.retried.Load()-retried)
	done := rr.waitFinal()
	r.logf("RECOVERY: every reward final %v after the store came back", done.Sub(upAt).Round(time.Millisecond))
	rr.check()
}

// TestRewardsSurviveTheProvisioningAPIDown makes the provisioning API
// answer 503 to every call for a while. A 503 is transient: the rewards
// stay pending, their tasks retry with backoff, and every one is granted
// once the API is back; none may fail.
func TestRewardsSurviveTheProvisioningAPIDown(t *testing.T) {
	t.Parallel()
	outage := sizeOf().providerOutage
	rr := newRewardRun(t, false, timing{staleAfter: sizeOf().staleAfter}, 2)
	r := rr.r
	rr.start()
	rr.waitCredited(rr.rightful / 3)
	before := r.prov.Totals()
	r.prov.FailFunc(func(provisioning.Request) int { return http.StatusServiceUnavailable })
	r.logf("FAULT: the provisioning API answers 503 for %v after %d rewards credited", outage, before.Grants)
	time.Sleep(outage)
	during := r.prov.Totals()
	r.prov.FailFunc(nil)
	upAt := time.Now()
	pending, _ := rr.pendingCredited()
	r.logf("provisioning API back; %d calls during the %v outage, %d rewards pending", during.Requests-before.Requests, outage, pending)
	if during.Grants != before.Grants {
		t.Errorf("%d rewards credited while the API was down", during.Grants-before.Grants)
	}
	done := rr.waitFinal()
	resumed := time.Duration(-1)
	for _, g := range r.prov.Grants() {
		if g.At.After(upAt) && (resumed < 0 || g.At.Sub(upAt) < resumed) {
			resumed = g.At.Sub(upAt)
		}
	}
	r.logf("RECOVERY: crediting resumed %v after the API came back; every reward final %v after it",
		resumed.Round(time.Millisecond), done.Sub(upAt).Round(time.Millisecond))
	rr.check()
}
