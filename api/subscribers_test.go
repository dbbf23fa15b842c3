package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"outreach/internal/testenv"
	"outreach/store/sqlite"
	"outreach/subscriber"
	"outreach/tenant"
)

func TestImportReportsBadRowsAndKeepsTheRest(t *testing.T) {
	f := newFixture(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	csvBody := strings.Join([]string{
		"msisdn,region,locale,plan",
		"0912345678,HN,vi,prepaid",    // line 2
		`0987654321,"HCM,vi,postpaid`, // line 3: a quote never closed
		"0123,HN,vi,prepaid",          // line 4: not a phone number
		"84933333333,DN,en,postpaid",  // line 5
		"+84944444444,HG,,",           // line 6
	}, "\n") + "\n"
	r := must(t, 200, f.callCT(t, "POST", "/v1/subscribers/import?list=q3-targets", mk, "text/csv", csvBody)).obj(t)
	if r["imported"] != 3.0 || r["rejected"] != 2.0 {
		t.Fatalf("import answered %v, want 3 imported and 2 rejected", r)
	}
	errs := r["errors"].([]any)
	lines := map[float64]string{}
	for _, e := range errs {
		m := e.(map[string]any)
		lines[m["line"].(float64)] = m["reason"].(string)
	}
	if !strings.Contains(lines[3], "malformed") || !strings.Contains(lines[4], "invalid phone number") || len(lines) != 2 {
		t.Errorf("rejected rows %v, want line 3 malformed and line 4 an invalid number", lines)
	}
	for _, num := range []string{"+84912345678", "+84933333333", "+84944444444"} {
		sub := must(t, 200, f.call(t, "GET", "/v1/subscribers/"+num, mk, nil)).obj(t)
		if lists := sub["lists"].([]any); len(lists) != 1 || lists[0] != "q3-targets" {
			t.Errorf("%s is in lists %v, want q3-targets", num, lists)
		}
	}
	must(t, 404, f.call(t, "GET", "/v1/subscribers/0987654321", mk, nil))

	t.Run("the audit trail has the counts and no numbers", func(t *testing.T) {
		var found bool
		for _, e := range f.audit(t, tenantA) {
			if e.Action != "subscribers.import" {
				continue
			}
			found = true
			if strings.Contains(string(e.Details), "0123") || strings.Contains(string(e.Details), "912345678") {
				t.Errorf("audit details hold numbers: %s", e.Details)
			}
			if !strings.Contains(string(e.Details), `"imported":3`) {
				t.Errorf("audit details %s lack the counts", e.Details)
			}
		}
		if !found {
			t.Error("no audit entry for the import")
		}
	})
	t.Run("a header with no msisdn column is 422", func(t *testing.T) {
		r := must(t, 422, f.callCT(t, "POST", "/v1/subscribers/import", mk, "text/csv", "phone,region\n0912345678,HN\n"))
		if _, ok := r.details(t)["header"]; !ok {
			t.Errorf("got %s", r.body)
		}
	})
	t.Run("a JSON body is refused", func(t *testing.T) {
		must(t, 415, f.callCT(t, "POST", "/v1/subscribers/import", mk, "application/json", `{}`))
	})
}

// countingCSV generates a subscriber CSV of any size a row at a time, so
// that uploads larger than the limit need no memory in the test either.
type countingCSV struct {
	rows, next int
	header     bool
}

func (c *countingCSV) Read(p []byte) (int, error) {
	if !c.header {
		c.header = true
		return copy(p, "msisdn,region\n"), nil
	}
	if c.next == c.rows {
		return 0, io.EOF
	}
	line := fmt.Sprintf("+849%08d,HN\n", 12000000+c.next)
	c.next++
	return copy(p, line), nil
}

func TestImportIsStreamedAndLimited(t *testing.T) {
	f := newFixture(t, func(d *Deps) { d.MaxUploadBytes = 64 << 10 })
	mk := f.key(tenantA, tenant.RoleMarketer)
	t.Run("an upload within the limit lands", func(t *testing.T) {
		r := must(t, 200, f.callCT(t, "POST", "/v1/subscribers/import", mk, "text/csv", &countingCSV{rows: 1000})).obj(t)
		if r["imported"] != 1000.0 {
			t.Errorf("imported %v", r)
		}
	})
	t.Run("an upload over the limit is 413", func(t *testing.T) {
		r := must(t, 413, f.callCT(t, "POST", "/v1/subscribers/import", mk, "text/csv", &countingCSV{rows: 10000}))
		if r.errorCode(t) != "too_large" {
			t.Errorf("got %s", r.body)
		}
	})
}

func TestTheSameSubscriberUnderEveryForm(t *testing.T) {
	f := newFixture(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	must(t, 200, f.callCT(t, "POST", "/v1/subscribers/import", mk, "text/csv", "msisdn,region\n0912345678,HN\n"))
	viewer := f.key(tenantA, tenant.RoleViewer)
	for _, form := range []string{"0912345678", "+84912345678", "84912345678", "%2B84912345678"} {
		t.Run(form, func(t *testing.T) {
			sub := must(t, 200, f.call(t, "GET", "/v1/subscribers/"+form, viewer, nil)).obj(t)
			if sub["msisdn"] != "+84912345678" || sub["region"] != "HN" {
				t.Errorf("found %v", sub)
			}
		})
	}
	t.Run("an invalid number is 422 naming msisdn", func(t *testing.T) {
		r := must(t, 422, f.call(t, "GET", "/v1/subscribers/12345", viewer, nil))
		if _, ok := r.details(t)["msisdn"]; !ok {
			t.Errorf("got %s", r.body)
		}
	})

	t.Run("devices and opt-out change the subscriber", func(t *testing.T) {
		// An APNs token in upper case is the same device as in lower case:
		// stored lower-cased, it is registered once (not pushed twice).
		apns := strings.Repeat("ab12", 16)
		for _, tok := range []string{strings.ToUpper(apns), apns} {
			must(t, 200, f.call(t, "PUT", "/v1/subscribers/0912345678/devices", mk,
				map[string]string{"platform": "apns", "token": tok}))
		}
		sub := must(t, 200, f.call(t, "GET", "/v1/subscribers/0912345678", viewer, nil)).obj(t)
		devs := sub["devices"].([]any)
		if len(devs) != 1 || devs[0].(map[string]any)["platform"] != "apns" || devs[0].(map[string]any)["token"] != apns {
			t.Errorf("devices %v", devs)
		}
		// Tokens no provider could take are refused here, not retried at
		// every send.
		for _, bad := range []map[string]string{
			{"platform": "apns", "token": "abc123"},                        // too short
			{"platform": "apns", "token": strings.Repeat("ab", 31) + "%z"}, // not hexadecimal
			{"platform": "apns", "token": strings.Repeat("ab", 32) + "a"},  // odd
			{"platform": "fcm", "token": "cXyZ:APA91b/../x"},               // a path
			{"platform": "fcm", "token": "abc\u0001def"},                   // a control character
		} {
			if r := must(t, 422, f.call(t, "PUT", "/v1/subscribers/0912345678/devices", mk, bad)); r.details(t)["token"] == nil {
				t.Errorf("%v: details %s", bad, r.body)
			}
		}
		r := must(t, 422, f.call(t, "PUT", "/v1/subscribers/0912345678/devices", mk,
			map[string]string{"platform": "TOKENof0912345678", "token": ""}))
		if d := r.details(t); d["platform"] == nil || d["token"] == nil {
			t.Errorf("details %v", d)
		}
		must(t, 200, f.call(t, "POST", "/v1/subscribers/0912345678/opt-out", mk, nil))
		if sub := must(t, 200, f.call(t, "GET", "/v1/subscribers/0912345678", viewer, nil)).obj(t); sub["opted_out"] != true {
			t.Errorf("after opt-out %v", sub)
		}
		must(t, 200, f.call(t, "POST", "/v1/subscribers/+84912345678/opt-in", mk, nil))
		if sub := must(t, 200, f.call(t, "GET", "/v1/subscribers/0912345678", viewer, nil)).obj(t); sub["opted_out"] != false {
			t.Errorf("after opt-in %v", sub)
		}
	})

	t.Run("logs never carry the whole number", func(t *testing.T) {
		logs := f.logs.String()
		if !strings.Contains(logs, `"route":"/v1/subscribers/:msisdn"`) {
			t.Errorf("access log lacks the route template:\n%s", logs)
		}
		for _, form := range []string{"912345678", "12345\""} {
			if strings.Contains(logs, form) {
				t.Errorf("logs contain %q:\n%s", form, logs)
			}
		}
		if !strings.Contains(logs, `"msisdn":"*`) {
			t.Errorf("access log lacks the masked number")
		}
		// A 4xx is logged by its code and the names of the bad fields, never
		// by a message that quotes what the client sent.
		if !strings.Contains(logs, `"error":"invalid_fields","fields":["platform","token"]`) {
			t.Errorf("access log lacks the error code and fields:\n%s", logs)
		}
	})
}

func TestRegions(t *testing.T) {
	f := newFixture(t)
	admin := f.key(tenantA, tenant.RoleAdmin)
	ctx := context.Background()
	good := "\uFEFFcode,name,population\nHN,Hà Nội,8053663\nDN,Đà Nẵng,1128713\n"
	r := must(t, 200, f.callCT(t, "PUT", "/v1/regions", admin, "text/csv", good)).obj(t)
	if r["regions"] != 2.0 {
		t.Errorf("answer %v", r)
	}
	regs, err := f.store.ListRegions(ctx, f.tenants[tenantA].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(regs) != 2 || regs[0].Code != "DN" || regs[0].Name != "Đà Nẵng" || regs[0].Population != 1128713 {
		t.Errorf("regions %+v", regs)
	}

	t.Run("bad rows are reported by line and nothing is replaced", func(t *testing.T) {
		bad := "code,name,population\nHG,Hà Giang,854679\nCB,Cao Bằng,many\nLC,Lào Cai\nHG,Hà Giang,1\n"
		r := must(t, 422, f.callCT(t, "PUT", "/v1/regions", admin, "text/csv", bad))
		if r.errorCode(t) != "invalid_rows" {
			t.Errorf("code %q", r.errorCode(t))
		}
		rows := r.details(t)["rows"].([]any)
		got := map[float64]string{}
		for _, x := range rows {
			m := x.(map[string]any)
			got[m["line"].(float64)] = m["reason"].(string)
		}
		if len(got) != 3 || !strings.Contains(got[3], "population") || !strings.Contains(got[4], "3 fields") ||
			!strings.Contains(got[5], "repeats line 2") {
			t.Errorf("bad rows %v", got)
		}
		msg := r.obj(t)["error"].(map[string]any)["message"].(string)
		if !strings.Contains(msg, "line 3") {
			t.Errorf("message %q does not name line 3", msg)
		}
		regs, _ := f.store.ListRegions(ctx, f.tenants[tenantA].ID)
		if len(regs) != 2 {
			t.Errorf("regions were replaced: %+v", regs)
		}
	})
	t.Run("an empty file is 422", func(t *testing.T) {
		must(t, 422, f.callCT(t, "PUT", "/v1/regions", admin, "text/csv", "code,name,population\n"))
	})
	t.Run("a file over the body limit is 413", func(t *testing.T) {
		var b strings.Builder
		for i := 0; b.Len() <= int(DefaultMaxBodyBytes); i++ {
			fmt.Fprintf(&b, "R%d,Region %d,%d\n", i, i, i)
		}
		must(t, http.StatusRequestEntityTooLarge, f.callCT(t, "PUT", "/v1/regions", admin, "text/csv", b.String()))
	})
}

// failingUpserts is a subscriber store whose upserts fail from the second
// batch on, as a store outage in the middle of an import would.
type failingUpserts struct {
	subscriber.Store
	calls atomic.Int32
}

func (s *failingUpserts) UpsertSubscribers(ctx context.Context, tenantID string, rows []subscriber.Row, list string) (subscriber.UpsertResult, error) {
	if s.calls.Add(1) > 1 {
		return subscriber.UpsertResult{}, errors.New("store: connection reset by peer")
	}
	return s.Store.UpsertSubscribers(ctx, tenantID, rows, list)
}

// An import that a server failure stops halfway says what it wrote, so the
// client knows to send the file again, and keeps the cause for the log.
func TestAnImportStoppedByAServerErrorSaysWhatLanded(t *testing.T) {
	logs := &testenv.LogBuffer{}
	f := newFixture(t, func(d *Deps) {
		d.Importer = &subscriber.Importer{Store: &failingUpserts{Store: d.Tenants.(*sqlite.Store)}, BatchSize: 2}
		d.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	mk := f.key(tenantA, tenant.RoleMarketer)
	csvBody := "msisdn,region\n0912345671,HN\n0912345672,HN\n0912345673,HN\n0912345674,HN\n"
	r := f.callCT(t, "POST", "/v1/subscribers/import", mk, "text/csv", csvBody)
	if r.status != http.StatusInternalServerError {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	var body struct {
		Error struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	e := body.Error
	if e.Code != "import_incomplete" || e.Details["imported"] != 2.0 || !strings.Contains(e.Message, "send the file again") ||
		strings.Contains(e.Message, "connection reset") {
		t.Errorf("answer %s: want import_incomplete, 2 imported, and no internal cause", r.body)
	}
	if !strings.Contains(logs.String(), "connection reset by peer") {
		t.Errorf("the log lost the cause: %s", logs.String())
	}
}

// A landline stored before numbers had to be mobile ones can still be
// read and opted out; a new one is refused.
func TestALandlineStoredBeforeCanStillBeReadAndOptedOut(t *testing.T) {
	f := newFixture(t)
	const landline = "+842438255555"
	if _, err := f.store.UpsertSubscribers(context.Background(), f.tenants[tenantA].ID,
		[]subscriber.Row{{MSISDN: landline, Region: "HN"}}, ""); err != nil {
		t.Fatal(err)
	}
	mk := f.key(tenantA, tenant.RoleMarketer)
	must(t, 200, f.call(t, "GET", "/v1/subscribers/"+landline, mk, nil))
	if r := f.call(t, "POST", "/v1/subscribers/"+landline+"/opt-out", mk, nil); r.status >= 300 {
		t.Errorf("opt out a stored landline: %d %s", r.status, r.body)
	}
	r := must(t, 200, f.callCT(t, "POST", "/v1/subscribers/import", mk, "text/csv", "msisdn\n02438255556\n0912345678\n"))
	if o := r.obj(t); o["imported"] != 1.0 || o["rejected"] != 1.0 {
		t.Errorf("import of a landline and a mobile: %s", r.body)
	}
}

// An import naming a list with ?list= but leaving it empty (a script's
// unset variable) is refused and lands nothing: its rows would have gone
// into no list, and a campaign to the list meant would find none.
func TestAnImportToAListLeftEmptyIsRefused(t *testing.T) {
	f := newFixture(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	for _, q := range []string{"?list=", "?list=%20%20"} {
		r := must(t, 422, f.callCT(t, "POST", "/v1/subscribers/import"+q, mk, "text/csv", "msisdn,region\n0912000001,HN\n"))
		if d := r.details(t); d["list"] == nil {
			t.Errorf("import%s: %s, want 422 naming list", q, r.body)
		}
	}
	must(t, 404, f.call(t, "GET", "/v1/subscribers/0912000001", mk, nil))
}

// A list name's limit counts characters, as its message says: a
// Vietnamese name of 100 letters is taken, one of 101 refused.
func TestAListNameIsMeasuredInCharacters(t *testing.T) {
	f := newFixture(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	csv := "msisdn,region\n0912000002,HN\n"
	must(t, 200, f.callCT(t, "POST", "/v1/subscribers/import?list="+url.QueryEscape(strings.Repeat("đ", 100)), mk, "text/csv", csv))
	r := must(t, 422, f.callCT(t, "POST", "/v1/subscribers/import?list="+url.QueryEscape(strings.Repeat("đ", 101)), mk, "text/csv", csv))
	if d := r.details(t); d["list"] == nil {
		t.Errorf("a name of 101 letters: %s, want 422 naming list", r.body)
	}
}
