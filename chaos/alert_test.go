package chaos

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"outreach/provider/fcm/fcmfake"
)

// The exposure-alert scenarios: a health authority's alert to a contact
// list, by SMS (the fake Twilio) and push (the real FCM client against the
// fake FCM: every contact has a registered device), while a fault happens.
// The alert must complete, every contact must get both messages, and
// duplicates stay within the sends in flight at the fault, per channel.

// alertSizing is the scale of an alert scenario.
type alertSizing struct {
	// contacts of the kill scenario; of the Redis one, more than a worker
	// claims at once (an alert claims whole batches of 100, on up to 30
	// tasks per worker: 20 of its own pool and 10 of the main one), so that
	// part of the alert waits in Redis when it is emptied.
	killContacts, flushContacts int
	// rate is OUTREACH_SMS_RATE and OUTREACH_PUSH_RATE: lower than the
	// campaigns' in the short run, so that the alert is still going out
	// when the fault lands.
	rate int
}

func alertSizeOf() alertSizing {
	if sizeOf().full {
		return alertSizing{killContacts: 20_000, flushContacts: 20_000, rate: 1000}
	}
	return alertSizing{killContacts: 1000, flushContacts: 2000, rate: 250}
}

// withPush starts a fake FCM (its OAuth2 token endpoint and the v1 send
// API) and points the processes' real FCM client at it through a
// service-account file whose token_uri is the fake. Call it before boot.
func (r *rig) withPush() {
	r.push = fcmfake.New()
	base, err := r.push.Start()
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(r.push.Close)
	creds := filepath.Join(r.dir, "fcm-service-account.json")
	if err := os.WriteFile(creds, r.push.ServiceAccountJSON("chaos"), 0o600); err != nil {
		r.t.Fatal(err)
	}
	r.env["OUTREACH_PUSH_PROVIDER"] = "native"
	r.env["OUTREACH_FCM_CREDENTIALS"] = creds
	r.env["OUTREACH_FCM_ENDPOINT"] = base
}

// alertRig is a rig whose subscribers each have an FCM device, with the
// alert's two templates made.
type alertRig struct {
	*rig
	tokens       []string // by subscriber, as r.msisdns
	smsTemplate  string
	pushTemplate string
}

func newAlertRig(t *testing.T, tm timing, contacts int) *alertRig {
	t.Helper()
	as := alertSizeOf()
	r := newRig(t, false, tm)
	r.sz.recipients = contacts
	r.logf("this scenario: an alert to %d contacts, each with an FCM device", contacts)
	r.withPush()
	r.setRates(as.rate, as.rate)
	r.boot()
	r.seed()
	a := &alertRig{rig: r, tokens: make([]string, len(r.msisdns))}
	a.registerDevices()
	var tpl struct{ ID string }
	r.mustJSON("POST", "/v1/templates", map[string]any{"name": "f1-sms", "channel": "sms", "locale": "vi",
		"body": "Ban da o gan nguoi nhiem COVID-19. Hay tu cach ly va goi 1900 9095."}, &tpl)
	a.smsTemplate = tpl.ID
	r.mustJSON("POST", "/v1/templates", map[string]any{"name": "f1-push", "channel": "push", "locale": "vi",
		"title": "Cảnh báo tiếp xúc", "body": "Bạn đã ở gần người nhiễm COVID-19. Hãy tự cách ly."}, &tpl)
	a.pushTemplate = tpl.ID
	return a
}

// registerDevices gives every subscriber an FCM token (PUT
// /v1/subscribers/{msisdn}/devices), a few requests at a time.
func (a *alertRig) registerDevices() {
	a.t.Helper()
	for i := range a.tokens {
		a.tokens[i] = fmt.Sprintf("chaos-fcm-%d-%s", i, randHex(12))
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body := fmt.Sprintf(`{"platform":"fcm","token":%q}`, a.tokens[i])
				// The error names neither the number (in the path) nor the token.
				if status, err := a.call("PUT", "/v1/subscribers/"+url.PathEscape(a.msisdns[i])+"/devices", "application/json",
					strings.NewReader(body), nil); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("subscriber %d: register device: HTTP status %d (0: no answer)", i, status))
					mu.Unlock()
				}
			}
		}()
	}
	for i := range a.tokens {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		a.t.Fatalf("%d devices not registered; first: %v", len(errs), errs[0])
	}
	a.logf("%d FCM devices registered", len(a.tokens))
}

// sendAlert creates and starts the alert to every subscriber, by SMS and
// push (POST /v1/alerts).
func (a *alertRig) sendAlert() {
	a.t.Helper()
	var res struct {
		ID       string
		State    string
		Contacts int
	}
	a.started = time.Now()
	a.mustJSON("POST", "/v1/alerts", map[string]any{"name": "F1 contacts " + a.t.Name(), "channels": []string{"sms", "push"},
		"templates": map[string]string{"sms": a.smsTemplate, "push": a.pushTemplate}, "contacts": a.msisdns}, &res)
	if res.State != "running" || res.Contacts != len(a.msisdns) {
		a.t.Fatalf("alert %s: state %q, %d contacts; want running with %d", res.ID, res.State, res.Contacts, len(a.msisdns))
	}
	a.campaign = res.ID
	a.logf("alert %s started: %d contacts, SMS and push", res.ID, res.Contacts)
}

// waitOut waits until this share of the alert's messages (both channels)
// has reached the fakes.
func (a *alertRig) waitOut(share float64) {
	a.t.Helper()
	want := int(share * float64(2*len(a.msisdns)))
	deadline := time.Now().Add(a.sz.complete)
	for a.fake.Count()+a.push.Count() < want {
		if time.Now().After(deadline) {
			a.t.Fatalf("%d SMS and %d pushes accepted in %v, want %d in all", a.fake.Count(), a.push.Count(), a.sz.complete, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// check asserts every contact got its SMS and its push, with duplicates
// per channel within the bounds given.
func (a *alertRig) check(s stats, smsBound, pushBound int, why string) {
	a.t.Helper()
	took := time.Since(a.started)
	a.settle()
	a.logf("the alert took %v from start to completion", took.Round(time.Millisecond))
	a.expect("SMS", a.tally(), smsBound, why)
	push := tallyOf(a.tokens, a.push.CountToken)
	push.accepted, push.calls = a.push.Count(), a.push.Attempts()
	a.expect("push", push, pushBound, why)
	a.checkCollapseIDs()
	a.checkFinished(s, int64(len(a.msisdns)))
}

// checkCollapseIDs asserts that the pushes to each device carry one
// collapse id (as Android's tag and as apns-collapse-id), whatever number
// of them went: a push sent again replaces the first on the device rather
// than showing twice.
func (a *alertRig) checkCollapseIDs() {
	a.t.Helper()
	ids := map[string]map[string]bool{}
	for _, m := range a.push.Messages() {
		if ids[m.Token] == nil {
			ids[m.Token] = map[string]bool{}
		}
		ids[m.Token][m.Tag] = true
		ids[m.Token][m.APNSCollapseID] = true
	}
	shown := 0
	for tok, set := range ids {
		if len(set) != 1 || set[""] {
			shown++
			if shown <= 3 {
				a.t.Errorf("pushes to %s carry the collapse ids %q, want one: the device shows each", tok, slices.Sorted(maps.Keys(set)))
			}
		}
	}
	a.logf("the pushes to %d devices carry one collapse id each; %d devices got pushes under more than one", len(ids)-shown, shown)
}

// TestAnAlertSurvivesKill9OfAWorker kills the only worker with SIGKILL
// while an exposure alert is going out by SMS and push, then starts a new
// one. An alert claims its whole batches at once, so the sends "in flight"
// at the kill (the bound on push duplicates) are every delivery claimed
// then. The claimed SMS are looked up at Twilio: none is sent twice.
func TestAnAlertSurvivesKill9OfAWorker(t *testing.T) {
	t.Parallel()
	stale := sizeOf().staleAfter
	a := newAlertRig(t, timing{staleAfter: stale, sendingStaleAfter: stale}, alertSizeOf().killContacts)
	w1 := a.worker("worker-1")
	a.sendAlert()
	a.waitOut(0.3)
	w1.kill9()
	killedAt := time.Now()
	sms, push := a.fake.Count(), a.push.Count()
	time.Sleep(300 * time.Millisecond)
	sendingSMS, sendingPush := a.countStatusOn("sms", "sending"), a.countStatusOn("push", "sending")
	a.logf("FAULT: kill -9 of worker-1 (pid %d) after %d SMS and %d pushes accepted; the store has %d SMS and %d pushes sending (in flight at the kill), %d pending",
		w1.cmd.Process.Pid, sms, push, sendingSMS, sendingPush, a.countStatus("pending"))
	a.worker("worker-2")
	s, done := a.waitCompleted(a.sz.complete)
	a.logf("RECOVERY: the alert completed %v after the kill", done.Sub(killedAt).Round(time.Millisecond))
	a.check(s, 0, sendingPush, fmt.Sprintf("%d SMS (each looked up at Twilio) and %d pushes were sending at the kill", sendingSMS, sendingPush))
}

// TestAnAlertSurvivesAnEmptiedRedis empties the Redis database while an
// exposure alert is going out by SMS and push: its queued send tasks are
// gone, and the reconciler re-drives its pending deliveries from the store.
// One worker, so that part of the alert is queued in Redis rather than
// claimed. No process died, so nothing may be sent twice.
func TestAnAlertSurvivesAnEmptiedRedis(t *testing.T) {
	t.Parallel()
	a := newAlertRig(t, timing{staleAfter: sizeOf().staleAfter, sendingStaleAfter: time.Minute}, alertSizeOf().flushContacts)
	a.worker("worker-1")
	a.sendAlert()
	a.waitOut(0.3)
	sms, push := a.fake.Count(), a.push.Count()
	a.flushRedis()
	flushedAt := time.Now()
	a.logf("FAULT: Redis emptied after %d SMS and %d pushes accepted; the store has %d pending, %d sending",
		sms, push, a.countStatus("pending"), a.countStatus("sending"))
	s, done := a.waitCompleted(a.sz.complete)
	a.logf("RECOVERY: the alert completed %v after the flush", done.Sub(flushedAt).Round(time.Millisecond))
	a.check(s, 0, 0, "no process died")
}
