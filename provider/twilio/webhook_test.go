package twilio_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"outreach/provider/twilio"
	"outreach/provider/twilio/twiliofake"
)

func TestValidateSignature(t *testing.T) {
	t.Parallel()
	const public = "https://outreach.example/webhooks/twilio/status"
	form := url.Values{
		"MessageSid":    {"SM0123"},
		"MessageStatus": {"delivered"},
		"To":            {"+84912345678"},
		"AccountSid":    {testSID},
	}
	sig := twiliofake.Sign(testToken, public, form)

	t.Run("a correct signature is accepted", func(t *testing.T) {
		if !twilio.ValidateSignature(testToken, public, form, sig) {
			t.Error("rejected")
		}
	})
	t.Run("the default port in the URL makes no difference", func(t *testing.T) {
		if !twilio.ValidateSignature(testToken, "https://outreach.example:443/webhooks/twilio/status", form, sig) {
			t.Error("rejected")
		}
	})
	t.Run("a tampered field is rejected", func(t *testing.T) {
		bad := url.Values{}
		for k, v := range form {
			bad[k] = v
		}
		bad.Set("MessageStatus", "failed")
		if twilio.ValidateSignature(testToken, public, bad, sig) {
			t.Error("accepted")
		}
	})
	t.Run("an added field is rejected", func(t *testing.T) {
		bad := url.Values{"ErrorCode": {"30003"}}
		for k, v := range form {
			bad[k] = v
		}
		if twilio.ValidateSignature(testToken, public, bad, sig) {
			t.Error("accepted")
		}
	})
	t.Run("another URL is rejected", func(t *testing.T) {
		if twilio.ValidateSignature(testToken, "http://127.0.0.1:8080/webhooks/twilio/status", form, sig) {
			t.Error("accepted")
		}
	})
	t.Run("another auth token is rejected", func(t *testing.T) {
		if twilio.ValidateSignature("othertoken", public, form, sig) {
			t.Error("accepted")
		}
	})
	t.Run("an empty signature or token is rejected", func(t *testing.T) {
		if twilio.ValidateSignature(testToken, public, form, "") || twilio.ValidateSignature("", public, form, sig) {
			t.Error("accepted")
		}
	})
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	t.Run("a failed receipt carries its error code", func(t *testing.T) {
		sc, err := twilio.ParseStatus(url.Values{
			"MessageSid": {"SM1"}, "SmsSid": {"SM1"}, "MessageStatus": {"undelivered"}, "SmsStatus": {"undelivered"},
			"ErrorCode": {"30003"}, "To": {"+84912345678"}, "From": {"+15005550006"}, "AccountSid": {testSID},
		})
		if err != nil {
			t.Fatal(err)
		}
		want := twilio.StatusCallback{MessageSID: "SM1", Status: "undelivered", ErrorCode: "30003", To: "+84912345678", From: "+15005550006"}
		if sc != want {
			t.Errorf("got %+v", sc)
		}
	})
	t.Run("the legacy SmsSid and SmsStatus fields are enough", func(t *testing.T) {
		sc, err := twilio.ParseStatus(url.Values{"SmsSid": {"SM2"}, "SmsStatus": {"Delivered"}})
		if err != nil || sc.MessageSID != "SM2" || sc.Status != "delivered" || sc.ErrorCode != "" {
			t.Errorf("got %+v, %v", sc, err)
		}
	})
	t.Run("a missing sid is an error naming the field", func(t *testing.T) {
		_, err := twilio.ParseStatus(url.Values{"MessageStatus": {"sent"}})
		if !errors.Is(err, twilio.ErrMissingField) || !strings.Contains(err.Error(), "MessageSid") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("a missing status is an error naming the field", func(t *testing.T) {
		_, err := twilio.ParseStatus(url.Values{"MessageSid": {"SM1"}})
		if !errors.Is(err, twilio.ErrMissingField) || !strings.Contains(err.Error(), "MessageStatus") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestParseInbound(t *testing.T) {
	t.Parallel()
	t.Run("a STOP reply is parsed", func(t *testing.T) {
		in, err := twilio.ParseInbound(url.Values{
			"MessageSid": {"SM9"}, "AccountSid": {testSID}, "From": {"+84912345678"}, "To": {"+15005550006"},
			"Body": {"STOP"}, "NumMedia": {"0"},
		})
		want := twilio.Inbound{MessageSID: "SM9", From: "+84912345678", To: "+15005550006", Body: "STOP"}
		if err != nil || in != want {
			t.Errorf("got %+v, %v", in, err)
		}
	})
	t.Run("an empty body is allowed", func(t *testing.T) {
		in, err := twilio.ParseInbound(url.Values{"SmsMessageSid": {"SM9"}, "From": {"+84912345678"}, "To": {"+1"}})
		if err != nil || in.MessageSID != "SM9" || in.Body != "" {
			t.Errorf("got %+v, %v", in, err)
		}
	})
	for _, field := range []string{"MessageSid", "From", "To"} {
		t.Run("a missing "+field+" is an error naming it", func(t *testing.T) {
			f := url.Values{"MessageSid": {"SM9"}, "From": {"+84912345678"}, "To": {"+15005550006"}, "Body": {"hi"}}
			f.Del(field)
			_, err := twilio.ParseInbound(f)
			if !errors.Is(err, twilio.ErrMissingField) || !strings.Contains(err.Error(), field) {
				t.Errorf("err = %v", err)
			}
		})
	}
}
