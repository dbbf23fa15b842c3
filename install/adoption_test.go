package install

import (
	"reflect"
	"testing"

	"outreach/subscriber"
)

// The reference figures: Đà Nẵng 456,000 installs of 1,128,713 people is
// 40.4%, Hà Nội 2,397,000 of 8,043,624 is 29.8%, Quảng Ninh 371,000 of
// 1,320,285 is 28.1%, ranked in that order.
func TestBuildAdoptionReproducesTheReferenceFigures(t *testing.T) {
	regions := []subscriber.Region{
		{Code: "QN", Name: "Quảng Ninh", Population: 1_320_285},
		{Code: "HN", Name: "Hà Nội", Population: 8_043_624},
		{Code: "DN", Name: "Đà Nẵng", Population: 1_128_713},
		{Code: "XX", Name: "Unknown population", Population: 0},
	}
	counts := map[string]int64{"DN": 456_000, "HN": 2_397_000, "QN": 371_000, "XX": 5, "": 10}
	a := BuildAdoption(regions, counts, 50_000_000)
	want := []RegionAdoption{
		{Code: "DN", Name: "Đà Nẵng", Population: 1_128_713, Installs: 456_000, Rate: 0.404, Rank: 1},
		{Code: "HN", Name: "Hà Nội", Population: 8_043_624, Installs: 2_397_000, Rate: 0.298, Rank: 2},
		{Code: "QN", Name: "Quảng Ninh", Population: 1_320_285, Installs: 371_000, Rate: 0.281, Rank: 3},
		{Code: "XX", Name: "Unknown population", Installs: 5, Rank: 4},
	}
	if !reflect.DeepEqual(a.Regions, want) {
		t.Errorf("regions = %+v\nwant %+v", a.Regions, want)
	}
	if a.Installs != 3_224_015 || a.Unassigned != 10 || a.Target != 50_000_000 || a.Progress != 0.064 {
		t.Errorf("national = %d installs, %d unassigned, target %d, progress %v", a.Installs, a.Unassigned, a.Target, a.Progress)
	}
	rows := a.CSV()
	if len(rows) != 7 || rows[1][1] != "DN" || rows[1][5] != "0.404" || rows[5][1] != "unassigned" || rows[5][4] != "10" ||
		rows[6][1] != "national" || rows[6][4] != "3224015" {
		t.Errorf("csv = %v", rows)
	}
}

func TestBuildAdoptionWithNothingYet(t *testing.T) {
	a := BuildAdoption(nil, map[string]int64{}, 0)
	if a.Regions == nil || len(a.Regions) != 0 || a.Progress != 0 || a.Installs != 0 {
		t.Errorf("empty report = %+v", a)
	}
}

func TestRatioKeepsSmallRatesNonZero(t *testing.T) {
	cases := []struct {
		n, d int64
		want float64
		text string
	}{
		{456_000, 1_128_713, 0.404, "0.404"},
		{2_397_000, 8_043_624, 0.298, "0.298"},
		{371_000, 1_320_285, 0.281, "0.281"},
		{59_800, 854_679, 0.07, "0.070"},
		{4, 854_679, 0.00000468, "0.00000468"},
		{1, 100_000_000, 0.00000001, "0.00000001"},
		{1, 2000, 0.001, "0.001"}, // 0.0005 rounds up to three decimals
		{1, 3000, 0.000333, "0.000333"},
		{427, 854_679, 0.0005, "0.0005"}, // 0.00049960: three significant digits, written as kept (not 0.001)
		{0, 854_679, 0, "0.000"},
		{5, 0, 0, "0.000"},
		{5, 5, 1, "1.000"},
	}
	for _, c := range cases {
		got := Ratio(c.n, c.d)
		if got != c.want {
			t.Errorf("Ratio(%d, %d) = %v, want %v", c.n, c.d, got, c.want)
		}
		if s := formatRatio(got); s != c.text {
			t.Errorf("formatRatio(Ratio(%d, %d)) = %q, want %q", c.n, c.d, s, c.text)
		}
	}
}
