package campaign_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/internal/testenv"
	"outreach/store/postgres"
	"outreach/store/sqlite"
	"outreach/subscriber"
	"outreach/tenant"
)

type audienceStore interface {
	campaign.Store
	subscriber.Store
	tenant.Store
	Migrate(context.Context) error
}

// migrated is st, opened with err, closed with closer at the test's end,
// with its schema up to date.
func migrated(t *testing.T, st audienceStore, closer func(), err error) audienceStore {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closer)
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// smsService is a campaign service on st, an admin of tenantID, and an SMS
// template of theirs.
func smsService(t *testing.T, st audienceStore, tenantID string) (*campaign.Service, tenant.Principal, campaign.MessageTemplate) {
	t.Helper()
	p := tenant.Principal{KeyID: "k", TenantID: tenantID, Role: tenant.RoleAdmin}
	svc := &campaign.Service{Store: st, Subscribers: st}
	tm, err := svc.CreateTemplate(context.Background(), p, campaign.TemplateInput{Name: "p", Channel: campaign.ChannelSMS,
		Body: "Cai Bluezone: {{.InstallLink}}"})
	if err != nil {
		t.Fatal(err)
	}
	return svc, p, tm
}

// bothStores opens a migrated SQLite or PostgreSQL store, by name.
func bothStores(ctx context.Context) map[string]func(t *testing.T) audienceStore {
	return map[string]func(t *testing.T) audienceStore{
		"sqlite": func(t *testing.T) audienceStore {
			st, err := sqlite.Open(ctx, t.TempDir()+"/o.db")
			return migrated(t, st, func() { st.Close() }, err)
		},
		"postgres": func(t *testing.T) audienceStore {
			st, err := postgres.Open(ctx, testenv.PostgresURL(t))
			return migrated(t, st, func() { st.Close() }, err)
		},
	}
}

// An audience's attributes are compared as the importer stores them:
// trimmed and composed (NFC). A file exported with decomposed Vietnamese
// (NFD) or a value typed with a stray space reached no one, on both
// stores.
func TestAnAttributeAsTypedReachesTheSubscribersImported(t *testing.T) {
	ctx := context.Background()
	for name, open := range bothStores(ctx) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			tn, err := st.EnsureTenant(ctx, "attr-text-"+uuid.NewString())
			if err != nil {
				t.Fatal(err)
			}
			// Row 2's province is decomposed (NFD), its plan has a trailing space.
			csv := "msisdn,region,goi cuoc ,tinh\n0900000001,HN,Trả trước,Hà Nội\n0900000002,HN,Trả trước ,Ha\u0300 No\u0323\u0302i\n"
			if _, err := (&subscriber.Importer{Store: st}).Import(ctx, tn.ID, strings.NewReader(csv), ""); err != nil {
				t.Fatal(err)
			}
			svc, p, tm := smsService(t, st, tn.ID)
			for what, attrs := range map[string]map[string]string{
				"as stored":                     {"goi cuoc": "Trả trước"},
				"a trailing space in the value": {"goi cuoc": "Trả trước "},
				"a space around the name":       {" goi cuoc ": "Trả trước"},
				"the value composed (NFC)":      {"tinh": "Hà Nội"},
				"the value decomposed (NFD)":    {"tinh": "Ha\u0300 No\u0323\u0302i"},
			} {
				c, err := svc.CreateCampaign(ctx, p, campaign.CampaignInput{Name: "Q3", Channels: []campaign.Channel{campaign.ChannelSMS},
					Templates: map[campaign.Channel]string{campaign.ChannelSMS: tm.ID}, Audience: campaign.Audience{Attributes: attrs}})
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if ids, err := st.AudiencePage(ctx, c, 0, 10); err != nil || len(ids) != 2 {
					t.Errorf("%s: the audience %q reaches %d subscribers (%v), want the 2 imported", what, c.Audience.Attributes, len(ids), err)
				}
			}
			// Two names that are one attribute as stored: which value
			// counts would be chance.
			_, err = svc.CreateCampaign(ctx, p, campaign.CampaignInput{Name: "Q3", Channels: []campaign.Channel{campaign.ChannelSMS},
				Templates: map[campaign.Channel]string{campaign.ChannelSMS: tm.ID},
				Audience:  campaign.Audience{Attributes: map[string]string{"tinh": "Hà Nội", "tinh ": "Đà Nẵng"}}})
			var fe apperr.FieldErrors
			if !errors.As(err, &fe) || !strings.Contains(fe["audience.attributes"], "name the same attribute") {
				t.Errorf("two names of one attribute: %v, want refused", err)
			}
		})
	}
}

// A region code or list name with text PostgreSQL cannot keep (a NUL) is
// refused naming its field, on both stores: on PostgreSQL it was a 500
// (the list look-up or the jsonb insert failed), while SQLite stored it.
func TestAnAudienceWithTextNoStoreKeepsIsRefused(t *testing.T) {
	ctx := context.Background()
	for name, open := range bothStores(ctx) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			tn, err := st.EnsureTenant(ctx, "nul-audience")
			if err != nil {
				t.Fatal(err)
			}
			svc, p, tm := smsService(t, st, tn.ID)
			for field, aud := range map[string]campaign.Audience{
				"audience.regions": {Regions: []string{"H\x00G"}},
				"audience.list":    {List: "l\x00st"},
			} {
				_, err := svc.CreateCampaign(ctx, p, campaign.CampaignInput{Name: "Q3", Channels: []campaign.Channel{campaign.ChannelSMS},
					Templates: map[campaign.Channel]string{campaign.ChannelSMS: tm.ID}, Audience: aud})
				var fe apperr.FieldErrors
				if !errors.As(err, &fe) || fe[field] == "" {
					t.Errorf("%s with a NUL: %v, want a field error naming it", field, err)
				}
			}
		})
	}
}

// Subscribers whose attributes were stored decomposed (NFD), before the
// importer composed them, are reached by an audience typed either way.
func TestAttributesStoredDecomposedAreStillReached(t *testing.T) {
	ctx := context.Background()
	for name, open := range bothStores(ctx) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			tn, err := st.EnsureTenant(ctx, "attr-nfd-"+uuid.NewString())
			if err != nil {
				t.Fatal(err)
			}
			nfd := "Ha\u0300 No\u0323\u0302i"
			if _, err := st.UpsertSubscribers(ctx, tn.ID, []subscriber.Row{
				{MSISDN: "+84900000001", Region: "HN", Attributes: map[string]string{"ti\u0309nh": nfd}},
				{MSISDN: "+84900000002", Region: "HN", Attributes: map[string]string{"tỉnh": "Hà Nội"}},
				{MSISDN: "+84900000003", Region: "HN", Attributes: map[string]string{"tỉnh": "Hà Giang"}},
			}, ""); err != nil {
				t.Fatal(err)
			}
			svc, p, tm := smsService(t, st, tn.ID)
			for what, attrs := range map[string]map[string]string{
				"composed":   {"tỉnh": "Hà Nội"},
				"decomposed": {"ti\u0309nh": nfd},
			} {
				c, err := svc.CreateCampaign(ctx, p, campaign.CampaignInput{Name: "Q3", Channels: []campaign.Channel{campaign.ChannelSMS},
					Templates: map[campaign.Channel]string{campaign.ChannelSMS: tm.ID}, Audience: campaign.Audience{Attributes: attrs}})
				if err != nil {
					t.Fatal(err)
				}
				if ids, err := st.AudiencePage(ctx, c, 0, 10); err != nil || len(ids) != 2 {
					t.Errorf("typed %s: reaches %d (%v), want the 2 in Hà Nội, stored either way", what, len(ids), err)
				}
			}
		})
	}
}
