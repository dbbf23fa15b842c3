package campaign_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/store/sqlite"
	"outreach/subscriber"
	"outreach/templates"
	"outreach/tenant"
)

// recordingDispatcher stands in for the worker package's queue-backed
// Dispatcher (tested against real Redis in worker/); err makes Kick fail.
type recordingDispatcher struct {
	mu    sync.Mutex
	kicks []string
	err   error
}

func (d *recordingDispatcher) Kick(_ context.Context, c campaign.Campaign) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.kicks = append(d.kicks, c.ID)
	return d.err
}

func (d *recordingDispatcher) SendTest(context.Context, campaign.Campaign, string) ([]campaign.TestResult, error) {
	return nil, nil
}

type fakeRewards struct{ installs, granted, mb int64 }

func (r fakeRewards) CampaignRewardStats(context.Context, string, string) (int64, int64, int64, error) {
	return r.installs, r.granted, r.mb, nil
}

type env struct {
	svc  *campaign.Service
	st   *sqlite.Store
	disp *recordingDispatcher
	p    tenant.Principal
	now  time.Time
	logs *bytes.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "o.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	tn, err := st.EnsureTenant(ctx, "viettel")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, disp: &recordingDispatcher{}, logs: &bytes.Buffer{},
		p:   tenant.Principal{KeyID: "key-1", TenantID: tn.ID, TenantName: tn.Name, Role: tenant.RoleAdmin},
		now: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)}
	e.svc = &campaign.Service{Store: st, Subscribers: st, Dispatcher: e.disp,
		Now: func() time.Time { return e.now }, Logger: slog.New(slog.NewTextHandler(e.logs, nil))}
	return e
}

func (e *env) template(t *testing.T, in campaign.TemplateInput) campaign.MessageTemplate {
	t.Helper()
	tm, err := e.svc.CreateTemplate(context.Background(), e.p, in)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func (e *env) promo(t *testing.T, startAt *time.Time) campaign.Campaign {
	t.Helper()
	tm := e.template(t, campaign.TemplateInput{Name: "p", Channel: campaign.ChannelSMS, Body: "Cai Bluezone {{.InstallLink}}"})
	c, err := e.svc.CreateCampaign(context.Background(), e.p, campaign.CampaignInput{
		Name: "Q3", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: tm.ID}, StartAt: startAt,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStartFollowsTheClock(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	later := e.now.Add(time.Hour)
	c := e.promo(t, &later)
	if c.Kind != campaign.KindInstallPromotion || c.State != campaign.StateDraft || c.CreatedBy != "key-1" {
		t.Fatalf("created %+v", c)
	}
	got, err := e.svc.Act(ctx, e.p, c.ID, campaign.ActionStart)
	if err != nil || got.State != campaign.StateScheduled {
		t.Fatalf("start before start_at = %v, %v; want scheduled", got.State, err)
	}
	e.now = later.Add(time.Second)
	got, err = e.svc.Act(ctx, e.p, c.ID, campaign.ActionStart)
	if err != nil || got.State != campaign.StateRunning || got.StartedAt == nil {
		t.Fatalf("start after start_at = %+v, %v; want running", got, err)
	}
	if len(e.disp.kicks) != 1 || e.disp.kicks[0] != c.ID {
		t.Errorf("kicks %v", e.disp.kicks)
	}
	if _, err := e.svc.Act(ctx, e.p, c.ID, "explode"); !errors.Is(err, apperr.ErrConflict) {
		t.Errorf("an unknown action: %v", err)
	}
	if _, err := e.svc.Act(ctx, e.p, c.ID, campaign.ActionComplete); !errors.Is(err, apperr.ErrConflict) {
		t.Errorf("a user may not complete a campaign: %v", err)
	}
}

func TestAFailedKickLeavesTheCampaignRunning(t *testing.T) {
	e := newEnv(t)
	e.disp.err = errors.New("redis down")
	c := e.promo(t, nil)
	got, err := e.svc.Act(context.Background(), e.p, c.ID, campaign.ActionStart)
	if err != nil || got.State != campaign.StateRunning {
		t.Fatalf("start = %v, %v", got.State, err)
	}
	if !strings.Contains(e.logs.String(), "redis down") {
		t.Errorf("the failed kick is not logged: %s", e.logs.String())
	}
}

func TestStatsUseTheRewardsHook(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.promo(t, nil)
	st, err := e.svc.Stats(ctx, e.p, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Installs != 0 || st.Rewards.Granted != 0 || len(st.Deliveries) != len(campaign.AllStatuses) {
		t.Errorf("stats without rewards %+v", st)
	}
	ids, err := e.st.EnsureSubscribers(ctx, e.p.TenantID, []string{"+84912345678", "+84987654321"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.InsertDeliveries(ctx, c, campaign.ChannelSMS, []campaign.NewDelivery{
		{SubscriberID: ids["+84912345678"]}, {SubscriberID: ids["+84987654321"]}}); err != nil {
		t.Fatal(err)
	}
	e.svc.Rewards = fakeRewards{installs: 1, granted: 1, mb: 5120}
	st, err = e.svc.Stats(ctx, e.p, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Installs != 1 || st.ConversionRate != 0.5 || st.Rewards != (campaign.RewardTotals{Granted: 1, MB: 5120}) {
		t.Errorf("stats with rewards %+v", st)
	}
}

func TestPreviewWithPolicyAndSampleVars(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.svc.Policy = &campaign.Policy{Label: "QC", OptOutText: "Tu choi soan TC gui 789"}
	e.svc.SampleVars = templates.Vars{InstallLink: "https://bz.vn/i/AbCd1234", RewardMB: 5120}
	tm := e.template(t, campaign.TemplateInput{Name: "p", Channel: campaign.ChannelSMS,
		Body: "Cài Bluezone nhận {{.RewardMB}}MB: {{.InstallLink}}", Transliterate: true})
	pv, err := e.svc.PreviewTemplate(ctx, e.p, tm.ID, campaign.PreviewInput{})
	if err != nil {
		t.Fatal(err)
	}
	want := "QC: Cai Bluezone nhan 5120MB: https://bz.vn/i/AbCd1234 - Tu choi soan TC gui 789"
	if pv.Text != want || pv.Encoding != templates.GSM7 || pv.Segments != 1 || pv.Characters != len(want) {
		t.Errorf("marketing preview %+v, want %q", pv, want)
	}
	pv, err = e.svc.PreviewTemplate(ctx, e.p, tm.ID, campaign.PreviewInput{Kind: campaign.KindExposureAlert,
		Vars: map[string]any{"RewardMB": 1.0}})
	if err != nil {
		t.Fatal(err)
	}
	// An alert's deliveries carry no install link: nor does its preview.
	if pv.Text != "Cai Bluezone nhan 1MB:" {
		t.Errorf("alert preview %q", pv.Text)
	}
	// {{.Name}} is the name attribute when the request gives no Name, as
	// when the worker sends.
	named := e.template(t, campaign.TemplateInput{Name: "n", Channel: campaign.ChannelSMS, Body: "Chao {{.Name}}"})
	pv, err = e.svc.PreviewTemplate(ctx, e.p, named.ID, campaign.PreviewInput{Kind: campaign.KindExposureAlert,
		Vars: map[string]any{"name": "Lan"}})
	if err != nil || pv.Text != "Chao Lan" {
		t.Errorf("preview with a name attribute: %q, %v; want Chao Lan", pv.Text, err)
	}
}

func TestCreateAlertAtScale(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tm := e.template(t, campaign.TemplateInput{Name: "a", Channel: campaign.ChannelSMS, Body: "Ban la F1, hay lien he y te"})
	var contacts []string
	for i := range 2500 { // more than one store chunk
		contacts = append(contacts, fmt.Sprintf("09%08d", 12000000+i))
	}
	contacts = append(contacts, "0912000000", "x")
	res, err := e.svc.CreateAlert(ctx, e.p, campaign.AlertInput{Name: "F1", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: tm.ID}, Contacts: contacts})
	if err != nil {
		t.Fatal(err)
	}
	if res.Contacts != 2500 || res.Duplicates != 1 || len(res.InvalidContacts) != 1 || res.InvalidContacts[0].Index != 2501 {
		t.Errorf("result %+v", res)
	}
	c, err := e.st.GetCampaign(ctx, e.p.TenantID, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for after := int64(0); ; {
		ids, err := e.st.AudiencePage(ctx, c, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			break
		}
		n += len(ids)
		after = ids[len(ids)-1]
	}
	if n != 2500 || c.State != campaign.StateRunning || c.Kind != campaign.KindExposureAlert {
		t.Errorf("alert %+v with %d contacts", c, n)
	}
	if _, err := e.svc.GetAlert(ctx, e.p, res.ID); err != nil {
		t.Errorf("GetAlert: %v", err)
	}
}

func TestPushFallbackNeedsAnSMSTemplate(t *testing.T) {
	e := newEnv(t)
	_, err := e.svc.CreateCampaign(context.Background(), e.p, campaign.CampaignInput{
		Name: "x", Channels: []campaign.Channel{campaign.ChannelPush}, PushFallbackSMS: true,
		Templates: map[campaign.Channel]string{campaign.ChannelPush: "nope"},
	})
	var fe apperr.FieldErrors
	if !errors.As(err, &fe) || fe["templates.push"] == "" || !strings.Contains(fe["templates.sms"], "push_fallback_sms") {
		t.Errorf("fallback without an SMS template: %v, want templates.sms naming push_fallback_sms", err)
	}
}

func TestACampaignPastItsEndCannotStart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tm := e.template(t, campaign.TemplateInput{Name: "p", Channel: campaign.ChannelSMS, Body: "hi"})
	end := e.now.Add(time.Hour)
	c, err := e.svc.CreateCampaign(ctx, e.p, campaign.CampaignInput{Name: "x", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: tm.ID}, EndBy: &end})
	if err != nil {
		t.Fatal(err)
	}
	e.now = end.Add(time.Minute)
	if _, err := e.svc.Act(ctx, e.p, c.ID, campaign.ActionStart); !errors.Is(err, apperr.ErrConflict) {
		t.Errorf("start after end_by: %v", err)
	}
	if _, err := e.svc.Act(ctx, e.p, c.ID, campaign.ActionCancel); err != nil {
		t.Errorf("cancel after end_by: %v", err)
	}
	if len(e.disp.kicks) != 0 {
		t.Errorf("kicked %v", e.disp.kicks)
	}
}

// startingDispatcher records what the store held at each step of an
// alert's start (see alertStarterFuncs).
type startingDispatcher struct {
	recordingDispatcher
	st                         *sqlite.Store
	tenantID                   string
	steps                      []string
	stateAtHold                campaign.State
	first                      []int64
	contactsAtFirst, atRelease int
}

func (d *startingDispatcher) contacts(t *testing.T, id string) (campaign.Campaign, int) {
	c, err := d.st.GetCampaign(context.Background(), d.tenantID, id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for after := int64(0); ; {
		ids, err := d.st.AudiencePage(context.Background(), c, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			return c, n
		}
		n += len(ids)
		after = ids[len(ids)-1]
	}
}

func TestAnAlertSendsToItsFirstContactsBeforeItsListIsWritten(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	d := &startingDispatcher{st: e.st, tenantID: e.p.TenantID}
	hold := func(_ context.Context, c campaign.Campaign) (func(context.Context, bool) error, error) {
		got, _ := d.contacts(t, c.ID)
		d.steps, d.stateAtHold = append(d.steps, "hold"), got.State
		return func(_ context.Context, queuedAll bool) error {
			if !queuedAll {
				t.Error("released as if a part of the list had not been queued")
			}
			got, n := d.contacts(t, c.ID)
			if got.State != campaign.StateRunning {
				t.Errorf("the fan-out was let go with the alert %s", got.State)
			}
			d.steps, d.atRelease = append(d.steps, "release"), n
			return nil
		}, nil
	}
	queued := 0
	starter := alertStarterFuncs{hold: hold, queue: func(_ context.Context, c campaign.Campaign, ids []int64) error {
		_, n := d.contacts(t, c.ID)
		if len(d.first) == 0 {
			d.steps, d.first, d.contactsAtFirst = append(d.steps, "first"), ids, n
		}
		if queued += len(ids); n != queued {
			t.Errorf("queued %d contacts with %d stored", queued, n)
		}
		return nil
	}, Dispatcher: d}
	e.svc.Dispatcher = starter
	tm := e.template(t, campaign.TemplateInput{Name: "a", Channel: campaign.ChannelSMS, Body: "Ban la F1, hay lien he y te"})
	var contacts []string
	for i := range 2500 {
		contacts = append(contacts, fmt.Sprintf("09%08d", 12000000+i))
	}
	res, err := e.svc.CreateAlert(ctx, e.p, campaign.AlertInput{Name: "F1", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: tm.ID}, Contacts: contacts})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(d.steps, ","); got != "hold,first,release" {
		t.Fatalf("steps %s, want hold,first,release", got)
	}
	if d.stateAtHold != campaign.StateDraft {
		t.Errorf("the fan-out was held with the alert %s: a monitor could have fanned it out first", d.stateAtHold)
	}
	if len(d.first) == 0 || len(d.first) >= 2500 || d.contactsAtFirst != len(d.first) {
		t.Errorf("the first %d contacts were sent with %d stored: want a first part of the list, stored", len(d.first), d.contactsAtFirst)
	}
	if queued != 2500 {
		t.Errorf("queued %d of 2500 contacts", queued)
	}
	if d.atRelease != 2500 || res.Contacts != 2500 {
		t.Errorf("the fan-out was let go with %d of %d contacts stored", d.atRelease, res.Contacts)
	}
	if len(d.kicks) != 0 {
		t.Errorf("kicked %d times besides the release", len(d.kicks))
	}
}

// alertStarterFuncs is a Dispatcher and AlertStarter of functions.
type alertStarterFuncs struct {
	campaign.Dispatcher
	hold  func(context.Context, campaign.Campaign) (func(context.Context, bool) error, error)
	queue func(context.Context, campaign.Campaign, []int64) error
}

func (a alertStarterFuncs) HoldFanout(ctx context.Context, c campaign.Campaign) (func(context.Context, bool) error, error) {
	return a.hold(ctx, c)
}

func (a alertStarterFuncs) QueueContacts(ctx context.Context, c campaign.Campaign, ids []int64) error {
	return a.queue(ctx, c, ids)
}

// Input that a store would refuse or that could only fail later (a filter
// no store can run, a sum that overflows) is refused when the campaign is
// created, each field named.
func TestCreateCampaignRefusesWhatCouldOnlyFailLater(t *testing.T) {
	e := newEnv(t)
	many := map[string]string{}
	for i := range campaign.MaxAudienceAttributes + 1 {
		many[fmt.Sprintf("a%d", i)] = "x"
	}
	for _, tc := range []struct {
		name  string
		in    campaign.CampaignInput
		field string
	}{
		{"a NUL in the name", campaign.CampaignInput{Name: "Khuyến\x00mãi"}, "name"},
		{"a quote in an attribute name", campaign.CampaignInput{Name: "x",
			Audience: campaign.Audience{Attributes: map[string]string{`na"me`: "An"}}}, "audience.attributes"},
		{"a NUL in an attribute value", campaign.CampaignInput{Name: "x",
			Audience: campaign.Audience{Attributes: map[string]string{"plan": "pre\x00paid"}}}, "audience.attributes"},
		{"too many attributes", campaign.CampaignInput{Name: "x", Audience: campaign.Audience{Attributes: many}}, "audience.attributes"},
		{"a rate no sender has", campaign.CampaignInput{Name: "x", RatePerSecond: 1 << 62}, "rate_per_second"},
		{"a data bonus that would overflow the budget's sum", campaign.CampaignInput{Name: "x",
			Reward: &campaign.Reward{DataMB: 5e18, BudgetMB: 9e18, AttributionDays: 7}}, "reward.data_mb"},
		{"a budget that would overflow", campaign.CampaignInput{Name: "x",
			Reward: &campaign.Reward{DataMB: 100, BudgetMB: 9e18, AttributionDays: 7}}, "reward.budget_mb"},
	} {
		_, err := e.svc.CreateCampaign(context.Background(), e.p, tc.in)
		var fe apperr.FieldErrors
		if !errors.As(err, &fe) || fe[tc.field] == "" {
			t.Errorf("%s: %v, want %s named", tc.name, err, tc.field)
		}
	}
}

// An SMS body within Twilio's 1,600 characters alone may not be once a
// marketing campaign adds the QC label and the opt-out text: such a
// campaign is refused naming its template (every message of it would fail),
// while an alert, which adds neither, takes it.
func TestAMarketingCampaignCountsItsSMSWithLabelAndOptOutText(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.svc.Policy = &campaign.Policy{Label: "QC", OptOutText: "Tu choi: soan TC gui 9241"}
	body := strings.Repeat("a", templates.MaxSMSCharacters-len("An")) + "{{.Name}}"
	tm := e.template(t, campaign.TemplateInput{Name: "long", Channel: campaign.ChannelSMS, Body: body})
	in := campaign.CampaignInput{Name: "x", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: tm.ID}}
	var fe apperr.FieldErrors
	if _, err := e.svc.CreateCampaign(ctx, e.p, in); !errors.As(err, &fe) || !strings.Contains(fe["templates.sms"], "QC label") {
		t.Errorf("a marketing campaign with a 1,600-character body: %v, want templates.sms named", err)
	}
	if _, err := e.svc.CreateAlert(ctx, e.p, campaign.AlertInput{Name: "F1", Channels: in.Channels, Templates: in.Templates,
		Contacts: []string{"0912345678"}}); err != nil {
		t.Errorf("an alert with it: %v", err)
	}
}

// stallingSubscribers blocks the second EnsureSubscribers call until its
// context ends: a store so slow that an alert's creation runs out of time.
type stallingSubscribers struct {
	subscriber.Store
	calls atomic.Int32
}

func (s *stallingSubscribers) EnsureSubscribers(ctx context.Context, tenantID string, msisdns []string) (map[string]int64, error) {
	if s.calls.Add(1) == 2 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Store.EnsureSubscribers(ctx, tenantID, msisdns)
}

// An alert whose creation runs out of time is cancelled and audited: the
// cancellation used to run on the context that had run out, and failed.
func TestAnAlertWhoseCreationRunsOutOfTimeIsCancelled(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// Long enough for the alert to be stored before the stall even on a
	// loaded machine under -race (200 ms was not, once); the stall then
	// uses it up.
	defer campaign.SetAlertCreateTimeout(2 * time.Second)()
	tm := e.template(t, campaign.TemplateInput{Name: "f1", Channel: campaign.ChannelSMS, Body: "Hãy tự cách ly."})
	e.svc.Subscribers = &stallingSubscribers{Store: e.st}
	var contacts []string
	for i := range 1200 {
		contacts = append(contacts, fmt.Sprintf("+8498%07d", i))
	}
	if _, err := e.svc.CreateAlert(ctx, e.p, campaign.AlertInput{Name: "F1", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: tm.ID}, Contacts: contacts}); err == nil {
		t.Fatal("an alert whose list could not be written was created")
	}
	cs, err := e.st.ListCampaigns(ctx, e.p.TenantID, campaign.KindExposureAlert, "", 10)
	if err != nil || len(cs) != 1 || cs[0].State != campaign.StateCancelled {
		t.Fatalf("alerts %+v, %v: want one, cancelled", cs, err)
	}
	entries, err := e.st.ListAudit(ctx, e.p.TenantID, 100)
	if err != nil || !slices.ContainsFunc(entries, func(a campaign.AuditEntry) bool {
		return a.Action == "alert.abort" && a.ObjectID == cs[0].ID
	}) {
		t.Errorf("no alert.abort audit entry (%v)", err)
	}
}

// A template that uses a field the campaign cannot fill is refused: every
// message would carry it empty ("nhận 0MB", a sentence ending in a blank
// link).
func TestATemplateUsingAFieldTheCampaignCannotFillIsRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	promo := e.template(t, campaign.TemplateInput{Name: "promo", Channel: campaign.ChannelSMS,
		Body: "Cài Bluezone nhận {{.RewardMB}}MB: {{.InstallLink}}"})
	linkOnly := e.template(t, campaign.TemplateInput{Name: "link", Channel: campaign.ChannelSMS,
		Body: "Cài Bluezone: {{.InstallLink}}"})
	deepLink := e.template(t, campaign.TemplateInput{Name: "push", Channel: campaign.ChannelPush, Title: "Bluezone",
		Body: "Cài Bluezone", Data: map[string]string{"link": "{{if .Name}}{{.InstallLink}}{{end}}"}})
	field := func(err error, name string) string {
		t.Helper()
		var fe apperr.FieldErrors
		if !errors.As(err, &fe) {
			t.Fatalf("err = %v, want field errors naming %s", err, name)
		}
		return fe[name]
	}

	_, err := e.svc.CreateCampaign(ctx, e.p, campaign.CampaignInput{Name: "no reward", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: promo.ID}})
	if msg := field(err, "templates.sms"); !strings.Contains(msg, "{{.RewardMB}}") || !strings.Contains(msg, "no reward") {
		t.Errorf("a promotion with no reward and {{.RewardMB}}: %q", msg)
	}
	if _, err := e.svc.CreateCampaign(ctx, e.p, campaign.CampaignInput{Name: "rewarded", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: promo.ID},
		Reward:    &campaign.Reward{DataMB: 5120, BudgetMB: 51200, AttributionDays: 14}}); err != nil {
		t.Errorf("a rewarded promotion with {{.RewardMB}}: %v", err)
	}
	if _, err := e.svc.CreateCampaign(ctx, e.p, campaign.CampaignInput{Name: "link only", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: linkOnly.ID}}); err != nil {
		t.Errorf("a promotion with no reward and only {{.InstallLink}}: %v", err)
	}
	// A template that says the reward only when there is one suits both.
	either := e.template(t, campaign.TemplateInput{Name: "either", Channel: campaign.ChannelSMS,
		Body: "Cài Bluezone{{if .RewardMB}} nhận {{.RewardMB}}MB{{end}}: {{.InstallLink}}"})
	if _, err := e.svc.CreateCampaign(ctx, e.p, campaign.CampaignInput{Name: "either", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: either.ID}}); err != nil {
		t.Errorf("a promotion with no reward and {{.RewardMB}} only under {{if .RewardMB}}: %v", err)
	}

	health := e.p
	health.Role = tenant.RoleHealth
	for _, tc := range []struct {
		ch   campaign.Channel
		id   string
		want string
	}{{campaign.ChannelSMS, promo.ID, "{{.InstallLink}}"}, {campaign.ChannelPush, deepLink.ID, "{{.InstallLink}}"}} {
		_, err := e.svc.CreateAlert(ctx, health, campaign.AlertInput{Name: "F1", Channels: []campaign.Channel{tc.ch},
			Templates: map[campaign.Channel]string{tc.ch: tc.id}, Contacts: []string{"0912345678"}})
		if msg := field(err, "templates."+string(tc.ch)); !strings.Contains(msg, tc.want) {
			t.Errorf("an alert with a %s template using %s: %q", tc.ch, tc.want, msg)
		}
	}
}

// A campaign names a template per channel for each locale it speaks; each
// is checked as the main templates are, and must be in that locale.
func TestLocaleTemplatesAreCheckedAndKept(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	vi := e.template(t, campaign.TemplateInput{Name: "promo-vi", Channel: campaign.ChannelSMS, Locale: "vi",
		Body: "Cài Bluezone: {{.InstallLink}}", Transliterate: true})
	en := e.template(t, campaign.TemplateInput{Name: "promo-en", Channel: campaign.ChannelSMS, Locale: "en",
		Body: "Install Bluezone: {{.InstallLink}}"})
	enReward := e.template(t, campaign.TemplateInput{Name: "promo-en-reward", Channel: campaign.ChannelSMS, Locale: "en",
		Body: "Install Bluezone for {{.RewardMB}}MB: {{.InstallLink}}"})
	enPush := e.template(t, campaign.TemplateInput{Name: "push-en", Channel: campaign.ChannelPush, Locale: "en",
		Title: "Bluezone", Body: "Install Bluezone"})
	create := func(byLocale map[string]map[campaign.Channel]string) (campaign.Campaign, error) {
		return e.svc.CreateCampaign(ctx, e.p, campaign.CampaignInput{Name: "Bluezone Q3", Channels: []campaign.Channel{campaign.ChannelSMS},
			Templates: map[campaign.Channel]string{campaign.ChannelSMS: vi.ID}, LocaleTemplates: byLocale})
	}
	for _, tc := range []struct {
		byLocale     map[string]map[campaign.Channel]string
		field, about string
	}{
		{map[string]map[campaign.Channel]string{"fr": {campaign.ChannelSMS: en.ID}}, "locale_templates.fr", "vi or en"},
		{map[string]map[campaign.Channel]string{"en": {campaign.ChannelSMS: vi.ID}}, "locale_templates.en.sms", "in locale vi, not en"},
		{map[string]map[campaign.Channel]string{"en": {campaign.ChannelPush: enPush.ID}}, "locale_templates.en.push", "no channel"},
		{map[string]map[campaign.Channel]string{"en": {campaign.ChannelSMS: enPush.ID}}, "locale_templates.en.sms", "is for push"},
		{map[string]map[campaign.Channel]string{"en": {campaign.ChannelSMS: enReward.ID}}, "locale_templates.en.sms", "{{.RewardMB}}"},
		{map[string]map[campaign.Channel]string{"en": {campaign.ChannelSMS: "9f1c2d3e-0000-4000-8000-000000000000"}}, "locale_templates.en.sms", "no template"},
		{map[string]map[campaign.Channel]string{"en": {campaign.ChannelSMS: ""}}, "locale_templates.en.sms", "must name"},
	} {
		_, err := create(tc.byLocale)
		var fe apperr.FieldErrors
		if !errors.As(err, &fe) || !strings.Contains(fe[tc.field], tc.about) {
			t.Errorf("locale templates %v: %v; want %s to say %q", tc.byLocale, err, tc.field, tc.about)
		}
	}
	c, err := create(map[string]map[campaign.Channel]string{"en": {campaign.ChannelSMS: en.ID}, "vi": {}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.st.GetCampaign(ctx, e.p.TenantID, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.LocaleTemplates) != 1 || got.LocaleTemplates["en"][campaign.ChannelSMS] != en.ID {
		t.Errorf("locale templates read back: %v, want en's SMS %s alone", got.LocaleTemplates, en.ID)
	}
	for locale, want := range map[string]string{"en": en.ID, "vi": vi.ID, "": vi.ID} {
		if id := got.TemplateFor(campaign.ChannelSMS, locale); id != want {
			t.Errorf("template for locale %q: %s, want %s", locale, id, want)
		}
	}
	// An alert takes them too.
	health := e.p
	health.Role = tenant.RoleHealth
	alertVI := e.template(t, campaign.TemplateInput{Name: "f1-vi", Channel: campaign.ChannelSMS, Locale: "vi", Body: "Ban da o gan nguoi nhiem."})
	alertEN := e.template(t, campaign.TemplateInput{Name: "f1-en", Channel: campaign.ChannelSMS, Locale: "en", Body: "You were near a case."})
	a, err := e.svc.CreateAlert(ctx, health, campaign.AlertInput{Name: "F1", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates:       map[campaign.Channel]string{campaign.ChannelSMS: alertVI.ID},
		LocaleTemplates: map[string]map[campaign.Channel]string{"en": {campaign.ChannelSMS: alertEN.ID}}, Contacts: []string{"0912345678"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.st.GetCampaign(ctx, e.p.TenantID, a.ID); err != nil || got.TemplateFor(campaign.ChannelSMS, "en") != alertEN.ID {
		t.Errorf("alert's English template: %+v, %v", got.LocaleTemplates, err)
	}
}
