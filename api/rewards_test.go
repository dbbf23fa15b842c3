package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"outreach/reward"
	"outreach/tenant"
)

type rewardsPage struct {
	Rewards []struct {
		ID         string `json:"id"`
		CampaignID string `json:"campaign_id"`
		MSISDN     string `json:"msisdn"`
		DataMB     int64  `json:"data_mb"`
		State      string `json:"state"`
		Reason     string `json:"reason"`
	} `json:"rewards"`
	NextAfter int64 `json:"next_after"`
}

func TestRewardsAreListedByTenantPagedAndFiltered(t *testing.T) {
	h := newInstallHarness(t, storeKinds[0].open(t))
	ids := h.seed(t, 5)
	c := h.promote(t, ids, 5, 3*installTestData) // covers three of five
	for n := 1; n <= 5; n++ {
		if status, _, raw := h.do(t, signedRequest(h.srv.URL, installTenant, installSecret,
			callback(n, time.Now().Add(-time.Minute)), time.Now())); status != 200 {
			t.Fatalf("callback %d: %d %s", n, status, raw)
		}
	}
	h.drain(t)

	list := func(query, key string) (int, rewardsPage, []byte) {
		t.Helper()
		status, body, _ := h.get(t, "/v1/rewards"+query, key)
		var p rewardsPage
		_ = json.Unmarshal(body, &p)
		return status, p, body
	}
	viewer := h.keys[tenant.RoleViewer]
	status, all, body := list("", viewer)
	if status != http.StatusOK || len(all.Rewards) != 5 || all.NextAfter != 0 {
		t.Fatalf("all: %d %s", status, body)
	}
	var pages []string
	after := int64(0)
	for range 10 {
		_, p, _ := list(fmt.Sprintf("?limit=2&after=%d", after), viewer)
		for _, r := range p.Rewards {
			pages = append(pages, r.ID)
		}
		if p.NextAfter == 0 {
			break
		}
		after = p.NextAfter
	}
	if len(pages) != 5 {
		t.Errorf("paged through %d rewards, want 5", len(pages))
	}
	_, granted, _ := list("?campaign_id="+c.ID+"&status=granted", viewer)
	_, rejected, _ := list("?campaign_id="+c.ID+"&status=rejected", viewer)
	if len(granted.Rewards) != 3 || len(rejected.Rewards) != 2 {
		t.Errorf("granted %d, rejected %d; want 3 and 2", len(granted.Rewards), len(rejected.Rewards))
	}
	for _, r := range rejected.Rewards {
		if r.Reason != string(reward.ReasonBudgetExhausted) || r.CampaignID != c.ID || r.DataMB != installTestData {
			t.Errorf("rejected reward %+v", r)
		}
	}
	if status, p, _ := list("", h.otherKey); status != 200 || len(p.Rewards) != 0 {
		t.Errorf("another tenant sees %d rewards", len(p.Rewards))
	}
	// Another tenant's campaign, or none, is a 404 as its deliveries are,
	// not an empty page that reads "no rewards yet".
	for _, q := range []struct{ query, key string }{{"?campaign_id=" + c.ID, h.otherKey},
		{"?campaign_id=" + uuid.NewString(), viewer}} {
		if status, p, body := list(q.query, q.key); status != 404 || len(p.Rewards) != 0 {
			t.Errorf("%s: %d %s, want 404", q.query, status, body)
		}
	}
	for _, q := range []string{"?status=lost", "?campaign_id=nope", "?limit=5000", "?after=-1", "?limit=x", "?stauts=granted",
		"?status=granted&state=pending"} {
		if status, _, body := list(q, viewer); status != 422 {
			t.Errorf("%s: %d %s, want 422", q, status, body)
		}
	}
	// The error names the parameter the client sent, and a limit of 0,
	// which reads as none, is refused rather than answered a default page.
	for q, field := range map[string]string{"?state=bogus": "state", "?status=bogus": "status", "?limit=0": "limit"} {
		status, _, body := list(q, viewer)
		var e struct {
			Error struct{ Details map[string]string }
		}
		json.Unmarshal(body, &e)
		if status != 422 || len(e.Error.Details) != 1 || e.Error.Details[field] == "" {
			t.Errorf("%s: %d %s, want 422 naming %s alone", q, status, body, field)
		}
	}
	if status, _, _ := list("", ""); status != 401 {
		t.Errorf("no key: %d", status)
	}
}
