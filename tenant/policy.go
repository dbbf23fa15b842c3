package tenant

// Policy is a tenant's own marketing compliance settings, over the
// deployment's defaults (OUTREACH_TIMEZONE, OUTREACH_SEND_WINDOW,
// OUTREACH_FREQUENCY_CAP, OUTREACH_MARKETING_LABEL, OUTREACH_OPT_OUT_TEXT):
// carriers sharing a deployment each have their own opt-out short code, and
// may have their own zone or window. An empty field keeps the default.
type Policy struct {
	Timezone     string `json:"timezone,omitempty"`
	SendWindow   string `json:"send_window,omitempty"`
	FrequencyCap string `json:"frequency_cap,omitempty"`
	// MarketingLabel set to "" means no label; nil keeps the default.
	MarketingLabel *string `json:"marketing_label,omitempty"`
	OptOutText     string  `json:"opt_out_text,omitempty"`
}
