package api

import (
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/google/uuid"

	"outreach/tenant"
)

// routeCase is one row of the access matrix: every registered route has
// exactly one.
type routeCase struct {
	method, path string // the gin route template
	// public routes need no key.
	public bool
	// forbidden roles answer 403; every other role gets past auth.
	forbidden []tenant.Role
	// owned: the path names an object, so another tenant's key gets 404.
	owned bool
	// body is a request body that passes validation on tenant A's object
	// (so that only tenancy can refuse it); nil for none.
	body func(s seeded) any
	// contentType of body when it is not JSON.
	contentType string
}

var (
	notMarketer = []tenant.Role{tenant.RoleHealth, tenant.RoleViewer}
	notHealth   = []tenant.Role{tenant.RoleMarketer, tenant.RoleViewer}
	notAuthor   = []tenant.Role{tenant.RoleViewer}
	notAdmin    = []tenant.Role{tenant.RoleMarketer, tenant.RoleHealth, tenant.RoleViewer}
)

// routeMatrix is built once; TestEveryRouteIsInTheMatrix keeps it complete.
var routeMatrix = []routeCase{
	{method: "GET", path: "/healthz", public: true},
	{method: "GET", path: "/readyz", public: true},
	{method: "GET", path: "/metrics", public: true},

	{method: "PUT", path: "/v1/regions", forbidden: notAdmin},
	{method: "GET", path: "/v1/policy"},
	{method: "PUT", path: "/v1/policy", forbidden: notAdmin, body: func(seeded) any { return map[string]string{} }},

	{method: "POST", path: "/v1/subscribers/import", forbidden: notMarketer},
	{method: "GET", path: "/v1/subscribers/:msisdn", owned: true},
	{method: "PUT", path: "/v1/subscribers/:msisdn/devices", forbidden: notMarketer, owned: true,
		body: func(seeded) any { return map[string]string{"platform": "fcm", "token": "tok-1"} }},
	{method: "POST", path: "/v1/subscribers/:msisdn/opt-out", forbidden: notMarketer, owned: true},
	{method: "POST", path: "/v1/subscribers/:msisdn/opt-in", forbidden: notMarketer, owned: true},

	{method: "POST", path: "/v1/templates", forbidden: notAuthor},
	{method: "GET", path: "/v1/templates/:id", forbidden: notAuthor, owned: true},
	{method: "POST", path: "/v1/templates/:id/preview", forbidden: notAuthor, owned: true,
		body: func(seeded) any { return map[string]any{"vars": map[string]any{"Name": "An"}} }},

	{method: "POST", path: "/v1/campaigns", forbidden: notMarketer},
	{method: "GET", path: "/v1/campaigns", forbidden: notAuthor},
	{method: "GET", path: "/v1/campaigns/:id", forbidden: notAuthor, owned: true},
	{method: "POST", path: "/v1/campaigns/:id/start", forbidden: notMarketer, owned: true},
	{method: "POST", path: "/v1/campaigns/:id/pause", forbidden: notMarketer, owned: true},
	{method: "POST", path: "/v1/campaigns/:id/resume", forbidden: notMarketer, owned: true},
	{method: "POST", path: "/v1/campaigns/:id/cancel", forbidden: notMarketer, owned: true},
	{method: "POST", path: "/v1/campaigns/:id/test", forbidden: notMarketer, owned: true,
		body: func(seeded) any { return map[string]string{"msisdn": "0912345678"} }},
	{method: "GET", path: "/v1/campaigns/:id/stats", owned: true},
	{method: "GET", path: "/v1/campaigns/:id/deliveries", owned: true},

	{method: "POST", path: "/v1/alerts", forbidden: notHealth},
	{method: "GET", path: "/v1/alerts/:id", forbidden: notHealth, owned: true},
}

func (rc routeCase) name() string { return rc.method + " " + rc.path }

// concrete fills the template with tenant A's objects.
func (rc routeCase) concrete(s seeded) string {
	p := rc.path
	id := s.campaign
	switch {
	case strings.HasPrefix(p, "/v1/templates/"):
		id = s.smsTemplate
	case strings.HasPrefix(p, "/v1/alerts/"):
		id = s.alert
	}
	p = strings.Replace(p, ":id", id, 1)
	return strings.Replace(p, ":msisdn", s.msisdn, 1)
}

// unknown fills the template with ids and a number nobody has.
func (rc routeCase) unknown() string {
	p := strings.Replace(rc.path, ":id", uuid.NewString(), 1)
	return strings.Replace(p, ":msisdn", "+84987000111", 1)
}

func (rc routeCase) isForbidden(r tenant.Role) bool {
	for _, x := range rc.forbidden {
		if x == r {
			return true
		}
	}
	return false
}

func TestEveryRouteIsInTheMatrix(t *testing.T) {
	f := newFixture(t)
	registered := map[string]bool{}
	for _, r := range f.engine.Routes() {
		registered[r.Method+" "+r.Path] = true
	}
	inMatrix := map[string]bool{}
	for _, rc := range routeMatrix {
		if inMatrix[rc.name()] {
			t.Errorf("%s has two rows in the matrix", rc.name())
		}
		inMatrix[rc.name()] = true
	}
	var missing, stale []string
	for r := range registered {
		if !inMatrix[r] {
			missing = append(missing, r)
		}
	}
	for r := range inMatrix {
		if !registered[r] {
			stale = append(stale, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 {
		t.Errorf("routes with no row in routeMatrix (add one): %v", missing)
	}
	if len(stale) > 0 {
		t.Errorf("matrix rows for routes that are not registered: %v", stale)
	}
	withInstalls := newFixture(t, func(d *Deps) { d.Extra = InstallRoutes(InstallDeps{}) })
	for _, r := range withInstalls.engine.Routes() {
		registered[r.Method+" "+r.Path] = true
	}
	for r := range queryParams {
		if !registered[r] {
			t.Errorf("queryParams names %s, which is not registered", r)
		}
	}
}

func TestAccessMatrix(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	for _, rc := range routeMatrix {
		t.Run(rc.name(), func(t *testing.T) {
			if rc.public {
				r := f.call(t, rc.method, rc.path, "", nil)
				if r.status != http.StatusOK {
					t.Errorf("a public route answers %d without a key: %s", r.status, r.body)
				}
				return
			}
			path := rc.concrete(s)
			body := func() any {
				if rc.body == nil {
					return nil
				}
				return rc.body(s)
			}

			t.Run("no key is 401", func(t *testing.T) {
				r := f.callCT(t, rc.method, path, "", rc.contentType, body())
				if r.status != http.StatusUnauthorized || r.errorCode(t) != "unauthorized" {
					t.Errorf("got %d %s", r.status, r.body)
				}
				if r.header.Get("WWW-Authenticate") == "" {
					t.Error("no WWW-Authenticate header on a 401")
				}
			})
			t.Run("an unknown key is 401", func(t *testing.T) {
				r := f.callCT(t, rc.method, path, "ok_not-a-key", rc.contentType, body())
				if r.status != http.StatusUnauthorized {
					t.Errorf("got %d %s", r.status, r.body)
				}
			})
			t.Run("a malformed Authorization header is 401", func(t *testing.T) {
				req, _ := http.NewRequest(rc.method, f.srv.URL+path, nil)
				req.Header.Set("Authorization", "Basic "+f.key(tenantA, tenant.RoleAdmin))
				res, err := f.srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusUnauthorized {
					t.Errorf("got %d", res.StatusCode)
				}
			})
			for _, role := range allRoles {
				if !rc.isForbidden(role) {
					continue
				}
				t.Run("a "+string(role)+" key is 403", func(t *testing.T) {
					r := f.callCT(t, rc.method, path, f.key(tenantA, role), rc.contentType, body())
					if r.status != http.StatusForbidden || r.errorCode(t) != "forbidden" {
						t.Errorf("got %d %s", r.status, r.body)
					}
				})
			}
			if rc.owned {
				t.Run("another tenant's object is 404", func(t *testing.T) {
					r := f.callCT(t, rc.method, path, f.key(tenantB, tenant.RoleAdmin), rc.contentType, body())
					if r.status != http.StatusNotFound || r.errorCode(t) != "not_found" {
						t.Errorf("got %d %s", r.status, r.body)
					}
				})
			}
			// The allowed roles get past auth. Unknown ids and empty bodies
			// keep this free of side effects: the answer is a 404 or a
			// validation error, never 401 or 403.
			for _, role := range allRoles {
				if rc.isForbidden(role) {
					continue
				}
				t.Run("a "+string(role)+" key gets past auth", func(t *testing.T) {
					r := f.call(t, rc.method, rc.unknown(), f.key(tenantA, role), nil)
					if r.status == http.StatusUnauthorized || r.status == http.StatusForbidden || r.status >= 500 {
						t.Errorf("got %d %s", r.status, r.body)
					}
				})
			}
		})
	}
}

func TestAnotherTenantsCampaignsAreNotListed(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	r := must(t, 200, f.call(t, "GET", "/v1/campaigns", f.key(tenantB, tenant.RoleAdmin), nil))
	if cs := r.obj(t)["campaigns"].([]any); len(cs) != 0 {
		t.Errorf("tenant B sees %d campaigns of tenant A", len(cs))
	}
	r = must(t, 200, f.call(t, "GET", "/v1/campaigns", f.key(tenantA, tenant.RoleMarketer), nil))
	ids := map[string]bool{}
	for _, c := range r.obj(t)["campaigns"].([]any) {
		ids[c.(map[string]any)["id"].(string)] = true
	}
	if !ids[s.campaign] || !ids[s.alert] {
		t.Errorf("tenant A's list %v lacks its campaign %s or alert %s", ids, s.campaign, s.alert)
	}
	r = must(t, 200, f.call(t, "GET", "/v1/campaigns?kind=install_promotion", f.key(tenantA, tenant.RoleMarketer), nil))
	if cs := r.obj(t)["campaigns"].([]any); len(cs) != 1 {
		t.Errorf("kind filter lists %d campaigns, want 1", len(cs))
	}

	// Paged one at a time: every campaign once, then no next page.
	mk := f.key(tenantA, tenant.RoleMarketer)
	seen, after := map[string]bool{}, ""
	for range 5 {
		page := must(t, 200, f.call(t, "GET", "/v1/campaigns?limit=1&after="+after, mk, nil)).obj(t)
		for _, c := range page["campaigns"].([]any) {
			seen[c.(map[string]any)["id"].(string)] = true
		}
		next, _ := page["next_after"].(string)
		if next == "" {
			break
		}
		after = next
	}
	if len(seen) != len(ids) {
		t.Errorf("paging one at a time saw %d campaigns, the list has %d", len(seen), len(ids))
	}
	r = must(t, 422, f.call(t, "GET", "/v1/campaigns?after="+s.campaign, f.key(tenantB, tenant.RoleAdmin), nil))
	if _, ok := r.details(t)["after"]; !ok {
		t.Errorf("another tenant's campaign as the cursor: %s", r.body)
	}
}

func TestATemplateOfAnotherTenantCannotBeUsed(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	body := f.campaignBody(s)
	r := must(t, 422, f.call(t, "POST", "/v1/campaigns", f.key(tenantB, tenant.RoleMarketer), body))
	if _, ok := r.details(t)["templates.sms"]; !ok {
		t.Errorf("details %v do not name templates.sms", r.details(t))
	}
}
