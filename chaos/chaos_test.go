package chaos

import (
	"fmt"
	"testing"
	"time"
)

// The engine's fixed breaker settings (worker/breaker.go): it opens after
// this many consecutive transient failures and stays open this long.
const (
	breakerThreshold = 20
	breakerCooldown  = 10 * time.Second
)

// pacedChunk is how many deliveries a paced send task (the rigs send at
// 1,000/s) claims and hands to provider calls at a time: those due in the
// next 25 ms (worker.pacedStep). Each of a worker's tasks may have that
// many calls in the air when the provider fails.
const pacedChunk = 25

// startup bounds the time from start to the first messages.
const startup = 60 * time.Second

// Every scenario runs in parallel with the others, four at a time (main_test.go):
// each has its own schema, Redis database, fake and processes.

// TestA429StormCompletesWithoutDuplicates has Twilio answer half of all
// requests 429 (code 20429) for the whole campaign. Throttling is transient:
// every recipient must still get exactly one message.
func TestA429StormCompletesWithoutDuplicates(t *testing.T) {
	t.Parallel()
	// The first backoff is shortened so that the short run's tail of
	// retries stays within seconds (worker.Settings.RetryBase, 1 s by
	// default, through OUTREACH_RETRY_BASE).
	tm := timing{}
	if !sizeOf().full {
		tm.retryBase = 50 * time.Millisecond
	}
	r := newRig(t, false, tm)
	r.boot()
	r.seed()
	r.worker("worker-1")
	r.worker("worker-2")
	r.fake.Seed(429)
	r.fake.FailRate(0.5, 429, 20429)
	r.logf("FAULT: half of all provider calls answer 429 (20429) for the whole campaign")
	r.startCampaign()
	began := time.Now()
	s, done := r.waitCompleted(r.sz.complete)
	r.fake.FailRate(0, 0, 0)
	r.logf("RECOVERY: completed %v after start; %d calls for %d accepted messages (%d throttled)",
		done.Sub(began).Round(time.Millisecond), r.fake.Attempts(), r.fake.Count(), r.fake.Attempts()-r.fake.Count())
	r.check(s, 0, "a 429 is a definite refusal")
}

// TestProviderDownOpensTheBreaker makes Twilio answer 503 to everything for
// a while. Each worker's breaker opens after a run of failures, so calls
// during the outage stay few; the deliveries wait as pending retries, and
// sending resumes when the provider is back. A 503 is a definite refusal,
// so nothing may be sent twice.
func TestProviderDownOpensTheBreaker(t *testing.T) {
	t.Parallel()
	r := newRig(t, false, timing{})
	outage := r.sz.providerOutage
	const workers = 2
	r.boot()
	r.seed()
	for i := 1; i <= workers; i++ {
		r.worker(fmt.Sprintf("worker-%d", i))
	}
	r.startCampaign()
	r.waitAccepted(r.sz.recipients/5, r.sz.complete)

	a0 := r.fake.Attempts()
	r.fake.SetDown(true)
	downAt := time.Now()
	// A request the fake took just before going down is counted as it
	// completes; what it accepts from here on came in while it was down.
	time.Sleep(100 * time.Millisecond)
	c0 := r.fake.Count()
	r.logf("FAULT: provider down (503) for %v after %d messages accepted", outage, c0)
	// Sample the calls the fake sees second by second.
	var perSecond []int
	last := a0
	for time.Since(downAt) < outage {
		time.Sleep(min(time.Second, outage-time.Since(downAt)))
		n := r.fake.Attempts()
		perSecond = append(perSecond, n-last)
		last = n
	}
	a1, c1 := r.fake.Attempts(), r.fake.Count()
	r.fake.SetDown(false)
	upAt := time.Now()
	calls := a1 - a0
	probes := int(outage/breakerCooldown) + 1
	inflight := r.sz.concurrency * pacedChunk
	bound := workers * (breakerThreshold + inflight + probes)
	r.logf("provider back; %d calls during the %v outage (per second: %v); bound %d = %d workers x (%d to open + %d in flight + %d probes); without a breaker the rate alone allows %d",
		calls, outage, perSecond, bound, workers, breakerThreshold, inflight, probes,
		int(outage.Seconds())*r.sz.smsRate)
	if c1 != c0 {
		t.Errorf("the fake accepted %d messages while down", c1-c0)
	}
	if calls > bound {
		t.Errorf("%d provider calls during a %v outage, more than %d: the breaker did not keep them few", calls, outage, bound)
	}

	s, done := r.waitCompleted(r.sz.complete)
	_, resumed := r.sendingGap(upAt)
	r.logf("RECOVERY: sending resumed %v after the provider came back; completed %v after it",
		resumed.Round(time.Millisecond), done.Sub(upAt).Round(time.Millisecond))
	r.check(s, 0, "a 503 is a definite refusal")
}

// TestBaselineWithoutAFault runs the same campaign with no fault: the
// reference for the recovery times below, and a check of the rig itself.
func TestBaselineWithoutAFault(t *testing.T) {
	t.Parallel()
	r := newRig(t, false, timing{})
	r.boot()
	r.seed()
	r.worker("worker-1")
	r.worker("worker-2")
	r.startCampaign()
	began := time.Now()
	r.waitAccepted(1, startup)
	first := time.Now()
	r.waitAccepted(r.sz.recipients/2, r.sz.complete)
	r.logf("half way: the fan-out backlog counter reads %s", r.backlog())
	s, done := r.waitCompleted(r.sz.complete)
	span := r.sendingSpan()
	r.logf("no fault: first message %v after start, completed %v after start; first to last message %v (%.0f/s; the rate allows %d/s)",
		first.Sub(began).Round(time.Millisecond), done.Sub(began).Round(time.Millisecond),
		span.Round(time.Millisecond), float64(r.sz.recipients)/span.Seconds(), r.sz.smsRate)
	r.check(s, 0, "no fault")
}

// TestKill9OfAWorkerMidCampaign kills the only worker with SIGKILL in the
// middle of the campaign, then starts a new one. The new worker's monitor
// takes the SMS the dead one had claimed ("sending") for sends whose
// answer was lost after OUTREACH_SENDING_STALE_AFTER and looks each up at
// Twilio (the fake's message list): one Twilio took is recorded sent, the
// others are sent. It re-drives every pending delivery whose task died
// with the worker after OUTREACH_STALE_AFTER. No SMS is sent twice (the
// design's bound used to be the deliveries claimed at the kill).
func TestKill9OfAWorkerMidCampaign(t *testing.T) {
	t.Parallel()
	killScenario(t, 0, 0)
}

// TestKill9OfAWorkerWhileTheProviderIsSlow is the same kill with Twilio
// answering every request 50 ms late (the fake records a message before it
// waits): at the kill, the sends in flight have reached the provider but
// their answers never reach the store. Each is found at Twilio by its
// look-up, and none is sent twice.
func TestKill9OfAWorkerWhileTheProviderIsSlow(t *testing.T) {
	t.Parallel()
	recipients := 0
	if !sizeOf().full {
		recipients = 1000 // at 50 ms a call, 10 tasks send about 200/s
	}
	killScenario(t, 50*time.Millisecond, recipients)
}

func killScenario(t *testing.T, latency time.Duration, recipients int) {
	stale := sizeOf().staleAfter
	r := newRig(t, false, timing{staleAfter: stale, sendingStaleAfter: stale})
	if recipients > 0 {
		r.sz.recipients = recipients
		r.logf("this scenario: %d recipients", recipients)
	}
	r.fake.SetLatency(latency)
	if !r.sz.full {
		// As at full size, the killed worker's tasks (concurrency x 100
		// deliveries) hold at least what the fan-out backlog allows (the
		// rate x OUTREACH_BACKLOG_SECONDS): the fan-out goes on only if
		// their deliveries leave the backlog although those tasks never
		// end.
		r.setRates(500, 500)
		r.env["OUTREACH_BACKLOG_SECONDS"] = "1"
		r.logf("this scenario: a backlog of 1 s of the rate, %d deliveries; %d in the worker's tasks", r.sz.smsRate, r.sz.concurrency*100)
	}
	r.boot()
	r.seed()
	w1 := r.worker("worker-1")
	r.startCampaign()
	r.waitAccepted(r.sz.recipients*3/10, r.sz.complete)

	w1.kill9()
	killedAt := time.Now()
	acceptedAtKill := r.fake.Count()
	// Nothing else writes deliveries until the new worker starts: let the
	// dead process's sockets close, then read what it left behind.
	time.Sleep(300 * time.Millisecond)
	inflight := r.countStatus("sending")
	pending := r.countStatus("pending")
	r.logf("FAULT: kill -9 of worker-1 (pid %d, provider latency %v) after %d messages accepted; the store has %d sending (in flight at the kill) and %d pending",
		w1.cmd.Process.Pid, latency, acceptedAtKill, inflight, pending)

	r.worker("worker-2")
	s, done := r.waitCompleted(r.sz.complete)
	gap, resumed := r.sendingGap(killedAt)
	r.logf("RECOVERY: completed %v after the kill; sending resumed %v after it; longest pause in sending %v",
		done.Sub(killedAt).Round(time.Millisecond), resumed.Round(time.Millisecond), gap.Round(time.Millisecond))
	r.check(s, 0, fmt.Sprintf("%d deliveries were sending at the kill, each looked up at Twilio", inflight))
}

// TestRedisEmptiedMidCampaign empties the Redis database (FLUSHDB of the
// test's own database) in the middle of the campaign: queued send tasks,
// scheduled retries, the fan-out lease, the backlog counter and the rate
// limiter's state are gone. The workers' monitor re-drives the pending
// deliveries from the store after OUTREACH_STALE_AFTER; no process died, so
// nothing may be sent twice.
func TestRedisEmptiedMidCampaign(t *testing.T) {
	t.Parallel()
	r := newRig(t, false, timing{staleAfter: sizeOf().staleAfter, sendingStaleAfter: time.Minute})
	r.twoWorkersToThirtyPercent()

	accepted := r.fake.Count()
	r.flushRedis()
	flushedAt := time.Now()
	r.logf("FAULT: Redis emptied after %d messages accepted; the store has %d pending, %d sending",
		accepted, r.countStatus("pending"), r.countStatus("sending"))

	s, done := r.waitCompleted(r.sz.complete)
	gap, _ := r.sendingGap(flushedAt)
	r.logf("RECOVERY: completed %v after the flush; longest pause in sending %v",
		done.Sub(flushedAt).Round(time.Millisecond), gap.Round(time.Millisecond))
	r.check(s, 0, "no process died")
}

// TestPostgresUnreachableMidCampaign cuts every connection between the
// processes and PostgreSQL (a proxy in the test drops them with a reset and
// refuses new ones) for a few seconds, as a database restart would, then
// lets them reconnect. The shared server itself is untouched. Sends that
// went out keep retrying their outcome until the store answers; nothing may
// be sent twice.
func TestPostgresUnreachableMidCampaign(t *testing.T) {
	t.Parallel()
	outage := sizeOf().pgOutage
	// A delivery claimed just before the cut stays "sending" until its
	// outcome is written after the outage: OUTREACH_SENDING_STALE_AFTER must
	// outlast the outage, or the reconciler would resend it.
	r := newRig(t, true, timing{staleAfter: sizeOf().staleAfter, sendingStaleAfter: outage + 20*time.Second})
	r.twoWorkersToThirtyPercent()

	accepted := r.fake.Count()
	cut := r.proxy.Cut()
	inflight := r.countStatus("sending")
	r.logf("FAULT: PostgreSQL unreachable for %v after %d messages accepted: %d connections cut; %d deliveries sending at the cut",
		outage, accepted, cut/2, inflight)
	time.Sleep(outage)
	during := r.fake.Count() - accepted
	r.proxy.Restore()
	upAt := time.Now()
	r.logf("PostgreSQL reachable again; %d messages were accepted during the outage; %d connection attempts refused",
		during, r.proxy.refused.Load())
	// Outcomes of sends made before the cut land within seconds of the
	// store's return (their writes retry with a backoff capped at 5 s). What
	// is still "sending" after that is a claim that committed while its
	// answer was lost with the connection: never sent, it waits for
	// OUTREACH_SENDING_STALE_AFTER.
	time.Sleep(8 * time.Second)
	r.logf("8s after the store came back: %d deliveries sending, %d pending; the fan-out backlog counter reads %s",
		r.countStatus("sending"), r.countStatus("pending"), r.backlog())

	s, done := r.waitCompleted(r.sz.complete)
	_, resumed := r.sendingGap(upAt)
	r.logf("RECOVERY: completed %v after the store came back; sending resumed %v after it",
		done.Sub(upAt).Round(time.Millisecond), resumed.Round(time.Millisecond))
	r.check(s, 0, "no process died")
}
