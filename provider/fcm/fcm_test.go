package fcm_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"outreach/provider"
	"outreach/provider/fcm"
	"outreach/provider/fcm/fcmfake"
)

const project = "demo-proj"

// setup starts a fake and a real client pointed at it.
func setup(t testing.TB, timeout time.Duration) (*fcm.Client, *fcmfake.Server) {
	t.Helper()
	srv := fcmfake.New()
	url, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	c, err := fcm.New(context.Background(), fcm.Config{
		CredentialsJSON: srv.ServiceAccountJSON(project),
		Endpoint:        url,
		Timeout:         timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
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
	if pe.Provider != "fcm" {
		t.Errorf("Provider = %q, want fcm", pe.Provider)
	}
	return pe
}

func TestClient(t *testing.T) {
	t.Parallel()

	t.Run("it is named fcm and satisfies provider.PushSender", func(t *testing.T) {
		t.Parallel()
		c, _ := setup(t, 0)
		var ps provider.PushSender = c
		if ps.Name() != "fcm" {
			t.Fatalf("Name() = %q", ps.Name())
		}
		if c.ProjectID() != project {
			t.Fatalf("ProjectID() = %q", c.ProjectID())
		}
	})

	t.Run("an urgent push reaches the fake with title body data HIGH priority and ttl", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		res, err := c.SendPush(context.Background(), provider.Push{
			Platform: "fcm", Token: "tok-urgent", Title: "Exposure alert", Body: "Xin chào — get tested",
			Data: map[string]string{"campaign": "c1", "deeplink": "app://alert/7"}, Urgent: true, TTL: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		msgs := srv.Messages()
		if len(msgs) != 1 {
			t.Fatalf("fake recorded %d messages, want 1", len(msgs))
		}
		m := msgs[0]
		if res.MessageID != m.Name || res.MessageID != "projects/"+project+"/messages/1" {
			t.Errorf("MessageID = %q, fake name %q", res.MessageID, m.Name)
		}
		if m.Project != project || m.Token != "tok-urgent" || m.Title != "Exposure alert" || m.Body != "Xin chào — get tested" {
			t.Errorf("fields: %+v", m)
		}
		if m.Data["campaign"] != "c1" || m.Data["deeplink"] != "app://alert/7" || len(m.Data) != 2 {
			t.Errorf("data = %v", m.Data)
		}
		if m.Priority != "HIGH" {
			t.Errorf("priority = %q, want HIGH", m.Priority)
		}
		if m.TTL != "3600s" {
			t.Errorf("ttl = %q, want 3600s", m.TTL)
		}
		if m.At.IsZero() {
			t.Error("At not set")
		}
	})

	t.Run("a data key FCM reserves is refused as FCM refuses it, permanently", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		_, err := c.SendPush(context.Background(), provider.Push{Token: "tok-reserved", Title: "t", Body: "b",
			Data: map[string]string{"from": "x"}})
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Class != provider.Permanent || pe.Code != "INVALID_ARGUMENT" || len(srv.Messages()) != 0 {
			t.Errorf("send with data key from: %v, %d recorded; want a permanent INVALID_ARGUMENT", err, len(srv.Messages()))
		}
	})

	t.Run("a non-urgent push is sent with NORMAL priority and no ttl when TTL is zero", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "tok-normal", Title: "Offer", Body: "1 GB free"}); err != nil {
			t.Fatal(err)
		}
		m := srv.Messages()[0]
		if m.Priority != "NORMAL" || m.TTL != "" {
			t.Errorf("priority %q ttl %q, want NORMAL and empty", m.Priority, m.TTL)
		}
	})

	t.Run("a data-only push carries no notification", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "tok-data", Data: map[string]string{"k": "v"}}); err != nil {
			t.Fatal(err)
		}
		m := srv.Messages()[0]
		if m.Title != "" || m.Body != "" || m.Data["k"] != "v" {
			t.Errorf("message %+v", m)
		}
	})

	t.Run("a collapse id becomes the Android notification tag and the apns-collapse-id, on a data-only push the header only", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		ctx := context.Background()
		if _, err := c.SendPush(ctx, provider.Push{Token: "tok-tag", Title: "Bluezone", Body: "Cài Bluezone", CollapseID: "c1.42"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.SendPush(ctx, provider.Push{Token: "tok-tag-data", Data: map[string]string{"k": "v"}, CollapseID: "c1.43"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.SendPush(ctx, provider.Push{Token: "tok-untagged", Title: "Bluezone", Body: "Cài Bluezone"}); err != nil {
			t.Fatal(err)
		}
		got := map[string][2]string{}
		for _, m := range srv.Messages() {
			got[m.Token] = [2]string{m.Tag, m.APNSCollapseID}
		}
		want := map[string][2]string{"tok-tag": {"c1.42", "c1.42"}, "tok-tag-data": {"", "c1.43"}, "tok-untagged": {"", ""}}
		for tok, w := range want {
			if got[tok] != w {
				t.Errorf("%s: tag and apns-collapse-id %q, want %q", tok, got[tok], w)
			}
		}
	})

	t.Run("the access token is fetched once and reused across many sends", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		for i := range 50 {
			if _, err := c.SendPush(context.Background(), provider.Push{Token: fmt.Sprintf("tok-%d", i), Title: "t"}); err != nil {
				t.Fatal(err)
			}
		}
		if got := srv.TokenFetches(); got != 1 {
			t.Fatalf("token fetches = %d, want 1", got)
		}
		if srv.Count() != 50 {
			t.Fatalf("count = %d", srv.Count())
		}
	})

	t.Run("cancelling the context given to New does not break later sends", func(t *testing.T) {
		t.Parallel()
		srv := fcmfake.New()
		url, err := srv.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		ctx, cancel := context.WithCancel(context.Background())
		c, err := fcm.New(ctx, fcm.Config{CredentialsJSON: srv.ServiceAccountJSON(project), Endpoint: url})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "tok", Title: "t"}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("100 parallel sends are all recorded with a single token fetch", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		const n = 100
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				_, err := c.SendPush(context.Background(), provider.Push{Token: fmt.Sprintf("par-%d", i), Title: "t", Body: "b", Urgent: i%2 == 0})
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
			if got := srv.CountToken(fmt.Sprintf("par-%d", i)); got != 1 {
				t.Fatalf("token par-%d recorded %d times", i, got)
			}
		}
		// Concurrent first sends may race to fetch, but ReuseTokenSource
		// serialises them: exactly one fetch.
		if got := srv.TokenFetches(); got != 1 {
			t.Fatalf("token fetches = %d, want 1", got)
		}
	})
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()

	cases := []struct {
		name       string
		inject     func(*fcmfake.Server)
		class      provider.Class
		code       string
		retryAfter time.Duration
	}{
		{
			name:   "an unregistered token is TokenInvalid",
			inject: func(s *fcmfake.Server) { s.Unregister("tok") },
			class:  provider.TokenInvalid, code: "UNREGISTERED",
		},
		{
			name:   "a sender id mismatch is TokenInvalid",
			inject: func(s *fcmfake.Server) { s.FailRate(1, 403, "SENDER_ID_MISMATCH") },
			class:  provider.TokenInvalid, code: "SENDER_ID_MISMATCH",
		},
		{
			name:   "an invalid argument is Permanent",
			inject: func(s *fcmfake.Server) { s.FailRate(1, 400, "INVALID_ARGUMENT") },
			class:  provider.Permanent, code: "INVALID_ARGUMENT",
		},
		{
			name:   "quota exceeded without Retry-After is Transient with the documented 60s",
			inject: func(s *fcmfake.Server) { s.FailRate(1, 429, "QUOTA_EXCEEDED") },
			class:  provider.Transient, code: "QUOTA_EXCEEDED", retryAfter: 60 * time.Second,
		},
		{
			name: "quota exceeded honours the Retry-After header",
			inject: func(s *fcmfake.Server) {
				s.FailRate(1, 429, "QUOTA_EXCEEDED")
				s.SetRetryAfter(120 * time.Second)
			},
			class: provider.Transient, code: "QUOTA_EXCEEDED", retryAfter: 120 * time.Second,
		},
		{
			name: "unavailable is Transient and carries Retry-After",
			inject: func(s *fcmfake.Server) {
				s.FailRate(1, 503, "UNAVAILABLE")
				s.SetRetryAfter(7 * time.Second)
			},
			class: provider.Transient, code: "UNAVAILABLE", retryAfter: 7 * time.Second,
		},
		{
			name:   "internal is Transient with no hint when none is given",
			inject: func(s *fcmfake.Server) { s.FailRate(1, 500, "INTERNAL") },
			class:  provider.Transient, code: "INTERNAL",
		},
		{
			// The deployment's credentials (here the project's APNs key),
			// refused: retried behind the breaker until an operator fixes them.
			name:   "a third-party auth error is Transient",
			inject: func(s *fcmfake.Server) { s.FailRate(1, 401, "THIRD_PARTY_AUTH_ERROR") },
			class:  provider.Transient, code: "THIRD_PARTY_AUTH_ERROR",
		},
		{
			name:   "a 502 without FCM details is Transient by status",
			inject: func(s *fcmfake.Server) { s.FailRate(1, 502, "") },
			class:  provider.Transient, code: "UNKNOWN",
		},
		{
			name:   "a 403 without FCM details (the service account may not send) is Transient",
			inject: func(s *fcmfake.Server) { s.FailRate(1, 403, "") },
			class:  provider.Transient, code: "PERMISSION_DENIED",
		},
		{
			name:   "a rejected token grant (a revoked service account) is Transient",
			inject: func(s *fcmfake.Server) { s.FailTokenFetch(400, "invalid_grant") },
			class:  provider.Transient, code: "OAUTH_INVALID_GRANT",
		},
		{
			name:   "a token endpoint outage is Transient",
			inject: func(s *fcmfake.Server) { s.FailTokenFetch(503, "backend_error") },
			class:  provider.Transient, code: "OAUTH_BACKEND_ERROR",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t, 0)
			tc.inject(srv)
			_, err := c.SendPush(context.Background(), provider.Push{Token: "tok", Title: "t", Body: "b"})
			pe := asProviderError(t, err)
			if pe.Class != tc.class || pe.Code != tc.code || pe.RetryAfter != tc.retryAfter {
				t.Fatalf("got class=%v code=%q retryAfter=%v (%v); want %v %q %v",
					pe.Class, pe.Code, pe.RetryAfter, err, tc.class, tc.code, tc.retryAfter)
			}
			if provider.ClassOf(err) != tc.class || provider.CodeOf(err) != tc.code || provider.RetryAfterOf(err) != tc.retryAfter {
				t.Fatal("provider helpers disagree with the error")
			}
			if srv.Count() != 0 {
				t.Fatalf("fake recorded %d messages", srv.Count())
			}
			if srv.Attempts() > 1 {
				t.Fatalf("client made %d attempts; it must not retry", srv.Attempts())
			}
		})
	}

	t.Run("an unregistered token does not affect other tokens", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		srv.Unregister("dead")
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "dead", Title: "t"}); provider.ClassOf(err) != provider.TokenInvalid {
			t.Fatalf("dead token: %v", err)
		}
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "alive", Title: "t"}); err != nil {
			t.Fatal(err)
		}
		if srv.CountToken("alive") != 1 || srv.CountToken("dead") != 0 {
			t.Fatal("wrong per-token counts")
		}
	})

	t.Run("a server that drops connections is Transient and sends resume when it is back", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "warm", Title: "t"}); err != nil {
			t.Fatal(err)
		}
		srv.SetDown(true)
		_, err := c.SendPush(context.Background(), provider.Push{Token: "tok", Title: "t"})
		if pe := asProviderError(t, err); pe.Class != provider.Transient {
			t.Fatalf("class %v, want transient: %v", pe.Class, err)
		}
		srv.SetDown(false)
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "tok", Title: "t"}); err != nil {
			t.Fatal(err)
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
		if srv.Attempts() != 0 || srv.TokenFetches() != 0 {
			t.Fatal("the fake was contacted")
		}
	})

	t.Run("half the sends fail under a 50 percent fail rate", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, 0)
		srv.FailRate(0.5, http.StatusServiceUnavailable, "UNAVAILABLE")
		failed := 0
		for i := range 200 {
			_, err := c.SendPush(context.Background(), provider.Push{Token: fmt.Sprintf("t%d", i), Title: "t"})
			if err != nil {
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
	srv := fcmfake.New()
	t.Cleanup(srv.Close)

	t.Run("it rejects empty credentials", func(t *testing.T) {
		t.Parallel()
		if _, err := fcm.New(context.Background(), fcm.Config{}); err == nil {
			t.Fatal("want error")
		}
	})
	t.Run("it rejects credentials that are not a service account", func(t *testing.T) {
		t.Parallel()
		js := []byte(`{"type":"authorized_user","client_id":"x","client_secret":"y","refresh_token":"z"}`)
		if _, err := fcm.New(context.Background(), fcm.Config{CredentialsJSON: js}); err == nil {
			t.Fatal("want error")
		}
	})
	t.Run("it rejects a service account without a project id", func(t *testing.T) {
		t.Parallel()
		if _, err := fcm.New(context.Background(), fcm.Config{CredentialsJSON: srv.ServiceAccountJSON("")}); err == nil {
			t.Fatal("want error")
		}
	})
	t.Run("it rejects a private key that cannot sign, naming it, without quoting it", func(t *testing.T) {
		t.Parallel()
		for name, key := range map[string]string{
			"not a key":    "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n",
			"empty":        "",
			"an EC key":    ecKeyPEM(t),
			"no PEM block": "TOPSECRETKEYMATERIAL",
		} {
			var sa map[string]any
			if err := json.Unmarshal(srv.ServiceAccountJSON(project), &sa); err != nil {
				t.Fatal(err)
			}
			sa["private_key"] = key
			js, _ := json.Marshal(sa)
			_, err := fcm.New(context.Background(), fcm.Config{CredentialsJSON: js})
			if err == nil || !strings.Contains(err.Error(), "private_key") || strings.Contains(err.Error(), "TOPSECRET") {
				t.Errorf("%s: %v, want refused naming private_key", name, err)
			}
		}
	})
	t.Run("it accepts a custom base HTTP client", func(t *testing.T) {
		t.Parallel()
		s := fcmfake.New()
		url, err := s.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		c, err := fcm.New(context.Background(), fcm.Config{
			CredentialsJSON: s.ServiceAccountJSON(project), Endpoint: url + "/",
			HTTPClient: &http.Client{Transport: &http.Transport{}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.SendPush(context.Background(), provider.Push{Token: "tok", Title: "t"}); err != nil {
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

func ecKeyPEM(t *testing.T) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}
