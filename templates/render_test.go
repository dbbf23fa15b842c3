package templates

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

var an = Vars{
	Name:        "Nguyễn Văn An",
	InstallLink: "https://bluezone.gov.vn/i/abc",
	Region:      "Đà Nẵng",
	RewardMB:    5120,
	Attributes:  map[string]string{"plan": "trả trước", "ward": "Hải Châu"},
}

func TestRender(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		body string
		vars Vars
		want string
	}{
		{"the name is filled in", "Chào {{.Name}}!", an, "Chào Nguyễn Văn An!"},
		{"the install link is filled in", "Tải: {{.InstallLink}}", an, "Tải: https://bluezone.gov.vn/i/abc"},
		{"the reward is printed as a whole number", "Nhận {{.RewardMB}}MB", an, "Nhận 5120MB"},
		{"the region is filled in", "Tỉnh {{.Region}}", an, "Tỉnh Đà Nẵng"},
		{"a custom attribute is reached with Attr", "Gói {{.Attr \"plan\"}}", an, "Gói trả trước"},
		{"a missing attribute renders empty, never <no value>", "[{{.Attr \"nope\"}}]", an, "[]"},
		{"no attributes at all render empty", "[{{.Attr \"plan\"}}]", Vars{}, "[]"},
		{"empty fields render empty", "[{{.Name}}|{{.Region}}|{{.RewardMB}}]", Vars{}, "[||0]"},
		{"with skips a missing attribute", "Chào{{with .Attr \"nick\"}} {{.}}{{end}}!", an, "Chào!"},
		{"if and else pick by value", "{{if gt .RewardMB 1024}}{{.RewardMB}}MB{{else}}ít{{end}}", an, "5120MB"},
		{"$ reaches the fields inside with", "{{with .Region}}{{$.Name}} ở {{.}}{{end}}", an, "Nguyễn Văn An ở Đà Nẵng"},
		{"printf formats within its limits", "{{printf \"%.1f GB\" 5.0}}", an, "5.0 GB"},
		{"urlquery escapes a name for a link", "{{.InstallLink}}?n={{urlquery .Name}}", an,
			"https://bluezone.gov.vn/i/abc?n=Nguy%E1%BB%85n+V%C4%83n+An"},
		{"a template's own text is kept as written", "Cài Bluezone ngay.", an, "Cài Bluezone ngay."},
		{"an empty body renders nothing", "", an, ""},
		{"a decomposed name is rendered composed, as it is counted", "Chào {{.Name}}!",
			Vars{Name: "Nguye\u0302\u0303n Va\u0306n An"}, "Chào Nguyễn Văn An!"},
		{"a decomposed body is rendered composed", "Xin cha\u0300o {{.Region}}", an, "Xin chào Đà Nẵng"},
		{"the spec's example renders", "Cai Bluezone de nhan {{.RewardMB}}MB: {{.InstallLink}}", an,
			"Cai Bluezone de nhan 5120MB: https://bluezone.gov.vn/i/abc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tmpl, err := Parse("promo-vi", tc.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := tmpl.Render(tc.vars)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got != tc.want {
				t.Errorf("Render = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		body string
		says string // in the message, after the template's name
	}{
		{"a syntax error", "Chào {{.Name", `line 1: unclosed action`},
		{"a syntax error on a later line", "Chào\n{{.Name}\n", `line 2: bad character U+007D '}'`},
		{"an unknown field", "Chào {{.Phone}}", `line 1:8: unknown field .Phone; fields are .Name, .InstallLink`},
		{"the attribute map by its Go name", `{{index .Attributes "plan"}}`, `unknown field .Attributes`},
		{"an unknown field in a branch the sample never takes", "{{if not .Name}}{{.Nme}}{{end}}", `unknown field .Nme`},
		{"an unknown field after $", "{{$.Reward}}", `unknown field .Reward`},
		{"a field of a field", "{{.Name.First}}", `.Name has no field .First`},
		{"a field of a parenthesised value", `{{(.Attr "a").Len}}`, `values have no fields`},
		{"a field of a string inside with", "{{with .Name}}{{.Region}}{{end}}", `can't evaluate field Region in type string`},
		{"Attr without a key", "{{.Attr}}", `wrong number of args for Attr`},
		{"range, the only loop", "{{range 1000000000}}{{end}}", `line 1:8: range is not allowed`},
		{"define", `{{define "x"}}a{{end}}`, `define and block are not allowed`},
		{"block", `{{block "x" .}}a{{end}}`, `not allowed`},
		{"template", `{{template "promo-vi"}}`, `template and block are not allowed`},
		{"an unknown function", "{{env \"HOME\"}}", `function "env" not defined`},
		{"a printf width that would pad a megabyte", `{{printf "%999999d" 1}}`, `width or precision over 100`},
		{"a printf width taken from an argument", `{{printf "%*d" .RewardMB 1}}`, `* width`},
		{"a body one byte over the limit", strings.Repeat("a", MaxBodyBytes+1), `the text is 4097 bytes, over the 4096-byte limit`},
		{"a body that is not UTF-8", "Ch\xe0o", `the text must be UTF-8 text`},
		{"a body with a NUL", "Ch\x00ao", `the text must not contain NUL characters`},
		{"text that grows past the output cap even on sample values",
			`{{urlquery "` + strings.Repeat("ư", 1400) + `"}}`, `rendered text over 8192 bytes`},
	}
	for _, tc := range cases {
		t.Run("Parse refuses "+tc.name, func(t *testing.T) {
			t.Parallel()
			tmpl, err := Parse("promo-vi", tc.body)
			if err == nil {
				t.Fatalf("Parse accepted %q", tc.body)
			}
			if tmpl != nil {
				t.Error("Parse returned a template with its error")
			}
			var te *Error
			if !errors.As(err, &te) || te.Template != "promo-vi" || !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v (%T) is not an *Error for promo-vi matching ErrInvalid", err, err)
			}
			if prefix := `template "promo-vi": `; !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
	t.Run("Parse accepts a body of exactly the limit", func(t *testing.T) {
		t.Parallel()
		if _, err := Parse("max", strings.Repeat("a", MaxBodyBytes)); err != nil {
			t.Error(err)
		}
	})
}

func TestRenderLimits(t *testing.T) {
	t.Parallel()
	big := Vars{Name: strings.Repeat("n", 3000), Attributes: map[string]string{"long": strings.Repeat("x", MaxOutputBytes+1)}}
	cases := []struct {
		name string
		body string
	}{
		{"output past the cap stops rendering", "{{.Name}}{{.Name}}{{.Name}}"},
		{"one oversized attribute is refused", `{{.Attr "long"}}`},
		{"nested print cannot build a string past the cap", "{{print (print .Name .Name) (print .Name .Name)}}"},
		{"printf cannot build a string past the cap", `{{printf "%s%s%s" .Name .Name .Name}}`},
		{"an escaper cannot grow a value past the cap", `{{html .Name .Name "<<<<<<<<"}}{{js .Name .Name .Name}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tmpl, err := Parse("big", tc.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			out, err := tmpl.Render(big)
			if !errors.Is(err, ErrOutputTooLarge) {
				t.Fatalf("Render = %d bytes, %v; want ErrOutputTooLarge", len(out), err)
			}
			var te *Error
			if !errors.As(err, &te) || te.Template != "big" {
				t.Errorf("error %v does not name the template", err)
			}
			if out != "" {
				t.Errorf("Render returned %d bytes with its error", len(out))
			}
		})
	}
	t.Run("output of exactly the cap is allowed", func(t *testing.T) {
		t.Parallel()
		tmpl, err := Parse("cap", `{{.Attr "x"}}`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := tmpl.Render(Vars{Attributes: map[string]string{"x": strings.Repeat("x", MaxOutputBytes)}})
		if err != nil || len(out) != MaxOutputBytes {
			t.Errorf("Render = %d bytes, %v", len(out), err)
		}
	})
}

func TestRenderConcurrently(t *testing.T) {
	t.Parallel()
	tmpl, err := Parse("promo-vi", `Chào {{.Name}}, nhận {{.RewardMB}}MB tại {{.Attr "ward"}}`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			v := an
			v.Name = fmt.Sprint("An ", i)
			want := fmt.Sprintf("Chào An %d, nhận 5120MB tại Hải Châu", i)
			for range 100 {
				if got, err := tmpl.Render(v); got != want || err != nil {
					t.Errorf("Render = %q, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestFieldSet(t *testing.T) {
	t.Parallel()
	t.Run("every exported field and method of the view is allowed, and nothing else", func(t *testing.T) {
		typ := reflect.TypeFor[view]()
		var got []string
		for f := range typ.Fields() {
			if f.IsExported() {
				got = append(got, f.Name)
			}
		}
		for m := range typ.Methods() {
			got = append(got, m.Name)
		}
		// Format is fmt's (printing the view whole prints nothing); a
		// template may not call it.
		want := []string{"Name", "InstallLink", "RewardMB", "Region", "Attr", "Format"}
		if !slices.Equal(got, want) {
			t.Errorf("view exposes %v, want %v", got, want)
		}
		if isField("Format") {
			t.Error("Format is allowed in templates")
		}
		want = want[:len(want)-1]
		for _, name := range want {
			if !isField(name) {
				t.Errorf("%s is not allowed", name)
			}
		}
	})
	t.Run("an error quoting a huge action stays short and keeps its cause", func(t *testing.T) {
		_, err := Parse("long", `{{printf "%999d" "`+strings.Repeat("x", 3000)+`"}}`)
		if err == nil || len(err.Error()) > maxReason+100 || !strings.Contains(err.Error(), "width or precision over 100") {
			t.Errorf("error is %d bytes: %v", len(fmt.Sprint(err)), err)
		}
	})
}

// CheckEmptyValues refuses what fails for a subscriber with nothing known
// (no name, no attributes); Parse alone accepts it, so that a template
// stored before the check still compiles.
func TestCheckEmptyValues(t *testing.T) {
	for _, body := range []string{"Chao {{slice .Name 1}}", `{{index (.Attr "ward") 0}}`} {
		tm, err := Parse("t", body)
		if err != nil {
			t.Fatalf("Parse(%q): %v", body, err)
		}
		if err := tm.CheckEmptyValues(); err == nil || !strings.Contains(err.Error(), "with empty values") {
			t.Errorf("CheckEmptyValues(%q) = %v, want refused", body, err)
		}
	}
	tm, err := Parse("t", "Chao {{if .Name}}{{slice .Name 1}}{{end}}")
	if err != nil {
		t.Fatal(err)
	}
	if err := tm.CheckEmptyValues(); err != nil {
		t.Errorf("a guarded slice: %v", err)
	}
}

// A template that prints the subscriber whole ({{.}}, {{$}}, printf of it)
// would put every imported attribute in the message: new templates doing
// so are refused, and one stored before prints nothing there. A dot bound
// to a field by with is that field, and prints.
func TestTheSubscriberIsNeverPrintedWhole(t *testing.T) {
	vars := Vars{Name: "An", Attributes: map[string]string{"cccd": "001099012345", "debt": "5000000"}}
	for _, body := range []string{`Xin chao {{.}}`, `{{$}}`, `{{printf "%+v" .}}`, `{{printf "%#v" $}}`,
		`{{printf "%d" .}}`, `{{print .}}`, `{{urlquery .}}`, `{{with .Name}}{{$}}{{end}}`} {
		tm, err := Parse("whole", body)
		if err != nil {
			t.Fatalf("Parse(%q): %v", body, err)
		}
		if err := tm.CheckWholeValue(); err == nil || !strings.Contains(err.Error(), "name a field") {
			t.Errorf("CheckWholeValue(%q) = %v, want refused", body, err)
		}
		out, err := tm.Render(vars)
		if err != nil {
			t.Fatalf("Render(%q): %v", body, err)
		}
		if strings.Contains(out, "001099012345") || strings.Contains(out, "attrs") {
			t.Errorf("Render(%q) = %q: the subscriber printed whole", body, out)
		}
	}
	tm, err := Parse("field", `{{with .Name}}Chao {{.}}{{end}} {{printf "%s" .Region}}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := tm.CheckWholeValue(); err != nil {
		t.Errorf("a with-bound field: %v", err)
	}
	if out, err := tm.Render(Vars{Name: "An", Region: "HN"}); err != nil || out != "Chao An HN" {
		t.Errorf("Render = %q, %v", out, err)
	}
}

// .Attr finds an attribute whatever the composition or spaces of the
// name typed in the template, as audiences do.
func TestAttrFindsTheNameAsStored(t *testing.T) {
	tm, err := Parse("attr", `{{.Attr " ti\u0309nh "}} / {{.Attr "tỉnh"}}`)
	if err != nil {
		t.Fatal(err)
	}
	for stored, want := range map[string]string{"tỉnh": "Hà Nội / Hà Nội", "ti\u0309nh": "Hà Nội / Hà Nội"} {
		if out, err := tm.Render(Vars{Attributes: map[string]string{stored: "Hà Nội"}}); err != nil || out != want {
			t.Errorf("stored as %q: %q, %v, want %q", stored, out, err, want)
		}
	}
}

// Uses answers the fields a template prints, in any branch: not one that
// is only tested, nor one printed only where it was tested true.
func TestUsesAnswersTheFieldsATemplatePrints(t *testing.T) {
	for body, want := range map[string]map[string]bool{
		"Cài Bluezone nhận {{.RewardMB}}MB: {{.InstallLink}}":                      {"RewardMB": true, "InstallLink": true},
		"{{if .RewardMB}}Nhận {{.RewardMB}}MB. {{end}}Cài Bluezone":                {},
		"{{with .InstallLink}}Cài: {{.}}{{end}}":                                   {},
		"{{if .Name}}Chào {{.Name}}{{else}}{{.RewardMB}}MB{{end}}":                 {"RewardMB": true},
		"{{if .Region}}{{.RewardMB}}MB{{end}}":                                     {"RewardMB": true, "Region": false},
		"{{if .RewardMB}}{{end}}{{.RewardMB}}":                                     {"RewardMB": true},
		"{{if and .RewardMB .Name}}{{.RewardMB}}MB, {{.Name}}{{end}} {{$.Region}}": {"Region": true},
	} {
		tm, err := Parse("t", body)
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		for _, f := range []string{"Name", "InstallLink", "RewardMB", "Region"} {
			if got := tm.Uses(f); got != want[f] {
				t.Errorf("%q: Uses(%s) = %v, want %v", body, f, got, want[f])
			}
		}
	}
}
