package campaign

import (
	"strings"
	"time"

	"outreach/config"
	"outreach/templates"
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
// template asks for it.
func (p Policy) DecorateSMS(k Kind, body string, transliterate bool) string {
	text := strings.TrimSpace(body)
	if k.Marketing() {
		if p.Label != "" && !strings.HasPrefix(text, p.Label) {
			text = p.Label + ": " + text
		}
		if p.OptOutText != "" && !strings.Contains(text, p.OptOutText) {
			text += ". " + p.OptOutText
		}
	}
	if transliterate {
		text = templates.Transliterate(text)
	}
	return text
}
