package templates

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// vowels lists every Vietnamese vowel with no tone, then huyền, sắc, hỏi,
// ngã and nặng, written precomposed.
var vowels = []struct{ plain, toned string }{
	{"a", "aàáảãạ"}, {"a", "ăằắẳẵặ"}, {"a", "âầấẩẫậ"},
	{"e", "eèéẻẽẹ"}, {"e", "êềếểễệ"},
	{"i", "iìíỉĩị"},
	{"o", "oòóỏõọ"}, {"o", "ôồốổỗộ"}, {"o", "ơờớởỡợ"},
	{"u", "uùúủũụ"}, {"u", "ưừứửữự"},
	{"y", "yỳýỷỹỵ"},
}

func TestVowelTable(t *testing.T) {
	t.Parallel()
	t.Run("each row holds the base vowel and its five tones composed", func(t *testing.T) {
		tones := []string{"", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323"}
		for _, v := range vowels {
			base := string([]rune(v.toned)[0])
			for i, r := range []rune(v.toned) {
				if want := norm.NFC.String(base + tones[i]); string(r) != want {
					t.Errorf("%q tone %d is %q, want %q", base, i, r, want)
				}
			}
		}
	})
}

func TestTransliterate(t *testing.T) {
	t.Parallel()
	for _, v := range vowels {
		for _, r := range v.toned {
			lower, upper := string(r), strings.ToUpper(string(r))
			t.Run(lower+" and "+upper+" lose their marks", func(t *testing.T) {
				t.Parallel()
				if got := Transliterate(lower); got != v.plain {
					t.Errorf("Transliterate(%q) = %q, want %q", lower, got, v.plain)
				}
				if got, want := Transliterate(upper), strings.ToUpper(v.plain); got != want {
					t.Errorf("Transliterate(%q) = %q, want %q", upper, got, want)
				}
				if utf8.RuneCountInString(upper) != 1 {
					t.Errorf("%q has no single-rune capital", lower)
				}
			})
		}
	}
	cases := []struct{ name, in, want string }{
		{"đ and Đ become d and D", "Đà Nẵng đẹp", "Da Nang dep"},
		{"the Eth that legacy encodings used for Đ becomes D", "Ðiện Biên", "Dien Bien"},
		{"decomposed input comes out plain", norm.NFD.String("Điện Biên"), "Dien Bien"},
		{"plain ASCII is untouched", "Cai Bluezone: https://bluezone.gov.vn?a=1&b={x}", "Cai Bluezone: https://bluezone.gov.vn?a=1&b={x}"},
		{"curly quotes, dashes and the ellipsis become ASCII", "“Bluezone” – ‘an toàn’ — tờ rơi…", `"Bluezone" - 'an toan' - to roi...`},
		{"a no-break space becomes a space", "5\u00a0GB", "5 GB"},
		{"the article headline", headline, "Bluezone vuot moc 20 trieu luot tai, nhung bao nhieu moi du?"},
		{"an emoji survives", "Cảm ơn 😀", "Cam on 😀"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Transliterate(tc.in); got != tc.want {
				t.Errorf("Transliterate(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	t.Run("the whole reference article becomes GSM-7", func(t *testing.T) {
		t.Parallel()
		for _, text := range []string{headline, slogan, figures, promo, promoQC} {
			if c := CountSMS(Transliterate(text)); c.Encoding != GSM7 {
				t.Errorf("%q stays %s", Transliterate(text), c.Encoding)
			}
		}
	})
	t.Run("transliterating twice changes nothing more", func(t *testing.T) {
		t.Parallel()
		once := Transliterate(figures)
		if twice := Transliterate(once); twice != once {
			t.Errorf("%q then %q", once, twice)
		}
	})
}

func TestPreview(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		in            string
		transliterate bool
		text          string
		count         Count
	}{
		{"a Vietnamese promo of two UCS-2 segments stays so without transliteration",
			promo, false, promo, Count{UCS2, 123, 123, 2}},
		{"the same promo becomes one GSM-7 segment when transliterated",
			promo, true, "Cai Bluezone de bao ve ca cong dong va nhan toi 5GB luu luong truy cap Internet mien phi. Tai ngay: https://bluezone.gov.vn",
			Count{GSM7, 123, 123, 1}},
		{"the labelled promo drops from three UCS-2 segments to one GSM-7 segment",
			promoQC, true, "QC: Cai dat Bluezone de duoc tang luu luong truy cap Internet len toi 5GB. Tai tai https://bluezone.gov.vn. Tu choi QC soan TC gui 9241",
			Count{GSM7, 135, 135, 1}},
		{"the province figures drop from six segments to three",
			figures, true, Transliterate(figures), Count{GSM7, 351, 351, 3}},
		{"decomposed text is returned composed, as it must be sent",
			"Xin cha\u0300o", false, "Xin chào", Count{GSM7, 8, 8, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			text, count := Preview(tc.in, tc.transliterate)
			if text != tc.text || count != tc.count {
				t.Errorf("Preview = %q, %+v; want %q, %+v", text, count, tc.text, tc.count)
			}
		})
	}
}

// TestSMSText: the text to send is NFC whatever the input's form, so that
// CountSMS (which measures the NFC form) counts what is sent.
func TestSMSText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		in            string
		transliterate bool
		want          string
		count         Count
	}{
		{"decomposed GSM-7 Vietnamese is composed", "Xin cha\u0300o", false, "Xin chào", Count{GSM7, 8, 8, 1}},
		{"decomposed UCS-2 Vietnamese is composed", "Vie\u0323\u0302t Nam", false, "Việt Nam", Count{UCS2, 8, 8, 1}},
		{"decomposed Vietnamese transliterated is plain ASCII", "Vie\u0323\u0302t Nam", true, "Viet Nam", Count{GSM7, 8, 8, 1}},
		{"marks in a non-canonical order are composed", "e\u0301\u0323", false, "\u1EB9\u0301", Count{UCS2, 2, 2, 1}},
		{"composed text is returned as it is", promo, false, promo, Count{UCS2, 123, 123, 2}},
		{"seventy decomposed ư are one UCS-2 segment, not three", strings.Repeat("u\u031b", 70), false,
			strings.Repeat("ư", 70), Count{UCS2, 70, 70, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := SMSText(tc.in, tc.transliterate)
			if got != tc.want || !norm.NFC.IsNormalString(got) {
				t.Errorf("SMSText(%+q) = %+q, want %+q", tc.in, got, tc.want)
			}
			if c := CountSMS(got); c != tc.count {
				t.Errorf("CountSMS(%q) = %+v, want %+v", got, c, tc.count)
			}
			if parts := SplitSMS(got); strings.Join(parts, "") != got {
				t.Errorf("SplitSMS(%q) = %q: the parts are not the text", got, parts)
			}
			if text, c := Preview(tc.in, tc.transliterate); text != got || c != CountSMS(got) {
				t.Errorf("Preview(%+q) = %+q, %+v; SMSText gives %+q", tc.in, text, c, got)
			}
		})
	}
}

// A full word cache starts afresh instead of keeping its first words for
// good: the words of a template sent later are cached too.
func TestAFullWordCacheKeepsCachingNewWords(t *testing.T) {
	for i := range wordCacheMax + 10 {
		Transliterate(fmt.Sprintf("Hường%d", i))
	}
	if n := wordCache.Load().n.Load(); n > wordCacheMax {
		t.Fatalf("the cache counts %d words, over its %d", n, wordCacheMax)
	}
	Transliterate("Bluezone bảo vệ cộng đồng")
	for _, w := range []string{"bảo", "vệ", "cộng", "đồng"} {
		if _, ok := wordCache.Load().m.Load(w); !ok {
			t.Errorf("%q was not cached after the cache filled", w)
		}
	}
}
