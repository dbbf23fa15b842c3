package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"outreach/config"
	"outreach/install"
	"outreach/provider/provisioning/provisioningfake"
	"outreach/subscriber"
	"outreach/tenant"
)

// demoInstallRate is the share of each region's reached subscribers who
// install the app in the demo: Đà Nẵng, Hà Nội and Quảng Ninh lead, as in
// the reference figures; the rest trail down to about 7%.
// demoScale shrinks populations and the national target to the size of the
// demo's synthetic base (10,000 subscribers by default).
const demoScale = 5000

var demoInstallRate = map[string]float64{"DN": 0.40, "HN": 0.30, "QN": 0.28, "HCM": 0.27, "HG": 0.07, "DB": 0.07}

// demoDB is the demo's database file in its directory.
const demoDB = "outreach-demo.db"

// runDemo is a self-contained tour on the embedded default: the whole
// engine in this process, the log providers, an in-process provisioning
// API, and a synthetic subscriber base.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer, getenv env) error {
	fs := newFlags("demo", "A self-contained tour on the embedded default: seeds regions and a synthetic subscriber\n"+
		"base, runs an install campaign and an exposure alert through the log providers, simulates\n"+
		"installs and rewards, and prints the adoption report. Nothing leaves this machine.", stderr)
	n := fs.Int("subscribers", 10000, "synthetic subscribers to import")
	dir := fs.String("dir", "", "directory for the demo database (default: a new temporary directory, removed after)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *n < 100 {
		return errors.New("demo: --subscribers must be at least 100")
	}
	work := *dir
	if work != "" {
		// The tour counts installs and rewards from nothing: on an earlier
		// run's database every subscriber has installed and been paid
		// already, and it would show none.
		if _, err := os.Stat(filepath.Join(work, demoDB)); err == nil {
			return fmt.Errorf("demo: --dir %s holds an earlier run's %s; remove it or give another directory", work, demoDB)
		}
		if err := os.MkdirAll(work, 0o755); err != nil {
			return fmt.Errorf("demo: --dir: %w", err)
		}
	}
	if work == "" {
		d, err := os.MkdirTemp("", "outreach-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	}
	secret := tenant.NewSecret()
	prov := provisioningfake.New("demo-rewards-secret")
	defer prov.Close()
	addr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	vars := map[string]string{
		"OUTREACH_HTTP_ADDR": addr, "OUTREACH_DATABASE_URL": "sqlite://" + filepath.Join(work, demoDB),
		"OUTREACH_PUBLIC_URL": "http://" + addr, "OUTREACH_SEND_WINDOW": "00:00-24:00", "OUTREACH_FREQUENCY_CAP": "0",
		"OUTREACH_SMS_RATE": "20000", "OUTREACH_PUSH_RATE": "20000", "OUTREACH_LOG_LEVEL": "error",
		"OUTREACH_REWARDS_URL": prov.URL(), "OUTREACH_REWARDS_SECRET": "demo-rewards-secret",
		"OUTREACH_ADOPTION_TARGET": fmt.Sprint(50_000_000 / demoScale),
	}
	cfg, err := config.LoadLookup(mapEnv(vars))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	handler := a.newHandler(false)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.engine.Run(runCtx) }()
	ready := make(chan string, 1)
	go func() { defer wg.Done(); serveHTTP(runCtx, addr, handler, log, ready) }()
	defer wg.Wait()
	defer cancel()
	<-ready

	d := &demo{base: "http://" + addr, out: stdout, bar: stderr}
	start := time.Now()
	fmt.Fprintf(stdout, "outreach demo: the engine on the embedded default (SQLite in %s, in-process Redis, log providers)\n\n", work)

	t, err := a.store.EnsureTenant(ctx, "viettel")
	if err != nil {
		return err
	}
	if err := a.store.SetInstallSecret(ctx, t.ID, secret); err != nil {
		return err
	}
	marketer, health := newDemoKey(ctx, a, t.ID, tenant.RoleMarketer), newDemoKey(ctx, a, t.ID, tenant.RoleHealth)
	admin := newDemoKey(ctx, a, t.ID, tenant.RoleAdmin)

	// Regions: populations scaled down (demoScale) so that a synthetic base
	// of thousands gives rates of the real campaign's size.
	var regions strings.Builder
	regions.WriteString("code,name,population\n")
	for _, r := range subscriber.SyntheticRegions() {
		fmt.Fprintf(&regions, "%s,%s,%d\n", r.Code, r.Name, r.Population/demoScale)
	}
	if err := d.call(admin, "PUT", "/v1/regions", "text/csv", strings.NewReader(regions.String()), nil); err != nil {
		return err
	}
	d.step(fmt.Sprintf("regions loaded (20 provinces, populations scaled 1:%d)", demoScale))

	var imp subscriber.ImportResult
	if err := d.call(marketer, "POST", "/v1/subscribers/import", "text/csv", subscriber.SyntheticCSV(*n, 2020), &imp); err != nil {
		return err
	}
	d.step(fmt.Sprintf("%d subscribers imported (%d rejected)", imp.Imported+imp.Updated, imp.Rejected))
	subs, err := syntheticSubscribers(*n)
	if err != nil {
		return err
	}
	// A third of the base has the carrier's app with push enabled.
	var devices atomic.Int64
	d.parallel("registering push devices", len(subs)/3, func(i int) error {
		s := subs[i*3]
		platform, token := "fcm", fmt.Sprintf("demo-token-%d", i)
		if i%3 == 0 {
			platform, token = "apns", fmt.Sprintf("%064x", i) // a device token's 32 bytes, in hex
		}
		body := fmt.Sprintf(`{"platform":%q,"token":%q}`, platform, token)
		devices.Add(1)
		return d.call(marketer, "PUT", "/v1/subscribers/"+s.msisdn+"/devices", "application/json", strings.NewReader(body), nil)
	})

	var smsT, pushT, thanksT, camp struct{ ID, State string }
	if err := d.json(marketer, "POST", "/v1/templates", map[string]any{"name": "bluezone-sms", "channel": "sms", "locale": "vi",
		"body": "Cài Bluezone, nhận {{.RewardMB}}MB data: {{.InstallLink}}", "transliterate": true}, &smsT); err != nil {
		return err
	}
	if err := d.json(marketer, "POST", "/v1/templates", map[string]any{"name": "bluezone-push", "channel": "push", "locale": "vi",
		"title": "Bluezone bảo vệ bạn", "body": "Cài Bluezone để nhận {{.RewardMB}}MB data miễn phí"}, &pushT); err != nil {
		return err
	}
	if err := d.json(marketer, "POST", "/v1/templates", map[string]any{"name": "bluezone-thanks", "channel": "sms", "locale": "vi",
		"body": "Cảm ơn bạn đã cài Bluezone! {{.RewardMB}}MB data đã được cộng vào tài khoản.", "transliterate": true}, &thanksT); err != nil {
		return err
	}
	expected := 0
	for _, s := range subs {
		expected += int(float64(1000) * rateFor(s.region))
	}
	budget := int64(expected*5120/1000) * 9 / 10 // about nine installs in ten get paid
	if err := d.json(marketer, "POST", "/v1/campaigns", map[string]any{"name": "Bluezone: 5 GB cho người cài đặt",
		"kind": "install_promotion", "channels": []string{"sms", "push"},
		"templates": map[string]string{"sms": smsT.ID, "push": pushT.ID},
		"audience":  map[string]any{"installed": false},
		"reward": map[string]any{"data_mb": 5120, "budget_mb": budget, "attribution_days": 14,
			"confirm_template": thanksT.ID}}, &camp); err != nil {
		return err
	}
	if err := d.json(marketer, "POST", "/v1/campaigns/"+camp.ID+"/start", nil, &camp); err != nil {
		return err
	}
	stats, err := d.waitCampaign(marketer, "/v1/campaigns/"+camp.ID+"/stats", "install campaign (SMS + push)")
	if err != nil {
		return err
	}
	d.step(fmt.Sprintf("install campaign completed: %d sent, %d skipped (%s), %d segments",
		stats.Deliveries["sent"], stats.Deliveries["skipped"], reasons(stats.Skipped), stats.Segments))

	// An exposure alert: 200 contacts of a case, five not yet subscribers.
	contacts := []string{}
	for i := 0; i < 195; i++ {
		contacts = append(contacts, subs[(i*37)%len(subs)].msisdn)
	}
	for i := 0; i < 5; i++ {
		contacts = append(contacts, fmt.Sprintf("09799%05d", i))
	}
	var alertSMS, alertPush, alert struct {
		ID       string
		Contacts int
	}
	d.json(health, "POST", "/v1/templates", map[string]any{"name": "f1-sms", "channel": "sms", "locale": "vi",
		"body": "So Y te: ban da tiep xuc gan voi ca benh COVID-19. Hay tu cach ly va goi 1900 9095."}, &alertSMS)
	d.json(health, "POST", "/v1/templates", map[string]any{"name": "f1-push", "channel": "push", "locale": "vi",
		"title": "Cảnh báo tiếp xúc", "body": "Bạn đã tiếp xúc gần ca bệnh. Hãy tự cách ly."}, &alertPush)
	alertStart := time.Now()
	if err := d.json(health, "POST", "/v1/alerts", map[string]any{"name": "F1 contacts", "channels": []string{"sms", "push"},
		"templates": map[string]string{"sms": alertSMS.ID, "push": alertPush.ID}, "contacts": contacts}, &alert); err != nil {
		return err
	}
	if _, err := d.waitCampaign(health, "/v1/alerts/"+alert.ID, "exposure alert"); err != nil {
		return err
	}
	d.step(fmt.Sprintf("exposure alert to %d contacts delivered in %v", alert.Contacts, time.Since(alertStart).Round(time.Millisecond)))

	// Installs: each region's share of subscribers installs the app; one
	// in five callbacks is sent twice, as app backends do.
	rng := rand.New(rand.NewPCG(7, 7))
	var installers []demoSub
	for _, s := range subs {
		if rng.Float64() < rateFor(s.region) {
			installers = append(installers, s)
		}
	}
	sentBefore := a.prov.Outbox.Sent() // the campaign and the alert are done: what follows is confirmations
	var duplicates atomic.Int64
	d.parallel("install callbacks", len(installers), func(i int) error {
		s := installers[i]
		body, _ := json.Marshal(install.Callback{MSISDN: s.msisdn, DeviceID: fmt.Sprintf("device-%d", i),
			Platform: "android", InstalledAt: time.Now().UTC()})
		times := 1
		if i%5 == 0 {
			times = 2
		}
		for k := 0; k < times; k++ {
			var res struct{ Duplicate, Replay bool }
			if err := d.signed("/v1/installs", "viettel", secret, body, &res); err != nil {
				return err
			}
			if res.Replay || res.Duplicate {
				duplicates.Add(1)
			}
		}
		return nil
	})
	d.step(fmt.Sprintf("%d installs reported (%d repeated callbacks recognised)", len(installers), duplicates.Load()))
	if err := d.waitRewards(marketer, camp.ID); err != nil {
		return err
	}
	final, err := d.stats(marketer, "/v1/campaigns/"+camp.ID+"/stats")
	if err != nil {
		return err
	}
	// Each grant is followed by its confirmation SMS, sent just after the
	// grant is recorded: give the last ones a moment.
	confirmed := a.prov.Outbox.Sent() - sentBefore
	for wait := time.Now().Add(10 * time.Second); int64(confirmed) < final.Rewards.Granted && time.Now().Before(wait); {
		time.Sleep(20 * time.Millisecond)
		confirmed = a.prov.Outbox.Sent() - sentBefore
	}
	d.step(fmt.Sprintf("rewards: %d granted, %d MB credited (budget %d MB); the provisioning API saw %d grants; %d confirmation SMS sent",
		final.Rewards.Granted, final.Rewards.MB, budget, len(prov.Grants()), confirmed))

	var rep install.Adoption
	if err := d.call(marketer, "GET", "/v1/reports/adoption", "", nil, &rep); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nAdoption by region (populations and the national target scaled 1:%d)\n\n", demoScale)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rank\tregion\tinstalls\tpopulation\trate\t")
	for _, r := range rep.Regions {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%.1f%%\t\n", r.Rank, r.Name, r.Installs, r.Population, r.Rate*100)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\nNational: %d installs of a %d target (%.1f%%); conversion of the campaign %.1f%%\n",
		rep.Installs, rep.Target, rep.Progress*100, final.ConversionRate*100)
	fmt.Fprintf(stdout, "Demo finished in %v.\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

func rateFor(region string) float64 {
	if r, ok := demoInstallRate[region]; ok {
		return r
	}
	return 0.12 + float64(len(region)%3)*0.04
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func newDemoKey(ctx context.Context, a *app, tenantID string, role tenant.Role) string {
	plain, hash := tenant.NewKey()
	a.store.CreateAPIKey(ctx, tenant.APIKey{ID: uuid.NewString(), TenantID: tenantID, Role: role, Hash: hash, CreatedAt: time.Now().UTC()})
	return plain
}

type demoSub struct{ msisdn, region string }

// syntheticSubscribers reads back the numbers and regions of the synthetic
// base (the same seed gives the same file).
func syntheticSubscribers(n int) ([]demoSub, error) {
	r := csv.NewReader(subscriber.SyntheticCSV(n, 2020))
	if _, err := r.Read(); err != nil {
		return nil, err
	}
	var out []demoSub
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		m, err := subscriber.NormalizeMSISDN(rec[0])
		if err != nil {
			continue
		}
		out = append(out, demoSub{msisdn: m, region: rec[1]})
	}
}

// demo drives the API as a marketer, a health official and an app
// backend would, and draws progress bars.
type demo struct {
	base string
	out  io.Writer
	bar  io.Writer
}

func (d *demo) step(msg string) { fmt.Fprintf(d.out, "  ✓ %s\n", msg) }

func (d *demo) progress(label string, done, total int64) {
	const width = 30
	if total <= 0 {
		total = 1
	}
	filled := int(done * width / total)
	fmt.Fprintf(d.bar, "\r  %-34s [%s%s] %d/%d", label, strings.Repeat("█", filled), strings.Repeat("·", width-filled), done, total)
	if done >= total {
		fmt.Fprint(d.bar, "\r\033[K")
	}
}

func (d *demo) call(key, method, path, ctype string, body io.Reader, out any) error {
	req, err := http.NewRequest(method, d.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return d.do(req, out)
}

func (d *demo) json(key, method, path string, in, out any) error {
	b, _ := json.Marshal(in)
	return d.call(key, method, path, "application/json", bytes.NewReader(b), out)
}

func (d *demo) signed(path, tenantName, secret string, body []byte, out any) error {
	req, _ := http.NewRequest("POST", d.base+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	install.SignRequest(req.Header, tenantName, secret, body, time.Now())
	return d.do(req, out)
}

func (d *demo) do(req *http.Request, out any) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

// parallel runs fn for 0..n-1 on a few goroutines with a progress bar.
func (d *demo) parallel(label string, n int, fn func(i int) error) error {
	var next, done atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := fn(int(i)); err != nil {
					once.Do(func() { firstErr = err })
				}
				if c := done.Add(1); c%50 == 0 {
					d.progress(label, c, int64(n))
				}
			}
		}()
	}
	wg.Wait()
	d.progress(label, int64(n), int64(n))
	return firstErr
}

type demoStats struct {
	State          string
	Audience       int64
	Deliveries     map[string]int64
	Skipped        map[string]int64
	Segments       int64
	ConversionRate float64 `json:"conversion_rate"`
	Rewards        struct{ Granted, MB int64 }
}

func (d *demo) stats(key, path string) (demoStats, error) {
	if strings.HasPrefix(path, "/v1/alerts/") { // an alert nests its stats
		var a struct {
			State string
			Stats demoStats
		}
		err := d.call(key, "GET", path, "", nil, &a)
		a.Stats.State = a.State
		return a.Stats, err
	}
	var s demoStats
	err := d.call(key, "GET", path, "", nil, &s)
	return s, err
}

func (d *demo) waitCampaign(key, path, label string) (demoStats, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s, err := d.stats(key, path)
		if err != nil {
			return s, err
		}
		var total, final int64
		for st, n := range s.Deliveries {
			total += n
			if st != "pending" && st != "sending" {
				final += n
			}
		}
		d.progress(label, final, max(total, 1))
		if s.State == "completed" {
			d.progress(label, 1, 1)
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("%s did not complete: %v", label, s.Deliveries)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *demo) waitRewards(key, campaignID string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		var page struct {
			Rewards []json.RawMessage `json:"rewards"`
		}
		if err := d.call(key, "GET", "/v1/rewards?campaign_id="+campaignID+"&status=pending&limit=1000", "", nil, &page); err != nil {
			return err
		}
		if len(page.Rewards) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d rewards still pending", len(page.Rewards))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reasons writes skip counts as "no_device 6667, opted_out 12", largest
// first.
func reasons(m map[string]int64) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
