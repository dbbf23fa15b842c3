package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"outreach/internal/testenv"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// embedded is the environment of the README's run command, in a temporary
// directory and on a free port.
func embedded(t *testing.T) (env, string) {
	addr := freeAddr(t)
	vars := map[string]string{
		"OUTREACH_HTTP_ADDR":    addr,
		"OUTREACH_DATABASE_URL": "sqlite://" + t.TempDir() + "/outreach.db",
		"OUTREACH_SEND_WINDOW":  "00:00-24:00",
	}
	return mapEnv(vars), "http://" + addr
}

// serve runs `outreach serve` until the test ends and waits for /readyz.
func serve(t *testing.T, getenv env) *testenv.LogBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testenv.LogBuffer{}
	done := make(chan error, 1)
	go func() { done <- realMain(ctx, []string{"serve"}, io.Discard, logs, getenv) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return logs
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered 200 (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func createKey(t *testing.T, getenv env, tenantName, role string) string {
	t.Helper()
	var out bytes.Buffer
	if err := realMain(context.Background(), []string{"keys", "create", "--tenant", tenantName, "--role", role}, &out, io.Discard, getenv); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	key := lines[len(lines)-1]
	if !strings.HasPrefix(key, "ok_") || strings.ContainsAny(key, " \t") {
		t.Fatalf("last stdout line %q is not a key alone", key)
	}
	return key
}

type client struct {
	t    *testing.T
	base string
	key  string
}

func (c client) do(method, path, ctype string, body io.Reader, out any) int {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, body)
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func (c client) json(method, path string, in, out any) int {
	c.t.Helper()
	b, _ := json.Marshal(in)
	return c.do(method, path, "application/json", bytes.NewReader(b), out)
}

func TestTheRunCommandServesTheEmbeddedDefault(t *testing.T) {
	getenv, base := embedded(t)
	logs := serve(t, getenv)
	waitReady(t, base)
	if !strings.Contains(logs.String(), "EMBEDDED MODE") {
		t.Error("start-up did not warn loudly about the embedded default")
	}
	key := createKey(t, getenv, "viettel", "admin")
	c := client{t: t, base: base, key: key}
	if code := c.do("GET", "/v1/campaigns", "", nil, nil); code != 200 {
		t.Fatalf("GET /v1/campaigns with the new key: %d", code)
	}
	if code := (client{t: t, base: base}).do("GET", "/v1/campaigns", "", nil, nil); code != 401 {
		t.Fatalf("GET /v1/campaigns without a key: %d, want 401", code)
	}
}

func TestACampaignRunsThroughTheWholeBinary(t *testing.T) {
	getenv, base := embedded(t)
	logs := serve(t, getenv)
	waitReady(t, base)
	c := client{t: t, base: base, key: createKey(t, getenv, "viettel", "admin")}

	regions := "code,name,population\nDN,Đà Nẵng,1128713\nHN,Hà Nội,8043624\nQN,Quảng Ninh,1320285\n"
	if code := c.do("PUT", "/v1/regions", "text/csv", strings.NewReader(regions), nil); code != 200 {
		t.Fatalf("PUT /v1/regions: %d", code)
	}
	var csv strings.Builder
	csv.WriteString("msisdn,region,locale,name\n")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&csv, "09%08d,%s,vi,Khách %d\n", i, []string{"DN", "HN", "QN"}[i%3], i)
	}
	csv.WriteString("\"0912,broken\n") // a malformed row
	csv.WriteString("12345,HN,vi,x\n") // an invalid number
	var imp struct {
		Imported, Rejected int
		Errors             []struct{ Line int }
	}
	if code := c.do("POST", "/v1/subscribers/import", "text/csv", strings.NewReader(csv.String()), &imp); code != 200 {
		t.Fatalf("import: %d", code)
	}
	if imp.Imported != 300 || imp.Rejected != 2 {
		t.Fatalf("import: %+v, want 300 imported and 2 rejected", imp)
	}
	var tpl struct{ ID string }
	if code := c.json("POST", "/v1/templates", map[string]any{"name": "promo-vi", "channel": "sms", "locale": "vi",
		"body": "Cài Bluezone để nhận {{.RewardMB}}MB: {{.InstallLink}}", "transliterate": true}, &tpl); code != 201 {
		t.Fatalf("create template: %d", code)
	}
	var camp struct{ ID, State string }
	if code := c.json("POST", "/v1/campaigns", map[string]any{"name": "Bluezone Q3", "kind": "install_promotion",
		"channels": []string{"sms"}, "templates": map[string]string{"sms": tpl.ID},
		"audience": map[string]any{"regions": []string{"DN", "HN"}}, "rate_per_second": 0,
		"reward": map[string]any{"data_mb": 5120, "budget_mb": 51200000, "attribution_days": 14}}, &camp); code != 201 {
		t.Fatalf("create campaign: %d", code)
	}
	if code := c.json("POST", "/v1/campaigns/"+camp.ID+"/start", nil, &camp); code != 200 || camp.State != "running" {
		t.Fatalf("start: %d %s", code, camp.State)
	}
	var stats struct {
		State      string
		Audience   int64
		Deliveries map[string]int64
	}
	deadline := time.Now().Add(30 * time.Second)
	for stats.State != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("campaign did not complete: %+v", stats)
		}
		time.Sleep(100 * time.Millisecond)
		c.do("GET", "/v1/campaigns/"+camp.ID+"/stats", "", nil, &stats)
	}
	if stats.Audience != 200 || stats.Deliveries["sent"] != 200 {
		t.Fatalf("stats %+v, want 200 sent to the two regions", stats)
	}
	// The log provider masks numbers: no full MSISDN reaches the log.
	if strings.Contains(logs.String(), "+849000000") || strings.Contains(logs.String(), "0900000001") {
		t.Error("a full phone number reached the log")
	}
}
