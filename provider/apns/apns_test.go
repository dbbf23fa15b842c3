package apns_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"outreach/provider"
	"outreach/provider/apns"
	"outreach/provider/apns/apnsfake"
)

const topic = "vn.example.outreach"

var keyPEM = apnsfake.GenerateKeyPEM()

func config(url string, pool *x509.CertPool) apns.Config {
	return apns.Config{KeyPEM: keyPEM, KeyID: "ABC123DEFG", TeamID: "DEF123GHIJ", Topic: topic, Host: url, RootCAs: pool}
}

func setup(t testing.TB, timeout time.Duration) (*apns.Client, *apnsfake.Server) {
	t.Helper()
	srv := apnsfake.New()
	url, pool, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	cfg := config(url, pool)
	cfg.Timeout = timeout
	c, err := apns.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, srv
}

func asProviderError(t *testing.T, err error) *provider.Error {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got nil")
	}
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *provider.Error", err, err)
	}
	if pe.Provider != "apns" {
		t.Errorf("Provider = %q, want apns", pe.Provider)
	}
	return pe
}

func TestClient(t *testing.T) {
	t.Parallel()

	t.Run("it is named apns and satisfies provider.PushSender", func(t *testing.T) {
		t.Parallel()
		c, _ := setup(t, 0)
		var ps provider.PushSender = c
		if ps.Name() != "apns" {
			t.Fatalf("Name() = %q", ps.Name())
		}
	})

	t.Run("an urgent push reaches the fake with topic title body data priority 10 and an expiration", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		before := time.Now()
		res, err := c.SendPush(context.Background(), provider.Push{
			Platform: "apns", Token: "aabbcc01", Title: "Exposure alert", Body: "Xin chào — get tested",
			Data: map[string]string{"campaign": "c1", "deeplink": "app://alert/7"}, Urgent: true, TTL: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		msgs := srv.Messages()
		if len(msgs) != 1 {
			t.Fatalf("fake recorded %d messages", len(msgs))
		}
		m := msgs[0]
		if res.MessageID == "" || res.MessageID != m.ApnsID {
			t.Errorf("MessageID = %q, fake apns-id %q", res.MessageID, m.ApnsID)
		}
		if m.Token != "aabbcc01" || m.Topic != topic || m.Title != "Exposure alert" || m.Body != "Xin chào — get tested" {
			t.Errorf("fields: %+v", m)
		}
		if m.Priority != 10 || m.PushType != "alert" {
			t.Errorf("priority %d push type %q, want 10 alert", m.Priority, m.PushType)
		}
		if len(m.Data) != 2 || m.Data["campaign"] != "c1" || m.Data["deeplink"] != "app://alert/7" {
			t.Errorf("data = %v", m.Data)
		}
		want := before.Add(time.Hour).Unix()
		if m.Expiration < want-1 || m.Expiration > want+5 {
			t.Errorf("expiration %d, want about %d", m.Expiration, want)
		}
		if strings.Count(m.Bearer, ".") != 2 {
			t.Errorf("bearer %q is not a JWT", m.Bearer)
		}
	})

	t.Run("a non-urgent alert is sent with priority 5 and no expiration when TTL is zero", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "aabbcc02", Title: "Offer", Body: "1 GB free"}); err != nil {
			t.Fatal(err)
		}
		m := srv.Messages()[0]
		if m.Priority != 5 || m.PushType != "alert" || m.Expiration != 0 || m.Title != "Offer" {
			t.Errorf("message %+v", m)
		}
	})

	t.Run("a collapse id goes as apns-collapse-id; one longer than APNs takes is left off rather than refused", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		ctx := context.Background()
		long := strings.Repeat("x", provider.MaxCollapseIDBytes+1)
		for tok, id := range map[string]string{"aabbcc10": "c1.42", "aabbcc11": "", "aabbcc12": long} {
			if _, err := c.SendPush(ctx, provider.Push{Token: tok, Title: "Bluezone", Body: "Cài Bluezone", CollapseID: id}); err != nil {
				t.Fatalf("%s: %v", tok, err)
			}
		}
		got := map[string]string{}
		for _, m := range srv.Messages() {
			got[m.Token] = m.CollapseID
		}
		if want := map[string]string{"aabbcc10": "c1.42", "aabbcc11": "", "aabbcc12": ""}; !maps.Equal(got, want) {
			t.Errorf("collapse ids %v, want %v", got, want)
		}
	})

	t.Run("a push without title or body goes out as a background push at priority 5", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "aabbcc03", Data: map[string]string{"sync": "1"}, Urgent: true}); err != nil {
			t.Fatal(err)
		}
		m := srv.Messages()[0]
		if m.PushType != "background" || m.Priority != 5 || !m.ContentAvailable || m.Data["sync"] != "1" {
			t.Errorf("message %+v", m)
		}
	})

	t.Run("a data key named aps cannot replace the alert", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "aabbcc04", Title: "T", Data: map[string]string{"aps": "x", "k": "v"}}); err != nil {
			t.Fatal(err)
		}
		m := srv.Messages()[0]
		var p map[string]any
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if _, ok := p["aps"].(map[string]any); !ok || m.Title != "T" || m.Data["k"] != "v" {
			t.Errorf("payload %s", m.Payload)
		}
	})

	t.Run("one provider token is signed once and reused across many sends", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		for i := range 50 {
			if _, err := c.SendPush(context.Background(), provider.Push{Token: fmt.Sprintf("tok%d", i), Title: "t"}); err != nil {
				t.Fatal(err)
			}
		}
		if got := srv.ProviderTokens(); got != 1 {
			t.Fatalf("distinct provider tokens = %d, want 1", got)
		}
	})

	t.Run("100 parallel sends are all recorded over one provider token", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		const n = 100
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				_, err := c.SendPush(context.Background(), provider.Push{Token: fmt.Sprintf("par%d", i), Title: "t", Body: "b", Urgent: i%2 == 0})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if srv.Count() != n {
			t.Fatalf("count = %d, want %d", srv.Count(), n)
		}
		for i := range n {
			if got := srv.CountToken(fmt.Sprintf("par%d", i)); got != 1 {
				t.Fatalf("par%d recorded %d times", i, got)
			}
		}
		if srv.ProviderTokens() != 1 {
			t.Fatalf("distinct provider tokens = %d", srv.ProviderTokens())
		}
	})
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()

	cases := []struct {
		name   string
		inject func(*apnsfake.Server)
		class  provider.Class
		code   string
	}{
		{"an unregistered device is TokenInvalid", func(s *apnsfake.Server) { s.Unregister("tok") }, provider.TokenInvalid, "Unregistered"},
		{"a bad device token is TokenInvalid", func(s *apnsfake.Server) { s.BadToken("tok") }, provider.TokenInvalid, "BadDeviceToken"},
		{"a token for another topic is TokenInvalid", func(s *apnsfake.Server) { s.FailRate(1, 400, "DeviceTokenNotForTopic") }, provider.TokenInvalid, "DeviceTokenNotForTopic"},
		{"an expired device token (410) is TokenInvalid", func(s *apnsfake.Server) { s.FailRate(1, 410, "ExpiredToken") }, provider.TokenInvalid, "ExpiredToken"},
		{"too many requests is Transient", func(s *apnsfake.Server) { s.FailRate(1, 429, "TooManyRequests") }, provider.Transient, "TooManyRequests"},
		{"too many provider token updates is Transient", func(s *apnsfake.Server) { s.FailRate(1, 429, "TooManyProviderTokenUpdates") }, provider.Transient, "TooManyProviderTokenUpdates"},
		{"an internal server error is Transient", func(s *apnsfake.Server) { s.FailRate(1, 500, "InternalServerError") }, provider.Transient, "InternalServerError"},
		{"service unavailable is Transient", func(s *apnsfake.Server) { s.FailRate(1, 503, "ServiceUnavailable") }, provider.Transient, "ServiceUnavailable"},
		// The deployment's key, refused: retried behind the breaker until fixed.
		{"an invalid provider token is Transient", func(s *apnsfake.Server) { s.FailRate(1, 403, "InvalidProviderToken") }, provider.Transient, "InvalidProviderToken"},
		{"an expired provider token is Transient", func(s *apnsfake.Server) { s.FailRate(1, 403, "ExpiredProviderToken") }, provider.Transient, "ExpiredProviderToken"},
		{"a bad topic is Permanent", func(s *apnsfake.Server) { s.FailRate(1, 400, "BadTopic") }, provider.Permanent, "BadTopic"},
		{"a payload too large is Permanent", func(s *apnsfake.Server) { s.FailRate(1, 413, "PayloadTooLarge") }, provider.Permanent, "PayloadTooLarge"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t, 0)
			tc.inject(srv)
			_, err := c.SendPush(context.Background(), provider.Push{Token: "tok", Title: "t", Body: "b"})
			pe := asProviderError(t, err)
			if pe.Class != tc.class || pe.Code != tc.code {
				t.Fatalf("got class=%v code=%q (%v); want %v %q", pe.Class, pe.Code, err, tc.class, tc.code)
			}
			if provider.ClassOf(err) != tc.class || provider.CodeOf(err) != tc.code {
				t.Fatal("provider helpers disagree with the error")
			}
			if srv.Count() != 0 || srv.Attempts() != 1 {
				t.Fatalf("recorded %d, attempts %d; want 0 and exactly 1 (no retries)", srv.Count(), srv.Attempts())
			}
		})
	}

	t.Run("an unregistered answer reports when the device went away", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		srv.Unregister("gone")
		_, err := c.SendPush(context.Background(), provider.Push{Token: "gone", Title: "t"})
		if pe := asProviderError(t, err); !strings.Contains(pe.Message, "Unregistered since ") {
			t.Fatalf("message %q lacks the timestamp", pe.Message)
		}
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "alive", Title: "t"}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a payload over 4 KB is rejected by the fake as Permanent", func(t *testing.T) {
		t.Parallel()
		c, _ := setup(t, 0)
		_, err := c.SendPush(context.Background(), provider.Push{Token: "tok", Title: "t", Body: strings.Repeat("x", 5000)})
		if pe := asProviderError(t, err); pe.Class != provider.Permanent || pe.Code != "PayloadTooLarge" {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("a server that resets streams is Transient and sends resume when it is back", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		srv.SetDown(true)
		const secret = "d00d5ecre7"
		_, err := c.SendPush(context.Background(), provider.Push{Token: secret, Title: "t"})
		if pe := asProviderError(t, err); pe.Class != provider.Transient {
			t.Fatalf("class %v: %v", pe.Class, err)
		}
		// The request's URL carries the token: the error, which reaches
		// logs and test-send answers, does not.
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows the device token: %v", err)
		}
		srv.SetDown(false)
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "tok", Title: "t"}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a token that cannot be put in a URL is TokenInvalid and never sent", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		_, err := c.SendPush(context.Background(), provider.Push{Token: "abab%z", Title: "t"})
		if pe := asProviderError(t, err); pe.Class != provider.TokenInvalid || pe.Code != "BadDeviceToken" || len(srv.Messages()) != 0 {
			t.Errorf("%v, %d sent: want TokenInvalid BadDeviceToken and nothing sent", err, len(srv.Messages()))
		}
	})

	t.Run("an unreachable host is Transient", func(t *testing.T) {
		t.Parallel()
		srv := apnsfake.New()
		url, pool, err := srv.Start()
		if err != nil {
			t.Fatal(err)
		}
		srv.Close()
		c, err := apns.New(config(url, pool))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.SendPush(context.Background(), provider.Push{Token: "tok", Title: "t"})
		if pe := asProviderError(t, err); pe.Class != provider.Transient {
			t.Fatalf("class %v: %v", pe.Class, err)
		}
	})

	t.Run("a certificate the client does not trust is Transient", func(t *testing.T) {
		t.Parallel()
		srv := apnsfake.New()
		url, _, err := srv.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		c, err := apns.New(config(url, x509.NewCertPool()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.SendPush(context.Background(), provider.Push{Token: "tok", Title: "t"})
		if provider.ClassOf(err) != provider.Transient || srv.Attempts() != 0 {
			t.Fatalf("got %v, attempts %d", err, srv.Attempts())
		}
	})

	t.Run("a slow server hits the configured timeout as Transient", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 150*time.Millisecond)
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "warm", Title: "t"}); err != nil {
			t.Fatal(err)
		}
		srv.SetLatency(2 * time.Second)
		start := time.Now()
		_, err := c.SendPush(context.Background(), provider.Push{Token: "tok", Title: "t"})
		if pe := asProviderError(t, err); pe.Class != provider.Transient {
			t.Fatalf("class %v: %v", pe.Class, err)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error does not wrap DeadlineExceeded: %v", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("took %v, timeout not applied", el)
		}
	})

	t.Run("a cancelled caller context is Transient and wraps context.Canceled", func(t *testing.T) {
		t.Parallel()
		c, _ := setup(t, 0)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.SendPush(ctx, provider.Push{Token: "tok", Title: "t"})
		if provider.ClassOf(err) != provider.Transient || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("an empty device token is Permanent and never sent", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		_, err := c.SendPush(context.Background(), provider.Push{Title: "t"})
		if pe := asProviderError(t, err); pe.Class != provider.Permanent {
			t.Fatalf("class %v", pe.Class)
		}
		if srv.Attempts() != 0 {
			t.Fatal("the fake was contacted")
		}
	})

	t.Run("half the sends fail under a 50 percent fail rate", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		srv.FailRate(0.5, http.StatusServiceUnavailable, "ServiceUnavailable")
		failed := 0
		for i := range 200 {
			if _, err := c.SendPush(context.Background(), provider.Push{Token: fmt.Sprintf("t%d", i), Title: "t"}); err != nil {
				if provider.ClassOf(err) != provider.Transient {
					t.Fatal(err)
				}
				failed++
			}
		}
		if failed < 50 || failed > 150 || srv.Count() != 200-failed {
			t.Fatalf("failed %d of 200, recorded %d", failed, srv.Count())
		}
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1DER, _ := x509.MarshalECPrivateKey(ecKey)

	cases := []struct {
		name   string
		mutate func(*apns.Config)
	}{
		{"it rejects a missing key", func(c *apns.Config) { c.KeyPEM = nil }},
		{"it rejects text that is not PEM", func(c *apns.Config) { c.KeyPEM = []byte("not a key") }},
		{"it rejects an RSA key", func(c *apns.Config) {
			c.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER})
		}},
		{"it rejects a SEC1 EC key that is not PKCS#8", func(c *apns.Config) {
			c.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1DER})
		}},
		{"it rejects a missing key id", func(c *apns.Config) { c.KeyID = "" }},
		{"it rejects a missing team id", func(c *apns.Config) { c.TeamID = "" }},
		{"it rejects a missing topic", func(c *apns.Config) { c.Topic = "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := config("https://127.0.0.1:1", nil)
			tc.mutate(&cfg)
			if _, err := apns.New(cfg); err == nil {
				t.Fatal("want error")
			}
		})
	}
	t.Run("it accepts a valid config with the default host", func(t *testing.T) {
		t.Parallel()
		cfg := config("", nil)
		if _, err := apns.New(cfg); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkSendPush(b *testing.B) {
	c, _ := setup(b, 0)
	ctx := context.Background()
	m := provider.Push{Token: "bench-token", Title: "Hello", Body: "World", Data: map[string]string{"k": "v"}, Urgent: true, TTL: time.Hour}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.SendPush(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
