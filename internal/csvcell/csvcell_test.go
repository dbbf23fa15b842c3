package csvcell

import "testing"

func TestTextEscapesFormulaCells(t *testing.T) {
	cases := map[string]string{
		`=HYPERLINK("http://evil"),x`: `'=HYPERLINK("http://evil"),x`,
		"=cmd|calc":                   "'=cmd|calc",
		"+1+1":                        "'+1+1",
		"-2+3":                        "'-2+3",
		"@SUM(A1)":                    "'@SUM(A1)",
		"\t=1":                        "'\t=1",
		"\r=1":                        "'\r=1",
		"":                            "",
		"Đà Nẵng":                     "Đà Nẵng",
		"Bluezone Q3 = win":           "Bluezone Q3 = win",
		"'quoted":                     "'quoted",
	}
	for in, want := range cases {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}
