package subscriber

import "testing"

func TestKeywordsMatchWholeMessagesWhateverTheCaseOrDiacritics(t *testing.T) {
	cases := []struct {
		body string
		want Keyword
	}{
		{"STOP", KeywordOptOut},
		{"stop", KeywordOptOut},
		{"  Stop. ", KeywordOptOut},
		{"Hủy", KeywordOptOut},
		{"HUY", KeywordOptOut},
		{"từ chối", KeywordOptOut},
		{"Từ   Chối", KeywordOptOut},
		{"TC", KeywordOptOut},
		{"Từ chối QC", KeywordOptOut},
		{"TCQC", KeywordOptOut},
		{"START", KeywordOptIn},
		{"bắt đầu", KeywordOptIn},
		{"help", KeywordHelp},
		// Ð (U+00D0) for Đ, as legacy encodings and some keyboards write it.
		{"ÐỪNG", KeywordOptOut},
		{"Ðừng", KeywordOptOut},
		{"ÐK", KeywordOptIn},
		{"ðừng", KeywordOptOut},
		{"ðk", KeywordOptIn},
		// Invisible format characters a phone may add.
		{"\ufeffSTOP", KeywordOptOut},
		{"ST\u200bOP", KeywordOptOut},
		{"please stop sending", KeywordNone},
		{"", KeywordNone},
	}
	for _, c := range cases {
		if got := DefaultKeywords.Match(c.body); got != c.want {
			t.Errorf("Match(%q) = %v, want %v", c.body, got, c.want)
		}
	}
}

// A carrier adds its own words; one given for a list leaves the others.
func TestKeywordsTakeACarriersOwnWords(t *testing.T) {
	k := DefaultKeywords.With([]string{"Ngừng QC", "YES"}, []string{"Đăng ký lại"})
	for body, want := range map[string]Keyword{
		"ngung qc": KeywordOptOut, "YES": KeywordOptOut, "dang ky lai": KeywordOptIn,
		"STOP": KeywordOptOut, "START": KeywordOptIn, "HELP": KeywordHelp,
	} {
		if got := k.Match(body); got != want {
			t.Errorf("Match(%q) = %v, want %v", body, got, want)
		}
	}
	if DefaultKeywords.Match("YES") != KeywordOptIn {
		t.Error("With changed the defaults")
	}
	if CheckKeyword(" ?! ") == "" || CheckKeyword("Hủy") != "" {
		t.Error("CheckKeyword: want a word with letters or digits")
	}
}
