package api_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"outreach/install"
	"outreach/subscriber"
	"outreach/tenant"
)

// TestTheAdoptionCSVIsSafeAndHonest checks the adoption report's CSV
// escapes a region name that would be a spreadsheet formula, that its
// national row sums the regions' population and carries the target in a
// column of its own, and that a few installs among many people do not
// show as a rate of 0.
func TestTheAdoptionCSVIsSafeAndHonest(t *testing.T) {
	h := newInstallHarness(t, storeKinds[0].open(t))
	regions := []subscriber.Region{
		{Code: "DN", Name: "Đà Nẵng", Population: 1_128_713},
		{Code: "HG", Name: "=cmd|calc", Population: 854_679},
		{Code: "-X", Name: "@SUM(A1)", Population: 1000},
	}
	if err := h.st.ReplaceRegions(h.ctx, h.tenant.ID, regions); err != nil {
		t.Fatal(err)
	}
	if err := h.st.AddInstallCounts(h.ctx, h.tenant.ID, map[string]int64{"DN": 456_000, "HG": 4, "ZZ": 6}); err != nil {
		t.Fatal(err)
	}
	viewer := h.keys[tenant.RoleViewer]

	status, body, _ := h.get(t, "/v1/reports/adoption", viewer)
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	var rep install.Adoption
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatal(err)
	}
	rates := map[string]float64{}
	for _, r := range rep.Regions {
		rates[r.Code] = r.Rate
	}
	if rates["DN"] != 0.404 || rates["HG"] != 0.00000468 || rates["-X"] != 0 {
		t.Errorf("rates = %v, want DN 0.404, HG 0.00000468, -X 0", rates)
	}
	if rep.Installs != 456_010 || rep.Progress != 0.009 || rep.Target != 50_000_000 {
		t.Errorf("national: installs %d progress %v target %d", rep.Installs, rep.Progress, rep.Target)
	}
	// The JSON keeps names as they are.
	if !strings.Contains(string(body), `"=cmd|calc"`) {
		t.Errorf("JSON lost the region name: %s", body)
	}

	status, body, _ = h.get(t, "/v1/reports/adoption?format=csv", viewer)
	if status != http.StatusOK {
		t.Fatalf("csv: %d %s", status, body)
	}
	wantCSV(t, body, [][]string{
		{"rank", "code", "name", "population", "installs", "rate", "target", "progress"},
		{"1", "DN", "Đà Nẵng", "1128713", "456000", "0.404", "", ""},
		{"2", "HG", "'=cmd|calc", "854679", "4", "0.00000468", "", ""},
		{"3", "'-X", "'@SUM(A1)", "1000", "0", "0.000", "", ""},
		// The regions add up to the national installs with those of no
		// known region.
		{"", "unassigned", "No known region", "", "6", "", "", ""},
		{"", "national", "National", "1984392", "456010", "0.230", "50000000", "0.009"},
	})
}

// wantCSV checks a CSV body row by row.
func wantCSV(t *testing.T, body []byte, want [][]string) {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(csvText(t, body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(want) {
		t.Fatalf("csv = %q, want %d rows", recs, len(want))
	}
	for i := range want {
		if strings.Join(recs[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("csv row %d = %q, want %q", i, recs[i], want[i])
		}
	}
}

// csvText is a CSV report's body after the UTF-8 byte-order mark it must
// begin with (Excel reads Vietnamese right only with it).
func csvText(t *testing.T, body []byte) string {
	t.Helper()
	text, ok := strings.CutPrefix(string(body), "\ufeff")
	if !ok {
		t.Errorf("the CSV does not begin with a UTF-8 byte-order mark: % x", body[:min(len(body), 8)])
	}
	return text
}
