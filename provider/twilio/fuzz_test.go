package twilio_test

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"outreach/provider/twilio"
	"outreach/provider/twilio/twiliofake"
)

// Forms as Twilio posts them, and some that it never would.
var formSeeds = []string{
	"MessageSid=SM1&SmsSid=SM1&MessageStatus=delivered&SmsStatus=delivered&To=%2B84912345678&From=MG1&AccountSid=AC1&ApiVersion=2010-04-01",
	"MessageSid=SM2&MessageStatus=undelivered&ErrorCode=30003&To=%2B84912345678",
	"SmsSid=SM3&SmsStatus=FAILED&ErrorCode=0",
	"MessageSid=+&MessageStatus=%20&SmsStatus=sent",
	"MessageSid=SM4&MessageSid=SM5&MessageStatus=sent&MessageStatus=failed",
	"SmsMessageSid=SM6&From=%2B84912345678&To=MG1&Body=H%E1%BB%A7y",
	"MessageSid=SM7&From=+84912345678&To=%20&Body=",
	"MessageSid=SM8&From=%2B84912345678&To=MG1&Body=%FF%FE&NumMedia=1",
	"a=1;b=2", "%zz=1&MessageSid=SM9", "=&&=", "", "MessageStatus=Delivered%0A",
}

func FuzzParseStatus(f *testing.F) {
	for _, s := range formSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		form, _ := url.ParseQuery(query) // Twilio's body; a bad pair is dropped, the rest kept
		sc, err := twilio.ParseStatus(form)
		wantOK := firstOf(form, "MessageSid", "SmsSid") != "" && firstOf(form, "MessageStatus", "SmsStatus") != ""
		if err != nil {
			if !errors.Is(err, twilio.ErrMissingField) {
				t.Fatalf("ParseStatus(%q) failed with %v, not ErrMissingField", query, err)
			}
			if wantOK {
				t.Fatalf("ParseStatus(%q) refused a form with a sid and a status: %v", query, err)
			}
			if sc != (twilio.StatusCallback{}) {
				t.Fatalf("ParseStatus(%q) failed but returned %+v", query, sc)
			}
			return
		}
		if !wantOK {
			t.Fatalf("ParseStatus(%q) accepted %+v without a sid and a status", query, sc)
		}
		if sc.MessageSID != firstOf(form, "MessageSid", "SmsSid") {
			t.Fatalf("ParseStatus(%q).MessageSID = %q", query, sc.MessageSID)
		}
		if sc.Status == "" || sc.Status != strings.TrimSpace(sc.Status) ||
			sc.Status != strings.ToLower(firstOf(form, "MessageStatus", "SmsStatus")) {
			t.Fatalf("ParseStatus(%q).Status = %q, want the trimmed lower-cased status", query, sc.Status)
		}
		if sc.ErrorCode == "0" || sc.ErrorCode != strings.TrimSpace(sc.ErrorCode) {
			t.Fatalf("ParseStatus(%q).ErrorCode = %q", query, sc.ErrorCode)
		}
		if sc.To != form.Get("To") || sc.From != form.Get("From") {
			t.Fatalf("ParseStatus(%q) = %+v: To or From is not the form's", query, sc)
		}
	})
}

func FuzzParseInbound(f *testing.F) {
	for _, s := range formSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		form, _ := url.ParseQuery(query)
		in, err := twilio.ParseInbound(form)
		sid := firstOf(form, "MessageSid", "SmsMessageSid", "SmsSid")
		from, to := strings.TrimSpace(form.Get("From")), strings.TrimSpace(form.Get("To"))
		wantOK := sid != "" && from != "" && to != ""
		if err != nil {
			if !errors.Is(err, twilio.ErrMissingField) {
				t.Fatalf("ParseInbound(%q) failed with %v, not ErrMissingField", query, err)
			}
			if wantOK {
				t.Fatalf("ParseInbound(%q) refused a form with a sid, From and To: %v", query, err)
			}
			if in != (twilio.Inbound{}) {
				t.Fatalf("ParseInbound(%q) failed but returned %+v", query, in)
			}
			return
		}
		if !wantOK {
			t.Fatalf("ParseInbound(%q) accepted %+v without a sid, From and To", query, in)
		}
		if in.MessageSID != sid || in.From != from || in.To != to {
			t.Fatalf("ParseInbound(%q) = %+v, want sid %q from %q to %q", query, in, sid, from, to)
		}
		// The body is the subscriber's words: kept as sent for keyword matching.
		if in.Body != form.Get("Body") {
			t.Fatalf("ParseInbound(%q).Body = %q, want %q", query, in.Body, form.Get("Body"))
		}
	})
}

// firstOf is the first non-blank of the keys' first values, trimmed.
func firstOf(form url.Values, keys ...string) string {
	for _, k := range keys {
		if vs := form[k]; len(vs) > 0 {
			if v := strings.TrimSpace(vs[0]); v != "" {
				return v
			}
		}
	}
	return ""
}

// The URLs Twilio may be configured with: the signature covers the URL.
var signedURLs = []string{
	"https://outreach.example/webhooks/twilio/status",
	"https://outreach.example/webhooks/twilio/inbound?tenant=viettel",
	"http://127.0.0.1:8080/webhooks/twilio/status",
	"https://outreach.example:8443/webhooks/twilio/status",
}

func FuzzValidateSignature(f *testing.F) {
	for i, s := range formSeeds {
		f.Add(testToken, uint8(i), s, uint8(i), "x")
	}
	f.Add("t", uint8(0), "a=bc&ab=c", uint8(0), "")
	f.Add(strings.Repeat("k", 100), uint8(2), "To=%2B84912345678", uint8(0), "\x00")
	f.Fuzz(func(t *testing.T, token string, which uint8, query string, pick uint8, change string) {
		form, _ := url.ParseQuery(query)
		u := signedURLs[int(which)%len(signedURLs)]
		sig := twiliofake.Sign(token, u, form)
		if token == "" {
			if twilio.ValidateSignature(token, u, form, sig) {
				t.Fatal("an empty auth token validated a signature")
			}
			return
		}
		if !twilio.ValidateSignature(token, u, form, sig) {
			t.Fatalf("a signature made by twiliofake.Sign over %q, %q does not validate", u, query)
		}
		if twilio.ValidateSignature(token+"x", u, form, sig) {
			t.Fatalf("another auth token validated the signature over %q, %q", u, query)
		}
		if len(form) == 0 {
			return
		}
		// Change the value of one field (the first, which is what is signed).
		keys := make([]string, 0, len(form))
		for k := range form {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		k := keys[int(pick)%len(keys)]
		tampered := url.Values{}
		for kk, v := range form {
			tampered[kk] = slices.Clone(v)
		}
		old := tampered[k][0]
		if change == "" || change == old {
			change = old + "x"
		}
		tampered[k][0] = change
		if twilio.ValidateSignature(token, u, tampered, sig) {
			t.Fatalf("changing %s from %q to %q in %q kept the signature valid", k, old, change, query)
		}
	})
}
