package campaign_test

import (
	"context"
	"errors"
	"testing"

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

// A region code or list name with text PostgreSQL cannot keep (a NUL) is
// refused naming its field, on both stores: on PostgreSQL it was a 500
// (the list look-up or the jsonb insert failed), while SQLite stored it.
func TestAnAudienceWithTextNoStoreKeepsIsRefused(t *testing.T) {
	ctx := context.Background()
	stores := map[string]func(t *testing.T) audienceStore{
		"sqlite": func(t *testing.T) audienceStore {
			st, err := sqlite.Open(ctx, t.TempDir()+"/o.db")
			return migrated(t, st, func() { st.Close() }, err)
		},
		"postgres": func(t *testing.T) audienceStore {
			st, err := postgres.Open(ctx, testenv.PostgresURL(t))
			return migrated(t, st, func() { st.Close() }, err)
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			tn, err := st.EnsureTenant(ctx, "nul-audience")
			if err != nil {
				t.Fatal(err)
			}
			p := tenant.Principal{KeyID: "k", TenantID: tn.ID, Role: tenant.RoleAdmin}
			svc := &campaign.Service{Store: st, Subscribers: st}
			tm, err := svc.CreateTemplate(ctx, p, campaign.TemplateInput{Name: "p", Channel: campaign.ChannelSMS,
				Body: "Cai Bluezone: {{.InstallLink}}"})
			if err != nil {
				t.Fatal(err)
			}
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
