package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/config"
	"outreach/tenant"
)

// Each carrier on a deployment has its own opt-out short code, and may have
// its own window: an admin sets the tenant's policy, which takes the
// deployment's defaults for what it leaves out, and previews show it.
func TestATenantSetsItsOwnMarketingPolicy(t *testing.T) {
	f := newFixture(t)
	zone, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	window, _ := config.ParseWindow("07:00-22:00")
	capv, _ := config.ParseCap("3/24h")
	f.svc.Policy = &campaign.Policy{Zone: zone, Window: window, Cap: capv, Label: "QC", OptOutText: "Tu choi: soan TC gui 9241"}
	adminA := f.key(tenantA, tenant.RoleAdmin)

	want := func(key string, fields map[string]string) {
		t.Helper()
		got := must(t, http.StatusOK, f.call(t, "GET", "/v1/policy", key, nil)).obj(t)
		for k, v := range fields {
			if got[k] != v {
				t.Errorf("%s = %v, want %q (policy %v)", k, got[k], v, got)
			}
		}
	}
	defaults := map[string]string{"timezone": "Asia/Ho_Chi_Minh", "send_window": "07:00-22:00", "frequency_cap": "3/24h",
		"marketing_label": "QC", "opt_out_text": "Tu choi: soan TC gui 9241"}
	want(f.key(tenantA, tenant.RoleViewer), defaults)

	if r := f.call(t, "PUT", "/v1/policy", f.key(tenantA, tenant.RoleMarketer), map[string]string{"send_window": "08:00-20:00"}); r.status != http.StatusForbidden {
		t.Fatalf("a marketer setting the policy: %d %s, want 403", r.status, r.body)
	}
	r := f.call(t, "PUT", "/v1/policy", adminA, map[string]any{"timezone": "Mars/Olympus", "send_window": "7-22",
		"frequency_cap": "three", "opt_out_text": "   ", "marketing_label": strings.Repeat("Q", 200)})
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad settings: %d %s, want 422", r.status, r.body)
	}
	for _, field := range []string{"timezone", "send_window", "frequency_cap", "opt_out_text", "marketing_label"} {
		if _, ok := r.details(t)[field]; !ok {
			t.Errorf("the 422 does not name %s: %s", field, r.body)
		}
	}
	if r := f.call(t, "PUT", "/v1/policy", adminA, map[string]any{"sendwindow": "08:00-20:00"}); r.status/100 != 4 {
		t.Fatalf("an unknown field: %d %s, want it refused", r.status, r.body)
	}
	want(f.key(tenantA, tenant.RoleViewer), defaults) // nothing refused was stored

	set := must(t, http.StatusOK, f.call(t, "PUT", "/v1/policy", adminA, map[string]any{"send_window": "08:00-20:00",
		"opt_out_text": "Tu choi: soan HUY gui 1234", "marketing_label": ""})).obj(t)
	if set["send_window"] != "08:00-20:00" || set["frequency_cap"] != "3/24h" || set["marketing_label"] != "" {
		t.Errorf("the policy in effect after the change: %v", set)
	}
	want(f.key(tenantA, tenant.RoleMarketer), map[string]string{"send_window": "08:00-20:00", "opt_out_text": "Tu choi: soan HUY gui 1234",
		"timezone": "Asia/Ho_Chi_Minh", "marketing_label": ""})
	want(f.key(tenantB, tenant.RoleViewer), defaults) // the other carrier keeps the defaults

	// A marketing SMS preview carries each tenant's own opt-out text.
	preview := func(tn string) string {
		key := f.key(tn, tenant.RoleMarketer)
		tpl := must(t, http.StatusCreated, f.call(t, "POST", "/v1/templates", key, map[string]any{"name": "promo",
			"channel": "sms", "body": "Cai Bluezone nhan 5GB"})).obj(t)
		p := must(t, http.StatusOK, f.call(t, "POST", "/v1/templates/"+tpl["id"].(string)+"/preview", key,
			map[string]any{"kind": "install_promotion"})).obj(t)
		return p["text"].(string)
	}
	if a := preview(tenantA); a != "Cai Bluezone nhan 5GB - Tu choi: soan HUY gui 1234" {
		t.Errorf("tenant A's preview: %q", a)
	}
	if b := preview(tenantB); b != "QC: Cai Bluezone nhan 5GB - Tu choi: soan TC gui 9241" {
		t.Errorf("tenant B's preview: %q", b)
	}
}
