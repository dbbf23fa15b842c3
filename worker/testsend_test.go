package worker_test

import (
	"errors"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/worker"
)

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
		time.Sleep(1100 * time.Millisecond) // the tenant's one test a second
		res, err = e.SendTest(h.ctx, c, msisdns[1])
		if err != nil || len(res) != 1 || res[0].Error != "" || h.twilio.CountTo(msisdns[1]) != 1 {
			t.Fatalf("a test to a subscriber: %+v, %v, %d SMS", res, err, h.twilio.CountTo(msisdns[1]))
		}
		_, err = e.SendTest(h.ctx, c, msisdns[2])
		if !errors.Is(err, apperr.ErrLimited) || h.twilio.CountTo(msisdns[2]) != 0 {
			t.Fatalf("a second test in the same second: %v, %d SMS; want refused as limited", err, h.twilio.CountTo(msisdns[2]))
		}
	})
}
