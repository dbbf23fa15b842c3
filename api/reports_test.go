package api_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"outreach/install"
	"outreach/subscriber"
	"outreach/tenant"
)

// adoptionFixture is the reference case: region, name, population and the
// installs the app had counted there.
const adoptionFixture = `code,name,population,installs
DN,Đà Nẵng,1128713,456000
HN,Hà Nội,8043624,2397000
QN,Quảng Ninh,1320285,371000
HG,Hà Giang,854679,59800
`

// TestTheAdoptionReportReproducesTheReferenceFigures seeds the counted
// installs in bulk through the store (a backfill of the app's own figures),
// adds a few through the callback so that both paths meet in the report,
// and reads the report as JSON and CSV.
func TestTheAdoptionReportReproducesTheReferenceFigures(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			h := newInstallHarness(t, kind.open(t))
			rows, err := csv.NewReader(strings.NewReader(adoptionFixture)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			var regions []subscriber.Region
			backfill := map[string]int64{}
			for _, r := range rows[1:] {
				var pop, n int64
				if err := json.Unmarshal([]byte(r[2]), &pop); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal([]byte(r[3]), &n); err != nil {
					t.Fatal(err)
				}
				regions = append(regions, subscriber.Region{Code: r[0], Name: r[1], Population: pop})
				backfill[r[0]] = n
			}
			if err := h.st.ReplaceRegions(h.ctx, h.tenant.ID, regions); err != nil {
				t.Fatal(err)
			}
			// Nine of Đà Nẵng's installs come in live, from subscribers 3, 6 … 27.
			h.seed(t, 27)
			backfill["DN"] -= 9
			if err := h.st.AddInstallCounts(h.ctx, h.tenant.ID, backfill); err != nil {
				t.Fatal(err)
			}
			for n := 3; n <= 27; n += 3 {
				body := []byte(`{"msisdn":"` + msisdnN(n) + `","device_id":"d` + msisdnN(n) + `","platform":"android","installed_at":"` +
					time.Now().Add(-time.Minute).UTC().Format(time.RFC3339) + `"}`)
				if status, _, raw := h.do(t, signedRequest(h.srv.URL, installTenant, installSecret, body, time.Now())); status != 200 {
					t.Fatalf("callback: %d %s", status, raw)
				}
			}
			// Another tenant's installs are not in this tenant's report.
			if err := h.st.AddInstallCounts(h.ctx, h.other.ID, map[string]int64{"DN": 1_000_000}); err != nil {
				t.Fatal(err)
			}

			status, body, _ := h.get(t, "/v1/reports/adoption", h.keys[tenant.RoleViewer])
			if status != http.StatusOK {
				t.Fatalf("%d %s", status, body)
			}
			var rep install.Adoption
			if err := json.Unmarshal(body, &rep); err != nil {
				t.Fatal(err)
			}
			want := []install.RegionAdoption{
				{Code: "DN", Name: "Đà Nẵng", Population: 1_128_713, Installs: 456_000, Rate: 0.404, Rank: 1},
				{Code: "HN", Name: "Hà Nội", Population: 8_043_624, Installs: 2_397_000, Rate: 0.298, Rank: 2},
				{Code: "QN", Name: "Quảng Ninh", Population: 1_320_285, Installs: 371_000, Rate: 0.281, Rank: 3},
				{Code: "HG", Name: "Hà Giang", Population: 854_679, Installs: 59_800, Rate: 0.07, Rank: 4},
			}
			if len(rep.Regions) != len(want) {
				t.Fatalf("regions = %+v", rep.Regions)
			}
			for i := range want {
				if rep.Regions[i] != want[i] {
					t.Errorf("rank %d = %+v, want %+v", i+1, rep.Regions[i], want[i])
				}
			}
			if rep.Target != 50_000_000 || rep.Installs != 3_283_800 || rep.Progress != 0.066 {
				t.Errorf("national: target %d installs %d progress %v", rep.Target, rep.Installs, rep.Progress)
			}
			var raw map[string]any
			_ = json.Unmarshal(body, &raw)
			for _, k := range []string{"target", "installs", "progress", "regions"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("JSON lacks %q: %s", k, body)
				}
			}

			status, body, hdr := h.get(t, "/v1/reports/adoption?format=csv", h.keys[tenant.RoleViewer])
			if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") {
				t.Fatalf("csv: %d %s %s", status, hdr.Get("Content-Type"), body)
			}
			wantCSV(t, body, [][]string{
				{"rank", "code", "name", "population", "installs", "rate", "target", "progress"},
				{"1", "DN", "Đà Nẵng", "1128713", "456000", "0.404", "", ""},
				{"2", "HN", "Hà Nội", "8043624", "2397000", "0.298", "", ""},
				{"3", "QN", "Quảng Ninh", "1320285", "371000", "0.281", "", ""},
				{"4", "HG", "Hà Giang", "854679", "59800", "0.070", "", ""},
				// The national population is the regions' sum; the target has
				// a column of its own.
				{"", "national", "National", "11347301", "3283800", "0.289", "50000000", "0.066"},
			})

			if status, _, _ := h.get(t, "/v1/reports/adoption?format=xml", h.keys[tenant.RoleViewer]); status != 422 {
				t.Errorf("format=xml: %d, want 422", status)
			}
			if status, _, _ := h.get(t, "/v1/reports/adoption", ""); status != 401 {
				t.Errorf("no key: %d, want 401", status)
			}
			status, body, _ = h.get(t, "/v1/reports/adoption", h.otherKey)
			var theirs install.Adoption
			if err := json.Unmarshal(body, &theirs); status != 200 || err != nil || theirs.Installs != 1_000_000 || len(theirs.Regions) != 0 {
				t.Errorf("the other tenant's report: %d %s", status, body)
			}
		})
	}
}
