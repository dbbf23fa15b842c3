package textcheck

import "testing"

func TestProblem(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"", ""},
		{"Khuyến mãi Bluezone", ""},
		{"line\nbreak\ttab", ""},
		{"a\x00b", "must not contain NUL characters"},
		{"H\xe9", "must be UTF-8 text"},
		{"\xed\xa0\x80", "must be UTF-8 text"}, // a lone surrogate, as UTF-8
	} {
		if got := Problem(tc.in); got != tc.want {
			t.Errorf("Problem(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMap(t *testing.T) {
	if got := Map(map[string]string{"tinh": "Đà Nẵng"}); got != "" {
		t.Errorf("a clean map: %q", got)
	}
	if got := Map(map[string]string{"ti\x00nh": "x"}); got != "names must not contain NUL characters" {
		t.Errorf("a bad name: %q", got)
	}
	if got := Map(map[string]string{"tinh": "H\xe9"}); got != `the value of "tinh" must be UTF-8 text` {
		t.Errorf("a bad value: %q", got)
	}
}
