package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"outreach/internal/testenv"
	"outreach/store/sqlite"
	"outreach/subscriber"
)

const (
	hookToken  = "twiliotoken"
	hookPublic = "http://outreach.test"
)

// withTwilioWebhooks registers only the Twilio webhooks, logging to logs.
func withTwilioWebhooks(logs io.Writer) fixtureOption {
	return func(d *Deps) {
		st := d.Tenants.(*sqlite.Store)
		d.Extra = func(r *gin.Engine, _ AuthFunc) {
			TwilioWebhooks{AuthToken: hookToken, PublicURL: hookPublic, Receipts: st, OptOuts: st,
				Keywords: subscriber.DefaultKeywords, Logger: slog.New(slog.NewTextHandler(logs, nil))}.Register(r)
		}
	}
}

// twilioSign is Twilio's X-Twilio-Signature: base64 HMAC-SHA1 of the URL and
// the form's keys and values in key order.
func twilioSign(fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString(form.Get(k))
	}
	m := hmac.New(sha1.New, []byte(hookToken))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func postHook(t *testing.T, f *fixture, path string, form url.Values, body string) response {
	t.Helper()
	if body == "" {
		body = form.Encode()
	}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twilioSign(hookPublic+path, form))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func TestATwilioWebhookBodyOverTheLimitIs413(t *testing.T) {
	f := newFixture(t, withTwilioWebhooks(io.Discard))
	for _, path := range []string{"/webhooks/twilio/status", "/webhooks/twilio/inbound"} {
		t.Run(path, func(t *testing.T) {
			form := url.Values{"MessageSid": {"SM1"}, "Body": {strings.Repeat("a", 65<<10)}}
			r := must(t, http.StatusRequestEntityTooLarge, postHook(t, f, path, form, ""))
			if r.errorCode(t) != "too_large" {
				t.Errorf("got %s", r.body)
			}
		})
	}
	t.Run("a malformed body is still 400", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/webhooks/twilio/status", strings.NewReader("a=%zz"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400", res.StatusCode)
		}
	})
}

func TestAnInboundKeywordFromAnInvalidNumberIsAnsweredWithoutEchoingIt(t *testing.T) {
	logs := &testenv.LogBuffer{}
	f := newFixture(t, withTwilioWebhooks(logs))
	const path = "/webhooks/twilio/inbound"
	for _, from := range []string{"+8400123456789", "0912345", "not-a-number-4567"} {
		t.Run(from, func(t *testing.T) {
			form := url.Values{"MessageSid": {"SM1"}, "From": {from}, "To": {"+15005550006"}, "Body": {"STOP"}}
			r := must(t, http.StatusOK, postHook(t, f, path, form, ""))
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/xml") || !strings.Contains(string(r.body), "<Response></Response>") {
				t.Errorf("answer %q %s, want empty TwiML", r.header.Get("Content-Type"), r.body)
			}
			if strings.Contains(string(r.body), from) || strings.Contains(string(r.body), from[:len(from)-3]) {
				t.Errorf("answer %s echoes the number", r.body)
			}
			if strings.Contains(logs.String(), from[:len(from)-3]) {
				t.Errorf("log holds the number: %s", logs.String())
			}
		})
	}
	if !strings.Contains(logs.String(), "inbound keyword from an invalid number") || !strings.Contains(logs.String(), "789") {
		t.Errorf("log = %s", logs.String())
	}

	t.Run("a valid number still opts out", func(t *testing.T) {
		ctx := context.Background()
		const msisdn = "+84912345678"
		if _, err := f.store.UpsertSubscribers(ctx, f.tenants[tenantA].ID, []subscriber.Row{{MSISDN: msisdn, Region: "HN"}}, ""); err != nil {
			t.Fatal(err)
		}
		form := url.Values{"MessageSid": {"SM2"}, "From": {msisdn}, "To": {"+15005550006"}, "Body": {"STOP"}}
		must(t, http.StatusOK, postHook(t, f, path, form, ""))
		if !strings.Contains(logs.String(), "subscribers=1") {
			t.Errorf("no subscriber opted out; log = %s", logs.String())
		}
	})
}

// Twilio may report a recipient's STOP (21610) in a status callback rather
// than in the create call's answer: the subscriber is opted out all the same.
func TestAStatusCallbackWithTheOptOutCodeOptsTheSubscriberOut(t *testing.T) {
	logs := &testenv.LogBuffer{}
	f := newFixture(t, withTwilioWebhooks(logs))
	ctx := context.Background()
	tid := f.tenants[tenantA].ID
	if _, err := f.store.UpsertSubscribers(ctx, tid, []subscriber.Row{{MSISDN: "+84912345678", Region: "HN"},
		{MSISDN: "+84912345679", Region: "HN"}}, ""); err != nil {
		t.Fatal(err)
	}
	post := func(to, code string) {
		form := url.Values{"MessageSid": {"SM" + code + to[len(to)-3:]}, "MessageStatus": {"failed"}, "ErrorCode": {code},
			"To": {to}, "From": {"+15005550006"}}
		must(t, http.StatusNoContent, postHook(t, f, "/webhooks/twilio/status", form, ""))
	}
	post("+84912345678", "21610")
	post("+84912345679", "30003") // unreachable: not an opt-out
	for msisdn, want := range map[string]bool{"+84912345678": true, "+84912345679": false} {
		s, err := f.store.GetSubscriber(ctx, tid, msisdn)
		if err != nil {
			t.Fatal(err)
		}
		if s.OptedOut != want {
			t.Errorf("%s opted out = %v, want %v", subscriber.Mask(msisdn), s.OptedOut, want)
		}
	}
	if strings.Contains(logs.String(), "912345678") {
		t.Errorf("log holds the number: %s", logs.String())
	}
}

// With Twilio's Advanced Opt-Out the sender's own keywords are Twilio's:
// its OptOutType says what it made of a message, and the ledger follows
// it whatever the words (a STOP in a word outreach does not know, a START
// Twilio has already unblocked the number for).
func TestAnInboundMessageFollowsTwiliosOptOutType(t *testing.T) {
	f, tid, m := hookSubscriber(t)
	ctx := context.Background()
	steps := []struct {
		body, optOutType string
		want             bool
	}{
		{"NGUNG NHAN", "STOP", true},
		{"cam on", "", true}, // no keyword: nothing changes
		{"MO LAI", "START", false},
		{"STOP", "", true}, // outreach's own keywords still count without it
		{"HELP", "HELP", true},
	}
	for i, st := range steps {
		form := url.Values{"MessageSid": {fmt.Sprintf("SM%032d", i)}, "From": {m}, "To": {"+15005550006"}, "Body": {st.body}}
		if st.optOutType != "" {
			form.Set("OptOutType", st.optOutType)
		}
		must(t, http.StatusOK, postHook(t, f, "/webhooks/twilio/inbound", form, ""))
		s, err := f.store.GetSubscriber(ctx, tid, m)
		if err != nil {
			t.Fatal(err)
		}
		if s.OptedOut != st.want {
			t.Fatalf("after %q (OptOutType %q): opted out = %v, want %v", st.body, st.optOutType, s.OptedOut, st.want)
		}
	}
}

// Twilio's signature has no time in it: a captured callback replayed is
// answered as the first was and changes nothing more (here a STOP replayed
// after the subscriber opted back in).
func TestAReplayedTwilioCallbackChangesNothing(t *testing.T) {
	f, tid, m := hookSubscriber(t)
	ctx := context.Background()
	stop := url.Values{"MessageSid": {"SM00000000000000000000000000000001"}, "From": {m}, "To": {"+15005550006"}, "Body": {"STOP"}}
	must(t, http.StatusOK, postHook(t, f, "/webhooks/twilio/inbound", stop, ""))
	if s, err := f.store.GetSubscriber(ctx, tid, m); err != nil || !s.OptedOut {
		t.Fatalf("after STOP: %+v, %v", s, err)
	}
	if err := f.store.SetOptOut(ctx, tid, m, false); err != nil { // the carrier's call centre
		t.Fatal(err)
	}
	for range 3 {
		must(t, http.StatusOK, postHook(t, f, "/webhooks/twilio/inbound", stop, ""))
	}
	if s, err := f.store.GetSubscriber(ctx, tid, m); err != nil || s.OptedOut {
		t.Fatalf("a replayed STOP opted the subscriber out again: %+v, %v", s, err)
	}
}

// hookSubscriber is a fixture with the Twilio webhooks and one subscriber
// of tenant A: its tenant id and number.
func hookSubscriber(t *testing.T) (f *fixture, tenantID, msisdn string) {
	t.Helper()
	f = newFixture(t, withTwilioWebhooks(io.Discard))
	tenantID, msisdn = f.tenants[tenantA].ID, "+84912345678"
	if _, err := f.store.UpsertSubscribers(context.Background(), tenantID, []subscriber.Row{{MSISDN: msisdn, Region: "HN"}}, ""); err != nil {
		t.Fatal(err)
	}
	return f, tenantID, msisdn
}
