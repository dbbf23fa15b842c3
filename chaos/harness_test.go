package chaos

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"outreach/internal/testenv"
	"outreach/provider/fcm/fcmfake"
	"outreach/provider/provisioning/provisioningfake"
	"outreach/provider/twilio/twiliofake"
)

// sizing is the scale of a run: the short CI configuration by default, the
// full size with OUTREACH_CHAOS_FULL=1.
type sizing struct {
	full       bool
	recipients int
	smsRate    int // OUTREACH_SMS_RATE and the campaign's rate_per_second
	// concurrency is OUTREACH_WORKER_CONCURRENCY: send tasks (of 100
	// deliveries each) in progress per worker. Kept low in the short run so
	// that most of the backlog waits in Redis, where the faults can reach it.
	concurrency    int
	providerOutage time.Duration
	pgOutage       time.Duration
	// complete bounds how long a campaign may take to complete after its
	// fault.
	complete time.Duration
	// staleAfter is OUTREACH_STALE_AFTER (and OUTREACH_SENDING_STALE_AFTER
	// in the kill test) where a scenario needs the reconciler: short in CI,
	// and in the full run longer than a delivery waits in the backlog, so
	// that live tasks are not re-driven.
	staleAfter time.Duration
}

func sizeOf() sizing {
	if os.Getenv("OUTREACH_CHAOS_FULL") == "1" {
		return sizing{full: true, recipients: 100_000, smsRate: 1000, concurrency: 50,
			providerOutage: time.Minute, pgOutage: 30 * time.Second, complete: 20 * time.Minute,
			staleAfter: 30 * time.Second}
	}
	return sizing{recipients: 3000, smsRate: 1000, concurrency: 10,
		providerOutage: 12 * time.Second, pgOutage: 5 * time.Second, complete: 3 * time.Minute,
		staleAfter: 5 * time.Second}
}

// engine timing the chaos runs configure (empty values keep the defaults).
type timing struct {
	// StaleAfter and SendingStaleAfter: OUTREACH_STALE_AFTER and
	// OUTREACH_SENDING_STALE_AFTER.
	staleAfter, sendingStaleAfter time.Duration
	// retryBase: OUTREACH_RETRY_BASE, the first backoff of a transient
	// provider failure (worker.Settings.RetryBase).
	retryBase time.Duration
}

// rig is one scenario's world: a fresh PostgreSQL schema, a leased Redis
// database, a fake Twilio and the outreach processes.
type rig struct {
	t     *testing.T
	sz    sizing
	start time.Time
	dir   string

	pgURL    string // direct, for the test's own reads
	procPG   string // what the processes use (through the proxy when there is one)
	proxy    *tcpProxy
	redisURL string
	fake     *twiliofake.Server
	env      map[string]string
	// prov and installSecret are set by withRewards (rewards_test.go),
	// push by withPush (alert_test.go).
	prov          *provisioningfake.Server
	installSecret string
	push          *fcmfake.Server

	// reward is the promotion's reward terms (startCampaign).
	rewardMB, budgetMB int64

	api      *proc
	key      string
	hc       *http.Client
	msisdns  []string
	campaign string
	started  time.Time // when the campaign was started

	mu    sync.Mutex
	procs []*proc
}

// newRig prepares the services; proxyPG puts a TCP proxy between the
// processes and PostgreSQL.
func newRig(t *testing.T, proxyPG bool, tm timing) *rig {
	t.Helper()
	pg := testenv.PostgresURL(t)
	rd := testenv.RedisURL(t)
	if buildErr != nil {
		t.Fatalf("build outreach: %v", buildErr)
	}
	if binary == "" {
		t.Fatal("outreach binary not built")
	}
	r := &rig{t: t, sz: sizeOf(), start: time.Now(), dir: t.TempDir(), pgURL: pg, procPG: pg, redisURL: rd,
		hc: &http.Client{Timeout: 30 * time.Second}, rewardMB: 5120, budgetMB: 51200000}
	r.keepLease()
	if proxyPG {
		u, err := url.Parse(pg)
		if err != nil {
			t.Fatal(err)
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "5432")
		}
		r.proxy = newProxy(t, host)
		u.Host = r.proxy.Addr()
		r.procPG = u.String()
	}

	// Scenarios run four at a time, each with three or four processes:
	// small pools keep them all within PostgreSQL's default 100
	// connections, next to the other suites.
	r.procPG = testenv.WithPoolMax(t, r.procPG, 6)

	sid, token, msid := "AC"+randHex(16), randHex(16), "MG"+randHex(16)
	r.fake = twiliofake.New(sid, token)
	base, err := r.fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.fake.Close)

	r.env = map[string]string{
		"OUTREACH_DATABASE_URL":                 r.procPG,
		"OUTREACH_REDIS_URL":                    rd,
		"OUTREACH_SMS_PROVIDER":                 "twilio",
		"TWILIO_ACCOUNT_SID":                    sid,
		"TWILIO_AUTH_TOKEN":                     token,
		"OUTREACH_TWILIO_MESSAGING_SERVICE_SID": msid,
		"OUTREACH_TWILIO_BASE_URL":              base,
		// Each API and worker process gets its own address (spawn); the
		// short-lived commands need one too.
		"OUTREACH_PUBLIC_URL":         "http://127.0.0.1:9",
		"OUTREACH_SMS_RATE":           strconv.Itoa(r.sz.smsRate),
		"OUTREACH_SEND_WINDOW":        "00:00-24:00",
		"OUTREACH_FREQUENCY_CAP":      "0",
		"OUTREACH_WORKER_CONCURRENCY": strconv.Itoa(r.sz.concurrency),
		"OUTREACH_LOG_LEVEL":          "info",
		"OUTREACH_MIGRATE_ON_START":   "false",
	}
	if tm.staleAfter > 0 {
		r.env["OUTREACH_STALE_AFTER"] = tm.staleAfter.String()
	}
	if tm.sendingStaleAfter > 0 {
		r.env["OUTREACH_SENDING_STALE_AFTER"] = tm.sendingStaleAfter.String()
	}
	if tm.retryBase > 0 {
		r.env["OUTREACH_RETRY_BASE"] = tm.retryBase.String()
	}
	t.Cleanup(r.stopAll) // registered after the services: runs before their cleanup
	r.logf("size: %d recipients at %d SMS/s, worker concurrency %d (full=%v); stale after %q, sending stale after %q, retry base %q (empty: default)",
		r.sz.recipients, r.sz.smsRate, r.sz.concurrency, r.sz.full,
		r.env["OUTREACH_STALE_AFTER"], r.env["OUTREACH_SENDING_STALE_AFTER"], r.env["OUTREACH_RETRY_BASE"])
	return r
}

// setRates sets the senders' shared rates (OUTREACH_SMS_RATE and
// OUTREACH_PUSH_RATE; the campaign's rate follows the SMS rate). Call it
// before boot.
func (r *rig) setRates(sms, push int) {
	r.sz.smsRate = sms
	r.env["OUTREACH_SMS_RATE"] = strconv.Itoa(sms)
	r.env["OUTREACH_PUSH_RATE"] = strconv.Itoa(push)
	r.logf("this scenario: %d SMS/s and %d pushes/s", sms, push)
}

// calls is how many requests the provider fakes have seen so far.
func (r *rig) calls() int {
	n := r.fake.Attempts()
	if r.push != nil {
		n += r.push.Attempts()
	}
	if r.prov != nil {
		n += r.prov.Totals().Requests
	}
	return n
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// logf logs with the time since the rig started.
func (r *rig) logf(format string, args ...any) {
	r.t.Helper()
	r.t.Logf("[%6.2fs] %s", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// ---- processes ----

// proc is one running outreach process.
type proc struct {
	name string
	base string // http://addr of its HTTP server
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill9 kills the process with SIGKILL and waits for it.
func (p *proc) kill9() {
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

func (r *rig) procEnv(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OUTREACH_") || strings.HasPrefix(kv, "TWILIO_") {
			continue // the processes get exactly the configuration below
		}
		env = append(env, kv)
	}
	for k, v := range r.env {
		env = append(env, k+"="+v)
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// run runs a short-lived command of the binary and returns its stdout.
func (r *rig) run(args ...string) string {
	r.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = r.procEnv(nil)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("outreach %s: %v\n%s", strings.Join(args, " "), err, tail(errb.String(), 30))
	}
	return out.String()
}

// spawn starts a long-running process (api or worker) on a free port with
// its stdout and stderr in a file of the test's temporary directory, and
// waits until it answers /readyz.
func (r *rig) spawn(name string, args ...string) *proc {
	r.t.Helper()
	addr := freeAddr(r.t)
	p := &proc{name: name, base: "http://" + addr, log: filepath.Join(r.dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		r.t.Fatal(err)
	}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = r.procEnv(map[string]string{"OUTREACH_HTTP_ADDR": addr, "OUTREACH_PUBLIC_URL": p.base})
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		r.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	r.waitReady(p)
	r.logf("%s started (pid %d, %s)", name, p.cmd.Process.Pid, addr)
	return p
}

func (r *rig) waitReady(p *proc) {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p.exited() {
			r.t.Fatalf("%s exited at start-up:\n%s", p.name, tailFile(p.log, 40))
		}
		resp, err := r.hc.Get(p.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s never became ready (last: %v):\n%s", p.name, err, tailFile(p.log, 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopAll kills every process the rig started (by its own pid) and, if the
// test failed, prints the tail of each one's log.
func (r *rig) stopAll() {
	r.mu.Lock()
	procs := append([]*proc(nil), r.procs...)
	r.mu.Unlock()
	failed := r.t.Failed()
	if failed {
		// A process still running when the test failed may be stuck: ask
		// it for its goroutines (Go's runtime prints them on SIGQUIT) first.
		for _, p := range procs {
			if !p.exited() {
				p.cmd.Process.Signal(syscall.SIGQUIT)
				select {
				case <-p.done:
				case <-time.After(10 * time.Second):
				}
			}
		}
	}
	for _, p := range procs {
		p.kill9()
	}
	if failed {
		for _, p := range procs {
			r.t.Logf("---- tail of %s (%s) ----\n%s", p.name, p.log, tailFile(p.log, 40))
			if g := ownGoroutines(p.log, 60); g != "" {
				r.t.Logf("---- goroutines of %s in outreach's code at the end ----\n%s", p.name, g)
			}
		}
	}
}

// ownGoroutines returns the goroutine stacks of a SIGQUIT dump in the log
// at path that pass through outreach's own packages (the runtime's, the
// HTTP server's and the drivers' idle ones say nothing), identical stacks
// counted once, at most max of them.
func ownGoroutines(path string, max int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	text := string(b)
	i := strings.Index(text, "\ngoroutine ")
	if i < 0 {
		return ""
	}
	count := map[string]int{}
	heads := map[string]string{}
	var order []string
	for _, g := range strings.Split(text[i+1:], "\n\n") {
		if !strings.HasPrefix(g, "goroutine ") || !strings.Contains(g, "outreach/") {
			continue
		}
		// The header names the goroutine and how long it has waited (the
		// first one's is shown); the stack is what identical ones share.
		head, stack, _ := strings.Cut(g, "\n")
		if _, ok := count[stack]; !ok {
			order = append(order, stack)
			heads[stack] = head
		}
		count[stack]++
	}
	var out []string
	for _, stack := range order {
		if len(out) == max {
			out = append(out, fmt.Sprintf("(%d more stacks left out)", len(order)-max))
			break
		}
		out = append(out, fmt.Sprintf("%d goroutine(s) like %s\n%s", count[stack], heads[stack], stack))
	}
	return strings.Join(out, "\n\n")
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var (
		lines   []string
		skipped int
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "SIGQUIT: quit") {
			break // the goroutine dump that stopAll asked for: ownGoroutines shows it
		}
		// The API's access log of the test's own successful polling says
		// nothing: leave it out of the tail.
		if strings.Contains(line, `"msg":"http request"`) && strings.Contains(line, `"status":200`) {
			skipped++
			continue
		}
		lines = append(lines, line)
		if len(lines) > 4*n {
			lines = lines[len(lines)-n:]
		}
	}
	out := tail(strings.Join(lines, "\n"), n)
	if skipped > 0 {
		out += fmt.Sprintf("\n(%d access-log lines of successful requests left out)", skipped)
	}
	return out
}

// ---- set-up over HTTP ----

// boot migrates, creates an admin key and starts the API.
func (r *rig) boot() {
	r.t.Helper()
	r.run("migrate")
	out := r.run("keys", "create", "--tenant", "chaos", "--role", "admin")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	r.key = lines[len(lines)-1]
	if r.key == "" || strings.ContainsAny(r.key, " \t") {
		r.t.Fatalf("keys create: last stdout line %q is not a key", r.key)
	}
	r.api = r.spawn("api", "api")
}

// worker starts one more worker process.
func (r *rig) worker(name string) *proc {
	r.t.Helper()
	return r.spawn(name, "worker")
}

// sendingSpan is the time from the first to the last accepted message.
func (r *rig) sendingSpan() time.Duration {
	msgs := r.fake.Messages()
	if len(msgs) < 2 {
		return 0
	}
	first, last := msgs[0].At, msgs[0].At
	for _, m := range msgs {
		if m.At.Before(first) {
			first = m.At
		}
		if m.At.After(last) {
			last = m.At
		}
	}
	return last.Sub(first)
}

func (r *rig) call(method, path, ctype string, body io.Reader, out any) (int, error) {
	req, err := http.NewRequest(method, r.api.base+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+r.key)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %v in %.200s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %.300s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, nil
}

func (r *rig) must(method, path, ctype string, body io.Reader, out any) {
	r.t.Helper()
	if _, err := r.call(method, path, ctype, body, out); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) mustJSON(method, path string, in, out any) {
	r.t.Helper()
	b, _ := json.Marshal(in)
	r.must(method, path, "application/json", bytes.NewReader(b), out)
}

// seed loads two regions and the audience: recipients subscribers, none
// opted out, every one eligible.
func (r *rig) seed() {
	r.t.Helper()
	r.must("PUT", "/v1/regions", "text/csv",
		strings.NewReader("code,name,population\nHN,Ha Noi,8043624\nDN,Da Nang,1128713\n"), nil)
	var csv strings.Builder
	csv.Grow(r.sz.recipients * 32)
	csv.WriteString("msisdn,region,locale,name\n")
	r.msisdns = make([]string, r.sz.recipients)
	for i := range r.sz.recipients {
		fmt.Fprintf(&csv, "09%08d,%s,vi,K%d\n", i, []string{"HN", "DN"}[i%2], i)
		r.msisdns[i] = fmt.Sprintf("+849%08d", i)
	}
	var imp struct{ Imported, Updated, Rejected int }
	r.must("POST", "/v1/subscribers/import", "text/csv", strings.NewReader(csv.String()), &imp)
	if imp.Imported != r.sz.recipients || imp.Rejected != 0 {
		r.t.Fatalf("import: %+v, want %d imported", imp, r.sz.recipients)
	}
	r.logf("%d subscribers imported", imp.Imported)
}

// startCampaign creates and starts an SMS install promotion to the whole
// audience at the configured rate.
func (r *rig) startCampaign() {
	r.t.Helper()
	var tpl struct{ ID string }
	r.mustJSON("POST", "/v1/templates", map[string]any{"name": "chaos-vi", "channel": "sms", "locale": "vi",
		"body": "Cai Bluezone de nhan {{.RewardMB}}MB: {{.InstallLink}}", "transliterate": true}, &tpl)
	var camp struct{ ID, State string }
	r.mustJSON("POST", "/v1/campaigns", map[string]any{"name": "chaos " + r.t.Name(), "kind": "install_promotion",
		"channels": []string{"sms"}, "templates": map[string]string{"sms": tpl.ID},
		"audience": map[string]any{"regions": []string{"HN", "DN"}}, "rate_per_second": r.sz.smsRate,
		"reward": map[string]any{"data_mb": r.rewardMB, "budget_mb": r.budgetMB, "attribution_days": 14}}, &camp)
	r.campaign = camp.ID
	r.started = time.Now()
	r.mustJSON("POST", "/v1/campaigns/"+camp.ID+"/start", nil, &camp)
	if camp.State != "running" {
		r.t.Fatalf("start: state %q, want running", camp.State)
	}
	r.logf("campaign %s started", camp.ID)
}

// ---- observing ----

type stats struct {
	State      string           `json:"state"`
	Audience   int64            `json:"audience"`
	Deliveries map[string]int64 `json:"deliveries"`
}

func (r *rig) stats() (stats, error) {
	var s stats
	_, err := r.call("GET", "/v1/campaigns/"+r.campaign+"/stats", "", nil, &s)
	return s, err
}

// waitAccepted waits until the fake has accepted n messages.
func (r *rig) waitAccepted(n int, within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for r.fake.Count() < n {
		if time.Now().After(deadline) {
			s, _ := r.stats()
			r.t.Fatalf("the fake accepted %d messages in %v, want %d; stats %+v", r.fake.Count(), within, n, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitCompleted polls the campaign's stats (tolerating errors: the API may
// be cut off from its store) until it completes.
func (r *rig) waitCompleted(within time.Duration) (stats, time.Time) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	var (
		s       stats
		lastErr error
	)
	for {
		got, err := r.stats()
		if err == nil {
			s = got
			if s.State == "completed" {
				return s, time.Now()
			}
			if s.State != "running" {
				r.t.Fatalf("campaign is %q, want running then completed: %+v", s.State, s)
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("campaign did not complete within %v: last stats %+v (last error %v); the fake accepted %d; breakdown: %s",
				within, s, lastErr, r.fake.Count(), r.breakdown())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// db opens a direct connection to the test's schema (not through the proxy).
func (r *rig) db() *pgx.Conn {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, r.pgURL)
	if err != nil {
		r.t.Fatalf("connect to the store: %v", err)
	}
	return c
}

// countStatus counts the campaign's deliveries in one status, straight from
// the store.
func (r *rig) countStatus(status string) int { return r.countStatusOn("", status) }

// countStatusOn counts the campaign's deliveries of one channel ("" for
// all) in one status, straight from the store.
func (r *rig) countStatusOn(channel, status string) int {
	r.t.Helper()
	c := r.db()
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(), `SELECT count(*) FROM deliveries
		WHERE campaign_id = $1::uuid AND status = $2 AND ($3 = '' OR channel = $3)`, r.campaign, status, channel).Scan(&n); err != nil {
		r.t.Fatalf("count %s deliveries: %v", status, err)
	}
	return n
}

// breakdown lists the campaign's deliveries that did not end sent or
// delivered, by status, error code and attempts.
func (r *rig) breakdown() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, r.pgURL)
	if err != nil {
		return err.Error()
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT status, COALESCE(error_code, ''), attempts, count(*) FROM deliveries
		WHERE campaign_id = $1::uuid AND status NOT IN ('sent', 'delivered')
		GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, r.campaign)
	if err != nil {
		return err.Error()
	}
	var parts []string
	var (
		st, code string
		att      int16
		n        int64
	)
	_, err = pgx.ForEachRow(rows, []any{&st, &code, &att, &n}, func() error {
		parts = append(parts, fmt.Sprintf("%s(code=%q attempts=%d)=%d", st, code, att, n))
		return nil
	})
	if err != nil {
		return err.Error()
	}
	if len(parts) == 0 {
		return "every delivery sent"
	}
	return strings.Join(parts, ", ")
}

// keepLease keeps the test's lease on its Redis database alive while the
// test runs. testenv leases a database for a fixed hour and never renews
// it; once a lease lapses another test (of any package) may lease the same
// database, flush it on its way in and out, and share its queues with ours.
func (r *rig) keepLease() {
	opt, err := redis.ParseURL(r.redisURL)
	if err != nil {
		r.t.Fatal(err)
	}
	key := fmt.Sprintf("outreach:test-db-lease:%d", opt.DB)
	opt.DB = 0
	c := redis.NewClient(opt)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				c.Expire(context.Background(), key, time.Hour) // no-op if it lapsed
			}
		}
	}()
	r.t.Cleanup(func() { close(stop); <-done; c.Close() })
}

// redis opens a client on the rig's own Redis database.
func (r *rig) redis() *redis.Client {
	r.t.Helper()
	opt, err := redis.ParseURL(r.redisURL)
	if err != nil {
		r.t.Fatal(err)
	}
	return redis.NewClient(opt)
}

// backlog reads the campaign's fan-out backlog counter (the deliveries the
// engine believes are queued in Redis; absent once the campaign completes).
func (r *rig) backlog() string {
	c := r.redis()
	defer c.Close()
	v, err := c.Get(context.Background(), "outreach:backlog:"+r.campaign).Result()
	if err != nil {
		return err.Error()
	}
	return v
}

// foreignServers lists asynq servers registered in the rig's Redis database
// by processes the rig did not start: the database was shared, and the
// run's figures mean nothing.
func (r *rig) foreignServers() []string {
	c := r.redis()
	defer c.Close()
	ours := map[string]bool{}
	r.mu.Lock()
	for _, p := range r.procs {
		ours[strconv.Itoa(p.cmd.Process.Pid)] = true
	}
	r.mu.Unlock()
	names, _ := c.ZRange(context.Background(), "asynq:servers", 0, -1).Result()
	var out []string
	for _, n := range names {
		// asynq:servers:{host:pid:id}
		parts := strings.Split(strings.Trim(n[strings.Index(n, "{")+1:], "}"), ":")
		if len(parts) >= 2 && !ours[parts[1]] {
			out = append(out, n)
		}
	}
	return out
}

// flushRedis empties the rig's leased Redis database (FLUSHDB, never
// FLUSHALL: other packages share the server).
func (r *rig) flushRedis() {
	r.t.Helper()
	opt, err := redis.ParseURL(r.redisURL)
	if err != nil {
		r.t.Fatal(err)
	}
	c := r.redis()
	defer c.Close()
	n, _ := c.DBSize(context.Background()).Result()
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		r.t.Fatalf("FLUSHDB: %v", err)
	}
	r.logf("FLUSHDB of Redis database %d: %d keys dropped", opt.DB, n)
}

// tally is what one fake saw per recipient.
type tally struct {
	accepted int   // messages the fake accepted
	calls    int   // requests it answered, refusals included
	reached  int   // recipients with at least one message
	missed   []int // eligible recipients (their index) with none
	dups     int   // messages beyond one per recipient
	maxPer   int   // most messages to one recipient
}

// tallyOf counts per recipient key (an MSISDN, a push token) what count
// reports.
func tallyOf(keys []string, count func(string) int) tally {
	var tl tally
	for i, k := range keys {
		n := count(k)
		switch {
		case n == 0:
			tl.missed = append(tl.missed, i)
		default:
			tl.reached++
			tl.dups += n - 1
		}
		tl.maxPer = max(tl.maxPer, n)
	}
	return tl
}

// tally is what the fake Twilio saw for the rig's recipients.
func (r *rig) tally() tally {
	tl := tallyOf(r.msisdns, r.fake.CountTo)
	tl.accepted, tl.calls = r.fake.Count(), r.fake.Attempts()
	return tl
}

// sendingGap is the longest pause between two accepted messages at or
// after from, and when sending first resumed after from.
func (r *rig) sendingGap(from time.Time) (gap time.Duration, resumed time.Duration) {
	msgs := r.fake.Messages()
	at := make([]time.Time, 0, len(msgs))
	for _, m := range msgs {
		if !m.At.Before(from) {
			at = append(at, m.At)
		}
	}
	if len(at) == 0 {
		return 0, -1
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	resumed = at[0].Sub(from)
	gap = resumed
	for i := 1; i < len(at); i++ {
		gap = max(gap, at[i].Sub(at[i-1]))
	}
	return gap, resumed
}

// settle gives late sends a moment to show up before the final count.
func (r *rig) settle() {
	before := r.calls()
	time.Sleep(1500 * time.Millisecond)
	if after := r.calls(); after != before {
		r.logf("%d more provider calls after the campaign completed", after-before)
	}
}

// check asserts the outcome every scenario shares: nobody missed, nothing
// left unfinished, and duplicates within bound. It logs the figures.
func (r *rig) check(s stats, allowedDups int, why string) tally {
	r.t.Helper()
	took := time.Since(r.started)
	r.settle()
	r.logf("the campaign took %v from start to completion; first to last message %v",
		took.Round(time.Millisecond), r.sendingSpan().Round(time.Millisecond))
	tl := r.tally()
	r.expect("SMS", tl, allowedDups, why)
	r.checkFinished(s, int64(len(r.msisdns)))
	return tl
}

// expect logs what one channel's fake saw and asserts nobody was missed
// and duplicates stayed within allowed.
func (r *rig) expect(channel string, tl tally, allowed int, why string) {
	r.t.Helper()
	recipients := tl.reached + len(tl.missed)
	r.logf("RESULT %s: %d recipients, %d reached, %d missed, %d duplicates (bound %d: %s), %d accepted by the fake in %d calls, at most %d to one recipient",
		channel, recipients, tl.reached, len(tl.missed), tl.dups, allowed, why, tl.accepted, tl.calls, tl.maxPer)
	if len(tl.missed) > 0 {
		r.t.Errorf("%s: %d eligible recipients got no message (first, by index: %v)", channel, len(tl.missed), tl.missed[:min(5, len(tl.missed))])
	}
	if tl.dups > allowed {
		r.t.Errorf("%s: %d duplicate messages, more than the %d allowed (%s)", channel, tl.dups, allowed, why)
	}
}

// checkFinished asserts a completed campaign has nothing left pending or
// sending and the audience it should have, and that no other test's
// processes shared the rig's Redis database.
func (r *rig) checkFinished(s stats, audience int64) {
	r.t.Helper()
	r.logf("store: audience %d, deliveries %v; not sent: %s", s.Audience, s.Deliveries, r.breakdown())
	if n := s.Deliveries["pending"] + s.Deliveries["sending"]; n != 0 {
		r.t.Errorf("%d deliveries still pending or sending in a completed campaign", n)
	}
	if s.Audience != audience {
		r.t.Errorf("audience %d, want %d", s.Audience, audience)
	}
	if f := r.foreignServers(); len(f) > 0 {
		r.t.Errorf("the Redis database was shared with processes of another test (%v): these figures mean nothing", f)
	}
}

// twoWorkersToThirtyPercent boots the api, seeds the audience, starts two
// workers and the campaign, and returns once 30% of the messages are in:
// where the campaign scenarios inject their fault.
func (r *rig) twoWorkersToThirtyPercent() {
	r.boot()
	r.seed()
	r.worker("worker-1")
	r.worker("worker-2")
	r.startCampaign()
	r.waitAccepted(r.sz.recipients*3/10, r.sz.complete)
}
