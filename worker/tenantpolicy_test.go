package worker_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/tenant"
	"outreach/worker"
)

// A tenant's own policy (PUT /v1/policy) governs its campaigns: its send
// window holds marketing the deployment's window would let go, and its
// opt-out text goes on each SMS instead of the deployment's.
func TestATenantsOwnPolicyGovernsItsCampaigns(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		h.seed(100) // every tenth opted out: 90 eligible
		// The deployment's window is always open (the harness's default).
		h.clock.Set(time.Date(2026, 11, 24, 21, 30, 0, 0, h.policy.Zone))
		if _, err := h.service.SetPolicy(h.ctx, h.admin, tenant.Policy{SendWindow: "08:00-21:00",
			OptOutText: "Tu choi: soan HUY gui 1234"}); err != nil {
			t.Fatal(err)
		}
		h.startWorker(worker.Settings{HoldRecheck: time.Second})
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(c.ID, campaign.ActionStart)
		time.Sleep(2500 * time.Millisecond)
		if n := h.twilio.Count(); n != 0 {
			t.Fatalf("%d messages went out at 21:30, outside the tenant's 08:00-21:00 window", n)
		}
		if s := h.stats(c.ID); s.Deliveries[campaign.StatusPending] != 100 {
			t.Fatalf("held deliveries: %v, want 100 pending", s.Deliveries)
		}
		h.clock.Set(time.Date(2026, 11, 25, 8, 0, 5, 0, h.policy.Zone))
		h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		msgs := h.twilio.Messages()
		if len(msgs) != 90 {
			t.Fatalf("after the window opened the fake saw %d messages, want 90", len(msgs))
		}
		for _, m := range msgs {
			if !strings.HasSuffix(m.Body, "Tu choi: soan HUY gui 1234") || strings.Contains(m.Body, "9241") {
				t.Fatalf("an SMS without the tenant's own opt-out text: %q", m.Body)
			}
		}
	})
}

// startWorkerUnableToReadPolicies starts a worker whose store fails
// TenantPolicy until the store answered is told otherwise.
func (h *harness) startWorkerUnableToReadPolicies(set worker.Settings) *policyFailStore {
	failing := &policyFailStore{testStore: h.store}
	failing.fail.Store(true)
	plain := h.store
	h.store = failing
	h.startWorker(set)
	h.store = plain
	return failing
}

// policyFailStore fails TenantPolicy while fail is set.
type policyFailStore struct {
	testStore
	fail atomic.Bool
}

func (s *policyFailStore) TenantPolicy(ctx context.Context, tenantID string) (tenant.Policy, error) {
	if s.fail.Load() {
		return tenant.Policy{}, errors.New("tenant policy unreadable")
	}
	return s.testStore.TenantPolicy(ctx, tenantID)
}

// A worker that cannot read the tenant's policy yet sends no marketing
// (it would go out under the deployment's opt-out text, another carrier's
// short code) until it can; an exposure alert, which no marketing rule
// holds back, goes at once.
func TestNoMarketingGoesOutBeforeTheTenantsPolicyIsRead(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(20) // every tenth opted out: 18 eligible
		if _, err := h.service.SetPolicy(h.ctx, h.admin, tenant.Policy{OptOutText: "Tu choi: soan HUY gui 1234"}); err != nil {
			t.Fatal(err)
		}
		failing := h.startWorkerUnableToReadPolicies(worker.Settings{})
		c := h.promo([]campaign.Channel{campaign.ChannelSMS}, 0)
		h.act(c.ID, campaign.ActionStart)
		contacts, sms := h.alertContacts(10)
		if _, err := h.createAlert(h.ctx, h.service, contacts, sms); err != nil {
			t.Fatal(err)
		}
		if n := h.waitReached(contacts, 20*time.Second); n != len(contacts) {
			t.Fatalf("the alert reached %d of %d contacts while the tenant's policy was unreadable", n, len(contacts))
		}
		for i, m := range msisdns {
			if n := h.twilio.CountTo(m); n != 0 {
				t.Fatalf("subscriber %d got %d marketing messages before the tenant's policy was read", i, n)
			}
		}
		failing.fail.Store(false)
		h.waitState(c.ID, campaign.StateCompleted, 60*time.Second)
		h.expectOnce(msisdns)
		for _, m := range h.twilio.Messages() {
			if strings.HasPrefix(m.To, "+8491") && !strings.HasSuffix(m.Body, "Tu choi: soan HUY gui 1234") {
				t.Fatalf("a marketing SMS without the tenant's own opt-out text: %q", m.Body)
			}
		}
	})
}

// A campaign whose end comes before the deployment's window reopens is
// not skipped on the deployment's window while the tenant's own, open all
// day, cannot be read: its batches wait, and go once it can.
func TestACampaignIsNotEndedOnTheDeploymentsWindowWhileTheTenantsIsUnread(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(20) // every tenth opted out: 18 eligible
		h.policy.Window.Start, h.policy.Window.End = 8*60, 21*60
		h.clock.Set(time.Date(2026, 11, 24, 22, 0, 0, 0, h.policy.Zone))
		if _, err := h.service.SetPolicy(h.ctx, h.admin, tenant.Policy{SendWindow: "00:00-24:00"}); err != nil {
			t.Fatal(err)
		}
		failing := h.startWorkerUnableToReadPolicies(worker.Settings{HoldRecheck: 200 * time.Millisecond})
		tpl := h.template(campaign.TemplateInput{Name: "promo", Channel: campaign.ChannelSMS, Locale: "vi", Body: "Cai Bluezone: {{.InstallLink}}"})
		end := time.Date(2026, 11, 24, 23, 0, 0, 0, h.policy.Zone)
		c, err := h.service.CreateCampaign(h.ctx, h.admin, campaign.CampaignInput{Name: "tonight",
			Channels: []campaign.Channel{campaign.ChannelSMS}, Templates: map[campaign.Channel]string{campaign.ChannelSMS: tpl}, EndBy: &end})
		if err != nil {
			t.Fatal(err)
		}
		h.act(c.ID, campaign.ActionStart)
		time.Sleep(1500 * time.Millisecond)
		if s := h.stats(c.ID); s.Deliveries[campaign.StatusSkipped] != 0 || h.twilio.Count() != 0 {
			t.Fatalf("with the tenant's policy unread: %d sent, skipped %v; want every delivery waiting", h.twilio.Count(), s.Skipped)
		}
		failing.fail.Store(false)
		s := h.waitState(c.ID, campaign.StateCompleted, 30*time.Second)
		if s.Skipped[campaign.SkipQuietHoursExpired] != 0 || s.Deliveries[campaign.StatusSent] != 18 {
			t.Fatalf("after the tenant's policy was read: sent %d, skipped %v; want 18 sent and only the opted-out skipped", s.Deliveries[campaign.StatusSent], s.Skipped)
		}
		h.expectOnce(msisdns)
	})
}
