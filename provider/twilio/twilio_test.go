package twilio_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"outreach/provider"
	"outreach/provider/twilio"
	"outreach/provider/twilio/twiliofake"
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "authtoken0123456789"
	testMSID  = "MG0123456789abcdef0123456789abcdef"
)

func startFake(t testing.TB) (*twiliofake.Server, string) {
	t.Helper()
	fake := twiliofake.New(testSID, testToken)
	base, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	return fake, base
}

func newClient(t testing.TB, cfg twilio.Config) *twilio.Client {
	t.Helper()
	if cfg.AccountSID == "" {
		cfg.AccountSID = testSID
	}
	if cfg.AuthToken == "" {
		cfg.AuthToken = testToken
	}
	if cfg.From == "" && cfg.MessagingServiceSID == "" {
		cfg.MessagingServiceSID = testMSID
	}
	c, err := twilio.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantClass fails unless err is a *provider.Error of class want.
func wantClass(t *testing.T, err error, want provider.Class) *provider.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want a %v *provider.Error", want)
	}
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err %T %v is not a *provider.Error", err, err)
	}
	if pe.Class != want {
		t.Fatalf("class = %v, want %v (err: %v)", pe.Class, want, err)
	}
	if pe.Provider != "twilio" {
		t.Errorf("provider = %q, want twilio", pe.Provider)
	}
	return pe
}

func TestNew(t *testing.T) {
	t.Parallel()
	ok := twilio.Config{AccountSID: "AC123", AuthToken: "tok123", From: "+15005550006"}
	cases := []struct {
		name string
		edit func(*twilio.Config)
		ok   bool
	}{
		{"accepts a From sender", func(*twilio.Config) {}, true},
		{"accepts a Messaging Service instead of From", func(c *twilio.Config) { c.From = ""; c.MessagingServiceSID = "MG1" }, true},
		{"rejects a missing account SID", func(c *twilio.Config) { c.AccountSID = "" }, false},
		{"rejects an account SID with symbols", func(c *twilio.Config) { c.AccountSID = "AC-1" }, false},
		{"rejects a missing auth token", func(c *twilio.Config) { c.AuthToken = "" }, false},
		{"rejects an auth token with symbols", func(c *twilio.Config) { c.AuthToken = "tok:en" }, false},
		{"rejects a config with neither From nor Messaging Service", func(c *twilio.Config) { c.From = "" }, false},
		{"rejects a validity period over ten hours", func(c *twilio.Config) { c.ValidityPeriod = 11 * time.Hour }, false},
		{"rejects a relative base URL", func(c *twilio.Config) { c.BaseURL = "127.0.0.1:8080" }, false},
		{"rejects a negative timeout", func(c *twilio.Config) { c.Timeout = -time.Second }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			c, err := twilio.New(cfg)
			if tc.ok && err != nil {
				t.Fatalf("New: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("New accepted an invalid config")
			}
			if tc.ok && c.Name() != "twilio" {
				t.Errorf("Name = %q", c.Name())
			}
		})
	}
}

func TestSendSMS(t *testing.T) {
	t.Parallel()

	t.Run("every field reaches Twilio and the sid and segments come back", func(t *testing.T) {
		t.Parallel()
		fake, base := startFake(t)
		c := newClient(t, twilio.Config{BaseURL: base, MessagingServiceSID: testMSID})
		res, err := c.SendSMS(context.Background(), provider.SMS{
			To:             "+84912345678",
			Body:           "Xin chào: cài ứng dụng ngay hôm nay",
			ValidityPeriod: 10 * time.Minute,
			StatusCallback: "https://outreach.example/webhooks/twilio/status",
		})
		if err != nil {
			t.Fatal(err)
		}
		msgs := fake.Messages()
		if len(msgs) != 1 {
			t.Fatalf("fake got %d messages", len(msgs))
		}
		m := msgs[0]
		if res.MessageID != m.SID || !strings.HasPrefix(res.MessageID, "SM") || len(res.MessageID) != 34 {
			t.Errorf("MessageID = %q, fake sid %q", res.MessageID, m.SID)
		}
		if res.Segments != 1 || m.Segments != 1 {
			t.Errorf("segments = %d (fake %d), want 1", res.Segments, m.Segments)
		}
		if m.To != "+84912345678" || m.MessagingServiceSID != testMSID || m.From != "" {
			t.Errorf("sender/recipient = %+v", m)
		}
		if m.Body != "Xin chào: cài ứng dụng ngay hôm nay" {
			t.Errorf("body = %q", m.Body)
		}
		if m.StatusCallback != "https://outreach.example/webhooks/twilio/status" {
			t.Errorf("status callback = %q", m.StatusCallback)
		}
		if m.ValidityPeriod != 10*time.Minute {
			t.Errorf("validity = %v, want 10m", m.ValidityPeriod)
		}
	})

	t.Run("a From sender is sent and the validity period defaults to an hour", func(t *testing.T) {
		t.Parallel()
		fake, base := startFake(t)
		c := newClient(t, twilio.Config{BaseURL: base, From: "+15005550006"})
		if _, err := c.SendSMS(context.Background(), provider.SMS{To: "+84900000001", Body: "hi"}); err != nil {
			t.Fatal(err)
		}
		m := fake.Messages()[0]
		if m.From != "+15005550006" || m.MessagingServiceSID != "" {
			t.Errorf("from = %q msid = %q", m.From, m.MessagingServiceSID)
		}
		if m.ValidityPeriod != time.Hour {
			t.Errorf("validity = %v, want 1h", m.ValidityPeriod)
		}
		if m.StatusCallback != "" {
			t.Errorf("status callback sent although unset: %q", m.StatusCallback)
		}
	})

	t.Run("the configured validity period applies and is clamped to ten hours", func(t *testing.T) {
		t.Parallel()
		fake, base := startFake(t)
		c := newClient(t, twilio.Config{BaseURL: base, ValidityPeriod: 5 * time.Minute})
		ctx := context.Background()
		if _, err := c.SendSMS(ctx, provider.SMS{To: "+84900000001", Body: "a"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.SendSMS(ctx, provider.SMS{To: "+84900000001", Body: "b", ValidityPeriod: 48 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		msgs := fake.Messages()
		if msgs[0].ValidityPeriod != 5*time.Minute || msgs[1].ValidityPeriod != 10*time.Hour {
			t.Errorf("validity = %v, %v; want 5m, 10h", msgs[0].ValidityPeriod, msgs[1].ValidityPeriod)
		}
	})

	t.Run("a long Vietnamese message reports its UCS-2 segments", func(t *testing.T) {
		t.Parallel()
		_, base := startFake(t)
		c := newClient(t, twilio.Config{BaseURL: base})
		res, err := c.SendSMS(context.Background(), provider.SMS{To: "+84900000001", Body: strings.Repeat("ư", 135)})
		if err != nil {
			t.Fatal(err)
		}
		if res.Segments != 3 {
			t.Errorf("segments = %d, want 3", res.Segments)
		}
	})

	t.Run("a base URL with a path prefix is honoured", func(t *testing.T) {
		t.Parallel()
		fake := twiliofake.New(testSID, testToken)
		srv := httptest.NewServer(http.StripPrefix("/twilio", fake.Handler()))
		t.Cleanup(srv.Close)
		c := newClient(t, twilio.Config{BaseURL: srv.URL + "/twilio/"})
		if _, err := c.SendSMS(context.Background(), provider.SMS{To: "+84900000001", Body: "hi"}); err != nil {
			t.Fatal(err)
		}
		if fake.Count() != 1 {
			t.Errorf("count = %d", fake.Count())
		}
	})

	t.Run("a caller-supplied HTTP client's transport is used", func(t *testing.T) {
		t.Parallel()
		fake, base := startFake(t)
		var mu sync.Mutex
		var seen []string
		rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			seen = append(seen, r.URL.String())
			mu.Unlock()
			return http.DefaultTransport.RoundTrip(r)
		})
		c := newClient(t, twilio.Config{BaseURL: base, HTTPClient: &http.Client{Transport: rt}})
		if _, err := c.SendSMS(context.Background(), provider.SMS{To: "+84900000001", Body: "hi"}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		want := base + "/2010-04-01/Accounts/" + testSID + "/Messages.json"
		if len(seen) != 1 || seen[0] != want {
			t.Errorf("requests = %v, want [%s]", seen, want)
		}
		if fake.Count() != 1 {
			t.Errorf("count = %d", fake.Count())
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestSendSMSErrors(t *testing.T) {
	t.Parallel()
	msg := provider.SMS{To: "+84912345678", Body: "Khuyến mãi"}

	t.Run("a wrong auth token is a transient 20003: the account, not the message, is wrong", func(t *testing.T) {
		t.Parallel()
		fake, base := startFake(t)
		c := newClient(t, twilio.Config{BaseURL: base, AuthToken: "wrongtoken"})
		_, err := c.SendSMS(context.Background(), msg)
		pe := wantClass(t, err, provider.Transient)
		if pe.Code != "20003" || pe.Message != "Authenticate" {
			t.Errorf("code %q message %q", pe.Code, pe.Message)
		}
		if fake.Count() != 0 {
			t.Error("unauthenticated message was accepted")
		}
	})

	t.Run("an unsubscribed recipient (21610) is opted out", func(t *testing.T) {
		t.Parallel()
		fake, base := startFake(t)
		fake.FailTo(msg.To, 400, 21610)
		c := newClient(t, twilio.Config{BaseURL: base})
		_, err := c.SendSMS(context.Background(), msg)
		pe := wantClass(t, err, provider.OptedOut)
		if provider.CodeOf(err) != "21610" {
			t.Errorf("code = %q", pe.Code)
		}
		// Other recipients still go through.
		if _, err := c.SendSMS(context.Background(), provider.SMS{To: "+84900000002", Body: "x"}); err != nil {
			t.Fatal(err)
		}
	})

	// The account or its sender set up wrong is transient: every message
	// would fail alike, so none is failed for good (the breaker holds them
	// until an operator fixes it). What is wrong with the message is
	// permanent.
	for _, tc := range []struct {
		name   string
		status int
		code   int
		class  provider.Class
	}{
		{"a From that is not the account's (21606) is transient", 400, 21606, provider.Transient},
		{"an invalid From (21212) is transient", 400, 21212, provider.Transient},
		{"a Messaging Service without senders (21703) is transient", 400, 21703, provider.Transient},
		{"an unknown account or service (20404) is transient", 404, 20404, provider.Transient},
		{"a region without permission (21408) is permanent, and may be the setup", 400, 21408, provider.Permanent},
		{"an invalid number (21211) is permanent", 400, 21211, provider.Permanent},
		{"a non-mobile number (21614) is permanent", 400, 21614, provider.Permanent},
		{"an unreachable number (21612) is permanent", 400, 21612, provider.Permanent},
		{"an unknown handset (30005) is permanent", 400, 30005, provider.Permanent},
		{"a landline (30006) is permanent", 400, 30006, provider.Permanent},
		{"any other 4xx code is permanent", 400, 21601, provider.Permanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake, base := startFake(t)
			fake.FailNext(1, tc.status, tc.code)
			c := newClient(t, twilio.Config{BaseURL: base})
			_, err := c.SendSMS(context.Background(), msg)
			pe := wantClass(t, err, tc.class)
			if pe.Code != fmt.Sprint(tc.code) {
				t.Errorf("code = %q, want %d", pe.Code, tc.code)
			}
			if setup := tc.code == 21408; pe.Setup != setup {
				t.Errorf("Setup = %v, want %v", pe.Setup, setup)
			}
		})
	}

	t.Run("a number that is not E.164 is rejected by Twilio as permanent 21211", func(t *testing.T) {
		t.Parallel()
		_, base := startFake(t)
		c := newClient(t, twilio.Config{BaseURL: base})
		_, err := c.SendSMS(context.Background(), provider.SMS{To: "0912345678", Body: "x"})
		if pe := wantClass(t, err, provider.Permanent); pe.Code != "21211" {
			t.Errorf("code = %q", pe.Code)
		}
		// Twilio's message quotes the number; it reaches logs and the
		// delivery's record masked.
		if strings.Contains(err.Error(), "912345") || !strings.Contains(err.Error(), "*******678") {
			t.Errorf("error %q: want the number masked", err)
		}
	})

	transient := []struct {
		name   string
		status int
		code   int
	}{
		{"too many requests (20429 / 429) is transient", 429, 20429},
		{"a plain HTTP 429 with another code is transient", 429, 20001},
		{"a full sender queue (21611) is transient", 400, 21611},
		{"a Twilio 500 is transient", 500, 20500},
		{"a Twilio 503 is transient", 503, 20503},
		{"a non-JSON 502 is transient", 502, 0},
	}
	for _, tc := range transient {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake, base := startFake(t)
			fake.FailNext(1, tc.status, tc.code)
			c := newClient(t, twilio.Config{BaseURL: base})
			_, err := c.SendSMS(context.Background(), msg)
			wantClass(t, err, provider.Transient)
			// The next one goes through on the same pool.
			if _, err := c.SendSMS(context.Background(), msg); err != nil {
				t.Fatalf("retry: %v", err)
			}
		})
	}

	t.Run("an HTML 503 from a load balancer is transient", func(t *testing.T) {
		t.Parallel()
		fake, base := startFake(t)
		fake.SetDown(true)
		c := newClient(t, twilio.Config{BaseURL: base})
		_, err := c.SendSMS(context.Background(), msg)
		pe := wantClass(t, err, provider.Transient)
		if pe.Code != "503" {
			t.Errorf("code = %q, want 503", pe.Code)
		}
		fake.SetDown(false)
		if _, err := c.SendSMS(context.Background(), msg); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	})

	t.Run("a Retry-After header is passed on", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
			fmt.Fprint(w, `{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}`)
		}))
		t.Cleanup(srv.Close)
		c := newClient(t, twilio.Config{BaseURL: srv.URL})
		_, err := c.SendSMS(context.Background(), msg)
		wantClass(t, err, provider.Transient)
		if d := provider.RetryAfterOf(err); d != 7*time.Second {
			t.Errorf("RetryAfter = %v, want 7s", d)
		}
	})

	t.Run("a refused connection is transient because nothing was sent", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c := newClient(t, twilio.Config{BaseURL: "http://" + addr, Timeout: 2 * time.Second})
		_, err = c.SendSMS(context.Background(), msg)
		pe := wantClass(t, err, provider.Transient)
		if !strings.Contains(pe.Error(), "refused") {
			t.Errorf("error does not mention the refusal: %v", pe)
		}
	})

	t.Run("a server that takes the request then hangs past the timeout is ambiguous", func(t *testing.T) {
		t.Parallel()
		fake, base := startFake(t)
		fake.SetLatency(5 * time.Second)
		c := newClient(t, twilio.Config{BaseURL: base, Timeout: 200 * time.Millisecond})
		start := time.Now()
		_, err := c.SendSMS(context.Background(), msg)
		wantClass(t, err, provider.Ambiguous)
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("took %v, timeout not respected", el)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err does not wrap DeadlineExceeded: %v", err)
		}
		// The fake did accept it: this is exactly why it must not be retried blindly.
		if fake.Count() != 1 {
			t.Errorf("fake accepted %d messages, want 1", fake.Count())
		}
	})

	t.Run("a caller's deadline during the answer is ambiguous", func(t *testing.T) {
		t.Parallel()
		fake, base := startFake(t)
		fake.SetLatency(5 * time.Second)
		c := newClient(t, twilio.Config{BaseURL: base, Timeout: time.Minute})
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.SendSMS(ctx, msg)
		wantClass(t, err, provider.Ambiguous)
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("took %v, ctx not respected", el)
		}
	})

	t.Run("a connection reset after the request was read is ambiguous", func(t *testing.T) {
		t.Parallel()
		addr := resetServer(t)
		c := newClient(t, twilio.Config{BaseURL: "http://" + addr, Timeout: 2 * time.Second})
		_, err := c.SendSMS(context.Background(), msg)
		wantClass(t, err, provider.Ambiguous)
	})

	t.Run("a success answer with an unreadable body is ambiguous", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(201)
			fmt.Fprint(w, `{"sid":"SM1","status":"que`)
		}))
		t.Cleanup(srv.Close)
		c := newClient(t, twilio.Config{BaseURL: srv.URL})
		_, err := c.SendSMS(context.Background(), msg)
		wantClass(t, err, provider.Ambiguous)
	})

	t.Run("an already cancelled context is transient and sends nothing", func(t *testing.T) {
		t.Parallel()
		fake, base := startFake(t)
		c := newClient(t, twilio.Config{BaseURL: base})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.SendSMS(ctx, msg)
		wantClass(t, err, provider.Transient)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err does not wrap Canceled: %v", err)
		}
		if fake.Attempts() != 0 {
			t.Errorf("fake saw %d requests", fake.Attempts())
		}
	})

	t.Run("an empty recipient or body is permanent without a request", func(t *testing.T) {
		t.Parallel()
		fake, base := startFake(t)
		c := newClient(t, twilio.Config{BaseURL: base})
		_, err := c.SendSMS(context.Background(), provider.SMS{Body: "x"})
		wantClass(t, err, provider.Permanent)
		_, err = c.SendSMS(context.Background(), provider.SMS{To: "+84900000001"})
		wantClass(t, err, provider.Permanent)
		if fake.Attempts() != 0 {
			t.Errorf("fake saw %d requests", fake.Attempts())
		}
	})
}

// resetServer reads one full HTTP request per connection, then resets it.
func resetServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn) {
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err == nil {
					var buf [4096]byte
					for {
						if _, err := req.Body.Read(buf[:]); err != nil {
							break
						}
					}
				}
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST instead of FIN
				}
				conn.Close()
			}(conn)
		}
	}()
	return ln.Addr().String()
}

func TestSendSMSConcurrently(t *testing.T) {
	t.Parallel()
	t.Run("concurrent sends are all counted once each", func(t *testing.T) {
		fake, base := startFake(t)
		c := newClient(t, twilio.Config{BaseURL: base})
		const workers, per = 16, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers*per)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				to := fmt.Sprintf("+8490000%04d", w)
				for range per {
					if _, err := c.SendSMS(context.Background(), provider.SMS{To: to, Body: "hi"}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if fake.Count() != workers*per {
			t.Errorf("count = %d, want %d", fake.Count(), workers*per)
		}
		for w := range workers {
			if n := fake.CountTo(fmt.Sprintf("+8490000%04d", w)); n != per {
				t.Errorf("worker %d: %d messages, want %d", w, n, per)
			}
		}
	})
}

func BenchmarkSendSMS(b *testing.B) {
	fake, base := startFake(b)
	fake.RecordBodies(false)
	c := newClient(b, twilio.Config{BaseURL: base})
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		m := provider.SMS{To: "+84912345678", Body: "QC: Cài ứng dụng để nhận 1GB data miễn phí. Từ chối: soạn TC gửi 9029"}
		for pb.Next() {
			if _, err := c.SendSMS(context.Background(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if fake.Count() < b.N {
		b.Errorf("fake counted %d of %d", fake.Count(), b.N)
	}
}
