package worker_test

import (
	"fmt"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/worker"
)

// An alert created while a large one drains the sender is not held
// behind all of it: its message goes out among the large one's, not after
// them (a one-contact alert waiting for a 5,000-contact one would wait 50 s
// at 100 SMS/s, and over 8 minutes at an international sender's 10/s).
func TestASmallAlertIsNotHeldBehindALargeOne(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		// 6 s of sending in 30 tasks, more than the 20 the alert workers
		// run at once.
		const rate, large = 500, 3000
		h.startWorker(worker.Settings{SMSRate: rate})
		var contacts []string
		for i := range large {
			contacts = append(contacts, fmt.Sprintf("097%07d", i))
		}
		a := h.alert(contacts)
		for h.twilio.Count() < 20 {
			time.Sleep(10 * time.Millisecond)
		}
		b := h.alert([]string{"0961234567"})
		h.waitState(b.ID, campaign.StateCompleted, 60*time.Second)
		h.waitState(a.ID, campaign.StateCompleted, 60*time.Second)
		var at time.Time
		for _, m := range h.twilio.Messages() {
			if m.To == "+84961234567" {
				at = m.At
			}
		}
		before := 0
		for _, m := range h.twilio.Messages() {
			if m.To != "+84961234567" && m.At.Before(at) {
				before++
			}
		}
		t.Logf("the one-contact alert's SMS went after %d of the large alert's %d", before, large)
		if at.IsZero() || before > large*35/100 {
			t.Errorf("the one-contact alert's SMS went after %d of the large alert's %d: held behind it", before, large)
		}
		if n := h.twilio.Count(); n != large+1 {
			t.Errorf("%d SMS, want %d: each contact once", n, large+1)
		}
	})
}
