package templates

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// From the reference article (reference/000_7f06aff93d6fc19b.txt).
const (
	headline = "Bluezone vượt mốc 20 triệu lượt tải, nhưng bao nhiêu mới đủ?"
	slogan   = "Bluezone càng hiệu quả khi càng nhiều người cài."
	figures  = "Cụ thể, Đà Nẵng có 456.000 cài đặt (đạt tỉ lệ 40,4%), Hà Nội là 2.397.000 (đạt tỉ lệ 29,8%), " +
		"Quảng Ninh là 371.000 (đạt tỉ lệ 28,1%), TP.HCM là 2.397.000 (đạt tỉ lệ 26,7%), Hải Dương là 398.000 " +
		"(đạt tỉ lệ 23,4%). Ngược lại, Hà Giang, Điện Biên, Bạc Liêu, Sơn La và Trà Vinh là 5 địa phương có tỉ lệ " +
		"người dùng Bluezone thấp nhất, chỉ đạt trên dưới 7%."
	promo   = "Cài Bluezone để bảo vệ cả cộng đồng và nhận tới 5GB lưu lượng truy cập Internet miễn phí. Tải ngay: https://bluezone.gov.vn"
	promoQC = "QC: Cài đặt Bluezone để được tặng lưu lượng truy cập Internet lên tới 5GB. Tải tại https://bluezone.gov.vn. Từ chối QC soạn TC gửi 9241"
)

func TestCountSMS(t *testing.T) {
	t.Parallel()
	r := strings.Repeat
	cases := []struct {
		name string
		text string
		want Count
	}{
		{"empty text is GSM-7 with no segments", "", Count{GSM7, 0, 0, 0}},
		{"160 a fit one GSM-7 segment", r("a", 160), Count{GSM7, 160, 160, 1}},
		{"161 a need two GSM-7 segments", r("a", 161), Count{GSM7, 161, 161, 2}},
		{"306 a fill exactly two parts of 153", r("a", 306), Count{GSM7, 306, 306, 2}},
		{"307 a need a third part", r("a", 307), Count{GSM7, 307, 307, 3}},
		{"80 euro signs cost 160 septets in one segment", r("€", 80), Count{GSM7, 80, 160, 1}},
		{"81 euro signs need two segments", r("€", 81), Count{GSM7, 81, 162, 2}},
		{"every extension character costs two septets", "\f^{}\\[~]|€", Count{GSM7, 10, 20, 1}},
		{"70 ư fit one UCS-2 segment", r("ư", 70), Count{UCS2, 70, 70, 1}},
		{"71 ư need two UCS-2 segments", r("ư", 71), Count{UCS2, 71, 71, 2}},
		{"134 ư fill exactly two parts of 67", r("ư", 134), Count{UCS2, 134, 134, 2}},
		{"135 ư need a third part", r("ư", 135), Count{UCS2, 135, 135, 3}},
		{"68 ư and an emoji fill one segment", r("ư", 68) + "😀", Count{UCS2, 69, 70, 1}},
		{"69 ư and an emoji need two segments because the emoji costs two units", r("ư", 69) + "😀", Count{UCS2, 70, 71, 2}},
		{"one emoji makes ASCII text UCS-2", "Hi 😀", Count{UCS2, 4, 5, 1}},
		{"NFD Xin chào counts as GSM-7 with 8 characters", "Xin cha\u0300o", Count{GSM7, 8, 8, 1}},
		{"NFC Xin chào is GSM-7 too", "Xin chào", Count{GSM7, 8, 8, 1}},
		{"à è é ì ò ù keep text in GSM-7", "à è é ì ò ù", Count{GSM7, 11, 11, 1}},
		{"one ơ puts the whole text in UCS-2", "Xin chào bơ", Count{UCS2, 11, 11, 1}},
		{"line breaks are GSM-7", "a\r\nb\n", Count{GSM7, 5, 5, 1}},
		{"the escape control is not itself GSM-7", "\x1b", Count{UCS2, 1, 1, 1}},
		{"a tab is not GSM-7", "a\tb", Count{UCS2, 3, 3, 1}},
		{"the article headline is one UCS-2 segment", headline, Count{UCS2, 60, 60, 1}},
		{"the article slogan is one UCS-2 segment", slogan, Count{UCS2, 48, 48, 1}},
		{"the promo is two UCS-2 segments", promo, Count{UCS2, 123, 123, 2}},
		{"the labelled promo is three UCS-2 segments", promoQC, Count{UCS2, 135, 135, 3}},
		{"the province figures are six UCS-2 segments", figures, Count{UCS2, 351, 351, 6}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := CountSMS(tc.text); got != tc.want {
				t.Errorf("CountSMS = %+v, want %+v", got, tc.want)
			}
			if got := len(SplitSMS(tc.text)); got != tc.want.Segments {
				t.Errorf("len(SplitSMS) = %d, want %d", got, tc.want.Segments)
			}
		})
	}
}

func TestSplitSMS(t *testing.T) {
	t.Parallel()
	r := strings.Repeat
	cases := []struct {
		name string
		text string
		want []string
	}{
		{"empty text has no parts", "", nil},
		{"text within one segment is one part", "Xin chào", []string{"Xin chào"}},
		{"161 a split as 153 and 8", r("a", 161), []string{r("a", 153), r("a", 8)}},
		{"a euro sign straddling the 153-septet boundary moves whole to the next part",
			r("a", 152) + "€" + r("a", 10), []string{r("a", 152), "€" + r("a", 10)}},
		{"a euro sign ending exactly at 153 septets stays in the first part",
			r("a", 151) + "€" + r("a", 10), []string{r("a", 151) + "€", r("a", 10)}},
		{"an emoji straddling the 67-unit boundary moves whole to the next part",
			r("ư", 66) + "😀" + r("ư", 10), []string{r("ư", 66), "😀" + r("ư", 10)}},
		{"69 ư and an emoji split as 67 ư then 2 ư and the emoji",
			r("ư", 69) + "😀", []string{r("ư", 67), "ưư😀"}},
		{"decomposed input comes back composed", r("a\u0300", 161), []string{r("à", 153), r("à", 8)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := SplitSMS(tc.text)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d parts %q, want %d", len(got), got, len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("part %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestSplitSMSAgreesWithCountSMS(t *testing.T) {
	t.Parallel()
	pieces := []string{"a", "€", "ư", "😀", "é", "a\u0301", "{", "\n", "Đà Nẵng ", "ok ", "\xff"}
	rng := rand.New(rand.NewPCG(1, 2))
	var inputs []string
	for _, p := range pieces {
		for n := 0; n <= 330; n++ {
			inputs = append(inputs, strings.Repeat(p, n))
		}
	}
	for range 2000 {
		var b strings.Builder
		for range rng.IntN(200) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		inputs = append(inputs, b.String())
	}
	for _, in := range inputs {
		checkInvariants(t, in)
	}
}

// checkInvariants holds for every input; the fuzzer uses it too.
func checkInvariants(t *testing.T, text string) {
	t.Helper()
	c, parts := CountSMS(text), SplitSMS(text)
	nfc := norm.NFC.String(text)
	if want := referenceCount(nfc); c != want {
		t.Fatalf("CountSMS(%q) = %+v, reference says %+v", text, c, want)
	}
	if len(parts) != c.Segments {
		t.Fatalf("%q: %d parts, %d segments", text, len(parts), c.Segments)
	}
	if text != "" && c.Segments < 1 {
		t.Fatalf("%q: non-empty text with %d segments", text, c.Segments)
	}
	if got := strings.Join(parts, ""); got != nfc {
		t.Fatalf("%q: parts join to %q, want the NFC text %q", text, got, nfc)
	}
	if c.Characters != utf8.RuneCountInString(nfc) {
		t.Fatalf("%q: %d characters, NFC text has %d runes", text, c.Characters, utf8.RuneCountInString(nfc))
	}
	limit := 153
	if c.Encoding == UCS2 {
		limit = 67
	}
	if c.Segments == 1 {
		limit = 160
		if c.Encoding == UCS2 {
			limit = 70
		}
	}
	sum := 0
	for i, p := range parts {
		u := referenceUnits(p, c.Encoding)
		if p == "" || u > limit {
			t.Fatalf("%q: part %d %q has %d units, limit %d", text, i, p, u, limit)
		}
		sum += u
	}
	if sum != c.Units {
		t.Fatalf("%q: parts hold %d units, count says %d", text, sum, c.Units)
	}
}

// referenceCount is the algorithm from reference/providers.md §2, written
// apart from the package's lookup table so that the two check each other.
func referenceCount(s string) Count {
	c := Count{Encoding: GSM7}
	for _, r := range s {
		c.Characters++
		if referenceGSM(r) == 0 {
			c.Encoding = UCS2
		}
	}
	var units []int
	for _, r := range s {
		units = append(units, referenceUnits(string(r), c.Encoding))
		c.Units += units[len(units)-1]
	}
	single, multi := 160, 153
	if c.Encoding == UCS2 {
		single, multi = 70, 67
	}
	switch {
	case c.Units == 0:
	case c.Units <= single:
		c.Segments = 1
	default:
		segs, used := 1, 0
		for _, u := range units {
			if used+u > multi {
				segs++
				used = 0
			}
			used += u
		}
		c.Segments = segs
	}
	return c
}

func referenceUnits(s string, e Encoding) int {
	n := 0
	for _, r := range s {
		if e == GSM7 {
			n += referenceGSM(r)
		} else {
			n += utf8.RuneLen(r)/4 + 1 // 4-byte UTF-8 is exactly the non-BMP range
		}
	}
	return n
}

func referenceGSM(r rune) int {
	switch {
	case r == 0x1B:
		return 0
	case strings.ContainsRune(gsmBasic, r):
		return 1
	case strings.ContainsRune(gsmExtension, r):
		return 2
	}
	return 0
}

func TestGSMAlphabet(t *testing.T) {
	t.Parallel()
	t.Run("the basic table has 128 codes in rows of 16", func(t *testing.T) {
		if n := utf8.RuneCountInString(gsmBasic); n != 128 {
			t.Fatalf("%d runes", n)
		}
	})
	t.Run("characters sit at their GSM 03.38 septets", func(t *testing.T) {
		table := []rune(gsmBasic)
		for septet, want := range map[int]rune{0x00: '@', 0x01: '£', 0x02: '$', 0x03: '¥', 0x09: 'Ç', 0x0A: '\n',
			0x0D: '\r', 0x10: 'Δ', 0x11: '_', 0x1F: 'É', 0x20: ' ', 0x24: '¤', 0x40: '¡', 0x41: 'A',
			0x5B: 'Ä', 0x5F: '§', 0x60: '¿', 0x61: 'a', 0x7B: 'ä', 0x7F: 'à'} {
			if table[septet] != want {
				t.Errorf("septet %#x is %q, want %q", septet, table[septet], want)
			}
		}
	})
	t.Run("printable ASCII is GSM-7 except the backtick, and the extension characters cost two", func(t *testing.T) {
		for r := rune(0x20); r < 0x7F; r++ {
			want := 1
			switch {
			case r == '`':
				want = 0
			case strings.ContainsRune(`^{}\[~]|`, r):
				want = 2
			}
			if got := gsmSeptets(r); got != want {
				t.Errorf("%q costs %d, want %d", r, got, want)
			}
		}
	})
	t.Run("Greek capitals in the table are GSM-7 and other Greek is not", func(t *testing.T) {
		for _, r := range "ΔΦΓΛΩΠΨΣΘΞ" {
			if gsmSeptets(r) != 1 {
				t.Errorf("%q is not GSM-7", r)
			}
		}
		for _, r := range "ΑΒαωç\tĐđ" {
			if gsmSeptets(r) != 0 {
				t.Errorf("%q is GSM-7", r)
			}
		}
	})
	t.Run("the euro sign is the only extension character above the table", func(t *testing.T) {
		if gsmSeptets('€') != 2 {
			t.Errorf("€ costs %d", gsmSeptets('€'))
		}
	})
	t.Run("the lookup table agrees with the alphabet strings for every rune it covers", func(t *testing.T) {
		for r := rune(0); r < 0x3000; r++ {
			if gsmSeptets(r) != referenceGSM(r) {
				t.Errorf("%U: table %d, strings %d", r, gsmSeptets(r), referenceGSM(r))
			}
		}
	})
}

func BenchmarkCountSMS(b *testing.B) {
	for _, bc := range []struct{ name, text string }{
		{"ascii-160", strings.Repeat("a", 160)},
		{"vietnamese-351", figures},
		{"vietnamese-nfd-351", norm.NFD.String(figures)},
		{"gsm-after-transliteration", Transliterate(figures)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.text)))
			for b.Loop() {
				CountSMS(bc.text)
			}
		})
	}
}
