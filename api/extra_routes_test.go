package api

import (
	"bytes"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"outreach/install"
	"outreach/reward"
	"outreach/store/sqlite"
	"outreach/subscriber"
)

// withExtraRoutes plugs in the routes other packages add through
// Deps.Extra, as the binary does: installs, rewards, reports, install links
// and the Twilio webhooks.
func withExtraRoutes() fixtureOption {
	return func(d *Deps) {
		st := d.Tenants.(*sqlite.Store)
		d.Extra = func(r *gin.Engine, auth AuthFunc) {
			ledger := &reward.Ledger{Store: st}
			RegisterInstallRoutes(r, auth, InstallDeps{Installs: &install.Service{Store: st, Tenants: st, Ledger: ledger,
				DefaultSecret: "deployment-secret"}, Ledger: ledger, Campaigns: st, AdoptionTarget: 50_000_000,
				StoreURL: "https://bluezone.gov.vn/"})
			TwilioWebhooks{AuthToken: "twiliotoken", PublicURL: "http://outreach.test", Receipts: st, OptOuts: st,
				Keywords: subscriber.DefaultKeywords}.Register(r)
		}
	}
}

// extraRoutes is the access matrix of the routes added through Extra; with
// routeMatrix it covers every route the binary serves.
var extraRoutes = []struct {
	method, path string
	// want is the status of a request with no key and no signature.
	want int
}{
	{"GET", "/v1/rewards", http.StatusUnauthorized},
	{"GET", "/v1/reports/adoption", http.StatusUnauthorized},
	{"POST", "/v1/installs", http.StatusUnauthorized}, // signed by the app backend, not keyed
	{"GET", "/i/:code", http.StatusFound},             // public install link
	{"POST", "/webhooks/twilio/status", http.StatusForbidden},
	{"POST", "/webhooks/twilio/inbound", http.StatusForbidden},
}

func TestEveryRouteOfTheBinaryIsInAMatrix(t *testing.T) {
	f := newFixture(t, withExtraRoutes())
	known := map[string]bool{}
	for _, rc := range routeMatrix {
		known[rc.name()] = true
	}
	for _, x := range extraRoutes {
		known[x.method+" "+x.path] = true
	}
	var missing []string
	for _, r := range f.engine.Routes() {
		if !known[r.Method+" "+r.Path] {
			missing = append(missing, r.Method+" "+r.Path)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("routes with no row in routeMatrix or extraRoutes: %v", missing)
	}
}

func TestRoutesAddedThroughExtraRefuseStrangers(t *testing.T) {
	f := newFixture(t, withExtraRoutes())
	for _, x := range extraRoutes {
		t.Run(x.method+" "+x.path+" without credentials", func(t *testing.T) {
			path := x.path
			if path == "/i/:code" {
				path = "/i/unknowncode"
			}
			req, _ := http.NewRequest(x.method, f.srv.URL+path, nil)
			// Not following redirects: the store URL is not reachable here.
			cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			res, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != x.want {
				t.Errorf("got %d, want %d", res.StatusCode, x.want)
			}
		})
	}
	for _, path := range []string{"/v1/rewards", "/v1/reports/adoption"} {
		for _, role := range allRoles {
			t.Run("a "+string(role)+" key reads "+path, func(t *testing.T) {
				if r := f.call(t, "GET", path, f.key(tenantA, role), nil); r.status != http.StatusOK {
					t.Errorf("got %d %s", r.status, r.body)
				}
			})
		}
	}
	t.Run("an install signed with another tenant's secret is refused", func(t *testing.T) {
		body := []byte(`{"msisdn":"+84912345678","device_id":"d1","platform":"android","installed_at":"2026-11-24T10:00:00Z"}`)
		req, _ := http.NewRequest("POST", f.srv.URL+"/v1/installs", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		install.SignRequest(req.Header, tenantB, "not-the-secret", body, time.Now())
		res, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("got %d, want 403 (forged)", res.StatusCode)
		}
	})
}
