package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/internal/apperr"
	"outreach/subscriber"
)

// InstallMarker is implemented by a store wrapper of the calling test that
// can mark subscribers installed (installs belong to another store); without
// it the audience cases that need an installed subscriber are skipped.
type InstallMarker interface {
	MarkInstalled(ctx context.Context, subscriberIDs []int64) error
}

// RunCampaigns is the contract of campaign.Store. newStore returns a fresh,
// migrated, empty store.
func RunCampaigns(t *testing.T, newStore func(t *testing.T) CampaignStore) {
	t.Run("a template is read back whole by its tenant and is unknown to others", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		tpl := &campaign.MessageTemplate{TenantID: f.tenant, Name: "promo-push", Channel: campaign.ChannelPush,
			Locale: "vi", Title: "Bluezone", Body: "Cai dat {{.InstallLink}}",
			Data: map[string]string{"screen": "install"}, Transliterate: true}
		if err := f.st.CreateTemplate(f.ctx, tpl); err != nil {
			t.Fatal(err)
		}
		if tpl.ID == "" || tpl.CreatedAt.IsZero() {
			t.Fatalf("create left id %q and created_at %v unset", tpl.ID, tpl.CreatedAt)
		}
		got, err := f.st.GetTemplate(f.ctx, f.tenant, tpl.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.CreatedAt.Equal(tpl.CreatedAt) {
			t.Errorf("created_at = %v, want %v", got.CreatedAt, tpl.CreatedAt)
		}
		got.CreatedAt = tpl.CreatedAt
		if !reflect.DeepEqual(got, *tpl) {
			t.Errorf("read back %+v\nwant %+v", got, *tpl)
		}
		sms := &campaign.MessageTemplate{TenantID: f.tenant, Name: "promo-sms", Channel: campaign.ChannelSMS,
			Locale: "en", Body: "Install {{.InstallLink}}"}
		if err := f.st.CreateTemplate(f.ctx, sms); err != nil {
			t.Fatal(err)
		}
		if sms.ID == tpl.ID {
			t.Fatal("two templates got one id")
		}
		if got, err := f.st.GetTemplate(f.ctx, f.tenant, sms.ID); err != nil || got.Data != nil || got.Title != "" {
			t.Errorf("sms template = %+v, %v", got, err)
		}
		wantNotFound(t, "another tenant's template", func() error {
			_, err := f.st.GetTemplate(f.ctx, f.other, tpl.ID)
			return err
		})
		wantNotFound(t, "an unknown template", func() error {
			_, err := f.st.GetTemplate(f.ctx, f.tenant, "no-such-template")
			return err
		})
	})

	t.Run("a campaign is read back whole by its tenant and is unknown to others", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		start := time.Date(2026, 11, 25, 1, 0, 0, 123456000, time.UTC)
		end := start.Add(72 * time.Hour)
		no := false
		c := &campaign.Campaign{TenantID: f.tenant, Name: "Bluezone Q3", Kind: campaign.KindInstallPromotion,
			Channels:        []campaign.Channel{campaign.ChannelSMS, campaign.ChannelPush},
			Templates:       map[campaign.Channel]string{campaign.ChannelSMS: "t1", campaign.ChannelPush: "t2"},
			LocaleTemplates: map[string]map[campaign.Channel]string{"en": {campaign.ChannelSMS: "t3", campaign.ChannelPush: "t4"}},
			Audience: campaign.Audience{Regions: []string{"HG", "DB"}, Installed: &no, List: "vip",
				Attributes: map[string]string{"plan": "prepaid"}},
			PushFallbackSMS: true, RatePerSecond: 500, StartAt: &start, EndBy: &end,
			Reward:    &campaign.Reward{DataMB: 5120, BudgetMB: 51200000, AttributionDays: 14},
			CreatedBy: "key-1"}
		if err := f.st.CreateCampaign(f.ctx, c); err != nil {
			t.Fatal(err)
		}
		if c.ID == "" || c.State != campaign.StateDraft || c.CreatedAt.IsZero() || c.UpdatedAt.IsZero() {
			t.Fatalf("create left id %q, state %q, times %v %v", c.ID, c.State, c.CreatedAt, c.UpdatedAt)
		}
		got, err := f.st.GetCampaign(f.ctx, f.tenant, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameCampaign(t, got, *c)
		byID, err := f.st.CampaignByID(f.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameCampaign(t, byID, *c)

		wantNotFound(t, "another tenant's campaign", func() error {
			_, err := f.st.GetCampaign(f.ctx, f.other, c.ID)
			return err
		})
		wantNotFound(t, "an unknown campaign", func() error {
			_, err := f.st.GetCampaign(f.ctx, f.tenant, "1b4e28ba-2fa1-11d2-883f-0016d3cca427")
			return err
		})
		wantNotFound(t, "a campaign id that is no uuid", func() error {
			_, err := f.st.GetCampaign(f.ctx, f.tenant, "nope")
			return err
		})
		wantNotFound(t, "an unknown campaign by id", func() error {
			_, err := f.st.CampaignByID(f.ctx, "1b4e28ba-2fa1-11d2-883f-0016d3cca427")
			return err
		})

		bare := &campaign.Campaign{TenantID: f.tenant, Name: "bare", Kind: campaign.KindExposureAlert,
			Channels: []campaign.Channel{campaign.ChannelSMS}}
		if err := f.st.CreateCampaign(f.ctx, bare); err != nil {
			t.Fatal(err)
		}
		got, err = f.st.GetCampaign(f.ctx, f.tenant, bare.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Reward != nil || got.StartAt != nil || got.EndBy != nil || got.StartedAt != nil || got.FinishedAt != nil {
			t.Errorf("bare campaign read back with optional fields set: %+v", got)
		}
	})

	t.Run("campaigns are listed newest first, by kind, within the tenant", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		var ids []string
		for i := range 5 {
			kind := campaign.KindInstallPromotion
			if i%2 == 1 {
				kind = campaign.KindExposureAlert
			}
			c := &campaign.Campaign{TenantID: f.tenant, Name: fmt.Sprint("c", i), Kind: kind,
				Channels: []campaign.Channel{campaign.ChannelSMS}, CreatedAt: base.Add(time.Duration(i) * time.Minute)}
			if err := f.st.CreateCampaign(f.ctx, c); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, c.ID)
		}
		foreign := &campaign.Campaign{TenantID: f.other, Name: "theirs", Kind: campaign.KindInstallPromotion,
			Channels: []campaign.Channel{campaign.ChannelSMS}}
		if err := f.st.CreateCampaign(f.ctx, foreign); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			kind  campaign.Kind
			after string
			limit int
			want  []string
		}{
			{"", "", 10, []string{ids[4], ids[3], ids[2], ids[1], ids[0]}},
			{"", "", 2, []string{ids[4], ids[3]}},
			{"", ids[3], 2, []string{ids[2], ids[1]}},
			{"", ids[1], 2, []string{ids[0]}},
			{"", ids[0], 2, nil},
			{campaign.KindInstallPromotion, "", 10, []string{ids[4], ids[2], ids[0]}},
			{campaign.KindInstallPromotion, ids[4], 1, []string{ids[2]}},
			{campaign.KindExposureAlert, "", 10, []string{ids[3], ids[1]}},
			{"", foreign.ID, 10, nil}, // another tenant's campaign starts no page
		} {
			list, err := f.st.ListCampaigns(f.ctx, f.tenant, tc.kind, tc.after, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range list {
				got = append(got, c.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("kind %q after %q limit %d: got %v, want %v", tc.kind, tc.after, tc.limit, got, tc.want)
			}
		}
	})

	t.Run("every legal transition succeeds and every illegal one conflicts", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		states := []campaign.State{campaign.StateDraft, campaign.StateScheduled, campaign.StateRunning,
			campaign.StatePaused, campaign.StateCompleted, campaign.StateCancelled}
		actions := []campaign.Action{campaign.ActionStart, campaign.ActionSchedule, campaign.ActionPause,
			campaign.ActionResume, campaign.ActionCancel, campaign.ActionComplete}
		for _, a := range actions {
			from, to, err := campaign.Transition(a)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range states {
				c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, s)
				at := time.Now().UTC().Add(time.Minute).Truncate(time.Microsecond)
				got, err := f.st.TransitionCampaign(f.ctx, f.tenant, c.ID, from, to, at)
				if !slices.Contains(from, s) {
					if !errors.Is(err, apperr.ErrConflict) {
						t.Errorf("%s from %s: err = %v, want a conflict", a, s, err)
					} else if !strings.Contains(err.Error(), string(s)) {
						t.Errorf("%s from %s: conflict %q does not name the current state", a, s, err)
					}
					if now, _ := f.st.GetCampaign(f.ctx, f.tenant, c.ID); now.State != s {
						t.Errorf("%s from %s: a refused transition left state %s", a, s, now.State)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s from %s: %v", a, s, err)
					continue
				}
				if got.State != to || !got.UpdatedAt.Equal(at) {
					t.Errorf("%s from %s: state %s updated %v, want %s at %v", a, s, got.State, got.UpdatedAt, to, at)
				}
				if to == campaign.StateRunning && (got.StartedAt == nil || !got.StartedAt.Equal(at)) {
					t.Errorf("%s from %s: started_at = %v, want %v", a, s, got.StartedAt, at)
				}
				if to.Final() && (got.FinishedAt == nil || !got.FinishedAt.Equal(at)) {
					t.Errorf("%s from %s: finished_at = %v, want %v", a, s, got.FinishedAt, at)
				}
				if !to.Final() && got.FinishedAt != nil {
					t.Errorf("%s from %s: finished_at set to %v", a, s, got.FinishedAt)
				}
				if read, _ := f.st.GetCampaign(f.ctx, f.tenant, c.ID); read.State != to {
					t.Errorf("%s from %s: stored state %s, want %s", a, s, read.State, to)
				}
			}
		}
	})

	t.Run("resuming keeps the first start time and other tenants cannot transition", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateDraft)
		t0 := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
		steps := []struct {
			a  campaign.Action
			at time.Time
		}{{campaign.ActionStart, t0}, {campaign.ActionPause, t0.Add(time.Hour)}, {campaign.ActionResume, t0.Add(2 * time.Hour)}}
		var got campaign.Campaign
		for _, s := range steps {
			from, to, _ := campaign.Transition(s.a)
			var err error
			if got, err = f.st.TransitionCampaign(f.ctx, f.tenant, c.ID, from, to, s.at); err != nil {
				t.Fatalf("%s: %v", s.a, err)
			}
		}
		if got.StartedAt == nil || !got.StartedAt.Equal(t0) {
			t.Errorf("started_at after resume = %v, want %v", got.StartedAt, t0)
		}
		from, to, _ := campaign.Transition(campaign.ActionPause)
		wantNotFound(t, "another tenant's transition", func() error {
			_, err := f.st.TransitionCampaign(f.ctx, f.other, c.ID, from, to, time.Now())
			return err
		})
		wantNotFound(t, "an unknown campaign's transition", func() error {
			_, err := f.st.TransitionCampaign(f.ctx, f.tenant, "1b4e28ba-2fa1-11d2-883f-0016d3cca427", from, to, time.Now())
			return err
		})
		if read, _ := f.st.GetCampaign(f.ctx, f.tenant, c.ID); read.State != campaign.StateRunning {
			t.Errorf("state after another tenant's pause = %s", read.State)
		}
	})

	t.Run("scheduled campaigns are due once their start has passed and active ones are running or paused", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		now := time.Now().UTC()
		past, future := now.Add(-time.Minute), now.Add(time.Hour)
		mk := func(state campaign.State, start *time.Time, tenant string) string {
			c := &campaign.Campaign{TenantID: tenant, Name: string(state), Kind: campaign.KindInstallPromotion,
				Channels: []campaign.Channel{campaign.ChannelSMS}, State: state, StartAt: start}
			if err := f.st.CreateCampaign(f.ctx, c); err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		due := mk(campaign.StateScheduled, &past, f.tenant)
		dueOther := mk(campaign.StateScheduled, &past, f.other)
		mk(campaign.StateScheduled, &future, f.tenant)
		mk(campaign.StateDraft, &past, f.tenant)
		running := mk(campaign.StateRunning, &past, f.tenant)
		paused := mk(campaign.StatePaused, nil, f.other)
		mk(campaign.StateCompleted, &past, f.tenant)
		mk(campaign.StateCancelled, &past, f.tenant)

		list, err := f.st.DueScheduled(f.ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := campaignIDs(list), sorted(due, dueOther); !slices.Equal(got, want) {
			t.Errorf("due = %v, want %v", got, want)
		}
		list, err = f.st.ActiveCampaigns(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := campaignIDs(list), sorted(running, paused); !slices.Equal(got, want) {
			t.Errorf("active = %v, want %v", got, want)
		}
	})

	t.Run("cancelled campaigns with unsent deliveries are listed to be settled", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		now := time.Now().UTC().Truncate(time.Microsecond)
		cancel := func(c campaign.Campaign, at time.Time) {
			t.Helper()
			if _, err := f.st.TransitionCampaign(f.ctx, c.TenantID, c.ID, []campaign.State{campaign.StateRunning},
				campaign.StateCancelled, at); err != nil {
				t.Fatal(err)
			}
		}
		pending := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, pending, campaign.ChannelSMS, 1, 2)
		cancel(pending, now.Add(-time.Hour))
		sending := f.campaign(t, f.other, campaign.KindExposureAlert, campaign.StateRunning)
		f.insert(t, sending, campaign.ChannelPush, 3)
		f.claim(t, sending, campaign.ChannelPush, 3)
		cancel(sending, now.Add(-30*time.Minute))
		settled := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, settled, campaign.ChannelSMS, 4)
		if err := f.st.RecordOutcomes(f.ctx, []campaign.Outcome{{CampaignID: settled.ID, SubscriberID: f.ids[msisdn(4)],
			Channel: campaign.ChannelSMS, Status: campaign.StatusSkipped, SkipReason: campaign.SkipCampaignCancelled}}); err != nil {
			t.Fatal(err)
		}
		cancel(settled, now.Add(-30*time.Minute))
		old := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, old, campaign.ChannelSMS, 5)
		cancel(old, now.Add(-48*time.Hour))
		recent := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, recent, campaign.ChannelSMS, 7)
		cancel(recent, now.Add(-time.Minute)) // its own settle may still be under way
		running := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, running, campaign.ChannelSMS, 6)

		list, err := f.st.UnsettledCampaigns(f.ctx, now.Add(-24*time.Hour), now.Add(-10*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := campaignIDs(list), sorted(pending.ID, sending.ID); !slices.Equal(got, want) {
			t.Errorf("unsettled = %v, want %v (pending %s, sending %s)", got, want, pending.ID, sending.ID)
		}
	})

	t.Run("audience filters page through exactly the matching subscribers in id order", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		yes, no := true, false
		marker, canInstall := f.st.(InstallMarker)
		if canInstall {
			if err := marker.MarkInstalled(f.ctx, []int64{f.ids["+84900000002"], f.ids["+84900000005"], f.ids["+84900000009"]}); err != nil {
				t.Fatal(err)
			}
		}
		// The seed: 1-4 HG, 5-8 DB, 9-12 HN; odd numbers prepaid; vip holds
		// 2, 3, 6, 9, 10; installed (when the marker exists): 2, 5, 9.
		for _, tc := range []struct {
			name      string
			a         campaign.Audience
			installed bool
			want      []int
		}{
			{"no filter takes the whole tenant", campaign.Audience{}, false, seq(1, 12)},
			{"one region", campaign.Audience{Regions: []string{"HG"}}, false, []int{1, 2, 3, 4}},
			{"two regions", campaign.Audience{Regions: []string{"HN", "HG"}}, false, []int{1, 2, 3, 4, 9, 10, 11, 12}},
			{"an unknown region takes no one", campaign.Audience{Regions: []string{"XX"}}, false, nil},
			{"not installed", campaign.Audience{Installed: &no}, true, []int{1, 3, 4, 6, 7, 8, 10, 11, 12}},
			{"installed", campaign.Audience{Installed: &yes}, true, []int{2, 5, 9}},
			{"a list", campaign.Audience{List: "vip"}, false, []int{2, 3, 6, 9, 10}},
			{"an unknown list takes no one", campaign.Audience{List: "nope"}, false, nil},
			{"another tenant's list takes no one", campaign.Audience{List: "theirs"}, false, nil},
			{"an attribute", campaign.Audience{Attributes: map[string]string{"plan": "prepaid"}}, false, []int{1, 3, 5, 7, 9, 11}},
			{"two attributes", campaign.Audience{Attributes: map[string]string{"plan": "prepaid", "tier": "gold"}}, false, []int{3, 9}},
			{"regions and not installed", campaign.Audience{Regions: []string{"HG", "DB"}, Installed: &no}, true, []int{1, 3, 4, 6, 7, 8}},
			{"a list and a region", campaign.Audience{List: "vip", Regions: []string{"HN"}}, false, []int{9, 10}},
			{"a list, an attribute and not installed", campaign.Audience{List: "vip", Installed: &no,
				Attributes: map[string]string{"plan": "prepaid"}}, true, []int{3}},
			{"an attribute and a region", campaign.Audience{Regions: []string{"DB"}, Attributes: map[string]string{"plan": "postpaid"}}, false, []int{6, 8}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.installed && !canInstall {
					t.Skip("the store under test cannot mark subscribers installed")
				}
				c := campaign.Campaign{ID: "1b4e28ba-2fa1-11d2-883f-0016d3cca427", TenantID: f.tenant,
					Kind: campaign.KindInstallPromotion, Audience: tc.a}
				var want []int64
				for _, n := range tc.want {
					want = append(want, f.ids[msisdn(n)])
				}
				slices.Sort(want)
				if got := f.pageAll(t, c, 2); !slices.Equal(got, want) {
					t.Errorf("audience = %v, want %v", got, want)
				}
			})
		}
	})

	t.Run("a number known only through an alert is never marketed to and goes with the alert's purge", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		purger, ok := f.st.(interface {
			PurgeAlertContacts(ctx context.Context, before time.Time) (int, error)
		})
		if !ok {
			t.Fatal("the store does not purge alert contacts")
		}
		// bare: nothing but the alert; device, optedOut, imported: more
		// since; shared: also a contact of an alert still running.
		bare, device, optedOut, imported, shared := msisdn(201), msisdn(202), msisdn(203), msisdn(204), msisdn(205)
		// stopped: its number sent STOP before the alert named it, so it
		// joins opted out; that opt-out is kept by number, not by it.
		stopped := msisdn(206)
		if _, err := f.st.OptOutEverywhere(f.ctx, stopped, true); err != nil {
			t.Fatal(err)
		}
		contacts := []string{bare, device, optedOut, imported, shared, stopped, msisdn(1)}
		ids, err := f.st.EnsureSubscribers(f.ctx, f.tenant, contacts)
		if err != nil {
			t.Fatal(err)
		}
		if ids[msisdn(1)] != f.ids[msisdn(1)] {
			t.Fatalf("an existing subscriber got id %d, had %d", ids[msisdn(1)], f.ids[msisdn(1)])
		}
		if err := f.st.PutDevice(f.ctx, f.tenant, device, subscriber.Device{Platform: subscriber.PlatformFCM, Token: "tok-202"}); err != nil {
			t.Fatal(err)
		}
		if err := f.st.SetOptOut(f.ctx, f.tenant, optedOut, true); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.UpsertSubscribers(f.ctx, f.tenant, []subscriber.Row{{MSISDN: imported}}, ""); err != nil {
			t.Fatal(err)
		}
		promo := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		audience := f.pageAll(t, promo, 5)
		for _, m := range []string{bare, device, optedOut, shared} {
			if slices.Contains(audience, ids[m]) {
				t.Errorf("%s, known only through an alert, is in a marketing audience", m)
			}
		}
		for _, m := range []string{imported, msisdn(1)} {
			if !slices.Contains(audience, ids[m]) {
				t.Errorf("%s, a subscriber of the carrier's base, is not in the marketing audience", m)
			}
		}

		alert := f.campaign(t, f.tenant, campaign.KindExposureAlert, campaign.StateDraft)
		running := f.campaign(t, f.tenant, campaign.KindExposureAlert, campaign.StateRunning)
		all := make([]int64, 0, len(ids))
		for _, id := range ids {
			all = append(all, id)
		}
		if err := f.st.AddContacts(f.ctx, alert.ID, all); err != nil {
			t.Fatal(err)
		}
		if err := f.st.AddContacts(f.ctx, running.ID, []int64{ids[shared]}); err != nil {
			t.Fatal(err)
		}
		for _, a := range []campaign.Action{campaign.ActionStart, campaign.ActionComplete} {
			from, to, _ := campaign.Transition(a)
			if _, err := f.st.TransitionCampaign(f.ctx, f.tenant, alert.ID, from, to, time.Now().Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		// Their Idempotency-Keys: the hash of a request names its contacts.
		for _, a := range []campaign.Campaign{alert, running} {
			if held, err := f.st.ClaimRequestKey(f.ctx, f.tenant, "key-"+a.ID, "hash", a.ID, time.Now(), time.Now().Add(-time.Hour)); err != nil || held.CampaignID != "" {
				t.Fatalf("claim: %+v, %v", held, err)
			}
		}
		n, err := purger.PurgeAlertContacts(f.ctx, time.Now())
		if err != nil || n != 1 {
			t.Fatalf("purge = %d, %v; want the one finished alert", n, err)
		}
		for a, want := range map[string]string{alert.ID: "", running.ID: running.ID} {
			held, err := f.st.ClaimRequestKey(f.ctx, f.tenant, "key-"+a, "hash", "another", time.Now(), time.Now().Add(-time.Hour))
			if err != nil || held.CampaignID != want {
				t.Errorf("the key of alert %s after the purge: held by %q (%v), want %q (the purged alert's gone with it)", a, held.CampaignID, err, want)
			}
		}
		for _, m := range []string{bare, stopped} {
			wantNotFound(t, "the contact known only through the purged alert", func() error {
				_, err := f.st.GetSubscriber(f.ctx, f.tenant, m)
				return err
			})
		}
		// The number's STOP outlives its contact: imported later, it
		// starts opted out.
		if _, err := f.st.UpsertSubscribers(f.ctx, f.tenant, []subscriber.Row{{MSISDN: stopped}}, ""); err != nil {
			t.Fatal(err)
		}
		if got, err := f.st.GetSubscriber(f.ctx, f.tenant, stopped); err != nil || !got.OptedOut {
			t.Errorf("a number that sent STOP, imported after its alert contact was purged: %+v, %v; want opted out", got, err)
		}
		for _, m := range []string{device, optedOut, imported, shared, msisdn(1)} {
			if _, err := f.st.GetSubscriber(f.ctx, f.tenant, m); err != nil {
				t.Errorf("%s is more than a contact of the purged alert, but: %v", m, err)
			}
		}
		if got, err := f.st.GetSubscriber(f.ctx, f.tenant, optedOut); err != nil || !got.OptedOut {
			t.Errorf("the opt-out of a purged alert's contact was lost: %+v, %v", got, err)
		}
	})

	t.Run("an idempotency key is held by its first claim for a day, per tenant, until released", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
		day := func(t time.Time) time.Time { return t.Add(-24 * time.Hour) }
		claim := func(tenant, key, hash, id string, at time.Time) (string, string) {
			t.Helper()
			held, err := f.st.ClaimRequestKey(f.ctx, tenant, key, hash, id, at, day(at))
			if err != nil {
				t.Fatal(err)
			}
			if held.CampaignID != "" && held.At.IsZero() {
				t.Errorf("a held claim of %q with no time", key)
			}
			return held.CampaignID, held.Hash
		}
		if by, _ := claim(f.tenant, "k1", "h1", "alert-1", at); by != "" {
			t.Fatalf("a new key is held by %q", by)
		}
		if by, h := claim(f.tenant, "k1", "h2", "alert-2", at.Add(time.Minute)); by != "alert-1" || h != "h1" {
			t.Errorf("the key again: held by %q (%q), want alert-1 (h1)", by, h)
		}
		if by, _ := claim(f.other, "k1", "h1", "alert-3", at); by != "" {
			t.Errorf("another tenant's same key is held by %q", by)
		}
		if err := f.st.ReleaseRequestKey(f.ctx, f.tenant, "k1", "alert-2"); err != nil { // not its claim
			t.Fatal(err)
		}
		if by, _ := claim(f.tenant, "k1", "h1", "alert-4", at.Add(2*time.Minute)); by != "alert-1" {
			t.Errorf("released by another's id: held by %q, want alert-1", by)
		}
		if err := f.st.ReleaseRequestKey(f.ctx, f.tenant, "k1", "alert-1"); err != nil {
			t.Fatal(err)
		}
		if by, _ := claim(f.tenant, "k1", "h5", "alert-5", at.Add(3*time.Minute)); by != "" {
			t.Errorf("a released key is held by %q", by)
		}
		if by, _ := claim(f.tenant, "k1", "h6", "alert-6", at.Add(25*time.Hour)); by != "" {
			t.Errorf("a day-old claim still holds the key, for %q", by)
		}
		if by, h := claim(f.tenant, "k1", "h7", "alert-7", at.Add(26*time.Hour)); by != "alert-6" || h != "h6" {
			t.Errorf("the renewed key: held by %q (%q), want alert-6 (h6)", by, h)
		}
		held, err := f.st.ClaimRequestKey(f.ctx, f.tenant, "k1", "h8", "alert-8", at.Add(27*time.Hour), at)
		if err != nil || !held.At.Equal(at.Add(25*time.Hour)) {
			t.Errorf("the claim's time %v (%v), want %v", held.At, err, at.Add(25*time.Hour))
		}
		// Done once its campaign is whole, by that campaign alone; a claim
		// renewed after a day starts undone.
		done := func(when time.Time) bool {
			t.Helper()
			held, err := f.st.ClaimRequestKey(f.ctx, f.tenant, "k1", "h9", "alert-9", when, day(when))
			if err != nil || held.CampaignID == "" {
				t.Fatalf("the key is not held (%v)", err)
			}
			return held.Done
		}
		if done(at.Add(27 * time.Hour)) {
			t.Error("a claim is done before its campaign is whole")
		}
		if err := f.st.FinishRequestKey(f.ctx, f.tenant, "k1", "alert-7"); err != nil { // not its claim
			t.Fatal(err)
		}
		if done(at.Add(27 * time.Hour)) {
			t.Error("a claim was marked done by another campaign's id")
		}
		if err := f.st.FinishRequestKey(f.ctx, f.tenant, "k1", "alert-6"); err != nil {
			t.Fatal(err)
		}
		if !done(at.Add(27 * time.Hour)) {
			t.Error("a finished claim is not done")
		}
		if by, _ := claim(f.tenant, "k1", "h10", "alert-10", at.Add(50*time.Hour)); by != "" {
			t.Fatalf("a day-old claim still holds the key, for %q", by)
		}
		if done(at.Add(51 * time.Hour)) {
			t.Error("a claim renewed after a day is done from the start")
		}
	})

	t.Run("an alert's audience is its contact list, paged in id order", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindExposureAlert, campaign.StateDraft)
		ids := []int64{f.ids[msisdn(7)], f.ids[msisdn(2)], f.ids[msisdn(11)], f.ids[msisdn(4)], f.ids[msisdn(9)]}
		if err := f.st.AddContacts(f.ctx, c.ID, ids[:3]); err != nil {
			t.Fatal(err)
		}
		if err := f.st.AddContacts(f.ctx, c.ID, ids[1:]); err != nil {
			t.Fatalf("adding contacts again: %v", err)
		}
		other := f.campaign(t, f.tenant, campaign.KindExposureAlert, campaign.StateDraft)
		if err := f.st.AddContacts(f.ctx, other.ID, []int64{f.ids[msisdn(1)]}); err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(ids)
		slices.Sort(want)
		if got := f.pageAll(t, c, 2); !slices.Equal(got, want) {
			t.Errorf("contacts = %v, want %v", got, want)
		}
		wantNotFound(t, "contacts of an unknown campaign", func() error {
			return f.st.AddContacts(f.ctx, "1b4e28ba-2fa1-11d2-883f-0016d3cca427", ids)
		})
		// A filter on an alert is ignored: the contacts are the audience.
		c.Audience = campaign.Audience{Regions: []string{"HG"}}
		if got := f.pageAll(t, c, 3); !slices.Equal(got, want) {
			t.Errorf("contacts with a filter = %v, want %v", got, want)
		}
	})

	t.Run("fan-out progress only moves forward", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		for _, step := range []struct {
			cursor     int64
			done       bool
			wantCursor int64
			wantDone   bool
		}{{100, false, 100, false}, {50, false, 100, false}, {200, true, 200, true}, {300, false, 300, true}} {
			if err := f.st.SetFanoutProgress(f.ctx, c.ID, step.cursor, step.done); err != nil {
				t.Fatal(err)
			}
			got, err := f.st.CampaignByID(f.ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.FanoutCursor != step.wantCursor || got.FanoutDone != step.wantDone {
				t.Errorf("after (%d, %v): cursor %d done %v, want %d %v", step.cursor, step.done,
					got.FanoutCursor, got.FanoutDone, step.wantCursor, step.wantDone)
			}
		}
		wantNotFound(t, "progress of an unknown campaign", func() error {
			return f.st.SetFanoutProgress(f.ctx, "1b4e28ba-2fa1-11d2-883f-0016d3cca427", 1, false)
		})
	})

	t.Run("the catch-up pass pages the audience's subscribers short of a delivery on a channel", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		c.Channels = []campaign.Channel{campaign.ChannelSMS, campaign.ChannelPush}
		c.Audience = campaign.Audience{Regions: []string{"HG", "DB"}} // 1-8
		f.insert(t, c, campaign.ChannelSMS, 1, 3, 6, 9)
		f.insert(t, c, campaign.ChannelPush, 1, 3, 8) // 6 lacks its push, 8 its SMS
		other := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, other, campaign.ChannelSMS, 2, 4)
		f.insert(t, other, campaign.ChannelPush, 2, 4)
		var want []int64
		for _, n := range []int{2, 4, 5, 6, 7, 8} {
			want = append(want, f.ids[msisdn(n)])
		}
		slices.Sort(want)
		if got := f.pageAllOf(t, f.st.AudienceUnreached, c, 2); !slices.Equal(got, want) {
			t.Errorf("unreached = %v, want %v", got, want)
		}
	})

	t.Run("inserting deliveries twice adds nothing the second time", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		first := f.newDeliveries(1, 2, 3, 4, 5)
		n, err := f.st.InsertDeliveries(f.ctx, c, campaign.ChannelSMS, first)
		if err != nil || n != 5 {
			t.Fatalf("first insert = %d, %v; want 5", n, err)
		}
		n, err = f.st.InsertDeliveries(f.ctx, c, campaign.ChannelSMS, first)
		if err != nil || n != 0 {
			t.Fatalf("second insert = %d, %v; want 0", n, err)
		}
		n, err = f.st.InsertDeliveries(f.ctx, c, campaign.ChannelSMS, f.newDeliveries(4, 5, 6, 7))
		if err != nil || n != 2 {
			t.Fatalf("overlapping insert = %d, %v; want 2", n, err)
		}
		n, err = f.st.InsertDeliveries(f.ctx, c, campaign.ChannelPush, f.newDeliveries(1, 2))
		if err != nil || n != 2 {
			t.Fatalf("insert on another channel = %d, %v; want 2", n, err)
		}
		if n, err := f.st.InsertDeliveries(f.ctx, c, campaign.ChannelPush, nil); err != nil || n != 0 {
			t.Fatalf("empty insert = %d, %v", n, err)
		}
		ds := f.deliveries(t, c)
		if len(ds) != 9 {
			t.Fatalf("%d deliveries stored, want 9", len(ds))
		}
		for _, d := range ds {
			if d.Status != campaign.StatusPending || d.Attempts != 0 || d.CampaignID != c.ID ||
				d.CreatedAt.IsZero() || d.SentAt != nil {
				t.Errorf("new delivery %+v", d)
			}
			if want := fmt.Sprintf("r%d", d.SubscriberID); d.ReferralCode != want {
				t.Errorf("referral code %q, want %q", d.ReferralCode, want)
			}
		}
		if n, err := f.st.CountUnfinished(f.ctx, c.ID); err != nil || n != 9 {
			t.Errorf("unfinished = %d, %v; want 9", n, err)
		}
	})

	t.Run("claiming takes only pending deliveries, once", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, c, campaign.ChannelPush, 1, 2, 3)
		f.insert(t, c, campaign.ChannelSMS, 1, 2, 3)
		d1 := subscriber.Device{Platform: subscriber.PlatformFCM, Token: "tok-1a"}
		d2 := subscriber.Device{Platform: subscriber.PlatformAPNs, Token: "tok-1b"}
		for _, d := range []subscriber.Device{d1, d2} {
			if err := f.st.PutDevice(f.ctx, f.tenant, msisdn(1), d); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.st.SetOptOut(f.ctx, f.tenant, msisdn(2), true); err != nil {
			t.Fatal(err)
		}
		ids := []int64{f.ids[msisdn(2)], f.ids[msisdn(1)], 999999999}
		rs, err := f.st.ClaimDeliveries(f.ctx, c.ID, campaign.ChannelPush, ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 2 {
			t.Fatalf("claimed %d, want 2: %+v", len(rs), rs)
		}
		byID := map[int64]campaign.Recipient{}
		for _, r := range rs {
			byID[r.SubscriberID] = r
			if r.Status != campaign.StatusSending || r.Attempts != 1 || r.Channel != campaign.ChannelPush ||
				r.CampaignID != c.ID || r.ID == 0 {
				t.Errorf("claimed delivery %+v", r.Delivery)
			}
		}
		r1, r2 := byID[f.ids[msisdn(1)]], byID[f.ids[msisdn(2)]]
		if r1.MSISDN != msisdn(1) || r1.Region != "HG" || r1.Locale != "vi" || r1.OptedOut ||
			r1.Attributes["plan"] != "prepaid" || r1.ReferralCode == "" {
			t.Errorf("recipient 1 = %+v", r1)
		}
		if len(r1.Devices) != 2 {
			t.Errorf("recipient 1 devices = %+v, want 2", r1.Devices)
		} else {
			tokens := []string{r1.Devices[0].Token, r1.Devices[1].Token}
			slices.Sort(tokens)
			if !slices.Equal(tokens, []string{"tok-1a", "tok-1b"}) {
				t.Errorf("recipient 1 devices = %+v", r1.Devices)
			}
		}
		if r2.MSISDN != msisdn(2) || !r2.OptedOut || r2.Locale != "en" || len(r2.Devices) != 0 {
			t.Errorf("recipient 2 = %+v", r2)
		}
		again, err := f.st.ClaimDeliveries(f.ctx, c.ID, campaign.ChannelPush, ids)
		if err != nil || len(again) != 0 {
			t.Errorf("second claim = %+v, %v; want nothing", again, err)
		}
		sms, err := f.st.ClaimDeliveries(f.ctx, c.ID, campaign.ChannelSMS, ids[:1])
		if err != nil || len(sms) != 1 {
			t.Errorf("claim on the other channel = %d, %v; want 1", len(sms), err)
		}
		if rs, err := f.st.ClaimDeliveries(f.ctx, c.ID, campaign.ChannelSMS, nil); err != nil || len(rs) != 0 {
			t.Errorf("empty claim = %+v, %v", rs, err)
		}
		if n, err := f.st.CountUnfinished(f.ctx, c.ID); err != nil || n != 6 {
			t.Errorf("unfinished = %d, %v; want 6 (claimed ones are still unfinished)", n, err)
		}
	})

	t.Run("a claimed promotion delivery gets its referral code once; an alert's gets none", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		bare := []campaign.NewDelivery{{SubscriberID: f.ids[msisdn(1)]}, {SubscriberID: f.ids[msisdn(2)]},
			{SubscriberID: f.ids[msisdn(3)], ReferralCode: "given3"}}
		if _, err := f.st.InsertDeliveries(f.ctx, c, campaign.ChannelSMS, bare); err != nil {
			t.Fatal(err)
		}
		for id, d := range f.bySubscriber(t, c) {
			if want := map[int64]string{f.ids[msisdn(3)]: "given3"}[id]; d.ReferralCode != want {
				t.Errorf("subscriber %d before the claim: referral code %q, want %q", id, d.ReferralCode, want)
			}
		}
		first := map[int64]string{}
		for _, r := range f.claim(t, c, campaign.ChannelSMS, 1, 2, 3) {
			first[r.SubscriberID] = r.ReferralCode
		}
		c1, c2 := first[f.ids[msisdn(1)]], first[f.ids[msisdn(2)]]
		for _, code := range []string{c1, c2} {
			if len(code) != campaign.ReferralCodeLength || strings.Trim(code, "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ") != "" {
				t.Errorf("claimed referral code %q: want %d letters and digits without look-alikes", code, campaign.ReferralCodeLength)
			}
		}
		if c1 == c2 {
			t.Errorf("two deliveries got the same referral code %q", c1)
		}
		if got := first[f.ids[msisdn(3)]]; got != "given3" {
			t.Errorf("a delivery written with its code was claimed with %q, want given3", got)
		}
		stored := f.bySubscriber(t, c)
		if stored[f.ids[msisdn(1)]].ReferralCode != c1 || stored[f.ids[msisdn(2)]].ReferralCode != c2 {
			t.Errorf("stored codes %q, %q; the claim returned %q, %q", stored[f.ids[msisdn(1)]].ReferralCode,
				stored[f.ids[msisdn(2)]].ReferralCode, c1, c2)
		}
		// A retry keeps the code of the first attempt: a message that may
		// have gone out carries the same link as its repeat.
		if err := f.st.RecordOutcomes(f.ctx, []campaign.Outcome{{CampaignID: c.ID, SubscriberID: f.ids[msisdn(1)],
			Channel: campaign.ChannelSMS, Status: campaign.StatusPending, ErrorCode: "timeout", At: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		again := f.claim(t, c, campaign.ChannelSMS, 1)
		if len(again) != 1 || again[0].ReferralCode != c1 {
			t.Errorf("re-claimed after a retry: %+v, want the code %q again", again, c1)
		}

		alert := f.campaign(t, f.tenant, campaign.KindExposureAlert, campaign.StateRunning)
		if _, err := f.st.InsertDeliveries(f.ctx, alert, campaign.ChannelSMS, bare[:1]); err != nil {
			t.Fatal(err)
		}
		if rs := f.claim(t, alert, campaign.ChannelSMS, 1); len(rs) != 1 || rs[0].ReferralCode != "" {
			t.Errorf("claimed alert delivery %+v, want one without a referral code", rs)
		}
	})

	t.Run("outcomes record sends, failures, skips and retries and never overwrite a final status", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, c, campaign.ChannelSMS, 1, 2, 3, 4, 5)
		f.claim(t, c, campaign.ChannelSMS, 1, 2, 3, 4)
		at := time.Date(2026, 11, 25, 3, 4, 5, 678901000, time.UTC)
		outs := []campaign.Outcome{
			{SubscriberID: f.ids[msisdn(1)], Status: campaign.StatusSent, Provider: "twilio", ProviderMessageID: "SM1", Segments: 2},
			{SubscriberID: f.ids[msisdn(2)], Status: campaign.StatusFailed, Provider: "twilio", ErrorCode: "21211"},
			{SubscriberID: f.ids[msisdn(3)], Status: campaign.StatusSkipped, SkipReason: campaign.SkipOptedOut},
			{SubscriberID: f.ids[msisdn(4)], Status: campaign.StatusPending, ErrorCode: "timeout"},
			// never claimed: a skip may still land on a pending delivery
			{SubscriberID: f.ids[msisdn(5)], Status: campaign.StatusSkipped, SkipReason: campaign.SkipFrequencyCap},
		}
		for i := range outs {
			outs[i].CampaignID, outs[i].Channel, outs[i].At = c.ID, campaign.ChannelSMS, at
		}
		if err := f.st.RecordOutcomes(f.ctx, outs); err != nil {
			t.Fatal(err)
		}
		ds := f.bySubscriber(t, c)
		d1 := ds[f.ids[msisdn(1)]]
		if d1.Status != campaign.StatusSent || d1.Provider != "twilio" || d1.ProviderMessageID != "SM1" ||
			d1.Segments != 2 || d1.SentAt == nil || !d1.SentAt.Equal(at) || !d1.UpdatedAt.Equal(at) {
			t.Errorf("sent = %+v", d1)
		}
		if d := ds[f.ids[msisdn(2)]]; d.Status != campaign.StatusFailed || d.ErrorCode != "21211" || d.SentAt != nil {
			t.Errorf("failed = %+v", d)
		}
		if d := ds[f.ids[msisdn(3)]]; d.Status != campaign.StatusSkipped || d.SkipReason != campaign.SkipOptedOut {
			t.Errorf("skipped = %+v", d)
		}
		if d := ds[f.ids[msisdn(5)]]; d.Status != campaign.StatusSkipped || d.SkipReason != campaign.SkipFrequencyCap {
			t.Errorf("skipped while pending = %+v", d)
		}
		if d := ds[f.ids[msisdn(4)]]; d.Status != campaign.StatusPending || d.Attempts != 1 || d.ErrorCode != "timeout" {
			t.Errorf("retry = %+v", d)
		}
		rs := f.claim(t, c, campaign.ChannelSMS, 1, 2, 3, 4)
		if len(rs) != 1 || rs[0].SubscriberID != f.ids[msisdn(4)] || rs[0].Attempts != 2 {
			t.Errorf("claim after outcomes = %+v, want only the retry, attempt 2", rs)
		}
		late := []campaign.Outcome{
			{CampaignID: c.ID, SubscriberID: f.ids[msisdn(1)], Channel: campaign.ChannelSMS, Status: campaign.StatusFailed, ErrorCode: "late"},
			{CampaignID: c.ID, SubscriberID: f.ids[msisdn(3)], Channel: campaign.ChannelSMS, Status: campaign.StatusPending},
		}
		if err := f.st.RecordOutcomes(f.ctx, late); err != nil {
			t.Fatal(err)
		}
		ds = f.bySubscriber(t, c)
		if d := ds[f.ids[msisdn(1)]]; d.Status != campaign.StatusSent || d.ErrorCode != "" {
			t.Errorf("a late outcome overwrote a sent delivery: %+v", d)
		}
		if d := ds[f.ids[msisdn(3)]]; d.Status != campaign.StatusSkipped {
			t.Errorf("a late outcome overwrote a skipped delivery: %+v", d)
		}
		if err := f.st.RecordOutcomes(f.ctx, nil); err != nil {
			t.Errorf("empty outcomes: %v", err)
		}
	})

	t.Run("a batch of outcomes with a bad one is refused whole and the store goes on", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, c, campaign.ChannelSMS, 1, 2)
		f.claim(t, c, campaign.ChannelSMS, 1, 2)
		err := f.st.RecordOutcomes(f.ctx, []campaign.Outcome{
			{CampaignID: c.ID, SubscriberID: f.ids[msisdn(1)], Channel: campaign.ChannelSMS, Status: campaign.StatusSent, ProviderMessageID: "SM1"},
			{CampaignID: c.ID, SubscriberID: f.ids[msisdn(2)], Channel: campaign.ChannelSMS, Status: "exploded"},
		})
		if err == nil {
			t.Fatal("an unknown status was accepted")
		}
		for id, d := range f.bySubscriber(t, c) {
			if d.Status != campaign.StatusSending {
				t.Errorf("subscriber %d: status %s after a refused batch, want sending", id, d.Status)
			}
		}
		for range 3 { // the store (and each pooled connection) still works
			if err := f.st.RecordOutcomes(f.ctx, []campaign.Outcome{{CampaignID: c.ID, SubscriberID: f.ids[msisdn(1)],
				Channel: campaign.ChannelSMS, Status: campaign.StatusSent}}); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("the frequency cap counts marketing sends across the tenant's campaigns only", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		now := time.Now().UTC().Truncate(time.Microsecond)
		a := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		b := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		alert := f.campaign(t, f.tenant, campaign.KindExposureAlert, campaign.StateRunning)
		foreign := f.campaign(t, f.other, campaign.KindInstallPromotion, campaign.StateRunning)
		s2, s3 := f.ids[msisdn(2)], f.ids[msisdn(3)]
		send := func(c campaign.Campaign, ch campaign.Channel, status campaign.Status, at time.Time, ns ...int) {
			t.Helper()
			f.insert(t, c, ch, ns...)
			f.claim(t, c, ch, ns...)
			var outs []campaign.Outcome
			for _, n := range ns {
				outs = append(outs, campaign.Outcome{CampaignID: c.ID, SubscriberID: f.ids[msisdn(n)], Channel: ch,
					Status: status, Provider: "p", ProviderMessageID: fmt.Sprint(c.ID, ch, n), At: at})
			}
			if err := f.st.RecordOutcomes(f.ctx, outs); err != nil {
				t.Fatal(err)
			}
		}
		send(a, campaign.ChannelSMS, campaign.StatusSent, now.Add(-time.Hour), 1, 2)
		send(a, campaign.ChannelPush, campaign.StatusUnknown, now.Add(-time.Hour), 1)
		send(b, campaign.ChannelSMS, campaign.StatusSent, now.Add(-2*time.Hour), 1)
		send(b, campaign.ChannelPush, campaign.StatusFailed, now.Add(-time.Hour), 2)
		send(b, campaign.ChannelSMS, campaign.StatusSent, now.Add(-30*time.Hour), 3)
		send(alert, campaign.ChannelSMS, campaign.StatusSent, now.Add(-time.Hour), 1, 2, 3)
		send(foreign, campaign.ChannelSMS, campaign.StatusSent, now.Add(-time.Hour), 1, 2, 3)
		if ok, err := f.st.ApplyReceipt(f.ctx, campaign.Receipt{Provider: "p",
			MessageID: fmt.Sprint(a.ID, campaign.ChannelSMS, 2), Status: campaign.StatusDelivered, At: now}); !ok || err != nil {
			t.Fatalf("receipt = %v, %v", ok, err)
		}
		// check claims ns on c's SMS and applies a cap of limit since
		// `since`; it answers the numbers capped and held.
		check := func(c campaign.Campaign, since time.Time, limit int, ns ...int) ([]int, []int) {
			t.Helper()
			f.insert(t, c, campaign.ChannelSMS, ns...)
			f.claim(t, c, campaign.ChannelSMS, ns...)
			return f.applyCap(t, c, since, limit, ns...)
		}
		// Within 90 minutes: s1 has 2 (a's SMS, a's push unknown), s2 1 (a's
		// SMS, delivered); b's failed push, the alert and the other
		// tenant's campaign do not count.
		c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		if capped, held := check(c, now.Add(-90*time.Minute), 2, 1, 2, 3); !slices.Equal(capped, []int{1}) || held != nil {
			t.Fatalf("within 90 min at 2: capped %v and held %v, want [1] and none", capped, held)
		}
		// Within 24 hours s1 has 3, s2 1 and s3 none (b's SMS was 30 h ago),
		// plus c's reservations of s2 and s3, still in flight: s2 is at the
		// cap only with c's message, which may yet fail, so it is held.
		d := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		if capped, held := check(d, now.Add(-24*time.Hour), 2, 1, 2, 3); !slices.Equal(capped, []int{1}) || !slices.Equal(held, []int{2}) {
			t.Fatalf("within 24 h at 2: capped %v and held %v, want [1] and [2]: an in-flight reservation counts", capped, held)
		}
		// An in-flight reservation claimed before StaleBefore (its worker
		// likely dead) counts as gone out: s2 is capped, not held.
		res, err := f.st.ApplyCap(f.ctx, campaign.CapCheck{TenantID: d.TenantID, CampaignID: d.ID, Channel: campaign.ChannelSMS,
			SubscriberIDs: []int64{s2}, Since: now.Add(-24 * time.Hour), Limit: 2, At: time.Now(), StaleBefore: time.Now().Add(time.Hour)})
		if err != nil || !slices.Equal(res.Capped, []int64{s2}) || len(res.Held) != 0 {
			t.Fatalf("with c's reservation stale: %+v, %v; want s2 capped", res, err)
		}
		// A reservation put back (pending) or failed counts no more.
		var outs []campaign.Outcome
		for _, x := range []campaign.Campaign{c, d} {
			outs = append(outs,
				campaign.Outcome{CampaignID: x.ID, SubscriberID: s3, Channel: campaign.ChannelSMS, Status: campaign.StatusPending},
				campaign.Outcome{CampaignID: x.ID, SubscriberID: s2, Channel: campaign.ChannelSMS, Status: campaign.StatusFailed, ErrorCode: "30003"})
		}
		if err := f.st.RecordOutcomes(f.ctx, outs); err != nil {
			t.Fatal(err)
		}
		for _, x := range []campaign.Campaign{c, d} {
			if dl := f.bySubscriber(t, x)[s3]; dl.Status != campaign.StatusPending || dl.SentAt != nil {
				t.Fatalf("a put-back delivery = %s sent at %v, want pending and never sent", dl.Status, dl.SentAt)
			}
		}
		e := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		if capped, held := check(e, now.Add(-24*time.Hour), 2, 2, 3); capped != nil || held != nil {
			t.Fatalf("after the put-backs: capped %v and held %v, want none", capped, held)
		}
		if capped, held := f.applyCap(t, e, now, 1); capped != nil || held != nil {
			t.Fatalf("no subscribers: capped %v and held %v", capped, held)
		}
	})

	t.Run("two campaigns checking the cap at once never both reserve the last message", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		since := time.Now().Add(-time.Hour)
		ns := seq(4, 12)
		for round := range 5 {
			x := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
			y := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
			for _, c := range []campaign.Campaign{x, y} {
				f.insert(t, c, campaign.ChannelSMS, ns...)
				f.claim(t, c, campaign.ChannelSMS, ns...)
			}
			// Limit round+1: the earlier rounds' reservations, all still in
			// flight, fill round slots; the last goes to x or y, and the
			// other is held (not capped: nothing has gone out).
			var capped, held [2][]int
			var wg sync.WaitGroup
			for i, c := range []campaign.Campaign{x, y} {
				wg.Go(func() { capped[i], held[i] = f.applyCap(t, c, since, round+1, ns...) })
			}
			wg.Wait()
			if capped[0] != nil || capped[1] != nil {
				t.Fatalf("round %d: capped %v and %v, want none: no message went out", round, capped[0], capped[1])
			}
			for _, n := range ns {
				if slices.Contains(held[0], n) == slices.Contains(held[1], n) {
					t.Fatalf("round %d: subscriber %d held in x %v and y %v: want exactly one", round, n, held[0], held[1])
				}
			}
		}
	})

	t.Run("receipts only move a delivery forward and a repeat changes nothing", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c, sentAt := f.twoSent(t, campaign.Outcome{Status: campaign.StatusSent, ProviderMessageID: "SM1", Segments: 1})
		now := time.Now().UTC().Truncate(time.Microsecond)
		for _, step := range []struct {
			provider, id string
			status       campaign.Status
			code         string
			changed      bool
		}{
			{"twilio", "SM1", campaign.StatusSending, "", false},
			{"twilio", "SM1", campaign.StatusSent, "", false},
			{"twilio", "SM1", campaign.StatusDelivered, "", true},
			{"twilio", "SM1", campaign.StatusDelivered, "", false},
			{"twilio", "SM1", campaign.StatusUndelivered, "30003", false},
			{"twilio", "SM1", campaign.StatusSent, "", false},
			{"twilio", "SM2", campaign.StatusUndelivered, "30003", true},
			{"twilio", "SM2", campaign.StatusDelivered, "", false},
			{"other", "SM2", campaign.StatusFailed, "", false},
			{"twilio", "SM404", campaign.StatusDelivered, "", false},
		} {
			changed, err := f.st.ApplyReceipt(f.ctx, campaign.Receipt{Provider: step.provider, MessageID: step.id,
				Status: step.status, ErrorCode: step.code, At: now})
			if err != nil {
				t.Fatal(err)
			}
			if changed != step.changed {
				t.Errorf("receipt %s/%s %s: changed = %v, want %v", step.provider, step.id, step.status, changed, step.changed)
			}
		}
		ds := f.bySubscriber(t, c)
		if d := ds[f.ids[msisdn(1)]]; d.Status != campaign.StatusDelivered || d.ErrorCode != "" ||
			d.SentAt == nil || !d.SentAt.Equal(sentAt) || !d.UpdatedAt.Equal(now) {
			t.Errorf("delivered = %+v", d)
		}
		if d := ds[f.ids[msisdn(2)]]; d.Status != campaign.StatusUndelivered || d.ErrorCode != "30003" {
			t.Errorf("undelivered = %+v", d)
		}
	})

	t.Run("a receipt that comes before its send's outcome is kept, and the outcome adds its segments", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, c, campaign.ChannelSMS, 1, 2)
		f.claim(t, c, campaign.ChannelSMS, 1, 2) // sending: the batch's outcomes come when it ends
		key := func(n int) *campaign.DeliveryKey {
			return &campaign.DeliveryKey{CampaignID: c.ID, SubscriberID: f.ids[msisdn(n)], Channel: campaign.ChannelSMS}
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		for _, r := range []campaign.Receipt{
			{Provider: "twilio", MessageID: "SM1", Delivery: key(1), Status: campaign.StatusDelivered, At: now},
			{Provider: "twilio", MessageID: "SM2", Delivery: key(2), Status: campaign.StatusUndelivered, ErrorCode: "30003", At: now},
		} {
			if changed, err := f.st.ApplyReceipt(f.ctx, r); err != nil || !changed {
				t.Fatalf("receipt %s on a sending delivery: changed %v, %v", r.MessageID, changed, err)
			}
		}
		sentAt := now.Add(-time.Second)
		outs := []campaign.Outcome{
			{CampaignID: c.ID, SubscriberID: f.ids[msisdn(1)], Channel: campaign.ChannelSMS, Status: campaign.StatusSent,
				Provider: "twilio", ProviderMessageID: "SM1", Segments: 2, At: sentAt},
			{CampaignID: c.ID, SubscriberID: f.ids[msisdn(2)], Channel: campaign.ChannelSMS, Status: campaign.StatusSent,
				Provider: "twilio", ProviderMessageID: "SM2", Segments: 1, At: sentAt},
		}
		if err := f.st.RecordOutcomes(f.ctx, outs); err != nil {
			t.Fatal(err)
		}
		ds := f.bySubscriber(t, c)
		if d := ds[f.ids[msisdn(1)]]; d.Status != campaign.StatusDelivered || d.Segments != 2 || d.Provider != "twilio" ||
			d.ProviderMessageID != "SM1" || !d.UpdatedAt.Equal(now) {
			t.Errorf("delivered before its outcome: %+v", d)
		}
		if d := ds[f.ids[msisdn(2)]]; d.Status != campaign.StatusUndelivered || d.ErrorCode != "30003" || d.Segments != 1 {
			t.Errorf("undelivered before its outcome: %+v", d)
		}
		// The same outcome again changes nothing.
		if err := f.st.RecordOutcomes(f.ctx, outs); err != nil {
			t.Fatal(err)
		}
		if d := f.bySubscriber(t, c)[f.ids[msisdn(1)]]; d.Status != campaign.StatusDelivered || d.Segments != 2 {
			t.Errorf("after a repeated outcome: %+v", d)
		}
	})

	t.Run("an unknown send is not put back to pending by a late worker", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c, sentAt := f.twoSent(t, campaign.Outcome{Status: campaign.StatusUnknown})
		if err := f.st.RecordOutcomes(f.ctx, []campaign.Outcome{{CampaignID: c.ID, SubscriberID: f.ids[msisdn(1)],
			Channel: campaign.ChannelSMS, Status: campaign.StatusPending, ErrorCode: "20429", At: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		if d := f.bySubscriber(t, c)[f.ids[msisdn(1)]]; d.Status != campaign.StatusUnknown || d.SentAt == nil || !d.SentAt.Equal(sentAt) {
			t.Errorf("after a late retry-later outcome: %+v, want still unknown", d)
		}
		// A later definite outcome still resolves it.
		if err := f.st.RecordOutcomes(f.ctx, []campaign.Outcome{{CampaignID: c.ID, SubscriberID: f.ids[msisdn(1)],
			Channel: campaign.ChannelSMS, Status: campaign.StatusSent, Provider: "twilio", ProviderMessageID: "SM1", At: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		if d := f.bySubscriber(t, c)[f.ids[msisdn(1)]]; d.Status != campaign.StatusSent {
			t.Errorf("after a sent outcome: %+v", d)
		}
	})

	t.Run("sends whose answer was lost are listed to be looked up and only unknown ones are put back", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindExposureAlert, campaign.StateRunning)
		f.insert(t, c, campaign.ChannelSMS, 1, 2, 3, 4)
		f.insert(t, c, campaign.ChannelPush, 1)
		f.claim(t, c, campaign.ChannelSMS, 1, 2, 3, 4)
		f.claim(t, c, campaign.ChannelPush, 1)
		old := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
		recent := time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond)
		out := func(n int, ch campaign.Channel, st campaign.Status, at time.Time) campaign.Outcome {
			o := campaign.Outcome{CampaignID: c.ID, SubscriberID: f.ids[msisdn(n)], Channel: ch, Status: st, Provider: "twilio", At: at}
			if st == campaign.StatusSent {
				o.ProviderMessageID = fmt.Sprintf("SM%d", n)
			}
			return o
		}
		if err := f.st.RecordOutcomes(f.ctx, []campaign.Outcome{
			out(1, campaign.ChannelSMS, campaign.StatusUnknown, recent),
			out(2, campaign.ChannelSMS, campaign.StatusUnknown, old),
			out(3, campaign.ChannelSMS, campaign.StatusUnknown, recent),
			out(4, campaign.ChannelSMS, campaign.StatusSent, recent),
			out(1, campaign.ChannelPush, campaign.StatusUnknown, recent),
		}); err != nil {
			t.Fatal(err)
		}
		got, err := f.st.AmbiguousSends(f.ctx, c.ID, campaign.ChannelSMS, "twilio", recent.Add(-time.Second), 10)
		if err != nil {
			t.Fatal(err)
		}
		// 1 and 3, with what rendering their messages again needs.
		wantSubs := []int{1, 3}
		if len(got) != len(wantSubs) {
			t.Fatalf("ambiguous SMS since a minute ago: %+v, want subscribers %v", got, wantSubs)
		}
		for i, n := range wantSubs {
			g := got[i]
			attrs := map[string]string{"plan": "prepaid"}
			if n == 3 {
				attrs["tier"] = "gold"
			}
			if g.SubscriberID != f.ids[msisdn(n)] || g.MSISDN != msisdn(n) || g.Provider != "twilio" || !g.AttemptedAt.Equal(recent) ||
				g.Claimed || g.Attempts != 1 || g.ReferralCode == "" || g.Region != "HG" || g.Locale != "vi" ||
				!reflect.DeepEqual(g.Attributes, attrs) || g.Channel != campaign.ChannelSMS || g.CampaignID != c.ID {
				t.Errorf("ambiguous send %d: %+v, want subscriber %d's", i, g, n)
			}
		}
		if got, err := f.st.AmbiguousSends(f.ctx, c.ID, campaign.ChannelSMS, "twilio", old, 1); err != nil || len(got) != 1 || got[0].SubscriberID != f.ids[msisdn(1)] {
			t.Errorf("the first ambiguous SMS since an hour ago: %+v, %v", got, err)
		}
		// A receipt for 3 comes before the look-up puts it back: it stays delivered.
		if ok, err := f.st.ApplyReceipt(f.ctx, campaign.Receipt{Provider: "twilio", MessageID: "SM3", Status: campaign.StatusDelivered, At: time.Now(),
			Delivery: &campaign.DeliveryKey{CampaignID: c.ID, SubscriberID: f.ids[msisdn(3)], Channel: campaign.ChannelSMS}}); err != nil || !ok {
			t.Fatalf("receipt: %v, %v", ok, err)
		}
		// 2's look-up was of another attempt: it stays.
		attempt := func(n int) campaign.AmbiguousSend {
			a := campaign.AmbiguousSend{AttemptedAt: recent}
			a.SubscriberID = f.ids[msisdn(n)]
			return a
		}
		n, err := f.st.RequeueAmbiguous(f.ctx, c.ID, campaign.ChannelSMS, []campaign.AmbiguousSend{attempt(1), attempt(2), attempt(3), attempt(4)})
		if err != nil || n != 1 {
			t.Errorf("requeued %d, %v; want 1 (the delivered, the sent and the other attempt's stay)", n, err)
		}
		ds := f.bySubscriber(t, c)
		if d := ds[f.ids[msisdn(1)]]; d.Status != campaign.StatusPending || d.SentAt != nil {
			t.Errorf("requeued delivery: %+v, want pending with no sent_at", d)
		}
		for n, st := range map[int]campaign.Status{2: campaign.StatusUnknown, 3: campaign.StatusDelivered, 4: campaign.StatusSent} {
			if d := ds[f.ids[msisdn(n)]]; d.Status != st {
				t.Errorf("delivery %d: %s, want %s", n, d.Status, st)
			}
		}
		if got, err := f.st.AmbiguousSends(f.ctx, c.ID, campaign.ChannelPush, "twilio", old, 10); err != nil || len(got) != 1 {
			t.Errorf("the push delivery, requeued? %+v, %v; want still unknown", got, err)
		}
		if got, err := f.st.AmbiguousSends(f.ctx, c.ID, campaign.ChannelPush, "fcm", old, 10); err != nil || len(got) != 0 {
			t.Errorf("another provider's ambiguous sends: %+v, %v; want none", got, err)
		}
		held, err := f.st.HeldMessageIDs(f.ctx, []string{"SM3", "SM4", "SM9"})
		if err != nil || len(held) != 2 || !held["SM3"] || !held["SM4"] {
			t.Errorf("held message ids: %v, %v; want SM3 and SM4", held, err)
		}
	})

	t.Run("a receipt that names its delivery resolves a send whose answer was lost", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c, sentAt := f.twoSent(t, campaign.Outcome{Status: campaign.StatusUnknown}) // the answer was lost
		key := func(n int) *campaign.DeliveryKey {
			return &campaign.DeliveryKey{CampaignID: c.ID, SubscriberID: f.ids[msisdn(n)], Channel: campaign.ChannelSMS}
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		for _, step := range []struct {
			what    string
			r       campaign.Receipt
			changed bool
		}{
			{"by message id alone", campaign.Receipt{Provider: "twilio", MessageID: "SM1", Status: campaign.StatusDelivered}, false},
			{"another provider's", campaign.Receipt{Provider: "other", MessageID: "SM1", Delivery: key(1), Status: campaign.StatusDelivered}, false},
			{"the push delivery", campaign.Receipt{Provider: "twilio", MessageID: "SM1", Status: campaign.StatusDelivered,
				Delivery: &campaign.DeliveryKey{CampaignID: c.ID, SubscriberID: f.ids[msisdn(1)], Channel: campaign.ChannelPush}}, false},
			{"naming the delivery", campaign.Receipt{Provider: "twilio", MessageID: "SM1", Delivery: key(1), Status: campaign.StatusDelivered}, true},
			{"again", campaign.Receipt{Provider: "twilio", MessageID: "SM1", Delivery: key(1), Status: campaign.StatusDelivered}, false},
			{"another message id for a delivery that has one", campaign.Receipt{Provider: "twilio", MessageID: "SM9", Delivery: key(2),
				Status: campaign.StatusUndelivered, ErrorCode: "30003"}, false},
			{"its own message id", campaign.Receipt{Provider: "twilio", MessageID: "SM2", Delivery: key(2),
				Status: campaign.StatusUndelivered, ErrorCode: "30003"}, true},
		} {
			step.r.At = now
			changed, err := f.st.ApplyReceipt(f.ctx, step.r)
			if err != nil {
				t.Fatal(err)
			}
			if changed != step.changed {
				t.Errorf("receipt %s: changed = %v, want %v", step.what, changed, step.changed)
			}
		}
		ds := f.bySubscriber(t, c)
		if d := ds[f.ids[msisdn(1)]]; d.Status != campaign.StatusDelivered || d.ProviderMessageID != "SM1" ||
			d.SentAt == nil || !d.SentAt.Equal(sentAt) {
			t.Errorf("the unknown send after its receipt = %+v", d)
		}
		if d := ds[f.ids[msisdn(2)]]; d.Status != campaign.StatusUndelivered || d.ProviderMessageID != "SM2" || d.ErrorCode != "30003" {
			t.Errorf("the sent one after its receipt = %+v", d)
		}
	})

	t.Run("counts summarise a campaign by status, skip reason, channel and segments", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, c, campaign.ChannelSMS, 1, 2, 3, 4, 5, 6)
		f.insert(t, c, campaign.ChannelPush, 1, 2, 7)
		f.claim(t, c, campaign.ChannelSMS, 1, 2, 3, 4, 5)
		f.claim(t, c, campaign.ChannelPush, 1, 2)
		outs := []campaign.Outcome{
			{SubscriberID: f.ids[msisdn(1)], Channel: campaign.ChannelSMS, Status: campaign.StatusSent, ProviderMessageID: "a", Provider: "p", Segments: 2},
			{SubscriberID: f.ids[msisdn(2)], Channel: campaign.ChannelSMS, Status: campaign.StatusSent, ProviderMessageID: "b", Provider: "p", Segments: 3},
			{SubscriberID: f.ids[msisdn(3)], Channel: campaign.ChannelSMS, Status: campaign.StatusFailed, Segments: 1},
			{SubscriberID: f.ids[msisdn(4)], Channel: campaign.ChannelSMS, Status: campaign.StatusSkipped, SkipReason: campaign.SkipOptedOut},
			{SubscriberID: f.ids[msisdn(1)], Channel: campaign.ChannelPush, Status: campaign.StatusSkipped, SkipReason: campaign.SkipNoDevice},
			{SubscriberID: f.ids[msisdn(2)], Channel: campaign.ChannelPush, Status: campaign.StatusSkipped, SkipReason: campaign.SkipNoDevice},
		}
		for i := range outs {
			outs[i].CampaignID = c.ID
		}
		if err := f.st.RecordOutcomes(f.ctx, outs); err != nil {
			t.Fatal(err)
		}
		if ok, err := f.st.ApplyReceipt(f.ctx, campaign.Receipt{Provider: "p", MessageID: "a",
			Status: campaign.StatusDelivered, At: time.Now()}); !ok || err != nil {
			t.Fatalf("receipt = %v, %v", ok, err)
		}
		got, err := f.st.DeliveryCounts(f.ctx, f.tenant, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := campaign.Counts{
			Audience: 7,
			ByStatus: map[campaign.Status]int64{campaign.StatusPending: 2, campaign.StatusSending: 1,
				campaign.StatusSent: 1, campaign.StatusDelivered: 1, campaign.StatusFailed: 1,
				campaign.StatusUndelivered: 0, campaign.StatusUnknown: 0, campaign.StatusSkipped: 3},
			BySkip:    map[campaign.SkipReason]int64{campaign.SkipOptedOut: 1, campaign.SkipNoDevice: 2},
			Segments:  6,
			ByChannel: map[campaign.Channel]int64{campaign.ChannelSMS: 6, campaign.ChannelPush: 3},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("counts = %+v\nwant %+v", got, want)
		}
		single := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, single, campaign.ChannelSMS, 1, 2, 3)
		if got, err := f.st.DeliveryCounts(f.ctx, f.tenant, single.ID); err != nil || got.Audience != 3 ||
			got.ByStatus[campaign.StatusPending] != 3 || len(got.BySkip) != 0 {
			t.Errorf("single-channel counts = %+v, %v", got, err)
		}
		empty := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateDraft)
		if got, err := f.st.DeliveryCounts(f.ctx, f.tenant, empty.ID); err != nil || got.Audience != 0 ||
			len(got.ByStatus) != len(campaign.AllStatuses) {
			t.Errorf("empty counts = %+v, %v", got, err)
		}
		wantNotFound(t, "another tenant's counts", func() error {
			_, err := f.st.DeliveryCounts(f.ctx, f.other, c.ID)
			return err
		})
	})

	t.Run("deliveries are listed by id in pages, filtered by status, with their numbers", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, c, campaign.ChannelSMS, seq(1, 7)...)
		f.insert(t, c, campaign.ChannelPush, 2, 4)
		other := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, other, campaign.ChannelSMS, 1, 2)
		f.claim(t, c, campaign.ChannelSMS, 2, 5, 6)
		if err := f.st.RecordOutcomes(f.ctx, []campaign.Outcome{{CampaignID: c.ID, SubscriberID: f.ids[msisdn(5)],
			Channel: campaign.ChannelSMS, Status: campaign.StatusFailed}}); err != nil {
			t.Fatal(err)
		}
		page := func(status campaign.Status, limit int) []campaign.Delivery {
			t.Helper()
			var all []campaign.Delivery
			after := int64(0)
			for i := 0; ; i++ {
				ds, err := f.st.ListDeliveries(f.ctx, f.tenant, c.ID, status, after, limit)
				if err != nil {
					t.Fatal(err)
				}
				if len(ds) > limit {
					t.Fatalf("page of %d, limit %d", len(ds), limit)
				}
				if len(ds) == 0 || i > 100 {
					return all
				}
				all = append(all, ds...)
				after = ds[len(ds)-1].ID
			}
		}
		all := page("", 2)
		if len(all) != 9 {
			t.Fatalf("listed %d deliveries, want 9", len(all))
		}
		statuses := map[campaign.Status]int{}
		for i, d := range all {
			if i > 0 && d.ID <= all[i-1].ID {
				t.Errorf("ids not ascending: %d after %d", d.ID, all[i-1].ID)
			}
			if d.CampaignID != c.ID || d.MSISDN == "" || f.ids[d.MSISDN] != d.SubscriberID {
				t.Errorf("listed %+v", d)
			}
			statuses[d.Status]++
		}
		if want := map[campaign.Status]int{campaign.StatusPending: 6, campaign.StatusSending: 2, campaign.StatusFailed: 1}; !reflect.DeepEqual(statuses, want) {
			t.Errorf("statuses = %v, want %v", statuses, want)
		}
		sending := page(campaign.StatusSending, 1)
		if len(sending) != 2 || sending[0].ID >= sending[1].ID ||
			!sameSet([]int64{sending[0].SubscriberID, sending[1].SubscriberID}, []int64{f.ids[msisdn(2)], f.ids[msisdn(6)]}) {
			t.Errorf("sending = %+v", sending)
		}
		if got := page(campaign.StatusDelivered, 5); len(got) != 0 {
			t.Errorf("delivered = %+v, want none", got)
		}
		wantNotFound(t, "another tenant's deliveries", func() error {
			_, err := f.st.ListDeliveries(f.ctx, f.other, c.ID, "", 0, 10)
			return err
		})
	})

	t.Run("unfinished deliveries are paged per channel and filtered by age", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
		f.insert(t, c, campaign.ChannelSMS, seq(1, 7)...)
		f.insert(t, c, campaign.ChannelPush, 3)
		f.claim(t, c, campaign.ChannelSMS, 1, 2, 3)
		if err := f.st.RecordOutcomes(f.ctx, []campaign.Outcome{
			{CampaignID: c.ID, SubscriberID: f.ids[msisdn(1)], Channel: campaign.ChannelSMS, Status: campaign.StatusSent},
			{CampaignID: c.ID, SubscriberID: f.ids[msisdn(4)], Channel: campaign.ChannelSMS, Status: campaign.StatusSkipped, SkipReason: campaign.SkipOptedOut},
		}); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Hour)
		var got []int64
		after := int64(0)
		for range 10 {
			ids, err := f.st.UnfinishedPage(f.ctx, c.ID, campaign.ChannelSMS, after, later, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) == 0 {
				break
			}
			got = append(got, ids...)
			after = ids[len(ids)-1]
		}
		var want []int64
		for _, n := range []int{2, 3, 5, 6, 7} {
			want = append(want, f.ids[msisdn(n)])
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("unfinished = %v, want %v", got, want)
		}
		if ids, err := f.st.UnfinishedPage(f.ctx, c.ID, campaign.ChannelSMS, 0, time.Now().Add(-time.Hour), 10); err != nil || len(ids) != 0 {
			t.Errorf("unfinished older than an hour = %v, %v; want none", ids, err)
		}
		if ids, err := f.st.UnfinishedPage(f.ctx, c.ID, campaign.ChannelSMS, 0, time.Time{}, 10); err != nil || !slices.Equal(ids, want) {
			t.Errorf("unfinished of any age = %v, %v; want %v", ids, err, want)
		}
		if ids, err := f.st.UnfinishedPage(f.ctx, c.ID, campaign.ChannelPush, 0, later, 10); err != nil || !slices.Equal(ids, []int64{f.ids[msisdn(3)]}) {
			t.Errorf("unfinished push = %v, %v", ids, err)
		}
		if n, err := f.st.CountUnfinished(f.ctx, c.ID); err != nil || n != 6 {
			t.Errorf("count unfinished = %d, %v; want 6", n, err)
		}
	})

	t.Run("the audit trail lists the tenant's entries newest first", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, newStore(t))
		base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		for i, e := range []campaign.AuditEntry{
			{TenantID: f.tenant, Actor: "key-1", Action: "campaign.create", ObjectType: "campaign", ObjectID: "c1",
				Details: json.RawMessage(`{"name": "Q3", "rate": 500}`)},
			{TenantID: f.tenant, Actor: "key-1", Action: "campaign.start", ObjectType: "campaign", ObjectID: "c1"},
			{TenantID: f.other, Actor: "key-9", Action: "campaign.create", ObjectType: "campaign", ObjectID: "c9"},
			{TenantID: f.tenant, Actor: "system", Action: "campaign.complete", ObjectType: "campaign", ObjectID: "c1"},
		} {
			e.At = base.Add(time.Duration(i) * time.Minute)
			if err := f.st.Audit(f.ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		list, err := f.st.ListAudit(f.ctx, f.tenant, 10)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range list {
			actions = append(actions, e.Action)
			if e.ID == 0 || e.TenantID != f.tenant {
				t.Errorf("entry %+v", e)
			}
		}
		if want := []string{"campaign.complete", "campaign.start", "campaign.create"}; !slices.Equal(actions, want) {
			t.Fatalf("actions = %v, want %v", actions, want)
		}
		if !list[0].At.Equal(base.Add(3*time.Minute)) || list[1].Details != nil {
			t.Errorf("entries %+v", list[:2])
		}
		var details map[string]any
		if err := json.Unmarshal(list[2].Details, &details); err != nil || details["name"] != "Q3" || details["rate"] != 500.0 {
			t.Errorf("details = %s, %v", list[2].Details, err)
		}
		if list, err := f.st.ListAudit(f.ctx, f.tenant, 1); err != nil || len(list) != 1 {
			t.Errorf("limit 1 = %d entries, %v", len(list), err)
		}
		before := time.Now().Add(-time.Second)
		if err := f.st.Audit(f.ctx, campaign.AuditEntry{TenantID: f.other, Actor: "a", Action: "now"}); err != nil {
			t.Fatal(err)
		}
		list, err = f.st.ListAudit(f.ctx, f.other, 10)
		if err != nil || len(list) != 2 || list[0].Action != "now" || list[0].At.Before(before) {
			t.Errorf("other tenant's trail = %+v, %v", list, err)
		}
	})
}

// fixture is a store seeded with two tenants: twelve subscribers in the
// first (1-4 region HG, 5-8 DB, 9-12 HN; odd ones prepaid, 3 and 9 also
// gold; 2 and 6 speak English; list vip: 2, 3, 6, 9, 10) and three in the
// second, with a list "theirs".
type fixture struct {
	st            CampaignStore
	ctx           context.Context
	tenant, other string
	ids           map[string]int64 // the first tenant's subscribers by MSISDN
}

func msisdn(n int) string { return fmt.Sprintf("+849%08d", n) }

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func newFixture(t *testing.T, st CampaignStore) *fixture {
	t.Helper()
	ctx := context.Background()
	a, err := st.EnsureTenant(ctx, "carrier-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.EnsureTenant(ctx, "carrier-b")
	if err != nil {
		t.Fatal(err)
	}
	var rows, vip []subscriber.Row
	var numbers []string
	for n := 1; n <= 12; n++ {
		r := subscriber.Row{MSISDN: msisdn(n), Region: []string{"HG", "DB", "HN"}[(n-1)/4], Locale: "vi",
			Attributes: map[string]string{"plan": "postpaid"}}
		if n%2 == 1 {
			r.Attributes["plan"] = "prepaid"
		}
		if n == 3 || n == 9 {
			r.Attributes["tier"] = "gold"
		}
		if n == 2 || n == 6 {
			r.Locale = "en"
		}
		if slices.Contains([]int{2, 3, 6, 9, 10}, n) {
			vip = append(vip, r)
		} else {
			rows = append(rows, r)
		}
		numbers = append(numbers, r.MSISDN)
	}
	if _, err := st.UpsertSubscribers(ctx, a.ID, rows, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpsertSubscribers(ctx, a.ID, vip, "vip"); err != nil {
		t.Fatal(err)
	}
	var theirs []subscriber.Row
	for n := 1; n <= 3; n++ {
		theirs = append(theirs, subscriber.Row{MSISDN: msisdn(100 + n), Region: "HG", Locale: "vi",
			Attributes: map[string]string{"plan": "prepaid"}})
	}
	if _, err := st.UpsertSubscribers(ctx, b.ID, theirs, "theirs"); err != nil {
		t.Fatal(err)
	}
	ids, err := st.EnsureSubscribers(ctx, a.ID, numbers)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 12 {
		t.Fatalf("seeded %d subscribers, want 12", len(ids))
	}
	return &fixture{st: st, ctx: ctx, tenant: a.ID, other: b.ID, ids: ids}
}

// campaign creates a one-channel-each campaign of kind in state.
func (f *fixture) campaign(t *testing.T, tenantID string, kind campaign.Kind, state campaign.State) campaign.Campaign {
	t.Helper()
	c := &campaign.Campaign{TenantID: tenantID, Name: string(kind) + " " + string(state), Kind: kind,
		Channels: []campaign.Channel{campaign.ChannelSMS, campaign.ChannelPush}, State: state, RatePerSecond: 100}
	if err := f.st.CreateCampaign(f.ctx, c); err != nil {
		t.Fatal(err)
	}
	return *c
}

// pageAll walks a campaign's whole audience in pages of limit, checking
// each page.
func (f *fixture) pageAll(t *testing.T, c campaign.Campaign, limit int) []int64 {
	return f.pageAllOf(t, f.st.AudiencePage, c, limit)
}

// pageAllOf is pageAll through page (AudiencePage or AudienceUnreached).
func (f *fixture) pageAllOf(t *testing.T, page func(context.Context, campaign.Campaign, int64, int) ([]int64, error),
	c campaign.Campaign, limit int) []int64 {
	t.Helper()
	var all []int64
	after := int64(0)
	for range 100 {
		ids, err := page(f.ctx, c, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) > limit {
			t.Fatalf("page of %d, limit %d", len(ids), limit)
		}
		for i, id := range ids {
			if id <= after || (i > 0 && id <= ids[i-1]) {
				t.Fatalf("page %v after %d is not ascending past the cursor", ids, after)
			}
		}
		if len(ids) == 0 {
			return all
		}
		all = append(all, ids...)
		after = ids[len(ids)-1]
	}
	t.Fatal("audience did not end")
	return nil
}

func (f *fixture) newDeliveries(ns ...int) []campaign.NewDelivery {
	var ds []campaign.NewDelivery
	for _, n := range ns {
		id := f.ids[msisdn(n)]
		ds = append(ds, campaign.NewDelivery{SubscriberID: id, ReferralCode: fmt.Sprintf("r%d", id)})
	}
	return ds
}

func (f *fixture) insert(t *testing.T, c campaign.Campaign, ch campaign.Channel, ns ...int) {
	t.Helper()
	ds := f.newDeliveries(ns...)
	if ch == campaign.ChannelPush {
		for i := range ds {
			ds[i].ReferralCode += "p"
		}
	}
	if _, err := f.st.InsertDeliveries(f.ctx, c, ch, ds); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) claim(t *testing.T, c campaign.Campaign, ch campaign.Channel, ns ...int) []campaign.Recipient {
	t.Helper()
	var ids []int64
	for _, n := range ns {
		ids = append(ids, f.ids[msisdn(n)])
	}
	rs, err := f.st.ClaimDeliveries(f.ctx, c.ID, ch, ids)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// deliveries lists every delivery of c.
func (f *fixture) deliveries(t *testing.T, c campaign.Campaign) []campaign.Delivery {
	t.Helper()
	ds, err := f.st.ListDeliveries(f.ctx, c.TenantID, c.ID, "", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// bySubscriber maps c's SMS deliveries by subscriber id.
func (f *fixture) bySubscriber(t *testing.T, c campaign.Campaign) map[int64]campaign.Delivery {
	t.Helper()
	out := map[int64]campaign.Delivery{}
	for _, d := range f.deliveries(t, c) {
		if d.Channel == campaign.ChannelSMS {
			out[d.SubscriberID] = d
		}
	}
	return out
}

func wantNotFound(t *testing.T, what string, call func() error) {
	t.Helper()
	if err := call(); !errors.Is(err, apperr.ErrNotFound) {
		t.Errorf("%s: err = %v, want not found", what, err)
	}
}

// sameCampaign compares two campaigns, times by instant.
func sameCampaign(t *testing.T, got, want campaign.Campaign) {
	t.Helper()
	for _, p := range []struct {
		name string
		g, w *time.Time
	}{{"start_at", got.StartAt, want.StartAt}, {"end_by", got.EndBy, want.EndBy},
		{"started_at", got.StartedAt, want.StartedAt}, {"finished_at", got.FinishedAt, want.FinishedAt}} {
		if (p.g == nil) != (p.w == nil) || (p.g != nil && !p.g.Equal(*p.w)) {
			t.Errorf("%s = %v, want %v", p.name, p.g, p.w)
		}
	}
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("times = %v %v, want %v %v", got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
	got.StartAt, got.EndBy, got.StartedAt, got.FinishedAt = want.StartAt, want.EndBy, want.StartedAt, want.FinishedAt
	got.CreatedAt, got.UpdatedAt = want.CreatedAt, want.UpdatedAt
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %+v\nwant %+v", got, want)
	}
}

func campaignIDs(cs []campaign.Campaign) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	sort.Strings(ids)
	return ids
}

func sorted(xs ...string) []string {
	sort.Strings(xs)
	return xs
}

func sameSet(got, want []int64) bool {
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(got, want)
}

// applyCap applies a cap of limit since `since` to c's claimed SMS of ns
// and answers the numbers at the cap by messages gone out, and the ones at
// it only with messages in flight, each ascending.
func (f *fixture) applyCap(t *testing.T, c campaign.Campaign, since time.Time, limit int, ns ...int) (capped, held []int) {
	t.Helper()
	var ids []int64
	byID := map[int64]int{}
	for _, n := range ns {
		ids = append(ids, f.ids[msisdn(n)])
		byID[f.ids[msisdn(n)]] = n
	}
	res, err := f.st.ApplyCap(f.ctx, campaign.CapCheck{TenantID: c.TenantID, CampaignID: c.ID,
		Channel: campaign.ChannelSMS, SubscriberIDs: ids, Since: since, Limit: limit, At: time.Now()})
	if err != nil {
		t.Errorf("ApplyCap: %v", err)
	}
	numbers := func(ids []int64) []int {
		var out []int
		for _, id := range ids {
			out = append(out, byID[id])
		}
		slices.Sort(out)
		return out
	}
	return numbers(res.Capped), numbers(res.Held)
}

func equalCounts(got, want map[int64]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// BenchInsertDeliveries measures fan-out writes: batches of 5,000 new
// deliveries of one campaign and channel. It reports rows/s.
func BenchInsertDeliveries(b *testing.B, st CampaignStore) {
	ctx := context.Background()
	c, _ := benchCampaign(b, st, 0)
	batch := 5000 // OUTREACH_BENCH_INSERT_BATCH=10000 for the fan-out's rounds
	if v, _ := strconv.Atoi(os.Getenv("OUTREACH_BENCH_INSERT_BATCH")); v > 0 {
		batch = v
	}
	ds := make([]campaign.NewDelivery, batch)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range ds {
			id := int64(i*batch + j + 1)
			ds[j] = campaign.NewDelivery{SubscriberID: id}
		}
		n, err := st.InsertDeliveries(ctx, c, campaign.ChannelSMS, ds)
		if err != nil {
			b.Fatal(err)
		}
		if n != batch {
			b.Fatalf("inserted %d, want %d", n, batch)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
}

// BenchClaimAndRecord measures the send path's store work: claim a batch of
// 100 pending deliveries (with their subscribers and devices) and record
// their outcomes. It reports rows/s.
func BenchClaimAndRecord(b *testing.B, st CampaignStore) {
	ctx := context.Background()
	const (
		batch       = 100
		subscribers = 20000
	)
	first, ids := benchCampaign(b, st, subscribers)
	campaigns := []campaign.Campaign{first}
	for len(campaigns)*subscribers < b.N*batch {
		c := first
		c.ID = ""
		if err := st.CreateCampaign(ctx, &c); err != nil {
			b.Fatal(err)
		}
		campaigns = append(campaigns, c)
	}
	for _, c := range campaigns {
		for from := 0; from < len(ids); from += 5000 {
			var ds []campaign.NewDelivery
			for _, id := range ids[from:min(from+5000, len(ids))] {
				ds = append(ds, campaign.NewDelivery{SubscriberID: id}) // codes come with the claim
			}
			if _, err := st.InsertDeliveries(ctx, c, campaign.ChannelSMS, ds); err != nil {
				b.Fatal(err)
			}
		}
	}
	outs := make([]campaign.Outcome, 0, batch)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		at := i * batch
		c := campaigns[at/subscribers]
		page := ids[at%subscribers : at%subscribers+batch]
		rs, err := st.ClaimDeliveries(ctx, c.ID, campaign.ChannelSMS, page)
		if err != nil {
			b.Fatal(err)
		}
		if len(rs) != batch {
			b.Fatalf("claimed %d, want %d", len(rs), batch)
		}
		outs = outs[:0]
		now := time.Now()
		for _, r := range rs {
			outs = append(outs, campaign.Outcome{CampaignID: c.ID, SubscriberID: r.SubscriberID,
				Channel: campaign.ChannelSMS, Status: campaign.StatusSent, Provider: "twilio",
				ProviderMessageID: fmt.Sprintf("SM%s%d", c.ID[:8], r.SubscriberID), Segments: 1, At: now})
		}
		if err := st.RecordOutcomes(ctx, outs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
}

// benchCampaign creates a tenant with n subscribers and a running promotion;
// it returns the campaign and the subscribers' ids in order.
func benchCampaign(b *testing.B, st CampaignStore, n int) (campaign.Campaign, []int64) {
	b.Helper()
	ctx := context.Background()
	ten, err := st.EnsureTenant(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	var ids []int64
	for from := 0; from < n; from += 5000 {
		var rows []subscriber.Row
		var numbers []string
		for i := from; i < min(from+5000, n); i++ {
			m := fmt.Sprintf("+8490%07d", i)
			rows = append(rows, subscriber.Row{MSISDN: m, Region: "HN", Locale: "vi",
				Attributes: map[string]string{"plan": "prepaid"}})
			numbers = append(numbers, m)
		}
		if _, err := st.UpsertSubscribers(ctx, ten.ID, rows, ""); err != nil {
			b.Fatal(err)
		}
		got, err := st.EnsureSubscribers(ctx, ten.ID, numbers)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range numbers {
			ids = append(ids, got[m])
		}
	}
	slices.Sort(ids)
	c := campaign.Campaign{TenantID: ten.ID, Name: "bench", Kind: campaign.KindInstallPromotion,
		Channels: []campaign.Channel{campaign.ChannelSMS}, State: campaign.StateRunning, RatePerSecond: 1000}
	if err := st.CreateCampaign(ctx, &c); err != nil {
		b.Fatal(err)
	}
	return c, ids
}

// twoSent makes a running install promotion with SMS deliveries to
// subscribers 1 and 2, sent a minute ago through "twilio": the first with
// first's status, message id and segments, the second sent as "SM2".
func (f *fixture) twoSent(t *testing.T, first campaign.Outcome) (campaign.Campaign, time.Time) {
	t.Helper()
	c := f.campaign(t, f.tenant, campaign.KindInstallPromotion, campaign.StateRunning)
	f.insert(t, c, campaign.ChannelSMS, 1, 2)
	f.claim(t, c, campaign.ChannelSMS, 1, 2)
	sentAt := time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond)
	first.CampaignID, first.SubscriberID, first.Channel = c.ID, f.ids[msisdn(1)], campaign.ChannelSMS
	first.Provider, first.At = "twilio", sentAt
	if err := f.st.RecordOutcomes(f.ctx, []campaign.Outcome{first,
		{CampaignID: c.ID, SubscriberID: f.ids[msisdn(2)], Channel: campaign.ChannelSMS, Status: campaign.StatusSent,
			Provider: "twilio", ProviderMessageID: "SM2", Segments: 1, At: sentAt},
	}); err != nil {
		t.Fatal(err)
	}
	return c, sentAt
}
