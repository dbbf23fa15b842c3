package worker_test

import (
	"errors"
	"regexp"
	"testing"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/worker"
)

var testLink = regexp.MustCompile(`https://outreach\.test/i/(\S*)`)

func TestATestSendKeepsTheRulesThatProtectSubscribers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(20) // subscriber 0 (every tenth) opted out
		e := h.newEngine(worker.Settings{})
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)

		res, err := e.SendTest(h.ctx, c, msisdns[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || res[0].Error != string(campaign.SkipOptedOut) || h.twilio.Count() != 0 {
			t.Fatalf("a test to an opted-out subscriber: %+v, %d SMS sent", res, h.twilio.Count())
		}
		// That test sent nothing, so it took none of the tenant's one test
		// a second: the next goes at once.
		res, err = e.SendTest(h.ctx, c, msisdns[1])
		if err != nil || len(res) != 1 || res[0].Error != "" || h.twilio.CountTo(msisdns[1]) != 1 {
			t.Fatalf("a test to a subscriber: %+v, %v, %d SMS", res, err, h.twilio.CountTo(msisdns[1]))
		}
		// Its install link has a code of the real length, so the test costs
		// the segments a real message does.
		if m := testLink.FindStringSubmatch(res[0].Text); m == nil || len(m[1]) != campaign.ReferralCodeLength {
			t.Errorf("test text %q: want an install link with a %d-character code", res[0].Text, campaign.ReferralCodeLength)
		}
		_, err = e.SendTest(h.ctx, c, msisdns[2])
		if !errors.Is(err, apperr.ErrLimited) || h.twilio.CountTo(msisdns[2]) != 0 {
			t.Fatalf("a second test in the same second: %v, %d SMS; want refused as limited", err, h.twilio.CountTo(msisdns[2]))
		}
	})
}
