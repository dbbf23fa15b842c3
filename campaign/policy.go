package campaign

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"outreach/config"
	"outreach/internal/apperr"
	"outreach/internal/textcheck"
	"outreach/templates"
	"outreach/tenant"
)

// Policy is a tenant's marketing compliance policy (defaults from Vietnam's
// anti-spam rules) and what an exposure alert may bypass.
type Policy struct {
	Zone       *time.Location
	Window     config.Window
	Cap        config.Cap
	Label      string
	OptOutText string
	// Alerts bypass the window, the cap and marketing opt-out unless these
	// say otherwise.
	AlertsRespectWindow bool
	AlertsRespectCap    bool
	AlertsRespectOptOut bool
}

// HoldUntil returns zero when a delivery of kind k may go out at now, else
// the instant the send window opens.
func (p Policy) HoldUntil(k Kind, now time.Time) time.Time {
	if !k.Marketing() && !p.AlertsRespectWindow {
		return time.Time{}
	}
	local := now.In(p.Zone)
	if p.Window.Contains(local) {
		return time.Time{}
	}
	return p.Window.NextOpen(local)
}

// SkipsOptedOut reports whether an opted-out subscriber is skipped.
func (p Policy) SkipsOptedOut(k Kind) bool { return k.Marketing() || p.AlertsRespectOptOut }

// Capped reports whether the frequency cap applies to kind k.
func (p Policy) Capped(k Kind) bool {
	return p.Cap.Count > 0 && (k.Marketing() || p.AlertsRespectCap)
}

// DecorateSMS adds the marketing label and the opt-out instructions to a
// marketing SMS body, transliterating the additions with the body when the
// template asks for it. The result is what the provider must be handed: it
// is NFC normalised (templates.SMSText), the form templates.CountSMS
// measures, so the segments counted for the rate limit are the segments
// sent.
func (p Policy) DecorateSMS(k Kind, body string, transliterate bool) string {
	// Compose first, so that a decomposed body still finds a label or an
	// opt-out text that is already there.
	// They are looked for with and without diacritics: a body that says
	// "Từ chối: soạn TC gửi 9241" carries the instructions "Tu choi: soan
	// TC gui 9241" (and the same text again would cost characters, or a
	// segment, for nothing).
	text := templates.SMSText(strings.TrimSpace(body), false)
	if k.Marketing() {
		if label := templates.SMSText(strings.TrimSpace(p.Label), false); label != "" &&
			!hasLabel(text, label) && !hasLabel(templates.SMSText(text, true), templates.SMSText(label, true)) {
			text = joinLabel(label, text)
		}
		if opt := templates.SMSText(strings.TrimSpace(p.OptOutText), false); opt != "" &&
			!strings.Contains(text, opt) && !strings.Contains(templates.SMSText(text, true), templates.SMSText(opt, true)) {
			text = joinOptOut(text, opt)
		}
	}
	return templates.SMSText(text, transliterate)
}

// hasLabel reports whether text already starts with label used as a label:
// "QC: …", "QC …", "QC - …", "[QC] …" or "(QC) …", the forms carriers use.
// A body that merely starts with the label's letters is not labelled: "QCVN
// 01:2020 …" (a national technical standard), "QC2 …" or "QC.vn" still get
// "QC: ". So a label ending in a letter or digit must be followed by a
// colon, a dash, white space or nothing; one ending in punctuation ("[QC]",
// "QC:") already separates itself. Case counts: the rules ask for "QC", and
// adding it to a body starting "qc " costs four characters, not compliance.
func hasLabel(text, label string) bool {
	for _, form := range [...]string{label, "[" + label + "]", "(" + label + ")"} {
		rest, ok := strings.CutPrefix(text, form)
		if !ok {
			continue
		}
		if last, _ := utf8.DecodeLastRuneInString(form); !isWordRune(last) {
			return true
		}
		next, _ := utf8.DecodeRuneInString(rest)
		if rest == "" || unicode.IsSpace(next) || strings.ContainsRune(":-–—|", next) {
			return true
		}
	}
	return false
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
}

// joinLabel puts label in front of text as "QC: text". A label configured
// with its own punctuation ("QC:", "[QC]") is followed by a space only.
func joinLabel(label, text string) string {
	sep := ": "
	if r, _ := utf8.DecodeLastRuneInString(label); !isWordRune(r) {
		sep = " "
	}
	if text == "" {
		return label
	}
	return label + sep + text
}

// joinOptOut appends the opt-out instructions to text. After a sentence's
// end (". ! ? …", possibly inside a closing quote or bracket) a space is
// enough: "Cai ngay! Tu choi: soan TC gui 9241". Anything else, and above
// all a link ({{.InstallLink}} usually ends the body), gets " - ": a "."
// glued to a URL ("https://bz.vn/i/AbCd1234.") is taken into the link by
// many SMS apps and breaks it, while a space ends the link everywhere and
// the dash still shows, as the full stop did, where the offer ends and the
// instructions begin ("… https://bz.vn/i/AbCd1234 - Tu choi: soan TC gui
// 9241"). A newline would work too, one septet cheaper, but " - " keeps
// the message one running line like the rest of the body. " - " is
// plain GSM-7 (three septets, one more than the ". " it replaces), so it
// never switches a message to UCS-2.
func joinOptOut(text, opt string) string {
	switch {
	case text == "":
		return opt
	case endsSentence(text):
		return text + " " + opt
	default:
		return text + " - " + opt
	}
}

// endsSentence reports whether text ends in sentence punctuation, looking
// through closing quotes and brackets: `Cai ngay!"` ends a sentence,
// "(https://bz.vn)" does not.
func endsSentence(text string) bool {
	s := strings.TrimRightFunc(text, func(r rune) bool {
		return strings.ContainsRune(`"')]}»”’›`, r)
	})
	r, _ := utf8.DecodeLastRuneInString(s)
	return strings.ContainsRune(".!?…‼⁇⁈⁉。！？", r)
}

// MaxPolicyTextBytes bounds a tenant's marketing label and opt-out text:
// both go on every marketing SMS.
const MaxPolicyTextBytes = 160

// With is p with a tenant's own settings over it; a setting that cannot be
// read is named in the apperr.FieldErrors returned.
func (p Policy) With(t tenant.Policy) (Policy, error) {
	bad := apperr.FieldErrors{}
	if t.Timezone != "" {
		if z, err := time.LoadLocation(t.Timezone); err != nil || t.Timezone == "Local" {
			bad["timezone"] = fmt.Sprintf("unknown time zone %q (want an IANA name such as Asia/Ho_Chi_Minh)", t.Timezone)
		} else {
			p.Zone = z
		}
	}
	if t.SendWindow != "" {
		if w, err := config.ParseWindow(t.SendWindow); err != nil {
			bad["send_window"] = err.Error()
		} else {
			p.Window = w
		}
	}
	if t.FrequencyCap != "" {
		if c, err := config.ParseCap(t.FrequencyCap); err != nil {
			bad["frequency_cap"] = err.Error()
		} else {
			p.Cap = c
		}
	}
	text := func(field, v string) bool {
		switch {
		case len(v) > MaxPolicyTextBytes:
			bad[field] = fmt.Sprintf("at most %d bytes: it goes on every marketing SMS", MaxPolicyTextBytes)
		case textcheck.Problem(v) != "":
			bad[field] = textcheck.Problem(v)
		default:
			return true
		}
		return false
	}
	if t.MarketingLabel != nil && text("marketing_label", *t.MarketingLabel) {
		p.Label = strings.TrimSpace(*t.MarketingLabel)
	}
	if t.OptOutText != "" && text("opt_out_text", t.OptOutText) {
		if strings.TrimSpace(t.OptOutText) == "" {
			bad["opt_out_text"] = "must say how to opt out: the rules require it on every marketing SMS"
		} else {
			p.OptOutText = strings.TrimSpace(t.OptOutText)
		}
	}
	if len(bad) > 0 {
		return p, bad
	}
	return p, nil
}

// Settings is the policy as a tenant's settings: what GET /v1/policy shows.
func (p Policy) Settings() tenant.Policy {
	label := p.Label
	return tenant.Policy{Timezone: p.Zone.String(), SendWindow: p.Window.String(), FrequencyCap: p.Cap.String(),
		MarketingLabel: &label, OptOutText: p.OptOutText}
}
