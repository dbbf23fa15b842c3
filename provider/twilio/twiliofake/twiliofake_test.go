package twiliofake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"

	"outreach/provider/twilio/twiliofake"
)

const (
	sid   = "AC123"
	token = "authtoken123"
)

func start(t *testing.T) (*twiliofake.Server, string) {
	t.Helper()
	s := twiliofake.New(sid, token)
	base, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, base
}

type answer struct {
	status int
	ctype  string
	body   map[string]any
	raw    string
}

func post(t *testing.T, base, user, pass string, form url.Values) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/2010-04-01/Accounts/"+sid+"/Messages.json", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func form(to, body string) url.Values {
	f := url.Values{"MessagingServiceSid": {"MG1"}}
	if to != "" {
		f.Set("To", to)
	}
	if body != "" {
		f.Set("Body", body)
	}
	return f
}

func TestWireFormat(t *testing.T) {
	t.Parallel()
	s, base := start(t)

	t.Run("a good request answers 201 with Twilio's message fields", func(t *testing.T) {
		f := form("+84912345678", "hello")
		f.Set("From", "+15005550006")
		f.Set("StatusCallback", "https://app.example/cb")
		f.Set("ValidityPeriod", "600")
		a := post(t, base, sid, token, f)
		if a.status != 201 {
			t.Fatalf("status %d: %s", a.status, a.raw)
		}
		b := a.body
		sidv, _ := b["sid"].(string)
		if !strings.HasPrefix(sidv, "SM") || len(sidv) != 34 {
			t.Errorf("sid = %q", sidv)
		}
		want := map[string]any{
			"account_sid": sid, "to": "+84912345678", "from": "+15005550006", "body": "hello",
			"status": "queued", "num_segments": "1", "api_version": "2010-04-01",
			"messaging_service_sid": "MG1", "direction": "outbound-api",
			"uri": "/2010-04-01/Accounts/" + sid + "/Messages/" + sidv + ".json",
		}
		for k, v := range want {
			if b[k] != v {
				t.Errorf("%s = %#v, want %#v", k, b[k], v)
			}
		}
		if v, ok := b["error_code"]; !ok || v != nil {
			t.Errorf("error_code = %#v, want null", v)
		}
		if _, err := time.Parse(time.RFC1123Z, b["date_created"].(string)); err != nil {
			t.Errorf("date_created: %v", err)
		}
		m := s.Messages()[0]
		if m.SID != sidv || m.StatusCallback != "https://app.example/cb" || m.ValidityPeriod != 10*time.Minute {
			t.Errorf("recorded %+v", m)
		}
	})

	t.Run("a wrong password answers Twilio's 401 JSON", func(t *testing.T) {
		a := post(t, base, sid, "nope", form("+84912345678", "x"))
		want := `{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}`
		if a.status != 401 || a.raw != want {
			t.Errorf("got %d %s", a.status, a.raw)
		}
	})

	t.Run("no credentials answer 401", func(t *testing.T) {
		if a := post(t, base, "", "", form("+84912345678", "x")); a.status != 401 {
			t.Errorf("status %d", a.status)
		}
	})

	t.Run("a missing To answers 400 code 21604", func(t *testing.T) {
		a := post(t, base, sid, token, form("", "x"))
		if a.status != 400 || a.body["code"] != float64(21604) || a.body["status"] != float64(400) {
			t.Errorf("got %d %s", a.status, a.raw)
		}
	})

	t.Run("a missing Body answers 400 code 21602", func(t *testing.T) {
		a := post(t, base, sid, token, form("+84912345678", ""))
		if a.status != 400 || a.body["code"] != float64(21602) {
			t.Errorf("got %d %s", a.status, a.raw)
		}
	})

	t.Run("a missing sender answers 400 code 21603", func(t *testing.T) {
		a := post(t, base, sid, token, url.Values{"To": {"+84912345678"}, "Body": {"x"}})
		if a.status != 400 || a.body["code"] != float64(21603) {
			t.Errorf("got %d %s", a.status, a.raw)
		}
	})

	t.Run("an out of range validity period answers 400 code 21624", func(t *testing.T) {
		f := form("+84912345678", "x")
		f.Set("ValidityPeriod", "36001")
		if a := post(t, base, sid, token, f); a.status != 400 || a.body["code"] != float64(21624) {
			t.Errorf("got %d %s", a.status, a.raw)
		}
	})

	t.Run("a body over 1600 characters answers 400 code 21617", func(t *testing.T) {
		if a := post(t, base, sid, token, form("+84912345678", strings.Repeat("a", 1601))); a.status != 400 || a.body["code"] != float64(21617) {
			t.Errorf("got %d %s", a.status, a.raw)
		}
	})

	t.Run("special characters survive the JSON answer", func(t *testing.T) {
		body := "quote\" back\\slash\nnew line\ttab \x01 ư 😀"
		a := post(t, base, sid, token, form("+84912345678", body))
		if a.status != 201 || a.body["body"] != body {
			t.Errorf("got %d %q", a.status, a.body["body"])
		}
	})

	t.Run("an unknown route answers 404 JSON", func(t *testing.T) {
		resp, err := http.Get(base + "/2010-04-01/Accounts/" + sid + "/Calls.json")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
}

func TestFaults(t *testing.T) {
	t.Parallel()

	t.Run("FailNext fails exactly the next n requests", func(t *testing.T) {
		t.Parallel()
		s, base := start(t)
		s.FailNext(2, 429, 20429)
		var got []int
		for range 3 {
			got = append(got, post(t, base, sid, token, form("+84912345678", "x")).status)
		}
		if fmt.Sprint(got) != "[429 429 201]" {
			t.Errorf("statuses %v", got)
		}
		if s.Count() != 1 || s.Attempts() != 3 {
			t.Errorf("count %d attempts %d", s.Count(), s.Attempts())
		}
	})

	t.Run("FailNext with code 0 answers HTML", func(t *testing.T) {
		t.Parallel()
		s, base := start(t)
		s.FailNext(1, 502, 0)
		a := post(t, base, sid, token, form("+84912345678", "x"))
		if a.status != 502 || !strings.HasPrefix(a.ctype, "text/html") || !strings.HasPrefix(a.raw, "<html>") {
			t.Errorf("got %d %s %q", a.status, a.ctype, a.raw)
		}
	})

	t.Run("FailTo always fails one number and spares the others", func(t *testing.T) {
		t.Parallel()
		s, base := start(t)
		s.FailTo("+84900000001", 400, 21610)
		for range 2 {
			if a := post(t, base, sid, token, form("+84900000001", "x")); a.status != 400 || a.body["code"] != float64(21610) {
				t.Fatalf("got %d %s", a.status, a.raw)
			}
		}
		if a := post(t, base, sid, token, form("+84900000002", "x")); a.status != 201 {
			t.Fatalf("other number: %d", a.status)
		}
		s.FailTo("+84900000001", 0, 0)
		if a := post(t, base, sid, token, form("+84900000001", "x")); a.status != 201 {
			t.Fatalf("after removing the rule: %d", a.status)
		}
	})

	t.Run("FailRate fails about the given fraction", func(t *testing.T) {
		t.Parallel()
		s, base := start(t)
		s.FailRate(0.3, 503, 20503)
		fails := 0
		for range 400 {
			if post(t, base, sid, token, form("+84912345678", "x")).status == 503 {
				fails++
			}
		}
		if fails < 80 || fails > 160 {
			t.Errorf("%d of 400 failed, want about 120", fails)
		}
		s.FailRate(0, 0, 0)
		if a := post(t, base, sid, token, form("+84912345678", "x")); a.status != 201 {
			t.Errorf("after FailRate(0): %d", a.status)
		}
	})

	t.Run("SetDown answers 503 HTML until it is lifted", func(t *testing.T) {
		t.Parallel()
		s, base := start(t)
		s.SetDown(true)
		a := post(t, base, sid, token, form("+84912345678", "x"))
		if a.status != 503 || !strings.HasPrefix(a.ctype, "text/html") {
			t.Errorf("got %d %s", a.status, a.ctype)
		}
		s.SetDown(false)
		if a := post(t, base, sid, token, form("+84912345678", "x")); a.status != 201 {
			t.Errorf("after SetDown(false): %d", a.status)
		}
	})

	t.Run("SetLatency delays the answer", func(t *testing.T) {
		t.Parallel()
		s, base := start(t)
		s.SetLatency(100 * time.Millisecond)
		t0 := time.Now()
		post(t, base, sid, token, form("+84912345678", "x"))
		if d := time.Since(t0); d < 100*time.Millisecond {
			t.Errorf("answered after %v", d)
		}
	})

	t.Run("Reset forgets messages and faults", func(t *testing.T) {
		t.Parallel()
		s, base := start(t)
		post(t, base, sid, token, form("+84912345678", "x"))
		s.FailTo("+84912345678", 400, 21211)
		s.SetDown(true)
		s.Reset()
		if s.Count() != 0 || len(s.Messages()) != 0 || s.CountTo("+84912345678") != 0 {
			t.Fatal("Reset kept messages")
		}
		if a := post(t, base, sid, token, form("+84912345678", "x")); a.status != 201 {
			t.Errorf("after Reset: %d", a.status)
		}
	})
}

func TestCountingUnderConcurrency(t *testing.T) {
	t.Parallel()
	for _, record := range []bool{true, false} {
		t.Run(fmt.Sprintf("every message is counted with recording %v", record), func(t *testing.T) {
			t.Parallel()
			s := twiliofake.New(sid, token)
			var hooked sync.Map
			s.OnMessage = func(m twiliofake.Message) { hooked.Store(m.SID, m.To) } // before serving
			base, err := s.Start()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			s.RecordBodies(record)
			const workers, per = 12, 30
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						if a := post(t, base, sid, token, form(fmt.Sprintf("+8491000%04d", w%4), "x")); a.status != 201 {
							t.Errorf("status %d", a.status)
							return
						}
					}
				}()
			}
			wg.Wait()
			if s.Count() != workers*per {
				t.Errorf("count = %d", s.Count())
			}
			for i := range 4 {
				if n := s.CountTo(fmt.Sprintf("+8491000%04d", i)); n != workers*per/4 {
					t.Errorf("CountTo #%d = %d", i, n)
				}
			}
			wantRecorded := 0
			if record {
				wantRecorded = workers * per
			}
			if n := len(s.Messages()); n != wantRecorded {
				t.Errorf("recorded %d, want %d", n, wantRecorded)
			}
			// The hook runs after the answer is flushed: wait for the last ones.
			n := 0
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				n = 0
				hooked.Range(func(any, any) bool { n++; return true })
				if n == workers*per {
					break
				}
			}
			if n != workers*per {
				t.Errorf("OnMessage saw %d distinct sids", n)
			}
		})
	}
}

func TestSegments(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		body string
		enc  string
		segs int
	}{
		{"160 plain letters fit one GSM-7 segment", strings.Repeat("a", 160), "GSM-7", 1},
		{"161 plain letters need two", strings.Repeat("a", 161), "GSM-7", 2},
		{"306 plain letters still fit two", strings.Repeat("a", 306), "GSM-7", 2},
		{"307 plain letters need three", strings.Repeat("a", 307), "GSM-7", 3},
		{"80 euro signs cost two septets each and fit one", strings.Repeat("€", 80), "GSM-7", 1},
		{"81 euro signs need two", strings.Repeat("€", 81), "GSM-7", 2},
		{"Xin chào stays GSM-7", "Xin chào", "GSM-7", 1},
		{"70 Vietnamese ư fit one UCS-2 segment", strings.Repeat("ư", 70), "UCS-2", 1},
		{"71 need two", strings.Repeat("ư", 71), "UCS-2", 2},
		{"134 fit two", strings.Repeat("ư", 134), "UCS-2", 2},
		{"135 need three", strings.Repeat("ư", 135), "UCS-2", 3},
		{"an emoji costs two UTF-16 units", strings.Repeat("ư", 69) + "😀", "UCS-2", 2},
		{"a backtick is not GSM-7", "`", "UCS-2", 1},
		{"an ESC pair is not split across parts", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152), "GSM-7", 3},
		{"a surrogate pair is not split across parts", strings.Repeat("ư", 66) + "😀" + strings.Repeat("ư", 66), "UCS-2", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if enc := twiliofake.Encoding(tc.body); enc != tc.enc {
				t.Errorf("encoding = %s, want %s", enc, tc.enc)
			}
			if n := twiliofake.NumSegments(tc.body); n != tc.segs {
				t.Errorf("segments = %d, want %d", n, tc.segs)
			}
		})
	}
}

func TestSignatures(t *testing.T) {
	t.Parallel()

	t.Run("Sign agrees with twilio-go's validator", func(t *testing.T) {
		s := twiliofake.New(sid, token)
		u := "https://outreach.example/webhooks/twilio/status?tenant=a"
		f := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "To": {"+84912345678"}}
		sig := s.Sign(u, f)
		v := client.NewRequestValidator(token)
		params := map[string]string{}
		for k := range f {
			params[k] = f.Get(k)
		}
		if !v.Validate(u, params, sig) {
			t.Error("validator rejected the fake's signature")
		}
		params["MessageStatus"] = "failed"
		if v.Validate(u, params, sig) {
			t.Error("validator accepted a tampered form")
		}
	})

	t.Run("SendStatus posts a signed callback to the message's URL", func(t *testing.T) {
		s, base := start(t)
		var got url.Values
		var sig, path string
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			got, sig, path = r.PostForm, r.Header.Get("X-Twilio-Signature"), r.URL.Path
		}))
		t.Cleanup(app.Close)
		cb := app.URL + "/webhooks/twilio/status"
		post(t, base, sid, token, url.Values{"To": {"+84912345678"}, "Body": {"x"}, "From": {"+15005550006"}, "StatusCallback": {cb}})
		m := s.Messages()[0]
		if err := s.SendStatusError(context.Background(), m, "undelivered", "30003", ""); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{
			"MessageSid": m.SID, "SmsSid": m.SID, "MessageStatus": "undelivered", "SmsStatus": "undelivered",
			"AccountSid": sid, "From": "+15005550006", "To": "+84912345678", "ApiVersion": "2010-04-01", "ErrorCode": "30003",
		} {
			if got.Get(k) != want {
				t.Errorf("%s = %q, want %q", k, got.Get(k), want)
			}
		}
		if path != "/webhooks/twilio/status" || sig != s.Sign(cb, got) {
			t.Errorf("path %q sig %q", path, sig)
		}
	})

	t.Run("SendStatus can deliver to a local address while signing the public URL", func(t *testing.T) {
		s := twiliofake.New(sid, token)
		var got url.Values
		var sig string
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			got, sig = r.PostForm, r.Header.Get("X-Twilio-Signature")
		}))
		t.Cleanup(app.Close)
		public := "https://outreach.example/webhooks/twilio/status"
		m := twiliofake.Message{SID: "SM1", To: "+84912345678", StatusCallback: public}
		if err := s.SendStatus(context.Background(), m, "delivered", app.URL); err != nil {
			t.Fatal(err)
		}
		if got.Get("MessageStatus") != "delivered" || got.Has("ErrorCode") {
			t.Errorf("form %v", got)
		}
		if sig != twiliofake.Sign(token, public, got) {
			t.Error("signature not computed over the public callback URL")
		}
	})

	t.Run("SendStatus reports a non-2xx answer", func(t *testing.T) {
		s := twiliofake.New(sid, token)
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(403) }))
		t.Cleanup(app.Close)
		m := twiliofake.Message{SID: "SM1", StatusCallback: app.URL + "/cb"}
		if err := s.SendStatus(context.Background(), m, "sent", ""); err == nil {
			t.Error("no error for a 403")
		}
		if err := s.SendStatus(context.Background(), twiliofake.Message{SID: "SM1"}, "sent", ""); err == nil {
			t.Error("no error without a StatusCallback")
		}
	})

	t.Run("SendInbound posts a signed reply", func(t *testing.T) {
		s := twiliofake.New(sid, token)
		var got url.Values
		var sig string
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			got, sig = r.PostForm, r.Header.Get("X-Twilio-Signature")
		}))
		t.Cleanup(app.Close)
		hook := app.URL + "/webhooks/twilio/inbound"
		if err := s.SendInbound(context.Background(), hook, "+84912345678", "+15005550006", "STOP", ""); err != nil {
			t.Fatal(err)
		}
		if got.Get("Body") != "STOP" || got.Get("From") != "+84912345678" || !strings.HasPrefix(got.Get("MessageSid"), "SM") {
			t.Errorf("form %v", got)
		}
		if sig != s.Sign(hook, got) {
			t.Error("bad signature")
		}
	})
}

func BenchmarkFake(b *testing.B) {
	s := twiliofake.New(sid, token)
	s.RecordBodies(false)
	base, err := s.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	body := form("+84912345678", "QC: khuyến mãi").Encode()
	target := base + "/2010-04-01/Accounts/" + sid + "/Messages.json"
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(sid, token)
			resp, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
