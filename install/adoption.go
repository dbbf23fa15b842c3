package install

import (
	"math"
	"sort"
	"strconv"

	"outreach/subscriber"
)

// Adoption is the adoption report: installs by region and national
// progress against a target.
type Adoption struct {
	Target   int64 `json:"target"`
	Installs int64 `json:"installs"`
	// Progress is Installs / Target, to three decimals.
	Progress float64 `json:"progress"`
	// Unassigned counts installs of numbers with no known region; they are
	// in Installs but in no region.
	Unassigned int64            `json:"unassigned"`
	Regions    []RegionAdoption `json:"regions"`
}

// RegionAdoption is one region's line of the report.
type RegionAdoption struct {
	Code       string `json:"code"`
	Name       string `json:"name"`
	Population int64  `json:"population"`
	Installs   int64  `json:"installs"`
	// Rate is Installs / Population, to three decimals (0 when the
	// population is unknown).
	Rate float64 `json:"rate"`
	// Rank is 1 for the highest rate; regions with no population come
	// last.
	Rank int `json:"rank"`
}

// BuildAdoption ranks the regions by install rate, highest first (ties by
// more installs, then by code), and sums the national figure. Installs
// counted under a code not among regions (or under none) go to Unassigned.
func BuildAdoption(regions []subscriber.Region, counts map[string]int64, target int64) Adoption {
	a := Adoption{Target: target, Regions: make([]RegionAdoption, 0, len(regions))}
	known := make(map[string]bool, len(regions))
	exact := make(map[string]float64, len(regions))
	for _, r := range regions {
		known[r.Code] = true
		n := counts[r.Code]
		ra := RegionAdoption{Code: r.Code, Name: r.Name, Population: r.Population, Installs: n}
		if r.Population > 0 {
			exact[r.Code] = float64(n) / float64(r.Population)
			ra.Rate = round3(exact[r.Code])
		}
		a.Regions = append(a.Regions, ra)
	}
	for code, n := range counts {
		a.Installs += n
		if !known[code] {
			a.Unassigned += n
		}
	}
	sort.SliceStable(a.Regions, func(i, j int) bool {
		x, y := a.Regions[i], a.Regions[j]
		if (x.Population > 0) != (y.Population > 0) {
			return x.Population > 0
		}
		if ex, ey := exact[x.Code], exact[y.Code]; ex != ey {
			return ex > ey
		}
		if x.Installs != y.Installs {
			return x.Installs > y.Installs
		}
		return x.Code < y.Code
	})
	for i := range a.Regions {
		a.Regions[i].Rank = i + 1
	}
	if target > 0 {
		a.Progress = round3(float64(a.Installs) / float64(target))
	}
	return a
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// CSV returns the report as rows: a header, one row per region in rank
// order, then the national row (code "national"), whose population column
// holds the target and whose rate is the progress.
func (a Adoption) CSV() [][]string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) }
	rows := [][]string{{"rank", "code", "name", "population", "installs", "rate"}}
	for _, r := range a.Regions {
		rows = append(rows, []string{strconv.Itoa(r.Rank), r.Code, r.Name, i(r.Population), i(r.Installs), f(r.Rate)})
	}
	return append(rows, []string{"", "national", "National (target)", i(a.Target), i(a.Installs), f(a.Progress)})
}
