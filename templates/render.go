package templates

import (
	"errors"
	"fmt"
	"outreach/internal/textcheck"
	"strings"
	"sync/atomic"
	"text/template"

	"golang.org/x/text/unicode/norm"
)

// Limits on what a template may be and produce. They are in bytes, not
// characters, because they guard memory; segments are CountSMS's business.
const (
	MaxBodyBytes   = 4096
	MaxOutputBytes = 8192
)

var (
	// ErrInvalid: Parse refused the body. The error is an *Error saying why.
	ErrInvalid = errors.New("invalid template")
	// ErrOutputTooLarge: rendering would exceed MaxOutputBytes.
	ErrOutputTooLarge = fmt.Errorf("rendered text over %d bytes", MaxOutputBytes)
)

// Error names the template and what is wrong with it, so that an API answer
// can point the author at the line.
type Error struct {
	Template string
	Reason   string
	Err      error // ErrInvalid from Parse; the cause from Render
	// Rendering is set by Render: the template is valid but failed on
	// these values (one recipient's, not every one's).
	Rendering bool
}

func (e *Error) Error() string { return fmt.Sprintf("template %q: %s", e.Template, e.Reason) }
func (e *Error) Unwrap() error { return e.Err }

// Vars are the values one message is rendered with.
type Vars struct {
	Name        string
	InstallLink string
	Region      string
	RewardMB    int64
	Attributes  map[string]string
}

// view is all a template sees: {{.Name}}, {{.InstallLink}}, {{.RewardMB}},
// {{.Region}}, and custom attributes as {{.Attr "key"}}. Vars is not passed
// itself so that attributes have that one spelling, and a missing one is
// simply empty.
type view struct {
	Name        string
	InstallLink string
	RewardMB    int64
	Region      string
	attrs       map[string]string
	missing     string       // what Attr answers for an absent key: "" except in the sample
	whole       *atomic.Bool // set when the view is printed whole (Format)
}

// Attr returns the subscriber's attribute key, or "" if it has none. The
// key is looked up as typed, then as the importer stores names (trimmed,
// composed: NFC), then decomposed (NFD, as names were stored before).
func (v view) Attr(key string) string {
	if s, ok := v.attrs[key]; ok {
		return s
	}
	nfc := norm.NFC.String(strings.TrimSpace(key))
	for _, k := range []string{nfc, norm.NFD.String(nfc)} {
		if s, ok := v.attrs[k]; ok {
			return s
		}
	}
	return v.missing
}

// Format prints a subscriber as a whole ({{.}}, {{$}}, {{printf "%v" .}},
// with any verb) as nothing: a message carries the fields its template
// names, never every attribute the carrier imported. A run that watches
// (CheckWholeValue) is told, so that a new template doing so is refused.
func (v view) Format(fmt.State, rune) {
	if v.whole != nil {
		v.whole.Store(true)
	}
}

// sample is what Parse renders once to catch mistakes that only show when
// running, such as {{with .Name}}{{.Region}}{{end}} or a misused builtin.
// Attr answers for every key so that {{with .Attr "k"}} bodies run too.
var sample = view{Name: "An", InstallLink: "https://example.invalid/i", RewardMB: 5120,
	Region: "HN", missing: "sample"}

// Template is a parsed, checked template; safe for concurrent Render.
type Template struct {
	name string
	tmpl *template.Template
	used map[string]bool
}

// Uses reports whether the template uses the field (Name, InstallLink,
// RewardMB, Region, Attr) anywhere, in a branch the sample takes or not.
func (t *Template) Uses(field string) bool { return t.used[field] }

// Name is the name the template was parsed with.
func (t *Template) Name() string { return t.name }

// Parse checks body and prepares it for Render. It refuses bodies over
// MaxBodyBytes or not UTF-8, syntax errors, unknown fields, range, define,
// block and template (the only ways to loop or recurse), and bodies that
// fail on sample values. Errors are *Error and match ErrInvalid.
func Parse(name, body string) (*Template, error) {
	refuse := func(format string, args ...any) error {
		return &Error{Template: name, Reason: fmt.Sprintf(format, args...), Err: ErrInvalid}
	}
	if len(body) > MaxBodyBytes {
		return nil, refuse("the text is %d bytes, over the %d-byte limit", len(body), MaxBodyBytes)
	}
	if p := textcheck.Problem(body); p != "" {
		return nil, refuse("the text %s", p)
	}
	tmpl, err := template.New(name).Funcs(funcs()).Parse(body)
	if err != nil {
		return nil, refuse("%s", tidy(name, err))
	}
	used, err := validate(tmpl)
	if err != nil {
		return nil, refuse("%s", err)
	}
	t := &Template{name: name, tmpl: tmpl, used: used}
	if _, err := t.execute(sample); err != nil {
		return nil, refuse("with sample values: %s", tidy(name, err))
	}
	return t, nil
}

// CheckEmptyValues refuses a template that fails on empty values: a
// subscriber with no name or region, an alert's contact with nothing known
// about them ({{slice .Name 1}} passes on the sample "An" and fails on "").
// New templates are checked (Parse is not: a template stored before this
// check must still compile, its failures being one recipient's each).
func (t *Template) CheckEmptyValues() error {
	if _, err := t.execute(view{}); err != nil {
		return &Error{Template: t.name, Reason: "with empty values (a subscriber without a name, say): " + tidy(t.name, err), Err: ErrInvalid}
	}
	return nil
}

// CheckWholeValue refuses a template that prints the subscriber as a
// whole ({{.}} at the top, {{$}}, {{printf "%v" .}}) rather than a field:
// that would be every custom attribute, which Format keeps out of a
// message. New templates are checked; a stored one prints nothing there.
func (t *Template) CheckWholeValue() error {
	v := sample
	v.whole = new(atomic.Bool)
	if _, err := t.execute(v); err == nil && v.whole.Load() {
		return &Error{Template: t.name, Reason: "prints the whole subscriber ({{.}}, {{$}} or printf of it); " +
			"name a field: .Name, .InstallLink, .RewardMB, .Region, or .Attr \"key\"", Err: ErrInvalid}
	}
	return nil
}

// Sample returns the template rendered with the sample values Parse checks
// it with (NFC, as Render returns it), or "" if it fails on them.
func (t *Template) Sample() string {
	out, err := t.execute(sample)
	if err != nil {
		return ""
	}
	return norm.NFC.String(out)
}

// Render fills the template in. It fails only when the text would exceed
// MaxOutputBytes or a builtin fails on these values (say, slice out of
// range); the error is an *Error.
//
// The text is NFC normalised, whatever form the body or the values were
// typed in (a name imported from a macOS file is often decomposed): that is
// the form CountSMS measures, so a caller that sends what Render returns
// sends what it counted. NFC is canonically equivalent, so push text reads
// the same. It may be a few bytes longer than the execution's output in rare
// scripts (composition exclusions); MaxOutputBytes bounds the execution.
func (t *Template) Render(v Vars) (string, error) {
	out, err := t.execute(view{Name: v.Name, InstallLink: v.InstallLink,
		RewardMB: v.RewardMB, Region: v.Region, attrs: v.Attributes})
	if err != nil {
		return "", &Error{Template: t.name, Reason: tidy(t.name, err), Err: err, Rendering: true}
	}
	return norm.NFC.String(out), nil
}

func (t *Template) execute(v view) (string, error) {
	var w cappedWriter
	if err := t.tmpl.Execute(&w, v); err != nil {
		return "", err
	}
	return w.b.String(), nil
}

// cappedWriter stops execution at the first write past MaxOutputBytes.
type cappedWriter struct{ b strings.Builder }

func (w *cappedWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > MaxOutputBytes {
		return 0, ErrOutputTooLarge
	}
	return w.b.Write(p)
}

// maxReason keeps an error readable: text/template quotes the failing
// action, which may be most of a 4 KB body.
const maxReason = 400

// tidy turns `template: NAME:1:7: executing "NAME" at <.X>: msg` into
// `line 1:7: <.X>: msg`, since Error already names the template. Columns
// are byte offsets from 0, as text/template counts them.
func tidy(name string, err error) string {
	s := strings.TrimPrefix(err.Error(), "template: ")
	if rest, ok := strings.CutPrefix(s, name+":"); ok {
		s = "line " + rest
	}
	s = strings.Replace(s, fmt.Sprintf("executing %q at ", name), "", 1)
	if len(s) > maxReason { // keep the location and the cause, which is last
		s = strings.ToValidUTF8(s[:maxReason/2]+"…"+s[len(s)-maxReason/2:], "")
	}
	return s
}
