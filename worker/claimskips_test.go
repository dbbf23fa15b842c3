package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/install"
	"outreach/subscriber"
	"outreach/worker"
)

// installRecorder is the part of both stores an install callback writes
// through.
type installRecorder interface {
	InstallTarget(ctx context.Context, tenantID, msisdn string) (install.Target, bool, error)
	RecordInstall(ctx context.Context, in *install.Install) (install.RecordResult, error)
}

// An install promotion to subscribers who have not installed the app does
// not urge one who installed it after fan-out wrote their delivery (here,
// overnight, while the send window was closed): that delivery is skipped
// as already_installed, the subscriber gets no message, and everyone else
// gets theirs. A campaign whose audience does not ask about installs
// still goes to those subscribers.
func TestAnInstallAfterFanoutSkipsThePromotion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(100) // every tenth opted out: 90 eligible
		h.policy.Window.Start, h.policy.Window.End = 7*60, 22*60
		h.clock.Set(time.Date(2026, 11, 24, 23, 30, 0, 0, h.policy.Zone))
		h.startWorker(worker.Settings{HoldRecheck: time.Second})

		notInstalled := false
		tpl := h.template(campaign.TemplateInput{Name: "promo-sms", Channel: campaign.ChannelSMS, Locale: "vi",
			Body: "Cài Bluezone: {{.InstallLink}}", Transliterate: true})
		create := func(name string, aud campaign.Audience) campaign.Campaign {
			c, err := h.service.CreateCampaign(h.ctx, h.admin, campaign.CampaignInput{Name: name,
				Kind: campaign.KindInstallPromotion, Channels: []campaign.Channel{campaign.ChannelSMS},
				Templates: map[campaign.Channel]string{campaign.ChannelSMS: tpl}, Audience: aud})
			if err != nil {
				t.Fatal(err)
			}
			h.act(c.ID, campaign.ActionStart)
			return c
		}
		promo := create("not installed yet", campaign.Audience{Installed: &notInstalled})
		everyone := create("everyone", campaign.Audience{})
		for _, c := range []campaign.Campaign{promo, everyone} {
			deadline := time.Now().Add(30 * time.Second)
			for h.stats(c.ID).Deliveries[campaign.StatusPending] != 100 {
				if time.Now().After(deadline) {
					t.Fatalf("campaign %q: held deliveries %v, want 100 pending", c.Name, h.stats(c.ID).Deliveries)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}

		// Five subscribers (none opted out) install the app overnight.
		rec := h.store.(installRecorder)
		installed := map[string]bool{}
		for _, i := range []int{1, 2, 3, 4, 5} {
			m := msisdns[i]
			target, found, err := rec.InstallTarget(h.ctx, h.tenant.ID, m)
			if err != nil || !found {
				t.Fatalf("install target %d: %v, found %v", i, err, found)
			}
			at := h.clock.Now()
			if _, err := rec.RecordInstall(h.ctx, &install.Install{TenantID: h.tenant.ID, SubscriberID: target.SubscriberID,
				MSISDN: m, DeviceID: fmt.Sprintf("device-%d", i), Platform: install.PlatformAndroid,
				InstalledAt: at, ReceivedAt: at, Region: target.Region, Via: install.ViaOrganic}); err != nil {
				t.Fatal(err)
			}
			installed[m] = true
		}

		h.clock.Set(time.Date(2026, 11, 25, 7, 0, 5, 0, h.policy.Zone))
		s := h.waitState(promo.ID, campaign.StateCompleted, 30*time.Second)
		if got := s.Skipped[campaign.SkipAlreadyInstalled]; got != 5 {
			t.Errorf("skipped as already installed: %d, want 5 (skips %v)", got, s.Skipped)
		}
		if got := s.Deliveries[campaign.StatusSent]; got != 85 {
			t.Errorf("sent: %d, want 85 (%v)", got, s.Deliveries)
		}
		h.waitState(everyone.ID, campaign.StateCompleted, 30*time.Second)
		for i, m := range msisdns {
			want := 2
			switch {
			case i%10 == 0:
				want = 0
			case installed[m]:
				want = 1 // the campaign to everyone only
			}
			if got := h.twilio.CountTo(m); got != want {
				t.Errorf("subscriber %d got %d messages, want %d", i, got, want)
			}
		}
	})
}

// A number stored before it could be checked (an old 11-digit mobile
// number since renumbered, a landline imported before the mobile-only
// rule) is skipped as invalid_number on SMS, never sent to the provider;
// its push still goes to its device.
func TestAStoredNumberThatIsNotAValidMobileIsSkippedOnSMS(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(20) // every tenth opted out: 18 eligible
		bad := []string{"+841623456789", "+842439876543"}
		rows := []subscriber.Row{{MSISDN: bad[0], Region: "HN", Locale: "vi"}, {MSISDN: bad[1], Region: "HN", Locale: "vi"}}
		if _, err := h.store.UpsertSubscribers(h.ctx, h.tenant.ID, rows, ""); err != nil {
			t.Fatal(err)
		}
		if err := h.store.PutDevice(h.ctx, h.tenant.ID, bad[0], subscriber.Device{Platform: subscriber.PlatformFCM, Token: "fcm-token-old-number"}); err != nil {
			t.Fatal(err)
		}
		h.startWorker(worker.Settings{})
		c := h.promo([]campaign.Channel{campaign.ChannelSMS, campaign.ChannelPush}, 0)
		h.act(c.ID, campaign.ActionStart)
		s := h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		if got := s.Skipped[campaign.SkipInvalidNumber]; got != 2 {
			t.Errorf("skipped as invalid_number: %d, want 2 (skips %v)", got, s.Skipped)
		}
		for _, m := range bad {
			if n := h.twilio.CountTo(m); n != 0 {
				t.Errorf("%s was sent %d SMS", m, n)
			}
		}
		if n := h.twilio.Count(); n != 18 {
			t.Errorf("the fake took %d SMS, want 18", n)
		}
		if n := h.fcm.CountToken("fcm-token-old-number"); n != 1 {
			t.Errorf("the old number's device got %d pushes, want 1", n)
		}
		h.expectOnce(msisdns)
	})
}
