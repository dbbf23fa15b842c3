package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"outreach/provider/twilio/twiliofake"
)

func TestTwilioCallbacksAreAcceptedOnlyWhenSigned(t *testing.T) {
	fake := twiliofake.New("AC0123456789", "secrettoken42")
	fakeURL, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	addr := freeAddr(t)
	base := "http://" + addr
	vars := map[string]string{
		"OUTREACH_HTTP_ADDR":                    addr,
		"OUTREACH_DATABASE_URL":                 "sqlite://" + t.TempDir() + "/outreach.db",
		"OUTREACH_SEND_WINDOW":                  "00:00-24:00",
		"OUTREACH_PUBLIC_URL":                   base,
		"OUTREACH_SMS_PROVIDER":                 "twilio",
		"TWILIO_ACCOUNT_SID":                    "AC0123456789",
		"TWILIO_AUTH_TOKEN":                     "secrettoken42",
		"OUTREACH_TWILIO_MESSAGING_SERVICE_SID": "MG0123456789",
		"OUTREACH_TWILIO_BASE_URL":              fakeURL,
		"OUTREACH_OPT_OUT_KEYWORDS":             "Ngừng QC",
		"OUTREACH_SMS_RATE":                     "10",
	}
	getenv := mapEnv(vars)
	serve(t, getenv)
	waitReady(t, base)
	c := client{t: t, base: base, key: createKey(t, getenv, "viettel", "admin")}

	csv := "msisdn,region,locale\n0912345678,HN,vi\n0987654321,HN,vi\n"
	if code := c.do("POST", "/v1/subscribers/import", "text/csv", strings.NewReader(csv), nil); code != 200 {
		t.Fatalf("import: %d", code)
	}
	var tpl, camp struct{ ID string }
	c.json("POST", "/v1/templates", map[string]any{"name": "t", "channel": "sms", "body": "Cai Bluezone: {{.InstallLink}}"}, &tpl)
	c.json("POST", "/v1/campaigns", map[string]any{"name": "c", "channels": []string{"sms"},
		"templates": map[string]string{"sms": tpl.ID}}, &camp)
	// The provider takes the second subscriber's message but its answer is
	// lost: the delivery is "unknown" until the receipt names it.
	fake.LoseAnswerTo("+84987654321", true)
	c.json("POST", "/v1/campaigns/"+camp.ID+"/start", nil, nil)
	deadline := time.Now().Add(20 * time.Second)
	for fake.Count() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the fake saw %d messages, want 2", fake.Count())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var msg, lost twiliofake.Message
	for _, m := range fake.Messages() {
		if m.To == "+84987654321" {
			lost = m
		} else {
			msg = m
		}
	}
	// Each message's callback URL names its delivery.
	cb, err := url.Parse(msg.StatusCallback)
	if err != nil || cb.Scheme+"://"+cb.Host+cb.Path != base+"/webhooks/twilio/status" ||
		!strings.HasPrefix(cb.Query().Get("d"), camp.ID+".") || !strings.HasSuffix(cb.Query().Get("d"), ".sms") {
		t.Fatalf("StatusCallback = %q", msg.StatusCallback)
	}
	count := func(status string) int64 {
		var s struct{ Deliveries map[string]int64 }
		c.do("GET", "/v1/campaigns/"+camp.ID+"/stats", "", nil, &s)
		return s.Deliveries[status]
	}
	wait := func(status string, want int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for count(status) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %d, want %d", status, count(status), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitDelivered := func(want int64) { t.Helper(); wait("delivered", want) }
	wait("unknown", 1)

	// A forged receipt (wrong signature) gets 403 and changes nothing.
	form := url.Values{"MessageSid": {msg.SID}, "MessageStatus": {"delivered"}, "AccountSid": {"AC0123456789"},
		"To": {msg.To}, "From": {"MG0123456789"}}
	req, _ := http.NewRequest("POST", base+"/webhooks/twilio/status", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twiliofake.Sign("wrongtoken", base+"/webhooks/twilio/status", form))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("forged receipt: %d, want 403", resp.StatusCode)
	}
	// A signed receipt whose URL names no delivery it can read: 422, naming d.
	bad := base + "/webhooks/twilio/status?d=not-a-delivery"
	req, _ = http.NewRequest("POST", bad, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twiliofake.Sign("secrettoken42", bad, form))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 422 || !strings.Contains(string(body), `"d"`) {
		t.Fatalf("receipt naming a malformed delivery: %d %s, want 422 naming d", resp.StatusCode, body)
	}
	time.Sleep(200 * time.Millisecond)
	if n := count("delivered"); n != 0 {
		t.Fatalf("a forged receipt marked %d delivered", n)
	}
	// A signed one moves the delivery forward; a repeat changes nothing.
	if err := fake.SendStatus(context.Background(), msg, "delivered", ""); err != nil {
		t.Fatal(err)
	}
	waitDelivered(1)
	if err := fake.SendStatus(context.Background(), msg, "sent", ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	waitDelivered(1) // "sent" after "delivered" does not move it back

	// The receipt of the message whose answer was lost resolves it, by the
	// delivery its URL names, and records its SID.
	if err := fake.SendStatus(context.Background(), lost, "delivered", ""); err != nil {
		t.Fatal(err)
	}
	waitDelivered(2)
	if n := count("unknown"); n != 0 {
		t.Fatalf("unknown = %d after the receipt, want 0", n)
	}
	var page struct {
		Deliveries []struct {
			MSISDN            string `json:"msisdn"`
			ProviderMessageID string `json:"provider_message_id"`
		}
	}
	c.do("GET", "/v1/campaigns/"+camp.ID+"/deliveries", "", nil, &page)
	sids := map[string]bool{}
	for _, d := range page.Deliveries {
		sids[d.ProviderMessageID] = true
	}
	if !sids[lost.SID] || !sids[msg.SID] {
		t.Fatalf("deliveries %+v, want SIDs %s and %s", page.Deliveries, msg.SID, lost.SID)
	}

	// An inbound "Hủy" opts the subscriber out; "START" opts back in.
	optedOut := func() bool {
		var s struct {
			OptedOut bool `json:"opted_out"`
		}
		c.do("GET", "/v1/subscribers/0912345678", "", nil, &s)
		return s.OptedOut
	}
	if err := fake.SendInbound(context.Background(), base+"/webhooks/twilio/inbound", "+84912345678", "MG0123456789", "Hủy", ""); err != nil {
		t.Fatal(err)
	}
	if !optedOut() {
		t.Fatal("inbound Hủy did not opt the subscriber out")
	}
	if err := fake.SendInbound(context.Background(), base+"/webhooks/twilio/inbound", "+84912345678", "MG0123456789", "START", ""); err != nil {
		t.Fatal(err)
	}
	if optedOut() {
		t.Fatal("inbound START did not opt the subscriber back in")
	}
	// A keyword of the carrier's own (OUTREACH_OPT_OUT_KEYWORDS) works too.
	if err := fake.SendInbound(context.Background(), base+"/webhooks/twilio/inbound", "+84912345678", "MG0123456789", "ngung qc", ""); err != nil {
		t.Fatal(err)
	}
	if !optedOut() {
		t.Fatal("inbound ngung qc (configured) did not opt the subscriber out")
	}

	// A test send has no delivery: its callback names none, and its
	// receipt is taken (and changes nothing).
	if code := c.json("POST", "/v1/campaigns/"+camp.ID+"/test", map[string]string{"msisdn": "0911111111"}, nil); code != 200 {
		t.Fatalf("test send: %d", code)
	}
	var proof twiliofake.Message
	for _, m := range fake.Messages() {
		if m.To == "+84911111111" {
			proof = m
		}
	}
	if proof.StatusCallback != base+"/webhooks/twilio/status" {
		t.Fatalf("a test send's StatusCallback = %q, want the plain URL", proof.StatusCallback)
	}
	if err := fake.SendStatus(context.Background(), proof, "delivered", ""); err != nil {
		t.Fatalf("a test send's receipt: %v", err)
	}
	waitDelivered(2)

	// A flood of unsigned callbacks from the address Twilio calls from
	// (here the one loopback address) turns none of Twilio's away: each is
	// refused by its signature, and a genuine STOP after them is taken.
	flood := url.Values{"MessageSid": {"SMforged"}, "MessageStatus": {"delivered"}, "To": {msg.To}, "From": {"MG0123456789"}}
	for i := 0; i < 400; i++ {
		resp, err := http.Post(base+"/webhooks/twilio/status", "application/x-www-form-urlencoded", strings.NewReader(flood.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Fatalf("unsigned callback %d: %d, want 403", i, resp.StatusCode)
		}
	}
	if err := fake.SendInbound(context.Background(), base+"/webhooks/twilio/inbound", "+84987654321", "MG0123456789", "STOP", ""); err != nil {
		t.Fatalf("a signed STOP after a flood of unsigned callbacks: %v", err)
	}
}
