package api

import (
	"encoding/csv"
	"strings"
	"testing"

	"outreach/tenant"
)

func TestCampaignStatsCSVEscapesTheName(t *testing.T) {
	f := newFixture(t)
	s := f.seed(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	const evil = `=HYPERLINK("http://evil"),x`
	body := f.campaignBody(s)
	body["name"] = evil
	id := must(t, 201, f.call(t, "POST", "/v1/campaigns", mk, body)).obj(t)["id"].(string)

	// JSON keeps the name as it is: only the CSV is for spreadsheets.
	if got := must(t, 200, f.call(t, "GET", "/v1/campaigns/"+id+"/stats", mk, nil)).obj(t)["name"]; got != evil {
		t.Errorf("JSON name = %q", got)
	}
	r := must(t, 200, f.call(t, "GET", "/v1/campaigns/"+id+"/stats?format=csv", f.key(tenantA, tenant.RoleViewer), nil))
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(r.body), utf8BOM))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, rec := range recs {
		got[rec[0]] = rec[1]
	}
	if got["name"] != "'"+evil {
		t.Errorf("name cell = %q, want %q", got["name"], "'"+evil)
	}
	if got["id"] != id || got["kind"] != "install_promotion" || got["state"] != "draft" || got["audience"] != "0" ||
		got["conversion_rate"] != "0" {
		t.Errorf("csv %v", got)
	}
	for _, rec := range recs {
		for _, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("cell %q of row %v opens with a formula character", cell, rec)
			}
		}
	}
}
