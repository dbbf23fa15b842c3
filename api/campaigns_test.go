package api

import (
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"outreach/campaign"
	"outreach/subscriber"
	"outreach/tenant"
)

func TestCampaignLifecycle(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	id := must(t, 201, f.call(t, "POST", "/v1/campaigns", mk, f.campaignBody(s))).obj(t)["id"].(string)
	base := "/v1/campaigns/" + id

	got := must(t, 200, f.call(t, "GET", base, mk, nil)).obj(t)
	if got["state"] != "draft" || got["name"] != "Bluezone Q3" || got["rate_per_second"] != 500.0 {
		t.Fatalf("created campaign reads %v", got)
	}
	kicks := len(f.disp.kicked())

	steps := []struct {
		action string
		status int
		state  string
		kick   bool
	}{
		{"start", 200, "running", true},
		{"start", 409, "", false},
		{"resume", 409, "", false},
		{"pause", 200, "paused", false},
		{"pause", 409, "", false},
		{"resume", 200, "running", true},
		{"cancel", 200, "cancelled", false},
		{"pause", 409, "", false},
		{"resume", 409, "", false},
		{"start", 409, "", false},
		{"cancel", 409, "", false},
	}
	for i, st := range steps {
		name := fmt.Sprintf("step %d: %s answers %d", i+1, st.action, st.status)
		t.Run(name, func(t *testing.T) {
			r := must(t, st.status, f.call(t, "POST", base+"/"+st.action, mk, nil))
			if st.status != 200 {
				if r.errorCode(t) != "conflict" {
					t.Errorf("code %q, want conflict", r.errorCode(t))
				}
				return
			}
			if s := r.obj(t)["state"]; s != st.state {
				t.Errorf("state %v, want %s", s, st.state)
			}
			ks := f.disp.kicked()
			if st.kick {
				if len(ks) != kicks+1 || ks[len(ks)-1].ID != id || ks[len(ks)-1].State != campaign.StateRunning {
					t.Errorf("kicks %d (want %d), last %+v", len(ks), kicks+1, ks[len(ks)-1])
				}
			} else if len(ks) != kicks {
				t.Errorf("%s kicked the workers", st.action)
			}
			kicks = len(ks)
		})
	}

	t.Run("every change is in the audit trail with the key id", func(t *testing.T) {
		var actions []string
		for _, e := range f.audit(t, tenantA) {
			if e.ObjectID != id {
				continue
			}
			actions = append(actions, e.Action)
			if e.Actor != f.keyIDs[mk] {
				t.Errorf("%s by %q, want %q", e.Action, e.Actor, f.keyIDs[mk])
			}
		}
		want := []string{"campaign.create", "campaign.start", "campaign.pause", "campaign.resume", "campaign.cancel"}
		if strings.Join(sortedCopy(actions), ",") != strings.Join(sortedCopy(want), ",") {
			t.Errorf("audit actions %v, want %v", actions, want)
		}
	})
}

func sortedCopy(xs []string) []string {
	out := append([]string(nil), xs...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestAScheduledCampaignWaitsForItsStart(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	body := f.campaignBody(s)
	body["start_at"] = time.Now().Add(24 * time.Hour).Format(time.RFC3339)
	id := must(t, 201, f.call(t, "POST", "/v1/campaigns", mk, body)).obj(t)["id"].(string)
	kicks := len(f.disp.kicked())

	r := must(t, 200, f.call(t, "POST", "/v1/campaigns/"+id+"/start", mk, nil))
	if r.obj(t)["state"] != "scheduled" {
		t.Errorf("state %v, want scheduled", r.obj(t)["state"])
	}
	if len(f.disp.kicked()) != kicks {
		t.Error("a scheduled campaign was kicked")
	}
	t.Run("a second start does not turn the schedule into a send now", func(t *testing.T) {
		r := must(t, 409, f.call(t, "POST", "/v1/campaigns/"+id+"/start", mk, nil))
		if !strings.Contains(r.obj(t)["error"].(map[string]any)["message"].(string), "scheduled") {
			t.Errorf("message does not say it is scheduled: %s", r.body)
		}
	})
	t.Run("a scheduled campaign can be cancelled", func(t *testing.T) {
		must(t, 200, f.call(t, "POST", "/v1/campaigns/"+id+"/cancel", mk, nil))
	})
}

func TestCampaignValidation(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	must(t, 200, f.callCT(t, "PUT", "/v1/regions", f.key(tenantA, tenant.RoleAdmin), "text/csv",
		"code,name,population\nHG,Hà Giang,854679\nDB,Điện Biên,598856\n"))
	cases := []struct {
		name   string
		edit   func(b map[string]any)
		fields []string
	}{
		{"every bad field is named", func(b map[string]any) {
			b["name"] = ""
			b["kind"] = "lottery"
			b["channels"] = []string{"fax"}
			b["templates"] = map[string]string{}
			b["rate_per_second"] = -1
			b["reward"] = map[string]any{"data_mb": 0, "budget_mb": -1, "attribution_days": 91}
		}, []string{"name", "kind", "channels", "rate_per_second", "reward.data_mb", "reward.budget_mb", "reward.attribution_days"}},
		{"an alert is not made here", func(b map[string]any) { b["kind"] = "exposure_alert" }, []string{"kind"}},
		{"no channels", func(b map[string]any) { b["channels"] = []string{} }, []string{"channels", "templates.sms"}},
		{"a channel needs its template", func(b map[string]any) { b["channels"] = []string{"sms", "push"} }, []string{"templates.push"}},
		{"a template for the wrong channel", func(b map[string]any) {
			b["templates"] = map[string]string{"sms": s.pushTemplate}
		}, []string{"templates.sms"}},
		{"a template that does not exist", func(b map[string]any) {
			b["templates"] = map[string]string{"sms": "00000000-0000-0000-0000-000000000000"}
		}, []string{"templates.sms"}},
		{"a template for a channel not sent on", func(b map[string]any) {
			b["templates"] = map[string]string{"sms": s.smsTemplate, "push": s.pushTemplate}
		}, []string{"templates.push"}},
		{"a locale no subscriber has, and a template of another locale", func(b map[string]any) {
			b["locale_templates"] = map[string]any{"fr": map[string]string{"sms": s.smsTemplate}, "en": map[string]string{"sms": s.smsTemplate}}
		}, []string{"locale_templates.fr", "locale_templates.en.sms"}},
		{"a budget below one reward", func(b map[string]any) {
			b["reward"] = map[string]any{"data_mb": 5120, "budget_mb": 1000, "attribution_days": 14}
		}, []string{"reward.budget_mb"}},
		{"a reward confirmation that is not an SMS template", func(b map[string]any) {
			b["reward"] = map[string]any{"data_mb": 5120, "budget_mb": 51200, "attribution_days": 14,
				"confirm_template": s.pushTemplate}
		}, []string{"reward.confirm_template"}},
		{"reward confirmations per locale: a locale no subscriber has, a template of another locale, and no main one", func(b map[string]any) {
			b["reward"] = map[string]any{"data_mb": 5120, "budget_mb": 51200, "attribution_days": 14,
				"locale_confirm_templates": map[string]string{"fr": s.smsTemplate, "en": s.smsTemplate}}
		}, []string{"reward.locale_confirm_templates.fr", "reward.locale_confirm_templates.en", "reward.confirm_template"}},
		{"a reward confirmation with an install link, which no confirmation fills", func(b map[string]any) {
			b["reward"] = map[string]any{"data_mb": 5120, "budget_mb": 51200, "attribution_days": 14,
				"confirm_template": s.smsTemplate}
		}, []string{"reward.confirm_template"}},
		{"an unknown region", func(b map[string]any) {
			b["audience"] = map[string]any{"regions": []string{"HG", "XX"}}
		}, []string{"audience.regions"}},
		// An unset variable in a script: decoded, these mean "no filter",
		// and the campaign went to the whole base.
		{"a list given empty, and no region at all", func(b map[string]any) {
			b["audience"] = map[string]any{"list": " ", "regions": []string{}}
		}, []string{"audience.list", "audience.regions"}},
		{"a list given null", func(b map[string]any) {
			b["audience"] = map[string]any{"regions": []string{"HG"}, "list": nil}
		}, []string{"audience.list"}},
		{"installed given null, and attributes given none", func(b map[string]any) {
			b["audience"] = map[string]any{"regions": []string{"HG"}, "installed": nil, "attributes": map[string]any{}}
		}, []string{"audience.installed", "audience.attributes"}},
		{"attributes given null", func(b map[string]any) {
			b["audience"] = map[string]any{"attributes": nil}
		}, []string{"audience.attributes"}},
		{"an attribute given empty, which no subscriber has", func(b map[string]any) {
			b["audience"] = map[string]any{"attributes": map[string]any{"plan": "", "tỉnh": "Hà Nội"}}
		}, []string{"audience.attributes.plan"}},
		{"the audience given null", func(b map[string]any) { b["audience"] = nil }, []string{"audience"}},
		{"filters given empty under names in another case, as a PowerShell hashtable sends them", func(b map[string]any) {
			b["audience"] = map[string]any{"Regions": []string{}, "LIST": "", "Installed": nil}
		}, []string{"audience.regions", "audience.list", "audience.installed"}},
		{"a filter given twice, empty the second time in another case", func(b map[string]any) {
			b["audience"] = map[string]any{"regions": []string{"HG"}, "Regions": []string{}}
		}, []string{"audience.regions"}},
		{"the audience given null under another case", func(b map[string]any) { b["Audience"] = nil }, []string{"audience"}},
		{"a list never imported", func(b map[string]any) {
			b["audience"] = map[string]any{"regions": []string{"HG"}, "list": "q3-typo"}
		}, []string{"audience.list"}},
		{"an end before the start", func(b map[string]any) {
			b["start_at"] = time.Now().Add(48 * time.Hour).Format(time.RFC3339)
			b["end_by"] = time.Now().Add(24 * time.Hour).Format(time.RFC3339)
		}, []string{"end_by"}},
		{"a time that is not RFC 3339", func(b map[string]any) { b["start_at"] = "tomorrow" }, []string{"start_at"}},
		{"times in year 9999 as written, 10000 in UTC, which no store or JSON answer holds", func(b map[string]any) {
			b["start_at"], b["end_by"] = "9999-12-31T22:00:00-05:00", "9999-12-31T23:00:00-05:00"
		}, []string{"start_at", "end_by"}},
		{"text no store keeps in a region code and a list name", func(b map[string]any) {
			b["audience"] = map[string]any{"regions": []string{"H\u0000G"}, "list": "l\u0000st"}
		}, []string{"audience.regions", "audience.list"}},
		{"a number where a string belongs", func(b map[string]any) { b["name"] = 7 }, []string{"name"}},
		{"every value of the wrong type is named, not only the first", func(b map[string]any) {
			b["name"], b["rate_per_second"], b["start_at"] = 7, "fast", "tomorrow"
		}, []string{"name", "rate_per_second", "start_at"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := f.campaignBody(s)
			tc.edit(b)
			r := must(t, 422, f.call(t, "POST", "/v1/campaigns", mk, b))
			d := r.details(t)
			for _, field := range tc.fields {
				if _, ok := d[field]; !ok {
					t.Errorf("details %v do not name %s", d, field)
				}
			}
			if len(d) != len(tc.fields) {
				t.Errorf("details %v, want exactly %v", d, tc.fields)
			}
		})
	}
	t.Run("known regions and an imported list are accepted", func(t *testing.T) {
		must(t, 200, f.callCT(t, "POST", "/v1/subscribers/import?list=q3", mk, "text/csv", "msisdn,region\n0912345678,HG\n"))
		b := f.campaignBody(s)
		b["audience"] = map[string]any{"regions": []string{"HG", "DB"}, "installed": false, "list": "q3"}
		got := must(t, 201, f.call(t, "POST", "/v1/campaigns", mk, b)).obj(t)
		aud := got["audience"].(map[string]any)
		if fmt.Sprint(aud["regions"]) != "[HG DB]" || aud["installed"] != false || aud["list"] != "q3" {
			t.Errorf("audience %v", aud)
		}
	})
}

func TestMalformedRequests(t *testing.T) {
	f := newFixture(t, func(d *Deps) { d.MaxBodyBytes = 64 << 10 })
	mk := f.key(tenantA, tenant.RoleMarketer)
	t.Run("malformed JSON is 400", func(t *testing.T) {
		r := must(t, 400, f.callCT(t, "POST", "/v1/campaigns", mk, "application/json", `{"name": "x",`))
		if r.errorCode(t) != "malformed" {
			t.Errorf("code %q", r.errorCode(t))
		}
	})
	t.Run("an unknown field is 400 naming it", func(t *testing.T) {
		r := must(t, 400, f.callCT(t, "POST", "/v1/campaigns", mk, "application/json", `{"name": "x", "budget": 5}`))
		if r.errorCode(t) != "unknown_field" || r.details(t)["field"] != "budget" {
			t.Errorf("got %s", r.body)
		}
	})
	t.Run("a body that is not UTF-8 is 400 naming where", func(t *testing.T) {
		// "Cài Bluezone" in Windows-1258/Latin-1 bytes.
		body := "{\"name\":\"promo\",\"channel\":\"sms\",\"locale\":\"vi\",\"body\":\"C\xe0i Bluezone\"}"
		r := must(t, 400, f.callCT(t, "POST", "/v1/templates", mk, "application/json", body))
		if r.errorCode(t) != "malformed" || !strings.Contains(string(r.body), "not UTF-8 text (byte 55)") {
			t.Errorf("got %s", r.body)
		}
	})
	t.Run("a body that begins with a UTF-8 byte-order mark is read", func(t *testing.T) {
		body := "\xef\xbb\xbf{\"name\":\"promo-bom\",\"channel\":\"sms\",\"locale\":\"vi\",\"body\":\"Cài Bluezone\"}"
		got := must(t, 201, f.callCT(t, "POST", "/v1/templates", mk, "application/json", body)).obj(t)
		if got["name"] != "promo-bom" || got["body"] != "Cài Bluezone" {
			t.Errorf("got %v", got)
		}
	})
	t.Run("two JSON values are 400", func(t *testing.T) {
		must(t, 400, f.callCT(t, "POST", "/v1/templates", mk, "application/json", `{"name":"a"} {"name":"b"}`))
	})
	t.Run("an empty body is 400", func(t *testing.T) {
		must(t, 400, f.callCT(t, "POST", "/v1/templates", mk, "application/json", ""))
	})
	t.Run("an array where an object belongs is 400", func(t *testing.T) {
		must(t, 400, f.callCT(t, "POST", "/v1/templates", mk, "application/json", `[1, 2]`))
	})
	t.Run("a body over the limit is 413", func(t *testing.T) {
		big := `{"name": "x", "channel": "sms", "body": "` + strings.Repeat("a", 70<<10) + `"}`
		r := must(t, 413, f.callCT(t, "POST", "/v1/templates", mk, "application/json", big))
		if r.errorCode(t) != "too_large" || !strings.Contains(r.obj(t)["error"].(map[string]any)["message"].(string), "64 KiB") {
			t.Errorf("got %s", r.body)
		}
	})
	t.Run("a body just under the limit is read", func(t *testing.T) {
		body := `{"name": "x", "channel": "sms", "body": "` + strings.Repeat("a", 60<<10) + `"}`
		r := must(t, 422, f.callCT(t, "POST", "/v1/templates", mk, "application/json", body))
		if _, ok := r.details(t)["body"]; !ok { // over the template package's own limit
			t.Errorf("got %s", r.body)
		}
	})
	t.Run("a bad query parameter is 422 naming it", func(t *testing.T) {
		r := must(t, 422, f.call(t, "GET", "/v1/campaigns?limit=lots", mk, nil))
		if _, ok := r.details(t)["limit"]; !ok {
			t.Errorf("got %s", r.body)
		}
	})
	t.Run("a mistyped query parameter is 422 naming it and what the route takes", func(t *testing.T) {
		r := must(t, 422, f.call(t, "GET", "/v1/campaigns?kind=install_promotion&limt=5", mk, nil))
		if got := r.details(t)["limt"]; got != "unknown query parameter: this route takes after, kind, limit" {
			t.Errorf("got %s", r.body)
		}
		if _, ok := r.details(t)["kind"]; ok {
			t.Errorf("a known parameter named too: %s", r.body)
		}
		r = must(t, 422, f.call(t, "GET", "/v1/campaigns/00000000-0000-4000-8000-000000000000?verbose=1", mk, nil))
		if got := r.details(t)["verbose"]; got != "unknown query parameter: this route takes none" {
			t.Errorf("got %s", r.body)
		}
	})
	t.Run("a query parameter given twice is 422 naming it", func(t *testing.T) {
		r := must(t, 422, f.call(t, "GET", "/v1/campaigns?limit=5&limit=50", mk, nil))
		if got := r.details(t)["limit"]; got != "given 2 times: give it once" {
			t.Errorf("got %s", r.body)
		}
	})
	t.Run("a query parameter is checked after the key and the role", func(t *testing.T) {
		must(t, 401, f.call(t, "GET", "/v1/campaigns?limt=5", "", nil))
		must(t, 403, f.call(t, "POST", "/v1/campaigns?limt=5", f.key(tenantA, tenant.RoleViewer), nil))
	})
	t.Run("a route another package adds is left to check its own parameters", func(t *testing.T) {
		g := newFixture(t, func(d *Deps) {
			d.Extra = func(r *gin.Engine, auth AuthFunc) {
				r.GET("/v1/extra", auth(tenant.RoleViewer), func(c *gin.Context) { c.String(200, c.Query("anything")) })
			}
		})
		r := must(t, 200, g.call(t, "GET", "/v1/extra?anything=ok", g.key(tenantA, tenant.RoleViewer), nil))
		if string(r.body) != "ok" {
			t.Errorf("got %q", r.body)
		}
	})
	t.Run("an id that is no UUID is 404", func(t *testing.T) {
		must(t, 404, f.call(t, "GET", "/v1/campaigns/not-an-id", mk, nil))
	})
}

func TestStatsAndDeliveries(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	ctx := context.Background()
	mk := f.key(tenantA, tenant.RoleMarketer)
	tid := f.tenants[tenantA].ID
	var rows []subscriber.Row
	for i := range 5 {
		rows = append(rows, subscriber.Row{MSISDN: fmt.Sprintf("+8491200000%d", i), Region: "HN"})
	}
	if _, err := f.store.UpsertSubscribers(ctx, tid, rows, ""); err != nil {
		t.Fatal(err)
	}
	nums := make([]string, len(rows))
	for i, r := range rows {
		nums[i] = r.MSISDN
	}
	ids, err := f.store.EnsureSubscribers(ctx, tid, nums)
	if err != nil {
		t.Fatal(err)
	}
	must(t, 200, f.call(t, "POST", "/v1/campaigns/"+s.campaign+"/start", mk, nil))
	c, err := f.store.GetCampaign(ctx, tid, s.campaign)
	if err != nil {
		t.Fatal(err)
	}
	var nds []campaign.NewDelivery
	for _, n := range nums {
		nds = append(nds, campaign.NewDelivery{SubscriberID: ids[n]})
	}
	if _, err := f.store.InsertDeliveries(ctx, c, campaign.ChannelSMS, nds); err != nil {
		t.Fatal(err)
	}
	if err := f.store.RecordOutcomes(ctx, []campaign.Outcome{{CampaignID: c.ID, SubscriberID: ids[nums[0]],
		Channel: campaign.ChannelSMS, Status: campaign.StatusSkipped, SkipReason: campaign.SkipOptedOut, At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	viewer := f.key(tenantA, tenant.RoleViewer)

	t.Run("stats count every status, with zeros", func(t *testing.T) {
		st := must(t, 200, f.call(t, "GET", "/v1/campaigns/"+s.campaign+"/stats", viewer, nil)).obj(t)
		d := st["deliveries"].(map[string]any)
		if st["audience"] != 5.0 || d["pending"] != 4.0 || d["skipped"] != 1.0 || d["delivered"] != 0.0 {
			t.Errorf("stats %v", st)
		}
		if st["skipped"].(map[string]any)["opted_out"] != 1.0 {
			t.Errorf("skipped %v", st["skipped"])
		}
		for _, k := range []string{"installs", "conversion_rate", "rewards", "segments", "state"} {
			if _, ok := st[k]; !ok {
				t.Errorf("stats lack %s", k)
			}
		}
	})
	t.Run("stats as CSV", func(t *testing.T) {
		r := must(t, 200, f.call(t, "GET", "/v1/campaigns/"+s.campaign+"/stats?format=csv", viewer, nil))
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
			t.Errorf("content type %q", ct)
		}
		text, bom := strings.CutPrefix(string(r.body), utf8BOM)
		if !bom {
			t.Errorf("the CSV does not begin with a UTF-8 byte-order mark (Excel needs it for Vietnamese)")
		}
		recs, err := csv.NewReader(strings.NewReader(text)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, rec := range recs {
			got[rec[0]] = rec[1]
		}
		if got["audience"] != "5" || got["deliveries.pending"] != "4" || got["skipped.opted_out"] != "1" || got["installs"] != "0" {
			t.Errorf("csv %v", got)
		}
	})
	t.Run("an unknown format is 422", func(t *testing.T) {
		must(t, 422, f.call(t, "GET", "/v1/campaigns/"+s.campaign+"/stats?format=xml", viewer, nil))
	})
	t.Run("deliveries page by id", func(t *testing.T) {
		var seen []string
		after := 0.0
		for page := 0; page < 10; page++ {
			r := must(t, 200, f.call(t, "GET", fmt.Sprintf("/v1/campaigns/%s/deliveries?limit=2&after=%d", s.campaign, int64(after)), viewer, nil)).obj(t)
			for _, d := range r["deliveries"].([]any) {
				seen = append(seen, d.(map[string]any)["msisdn"].(string))
			}
			next, ok := r["next_after"].(float64)
			if !ok {
				break
			}
			after = next
		}
		if len(seen) != 5 {
			t.Errorf("paged %d deliveries, want 5: %v", len(seen), seen)
		}
	})
	t.Run("deliveries filter by status", func(t *testing.T) {
		r := must(t, 200, f.call(t, "GET", "/v1/campaigns/"+s.campaign+"/deliveries?status=skipped", viewer, nil)).obj(t)
		ds := r["deliveries"].([]any)
		if len(ds) != 1 || ds[0].(map[string]any)["skip_reason"] != "opted_out" {
			t.Errorf("skipped deliveries %v", ds)
		}
	})
	t.Run("an unknown status or limit is 422 naming it", func(t *testing.T) {
		r := must(t, 422, f.call(t, "GET", "/v1/campaigns/"+s.campaign+"/deliveries?status=lost&limit=5000", viewer, nil))
		d := r.details(t)
		if _, ok := d["status"]; !ok {
			t.Errorf("details %v", d)
		}
		if _, ok := d["limit"]; !ok {
			t.Errorf("details %v", d)
		}
	})
	t.Run("a delivery in flight shows no sent_at", func(t *testing.T) {
		// The frequency cap reserves its place by setting sent_at on the
		// claimed delivery; the API must not show it as sent.
		id := ids[nums[1]]
		if _, err := f.store.ClaimDeliveries(ctx, c.ID, campaign.ChannelSMS, []int64{id}); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if _, err := f.store.ApplyCap(ctx, campaign.CapCheck{TenantID: tid, CampaignID: c.ID, Channel: campaign.ChannelSMS,
			SubscriberIDs: []int64{id}, Since: now.Add(-24 * time.Hour), Limit: 3, At: now, StaleBefore: now.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		stored, err := f.store.ListDeliveries(ctx, tid, c.ID, campaign.StatusSending, 0, 10)
		if err != nil || len(stored) != 1 || stored[0].SentAt == nil {
			t.Fatalf("the store should hold the reservation: %+v, %v", stored, err)
		}
		r := must(t, 200, f.call(t, "GET", "/v1/campaigns/"+s.campaign+"/deliveries?status=sending", viewer, nil)).obj(t)
		ds := r["deliveries"].([]any)
		if len(ds) != 1 {
			t.Fatalf("sending deliveries %v", ds)
		}
		if at, ok := ds[0].(map[string]any)["sent_at"]; ok {
			t.Errorf("a delivery still sending shows sent_at %v", at)
		}
	})
}

func TestSendTest(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	r := must(t, 200, f.call(t, "POST", "/v1/campaigns/"+s.campaign+"/test", mk, map[string]string{"msisdn": "0912 345 678"})).obj(t)
	if res := r["results"].([]any); len(res) != 1 || res[0].(map[string]any)["channel"] != "sms" {
		t.Errorf("results %v", r)
	}
	f.disp.mu.Lock()
	got := append([]string(nil), f.disp.tests...)
	f.disp.mu.Unlock()
	if len(got) != 1 || got[0] != "+84912345678" {
		t.Errorf("test sends went to %v", got)
	}
	r2 := must(t, 422, f.call(t, "POST", "/v1/campaigns/"+s.campaign+"/test", mk, map[string]string{"msisdn": "12"}))
	if _, ok := r2.details(t)["msisdn"]; !ok {
		t.Errorf("details %v", r2.details(t))
	}
	for _, e := range f.audit(t, tenantA) {
		if strings.Contains(string(e.Details), "912345678") {
			t.Errorf("audit entry %s holds the whole number: %s", e.Action, e.Details)
		}
	}
}

func TestAMarketerCannotStopAnAlert(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	r := must(t, 403, f.call(t, "POST", "/v1/campaigns/"+s.alert+"/cancel", f.key(tenantA, tenant.RoleMarketer), nil))
	if r.errorCode(t) != "forbidden" {
		t.Errorf("code %q", r.errorCode(t))
	}
	got := must(t, 200, f.call(t, "POST", "/v1/campaigns/"+s.alert+"/cancel", f.key(tenantA, tenant.RoleAdmin), nil)).obj(t)
	if got["state"] != "cancelled" {
		t.Errorf("state %v", got["state"])
	}
}

// A health key reads and lists exposure alerts only: install promotions,
// with their audiences, templates and budgets, are the marketer's.
func TestAHealthKeyDoesNotReadInstallPromotions(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	hk := f.key(tenantA, tenant.RoleHealth)
	if r := f.call(t, "GET", "/v1/campaigns/"+s.campaign, hk, nil); r.status != 403 || r.errorCode(t) != "forbidden" {
		t.Errorf("GET an install promotion with a health key: %d %s", r.status, r.body)
	}
	if r := f.call(t, "GET", "/v1/campaigns/"+s.alert, hk, nil); r.status != 200 {
		t.Errorf("GET an alert with a health key: %d %s", r.status, r.body)
	}
	r := must(t, 200, f.call(t, "GET", "/v1/campaigns", hk, nil))
	if strings.Contains(string(r.body), s.campaign) || !strings.Contains(string(r.body), s.alert) {
		t.Errorf("a health key's campaign list: %s, want the alert %s and not the promotion %s", r.body, s.alert, s.campaign)
	}
	if r := f.call(t, "GET", "/v1/campaigns?kind=install_promotion", hk, nil); r.status != 403 {
		t.Errorf("a health key listing install promotions: %d %s", r.status, r.body)
	}
	// A marketer still lists both.
	r = must(t, 200, f.call(t, "GET", "/v1/campaigns", f.key(tenantA, tenant.RoleMarketer), nil))
	if !strings.Contains(string(r.body), s.campaign) || !strings.Contains(string(r.body), s.alert) {
		t.Errorf("a marketer's campaign list: %s", r.body)
	}
}

// A campaign created with an English template reads back with it.
func TestACampaignKeepsItsLocaleTemplates(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	en := must(t, 201, f.call(t, "POST", "/v1/templates", mk, map[string]any{
		"name": "promo-en", "channel": "sms", "locale": "en",
		"body": "Install Bluezone for {{.RewardMB}}MB: {{.InstallLink}}",
	})).obj(t)["id"].(string)
	b := f.campaignBody(s)
	b["locale_templates"] = map[string]any{"en": map[string]string{"sms": en}}
	id := must(t, 201, f.call(t, "POST", "/v1/campaigns", mk, b)).obj(t)["id"].(string)
	got := must(t, 200, f.call(t, "GET", "/v1/campaigns/"+id, mk, nil)).obj(t)
	lt, _ := got["locale_templates"].(map[string]any)
	if sms, _ := lt["en"].(map[string]any); sms["sms"] != en {
		t.Errorf("locale_templates read back %v, want en's sms %s", got["locale_templates"], en)
	}
	if plain := must(t, 200, f.call(t, "GET", "/v1/campaigns/"+s.campaign, mk, nil)).obj(t); plain["locale_templates"] != nil {
		t.Errorf("a campaign with none shows locale_templates %v", plain["locale_templates"])
	}
}
