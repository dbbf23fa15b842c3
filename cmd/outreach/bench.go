package main

// outreach bench: the benchmarks recorded in BENCHMARKS.md.
//
//   ceiling   twilio-go alone against a minimal local HTTP sink
//   campaign  the whole engine (store, queue, workers, twilio-go) to that sink
//   alert     an exposure alert while marketing saturates the sender's rate
//
// Everything runs in this one process except PostgreSQL and a real Redis; the
// sink is an in-process HTTP server on 127.0.0.1, so the process CPU figures
// include the sink's side of every request (the same in the ceiling and in
// the campaign, which keeps their ratio fair).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"outreach/campaign"
	"outreach/config"
	"outreach/internal/queue"
	"outreach/provider"
	"outreach/provider/twilio"
	"outreach/subscriber"
	"outreach/tenant"
	"outreach/worker"
)

const benchUsage = `Usage: outreach bench COMMAND [flags]

Commands:
  ceiling   twilio-go alone, no queue and no store, to a minimal local HTTP sink
  campaign  an SMS install-promotion campaign with no rate limit through the
            whole engine (store, Redis, workers, twilio-go) to the same sink
  alert     an exposure alert to many contacts while a marketing campaign runs
            at the sender's full rate

Run "outreach bench COMMAND --help" for its flags. Results go in BENCHMARKS.md.
`

// runBench takes no environment: a bench names its store and Redis in its
// flags, never the service's own (it flushes its Redis database).
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return errors.New("bench: want ceiling, campaign or alert")
	}
	switch args[0] {
	case "ceiling":
		return benchCeilingCmd(ctx, args[1:], stdout, stderr)
	case "campaign":
		return benchCampaignCmd(ctx, args[1:], stdout, stderr)
	case "alert":
		return benchAlertCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, benchUsage)
		return nil
	}
	fmt.Fprint(stderr, benchUsage)
	return fmt.Errorf("bench: unknown command %q (want ceiling, campaign or alert)", args[0])
}

// The fake Twilio account every bench sends as.
const (
	benchAccount   = "AC00000000000000000000000000000000"
	benchToken     = "00000000000000000000000000000000"
	benchService   = "MG00000000000000000000000000000000"
	benchCallback  = "https://outreach.test/webhooks/twilio/status"
	benchInstall   = "https://outreach.test/i/"
	benchAlertMark = "CANH BAO"
)

// Numbers: subscriber i is +8490 followed by i in seven digits; alert
// contacts that are not subscribers are +8491 followed by j. The sink maps a
// number back to its index, so it counts per recipient in a flat array.
func benchSubscriberMSISDN(i int) string { return fmt.Sprintf("+8490%07d", i) }
func benchOutsiderMSISDN(j int) string   { return fmt.Sprintf("+8491%07d", j) }

// ---- the sink ----

// sink is a minimal Twilio Messages endpoint: every POST is answered 201 with
// the three fields the client reads. It counts messages per recipient and
// kind (an alert is a body containing benchAlertMark) and keeps arrival
// times of alert messages and, per 100 ms, of every kind.
type sink struct {
	URL   string
	srv   *http.Server
	epoch time.Time

	total    atomic.Int64
	alerts   atomic.Int64
	unknown  atomic.Int64 // To outside both ranges
	sid      atomic.Uint64
	firstNS  atomic.Int64 // since epoch; 0 none yet
	lastNS   atomic.Int64
	subs     []uint32 // per subscriber: marketing count + alert count<<16
	outsider []uint32 // per outsider: the same

	mu      sync.Mutex
	alertAt []time.Duration // since epoch
	// per sinkBucket since epoch: marketing and alert arrivals
	buckets [2][]atomic.Int32
}

const (
	sinkBucket  = 10 * time.Millisecond
	sinkBuckets = int(time.Hour / sinkBucket)
)

func startSink(subscribers, outsiders int) (*sink, error) {
	s := &sink{epoch: time.Now(), subs: make([]uint32, subscribers), outsider: make([]uint32, outsiders)}
	s.buckets[0] = make([]atomic.Int32, sinkBuckets)
	s.buckets[1] = make([]atomic.Int32, sinkBuckets)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	s.URL = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *sink) Close() { s.srv.Close() }

// since is now on the sink's clock (monotonic).
func (s *sink) since() time.Duration { return time.Since(s.epoch) }

// reset forgets every message (after a warm-up or a ceiling run).
func (s *sink) reset() {
	s.total.Store(0)
	s.alerts.Store(0)
	s.unknown.Store(0)
	s.firstNS.Store(0)
	clear(s.subs)
	clear(s.outsider)
	s.mu.Lock()
	s.alertAt = nil
	s.mu.Unlock()
	// Only the buckets written so far (the rest were never touched, so
	// they cost no memory).
	used := s.used()
	s.lastNS.Store(0)
	for k := range s.buckets {
		for i := range s.buckets[k][:used] {
			s.buckets[k][i].Store(0)
		}
	}
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	to, body := r.PostForm.Get("To"), r.PostForm.Get("Body")
	at := s.since()
	alert := strings.Contains(body, benchAlertMark)
	var inc uint32 = 1
	kind := 0
	if alert {
		inc, kind = 1<<16, 1
		s.alerts.Add(1)
		s.mu.Lock()
		s.alertAt = append(s.alertAt, at)
		s.mu.Unlock()
	}
	if slot := s.slot(to); slot != nil {
		atomic.AddUint32(slot, inc)
	} else {
		s.unknown.Add(1)
	}
	s.buckets[kind][min(int(at/sinkBucket), sinkBuckets-1)].Add(1)
	s.firstNS.CompareAndSwap(0, int64(at))
	for {
		last := s.lastNS.Load()
		if int64(at) <= last || s.lastNS.CompareAndSwap(last, int64(at)) {
			break
		}
	}
	s.total.Add(1)

	var buf [96]byte
	b := append(buf[:0], `{"sid":"SM`...)
	n := s.sid.Add(1)
	b = append(b, fmt.Sprintf("%032x", n)...)
	b = append(b, `","status":"queued","num_segments":"1"}`...)
	w.Header()["Content-Type"] = []string{"application/json"}
	w.WriteHeader(http.StatusCreated)
	w.Write(b)
}

// slot is the counter of a bench number, or nil.
func (s *sink) slot(to string) *uint32 {
	if len(to) != 12 || !strings.HasPrefix(to, "+849") {
		return nil
	}
	i, err := strconv.Atoi(to[5:])
	if err != nil || i < 0 {
		return nil
	}
	switch to[4] {
	case '0':
		if i < len(s.subs) {
			return &s.subs[i]
		}
	case '1':
		if i < len(s.outsider) {
			return &s.outsider[i]
		}
	}
	return nil
}

// perRecipient checks every subscriber got wantMkt(i) marketing messages
// and wantAlert(i) alert messages, and every outsider wantOut(j) alerts; it
// returns how many recipients got the wrong count and the first of them.
func (s *sink) perRecipient(wantMkt, wantAlert func(i int) int, wantOut func(j int) int) (wrong int, first string) {
	check := func(v uint32, m, a int, name func() string) {
		gotM, gotA := int(v&0xffff), int(v>>16)
		if gotM != m || gotA != a {
			if wrong == 0 {
				first = fmt.Sprintf("%s got %d marketing and %d alert messages, want %d and %d", name(), gotM, gotA, m, a)
			}
			wrong++
		}
	}
	for i := range s.subs {
		check(atomic.LoadUint32(&s.subs[i]), wantMkt(i), wantAlert(i), func() string { return benchSubscriberMSISDN(i) })
	}
	for j := range s.outsider {
		check(atomic.LoadUint32(&s.outsider[j]), 0, wantOut(j), func() string { return benchOutsiderMSISDN(j) })
	}
	return wrong, first
}

// used is how many buckets hold arrivals: those up to the last one's.
func (s *sink) used() int {
	return min(int(time.Duration(s.lastNS.Load())/sinkBucket)+1, sinkBuckets)
}

// busiest answers the most arrivals, of either kind, in a second of
// buckets in a row: the busiest second, to within a bucket.
func (s *sink) busiest() int64 {
	const n = int(time.Second / sinkBucket)
	var window, most int64
	for i := range s.used() {
		window += int64(s.buckets[0][i].Load() + s.buckets[1][i].Load())
		if i >= n {
			window -= int64(s.buckets[0][i-n].Load() + s.buckets[1][i-n].Load())
		}
		most = max(most, window)
	}
	return most
}

// count returns the marketing and alert arrivals in the buckets that lie
// wholly within [from, to), and how long those buckets span: a rate is
// the count over that span.
func (s *sink) count(from, to time.Duration) (mkt, alert int64, span time.Duration) {
	lo := max(int((from+sinkBucket-1)/sinkBucket), 0)
	hi := min(int(to/sinkBucket), sinkBuckets)
	for i := lo; i < hi; i++ {
		mkt += int64(s.buckets[0][i].Load())
		alert += int64(s.buckets[1][i].Load())
	}
	return mkt, alert, time.Duration(max(hi-lo, 0)) * sinkBucket
}

// ---- measuring ----

// usage is the process's CPU time (user + system).
func cpuUsage() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU is the busy CPU time of the whole machine (every process:
// PostgreSQL, Redis and anything else running) from /proc/stat.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// cpuSnapshot is the CPU time so far of what else serves the bench: the
// PostgreSQL backends connected to its database, PostgreSQL's background
// processes (WAL writer, checkpointer, autovacuum…, shared with every other
// database of the server), and the Redis server (instance-wide).
type cpuSnapshot struct {
	pgBench, pgBackground map[int]time.Duration
	redis                 time.Duration
	haveRedis             bool
}

// cpuDelta is what cpuSnapshot counts, over a phase.
type cpuDelta struct {
	PGBench, PGBackground, Redis time.Duration
	HavePG, HaveRedis            bool
}

func snapshotCPU(ctx context.Context, pgDB string, rdb redis.UniversalClient) cpuSnapshot {
	s := cpuSnapshot{pgBench: map[int]time.Duration{}, pgBackground: map[int]time.Duration{}}
	if pgDB != "" {
		dirs, _ := os.ReadDir("/proc")
		for _, d := range dirs {
			pid, err := strconv.Atoi(d.Name())
			if err != nil {
				continue
			}
			cmd, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
			if err != nil || !bytes.HasPrefix(cmd, []byte("postgres: ")) {
				continue
			}
			line := string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
			client := strings.Contains(line, "(") || strings.Contains(line, "[local]")
			mine := client && slices.Contains(strings.Fields(line), pgDB)
			if client && !mine {
				continue
			}
			t := procTicks(d.Name())
			if mine {
				s.pgBench[pid] = t
			} else {
				s.pgBackground[pid] = t
			}
		}
	}
	if rdb != nil {
		if info, err := rdb.Info(ctx, "cpu").Result(); err == nil {
			s.haveRedis = true
			for _, l := range strings.Split(info, "\n") {
				k, v, _ := strings.Cut(strings.TrimSpace(l), ":")
				if k == "used_cpu_sys" || k == "used_cpu_user" {
					f, _ := strconv.ParseFloat(v, 64)
					s.redis += time.Duration(f * float64(time.Second))
				}
			}
		}
	}
	return s
}

// procTicks is a process's user + system time from /proc/PID/stat.
func procTicks(pid string) time.Duration {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(b, []byte(") ")) // after the command name
	if !ok {
		return 0
	}
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * time.Second / 100 // USER_HZ
}

func (a cpuSnapshot) to(b cpuSnapshot) cpuDelta {
	sum := func(from, to map[int]time.Duration) (d time.Duration) {
		for pid, t := range to {
			d += t - from[pid] // a process born meanwhile counts from zero
		}
		return d
	}
	return cpuDelta{PGBench: sum(a.pgBench, b.pgBench), PGBackground: sum(a.pgBackground, b.pgBackground),
		Redis: b.redis - a.redis, HavePG: len(b.pgBench) > 0, HaveRedis: a.haveRedis && b.haveRedis}
}

func (d cpuDelta) print(tw io.Writer, n int64) {
	if d.HavePG {
		fmt.Fprintf(tw, "  CPU per 100,000 messages: PostgreSQL backends of the bench database\t%s\n", per100k(d.PGBench, n))
		fmt.Fprintf(tw, "  CPU per 100,000 messages: PostgreSQL background (WAL writer, checkpointer…; server-wide)\t%s\n", per100k(d.PGBackground, n))
	}
	if d.HaveRedis {
		fmt.Fprintf(tw, "  CPU per 100,000 messages: Redis server (instance-wide)\t%s\n", per100k(d.Redis, n))
	}
}

// procStatus reads VmRSS and VmHWM (bytes) from /proc/self/status.
func procStatus() (rss, hwm int64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm
}

// resetPeakRSS lowers VmHWM to the current RSS (Linux 4.0+), after handing
// freed heap back to the OS, so that a phase's peak is its own.
func resetPeakRSS() {
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

func redisUsedMemory(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no used_memory in INFO memory")
}

// sampler samples RSS and Redis used_memory every 100 ms, and keeps their
// range per tenth of progress.
type sampler struct {
	rdb      redis.UniversalClient // nil for the in-process Redis: n/a
	progress func() float64
	stop     chan struct{}
	done     chan struct{}

	mu        sync.Mutex
	peakRSS   int64
	peakRedis int64
	baseRedis int64
	tenths    [10]rangeSample
}

type rangeSample struct {
	n                  int
	rssMin, rssMax     int64
	redisMin, redisMax int64
}

func startSampler(rdb redis.UniversalClient, progress func() float64) *sampler {
	s := &sampler{rdb: rdb, progress: progress, stop: make(chan struct{}), done: make(chan struct{})}
	if rdb != nil {
		s.baseRedis, _ = redisUsedMemory(context.Background(), rdb)
	}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				s.sample()
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	rss, _ := procStatus()
	var mem int64 = -1
	if s.rdb != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if m, err := redisUsedMemory(ctx, s.rdb); err == nil {
			mem = m
		}
		cancel()
	}
	p := s.progress()
	t := min(max(int(p*10), 0), 9)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peakRSS = max(s.peakRSS, rss)
	s.peakRedis = max(s.peakRedis, mem)
	r := &s.tenths[t]
	if r.n == 0 {
		r.rssMin, r.rssMax, r.redisMin, r.redisMax = rss, rss, mem, mem
	}
	r.n++
	r.rssMin, r.rssMax = min(r.rssMin, rss), max(r.rssMax, rss)
	r.redisMin, r.redisMax = min(r.redisMin, mem), max(r.redisMax, mem)
}

func (s *sampler) Stop() {
	close(s.stop)
	<-s.done
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func (s *sampler) redisPeak() string {
	if s.rdb == nil {
		return "n/a (in-process Redis)"
	}
	return fmt.Sprintf("%s (%s above the %s at start)", mb(s.peakRedis), mb(s.peakRedis-s.baseRedis), mb(s.baseRedis))
}

func (s *sampler) printTenths(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "progress\tsamples\tRSS min\tRSS max\tRedis used_memory min\tRedis used_memory max")
	for i, r := range s.tenths {
		if r.n == 0 {
			fmt.Fprintf(tw, "%d-%d%%\t0\t\t\t\t\n", i*10, i*10+10)
			continue
		}
		rmin, rmax := "n/a", "n/a"
		if s.rdb != nil {
			rmin, rmax = mb(r.redisMin), mb(r.redisMax)
		}
		fmt.Fprintf(tw, "%d-%d%%\t%d\t%s\t%s\t%s\t%s\n", i*10, i*10+10, r.n, mb(r.rssMin), mb(r.rssMax), rmin, rmax)
	}
	tw.Flush()
}

// startProfile starts a CPU profile to path ("" for none); stop ends it.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	var once sync.Once
	return func() { once.Do(func() { pprof.StopCPUProfile(); f.Close() }) }, nil
}

func machineLine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	ram := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(l)
		if len(f) >= 2 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			ram = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			load = ", load " + strings.Join(f[:3], " ")
		}
	}
	return fmt.Sprintf("%d CPUs (%s)%s, GOMAXPROCS %d, %s%s, %s", runtime.NumCPU(), model, ram,
		runtime.GOMAXPROCS(0), runtime.Version(), load, time.Now().UTC().Format(time.RFC3339))
}

func per100k(d time.Duration, n int64) string {
	if n == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f s", d.Seconds()*100000/float64(n))
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// ---- the ceiling ----

type ceilingResult struct {
	Messages, Errors int64
	Wall             time.Duration
	CPU, Machine     time.Duration
	PeakRSS          int64
	FirstErr         error
}

func (r ceilingResult) Rate() float64 { return rate(r.Messages, r.Wall) }

func newBenchTwilio(baseURL string) (*twilio.Client, error) {
	return twilio.New(twilio.Config{AccountSID: benchAccount, AuthToken: benchToken,
		MessagingServiceSID: benchService, BaseURL: baseURL, Timeout: 30 * time.Second})
}

// benchBody is what the campaign's template renders to, decorated as the
// workers decorate it.
func benchBody(policy campaign.Policy, code string) string {
	return policy.DecorateSMS(campaign.KindInstallPromotion,
		"Cai Bluezone de nhan 5120MB data: "+benchInstall+code, true)
}

// runCeiling sends n messages to subscribers 0..n-1 through twilio-go alone
// with conc goroutines, after a short warm-up, and resets the sink after.
func runCeiling(ctx context.Context, s *sink, n, conc int, policy campaign.Policy, profile string) (ceilingResult, error) {
	c, err := newBenchTwilio(s.URL)
	if err != nil {
		return ceilingResult{}, err
	}
	send := func(count int) ceilingResult {
		var (
			next, errs atomic.Int64
			firstErr   error
			once       sync.Once
			wg         sync.WaitGroup
		)
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= int64(count) || ctx.Err() != nil {
						return
					}
					_, err := c.SendSMS(ctx, provider.SMS{To: benchSubscriberMSISDN(int(i) % len(s.subs)),
						Body: benchBody(policy, campaign.NewReferralCode()), StatusCallback: benchCallback, ValidityPeriod: time.Hour})
					if err != nil {
						errs.Add(1)
						once.Do(func() { firstErr = err })
					}
				}
			}()
		}
		wg.Wait()
		return ceilingResult{Messages: int64(count), Errors: errs.Load(), FirstErr: firstErr}
	}
	send(min(2000, n)) // open the connections, warm the caches
	s.reset()
	resetPeakRSS()
	stop, err := startProfile(profile)
	if err != nil {
		return ceilingResult{}, err
	}
	cpu0, m0, t0 := cpuUsage(), machineCPU(), time.Now()
	res := send(n)
	res.Wall, res.CPU, res.Machine = time.Since(t0), cpuUsage()-cpu0, machineCPU()-m0
	stop()
	_, res.PeakRSS = procStatus()
	if got := s.total.Load(); got != int64(n)-res.Errors {
		return res, fmt.Errorf("ceiling: the sink saw %d messages, want %d", got, int64(n)-res.Errors)
	}
	s.reset()
	return res, ctx.Err()
}

func printCeiling(w io.Writer, r ceilingResult, conc int) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ceiling: twilio-go alone, %d goroutines\t\n", conc)
	fmt.Fprintf(tw, "  messages\t%d (%d errors)\n", r.Messages, r.Errors)
	fmt.Fprintf(tw, "  wall\t%.2f s\n", r.Wall.Seconds())
	fmt.Fprintf(tw, "  messages/s\t%.0f\n", r.Rate())
	fmt.Fprintf(tw, "  CPU per 100,000 messages (this process, sink included)\t%s (%.1f µs/message)\n",
		per100k(r.CPU, r.Messages), float64(r.CPU.Microseconds())/float64(max(r.Messages, 1)))
	fmt.Fprintf(tw, "  CPU per 100,000 messages (whole machine)\t%s\n", per100k(r.Machine, r.Messages))
	fmt.Fprintf(tw, "  CPU of other processes meanwhile (~0 on a quiet machine)\t%.1f s of %.1f s wall × %d cores\n",
		max(r.Machine-r.CPU, 0).Seconds(), r.Wall.Seconds(), runtime.NumCPU())
	fmt.Fprintf(tw, "  peak RSS\t%s\n", mb(r.PeakRSS))
	tw.Flush()
	if r.FirstErr != nil {
		fmt.Fprintf(w, "  first error: %v\n", r.FirstErr)
	}
}

func benchCeilingCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench ceiling", "Sends N messages through twilio-go alone (no queue, no store) to a minimal\n"+
		"in-process HTTP sink on 127.0.0.1 with bounded concurrency, and reports messages/s,\n"+
		"CPU seconds per 100,000 messages (getrusage) and peak RSS.", stderr)
	n := fs.Int("messages", 100000, "messages to send")
	conc := fs.Int("concurrency", 64, "goroutines sending at once")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the timed phase to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n <= 0 || *conc <= 0 {
		return errors.New("bench ceiling: --messages and --concurrency must be positive")
	}
	s, err := startSink(*n, 0)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintln(stdout, "machine:", machineLine())
	res, err := runCeiling(ctx, s, *n, *conc, benchPolicy(), *profile)
	if err != nil {
		return err
	}
	printCeiling(stdout, res, *conc)
	if res.Errors > 0 {
		return fmt.Errorf("bench ceiling: %d sends failed: %v", res.Errors, res.FirstErr)
	}
	return nil
}

// ---- the engine's environment ----

func benchPolicy() campaign.Policy {
	zone, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		zone = time.FixedZone("ICT", 7*3600)
	}
	always, _ := config.ParseWindow("00:00-24:00")
	return campaign.Policy{Zone: zone, Window: always, Cap: config.Cap{}, // frequency cap off
		Label: "QC", OptOutText: "Tu choi: soan TC gui 9241"}
}

// benchEnv is a store, a Redis and a sink for one run.
type benchEnv struct {
	store     store
	queue     *queue.Conn
	sink      *sink
	sms       *twilio.Client
	storeDesc string
	redisDesc string
	pgDB      string // the PostgreSQL database name, for its backends' CPU
	closers   []func()
}

func (e *benchEnv) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

type envFlags struct {
	store, databaseURL, redisURL *string
}

func addEnvFlags(fs *flag.FlagSet) envFlags {
	return envFlags{
		store: fs.String("store", "sqlite", "postgres or sqlite"),
		databaseURL: fs.String("database-url", "", "postgres://… or sqlite://PATH (default a temporary file); "+
			"use a database of its own: each run adds a tenant (never taken from OUTREACH_DATABASE_URL)"),
		redisURL: fs.String("redis-url", "", "redis://HOST:PORT/DB (empty: the in-process Redis). "+
			"THE DATABASE IS FLUSHED at the start of the run, so it is never taken from OUTREACH_REDIS_URL"),
	}
}

func openBenchEnv(ctx context.Context, f envFlags, subscribers, outsiders int, stderr io.Writer) (_ *benchEnv, err error) {
	e := &benchEnv{}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	dbURL := *f.databaseURL
	switch *f.store {
	case "postgres":
		if !strings.HasPrefix(dbURL, "postgres://") && !strings.HasPrefix(dbURL, "postgresql://") {
			return nil, errors.New("bench: --store postgres needs --database-url postgres://… (a database of its own)")
		}
		e.storeDesc = "PostgreSQL " + redactURLUser(dbURL)
		if u, err := url.Parse(dbURL); err == nil {
			e.pgDB = strings.TrimPrefix(u.Path, "/")
		}
	case "sqlite":
		if dbURL == "" {
			dir, err := os.MkdirTemp("", "outreach-bench-")
			if err != nil {
				return nil, err
			}
			e.closers = append(e.closers, func() { os.RemoveAll(dir) })
			dbURL = "sqlite://" + filepath.Join(dir, "bench.db")
		}
		if !strings.HasPrefix(dbURL, "sqlite://") {
			return nil, errors.New("bench: --store sqlite takes --database-url sqlite://PATH")
		}
		e.storeDesc = "SQLite " + strings.TrimPrefix(dbURL, "sqlite://")
	default:
		return nil, fmt.Errorf("bench: --store %q: want postgres or sqlite", *f.store)
	}
	if e.store, err = openStore(ctx, &config.Config{DatabaseURL: dbURL}, true); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { e.store.Close() })

	// Never the service's own OUTREACH_REDIS_URL: the bench flushes it.
	redisURL := *f.redisURL
	if e.queue, err = queue.Connect(redisURL); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { e.queue.Close() })
	if e.queue.Embedded {
		e.redisDesc = "in-process Redis (miniredis)"
	} else {
		if err := e.queue.Ping(ctx); err != nil {
			return nil, fmt.Errorf("bench: redis: %w", err)
		}
		release, err := leaseTestDB(ctx, redisURL)
		if err != nil {
			return nil, err
		}
		e.closers = append(e.closers, release)
		if err := e.queue.Redis.FlushDB(ctx).Err(); err != nil {
			return nil, fmt.Errorf("bench: flush redis: %w", err)
		}
		e.redisDesc = "Redis " + redactURLUser(redisURL)
		if v, err := e.queue.Redis.Info(ctx, "server").Result(); err == nil {
			for _, l := range strings.Split(v, "\n") {
				if ver, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
					e.redisDesc += " (" + ver + ")"
				}
			}
		}
	}
	if e.sink, err = startSink(subscribers, outsiders); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.sink.Close)
	if e.sms, err = newBenchTwilio(e.sink.URL); err != nil {
		return nil, err
	}
	return e, nil
}

func redactURLUser(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if user, _, hasPw := strings.Cut(rest[:at], ":"); hasPw {
			rest = user + ":***" + rest[at:]
		}
	}
	return scheme + "://" + rest
}

// leaseTestDB takes, while the bench runs, the lease the test suites take on
// Redis databases 1-15 (internal/testenv), so that a test started meanwhile
// does not flush the bench's queue, nor the bench a test's.
func leaseTestDB(ctx context.Context, rawURL string) (release func(), err error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil || opt.DB < 1 || opt.DB > 15 {
		return func() {}, nil
	}
	db := opt.DB
	opt.DB = 0
	c := redis.NewClient(opt)
	key := fmt.Sprintf("outreach:test-db-lease:%d", db)
	ok, err := c.SetNX(ctx, key, "bench", 2*time.Minute).Result()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("bench: lease redis db %d: %w", db, err)
	}
	if !ok {
		c.Close()
		return nil, fmt.Errorf("bench: redis db %d is leased by a running test (%s); pick another db in --redis-url", db, key)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				c.Expire(context.Background(), key, 2*time.Minute)
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		c.Del(context.Background(), key)
		c.Close()
	}, nil
}

// seed upserts n subscribers (+8490…) in batches; returns the time taken.
func seedSubscribers(ctx context.Context, st store, tenantID string, n int, out io.Writer) (time.Duration, error) {
	const batch = 5000
	regions := benchRegions
	t0 := time.Now()
	rows := make([]subscriber.Row, 0, batch)
	for start := 0; start < n; start += batch {
		rows = rows[:0]
		for i := start; i < min(start+batch, n); i++ {
			rows = append(rows, subscriber.Row{MSISDN: benchSubscriberMSISDN(i), Region: regions[i%len(regions)],
				Locale: "vi", Attributes: map[string]string{"name": "Khach " + strconv.Itoa(i)}})
		}
		if _, err := st.UpsertSubscribers(ctx, tenantID, rows, ""); err != nil {
			return 0, fmt.Errorf("seed subscribers: %w", err)
		}
		if n >= 200000 && (start/batch)%40 == 39 {
			fmt.Fprintf(out, "  seeded %d of %d\n", start+batch, n)
		}
	}
	return time.Since(t0), nil
}

// meteredStore times the store calls of the fan-out chain and of sending, so
// that fan-out's own throughput can be told from its pacing.
type meteredStore struct {
	campaign.Store
	target string // the campaign whose fan-out is measured

	mu         sync.Mutex
	roundStart time.Time
	active     time.Duration // inside fan-out rounds (page, insert, enqueue, progress)
	insertTime time.Duration // inside InsertDeliveries
	pageTime   time.Duration // inside AudiencePage
	rounds     int
	rows       int64
	done       time.Time

	// firsts is, per campaign, when each step first happened.
	firstsMu sync.Mutex
	firsts   map[string]map[string]time.Time

	addContacts, createCampaign, transition, audit callTimer

	claims, records         atomic.Int64
	claimNS, recordNS       atomic.Int64
	claimedRows, recordRows atomic.Int64
}

// first notes the first time step happened for the campaign.
func (m *meteredStore) first(campaignID, step string) {
	now := time.Now()
	m.firstsMu.Lock()
	defer m.firstsMu.Unlock()
	if m.firsts == nil {
		m.firsts = map[string]map[string]time.Time{}
	}
	f := m.firsts[campaignID]
	if f == nil {
		f = map[string]time.Time{}
		m.firsts[campaignID] = f
	}
	if _, ok := f[step]; !ok {
		f[step] = now
	}
}

// firstOf is when step first happened for the campaign (zero if never).
func (m *meteredStore) firstOf(campaignID, step string) time.Time {
	m.firstsMu.Lock()
	defer m.firstsMu.Unlock()
	return m.firsts[campaignID][step]
}

func (m *meteredStore) AudiencePage(ctx context.Context, c campaign.Campaign, afterID int64, limit int) ([]int64, error) {
	m.first(c.ID, "page")
	if c.ID != m.target {
		return m.Store.AudiencePage(ctx, c, afterID, limit)
	}
	t0 := time.Now()
	m.mu.Lock()
	m.roundStart = t0
	m.mu.Unlock()
	ids, err := m.Store.AudiencePage(ctx, c, afterID, limit)
	m.mu.Lock()
	m.pageTime += time.Since(t0)
	m.mu.Unlock()
	return ids, err
}

func (m *meteredStore) InsertDeliveries(ctx context.Context, c campaign.Campaign, ch campaign.Channel, ds []campaign.NewDelivery) (int, error) {
	t0 := time.Now()
	n, err := m.Store.InsertDeliveries(ctx, c, ch, ds)
	m.first(c.ID, "inserted")
	if c.ID == m.target {
		m.mu.Lock()
		m.rows += int64(n)
		m.insertTime += time.Since(t0)
		m.mu.Unlock()
	}
	return n, err
}

func (m *meteredStore) SetFanoutProgress(ctx context.Context, campaignID string, cursor int64, done bool) error {
	err := m.Store.SetFanoutProgress(ctx, campaignID, cursor, done)
	if campaignID == m.target {
		m.mu.Lock()
		if !m.roundStart.IsZero() {
			m.active += time.Since(m.roundStart)
			m.rounds++
			m.roundStart = time.Time{}
		}
		if done {
			m.done = time.Now()
		}
		m.mu.Unlock()
	}
	return err
}

func (m *meteredStore) ClaimDeliveries(ctx context.Context, campaignID string, ch campaign.Channel, ids []int64) ([]campaign.Recipient, error) {
	m.first(campaignID, "claim")
	t0 := time.Now()
	r, err := m.Store.ClaimDeliveries(ctx, campaignID, ch, ids)
	m.first(campaignID, "claimed")
	m.claims.Add(1)
	m.claimNS.Add(int64(time.Since(t0)))
	m.claimedRows.Add(int64(len(r)))
	return r, err
}

func (m *meteredStore) AddContacts(ctx context.Context, campaignID string, ids []int64) error {
	defer m.addContacts.since(time.Now())
	return m.Store.AddContacts(ctx, campaignID, ids)
}

func (m *meteredStore) CreateCampaign(ctx context.Context, c *campaign.Campaign) error {
	defer m.createCampaign.since(time.Now())
	return m.Store.CreateCampaign(ctx, c)
}

func (m *meteredStore) TransitionCampaign(ctx context.Context, tenantID, id string, from []campaign.State, to campaign.State, at time.Time) (campaign.Campaign, error) {
	defer m.transition.since(time.Now())
	return m.Store.TransitionCampaign(ctx, tenantID, id, from, to, at)
}

func (m *meteredStore) Audit(ctx context.Context, e campaign.AuditEntry) error {
	defer m.audit.since(time.Now())
	return m.Store.Audit(ctx, e)
}

func (m *meteredStore) RecordOutcomes(ctx context.Context, outs []campaign.Outcome) error {
	if len(outs) > 0 {
		m.first(outs[0].CampaignID, "record")
	}
	t0 := time.Now()
	err := m.Store.RecordOutcomes(ctx, outs)
	m.records.Add(1)
	m.recordNS.Add(int64(time.Since(t0)))
	m.recordRows.Add(int64(len(outs)))
	return err
}

// callTimer sums the time spent in one kind of call.
type callTimer struct{ calls, ns atomic.Int64 }

func (t *callTimer) since(t0 time.Time)   { t.calls.Add(1); t.ns.Add(int64(time.Since(t0))) }
func (t *callTimer) total() time.Duration { return time.Duration(t.ns.Load()) }

// meteredSubscribers times EnsureSubscribers (creating an alert's unknown
// contacts).
type meteredSubscribers struct {
	subscriber.Store
	ensure callTimer
}

func (m *meteredSubscribers) EnsureSubscribers(ctx context.Context, tenantID string, msisdns []string) (map[string]int64, error) {
	defer m.ensure.since(time.Now())
	return m.Store.EnsureSubscribers(ctx, tenantID, msisdns)
}

// meteredDispatcher times Kick and, when the dispatcher starts alerts
// (campaign.AlertStarter), the hold, the first contacts' queueing and the
// release of the fan-out (counted as Kick).
type meteredDispatcher struct {
	campaign.Dispatcher
	kick, hold, first callTimer
}

func (m *meteredDispatcher) Kick(ctx context.Context, c campaign.Campaign) error {
	defer m.kick.since(time.Now())
	return m.Dispatcher.Kick(ctx, c)
}

func (m *meteredDispatcher) HoldFanout(ctx context.Context, c campaign.Campaign) (func(context.Context, bool) error, error) {
	defer m.hold.since(time.Now())
	release, err := m.Dispatcher.(campaign.AlertStarter).HoldFanout(ctx, c)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, queuedAll bool) error {
		defer m.kick.since(time.Now())
		return release(ctx, queuedAll)
	}, nil
}

func (m *meteredDispatcher) QueueContacts(ctx context.Context, c campaign.Campaign, ids []int64) error {
	defer m.first.since(time.Now())
	return m.Dispatcher.(campaign.AlertStarter).QueueContacts(ctx, c, ids)
}

// meteredSMS times the provider calls.
type meteredSMS struct {
	*twilio.Client
	calls, ns atomic.Int64
}

func (m *meteredSMS) SendSMS(ctx context.Context, s provider.SMS) (provider.Result, error) {
	t0 := time.Now()
	r, err := m.Client.SendSMS(ctx, s)
	m.calls.Add(1)
	m.ns.Add(int64(time.Since(t0)))
	return r, err
}

type engineFlags struct {
	concurrency, sendConcurrency, batch, fastBatch, fanoutChunk, maxBacklog, alertConcurrency *int
	frequencyCap                                                                              *string
	rate, senderRate                                                                          *int // bench campaign only
}

func addEngineFlags(fs *flag.FlagSet, concurrency, sendConcurrency int) engineFlags {
	return engineFlags{
		concurrency:      fs.Int("concurrency", concurrency, "marketing send tasks in flight (worker.Settings.Concurrency)"),
		sendConcurrency:  fs.Int("send-concurrency", sendConcurrency, "provider calls in flight per send task"),
		batch:            fs.Int("batch", 100, "deliveries per send task, and per claim and record of a fast batch"),
		fastBatch:        fs.Int("fast-batch", 500, "deliveries per send task of a marketing campaign faster than 1,000/s"),
		fanoutChunk:      fs.Int("fanout-chunk", 10000, "subscribers read per fan-out round"),
		maxBacklog:       fs.Int("max-backlog", 20000, "deliveries queued in Redis ahead of sending (campaigns with no rate)"),
		alertConcurrency: fs.Int("alert-concurrency", 20, "alert send tasks in flight"),
		frequencyCap: fs.String("frequency-cap", "0", "the marketing frequency cap, as OUTREACH_FREQUENCY_CAP "+
			"(3/24h: at most 3 a day); 0 is off"),
	}
}

// policy is the bench's marketing policy with the --frequency-cap asked for.
func (f engineFlags) policy() (campaign.Policy, error) {
	p := benchPolicy()
	c, err := config.ParseCap(*f.frequencyCap)
	if err != nil {
		return p, fmt.Errorf("--frequency-cap: %w", err)
	}
	p.Cap = c
	return p, nil
}

func (f engineFlags) settings(smsRate int) worker.Settings {
	return worker.Settings{SMSSender: benchService, SMSRate: smsRate, PushRate: smsRate,
		InstallBaseURL: benchInstall, StatusCallback: benchCallback,
		Concurrency: *f.concurrency, AlertConcurrency: *f.alertConcurrency, SendConcurrency: *f.sendConcurrency,
		BatchSize: *f.batch, FastBatchSize: *f.fastBatch, FanoutChunk: *f.fanoutChunk, MaxBacklog: *f.maxBacklog}
}

func (f engineFlags) String() string {
	return fmt.Sprintf("concurrency %d, send-concurrency %d, batch %d, fast batch %d, fanout-chunk %d, max-backlog %d",
		*f.concurrency, *f.sendConcurrency, *f.batch, *f.fastBatch, *f.fanoutChunk, *f.maxBacklog)
}

// startEngine runs an engine until the returned stop is called.
func startEngine(ctx context.Context, e *benchEnv, st campaign.Store, sms *meteredSMS, set worker.Settings,
	policy campaign.Policy, log *slog.Logger) (*worker.Engine, func() error) {
	eng := worker.New(worker.Deps{Store: st, Subscribers: e.store, Queue: e.queue, SMS: sms,
		Policy: policy, Settings: set, Logger: log})
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- eng.Run(runCtx) }()
	var once sync.Once
	var err error
	return eng, func() error {
		once.Do(func() { cancel(); err = <-errc; eng.Close() })
		return err
	}
}

func benchLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func benchTenant(ctx context.Context, st store, prefix string) (tenant.Principal, error) {
	name := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
	t, err := st.EnsureTenant(ctx, name)
	if err != nil {
		return tenant.Principal{}, err
	}
	return tenant.Principal{KeyID: "bench", TenantID: t.ID, TenantName: name, Role: tenant.RoleAdmin}, nil
}

// benchRegions are the regions seeded subscribers live in; contacts an alert
// creates have none.
var benchRegions = []string{"HN", "HCM", "DN", "HP", "CT", "QN", "NA", "TH"}

// promoCampaign creates the install promotion at rate messages a second
// (0: no limit): every subscriber, or those of the given regions.
func promoCampaign(ctx context.Context, svc *campaign.Service, p tenant.Principal, rate int, regions ...string) (campaign.Campaign, error) {
	tp, err := svc.CreateTemplate(ctx, p, campaign.TemplateInput{Name: "bench-promo", Channel: campaign.ChannelSMS,
		Locale: "vi", Body: "Cài Bluezone để nhận {{.RewardMB}}MB data: {{.InstallLink}}", Transliterate: true})
	if err != nil {
		return campaign.Campaign{}, fmt.Errorf("template: %w", err)
	}
	return svc.CreateCampaign(ctx, p, campaign.CampaignInput{Name: "bench promo", Kind: campaign.KindInstallPromotion,
		Channels: []campaign.Channel{campaign.ChannelSMS}, Templates: map[campaign.Channel]string{campaign.ChannelSMS: tp.ID},
		Audience: campaign.Audience{Regions: regions}, RatePerSecond: rate, Reward: &campaign.Reward{DataMB: 5120, BudgetMB: 5120 * 1_000_000_000, AttributionDays: 14}})
}

// stallLimit is how long a bench waits without progress before giving up:
// longer than the engine's reconciler takes (worker.Settings.StaleAfter, 2
// minutes) to re-drive deliveries whose task was lost, say to a FLUSHALL.
const stallLimit = 3 * time.Minute

// waitFor polls cond every 20 ms until it holds, ctx ends or the watchdog
// sees no progress for stall.
func waitFor(ctx context.Context, cond func() bool, progress func() int64, stall time.Duration, what string) error {
	last, lastAt := progress(), time.Now()
	for !cond() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p := progress(); p != last {
			last, lastAt = p, time.Now()
		} else if time.Since(lastAt) > stall {
			return fmt.Errorf("bench: %s: no progress for %v (at %d)", what, stall, p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// ---- the campaign ----

type campaignResult struct {
	N                  int64
	Ceiling            *ceilingResult
	Seed               time.Duration
	EndToEnd           time.Duration // start → last message at the sink
	Ledger             time.Duration // start → no delivery pending or sending
	CPU, Machine       time.Duration // over [start, ledger complete]
	Others             cpuDelta
	FanoutRows         int64
	FanoutWall         time.Duration // start → fan-out done
	FanoutActive       time.Duration // inside fan-out rounds
	FanoutInsert       time.Duration
	FanoutPage         time.Duration
	FanoutRounds       int
	Sampler            *sampler
	PeakRSS            int64
	SinkTotal          int64
	Distinct, Wrong    int
	Unknown            int64
	FirstWrong         string
	Sent               int64
	Counts             campaign.Counts
	State              campaign.State
	Claims, Records    int64
	ClaimMS, RecordMS  float64 // mean per call
	SendCalls          int64
	SendMeanMS         float64
	Rate, SenderRate   int   // the campaign's rate_per_second (0: none) and the sender's
	Busiest            int64 // most messages at the sink in one second (100 buckets of 10 ms)
	ProbeRows          int64 // the store's fan-out writes alone, after the run
	Probe              time.Duration
	Settings, StoreStr string
	RedisStr           string
}

func benchCampaignCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench campaign", "Seeds N subscribers, creates an SMS install-promotion campaign with no rate limit\n"+
		"(sender rate set very high, window always open, frequency cap off unless --frequency-cap) and runs\n"+
		"the real engine "+
		"(worker.New + Run in this process) with the real twilio-go client against a minimal local sink.\n"+
		"Reports fan-out rows/s, end-to-end messages/s, CPU s per 100,000 messages, peak RSS, peak\n"+
		"Redis used_memory, and the ratio to the ceiling measured first in the same run; checks that\n"+
		"the sink saw exactly N messages, each recipient once.", stderr)
	n := fs.Int("recipients", 100000, "subscribers in the audience")
	ef := addEnvFlags(fs)
	// 64 tasks × 4 calls: 256 requests in flight, the shared transport's
	// idle connections per host; more would open and close connections.
	eng := addEngineFlags(fs, 64, 4)
	eng.rate = fs.Int("campaign-rate", 0, "the campaign's rate_per_second (0: no limit); at 1,000 or less the engine "+
		"claims, checks and sends message by message")
	eng.senderRate = fs.Int("sender-rate", 10_000_000, "the sender's rate, SMS segments per second (OUTREACH_SMS_RATE); at 1,000 or less "+
		"the engine sends message by message")
	withCeiling := fs.Bool("ceiling", true, "measure the ceiling first in the same run")
	ceilingN := fs.Int("ceiling-messages", 0, "messages in the ceiling (default the recipients, at most 100,000)")
	ceilingConc := fs.Int("ceiling-concurrency", 64, "goroutines in the ceiling")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the campaign phase to this file")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up after this long")
	probe := fs.Bool("fanout-probe", true, "after the run, time the store's fan-out writes alone (a second, draft campaign)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n <= 0 {
		return errors.New("bench campaign: --recipients must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := runCampaignBench(ctx, *n, ef, eng, *withCeiling, *ceilingN, *ceilingConc, *probe, *profile, stdout, stderr)
	if res != nil {
		printCampaign(stdout, res)
	}
	if err != nil {
		return err
	}
	if res.Wrong > 0 || res.SinkTotal != res.N || res.Unknown > 0 || res.Sent != res.N {
		return fmt.Errorf("bench campaign: the exactly-once check failed")
	}
	return nil
}

func runCampaignBench(ctx context.Context, n int, ef envFlags, eng engineFlags, withCeiling bool,
	ceilingN, ceilingConc int, probe bool, profile string, stdout, stderr io.Writer) (*campaignResult, error) {
	fmt.Fprintln(stdout, "machine:", machineLine())
	e, err := openBenchEnv(ctx, ef, n, 0, stderr)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	res := &campaignResult{N: int64(n), Settings: eng.String(), StoreStr: e.storeDesc, RedisStr: e.redisDesc,
		Rate: *eng.rate, SenderRate: *eng.senderRate}
	fmt.Fprintf(stdout, "store: %s; queue: %s\n", e.storeDesc, e.redisDesc)
	policy, err := eng.policy()
	if err != nil {
		return nil, err
	}
	if withCeiling {
		if ceilingN <= 0 {
			ceilingN = min(n, 100000)
		}
		c, err := runCeiling(ctx, e.sink, ceilingN, ceilingConc, policy, "")
		if err != nil {
			return nil, err
		}
		res.Ceiling = &c
		printCeiling(stdout, c, ceilingConc)
	}

	p, err := benchTenant(ctx, e.store, "bench")
	if err != nil {
		return nil, err
	}
	if res.Seed, err = seedSubscribers(ctx, e.store, p.TenantID, n, stdout); err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "seeded %d subscribers in %.1f s (%.0f rows/s)\n", n, res.Seed.Seconds(), rate(int64(n), res.Seed))

	ms := &meteredStore{Store: e.store}
	sms := &meteredSMS{Client: e.sms}
	set := eng.settings(*eng.senderRate)
	engine, stopEngine := startEngine(ctx, e, ms, sms, set, policy, benchLogger(stderr))
	defer stopEngine()
	svc := &campaign.Service{Store: e.store, Subscribers: e.store, Dispatcher: engine, Policy: &policy,
		Logger: benchLogger(stderr)}
	c, err := promoCampaign(ctx, svc, p, *eng.rate)
	if err != nil {
		return nil, err
	}
	ms.mu.Lock()
	ms.target = c.ID
	ms.mu.Unlock()
	time.Sleep(200 * time.Millisecond) // let the worker pools start

	var rdb redis.UniversalClient
	if !e.queue.Embedded {
		rdb = e.queue.Redis
	}
	resetPeakRSS()
	res.Sampler = startSampler(rdb, func() float64 { return float64(e.sink.total.Load()) / float64(n) })
	stopProfile, err := startProfile(profile)
	if err != nil {
		return nil, err
	}
	defer stopProfile()
	snap0 := snapshotCPU(ctx, e.pgDB, rdb)
	cpu0, m0 := cpuUsage(), machineCPU()
	start := e.sink.since()
	t0 := time.Now()
	if _, err := svc.Act(ctx, p, c.ID, campaign.ActionStart); err != nil {
		return nil, fmt.Errorf("start campaign: %w", err)
	}
	total := func() int64 { return e.sink.total.Load() }
	err = waitFor(ctx, func() bool { return total() >= int64(n) }, total, stallLimit, "waiting for the sink")
	if err == nil {
		res.EndToEnd = time.Duration(e.sink.lastNS.Load()) - start
		res.Busiest = e.sink.busiest()
		var left int64 = -1
		err = waitFor(ctx, func() bool {
			left, _ = e.store.CountUnfinished(ctx, c.ID)
			return left == 0
		}, func() int64 { return left }, stallLimit, "waiting for the store to record every outcome")
		res.Ledger = time.Since(t0)
	}
	res.CPU, res.Machine = cpuUsage()-cpu0, machineCPU()-m0
	res.Others = snap0.to(snapshotCPU(ctx, e.pgDB, rdb))
	stopProfile()
	res.Sampler.Stop()
	_, res.PeakRSS = procStatus()
	if err != nil {
		return res, err
	}
	// The monitor completes the campaign within a pass or two.
	deadline := time.Now().Add(10 * time.Second)
	for {
		cur, err := e.store.GetCampaign(ctx, p.TenantID, c.ID)
		if err == nil {
			res.State = cur.State
		}
		if res.State == campaign.StateCompleted || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	ms.mu.Lock()
	res.FanoutRows, res.FanoutActive, res.FanoutInsert, res.FanoutRounds = ms.rows, ms.active, ms.insertTime, ms.rounds
	res.FanoutPage = ms.pageTime
	if !ms.done.IsZero() {
		res.FanoutWall = ms.done.Sub(t0)
	}
	ms.mu.Unlock()
	res.Claims, res.Records = ms.claims.Load(), ms.records.Load()
	res.ClaimMS = float64(ms.claimNS.Load()) / 1e6 / float64(max(res.Claims, 1))
	res.RecordMS = float64(ms.recordNS.Load()) / 1e6 / float64(max(res.Records, 1))
	res.SendCalls = sms.calls.Load()
	res.SendMeanMS = float64(sms.ns.Load()) / 1e6 / float64(max(res.SendCalls, 1))

	res.SinkTotal, res.Unknown = e.sink.total.Load(), e.sink.unknown.Load()
	res.Wrong, res.FirstWrong = e.sink.perRecipient(func(int) int { return 1 }, func(int) int { return 0 }, func(int) int { return 0 })
	res.Distinct = n - res.Wrong
	if res.Counts, err = e.store.DeliveryCounts(ctx, p.TenantID, c.ID); err != nil {
		return res, err
	}
	res.Sent = res.Counts.ByStatus[campaign.StatusSent]
	if probe {
		if res.ProbeRows, res.Probe, err = probeFanout(ctx, e.store, svc, p, *eng.fanoutChunk); err != nil {
			return res, err
		}
	}
	return res, nil
}

// probeFanout measures the store's side of fan-out alone: the audience pages
// and bulk inserts that the engine's fan-out makes (referral codes come
// later, with the claims), in the same chunks, for a second campaign that
// stays a draft; no queue, no sending, nothing else running.
func probeFanout(ctx context.Context, st store, svc *campaign.Service, p tenant.Principal, chunk int) (int64, time.Duration, error) {
	c, err := promoCampaign(ctx, svc, p, 0)
	if err != nil {
		return 0, 0, err
	}
	var (
		rows   int64
		cursor int64
	)
	t0 := time.Now()
	for {
		ids, err := st.AudiencePage(ctx, c, cursor, chunk)
		if err != nil {
			return 0, 0, fmt.Errorf("fan-out probe: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		nd := make([]campaign.NewDelivery, len(ids))
		for i, id := range ids {
			nd[i] = campaign.NewDelivery{SubscriberID: id}
		}
		n, err := st.InsertDeliveries(ctx, c, campaign.ChannelSMS, nd)
		if err != nil {
			return 0, 0, fmt.Errorf("fan-out probe: %w", err)
		}
		rows += int64(n)
		cursor = ids[len(ids)-1]
		if len(ids) < chunk {
			break
		}
	}
	d := time.Since(t0)
	_, err = svc.Act(ctx, p, c.ID, campaign.ActionCancel)
	return rows, d, err
}

func printCampaign(w io.Writer, r *campaignResult) {
	e2e := rate(r.N, r.EndToEnd)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	limit := "no rate limit"
	if r.Rate > 0 {
		limit = fmt.Sprintf("campaign rate %d/s", r.Rate)
	}
	fmt.Fprintf(tw, "campaign: %d recipients, SMS, %s, sender rate %d segments/s\t\n", r.N, limit, r.SenderRate)
	fmt.Fprintf(tw, "  store / queue\t%s / %s\n", r.StoreStr, r.RedisStr)
	fmt.Fprintf(tw, "  engine\t%s\n", r.Settings)
	fmt.Fprintf(tw, "  end to end (start → last message at the sink)\t%.2f s\n", r.EndToEnd.Seconds())
	fmt.Fprintf(tw, "  end-to-end messages/s\t%.0f\n", e2e)
	if r.Ceiling != nil {
		fmt.Fprintf(tw, "  ceiling messages/s (same run)\t%.0f\n", r.Ceiling.Rate())
		fmt.Fprintf(tw, "  end to end / ceiling\t%.0f%% (target ≥ 80%%)\n", 100*e2e/r.Ceiling.Rate())
	}
	fmt.Fprintf(tw, "  ledger complete (no delivery pending or sending)\t%.2f s\n", r.Ledger.Seconds())
	fmt.Fprintf(tw, "  fan-out rows\t%d in %d rounds\n", r.FanoutRows, r.FanoutRounds)
	if r.FanoutWall > 0 {
		fmt.Fprintf(tw, "  fan-out rows/s, wall (start → fan-out done; paced by the backlog bound)\t%.0f\n", rate(r.FanoutRows, r.FanoutWall))
	}
	fmt.Fprintf(tw, "  fan-out rows/s, active (inside fan-out rounds: page, insert, enqueue)\t%.0f\n", rate(r.FanoutRows, r.FanoutActive))
	fmt.Fprintf(tw, "  fan-out rows/s, InsertDeliveries alone\t%.0f\n", rate(r.FanoutRows, r.FanoutInsert))
	if r.FanoutRounds > 0 {
		per := func(d time.Duration) float64 { return ms(d) / float64(r.FanoutRounds) }
		fmt.Fprintf(tw, "  fan-out round, mean: AudiencePage / InsertDeliveries / the rest (enqueue, progress)\t%.1f / %.1f / %.1f ms\n",
			per(r.FanoutPage), per(r.FanoutInsert), per(r.FanoutActive-r.FanoutPage-r.FanoutInsert))
	}
	if r.ProbeRows > 0 {
		fmt.Fprintf(tw, "  fan-out rows/s, the store alone after the run (pages + inserts, no queue, no sending)\t%.0f (%d rows in %.2f s)\n",
			rate(r.ProbeRows, r.Probe), r.ProbeRows, r.Probe.Seconds())
	}
	fmt.Fprintf(tw, "  CPU per 100,000 messages (this process, sink included)\t%s\n", per100k(r.CPU, r.N))
	r.Others.print(tw, r.N)
	fmt.Fprintf(tw, "  CPU per 100,000 messages (whole machine: + PostgreSQL, Redis, anything else running)\t%s\n", per100k(r.Machine, r.N))
	others := r.Machine - r.CPU - r.Others.PGBench - r.Others.PGBackground - r.Others.Redis
	fmt.Fprintf(tw, "  CPU of other processes meanwhile (~0 on a quiet machine)\t%.1f s of %.1f s wall × %d cores\n",
		max(others, 0).Seconds(), r.Ledger.Seconds(), runtime.NumCPU())
	if r.Ceiling != nil && r.CPU > 0 && r.Ceiling.CPU > 0 {
		// What the CPU spent says about a machine with nothing else on it:
		// every core busy with this work alone.
		engine := r.CPU + r.Others.PGBench + r.Others.PGBackground + r.Others.Redis
		cores := float64(runtime.NumCPU())
		ceil := cores / (r.Ceiling.CPU.Seconds() / float64(r.Ceiling.Messages))
		e2e := cores / (engine.Seconds() / float64(r.N))
		fmt.Fprintf(tw, "  CPU-bound limit on %d idle cores: ceiling / engine (process + PostgreSQL + Redis CPU)\t%.0f / %.0f messages/s (%.0f%%)\n",
			runtime.NumCPU(), ceil, e2e, 100*e2e/ceil)
	}
	fmt.Fprintf(tw, "  peak RSS (VmHWM of the campaign phase)\t%s\n", mb(r.PeakRSS))
	if r.Sampler != nil {
		fmt.Fprintf(tw, "  peak RSS sampled every 100 ms\t%s\n", mb(r.Sampler.peakRSS))
		fmt.Fprintf(tw, "  peak Redis used_memory\t%s\n", r.Sampler.redisPeak())
	}
	fmt.Fprintf(tw, "  store: claim / record outcomes\t%d calls, %.1f ms mean / %d calls, %.1f ms mean\n",
		r.Claims, r.ClaimMS, r.Records, r.RecordMS)
	fmt.Fprintf(tw, "  provider calls\t%d, %.2f ms mean\n", r.SendCalls, r.SendMeanMS)
	fmt.Fprintf(tw, "  busiest second at the sink (a second of 10 ms buckets in a row)\t%d messages\n", r.Busiest)
	fmt.Fprintf(tw, "  campaign state\t%s; store counts %v\n", r.State, r.Counts.ByStatus)
	tw.Flush()
	if r.Sampler != nil && r.N >= 100000 {
		fmt.Fprintln(w, "RSS and Redis memory per tenth of the messages at the sink:")
		r.Sampler.printTenths(w)
	}
	ok := r.Wrong == 0 && r.SinkTotal == r.N && r.Unknown == 0 && r.Sent == r.N
	verdict := "OK"
	if !ok {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "check: the sink saw %d messages (want %d), %d recipients exactly once, %d with another count, %d to unknown numbers; the store has %d sent: %s\n",
		r.SinkTotal, r.N, r.Distinct, r.Wrong, r.Unknown, r.Sent, verdict)
	if r.FirstWrong != "" {
		fmt.Fprintln(w, "  first wrong:", r.FirstWrong)
	}
}

// ---- the alert ----

type alertResult struct {
	Marketing, Contacts, Rate int
	Outsiders                 int
	CreateCall                time.Duration // CreateAlert's own duration
	First, Last, P50, P99     time.Duration // from the call
	MktRateBefore             float64       // marketing msg/s in the second before the alert
	MktDuring, AlertDuring    int64         // arrivals in DuringSpan of [call, last alert]
	DuringSpan                time.Duration // the sink's whole buckets in [call, last alert]
	Target                    time.Duration
	Received                  int64
	Wrong                     int
	FirstWrong                string
	Unknown                   int64
	MarketingDone             bool
	Checked                   bool // the per-recipient check ran
	MarketingSeen             int64
	AlertState                campaign.State
	Timeline                  []timelineStep
	CreateParts               []timelineStep // time inside CreateAlert by call
	StoreStr, RedisStr        string
}

func benchAlertCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench alert", "Runs a marketing campaign to --marketing subscribers at the sender's full rate\n"+
		"(OUTREACH_SMS_RATE = --rate), then creates an exposure alert to --contacts numbers through\n"+
		"campaign.Service.CreateAlert (what POST /v1/alerts calls) and measures, at the sink, the time\n"+
		"from the call to the first and the last alert message and p50/p99 per message. Targets: first\n"+
		"under 250 ms, all within contacts/rate + 1 s. 90% of the contacts are subscribers, 10% not.", stderr)
	nm := fs.Int("marketing", 200000, "subscribers in the marketing campaign")
	nc := fs.Int("contacts", 5000, "alert contacts")
	r := fs.Int("rate", 2000, "the sender's rate, SMS segments per second (OUTREACH_SMS_RATE)")
	ef := addEnvFlags(fs)
	eng := addEngineFlags(fs, 50, 32) // the engine's defaults: marketing is paced anyway
	saturate := fs.Duration("saturate", 3*time.Second, "how long marketing runs at full rate before the alert")
	finish := fs.Bool("finish", true, "let the marketing campaign finish and check it too (else cancel it after the alert)")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the alert phase to this file")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *nm <= 0 || *nc <= 0 || *r <= 0 {
		return errors.New("bench alert: --marketing, --contacts and --rate must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := runAlertBench(ctx, *nm, *nc, *r, *saturate, *finish, ef, eng, *profile, stdout, stderr)
	if res != nil {
		printAlert(stdout, res)
	}
	if err != nil {
		return err
	}
	if !res.Checked || res.Wrong > 0 || res.Received != int64(res.Contacts) || res.Unknown > 0 {
		return errors.New("bench alert: the exactly-once check failed")
	}
	return nil
}

func runAlertBench(ctx context.Context, nm, nc, r int, saturate time.Duration, finish bool, ef envFlags, eng engineFlags,
	profile string, stdout, stderr io.Writer) (*alertResult, error) {
	fmt.Fprintln(stdout, "machine:", machineLine())
	outsiders := nc / 10
	members := nc - outsiders
	if members > nm {
		return nil, fmt.Errorf("bench alert: %d of the contacts are subscribers, more than --marketing %d", members, nm)
	}
	e, err := openBenchEnv(ctx, ef, nm, outsiders, stderr)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	res := &alertResult{Marketing: nm, Contacts: nc, Rate: r, Outsiders: outsiders, StoreStr: e.storeDesc, RedisStr: e.redisDesc,
		Target: time.Duration(float64(nc)/float64(r)*float64(time.Second)) + time.Second}
	fmt.Fprintf(stdout, "store: %s; queue: %s\n", e.storeDesc, e.redisDesc)
	p, err := benchTenant(ctx, e.store, "bench-alert")
	if err != nil {
		return nil, err
	}
	seed, err := seedSubscribers(ctx, e.store, p.TenantID, nm, stdout)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "seeded %d subscribers in %.1f s\n", nm, seed.Seconds())

	// Contacts: members spread evenly over the subscribers, then outsiders.
	stride := nm / members
	isContact := make([]bool, nm)
	contacts := make([]string, 0, nc)
	for k := range members {
		i := k * stride
		isContact[i] = true
		contacts = append(contacts, benchSubscriberMSISDN(i))
	}
	for j := range outsiders {
		contacts = append(contacts, benchOutsiderMSISDN(j))
	}

	sms := &meteredSMS{Client: e.sms}
	ms := &meteredStore{Store: e.store}
	policy, err := eng.policy()
	if err != nil {
		return nil, err
	}
	engine, stopEngine := startEngine(ctx, e, ms, sms, eng.settings(r), policy, benchLogger(stderr))
	defer stopEngine()
	svc := &campaign.Service{Store: e.store, Subscribers: e.store, Dispatcher: engine, Policy: &policy,
		Logger: benchLogger(stderr)}
	// Marketing goes to the seeded regions: the contacts the alert adds as
	// new subscribers have no region, so they are not in it.
	var rs []subscriber.Region
	for _, code := range benchRegions {
		rs = append(rs, subscriber.Region{Code: code, Name: code, Population: 1})
	}
	if err := e.store.ReplaceRegions(ctx, p.TenantID, rs); err != nil {
		return nil, err
	}
	promo, err := promoCampaign(ctx, svc, p, 0, benchRegions...)
	if err != nil {
		return nil, err
	}
	alertTpl, err := svc.CreateTemplate(ctx, p, campaign.TemplateInput{Name: "bench-f1", Channel: campaign.ChannelSMS,
		Locale: "vi", Body: benchAlertMark + ": ban da o gan nguoi nhiem COVID-19. Hay tu cach ly va goi 1900 9095."})
	if err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := svc.Act(ctx, p, promo.ID, campaign.ActionStart); err != nil {
		return nil, err
	}
	// Marketing saturates the sender for a while.
	total := func() int64 { return e.sink.total.Load() }
	if err := waitFor(ctx, func() bool { return e.sink.firstNS.Load() > 0 }, total, time.Minute, "first marketing message"); err != nil {
		return res, err
	}
	firstMkt := time.Duration(e.sink.firstNS.Load())
	for e.sink.since()-firstMkt < saturate && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	now := e.sink.since()
	m, _, span := e.sink.count(now-1100*time.Millisecond, now-100*time.Millisecond)
	res.MktRateBefore = float64(m) / max(span.Seconds(), 1e-9)

	stopProfile, err := startProfile(profile)
	if err != nil {
		return nil, err
	}
	defer stopProfile()
	// The alert goes through a service of its own whose store, subscribers
	// and dispatcher are timed, to show where CreateAlert spends its time.
	alertStore := &meteredStore{Store: e.store}
	alertSubs := &meteredSubscribers{Store: e.store}
	alertKick := &meteredDispatcher{Dispatcher: engine}
	alertSvc := &campaign.Service{Store: alertStore, Subscribers: alertSubs, Dispatcher: alertKick, Policy: &policy,
		Logger: benchLogger(stderr)}
	call, callAt := e.sink.since(), time.Now()
	a, err := alertSvc.CreateAlert(ctx, p, campaign.AlertInput{Name: "F1 contacts bench", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: alertTpl.ID}, Contacts: contacts})
	res.CreateCall = e.sink.since() - call
	res.CreateParts = []timelineStep{
		{"EnsureSubscribers", alertSubs.ensure.total()},
		{"CreateCampaign", alertStore.createCampaign.total()},
		{"AddContacts", alertStore.addContacts.total()},
		{"TransitionCampaign", alertStore.transition.total()},
		{"Audit", alertStore.audit.total()},
		{"HoldFanout", alertKick.hold.total()},
		{"QueueContacts (deliveries and send tasks)", alertKick.first.total()},
		{"Kick (the fan-out released)", alertKick.kick.total()},
	}
	if err != nil {
		return res, fmt.Errorf("create alert: %w", err)
	}
	if a.Contacts != nc {
		return res, fmt.Errorf("the alert took %d contacts, want %d", a.Contacts, nc)
	}
	defer func() {
		for _, step := range []string{"page", "inserted", "claim", "claimed", "record"} {
			if t := ms.firstOf(a.ID, step); !t.IsZero() {
				res.Timeline = append(res.Timeline, timelineStep{step, t.Sub(callAt)})
			}
		}
	}()
	alerts := func() int64 { return e.sink.alerts.Load() }
	err = waitFor(ctx, func() bool { return alerts() >= int64(nc) }, alerts, stallLimit, "waiting for the alert")
	stopProfile()
	res.Received = alerts()
	e.sink.mu.Lock()
	at := slices.Clone(e.sink.alertAt)
	e.sink.mu.Unlock()
	slices.Sort(at)
	if len(at) > 0 {
		res.First, res.Last = at[0]-call, at[len(at)-1]-call
		res.P50 = at[(len(at)-1)/2] - call
		res.P99 = at[(len(at)-1)*99/100] - call
		res.MktDuring, res.AlertDuring, res.DuringSpan = e.sink.count(call, at[len(at)-1]+time.Nanosecond)
	}
	if err != nil {
		return res, err
	}

	if finish {
		want := int64(nm + nc)
		err = waitFor(ctx, func() bool { return total() >= want }, total, stallLimit, "waiting for marketing to finish")
		if err != nil {
			return res, err
		}
		res.MarketingDone = true
		time.Sleep(500 * time.Millisecond) // anything extra would show up now
	} else if _, err := svc.Act(ctx, p, promo.ID, campaign.ActionCancel); err != nil {
		return res, err
	}
	res.MarketingSeen = total() - alerts()
	res.Unknown = e.sink.unknown.Load()
	if res.MarketingDone {
		res.Wrong, res.FirstWrong = e.sink.perRecipient(func(int) int { return 1 },
			func(i int) int { return b2i(isContact[i]) }, func(int) int { return 1 })
	} else {
		// Marketing was cancelled: its count is 0 or 1; alerts exactly 1.
		var wrong int
		for i := range e.sink.subs {
			v := atomic.LoadUint32(&e.sink.subs[i])
			if v&0xffff > 1 || int(v>>16) != b2i(isContact[i]) {
				if wrong == 0 {
					res.FirstWrong = fmt.Sprintf("%s got %d marketing and %d alert messages", benchSubscriberMSISDN(i), v&0xffff, v>>16)
				}
				wrong++
			}
		}
		for j := range e.sink.outsider {
			if v := atomic.LoadUint32(&e.sink.outsider[j]); v != 1<<16 {
				wrong++
			}
		}
		res.Wrong = wrong
	}
	res.Checked = true
	if cur, err := e.store.GetCampaign(ctx, p.TenantID, a.ID); err == nil {
		res.AlertState = cur.State
	}
	return res, nil
}

type timelineStep struct {
	Step string
	At   time.Duration // after the CreateAlert call began
}

var timelineNames = map[string]string{
	"page":     "fan-out reads the first page of contacts",
	"inserted": "first deliveries written",
	"claim":    "a send task claims its first batch",
	"claimed":  "first batch claimed",
	"record":   "first outcomes recorded",
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func printAlert(w io.Writer, r *alertResult) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(tw, "alert: %d contacts (%d not yet subscribers) during a %d-recipient marketing campaign at %d/s\t\n",
		r.Contacts, r.Outsiders, r.Marketing, r.Rate)
	fmt.Fprintf(tw, "  store / queue\t%s / %s\n", r.StoreStr, r.RedisStr)
	fmt.Fprintf(tw, "  marketing msg/s in the second before the alert\t%.0f\n", r.MktRateBefore)
	fmt.Fprintf(tw, "  CreateAlert call\t%.0f ms\n", ms(r.CreateCall))
	rest := r.CreateCall
	for _, part := range r.CreateParts {
		fmt.Fprintf(tw, "    in it: %s\t%.0f ms\n", part.Step, ms(part.At))
		rest -= part.At
	}
	if len(r.CreateParts) > 0 {
		fmt.Fprintf(tw, "    in it: the rest (validating and normalising the numbers, …)\t%.0f ms\n", ms(rest))
	}
	for _, st := range r.Timeline {
		if st.Step == "record" {
			continue
		}
		fmt.Fprintf(tw, "    then: %s\t%.0f ms after the call\n", timelineNames[st.Step], ms(st.At))
	}
	fmt.Fprintf(tw, "  first alert message at the sink\t%.0f ms after the call (target < 250 ms: %s)\n", ms(r.First), verdict(r.First < 250*time.Millisecond && r.Received > 0))
	fmt.Fprintf(tw, "  last alert message at the sink\t%.0f ms after the call (target ≤ %d/%d + 1 s = %.0f ms: %s)\n",
		ms(r.Last), r.Contacts, r.Rate, ms(r.Target), verdict(r.Last <= r.Target && r.Received == int64(r.Contacts)))
	fmt.Fprintf(tw, "  per message, call → sink: p50 / p99\t%.0f ms / %.0f ms\n", ms(r.P50), ms(r.P99))
	if span := r.Last - r.First; span > 0 {
		fmt.Fprintf(tw, "  alert msg/s, first → last\t%.0f\n", float64(r.Received-1)/span.Seconds())
	}
	fmt.Fprintf(tw, "  between the call and the last alert (its whole 10 ms buckets, %.0f ms)\t%d alert + %d marketing messages (%.0f msg/s together)\n",
		ms(r.DuringSpan), r.AlertDuring, r.MktDuring, float64(r.AlertDuring+r.MktDuring)/max(r.DuringSpan.Seconds(), 1e-9))
	fmt.Fprintf(tw, "  alert state\t%s\n", r.AlertState)
	tw.Flush()
	what := "marketing cancelled after the alert: each subscriber ≤ 1 marketing message"
	if r.MarketingDone {
		what = fmt.Sprintf("marketing finished: %d marketing messages, each subscriber exactly 1", r.MarketingSeen)
	}
	if !r.Checked {
		fmt.Fprintf(w, "check: not done (the run stopped early); %d alert messages of %d arrived\n", r.Received, r.Contacts)
		return
	}
	verdictCheck := "OK"
	if r.Wrong > 0 || r.Received != int64(r.Contacts) || r.Unknown > 0 {
		verdictCheck = "FAILED"
	}
	fmt.Fprintf(w, "check: %d alert messages (want %d), each contact exactly once; %s; %d recipients with a wrong count, %d to unknown numbers: %s\n",
		r.Received, r.Contacts, what, r.Wrong, r.Unknown, verdictCheck)
	if r.FirstWrong != "" {
		fmt.Fprintln(w, "  first wrong:", r.FirstWrong)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
