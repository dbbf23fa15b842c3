package subscriber

import (
	"bytes"
	"encoding/csv"
	"io"
	"math/rand/v2"
	"strconv"
)

// SyntheticRegions returns the provinces the synthetic subscriber base is
// spread over, with their 2019 census populations (approximate).
func SyntheticRegions() []Region {
	return []Region{
		{Code: "AG", Name: "An Giang", Population: 1908352},
		{Code: "BD", Name: "Bình Dương", Population: 2426561},
		{Code: "BN", Name: "Bắc Ninh", Population: 1368840},
		{Code: "CM", Name: "Cà Mau", Population: 1194476},
		{Code: "CT", Name: "Cần Thơ", Population: 1235171},
		{Code: "DB", Name: "Điện Biên", Population: 598856},
		{Code: "DL", Name: "Đắk Lắk", Population: 1869322},
		{Code: "DN", Name: "Đà Nẵng", Population: 1134310},
		{Code: "DNA", Name: "Đồng Nai", Population: 3097107},
		{Code: "HCM", Name: "TP. Hồ Chí Minh", Population: 8993082},
		{Code: "HG", Name: "Hà Giang", Population: 854679},
		{Code: "HN", Name: "Hà Nội", Population: 8053663},
		{Code: "HP", Name: "Hải Phòng", Population: 2028514},
		{Code: "HUE", Name: "Thừa Thiên Huế", Population: 1128620},
		{Code: "KH", Name: "Khánh Hòa", Population: 1231107},
		{Code: "LC", Name: "Lào Cai", Population: 730420},
		{Code: "LD", Name: "Lâm Đồng", Population: 1296906},
		{Code: "NA", Name: "Nghệ An", Population: 3327791},
		{Code: "QN", Name: "Quảng Ninh", Population: 1320324},
		{Code: "TH", Name: "Thanh Hóa", Population: 3640128},
	}
}

// SyntheticHeader is the header row of SyntheticCSV.
const SyntheticHeader = "msisdn,region,locale,name,plan"

// SyntheticCSV returns a CSV of n valid, distinct Vietnamese subscribers
// (header SyntheticHeader), produced lazily as it is read: a benchmark or
// the demo can stream millions of rows through an import without holding
// the file. Rows spread over SyntheticRegions by population; numbers come
// in national (0…), 84… and +84… forms; names carry diacritics. The same
// n and seed give the same file; n up to 240 million gives distinct numbers.
func SyntheticCSV(n int, seed int64) io.Reader {
	g := &synthetic{n: n, rng: rand.New(rand.NewPCG(uint64(seed), 0x6f7574726561636b))}
	g.offset = g.rng.Uint64N(synthSpace)
	g.regions = SyntheticRegions()
	for _, r := range g.regions {
		g.total += r.Population
		g.cumulative = append(g.cumulative, g.total)
	}
	g.w = csv.NewWriter(&g.buf)
	g.buf.WriteString(SyntheticHeader + "\n")
	return g
}

// Mobile prefixes (the two digits after 0) of the Vietnamese carriers.
var synthPrefixes = [...]string{
	"32", "33", "34", "35", "36", "37", "38", "39", "70", "76", "77", "78",
	"79", "81", "82", "83", "84", "85", "86", "88", "90", "91", "93", "94",
}

var (
	synthFamily = [...]string{"Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý"}
	synthMiddle = [...]string{"Văn", "Thị", "Minh", "Ngọc", "Hữu", "Thanh", "Đức", "Quốc", "Thu", "Gia"}
	synthGiven  = [...]string{"An", "Bình", "Châu", "Dũng", "Hà", "Hải", "Hạnh", "Hiếu", "Hoa", "Hùng", "Hương", "Khánh",
		"Lan", "Linh", "Long", "Mai", "Nam", "Nga", "Phúc", "Quân", "Thảo", "Trang", "Tuấn", "Vy", "Yến", "Đạt"}
)

const (
	synthSpace = 10_000_000 // seven digits after the prefix
	// synthStride is coprime to synthSpace, so i → i*stride+offset is a
	// permutation of the seven-digit suffixes: distinct yet scattered.
	synthStride = 7_654_321
)

type synthetic struct {
	n, i       int
	rng        *rand.Rand
	offset     uint64
	regions    []Region
	cumulative []int64
	total      int64
	buf        bytes.Buffer
	w          *csv.Writer
	rec        [5]string
	num        []byte
}

func (g *synthetic) Read(p []byte) (int, error) {
	for g.buf.Len() == 0 {
		if g.i >= g.n {
			return 0, io.EOF
		}
		for k := 0; k < 256 && g.i < g.n; k++ {
			g.row()
		}
		g.w.Flush()
	}
	return g.buf.Read(p)
}

func (g *synthetic) row() {
	i := uint64(g.i)
	g.i++
	prefix := synthPrefixes[i%uint64(len(synthPrefixes))]
	suffix := (i/uint64(len(synthPrefixes))*synthStride + g.offset) % synthSpace

	g.num = g.num[:0]
	switch f := g.rng.IntN(10); {
	case f == 0:
		g.num = append(g.num, "+84"...)
	case f == 1:
		g.num = append(g.num, "84"...)
	default:
		g.num = append(g.num, '0')
	}
	g.num = append(g.num, prefix...)
	s := strconv.AppendUint(nil, suffix, 10)
	for range 7 - len(s) {
		g.num = append(g.num, '0')
	}
	g.num = append(g.num, s...)

	pick := g.rng.Int64N(g.total)
	region := g.regions[len(g.regions)-1].Code
	for j, c := range g.cumulative {
		if pick < c {
			region = g.regions[j].Code
			break
		}
	}
	locale := "vi"
	if g.rng.IntN(10) == 0 {
		locale = "en"
	}
	plan := "prepaid"
	if g.rng.IntN(5) == 0 {
		plan = "postpaid"
	}
	g.rec = [5]string{
		string(g.num), region, locale,
		synthFamily[g.rng.IntN(len(synthFamily))] + " " + synthMiddle[g.rng.IntN(len(synthMiddle))] + " " + synthGiven[g.rng.IntN(len(synthGiven))],
		plan,
	}
	g.w.Write(g.rec[:]) // writes to a bytes.Buffer: cannot fail
}
