package worker

import (
	"testing"
	"time"

	"outreach/campaign"
)

// A throttled message is retried within half a minute however often it was
// refused; another transient failure backs off up to five minutes, and
// fails once its attempts are used up.
func TestThrottledRetriesBackOffAtMostHalfAMinute(t *testing.T) {
	e := &Engine{set: Settings{MaxAttempts: 8, RetryBase: time.Second}}
	longest := map[string]time.Duration{}
	for range 200 {
		for _, code := range []string{"20429", "429", "30008"} {
			j := &job{r: recipient(7)}
			e.retryLater(j, 0, code)
			if !j.retry || j.out.Status != campaign.StatusPending {
				t.Fatalf("%s after 7 attempts: retry %v, status %q", code, j.retry, j.out.Status)
			}
			longest[code] = max(longest[code], j.retryIn)
		}
		j := &job{r: recipient(40)}
		e.retryLater(j, 0, "20429")
		if !j.retry || j.retryIn > throttleBackoffMax {
			t.Fatalf("20429 after 40 attempts: retry %v in %v", j.retry, j.retryIn)
		}
		j = &job{r: recipient(8)}
		if e.retryLater(j, 0, "30008"); j.retry || j.out.Status != campaign.StatusFailed {
			t.Fatalf("30008 after 8 attempts: retry %v, status %q", j.retry, j.out.Status)
		}
	}
	for _, code := range []string{"20429", "429"} {
		if longest[code] > throttleBackoffMax || longest[code] < throttleBackoffMax/2 {
			t.Errorf("%s after 7 attempts waited up to %v, want between %v and %v", code, longest[code],
				throttleBackoffMax/2, throttleBackoffMax)
		}
	}
	// 1 s << 6 = 64 s, with jitter between 32 and 64 s.
	if longest["30008"] <= throttleBackoffMax || longest["30008"] > 64*time.Second {
		t.Errorf("30008 after 7 attempts waited up to %v, want over %v", longest["30008"], throttleBackoffMax)
	}
	// The provider's Retry-After wins when longer.
	j := &job{r: recipient(1)}
	if e.retryLater(j, 2*time.Minute, "20429"); j.retryIn != 2*time.Minute {
		t.Errorf("Retry-After 2m: retry in %v", j.retryIn)
	}
}

func recipient(attempts int) campaign.Recipient {
	var r campaign.Recipient
	r.Attempts = attempts
	return r
}
