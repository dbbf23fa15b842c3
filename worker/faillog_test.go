package worker_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/internal/testenv"
	"outreach/worker"
)

// A provider that fails is said in the log, with its code and why, once
// in a while rather than for every call: the metrics counted the
// failures, but nothing told an operator what was wrong (a revoked key, a
// refused sender, the endpoint down).
func TestAFailingProviderIsLoggedOnceInAWhile(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(40)
		h.twilio.FailNext(10, 503, 20503) // fewer than open the breaker: retried within a second
		var out testenv.LogBuffer
		h.startWorkerOn(worker.Settings{RetryBase: 50 * time.Millisecond}, h.store,
			slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})))
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(c.ID, campaign.ActionStart)
		h.waitState(c.ID, campaign.StateCompleted, 90*time.Second)

		log := out.String()
		var failing []string
		for line := range strings.Lines(log) {
			if strings.Contains(line, "provider failing") {
				failing = append(failing, line)
			}
		}
		if len(failing) != 1 {
			t.Fatalf("%d 'provider failing' lines for 10 failures within seconds, want 1:\n%s", len(failing), log)
		}
		line := failing[0]
		for _, want := range []string{"provider=twilio", "code=20503", "channel=sms"} {
			if !strings.Contains(line, want) {
				t.Errorf("the line lacks %s: %s", want, line)
			}
		}
		for _, m := range msisdns {
			if strings.Contains(log, m) || strings.Contains(log, strings.TrimPrefix(m, "+")) {
				t.Fatalf("the log quotes the number %s:\n%s", m, log)
			}
		}
		if h.twilio.Attempts() < 10+h.twilio.Count() {
			t.Errorf("%d attempts: the faults were not all met", h.twilio.Attempts())
		}
	})
}
