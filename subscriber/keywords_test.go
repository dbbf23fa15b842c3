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
		{"START", KeywordOptIn},
		{"bắt đầu", KeywordOptIn},
		{"help", KeywordHelp},
		{"please stop sending", KeywordNone},
		{"", KeywordNone},
	}
	for _, c := range cases {
		if got := DefaultKeywords.Match(c.body); got != c.want {
			t.Errorf("Match(%q) = %v, want %v", c.body, got, c.want)
		}
	}
}
