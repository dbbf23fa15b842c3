package campaign

import (
	"net/url"
	"testing"
)

func TestCallbackURLNamesItsDelivery(t *testing.T) {
	k := DeliveryKey{CampaignID: "0b8f5a0e-2c1d-4d3e-9f00-1234567890ab", SubscriberID: 42, Channel: ChannelPush}
	for _, base := range []string{"https://outreach.example/webhooks/twilio/status", "https://outreach.example/s?x=1"} {
		u, err := url.Parse(CallbackURL(base, k))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseDeliveryKey(u.Query().Get(DeliveryParam))
		if err != nil || got != k {
			t.Errorf("%s: %v, %v; want %v", u, got, err, k)
		}
	}
	if CallbackURL("", k) != "" {
		t.Error("no base: want no callback")
	}
	for _, bad := range []string{"", "x", "0b8f5a0e-2c1d-4d3e-9f00-1234567890ab.42", "nope.42.sms",
		"0b8f5a0e-2c1d-4d3e-9f00-1234567890ab.-1.sms", "0b8f5a0e-2c1d-4d3e-9f00-1234567890ab.42.fax",
		"0b8f5a0e2c1d4d3e9f001234567890ab.42.sms"} {
		if _, err := ParseDeliveryKey(bad); err == nil {
			t.Errorf("ParseDeliveryKey(%q): no error", bad)
		}
	}
}
