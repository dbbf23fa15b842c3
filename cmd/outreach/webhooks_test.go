package main

import (
	"context"
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
	}
	getenv := func(k string) string { return vars[k] }
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
	c.json("POST", "/v1/campaigns/"+camp.ID+"/start", nil, nil)
	deadline := time.Now().Add(20 * time.Second)
	for fake.Count() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the fake saw %d messages, want 2", fake.Count())
		}
		time.Sleep(50 * time.Millisecond)
	}
	msg := fake.Messages()[0]
	if msg.StatusCallback != base+"/webhooks/twilio/status" {
		t.Fatalf("StatusCallback = %q", msg.StatusCallback)
	}
	delivered := func() int64 {
		var s struct{ Deliveries map[string]int64 }
		c.do("GET", "/v1/campaigns/"+camp.ID+"/stats", "", nil, &s)
		return s.Deliveries["delivered"]
	}
	waitDelivered := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for delivered() != want {
			if time.Now().After(deadline) {
				t.Fatalf("delivered = %d, want %d", delivered(), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

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
	time.Sleep(200 * time.Millisecond)
	if n := delivered(); n != 0 {
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
}
