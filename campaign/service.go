package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"outreach/internal/apperr"
	"outreach/internal/textcheck"
	"outreach/provider"
	"outreach/subscriber"
	"outreach/templates"
	"outreach/tenant"
)

// Limits on what a request may ask for.
const (
	MaxNameLength      = 200
	MaxTitleBytes      = 512
	MaxDataEntries     = 32
	MaxDataKeyLength   = 64
	MaxListNameLength  = 100
	MaxRegionCodeLen   = subscriber.MaxRegionCodeLen
	MaxAudienceRegions = 1000
	MaxAttributionDays = 90
	// An audience filters on at most this many attributes, each name and
	// value at most this many bytes (a store builds one condition each).
	MaxAudienceAttributes  = 32
	MaxAttributeNameBytes  = subscriber.MaxAttributeNameBytes
	MaxAttributeValueBytes = subscriber.MaxAttributeValueBytes
	MaxRatePerSecond       = 1_000_000
	// maxScheduleYears bounds start_at and end_by ahead of now.
	maxScheduleYears        = 10
	MaxRewardDataMB         = 1 << 20 // 1 TB: far above any data bonus
	MaxRewardBudgetMB int64 = 1 << 50 // with MaxRewardDataMB, spent + data never overflows
	DefaultPageSize         = 100
	MaxPageSize             = 1000
)

// RewardStats reports a campaign's installs and rewards. The install and
// reward packages implement it; until they are wired, Stats shows zeros.
type RewardStats interface {
	CampaignRewardStats(ctx context.Context, tenantID, campaignID string) (installs, granted, mb int64, err error)
}

// Service is what the API does with templates, campaigns and alerts: it
// validates input, enforces the state machine, writes the audit trail and
// hands running campaigns to the Dispatcher.
type Service struct {
	Store       Store
	Subscribers subscriber.Store
	Dispatcher  Dispatcher
	Now         func() time.Time
	// Rewards, when set, fills installs, conversion and rewards in Stats.
	Rewards RewardStats
	// Policy, when set, makes SMS previews of marketing messages show the
	// label and opt-out text the workers add, so the count is what is paid.
	Policy *Policy
	// SampleVars fill the variables a preview request leaves out (say an
	// InstallLink of the real base URL and code length), so that segment
	// counts are realistic.
	SampleVars templates.Vars
	Logger     *slog.Logger
}

// now is the service's clock, at the microsecond precision stores keep, so
// that what a create answers is what a later read shows.
func (s *Service) now() time.Time {
	t := time.Now()
	if s.Now != nil {
		t = s.Now()
	}
	return t.Truncate(time.Microsecond)
}

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Audit appends to the audit trail on behalf of p. A failure is logged, not
// returned: by then the change it records has happened and cannot be undone.
// details must never hold a whole phone number, a token or a secret.
func (s *Service) Audit(ctx context.Context, p tenant.Principal, action, objectType, objectID string, details any) {
	var raw json.RawMessage
	if details != nil {
		b, err := json.Marshal(details)
		if err == nil {
			raw = b
		}
	}
	actor := p.KeyID
	if actor == "" {
		actor = "system"
	}
	e := AuditEntry{TenantID: p.TenantID, Actor: actor, Action: action, ObjectType: objectType,
		ObjectID: objectID, Details: raw, At: s.now().UTC()}
	if err := s.Store.Audit(ctx, e); err != nil {
		s.logger().ErrorContext(ctx, "audit write failed", "action", action, "object_type", objectType,
			"object_id", objectID, "err", err)
	}
}

// ---- templates ----

// TemplateInput is a template to create.
type TemplateInput struct {
	Name          string            `json:"name"`
	Channel       Channel           `json:"channel"`
	Locale        string            `json:"locale"`
	Body          string            `json:"body"`
	Title         string            `json:"title"`
	Data          map[string]string `json:"data"`
	Transliterate bool              `json:"transliterate"`
}

// CreateTemplate validates and stores a template. Every invalid field is
// named in one apperr.FieldErrors. An empty locale means vi.
func (s *Service) CreateTemplate(ctx context.Context, p tenant.Principal, in TemplateInput) (MessageTemplate, error) {
	fe := apperr.FieldErrors{}
	name := strings.TrimSpace(in.Name)
	checkName(fe, "name", name)
	switch in.Channel {
	case ChannelSMS, ChannelPush:
	case "":
		fe.Add("channel", "required: sms or push")
	default:
		fe.Add("channel", "must be sms or push, not %q", in.Channel)
	}
	locale := in.Locale
	if locale == "" {
		locale = "vi"
	}
	if !Locales[locale] {
		fe.Add("locale", "must be vi or en, not %q", in.Locale)
	}
	// The parts' renderings with sample values, for the sizes the
	// providers take.
	var bodySample, titleSample string
	dataSamples := make(map[string]string, len(in.Data))
	if strings.TrimSpace(in.Body) == "" {
		fe.Add("body", "required")
	} else if sample, err := parseNew(name, in.Body, true); err != nil {
		fe.Add("body", "%s", templateReason(err))
	} else {
		bodySample = sample
		if in.Channel == ChannelSMS {
			if n := smsCharacters(nil, sample, in.Transliterate, ""); n > templates.MaxSMSCharacters {
				fe.Add("body", "renders to %d characters with sample values; an SMS may have at most %d, "+
					"and marketing messages also carry the QC label and the opt-out text", n, templates.MaxSMSCharacters)
			}
		}
	}
	switch in.Channel {
	case ChannelPush:
		if strings.TrimSpace(in.Title) == "" {
			fe.Add("title", "required for a push template")
		} else if len(in.Title) > MaxTitleBytes {
			fe.Add("title", "over %d bytes", MaxTitleBytes)
		} else if sample, err := parseNew(name+".title", in.Title, false); err != nil {
			fe.Add("title", "%s", templateReason(err))
		} else {
			titleSample = sample
		}
		if len(in.Data) > MaxDataEntries {
			fe.Add("data", "at most %d entries", MaxDataEntries)
		}
		for k, v := range in.Data {
			if k == "" || len(k) > MaxDataKeyLength {
				fe.Add("data", "keys must be 1 to %d bytes", MaxDataKeyLength)
				continue
			}
			if p := textcheck.Problem(k); p != "" {
				fe.Add("data", "keys %s", p)
				continue
			}
			if who := provider.ReservedDataKey(k); who != "" {
				fe.Add("data."+k, "is a key %s reserves for itself", who)
				continue
			}
			if sample, err := parseNew(name+".data."+k, v, false); err != nil {
				fe.Add("data."+k, "%s", templateReason(err))
			} else {
				dataSamples[k] = sample
			}
		}
	case ChannelSMS:
		if in.Title != "" {
			fe.Add("title", "only push templates have a title")
		}
		if len(in.Data) > 0 {
			fe.Add("data", "only push templates carry data")
		}
	}
	if err := fe.Err(); err != nil {
		return MessageTemplate{}, err
	}
	if in.Channel == ChannelPush {
		if n := provider.PushPayloadBytes(titleSample, bodySample, dataSamples); n > provider.MaxPushPayloadBytes {
			return MessageTemplate{}, apperr.FieldErrors{"body": fmt.Sprintf("title, body and data render to a %d-byte "+
				"push payload with sample values; APNs and FCM take at most %d", n, provider.MaxPushPayloadBytes)}
		}
	}
	t := MessageTemplate{
		ID: uuid.NewString(), TenantID: p.TenantID, Name: name, Channel: in.Channel, Locale: locale,
		Body: in.Body, Title: in.Title, Data: in.Data, Transliterate: in.Transliterate,
		CreatedAt: s.now().UTC(),
	}
	if err := s.Store.CreateTemplate(ctx, &t); err != nil {
		return MessageTemplate{}, fmt.Errorf("create template: %w", err)
	}
	s.Audit(ctx, p, "template.create", "template", t.ID, map[string]any{
		"name": t.Name, "channel": t.Channel, "locale": t.Locale})
	return t, nil
}

// GetTemplate reads one of the tenant's templates.
func (s *Service) GetTemplate(ctx context.Context, p tenant.Principal, id string) (MessageTemplate, error) {
	return s.Store.GetTemplate(ctx, p.TenantID, id)
}

// PreviewInput asks for one rendering of a template. Vars holds Name,
// InstallLink, Region (strings), RewardMB (a whole number) and any other key
// as a custom attribute ({{.Attr "key"}}); "Attributes" may also hold an
// object of them. Kind says which policy the SMS text gets: empty means
// exposure_alert for a health key and install_promotion for any other.
type PreviewInput struct {
	Vars map[string]any `json:"vars"`
	Kind Kind           `json:"kind"`
}

// Preview is one rendered template. For SMS it carries the encoding,
// characters and segments; for push the title, body text and data.
type Preview struct {
	Channel    Channel            `json:"channel"`
	Title      string             `json:"title,omitempty"`
	Text       string             `json:"text"`
	Data       map[string]string  `json:"data,omitempty"`
	Encoding   templates.Encoding `json:"encoding,omitempty"`
	Characters int                `json:"characters"`
	Segments   int                `json:"segments"`
	// Kind is the campaign kind the SMS was previewed for: an install
	// promotion's carries the marketing label and opt-out text, an
	// alert's neither (the request's kind, else the caller's role's).
	Kind Kind `json:"kind,omitempty"`
}

// MarshalJSON leaves the SMS counts out of a push preview.
func (p Preview) MarshalJSON() ([]byte, error) {
	type plain Preview
	if p.Channel == ChannelSMS {
		return json.Marshal(plain(p))
	}
	return json.Marshal(struct {
		Channel Channel           `json:"channel"`
		Title   string            `json:"title"`
		Text    string            `json:"text"`
		Data    map[string]string `json:"data,omitempty"`
	}{p.Channel, p.Title, p.Text, p.Data})
}

// PreviewTemplate renders a template with the given variables and, for SMS,
// measures it: the text is what would be sent (transliterated if the
// template asks, with the marketing label and opt-out text when Policy is
// set and the kind is marketing).
func (s *Service) PreviewTemplate(ctx context.Context, p tenant.Principal, id string, in PreviewInput) (Preview, error) {
	t, err := s.Store.GetTemplate(ctx, p.TenantID, id)
	if err != nil {
		return Preview{}, err
	}
	vars, err := s.previewVars(in.Vars)
	if err != nil {
		return Preview{}, err
	}
	kind := in.Kind
	switch kind {
	case "":
		kind = KindInstallPromotion
		if p.Role == tenant.RoleHealth {
			kind = KindExposureAlert
		}
	case KindInstallPromotion, KindExposureAlert:
	default:
		return Preview{}, apperr.FieldErrors{"kind": fmt.Sprintf("must be install_promotion or exposure_alert, not %q", kind)}
	}
	if kind == KindExposureAlert {
		// An alert's deliveries have no referral code: {{.InstallLink}} is
		// empty in what is sent, so it is in the preview.
		vars.InstallLink = ""
	}
	render := func(field, name, body string) (string, error) {
		tm, err := templates.Parse(name, body)
		if err != nil {
			return "", apperr.FieldErrors{field: "stored template no longer parses: " + templateReason(err)}
		}
		out, err := tm.Render(vars)
		if err != nil {
			return "", apperr.FieldErrors{"vars": templateReason(err)}
		}
		return out, nil
	}
	body, err := render("body", t.Name, t.Body)
	if err != nil {
		return Preview{}, err
	}
	if t.Channel == ChannelSMS {
		text := body
		pol, err := s.PolicyOf(ctx, p.TenantID)
		if err != nil {
			return Preview{}, err
		}
		if pol != nil {
			text = pol.DecorateSMS(kind, text, t.Transliterate)
		}
		text, count := templates.Preview(text, t.Transliterate)
		return Preview{Channel: ChannelSMS, Text: text, Encoding: count.Encoding,
			Characters: count.Characters, Segments: count.Segments, Kind: kind}, nil
	}
	title, err := render("title", t.Name+".title", t.Title)
	if err != nil {
		return Preview{}, err
	}
	var data map[string]string
	if len(t.Data) > 0 {
		data = make(map[string]string, len(t.Data))
		for k, v := range t.Data {
			if data[k], err = render("data."+k, t.Name+".data."+k, v); err != nil {
				return Preview{}, err
			}
		}
	}
	return Preview{Channel: t.Channel, Title: title, Text: body, Data: data}, nil
}

func (s *Service) previewVars(in map[string]any) (templates.Vars, error) {
	v := s.SampleVars
	attrs := make(map[string]string, len(v.Attributes)+len(in))
	for k, x := range v.Attributes {
		attrs[k] = x
	}
	fe := apperr.FieldErrors{}
	str := func(key string, x any) (string, bool) {
		switch x := x.(type) {
		case string:
			return x, true
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64), true
		case json.Number:
			return x.String(), true
		case bool:
			return strconv.FormatBool(x), true
		}
		fe.Add("vars."+key, "must be a string or a number")
		return "", false
	}
	for key, x := range in {
		switch key {
		case "Name", "InstallLink", "Region":
			sv, ok := x.(string)
			if !ok {
				fe.Add("vars."+key, "must be a string")
				continue
			}
			switch key {
			case "Name":
				v.Name = sv
			case "InstallLink":
				v.InstallLink = sv
			case "Region":
				v.Region = sv
			}
		case "RewardMB":
			n, ok := wholeNumber(x)
			if !ok {
				fe.Add("vars.RewardMB", "must be a whole number")
				continue
			}
			v.RewardMB = n
		case "Attributes":
			m, ok := x.(map[string]any)
			if !ok {
				fe.Add("vars.Attributes", "must be an object of strings")
				continue
			}
			for k, y := range m {
				if sv, ok := str("Attributes."+k, y); ok {
					attrs[k] = sv
				}
			}
		default:
			if sv, ok := str(key, x); ok {
				attrs[key] = sv
			}
		}
	}
	if err := fe.Err(); err != nil {
		return templates.Vars{}, err
	}
	// The worker's {{.Name}} is the subscriber's name attribute: so is the
	// preview's when the request gives one and no Name.
	if _, given := in["Name"]; !given {
		if n, ok := NameOf(attrs); ok {
			v.Name = n
		}
	}
	v.Attributes = attrs
	return v, nil
}

// NameOf is a subscriber's name for templates: its "name" attribute, in
// any letter case.
func NameOf(attrs map[string]string) (string, bool) {
	if n, ok := attrs["name"]; ok {
		return n, true
	}
	for k, v := range attrs {
		if strings.EqualFold(k, "name") {
			return v, true
		}
	}
	return "", false
}

func wholeNumber(x any) (int64, bool) {
	switch x := x.(type) {
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, false
		}
		return int64(x), true
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// templateReason is what a templates error says, without the "template
// NAME:" prefix the field name already gives.
func templateReason(err error) string {
	var te *templates.Error
	if errors.As(err, &te) {
		return te.Reason
	}
	return err.Error()
}

// ---- campaigns ----

// CampaignInput is an install promotion to create. Exposure alerts are
// created with CreateAlert.
type CampaignInput struct {
	Name      string             `json:"name"`
	Kind      Kind               `json:"kind"`
	Channels  []Channel          `json:"channels"`
	Templates map[Channel]string `json:"templates"`
	// LocaleTemplates are templates for subscribers of a locale, per
	// channel ({"en": {"sms": ID}}); others get Templates.
	LocaleTemplates map[string]map[Channel]string `json:"locale_templates"`
	Audience        Audience                      `json:"audience"`
	PushFallbackSMS bool                          `json:"push_fallback_sms"`
	RatePerSecond   int                           `json:"rate_per_second"`
	StartAt         *time.Time                    `json:"start_at"`
	EndBy           *time.Time                    `json:"end_by"`
	Reward          *Reward                       `json:"reward"`
}

// CreateCampaign validates and stores an install promotion in state draft.
// An empty kind means install_promotion; the reward is optional.
func (s *Service) CreateCampaign(ctx context.Context, p tenant.Principal, in CampaignInput) (Campaign, error) {
	fe := apperr.FieldErrors{}
	name := strings.TrimSpace(in.Name)
	checkName(fe, "name", name)
	kind := in.Kind
	switch kind {
	case "", KindInstallPromotion:
		kind = KindInstallPromotion
	case KindExposureAlert:
		fe.Add("kind", "exposure alerts are created with POST /v1/alerts")
	default:
		fe.Add("kind", "must be install_promotion, not %q", in.Kind)
	}
	// An invalid kind is reported as such, not as templates it cannot fill.
	if err := s.checkChannels(ctx, p, fe, kind, in.Channels, in.Templates, in.LocaleTemplates, in.PushFallbackSMS,
		kind == KindInstallPromotion, in.Reward != nil); err != nil {
		return Campaign{}, err
	}
	if in.RatePerSecond < 0 || in.RatePerSecond > MaxRatePerSecond {
		fe.Add("rate_per_second", "must be 0 (no campaign limit) to %d", MaxRatePerSecond)
	}
	now := s.now()
	latest := now.AddDate(maxScheduleYears, 0, 0)
	switch {
	case in.StartAt != nil && in.StartAt.IsZero():
		fe.Add("start_at", "must be a time")
	case in.StartAt != nil && in.StartAt.After(latest):
		fe.Add("start_at", "must be within %d years", maxScheduleYears)
	}
	if in.EndBy != nil {
		switch {
		case in.EndBy.After(latest):
			// Year 10000 in UTC could not be stored or answered in JSON.
			fe.Add("end_by", "must be within %d years", maxScheduleYears)
		case !in.EndBy.After(now):
			fe.Add("end_by", "must be in the future")
		case in.StartAt != nil && !in.EndBy.After(*in.StartAt):
			fe.Add("end_by", "must be after start_at")
		}
	}
	regions, err := s.checkAudience(ctx, p, fe, in.Audience)
	if err != nil {
		return Campaign{}, err
	}
	if r := in.Reward; r != nil {
		if r.DataMB <= 0 || r.DataMB > MaxRewardDataMB {
			fe.Add("reward.data_mb", "must be 1 to %d", MaxRewardDataMB)
		}
		switch {
		case r.BudgetMB < r.DataMB || r.BudgetMB <= 0:
			fe.Add("reward.budget_mb", "must be at least data_mb")
		case r.BudgetMB > MaxRewardBudgetMB:
			fe.Add("reward.budget_mb", "must be at most %d", MaxRewardBudgetMB)
		}
		if r.AttributionDays < 1 || r.AttributionDays > MaxAttributionDays {
			fe.Add("reward.attribution_days", "must be 1 to %d", MaxAttributionDays)
		}
		if r.ConfirmTemplate != "" {
			if err := s.checkTemplate(ctx, p, fe, "", "reward.confirm_template", r.ConfirmTemplate, ChannelSMS, false, false, ""); err != nil {
				return Campaign{}, err
			}
		}
		if err := s.checkConfirmLocales(ctx, p, fe, *r); err != nil {
			return Campaign{}, err
		}
	}
	if err := fe.Err(); err != nil {
		return Campaign{}, err
	}
	aud := in.Audience
	aud.Regions = regions
	aud.List = strings.TrimSpace(aud.List)
	if len(aud.Attributes) > 0 {
		// As the importer stores them (subscriber.AttributeText).
		attrs := make(map[string]string, len(aud.Attributes))
		for k, v := range aud.Attributes {
			attrs[subscriber.AttributeText(k)] = subscriber.AttributeText(v)
		}
		aud.Attributes = attrs
	}
	c := Campaign{
		ID: uuid.NewString(), TenantID: p.TenantID, Name: name, Kind: kind,
		Channels: in.Channels, Templates: in.Templates, LocaleTemplates: nonEmpty(in.LocaleTemplates), Audience: aud,
		PushFallbackSMS: in.PushFallbackSMS, RatePerSecond: in.RatePerSecond,
		StartAt: utcPtr(in.StartAt), EndBy: utcPtr(in.EndBy), Reward: in.Reward,
		State: StateDraft, CreatedBy: p.KeyID, CreatedAt: now.UTC(), UpdatedAt: now.UTC(),
	}
	if err := s.Store.CreateCampaign(ctx, &c); err != nil {
		return Campaign{}, fmt.Errorf("create campaign: %w", err)
	}
	s.Audit(ctx, p, "campaign.create", "campaign", c.ID, map[string]any{
		"name": c.Name, "kind": c.Kind, "channels": c.Channels, "templates": c.Templates, "locale_templates": c.LocaleTemplates})
	return c, nil
}

// nonEmpty drops the locales that name no template; nil when none do.
func nonEmpty(byLocale map[string]map[Channel]string) map[string]map[Channel]string {
	var out map[string]map[Channel]string
	for loc, m := range byLocale {
		if len(m) > 0 {
			if out == nil {
				out = make(map[string]map[Channel]string)
			}
			out[loc] = m
		}
	}
	return out
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func checkName(fe apperr.FieldErrors, field, name string) {
	switch {
	case name == "":
		fe.Add(field, "required")
	case utf8.RuneCountInString(name) > MaxNameLength:
		fe.Add(field, "at most %d characters", MaxNameLength)
	case textcheck.Problem(name) != "":
		fe.Add(field, "%s", textcheck.Problem(name))
	}
}

// checkChannels validates channels and their templates, which must exist in
// this tenant and be for the channel they are given for. It returns an
// error only for a store failure; field problems go into fe. With
// checkFields a template using a field the campaign cannot fill (paying a
// reward or not) is refused too (see unfilled).
func (s *Service) checkChannels(ctx context.Context, p tenant.Principal, fe apperr.FieldErrors, kind Kind,
	channels []Channel, tmpls map[Channel]string, byLocale map[string]map[Channel]string, fallback, checkFields, paysReward bool) error {
	if len(channels) == 0 {
		fe.Add("channels", "at least one of sms, push")
	}
	seen := map[Channel]bool{}
	for _, ch := range channels {
		switch ch {
		case ChannelSMS, ChannelPush:
		default:
			fe.Add("channels", "must be sms or push, not %q", ch)
			continue
		}
		if seen[ch] {
			fe.Add("channels", "%s is listed twice", ch)
		}
		seen[ch] = true
	}
	need := map[Channel]bool{}
	for ch := range seen {
		need[ch] = true
	}
	if fallback {
		if !seen[ChannelPush] {
			fe.Add("push_fallback_sms", "only applies with the push channel")
		}
		need[ChannelSMS] = true
	}
	for ch := range tmpls {
		if !need[ch] {
			fe.Add("templates."+string(ch), "no channel %q in channels", ch)
		}
	}
	for _, ch := range []Channel{ChannelSMS, ChannelPush} {
		if !need[ch] {
			continue
		}
		field := "templates." + string(ch)
		id := tmpls[ch]
		if id == "" {
			if ch == ChannelSMS && !seen[ChannelSMS] {
				fe.Add(field, "required by push_fallback_sms: the SMS that a subscriber with no device gets")
			} else {
				fe.Add(field, "required for channel %s", ch)
			}
			continue
		}
		if err := s.checkTemplate(ctx, p, fe, kind, field, id, ch, checkFields, paysReward, ""); err != nil {
			return err
		}
	}
	for _, loc := range slices.Sorted(maps.Keys(byLocale)) {
		prefix := "locale_templates." + loc
		if !Locales[loc] {
			fe.Add(prefix, "must be a subscriber locale (vi or en), not %q", loc)
			continue
		}
		for _, ch := range slices.Sorted(maps.Keys(byLocale[loc])) {
			field, id := prefix+"."+string(ch), byLocale[loc][ch]
			switch {
			case !need[ch]:
				fe.Add(field, "no channel %q in channels", ch)
			case id == "":
				fe.Add(field, "must name a template")
			default:
				if err := s.checkTemplate(ctx, p, fe, kind, field, id, ch, checkFields, paysReward, loc); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkConfirmLocales adds to fe what is wrong with a reward's confirmation
// templates per locale: each names an SMS template in the locale it is
// given for, and they go with a confirm_template for the other locales.
func (s *Service) checkConfirmLocales(ctx context.Context, p tenant.Principal, fe apperr.FieldErrors, r Reward) error {
	if len(r.LocaleConfirmTemplates) > 0 && r.ConfirmTemplate == "" {
		fe.Add("reward.confirm_template", "required with reward.locale_confirm_templates: subscribers of other locales get it")
	}
	for _, loc := range slices.Sorted(maps.Keys(r.LocaleConfirmTemplates)) {
		field, id := "reward.locale_confirm_templates."+loc, r.LocaleConfirmTemplates[loc]
		switch {
		case !Locales[loc]:
			fe.Add(field, "must be a subscriber locale (vi or en), not %q", loc)
		case id == "":
			fe.Add(field, "must name a template")
		default:
			if err := s.checkTemplate(ctx, p, fe, "", field, id, ChannelSMS, false, false, loc); err != nil {
				return err
			}
		}
	}
	return nil
}

// unfilled answers why template t cannot go out in a campaign of kind,
// "" when it can: a field the campaign cannot fill would go out empty in
// every message: {{.RewardMB}} in an install promotion paying no reward
// ("0MB"), {{.InstallLink}} or {{.RewardMB}} in an exposure alert (it has
// neither).
func unfilled(t MessageTemplate, kind Kind, paysReward bool) string {
	uses := func(field string) bool { return templateUses(t, field) }
	switch {
	case kind == KindExposureAlert && uses("InstallLink"):
		return fmt.Sprintf("template %q uses {{.InstallLink}}: an exposure alert has no install link, and every message would go without it", t.Name)
	case kind == KindExposureAlert && uses("RewardMB"):
		return fmt.Sprintf("template %q uses {{.RewardMB}}: an exposure alert pays no reward, and every message would say 0", t.Name)
	case kind == KindInstallPromotion && !paysReward && uses("RewardMB"):
		return fmt.Sprintf("template %q uses {{.RewardMB}} but the campaign has no reward: every message would say 0; add a reward or use another template", t.Name)
	}
	return ""
}

// templateUses reports whether any part of t (body, title, data) uses
// field.
func templateUses(t MessageTemplate, field string) bool {
	parts := map[string]string{"body": t.Body, "title": t.Title}
	for k, v := range t.Data {
		parts["data."+k] = v
	}
	for part, text := range parts {
		if tm, err := templates.Parse(t.Name+"."+part, text); err == nil && tm.Uses(field) {
			return true
		}
	}
	return false
}

// checkTemplate adds to fe, under field, what is wrong with template id for
// channel ch: not the tenant's, or for another channel.
//
// With checkFields it also refuses a template that uses a field a campaign
// of kind (paying a reward or not) cannot fill (see unfilled). Kind "" is a
// reward's confirmation, which has no install link.
func (s *Service) checkTemplate(ctx context.Context, p tenant.Principal, fe apperr.FieldErrors, kind Kind, field, id string, ch Channel,
	checkFields, paysReward bool, locale string) error {
	var t MessageTemplate
	var err error
	if _, perr := uuid.Parse(id); perr != nil {
		err = apperr.NotFound("template")
	} else {
		t, err = s.Store.GetTemplate(ctx, p.TenantID, id)
	}
	if errors.Is(err, apperr.ErrNotFound) {
		fe.Add(field, "no template %q", id)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read template: %w", err)
	}
	if t.Channel != ch {
		fe.Add(field, "template %q is for %s, not %s", id, t.Channel, ch)
		return nil
	}
	if locale != "" && t.Locale != locale {
		fe.Add(field, "template %q is in locale %s, not %s", id, t.Locale, locale)
		return nil
	}
	if kind == "" && templateUses(t, "InstallLink") {
		fe.Add(field, "template %q uses {{.InstallLink}}: a reward's confirmation has no install link, and every one would go without it", t.Name)
		return nil
	}
	if checkFields {
		if why := unfilled(t, kind, paysReward); why != "" {
			fe.Add(field, "%s", why)
		}
	}
	if ch == ChannelSMS && kind != "" && kind.Marketing() {
		sample := ""
		if parsed, err := templates.Parse(t.Name, t.Body); err == nil {
			sample = parsed.Sample()
		}
		pol, err := s.PolicyOf(ctx, p.TenantID)
		if err != nil {
			return err
		}
		if n := smsCharacters(pol, sample, t.Transliterate, kind); n > templates.MaxSMSCharacters {
			fe.Add(field, "template %q renders to %d characters with sample values once the QC label and opt-out "+
				"text are added; an SMS may have at most %d", t.Name, n, templates.MaxSMSCharacters)
		}
	}
	return nil
}

// checkAudience validates the filter; it returns the region codes trimmed.
// Region codes must be known when the tenant has loaded its regions.
func (s *Service) checkAudience(ctx context.Context, p tenant.Principal, fe apperr.FieldErrors, a Audience) ([]string, error) {
	if len(a.Regions) > MaxAudienceRegions {
		fe.Add("audience.regions", "at most %d regions", MaxAudienceRegions)
		return nil, nil
	}
	var regions []string
	if len(a.Regions) > 0 {
		known := map[string]bool{}
		if s.Subscribers != nil {
			rs, err := s.Subscribers.ListRegions(ctx, p.TenantID)
			if err != nil {
				return nil, fmt.Errorf("list regions: %w", err)
			}
			for _, r := range rs {
				known[r.Code] = true
			}
		}
		var unknown []string
		for _, code := range a.Regions {
			code = strings.TrimSpace(code)
			switch {
			case code == "" || len(code) > MaxRegionCodeLen:
				fe.Add("audience.regions", "codes must be 1 to %d characters", MaxRegionCodeLen)
				continue
			case textcheck.Problem(code) != "":
				fe.Add("audience.regions", "codes %s", textcheck.Problem(code))
				continue
			case len(known) > 0 && !known[code]:
				unknown = append(unknown, code)
			}
			regions = append(regions, code)
		}
		if len(unknown) > 0 {
			fe.Add("audience.regions", "unknown region codes: %s", strings.Join(unknown, ", "))
		}
	}
	if utf8.RuneCountInString(a.List) > MaxListNameLength {
		fe.Add("audience.list", "at most %d characters", MaxListNameLength)
	} else if problem := textcheck.Problem(a.List); problem != "" {
		fe.Add("audience.list", "%s", problem)
	} else if a.List != "" && s.Subscribers != nil {
		// A mistyped name would otherwise make a campaign that reaches no one.
		ok, err := s.Subscribers.ListExists(ctx, p.TenantID, a.List)
		if err != nil {
			return nil, fmt.Errorf("look up list: %w", err)
		}
		if !ok {
			fe.Add("audience.list", "no list named %q: import its subscribers with ?list= first", a.List)
		}
	}
	if len(a.Attributes) > MaxAudienceAttributes {
		fe.Add("audience.attributes", "at most %d", MaxAudienceAttributes)
	}
	named := make(map[string]string, len(a.Attributes))
	for k, v := range a.Attributes {
		if other, ok := named[subscriber.AttributeText(k)]; ok {
			fe.Add("audience.attributes", "%q and %q name the same attribute", min(k, other), max(k, other))
		}
		named[subscriber.AttributeText(k)] = k
		switch {
		case strings.TrimSpace(k) == "":
			fe.Add("audience.attributes", "names must not be empty")
		case len(k) > MaxAttributeNameBytes:
			fe.Add("audience.attributes", "names must be at most %d bytes", MaxAttributeNameBytes)
		case strings.ContainsAny(k, `"\`):
			// The embedded store's JSON path cannot quote them.
			fe.Add("audience.attributes", "attribute name %q may not contain quotes or backslashes", k)
		case len(v) > MaxAttributeValueBytes:
			fe.Add("audience.attributes", "the value of %q must be at most %d bytes", k, MaxAttributeValueBytes)
		}
	}
	if p := textcheck.Map(a.Attributes); p != "" {
		fe.Add("audience.attributes", "%s", p)
	}
	return regions, nil
}

// CampaignPage is one page of campaigns; NextAfter, when not "", is the
// After of the next.
type CampaignPage struct {
	Campaigns []Campaign `json:"campaigns"`
	NextAfter string     `json:"next_after,omitempty"`
}

// List lists the tenant's campaigns, newest first; kind "" means all, after
// (a campaign id, the NextAfter of the page before) where the page starts.
func (s *Service) List(ctx context.Context, p tenant.Principal, kind Kind, after string, limit int) (CampaignPage, error) {
	switch kind {
	case "", KindInstallPromotion, KindExposureAlert:
	default:
		return CampaignPage{}, apperr.FieldErrors{"kind": fmt.Sprintf("must be install_promotion or exposure_alert, not %q", kind)}
	}
	if !p.Role.Allows(tenant.RoleMarketer) {
		// A health key lists the exposure alerts only: install promotions,
		// their audiences and budgets are the marketer's.
		if kind == KindInstallPromotion {
			return CampaignPage{}, fmt.Errorf("%w: a health key lists exposure alerts only", apperr.ErrForbidden)
		}
		kind = KindExposureAlert
	}
	limit, err := pageSize(limit)
	if err != nil {
		return CampaignPage{}, err
	}
	if after != "" {
		ac, err := s.Store.GetCampaign(ctx, p.TenantID, after)
		if errors.Is(err, apperr.ErrNotFound) {
			return CampaignPage{}, apperr.FieldErrors{"after": "not one of the tenant's campaigns"}
		} else if err != nil {
			return CampaignPage{}, err
		}
		after = ac.ID // the canonical form, whatever form the client wrote
	}
	cs, err := s.Store.ListCampaigns(ctx, p.TenantID, kind, after, limit)
	if err != nil {
		return CampaignPage{}, err
	}
	page := CampaignPage{Campaigns: cs}
	if cs == nil {
		page.Campaigns = []Campaign{}
	}
	if len(cs) == limit {
		page.NextAfter = cs[len(cs)-1].ID
	}
	return page, nil
}

// Get reads one of the tenant's campaigns; a health key reads exposure
// alerts only (install promotions are the marketer's).
func (s *Service) Get(ctx context.Context, p tenant.Principal, id string) (Campaign, error) {
	c, err := s.Store.GetCampaign(ctx, p.TenantID, id)
	if err == nil && c.Kind != KindExposureAlert && !p.Role.Allows(tenant.RoleMarketer) {
		return Campaign{}, fmt.Errorf("%w: a health key reads exposure alerts only", apperr.ErrForbidden)
	}
	return c, err
}

// mayChange refuses a change to a campaign by a key whose role does not own
// its kind: exposure alerts are the health authority's (a marketer can read
// them but not pause, cancel or test them), install promotions the
// marketer's. Admin may change both.
func mayChange(p tenant.Principal, c Campaign) error {
	switch {
	case c.Kind == KindExposureAlert && !p.Role.Allows(tenant.RoleHealth):
		return fmt.Errorf("%w: only a health or admin key may change an exposure alert", apperr.ErrForbidden)
	case c.Kind != KindExposureAlert && !p.Role.Allows(tenant.RoleMarketer):
		return fmt.Errorf("%w: only a marketer or admin key may change an install promotion", apperr.ErrForbidden)
	}
	return nil
}

// Act applies a user's state change. start moves a draft to scheduled when
// its start_at is in the future, else to running; starting a campaign that
// is already scheduled for the future is a conflict (a retried request must
// not turn a schedule into an immediate send). start and resume kick the
// workers. An illegal move is apperr.ErrConflict.
func (s *Service) Act(ctx context.Context, p tenant.Principal, id string, action Action) (Campaign, error) {
	switch action {
	case ActionStart, ActionPause, ActionResume, ActionCancel:
	default:
		return Campaign{}, apperr.Conflict("unknown action %q", action)
	}
	c, err := s.Store.GetCampaign(ctx, p.TenantID, id)
	if err != nil {
		return Campaign{}, err
	}
	if err := mayChange(p, c); err != nil {
		return Campaign{}, err
	}
	now := s.now()
	effective := action
	if action == ActionStart && c.StartAt != nil && c.StartAt.After(now) {
		if c.State == StateScheduled {
			return Campaign{}, apperr.Conflict("campaign is already scheduled to start at %s",
				c.StartAt.UTC().Format(time.RFC3339))
		}
		effective = ActionSchedule
	}
	from, to, err := Transition(effective)
	if err != nil {
		return Campaign{}, err
	}
	if !stateIn(c.State, from) {
		return Campaign{}, apperr.Conflict("cannot %s a campaign that is %s", action, c.State)
	}
	// Past end_by a campaign does not start. One paused before it may
	// resume: it sends nothing more (its unsent deliveries are skipped,
	// campaign_ended) and completes, as the monitor has it do by itself.
	if action == ActionStart && c.EndBy != nil && !c.EndBy.After(now) {
		return Campaign{}, apperr.Conflict("campaign was to end by %s; it cannot %s now",
			c.EndBy.UTC().Format(time.RFC3339), action)
	}
	updated, err := s.Store.TransitionCampaign(ctx, p.TenantID, id, from, to, now.UTC())
	if err != nil {
		if errors.Is(err, apperr.ErrConflict) {
			return Campaign{}, apperr.Conflict("cannot %s the campaign: its state changed meanwhile", action)
		}
		return Campaign{}, err
	}
	s.Audit(ctx, p, "campaign."+string(action), "campaign", id, map[string]any{
		"from": c.State, "to": updated.State})
	switch updated.State {
	case StateRunning:
		s.kick(ctx, updated)
	case StateCancelled:
		if st, ok := s.Dispatcher.(Settler); ok {
			// Not cut short by a client that hangs up once it has its answer.
			if err := st.Settle(context.WithoutCancel(ctx), updated); err != nil {
				s.logger().ErrorContext(ctx, "settle a cancelled campaign failed; its unsent deliveries stay pending",
					"campaign_id", updated.ID, "err", err)
			}
		}
	}
	return updated, nil
}

// kick hands a running campaign to the workers. A failure is logged, not
// returned: the campaign is running in the store, which is the truth, and
// the workers' reconciler picks up every active campaign from there.
func (s *Service) kick(ctx context.Context, c Campaign) {
	if s.Dispatcher == nil {
		return
	}
	if err := s.Dispatcher.Kick(ctx, c); err != nil {
		s.logger().ErrorContext(ctx, "kick campaign failed; the reconciler will pick it up",
			"campaign_id", c.ID, "err", err)
	}
}

func stateIn(s State, in []State) bool {
	for _, x := range in {
		if x == s {
			return true
		}
	}
	return false
}

// SendTest renders the campaign's messages for one MSISDN (any accepted
// form) and sends them at once, outside the campaign's ledger.
func (s *Service) SendTest(ctx context.Context, p tenant.Principal, id, msisdn string) ([]TestResult, error) {
	if strings.TrimSpace(msisdn) == "" {
		return nil, apperr.FieldErrors{"msisdn": "required: the number to send the test to"}
	}
	num, err := subscriber.NormalizeMSISDN(msisdn)
	if err != nil {
		return nil, apperr.FieldErrors{"msisdn": "not a valid phone number"}
	}
	c, err := s.Store.GetCampaign(ctx, p.TenantID, id)
	if err != nil {
		return nil, err
	}
	if err := mayChange(p, c); err != nil {
		return nil, err
	}
	if s.Dispatcher == nil {
		return nil, errors.New("send test: no dispatcher configured")
	}
	res, err := s.Dispatcher.SendTest(ctx, c, num)
	if err != nil {
		return nil, err
	}
	s.Audit(ctx, p, "campaign.test", "campaign", id, map[string]any{"msisdn": subscriber.Mask(num)})
	if res == nil {
		res = []TestResult{}
	}
	return res, nil
}

// ---- stats and deliveries ----

// Stats is the campaign report.
type Stats struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Kind  Kind   `json:"kind"`
	State State  `json:"state"`
	// CountedAt is when the deliveries were counted: a big campaign's
	// count is shared for a few times as long as it took (countsCache).
	CountedAt      time.Time            `json:"counted_at"`
	Audience       int64                `json:"audience"`
	Deliveries     map[Status]int64     `json:"deliveries"`
	Skipped        map[SkipReason]int64 `json:"skipped"`
	Channels       map[Channel]int64    `json:"channels"`
	Segments       int64                `json:"segments"`
	Installs       int64                `json:"installs"`
	ConversionRate float64              `json:"conversion_rate"`
	Rewards        RewardTotals         `json:"rewards"`
}

// RewardTotals are the rewards a campaign has granted.
type RewardTotals struct {
	Granted int64 `json:"granted"`
	MB      int64 `json:"mb"`
}

// Stats reports a campaign's deliveries and, when Rewards is set, its
// installs and rewards. Every status appears, with 0 when none.
func (s *Service) Stats(ctx context.Context, p tenant.Principal, id string) (Stats, error) {
	c, err := s.Store.GetCampaign(ctx, p.TenantID, id)
	if err != nil {
		return Stats{}, err
	}
	return s.stats(ctx, c)
}

func (s *Service) stats(ctx context.Context, c Campaign) (Stats, error) {
	counts, at, err := campaignCounts.get(ctx, s.Store, c)
	if err != nil {
		return Stats{}, fmt.Errorf("delivery counts: %w", err)
	}
	st := Stats{ID: c.ID, Name: c.Name, Kind: c.Kind, State: c.State, CountedAt: at.UTC(), Audience: counts.Audience,
		Deliveries: make(map[Status]int64, len(AllStatuses)), Skipped: map[SkipReason]int64{},
		Channels: map[Channel]int64{}, Segments: counts.Segments}
	for _, status := range AllStatuses {
		st.Deliveries[status] = counts.ByStatus[status]
	}
	for r, n := range counts.BySkip {
		st.Skipped[r] = n
	}
	for _, ch := range c.Channels {
		st.Channels[ch] = counts.ByChannel[ch]
	}
	for ch, n := range counts.ByChannel {
		st.Channels[ch] = n
	}
	if s.Rewards != nil {
		installs, granted, mb, err := s.Rewards.CampaignRewardStats(ctx, c.TenantID, c.ID)
		if err != nil {
			return Stats{}, fmt.Errorf("reward stats: %w", err)
		}
		st.Installs, st.Rewards = installs, RewardTotals{Granted: granted, MB: mb}
		if st.Audience > 0 {
			st.ConversionRate = float64(installs) / float64(st.Audience)
		}
	}
	return st, nil
}

// DeliveryQuery pages a campaign's deliveries by id.
type DeliveryQuery struct {
	Status Status
	After  int64
	Limit  int
}

// DeliveryPage is one page; NextAfter, when not 0, is the After of the next.
type DeliveryPage struct {
	Deliveries []Delivery `json:"deliveries"`
	NextAfter  int64      `json:"next_after,omitempty"`
}

// Deliveries pages a campaign's deliveries, filtered by status. The numbers
// an exposure alert went to are masked unless the key may send alerts.
func (s *Service) Deliveries(ctx context.Context, p tenant.Principal, id string, q DeliveryQuery) (DeliveryPage, error) {
	fe := apperr.FieldErrors{}
	if q.Status != "" && !statusKnown(q.Status) {
		fe.Add("status", "unknown status %q", q.Status)
	}
	if q.After < 0 {
		fe.Add("after", "must be 0 or more")
	}
	limit, err := pageSize(q.Limit)
	if err != nil {
		fe.Add("limit", "must be 1 to %d", MaxPageSize)
	}
	if err := fe.Err(); err != nil {
		return DeliveryPage{}, err
	}
	c, err := s.Store.GetCampaign(ctx, p.TenantID, id)
	if err != nil {
		return DeliveryPage{}, err
	}
	ds, err := s.Store.ListDeliveries(ctx, p.TenantID, id, q.Status, q.After, limit)
	if err != nil {
		return DeliveryPage{}, err
	}
	if ds == nil {
		ds = []Delivery{}
	}
	for i := range ds {
		// A delivery in flight carries the frequency cap's reservation in
		// sent_at (Store.ApplyCap); it has not been sent yet.
		if ds[i].Status == StatusPending || ds[i].Status == StatusSending {
			ds[i].SentAt = nil
		}
	}
	if c.Kind == KindExposureAlert && !p.Role.Allows(tenant.RoleHealth) {
		for i := range ds {
			ds[i].MSISDN = subscriber.Mask(ds[i].MSISDN)
		}
	}
	page := DeliveryPage{Deliveries: ds}
	if len(ds) == limit {
		page.NextAfter = ds[len(ds)-1].ID
	}
	return page, nil
}

func statusKnown(s Status) bool {
	for _, x := range AllStatuses {
		if x == s {
			return true
		}
	}
	return false
}

// pageSize applies the default page size to 0 and refuses sizes out of range.
func pageSize(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultPageSize, nil
	case n < 0 || n > MaxPageSize:
		return 0, apperr.FieldErrors{"limit": fmt.Sprintf("must be 1 to %d", MaxPageSize)}
	}
	return n, nil
}

// parseNew checks a new template's text: Parse, that it renders with
// empty values too (templates.CheckEmptyValues) and prints no subscriber
// whole (templates.CheckWholeValue); a body must also render
// to some text with the sample values (an empty SMS is refused by the
// provider, an empty push shows nothing). It returns that rendering.
func parseNew(name, body string, isBody bool) (string, error) {
	t, err := templates.Parse(name, body)
	if err != nil {
		return "", err
	}
	if err := t.CheckEmptyValues(); err != nil {
		return "", err
	}
	if err := t.CheckWholeValue(); err != nil {
		return "", err
	}
	sample := t.Sample()
	if isBody && strings.TrimSpace(sample) == "" {
		return "", &templates.Error{Template: name, Reason: "renders to no text", Err: templates.ErrInvalid}
	}
	return sample, nil
}

// smsCharacters is how many characters an SMS whose body renders to
// sample has as it would be sent in a campaign of kind: with the policy's
// label and opt-out text when that is marketing (kind "" or no policy: the
// body alone).
func smsCharacters(pol *Policy, sample string, transliterate bool, kind Kind) int {
	text := templates.SMSText(sample, transliterate)
	if kind != "" && pol != nil {
		text = pol.DecorateSMS(kind, sample, transliterate)
	}
	return templates.CountSMS(text).Characters
}

// PolicyOf is the tenant's policy: Policy with the tenant's own settings
// over it; nil when the service has no Policy.
func (s *Service) PolicyOf(ctx context.Context, tenantID string) (*Policy, error) {
	if s.Policy == nil {
		return nil, nil
	}
	own, err := s.Store.TenantPolicy(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("tenant policy: %w", err)
	}
	pol, err := s.Policy.With(own)
	if err != nil {
		// Settings stored by SetPolicy are checked first; one that no
		// longer reads (a zone gone from the system's database) falls back
		// to the default, as the workers do.
		s.logger().WarnContext(ctx, "a tenant's policy setting cannot be read: its default applies", "tenant", tenantID, "err", err)
	}
	return &pol, nil
}

// GetPolicy answers the caller's tenant's policy in effect.
func (s *Service) GetPolicy(ctx context.Context, p tenant.Principal) (tenant.Policy, error) {
	pol, err := s.PolicyOf(ctx, p.TenantID)
	if err != nil || pol == nil {
		return tenant.Policy{}, err
	}
	return pol.Settings(), nil
}

// SetPolicy replaces the tenant's own policy settings (admin only) and
// answers the policy in effect; a field left empty takes the deployment's
// default.
func (s *Service) SetPolicy(ctx context.Context, p tenant.Principal, in tenant.Policy) (tenant.Policy, error) {
	if p.Role != tenant.RoleAdmin {
		return tenant.Policy{}, fmt.Errorf("%w: only an admin key may change the tenant's policy", apperr.ErrForbidden)
	}
	in.Timezone, in.SendWindow, in.FrequencyCap = strings.TrimSpace(in.Timezone), strings.TrimSpace(in.SendWindow), strings.TrimSpace(in.FrequencyCap)
	base := Policy{Zone: time.UTC}
	if s.Policy != nil {
		base = *s.Policy
	}
	if _, err := base.With(in); err != nil {
		return tenant.Policy{}, err
	}
	if err := s.Store.SetTenantPolicy(ctx, p.TenantID, in); err != nil {
		return tenant.Policy{}, err
	}
	s.Audit(ctx, p, "policy.set", "tenant", p.TenantID, in)
	return s.GetPolicy(ctx, p)
}
