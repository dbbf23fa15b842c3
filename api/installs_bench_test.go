package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"outreach/install"
	"outreach/reward"
)

// benchParallelism is goroutines per GOMAXPROCS: callbacks wait on the
// database far more than they compute.
const benchParallelism = 8

// BenchmarkInstallCallbacks posts signed install callbacks, each a new
// install of a subscriber who got the campaign's SMS (attribution by
// referral code or number, the install recorded, a reward debited from the
// campaign's budget and queued), through the API handler in process on
// PostgreSQL. It reports callbacks/s and the p50 and p99 latency of one
// callback. Fulfilment is not in the timed path (rewards are only queued).
//
//	OUTREACH_TEST_DATABASE_URL=postgres://… go test ./api -run '^$' -bench InstallCallbacks -benchtime 20000x
func BenchmarkInstallCallbacks(b *testing.B) {
	h := newInstallHarness(b, openPostgres(b))
	var queued atomic.Int64
	h.ledger.Enqueuer = reward.EnqueuerFunc(func(context.Context, string) error { queued.Add(1); return nil })
	n := b.N
	ids := h.seed(b, n)
	h.promote(b, ids, n, int64(n)*installTestData)
	base := time.Now().Add(-10 * time.Minute)
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = callback(i+1, base.Add(time.Duration(i)*time.Microsecond))
	}
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		mine := make([]time.Duration, 0, n/benchParallelism+1)
		for pb.Next() {
			i := int(next.Add(1)) - 1
			req := httptest.NewRequest(http.MethodPost, "/v1/installs", bytes.NewReader(bodies[i]))
			install.SignRequest(req.Header, installTenant, installSecret, bodies[i], time.Now())
			w := httptest.NewRecorder()
			t0 := time.Now()
			h.handler.ServeHTTP(w, req)
			mine = append(mine, time.Since(t0))
			if w.Code != http.StatusOK {
				b.Errorf("callback %d: %d %s", i, w.Code, w.Body)
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "callbacks/s")
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(0, "ns/op")
	if got := queued.Load(); got != int64(n) {
		b.Errorf("%d rewards queued, want %d", got, n)
	}
}

// BenchmarkRewardGrants fulfils pending rewards through the real
// provisioning client against the fake carrier API on loopback, on
// PostgreSQL, with 64 fulfilments in flight: reward grants per second.
//
//	OUTREACH_TEST_DATABASE_URL=postgres://… go test ./api -run '^$' -bench RewardGrants -benchtime 20000x
func BenchmarkRewardGrants(b *testing.B) {
	h := newInstallHarness(b, openPostgres(b))
	n := b.N
	ids := h.seed(b, n)
	c := h.promote(b, ids, n, int64(n)*installTestData)
	rewardIDs := make([]string, n)
	for i := range n {
		r, _, err := (&reward.Ledger{Store: h.st, Logger: slog.New(slog.DiscardHandler)}).Create(h.ctx, reward.Request{
			TenantID: h.tenant.ID, CampaignID: c.ID, SubscriberID: ids[msisdnN(i+1)], MSISDN: msisdnN(i + 1),
			DeviceID: msisdnN(i + 1), InstallID: uuidFor(i), DataMB: installTestData, BudgetMB: int64(n) * installTestData})
		if err != nil {
			b.Fatal(err)
		}
		rewardIDs[i] = r.ID
	}
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if err := h.ful.Fulfil(h.ctx, rewardIDs[i]); err != nil {
				b.Error(err)
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "grants/s")
	b.ReportMetric(0, "ns/op")
	if got := h.fake.Totals().Grants; got != n {
		b.Errorf("the fake credited %d, want %d", got, n)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func uuidFor(i int) string {
	// a fixed, valid uuid per index
	const hex = "0123456789abcdef"
	b := []byte("00000000-0000-4000-8000-000000000000")
	for p, v := len(b)-1, i; v > 0 && p >= 24; p-- {
		b[p] = hex[v%16]
		v /= 16
	}
	return string(b)
}
