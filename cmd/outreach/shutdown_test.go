package main

import (
	"bufio"
	"context"
	"database/sql"
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

// TestStoppingTheServerFinishesTheWorkInFlight stops `outreach serve` (as
// SIGTERM does) while a campaign is sending and while a request's body is
// still arriving: the request is answered, every message the provider
// accepted is recorded as sent, and no delivery is left claimed; the store
// closes only after that.
func TestStoppingTheServerFinishesTheWorkInFlight(t *testing.T) {
	addr := freeAddr(t)
	dbPath := t.TempDir() + "/outreach.db"
	vars := map[string]string{
		"OUTREACH_HTTP_ADDR":    addr,
		"OUTREACH_DATABASE_URL": "sqlite://" + dbPath,
		"OUTREACH_SEND_WINDOW":  "00:00-24:00",
		"OUTREACH_SMS_RATE":     "5000",
	}
	getenv := mapEnv(vars)
	base := "http://" + addr

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &testenv.LogBuffer{}
	done := make(chan error, 1)
	go func() { done <- realMain(ctx, []string{"serve"}, io.Discard, logs, getenv) }()
	waitReady(t, base)
	c := client{t: t, base: base, key: createKey(t, getenv, "viettel", "admin")}

	const n = 4000
	var csv strings.Builder
	csv.WriteString("msisdn,region,locale\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&csv, "09%08d,HN,vi\n", i)
	}
	if code := c.do("POST", "/v1/subscribers/import", "text/csv", strings.NewReader(csv.String()), nil); code != 200 {
		t.Fatalf("import: %d", code)
	}
	var tpl struct{ ID string }
	if code := c.json("POST", "/v1/templates", map[string]any{"name": "promo", "channel": "sms", "locale": "vi",
		"body": "Cai Bluezone: {{.InstallLink}}"}, &tpl); code != 201 {
		t.Fatalf("create template: %d", code)
	}
	var camp struct{ ID string }
	if code := c.json("POST", "/v1/campaigns", map[string]any{"name": "slow", "kind": "install_promotion",
		"channels": []string{"sms"}, "templates": map[string]string{"sms": tpl.ID},
		"audience": map[string]any{"regions": []string{"HN"}}, "rate_per_second": 1000}, &camp); code != 201 {
		t.Fatalf("create campaign: %d", code)
	}
	if code := c.json("POST", "/v1/campaigns/"+camp.ID+"/start", nil, nil); code != 200 {
		t.Fatalf("start: %d", code)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var stats struct{ Deliveries map[string]int64 }
		c.do("GET", "/v1/campaigns/"+camp.ID+"/stats", "", nil, &stats)
		if stats.Deliveries["sent"] >= 500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the campaign did not start sending: %+v", stats)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A request whose body is only half there when the stop comes.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"name": "late", "channel": "sms", "locale": "vi", "body": "Xin chao"}`
	fmt.Fprintf(conn, "POST /v1/templates HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, c.key, len(body), body[:20])
	time.Sleep(100 * time.Millisecond) // the server is reading the body

	cancel()
	time.Sleep(200 * time.Millisecond)
	if _, err := io.WriteString(conn, body[20:]); err != nil {
		t.Fatalf("the rest of the body: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request in flight got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("the request in flight: %d, want 201", resp.StatusCode)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}

	// Every message the log provider accepted, against the store.
	accepted := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec struct{ Msg string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "sms" {
			accepted++
		}
	}
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	byStatus := map[string]int{}
	rows, err := db.Query(`SELECT status, count(*) FROM deliveries GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		var k int
		if err := rows.Scan(&s, &k); err != nil {
			t.Fatal(err)
		}
		byStatus[s] = k
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("accepted by the provider %d; deliveries %v", accepted, byStatus)
	if accepted == 0 || accepted >= n {
		t.Fatalf("the stop came at %d of %d messages: not during the campaign", accepted, n)
	}
	if byStatus["sent"] != accepted {
		t.Errorf("%d sent in the store, %d accepted by the provider: the difference is sent again after a restart",
			byStatus["sent"], accepted)
	}
	if byStatus["sending"] != 0 {
		t.Errorf("%d deliveries left claimed", byStatus["sending"])
	}
}
