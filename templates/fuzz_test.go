package templates

import (
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

func FuzzCountSMS(f *testing.F) {
	for _, seed := range []string{
		"", "a", "Xin cha\u0300o", headline, promo, figures,
		strings.Repeat("a", 152) + "€" + strings.Repeat("a", 10),
		strings.Repeat("ư", 66) + "😀" + strings.Repeat("ư", 10),
		strings.Repeat("ư", 69) + "😀",
		strings.Repeat("€", 81), "\x1b\f\r\n", "\xff\xfe", "e\u0301\u0323",
	} {
		f.Add(seed)
	}
	f.Fuzz(checkInvariants)
}

func FuzzTransliterate(f *testing.F) {
	for _, seed := range []string{"", headline, figures, "Ðiện “Biên”…", "e\u0301\u0323", "\xff", "a \u0301b  \u00a0c\xff d ", " ", "Å\u212b한국어"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		once := Transliterate(text)
		if whole := transliterate(text); once != whole {
			t.Fatalf("Transliterate(%q) word by word = %q, the whole text at once = %q", text, once, whole)
		}
		for _, r := range once {
			if unicode.Is(unicode.Mn, r) || r == 'đ' || r == 'Đ' {
				t.Fatalf("Transliterate(%q) = %q keeps %q", text, once, r)
			}
		}
		if !norm.NFC.IsNormalString(once) {
			t.Fatalf("Transliterate(%q) = %+q is not NFC", text, once)
		}
		if twice := Transliterate(once); twice != once {
			t.Fatalf("Transliterate(%q) = %q, then %q", text, once, twice)
		}
	})
}
