package install

import (
	"math"
	"sort"
	"strconv"

	"outreach/internal/csvcell"
	"outreach/subscriber"
)

// Adoption is the adoption report: installs by region and national
// progress against a target.
type Adoption struct {
	Target   int64 `json:"target"`
	Installs int64 `json:"installs"`
	// Progress is Installs / Target, to three decimals (see Ratio).
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
	// Rate is Installs / Population, to three decimals (see Ratio; 0 when
	// the population is unknown).
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
			ra.Rate = Ratio(n, r.Population)
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
	a.Progress = Ratio(a.Installs, target)
	return a
}

// Ratio is n/d to three decimals, or to three significant digits when three
// decimals would round a non-zero ratio down to 0 (4 installs among 854,679
// people are 0.00000468, not 0). It is 0 when n is 0 or d is not positive.
func Ratio(n, d int64) float64 {
	if n <= 0 || d <= 0 {
		return 0
	}
	x := float64(n) / float64(d)
	if r := math.Round(x*1000) / 1000; r != 0 {
		return r
	}
	scale := math.Pow(10, 2-math.Floor(math.Log10(x)))
	return math.Round(x*scale) / scale
}

// formatRatio writes a ratio with three decimals, or with all the digits
// Ratio kept when it kept significant digits instead (a non-zero ratio
// under 0.001; 0.0005 rounded again to three decimals read 0.001).
func formatRatio(x float64) string {
	if x != 0 && x < 0.001 {
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return strconv.FormatFloat(x, 'f', 3, 64)
}

// CSV returns the report as rows: a header, one row per region in rank
// order, then the national row (code "national"). Every column means the
// same in every row: the national population is the sum of the regions'
// (installs counts every install, those of no known region too, and rate
// is installs / population). The target and the progress against it are
// the last two columns, empty in the regions' rows. Names and codes are
// made safe for spreadsheets (csvcell.Text).
func (a Adoption) CSV() [][]string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	rows := [][]string{{"rank", "code", "name", "population", "installs", "rate", "target", "progress"}}
	var population int64
	for _, r := range a.Regions {
		population += r.Population
		rows = append(rows, []string{strconv.Itoa(r.Rank), csvcell.Text(r.Code), csvcell.Text(r.Name),
			i(r.Population), i(r.Installs), formatRatio(r.Rate), "", ""})
	}
	if a.Unassigned > 0 {
		// The national installs count them: without this row the regions
		// would not add up to it.
		rows = append(rows, []string{"", "unassigned", "No known region", "", i(a.Unassigned), "", "", ""})
	}
	return append(rows, []string{"", "national", "National", i(population), i(a.Installs),
		formatRatio(Ratio(a.Installs, population)), i(a.Target), formatRatio(a.Progress)})
}
