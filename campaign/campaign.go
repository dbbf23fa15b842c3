// Package campaign holds campaigns (install promotions and exposure alerts),
// their audiences, the state machine and deliveries.
package campaign

import (
	"time"
)

// Kind of campaign.
type Kind string

const (
	KindInstallPromotion Kind = "install_promotion"
	KindExposureAlert    Kind = "exposure_alert"
)

// Marketing reports whether the marketing policy (window, cap, label, opt-out)
// applies to this kind.
func (k Kind) Marketing() bool { return k != KindExposureAlert }

// Channel a message goes out on.
type Channel string

const (
	ChannelSMS  Channel = "sms"
	ChannelPush Channel = "push"
)

// State of a campaign.
type State string

const (
	StateDraft     State = "draft"
	StateScheduled State = "scheduled"
	StateRunning   State = "running"
	StatePaused    State = "paused"
	StateCompleted State = "completed"
	StateCancelled State = "cancelled"
)

// Audience is a filter over the tenant's subscribers, evaluated in the store.
// For an exposure alert the audience is the campaign's contact list instead.
type Audience struct {
	Regions    []string          `json:"regions,omitempty"`
	Installed  *bool             `json:"installed,omitempty"`
	List       string            `json:"list,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Reward is the data bonus an install earns.
type Reward struct {
	DataMB          int64 `json:"data_mb"`
	BudgetMB        int64 `json:"budget_mb"`
	AttributionDays int   `json:"attribution_days"`
	// ConfirmTemplate, when set, is an SMS template sent to the subscriber
	// once their reward is granted ({{.RewardMB}}, {{.Name}}, {{.Region}}).
	ConfirmTemplate string `json:"confirm_template,omitempty"`
	// LocaleConfirmTemplates are confirmation templates for subscribers of
	// a locale ({"en": ID}); a subscriber of another locale gets
	// ConfirmTemplate.
	LocaleConfirmTemplates map[string]string `json:"locale_confirm_templates,omitempty"`
}

// ConfirmTemplateFor is the confirmation template a subscriber of locale
// gets, "" when the reward sends none.
func (r Reward) ConfirmTemplateFor(locale string) string {
	if r.ConfirmTemplate == "" {
		return ""
	}
	if id := r.LocaleConfirmTemplates[locale]; id != "" {
		return id
	}
	return r.ConfirmTemplate
}

// Campaign is one install promotion or exposure alert.
type Campaign struct {
	ID        string             `json:"id"`
	TenantID  string             `json:"-"`
	Name      string             `json:"name"`
	Kind      Kind               `json:"kind"`
	Channels  []Channel          `json:"channels"`
	Templates map[Channel]string `json:"templates"`
	// LocaleTemplates are templates for subscribers of a locale, per
	// channel ({"en": {"sms": ID}}); a subscriber of another locale, or
	// of one with no template for the channel, gets Templates.
	LocaleTemplates map[string]map[Channel]string `json:"locale_templates,omitempty"`
	Audience        Audience                      `json:"audience"`
	// PushFallbackSMS sends the SMS template to a subscriber with no device.
	PushFallbackSMS bool       `json:"push_fallback_sms"`
	RatePerSecond   int        `json:"rate_per_second"`
	StartAt         *time.Time `json:"start_at,omitempty"`
	EndBy           *time.Time `json:"end_by,omitempty"`
	Reward          *Reward    `json:"reward,omitempty"`
	State           State      `json:"state"`
	// FanoutCursor is the last subscriber id fanned out; fan-out resumes
	// after it.
	FanoutCursor int64      `json:"-"`
	FanoutDone   bool       `json:"-"`
	CreatedBy    string     `json:"created_by,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
}

// HasChannel reports whether the campaign sends on ch.
func (c Campaign) HasChannel(ch Channel) bool {
	for _, x := range c.Channels {
		if x == ch {
			return true
		}
	}
	return false
}

// Locales are the subscriber locales.
var Locales = map[string]bool{"vi": true, "en": true}

// TemplateFor is the template c sends on ch to a subscriber of locale.
func (c Campaign) TemplateFor(ch Channel, locale string) string {
	if id := c.LocaleTemplates[locale][ch]; id != "" {
		return id
	}
	return c.Templates[ch]
}
