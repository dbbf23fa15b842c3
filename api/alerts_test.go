package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/tenant"
)

func TestAlertCreation(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	hk := f.key(tenantA, tenant.RoleHealth)
	kicks := len(f.disp.kicked())
	body := map[string]any{
		"name": "F1 contacts 2026-11-24", "channels": []string{"sms", "push"},
		"templates": map[string]string{"sms": s.alertTemplate, "push": s.pushTemplate},
		"contacts":  []string{"+84912345678", "0987654321", "0912345678", "", "not-a-number", "84933333333"},
	}
	r := must(t, 202, f.call(t, "POST", "/v1/alerts", hk, body)).obj(t)
	if r["state"] != "running" || r["contacts"] != 3.0 || r["duplicates"] != 1.0 {
		t.Errorf("answer %v, want running with 3 contacts and 1 duplicate", r)
	}
	inv := r["invalid_contacts"].([]any)
	if len(inv) != 2 || inv[0].(map[string]any)["index"] != 3.0 || inv[1].(map[string]any)["index"] != 4.0 {
		t.Errorf("invalid contacts %v, want indexes 3 and 4", inv)
	}
	id := r["id"].(string)

	t.Run("the alert is kicked at once", func(t *testing.T) {
		ks := f.disp.kicked()
		if len(ks) != kicks+1 || ks[len(ks)-1].ID != id || ks[len(ks)-1].Kind != campaign.KindExposureAlert {
			t.Errorf("kicks %+v", ks)
		}
	})
	t.Run("its audience is the contact list", func(t *testing.T) {
		c, err := f.store.GetCampaign(context.Background(), f.tenants[tenantA].ID, id)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := f.store.AudiencePage(context.Background(), c, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 3 {
			t.Errorf("audience of %d, want 3", len(ids))
		}
		if c.StartedAt == nil || c.State != campaign.StateRunning {
			t.Errorf("stored alert %+v", c)
		}
	})
	t.Run("unknown contacts became subscribers", func(t *testing.T) {
		must(t, 200, f.call(t, "GET", "/v1/subscribers/84933333333", hk, nil))
	})
	t.Run("the audit entry says who and how many, never the numbers", func(t *testing.T) {
		var found bool
		for _, e := range f.audit(t, tenantA) {
			if e.Action != "alert.create" || e.ObjectID != id {
				continue
			}
			found = true
			if e.Actor != f.keyIDs[hk] {
				t.Errorf("actor %q", e.Actor)
			}
			d := string(e.Details)
			if !strings.Contains(d, `"contacts":3`) || !strings.Contains(d, s.alertTemplate) {
				t.Errorf("details %s", d)
			}
			for _, n := range []string{"912345678", "987654321", "933333333"} {
				if strings.Contains(d, n) {
					t.Errorf("details %s hold a number", d)
				}
			}
		}
		if !found {
			t.Error("no audit entry")
		}
	})
	t.Run("the alert reads back with its stats", func(t *testing.T) {
		got := must(t, 200, f.call(t, "GET", "/v1/alerts/"+id, hk, nil)).obj(t)
		if got["id"] != id || got["kind"] != "exposure_alert" || got["state"] != "running" {
			t.Errorf("alert %v", got)
		}
		if _, ok := got["stats"].(map[string]any)["deliveries"]; !ok {
			t.Errorf("alert stats %v", got["stats"])
		}
	})
	t.Run("an admin may read it too", func(t *testing.T) {
		must(t, 200, f.call(t, "GET", "/v1/alerts/"+id, f.key(tenantA, tenant.RoleAdmin), nil))
	})
	t.Run("its health official lists, pauses, resumes and cancels it; a marketer may not", func(t *testing.T) {
		mk := f.key(tenantA, tenant.RoleMarketer)
		r := must(t, 200, f.call(t, "GET", "/v1/campaigns?kind=exposure_alert", hk, nil))
		if !strings.Contains(string(r.body), id) {
			t.Errorf("the health key's list lacks its alert: %s", r.body)
		}
		for _, action := range []string{"pause", "resume", "cancel"} {
			if r := f.call(t, "POST", "/v1/campaigns/"+id+"/"+action, mk, nil); r.status != 403 {
				t.Errorf("a marketer's %s of an alert: %d %s", action, r.status, r.body)
			}
		}
		must(t, 200, f.call(t, "POST", "/v1/campaigns/"+id+"/pause", hk, nil))
		must(t, 200, f.call(t, "POST", "/v1/campaigns/"+id+"/resume", hk, nil))
		must(t, 200, f.call(t, "POST", "/v1/campaigns/"+id+"/test", hk, map[string]string{"msisdn": "0912000999"}))
		if r := f.call(t, "POST", "/v1/campaigns/"+s.campaign+"/pause", hk, nil); r.status != 403 {
			t.Errorf("a health key's pause of an install promotion: %d %s", r.status, r.body)
		}
		got := must(t, 200, f.call(t, "POST", "/v1/campaigns/"+id+"/cancel", hk, nil)).obj(t)
		if got["state"] != "cancelled" {
			t.Errorf("after cancel: %v", got)
		}
	})
	t.Run("an install campaign is not an alert", func(t *testing.T) {
		must(t, 404, f.call(t, "GET", "/v1/alerts/"+s.campaign, hk, nil))
	})
	t.Run("a marketer listing its deliveries sees masked numbers", func(t *testing.T) {
		c, _ := f.store.GetCampaign(context.Background(), f.tenants[tenantA].ID, id)
		ids, _ := f.store.AudiencePage(context.Background(), c, 0, 100)
		var nds []campaign.NewDelivery
		for _, sid := range ids {
			nds = append(nds, campaign.NewDelivery{SubscriberID: sid})
		}
		if _, err := f.store.InsertDeliveries(context.Background(), c, campaign.ChannelSMS, nds); err != nil {
			t.Fatal(err)
		}
		r := must(t, 200, f.call(t, "GET", "/v1/campaigns/"+id+"/deliveries", f.key(tenantA, tenant.RoleViewer), nil))
		if strings.Contains(string(r.body), "912345678") || !strings.Contains(string(r.body), "678") {
			t.Errorf("viewer sees %s", r.body)
		}
		r = must(t, 200, f.call(t, "GET", "/v1/campaigns/"+id+"/deliveries", hk, nil))
		if !strings.Contains(string(r.body), "+84912345678") {
			t.Errorf("health key sees %s", r.body)
		}
	})
}

func TestAlertValidation(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	hk := f.key(tenantA, tenant.RoleHealth)
	t.Run("no valid contact is 422 and creates nothing", func(t *testing.T) {
		before := len(f.disp.kicked())
		r := must(t, 422, f.call(t, "POST", "/v1/alerts", hk, map[string]any{
			"name": "x", "channels": []string{"sms"}, "templates": map[string]string{"sms": s.alertTemplate},
			"contacts": []string{"123", "abc"},
		}))
		msg, _ := r.details(t)["contacts"].(string)
		if !strings.Contains(msg, "index 0") || !strings.Contains(msg, "index 1") {
			t.Errorf("contacts error %q", msg)
		}
		if len(f.disp.kicked()) != before {
			t.Error("an alert was kicked")
		}
	})
	t.Run("a contact that is not a string is refused by its position and the rest are sent", func(t *testing.T) {
		// A spreadsheet's phone column exported as numbers: 84912345601
		// is a number all the same; true and {} are none.
		r := must(t, 202, f.call(t, "POST", "/v1/alerts", hk, map[string]any{
			"name": "mixed", "channels": []string{"sms"}, "templates": map[string]string{"sms": s.alertTemplate},
			"contacts": []any{"0912345602", 84912345601, true, map[string]any{}, nil, json.RawMessage("84912345604.0"),
				json.RawMessage("8.4912345605e10"), 84912345606.5},
		})).obj(t)
		if r["contacts"] != 4.0 {
			t.Errorf("contacts %v, want 4 (the string and the whole numbers)", r["contacts"])
		}
		inv := fmt.Sprint(r["invalid_contacts"])
		want := "[map[index:2 reason:not a valid phone number] map[index:3 reason:not a valid phone number] map[index:4 reason:empty] " +
			"map[index:7 reason:not a valid phone number]]"
		if inv != want {
			t.Errorf("invalid contacts %s\nwant %s", inv, want)
		}
	})
	t.Run("a landline is refused as not a mobile number", func(t *testing.T) {
		r := must(t, 202, f.call(t, "POST", "/v1/alerts", hk, map[string]any{
			"name": "landline", "channels": []string{"sms"}, "templates": map[string]string{"sms": s.alertTemplate},
			"contacts": []string{"0912345603", "02438123456"},
		})).obj(t)
		inv := r["invalid_contacts"].([]any)
		if len(inv) != 1 || !strings.HasPrefix(inv[0].(map[string]any)["reason"].(string), "not a mobile number") {
			t.Errorf("invalid contacts %v, want index 1 not a mobile number", inv)
		}
	})
	t.Run("every bad field is named", func(t *testing.T) {
		r := must(t, 422, f.call(t, "POST", "/v1/alerts", hk, map[string]any{
			"name": "", "channels": []string{"push"}, "templates": map[string]string{"push": s.smsTemplate},
		}))
		d := r.details(t)
		for _, k := range []string{"name", "templates.push", "contacts"} {
			if _, ok := d[k]; !ok {
				t.Errorf("details %v lack %s", d, k)
			}
		}
	})
}

// A number that only an exposure alert named is health data: to marketer
// and viewer keys it is not a subscriber, to health and admin keys it is.
func TestAnAlertOnlyContactIsNotShownOutsideHealth(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	const contact = "+84977000111"
	hk := f.key(tenantA, tenant.RoleHealth)
	must(t, 202, f.call(t, "POST", "/v1/alerts", hk, map[string]any{
		"name": "F1 contacts", "channels": []string{"sms"}, "templates": map[string]string{"sms": s.alertTemplate},
		"contacts": []string{contact}}))
	must(t, 200, f.call(t, "GET", "/v1/subscribers/"+contact, hk, nil))
	must(t, 200, f.call(t, "GET", "/v1/subscribers/"+contact, f.key(tenantA, tenant.RoleAdmin), nil))
	for _, role := range []tenant.Role{tenant.RoleViewer, tenant.RoleMarketer} {
		must(t, 404, f.call(t, "GET", "/v1/subscribers/"+contact, f.key(tenantA, role), nil))
	}
	mk := f.key(tenantA, tenant.RoleMarketer)
	must(t, 404, f.call(t, "POST", "/v1/subscribers/"+contact+"/opt-out", mk, nil))
	must(t, 404, f.call(t, "PUT", "/v1/subscribers/"+contact+"/devices", mk, map[string]string{"platform": "fcm", "token": "tok-1"}))
	if sub, err := f.store.GetSubscriber(context.Background(), f.tenants[tenantA].ID, contact); err != nil || sub.OptedOut || len(sub.Devices) != 0 {
		t.Errorf("the contact was changed: %+v, %v", sub, err)
	}
	// Imported into the marketing base, the number is a subscriber to all.
	must(t, 200, f.callCT(t, "POST", "/v1/subscribers/import", mk, "text/csv", "msisdn,region\n"+contact+",HN\n"))
	must(t, 200, f.call(t, "GET", "/v1/subscribers/"+contact, f.key(tenantA, tenant.RoleViewer), nil))
}

// An alert sent again with its Idempotency-Key (a client's timeout and
// retry, a double click) answers the alert the first request created, and
// creates and sends nothing more; the same key with another request is a
// conflict, and a malformed key is named.
func TestAnAlertSentAgainWithItsIdempotencyKeyIsCreatedOnce(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	hk := f.key(tenantA, tenant.RoleHealth)
	body := map[string]any{
		"name": "F1 contacts 2026-12-07", "channels": []string{"sms"},
		"templates": map[string]string{"sms": s.alertTemplate},
		"contacts":  []string{"+84912345001", "0912345002", "not-a-number"},
	}
	key := http.Header{"Idempotency-Key": {"f1-2026-12-07-batch-1"}}
	kicks := len(f.disp.kicked())
	creates := func() (n int) {
		for _, e := range f.audit(t, tenantA) {
			if e.Action == "alert.create" {
				n++
			}
		}
		return n
	}
	before := creates()
	first := must(t, 202, f.callWith(t, "POST", "/v1/alerts", hk, "", key, body)).obj(t)
	again := must(t, 202, f.callWith(t, "POST", "/v1/alerts", hk, "", key, body)).obj(t)
	if again["id"] != first["id"] || again["replay"] != true || again["contacts"] != 2.0 || again["state"] != "running" {
		t.Errorf("sent again: %v, want the first alert %v (replay, running, 2 contacts)", again, first["id"])
	}
	if first["replay"] != nil {
		t.Errorf("the first answer says replay: %v", first)
	}
	if n := len(f.disp.kicked()) - kicks; n != 1 {
		t.Errorf("%d alerts started, want 1", n)
	}
	if n := creates() - before; n != 1 {
		t.Errorf("%d alerts created (audit), want 1", n)
	}

	other := map[string]any{"name": "F1 contacts 2026-12-07", "channels": []string{"sms"},
		"templates": map[string]string{"sms": s.alertTemplate}, "contacts": []string{"+84912345003"}}
	r := must(t, 409, f.callWith(t, "POST", "/v1/alerts", hk, "", key, other))
	if !strings.Contains(string(r.body), "Idempotency-Key") || r.errorCode(t) != "conflict" || r.header.Get("Retry-After") != "" {
		t.Errorf("another request under the key: %s, want a conflict naming Idempotency-Key, not to retry", r.body)
	}
	r = must(t, 422, f.callWith(t, "POST", "/v1/alerts", hk, "", http.Header{"Idempotency-Key": {"two words"}}, body))
	if d := r.details(t); d["Idempotency-Key"] == nil {
		t.Errorf("a key with a space: %s, want 422 naming Idempotency-Key", r.body)
	}
}

// stalledContacts holds an alert's AddContacts until proceed, then fails
// it: a creation still writing its list, which then fails.
type stalledContacts struct {
	campaign.Store
	entered, proceed chan struct{}
}

func (s *stalledContacts) AddContacts(ctx context.Context, id string, ids []int64) error {
	close(s.entered)
	<-s.proceed
	return errors.New("database is locked")
}

// A request sent again with its Idempotency-Key while the first is still
// creating the alert is told to try again (409), not that an alert runs:
// that creation may yet fail, as here; once it has, the key is free and
// the request creates the alert. The retry used to be answered 202
// running for an alert that was then cancelled, and its client stopped.
func TestAnAlertSentAgainWhileTheFirstIsStillCreatingItIsToldToTryAgain(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	hk := f.key(tenantA, tenant.RoleHealth)
	stall := &stalledContacts{Store: f.svc.Store, entered: make(chan struct{}), proceed: make(chan struct{})}
	f.svc.Store = stall
	body := map[string]any{"name": "F1", "channels": []string{"sms"},
		"templates": map[string]string{"sms": s.alertTemplate}, "contacts": []string{"+84912345001"}}
	key := http.Header{"Idempotency-Key": {"k-1"}}
	firstDone := make(chan response)
	go func() { firstDone <- f.callWith(t, "POST", "/v1/alerts", hk, "", key, body) }()
	<-stall.entered
	r := f.callWith(t, "POST", "/v1/alerts", hk, "", key, body)
	close(stall.proceed)
	first := <-firstDone
	if r.status != http.StatusConflict || !strings.Contains(string(r.body), "still creating") ||
		r.errorCode(t) != "in_progress" || r.header.Get("Retry-After") != "5" {
		t.Errorf("sent again during the first's creation: %d %s, want 409 in_progress saying it is still being created, with Retry-After", r.status, r.body)
	}
	if first.status < 500 {
		t.Fatalf("the first creation: %d %s, want it failed", first.status, first.body)
	}
	f.svc.Store = stall.Store
	again := must(t, 202, f.callWith(t, "POST", "/v1/alerts", hk, "", key, body)).obj(t)
	if again["replay"] != nil || again["state"] != "running" {
		t.Errorf("sent again after the first failed: %v, want a new running alert", again)
	}
}

// brokenCreate fails CreateCampaign and ReleaseRequestKey, as a database
// blip would (or a process dying between claim and creation).
type brokenCreate struct {
	campaign.Store
}

func (brokenCreate) CreateCampaign(context.Context, *campaign.Campaign) error {
	return errors.New("connection reset by peer")
}

func (brokenCreate) ReleaseRequestKey(context.Context, string, string, string) error {
	return errors.New("connection reset by peer")
}

// A key whose creation died without releasing it is not answered with an
// alert that does not exist: until any creation would have ended it is
// "still creating" (409), and after that it is taken over and the request
// creates the alert. It used to answer 202 running, replay, for a day.
func TestAKeyLeftByAFailedCreationIsTakenOver(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	hk := f.key(tenantA, tenant.RoleHealth)
	store := f.svc.Store
	f.svc.Store = brokenCreate{store}
	body := map[string]any{"name": "F1", "channels": []string{"sms"},
		"templates": map[string]string{"sms": s.alertTemplate}, "contacts": []string{"+84912345001"}}
	key := http.Header{"Idempotency-Key": {"k-2"}}
	if r := f.callWith(t, "POST", "/v1/alerts", hk, "", key, body); r.status < 500 {
		t.Fatalf("the broken creation: %d %s", r.status, r.body)
	}
	f.svc.Store = store
	must(t, 409, f.callWith(t, "POST", "/v1/alerts", hk, "", key, body))
	later := time.Now().Add(10 * time.Minute)
	f.svc.Now = func() time.Time { return later }
	got := must(t, 202, f.callWith(t, "POST", "/v1/alerts", hk, "", key, body)).obj(t)
	if got["replay"] != nil || got["state"] != "running" {
		t.Errorf("after the dead creation's time: %v, want a new running alert", got)
	}
	if r := f.call(t, "GET", "/v1/alerts/"+got["id"].(string), hk, nil); r.status != 200 {
		t.Errorf("the alert answered: %d %s", r.status, r.body)
	}
}
