package install

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"outreach/internal/apperr"
	"outreach/reward"
	"outreach/subscriber"
	"outreach/tenant"
)

// DefaultAttributionDays is the window of a campaign that pays no reward
// (and so names none).
const DefaultAttributionDays = 14

// tenantCacheTTL bounds how long a changed install secret (or a new
// tenant) may take to apply; the cache spares a store read per callback.
const tenantCacheTTL = 10 * time.Second

// TenantLookup finds a tenant by name (tenant.Store has it).
type TenantLookup interface {
	TenantByName(ctx context.Context, name string) (tenant.Tenant, error)
}

// Service records install callbacks and asks the ledger for their rewards.
type Service struct {
	Store   Store
	Tenants TenantLookup
	// Ledger, when set, creates the reward of every counted install
	// attributed to a campaign that pays one.
	Ledger *reward.Ledger
	// DefaultSecret (OUTREACH_INSTALL_SECRET) verifies the callbacks of a
	// tenant with no secret of its own.
	DefaultSecret string
	Now           func() time.Time
	Logger        *slog.Logger

	mu      sync.Mutex
	tenants map[string]cachedTenant
}

type cachedTenant struct {
	t       tenant.Tenant
	known   bool
	expires time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Signed is a callback as it arrived: its headers and raw body.
type Signed struct {
	Tenant    string // X-Outreach-Tenant
	Timestamp string // X-Outreach-Timestamp
	Signature string // X-Outreach-Signature
	Body      []byte
}

// Result is the answer to a callback.
type Result struct {
	InstallID  string  `json:"install_id"`
	Duplicate  bool    `json:"duplicate"`
	CampaignID *string `json:"campaign_id"`
	Via        Via     `json:"attribution"`
	// Replay: this callback was received before; nothing new was written.
	Replay bool         `json:"replay"`
	Reward *RewardBrief `json:"reward"`
}

// RewardBrief is the reward in a callback answer.
type RewardBrief struct {
	ID     string        `json:"id"`
	State  reward.State  `json:"state"`
	Reason reward.Reason `json:"reason,omitempty"`
	DataMB int64         `json:"data_mb"`
}

// Authenticate finds the tenant a callback names and verifies its
// signature under the tenant's secret, or DefaultSecret when the tenant has
// none. Every refusal is an *AuthError; nothing is written.
func (s *Service) Authenticate(ctx context.Context, in Signed) (tenant.Tenant, error) {
	name := strings.TrimSpace(in.Tenant)
	if name == "" {
		return tenant.Tenant{}, ErrTenantMissing
	}
	if len(name) > 200 {
		return tenant.Tenant{}, s.refuse(ctx, in, ErrUnknownTenant, "tenant_bytes", len(name))
	}
	t, err := s.tenant(ctx, name)
	if errors.Is(err, ErrUnknownTenant) {
		return tenant.Tenant{}, s.refuse(ctx, in, err, "tenant", name)
	}
	if err != nil {
		return tenant.Tenant{}, err
	}
	secret := t.InstallSecret
	if secret == "" {
		secret = s.DefaultSecret
	}
	if secret == "" {
		return tenant.Tenant{}, s.refuse(ctx, in, ErrNoSecret, "tenant", t.Name)
	}
	if err := Verify(secret, in.Timestamp, in.Body, in.Signature, s.now()); err != nil {
		return tenant.Tenant{}, err
	}
	return t, nil
}

// refuse answers a callback that no secret can verify (its tenant is
// unknown, or has no secret) as a known tenant's badly signed one is: its
// headers are checked against a secret nobody holds, so a missing or
// malformed one is named and a well-formed one is bad_signature. The
// reason goes to the log, for the operator, not to the caller.
func (s *Service) refuse(ctx context.Context, in Signed, reason error, args ...any) error {
	err := Verify(decoySecret, in.Timestamp, in.Body, in.Signature, s.now())
	if err == nil {
		err = ErrBadSignature
	}
	s.logger().WarnContext(ctx, "install callback refused: "+reason.Error(), args...)
	return err
}

// decoySecret verifies the callbacks no tenant's secret can (refuse).
var decoySecret = rand.Text()

// tenant finds a tenant by name through a short cache, which also
// remembers unknown names so that a flood of made-up tenants costs no
// store reads.
func (s *Service) tenant(ctx context.Context, name string) (tenant.Tenant, error) {
	now := time.Now()
	s.mu.Lock()
	c, ok := s.tenants[name]
	s.mu.Unlock()
	if !ok || !now.Before(c.expires) {
		t, err := s.Tenants.TenantByName(ctx, name)
		switch {
		case err == nil:
			c = cachedTenant{t: t, known: true, expires: now.Add(tenantCacheTTL)}
		case errors.Is(err, apperr.ErrNotFound):
			c = cachedTenant{expires: now.Add(tenantCacheTTL)}
		default:
			return tenant.Tenant{}, fmt.Errorf("look up tenant: %w", err)
		}
		s.mu.Lock()
		if s.tenants == nil || len(s.tenants) >= 10_000 {
			s.tenants = map[string]cachedTenant{}
		}
		s.tenants[name] = c
		s.mu.Unlock()
	}
	if !c.known {
		return tenant.Tenant{}, ErrUnknownTenant
	}
	return c.t, nil
}

// Handle authenticates a signed callback, parses it and records the
// install: POST /v1/installs.
func (s *Service) Handle(ctx context.Context, in Signed) (Result, error) {
	t, err := s.Authenticate(ctx, in)
	if err != nil {
		return Result{}, err
	}
	cb, err := ParseCallback(in.Body)
	if err != nil {
		return Result{}, err
	}
	return s.Record(ctx, t.ID, cb)
}

// Record attributes and records one install of the tenant and, when it
// counts and its campaign pays a reward, creates the reward. Recording the
// same install again (same device, number and installed_at) is a replay: it
// writes nothing new and answers as the first time did.
func (s *Service) Record(ctx context.Context, tenantID string, cb Callback) (Result, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	if cb.InstalledAt.After(now.Add(MaxSkew)) {
		return Result{}, apperr.FieldErrors{"installed_at": "is in the future"}
	}
	if cb.InstalledAt.Before(EarliestInstall) {
		return Result{}, apperr.FieldErrors{"installed_at": "must not be before " + EarliestInstall.Format(time.RFC3339)}
	}
	target, att, via, err := s.attribute(ctx, tenantID, cb)
	if err != nil {
		return Result{}, err
	}
	in := Install{
		ID: uuid.NewString(), TenantID: tenantID, SubscriberID: target.SubscriberID,
		MSISDN: target.MSISDN, DeviceID: cb.DeviceID, Platform: cb.Platform,
		InstalledAt: cb.InstalledAt, ReceivedAt: now, ReferralCode: cb.ReferralCode,
		Region: target.Region, Via: via,
	}
	if att != nil {
		in.CampaignID = att.CampaignID
		sent := att.SentAt
		in.AttributedAt = &sent
	}
	var req *reward.Request
	if att != nil && att.Reward != nil && att.Reward.DataMB > 0 && in.SubscriberID != 0 && s.Ledger != nil {
		req = &reward.Request{
			TenantID: tenantID, CampaignID: in.CampaignID, SubscriberID: in.SubscriberID,
			MSISDN: in.MSISDN, DeviceID: in.DeviceID, InstallID: in.ID,
			DataMB: att.Reward.DataMB, BudgetMB: att.Reward.BudgetMB,
			InstalledAt: in.InstalledAt, SentAt: att.SentAt, AttributionDays: att.Reward.AttributionDays,
		}
	}
	rec, pre, err := s.recordInstall(ctx, &in, req)
	if err != nil {
		return Result{}, fmt.Errorf("record install: %w", err)
	}
	res := Result{InstallID: in.ID, Duplicate: in.Duplicate, Via: in.Via, Replay: rec.Replay}
	if in.CampaignID != "" {
		id := in.CampaignID
		res.CampaignID = &id
	}
	if !rec.Replay {
		s.logger().DebugContext(ctx, "install recorded", "install_id", in.ID, "msisdn", subscriber.Mask(in.MSISDN),
			"duplicate", in.Duplicate, "via", in.Via, "campaign_id", in.CampaignID)
	}
	if pre != nil {
		res.Reward = &RewardBrief{ID: pre.ID, State: pre.State, Reason: pre.Reason, DataMB: pre.DataMB}
		return res, nil
	}
	if rec.Replay && s.Ledger != nil {
		// A replay answers as the first time: from the reward stored for
		// the install, whatever attribution would say now (a receipt may
		// have marked the message undelivered since, or a newer one sent).
		r, found, err := s.Ledger.OfInstall(ctx, in.ID)
		if err != nil {
			return Result{}, err
		}
		if found {
			res.Reward = &RewardBrief{ID: r.ID, State: r.State, Reason: r.Reason, DataMB: r.DataMB}
			return res, nil
		}
	}
	// No reward for a duplicate, an unknown number or organic install; a
	// replay carries the attribution stored the first time, and is paid
	// (once: the ledger is idempotent per install) only by those terms.
	if req == nil || in.Duplicate || in.CampaignID != req.CampaignID {
		return res, nil
	}
	req.InstallID = in.ID
	if in.AttributedAt != nil {
		req.SentAt = *in.AttributedAt
	}
	r, _, err := s.Ledger.Create(ctx, *req)
	if err != nil {
		return Result{}, err
	}
	res.Reward = &RewardBrief{ID: r.ID, State: r.State, Reason: r.Reason, DataMB: r.DataMB}
	return res, nil
}

// recordInstall records in. When the store can record a counted install
// and its pending reward in one step, and req would be paid, it does both
// and returns the reward; otherwise the reward (if any) is left to the
// ledger.
func (s *Service) recordInstall(ctx context.Context, in *Install, req *reward.Request) (RecordResult, *reward.Reward, error) {
	rs, ok := s.Store.(RewardingStore)
	if !ok || req == nil {
		rec, err := s.Store.RecordInstall(ctx, in)
		return rec, nil, err
	}
	r, err := s.Ledger.Prepare(*req)
	if err != nil || r.State != reward.StatePending {
		rec, err := s.Store.RecordInstall(ctx, in)
		return rec, nil, err
	}
	rec, rewarded, err := rs.RecordInstallRewarded(ctx, in, &r, req.BudgetMB)
	if err != nil || !rewarded {
		return rec, nil, err
	}
	s.Ledger.Recorded(ctx, r, true)
	return rec, &r, nil
}

// attribute finds who installed and which campaign drove it. The referral
// code names a delivery; it is trusted for a callback that also names a
// number only when the delivery went to that number (a code passed on to
// someone else does not move their install). Otherwise the most recent
// install-promotion message sent to the number within its campaign's
// window wins; else the install is organic.
func (s *Service) attribute(ctx context.Context, tenantID string, cb Callback) (Target, *Attribution, Via, error) {
	var pre *AttributionLookup
	if as, ok := s.Store.(AttributionStore); ok {
		l, err := as.LookUpAttribution(ctx, tenantID, cb, DefaultAttributionDays)
		if err != nil {
			return Target{}, nil, "", fmt.Errorf("attribute: %w", err)
		}
		pre = &l
	}
	var byCode *Attribution
	switch {
	case cb.ReferralCode == "":
	case pre != nil:
		byCode = pre.ByCode
	default:
		a, found, err := s.Store.AttributionByReferral(ctx, tenantID, cb.ReferralCode)
		if err != nil {
			return Target{}, nil, "", fmt.Errorf("attribute by referral code: %w", err)
		}
		if found {
			byCode = &a
		}
	}
	switch {
	case cb.MSISDN == "" && byCode == nil:
		return Target{}, nil, "", apperr.FieldErrors{"referral_code": "unknown referral code, and no msisdn to attribute the install by"}
	case cb.MSISDN == "":
		return byCode.Target, byCode, ViaReferral, nil
	case byCode != nil && byCode.Target.MSISDN == cb.MSISDN:
		return byCode.Target, byCode, ViaReferral, nil
	}
	if pre == nil || !pre.TargetLooked {
		pre = nil // what was found in one step does not cover this case
	}
	var target Target
	if pre != nil {
		if pre.Target == nil {
			return Target{MSISDN: cb.MSISDN}, nil, ViaOrganic, nil
		}
		target = *pre.Target
		if pre.Last == nil {
			return target, nil, ViaOrganic, nil
		}
		return target, pre.Last, ViaLastMessage, nil
	}
	t, found, err := s.Store.InstallTarget(ctx, tenantID, cb.MSISDN)
	if err != nil {
		return Target{}, nil, "", fmt.Errorf("find subscriber: %w", err)
	}
	if !found {
		// Not one of the tenant's subscribers: the install counts for the
		// national figure, but no message of ours reached that number.
		return Target{MSISDN: cb.MSISDN}, nil, ViaOrganic, nil
	}
	target = t
	a, found, err := s.Store.LastPromotion(ctx, tenantID, target.SubscriberID, cb.InstalledAt, DefaultAttributionDays)
	if err != nil {
		return Target{}, nil, "", fmt.Errorf("attribute by last message: %w", err)
	}
	if !found {
		return target, nil, ViaOrganic, nil
	}
	return target, &a, ViaLastMessage, nil
}

// Click records a click on an install link; false when the code is
// unknown (or malformed), which records nothing.
func (s *Service) Click(ctx context.Context, code string) (bool, error) {
	if !validCode(code) {
		return false, nil
	}
	return s.Store.RecordClick(ctx, code, s.now().UTC().Truncate(time.Microsecond))
}

// Adoption builds the tenant's adoption report against target.
func (s *Service) Adoption(ctx context.Context, tenantID string, target int64) (Adoption, error) {
	regions, err := s.Store.ListRegions(ctx, tenantID)
	if err != nil {
		return Adoption{}, fmt.Errorf("list regions: %w", err)
	}
	counts, err := s.Store.InstallCounts(ctx, tenantID)
	if err != nil {
		return Adoption{}, fmt.Errorf("install counts: %w", err)
	}
	return BuildAdoption(regions, counts, target), nil
}
