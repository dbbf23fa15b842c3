package api_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"outreach/install"
	"outreach/internal/testenv"
	"outreach/reward"
	"outreach/store/postgres"
)

// benchParallelism is goroutines per GOMAXPROCS for the reward grants:
// fulfilments wait on the provisioning API far more than they compute.
const benchParallelism = 8

// installInFlight are the numbers of callbacks that BenchmarkInstallCallbacks
// keeps in flight, one sub-benchmark each. A closed loop of k callers can
// do no more than k / latency a second (16 callers at 4 ms: 4,000/s), so a
// single small k measures the caller, not the server: an app backend that
// sends 10,000 callbacks a second at 5 ms each has 50 in flight. The sweep
// shows where throughput stops growing and what that costs in latency.
var installInFlight = []int{16, 64, 128}

// BenchmarkInstallCallbacks posts signed install callbacks, each a new
// install of a subscriber who got the campaign's SMS (attribution by
// referral code or number, the install recorded, a reward debited from the
// campaign's budget and queued), through the API handler in process on
// PostgreSQL, with k callbacks in flight (inflight=k). It reports
// callbacks/s, the p50 and p99 latency of one callback, and the CPU time
// per callback of this process and of its PostgreSQL backends (see
// benchCPU). Fulfilment is not in the timed path (rewards are only queued).
//
//	OUTREACH_TEST_DATABASE_URL=postgres://… go test ./api -run '^$' -bench InstallCallbacks -benchtime 30000x
func BenchmarkInstallCallbacks(b *testing.B) {
	for _, k := range installInFlight {
		b.Run(fmt.Sprintf("inflight=%d", k), func(b *testing.B) { benchInstallCallbacks(b, k) })
	}
}

func benchInstallCallbacks(b *testing.B, inFlight int) {
	st, backends := openPostgresBench(b)
	h := newInstallHarness(b, st)
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
	lat := make([]time.Duration, n)
	var failed atomic.Int64
	cpu := startCPU(b, backends)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range inFlight {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				req := httptest.NewRequest(http.MethodPost, "/v1/installs", bytes.NewReader(bodies[i]))
				install.SignRequest(req.Header, installTenant, installSecret, bodies[i], time.Now())
				w := httptest.NewRecorder()
				t0 := time.Now()
				h.handler.ServeHTTP(w, req)
				lat[i] = time.Since(t0)
				if w.Code != http.StatusOK && failed.Add(1) <= 3 {
					b.Errorf("callback %d: %d %s", i, w.Code, w.Body)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu.report(b, n)
	slices.Sort(lat)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "callbacks/s")
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(0, "ns/op")
	if f := failed.Load(); f > 0 {
		b.Errorf("%d of %d callbacks failed", f, n)
	}
	if got := queued.Load(); got != int64(n) {
		b.Errorf("%d rewards queued, want %d", got, n)
	}
}

// BenchmarkRewardGrants fulfils pending rewards through the real
// provisioning client against the fake carrier API on loopback, on
// PostgreSQL, with 16 fulfilments in flight (benchParallelism per
// GOMAXPROCS): reward grants per second.
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

// openPostgresBench opens the store under an application_name of its
// own, which it returns, so that the bench can find its PostgreSQL backends.
func openPostgresBench(b *testing.B) (installStore, string) {
	b.Helper()
	u, err := url.Parse(testenv.PostgresURL(b))
	if err != nil {
		b.Fatal(err)
	}
	name := fmt.Sprintf("outreach-bench-%d", os.Getpid())
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	st, err := postgres.Open(context.Background(), u.String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return st, name
}

// benchCPU measures the CPU time that the timed part of a bench took: the
// process's own (getrusage) and its PostgreSQL backends' (/proc, when the
// server runs on this machine; the machine is shared, so these move much
// less with other work than the rates do).
type benchCPU struct {
	pool     *pgxpool.Pool
	name     string
	self     time.Duration
	backends map[string]time.Duration
}

func startCPU(b *testing.B, name string) *benchCPU {
	b.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	c := &benchCPU{pool: pool, name: name, self: selfCPU()}
	c.backends = c.backendCPU()
	return c
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU returns the CPU time of each PostgreSQL backend connected
// under the bench's application_name, by pid; none when /proc does not
// show them (a server elsewhere).
func (c *benchCPU) backendCPU() map[string]time.Duration {
	out := map[string]time.Duration{}
	rows, err := c.pool.Query(context.Background(), `SELECT pid::text FROM pg_stat_activity WHERE application_name = $1`, c.name)
	if err != nil {
		return out
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return out
	}
	for _, pid := range pids {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command name, which ends with ')'.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		out[pid] = time.Duration(utime+stime) * time.Second / clockTicks
	}
	return out
}

// clockTicks is the kernel's USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

func (c *benchCPU) report(b *testing.B, n int) {
	b.ReportMetric(float64((selfCPU()-c.self).Microseconds())/float64(n), "go-cpu-µs/op")
	after := c.backendCPU()
	if len(after) == 0 {
		return
	}
	var pg time.Duration
	for pid, t := range after {
		pg += t - c.backends[pid]
	}
	b.ReportMetric(float64(pg.Microseconds())/float64(n), "pg-cpu-µs/op")
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
