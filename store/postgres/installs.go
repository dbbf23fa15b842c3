package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"outreach/campaign"
	"outreach/install"
	"outreach/reward"
)

var (
	_ install.Store          = (*Store)(nil)
	_ install.RewardingStore = (*Store)(nil)
	_ campaign.RewardStats   = (*Store)(nil)
)

// installCountShards spreads a region's install count over this many rows
// (see 0003_installs_rewards.sql).
const installCountShards = 64

// ledgerUUID normalises a uuid; ok is false when s is none (and so names
// nothing). Installs and rewards keep their own helpers, apart from the
// campaign files'.
func ledgerUUID(s string) (string, bool) {
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// ledgerUTCPtr returns t in UTC (pgx reads times in the local zone).
func ledgerUTCPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// ledgerNow is the current time at the precision the database keeps.
func ledgerNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func installShard(msisdn string) int16 {
	h := fnv.New32a()
	h.Write([]byte(msisdn))
	return int16(h.Sum32() % installCountShards)
}

// InstallTarget finds one of the tenant's subscribers by number.
func (s *Store) InstallTarget(ctx context.Context, tenantID, msisdn string) (install.Target, bool, error) {
	t := install.Target{MSISDN: msisdn}
	err := s.pool.QueryRow(ctx, `SELECT id, region FROM subscribers WHERE tenant_id = $1 AND msisdn = $2`,
		tenantID, msisdn).Scan(&t.SubscriberID, &t.Region)
	if errors.Is(err, pgx.ErrNoRows) {
		return install.Target{}, false, nil
	}
	if err != nil {
		return install.Target{}, false, fmt.Errorf("postgres: install target: %w", err)
	}
	return t, true, nil
}

// AttributionByReferral finds the tenant's install-promotion delivery with
// this referral code (any of its channels: they share campaign and
// subscriber).
func (s *Store) AttributionByReferral(ctx context.Context, tenantID, code string) (install.Attribution, bool, error) {
	var a install.Attribution
	// The code is looked up first, on its own (MATERIALIZED): joined, the
	// planner may walk the whole campaign's deliveries by campaign_id.
	err := s.pool.QueryRow(ctx, `WITH d AS MATERIALIZED (
			SELECT campaign_id, subscriber_id, sent_at, created_at FROM deliveries
			WHERE referral_code = $2 AND tenant_id = $1
		)
		SELECT d.campaign_id::text, d.subscriber_id, s.msisdn, s.region,
			COALESCE(d.sent_at, d.created_at), c.reward
		FROM d
		JOIN campaigns c ON c.id = d.campaign_id
		JOIN subscribers s ON s.id = d.subscriber_id
		WHERE c.kind = 'install_promotion'
		ORDER BY d.sent_at DESC NULLS LAST
		LIMIT 1`, tenantID, code).
		Scan(&a.CampaignID, &a.Target.SubscriberID, &a.Target.MSISDN, &a.Target.Region, &a.SentAt, &a.Reward)
	if errors.Is(err, pgx.ErrNoRows) {
		return install.Attribution{}, false, nil
	}
	if err != nil {
		return install.Attribution{}, false, fmt.Errorf("postgres: attribution by referral: %w", err)
	}
	a.SentAt = a.SentAt.UTC()
	return a, true, nil
}

// LastPromotion finds the most recent install-promotion message sent to
// the subscriber within its campaign's attribution window before at. It
// walks the (subscriber_id, sent_at) partial index of marketing sends.
func (s *Store) LastPromotion(ctx context.Context, tenantID string, subscriberID int64, at time.Time, defaultDays int) (install.Attribution, bool, error) {
	a := install.Attribution{Target: install.Target{SubscriberID: subscriberID}}
	maxDays := max(campaign.MaxAttributionDays, defaultDays)
	err := s.pool.QueryRow(ctx, `SELECT d.campaign_id::text, d.sent_at, c.reward
		FROM deliveries d
		JOIN campaigns c ON c.id = d.campaign_id
		WHERE d.subscriber_id = $2 AND d.kind_marketing AND d.sent_at IS NOT NULL
		  AND d.sent_at <= $6::timestamptz AND d.sent_at >= $3::timestamptz - make_interval(days => $5::int)
		  AND d.tenant_id = $1 AND d.status IN ('sent', 'delivered') AND c.kind = 'install_promotion'
		  AND d.sent_at >= $3::timestamptz - make_interval(days => COALESCE((c.reward->>'attribution_days')::int, $4::int))
		ORDER BY d.sent_at DESC
		LIMIT 1`, tenantID, subscriberID, at, defaultDays, maxDays, at.Add(reward.InstallSkew)).
		Scan(&a.CampaignID, &a.SentAt, &a.Reward)
	if errors.Is(err, pgx.ErrNoRows) {
		return install.Attribution{}, false, nil
	}
	if err != nil {
		return install.Attribution{}, false, fmt.Errorf("postgres: last promotion: %w", err)
	}
	a.SentAt = a.SentAt.UTC()
	return a, true, nil
}

// recordInstallSQL inserts an install and, when it is counted (the first
// of its number), marks the subscriber installed and adds to the region's
// count, all in one statement (one round trip, atomic). It returns the
// number of rows inserted: 0 on any unique conflict.
const recordInstallSQL = `WITH ins AS (
	INSERT INTO installs (id, subscriber_id, installed_at, received_at, attributed_at, campaign_id,
		duplicate, tenant_id, msisdn, device_id, platform, region, via, referral_code)
	VALUES ($1::uuid, $2::bigint, $3::timestamptz, $4::timestamptz, $5::timestamptz, $6::uuid,
		$7::boolean, $8::text, $9::text, $10::text, $11::text, $12::text, $13::text, $14::text)
	ON CONFLICT DO NOTHING
	RETURNING subscriber_id, tenant_id, region, duplicate
), marked AS (
	UPDATE subscribers s SET installed = true, installed_at = $3::timestamptz, updated_at = $4::timestamptz
	FROM ins
	WHERE NOT ins.duplicate AND s.id = ins.subscriber_id AND NOT s.installed
	RETURNING s.id
), counted AS (
	INSERT INTO install_counts AS ic (tenant_id, region, shard, installs)
	SELECT tenant_id, region, $15::smallint, 1 FROM ins WHERE NOT duplicate
	ON CONFLICT (tenant_id, region, shard) DO UPDATE SET installs = ic.installs + 1
	RETURNING 1
)
SELECT count(*) FROM ins`

const installColumns = `id::text, COALESCE(subscriber_id, 0), installed_at, received_at, attributed_at,
	COALESCE(campaign_id::text, ''), duplicate, tenant_id, msisdn, device_id, platform, region, via,
	COALESCE(referral_code, '')`

func scanInstall(r pgx.Row) (install.Install, error) {
	var in install.Install
	err := r.Scan(&in.ID, &in.SubscriberID, &in.InstalledAt, &in.ReceivedAt, &in.AttributedAt, &in.CampaignID,
		&in.Duplicate, &in.TenantID, &in.MSISDN, &in.DeviceID, &in.Platform, &in.Region, &in.Via, &in.ReferralCode)
	in.InstalledAt, in.ReceivedAt, in.AttributedAt = in.InstalledAt.UTC(), in.ReceivedAt.UTC(), ledgerUTCPtr(in.AttributedAt)
	return in, err
}

// RecordInstall stores an install: counted, duplicate, or a replay of one
// stored (see install.Store). Its first attempt, as counted, goes in the
// batch of concurrent callbacks (installbatch.go); the rarer cases (a
// later install of the number, a replay) and a failed batch are handled
// here alone.
func (s *Store) RecordInstall(ctx context.Context, in *install.Install) (install.RecordResult, error) {
	c, err := newCountedInstall(in)
	if err != nil {
		return install.RecordResult{}, err
	}
	r, err := s.recordCounted(ctx, c)
	switch {
	case err == nil && r.inserted:
		in.Duplicate = false
		return install.RecordResult{}, nil
	case err == nil:
		return s.recordInstallAlone(ctx, in, true)
	case errors.Is(err, errBatchFailed):
		return s.recordInstallAlone(ctx, in, false)
	}
	return install.RecordResult{}, fmt.Errorf("postgres: record install: %w", err)
}

// newCountedInstall normalises in (its id set, its times in UTC at the
// precision kept) and returns its first write, as counted.
func newCountedInstall(in *install.Install) (countedInstall, error) {
	if in.ID == "" {
		in.ID = uuid.NewString()
	}
	in.InstalledAt = in.InstalledAt.UTC().Truncate(time.Microsecond)
	in.ReceivedAt = in.ReceivedAt.UTC().Truncate(time.Microsecond)
	c := countedInstall{id: in.ID, tenantID: in.TenantID, msisdn: in.MSISDN, deviceID: in.DeviceID,
		platform: string(in.Platform), region: in.Region, via: string(in.Via), installedAt: in.InstalledAt,
		receivedAt: in.ReceivedAt, countShard: installShard(in.MSISDN)}
	if in.SubscriberID != 0 {
		id := in.SubscriberID
		c.subscriberID = &id
	}
	if in.CampaignID != "" {
		key, ok := ledgerUUID(in.CampaignID)
		if !ok {
			return countedInstall{}, fmt.Errorf("postgres: record install: campaign id %q is no uuid", in.CampaignID)
		}
		c.campaignID = &key
	}
	if in.AttributedAt != nil {
		at := in.AttributedAt.UTC()
		c.attributedAt = &at
	}
	if in.ReferralCode != "" {
		code := in.ReferralCode
		c.referral = &code
	}
	return c, nil
}

// recordInstallAlone is RecordInstall in statements of its own; conflicted
// says its first attempt, as counted, was made and met a unique conflict.
func (s *Store) recordInstallAlone(ctx context.Context, in *install.Install, conflicted bool) (install.RecordResult, error) {
	c, err := newCountedInstall(in)
	if err != nil {
		return install.RecordResult{}, err
	}
	for attempt := 0; attempt < 4; attempt++ {
		for _, duplicate := range []bool{false, true} {
			if conflicted {
				conflicted = false
			} else {
				var n int
				if err := s.pool.QueryRow(ctx, recordInstallSQL, c.id, c.subscriberID, c.installedAt, c.receivedAt,
					c.attributedAt, c.campaignID, duplicate, c.tenantID, c.msisdn, c.deviceID, c.platform, c.region,
					c.via, c.referral, c.countShard).Scan(&n); err != nil {
					return install.RecordResult{}, fmt.Errorf("postgres: record install: %w", err)
				}
				if n == 1 {
					in.Duplicate = duplicate
					return install.RecordResult{}, nil
				}
			}
			// A conflict: the same install stored before (a replay), or,
			// the first time round, a counted install of the number.
			stored, found, err := s.installByKey(ctx, in.Key())
			if err != nil {
				return install.RecordResult{}, err
			}
			if found {
				*in = stored
				return install.RecordResult{Replay: true}, nil
			}
		}
	}
	return install.RecordResult{}, fmt.Errorf("postgres: record install: no progress after repeated conflicts")
}

// recordInstallRewardedSQL is recordInstallSQL for a counted install that
// also debits its reward from the home shard of the campaign's budget and
// stores the reward pending: one statement, one commit. Nothing is debited
// unless the install row is new; a reward conflict (a live reward of the
// subscriber in the campaign, or of the device) raises an error that rolls
// the whole statement back, install included. It returns the installs
// inserted and the reward's seq (NULL when the shard had no room).
const recordInstallRewardedSQL = `WITH ins AS (
	INSERT INTO installs (id, subscriber_id, installed_at, received_at, attributed_at, campaign_id,
		duplicate, tenant_id, msisdn, device_id, platform, region, via, referral_code)
	VALUES ($1::uuid, $2::bigint, $3::timestamptz, $4::timestamptz, $5::timestamptz, $6::uuid,
		false, $7::text, $8::text, $9::text, $10::text, $11::text, $12::text, $13::text)
	ON CONFLICT DO NOTHING
	RETURNING subscriber_id, tenant_id, region
), marked AS (
	UPDATE subscribers s SET installed = true, installed_at = $3::timestamptz, updated_at = $4::timestamptz
	FROM ins
	WHERE s.id = ins.subscriber_id AND NOT s.installed
	RETURNING s.id
), counted AS (
	INSERT INTO install_counts AS ic (tenant_id, region, shard, installs)
	SELECT tenant_id, region, $14::smallint, 1 FROM ins
	ON CONFLICT (tenant_id, region, shard) DO UPDATE SET installs = ic.installs + 1
	RETURNING 1
), debit AS (
	UPDATE campaign_budgets SET spent_mb = spent_mb + $16::bigint
	WHERE campaign_id = $6::uuid AND shard = $18::smallint AND spent_mb + $16::bigint <= budget_mb
	  AND EXISTS (SELECT 1 FROM ins)
	RETURNING shard
), rw AS (
	INSERT INTO rewards (id, install_id, campaign_id, subscriber_id, data_mb, created_at, updated_at,
		tenant_id, msisdn, device_id, state, budget_shard)
	SELECT $15::uuid, $1::uuid, $6::uuid, $2::bigint, $16::bigint, $17::timestamptz, $17::timestamptz,
		$7::text, $8::text, $9::text, 'pending', debit.shard
	FROM debit
	RETURNING seq
)
SELECT (SELECT count(*) FROM ins), (SELECT seq FROM rw)`

// RecordInstallRewarded records a counted install and its pending reward
// in one step when it can, in the batch of concurrent callbacks
// (installbatch.go); otherwise it records the install as RecordInstall
// does and leaves the reward to the ledger (see install.RewardingStore).
func (s *Store) RecordInstallRewarded(ctx context.Context, in *install.Install, r *reward.Reward, budgetMB int64) (install.RecordResult, bool, error) {
	campaignID, ok := ledgerUUID(in.CampaignID)
	if !ok || in.SubscriberID == 0 || r.State != reward.StatePending || r.DataMB <= 0 {
		res, err := s.RecordInstall(ctx, in)
		return res, false, err
	}
	c, err := newCountedInstall(in)
	if err != nil {
		return install.RecordResult{}, false, err
	}
	if r.ID == "" {
		r.ID = uuid.NewString()
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = ledgerNow()
	}
	r.CreatedAt = r.CreatedAt.UTC().Truncate(time.Microsecond)
	rewardID := r.ID
	c.rewardID, c.dataMB, c.rewardAt = &rewardID, r.DataMB, r.CreatedAt
	c.budgetShard = s.shardTurns.take(campaignID, len(budgetShards(budgetMB, r.DataMB)))
	res, err := s.recordCounted(ctx, c)
	switch {
	case errors.Is(err, errBatchFailed):
		// Most likely this install's reward, or another's in the batch,
		// broke a reward rule: try again alone.
		return s.recordInstallRewardedAlone(ctx, in, r, c)
	case err != nil:
		return install.RecordResult{}, false, fmt.Errorf("postgres: record install: %w", err)
	case !res.inserted:
		// A replay or a later install of the number.
		rec, err := s.recordInstallAlone(ctx, in, true)
		return rec, false, err
	}
	return rewarded(in, r, campaignID, res.seq)
}

// rewarded completes in and r after their counted install was inserted,
// with the reward's seq (nil: not stored).
func rewarded(in *install.Install, r *reward.Reward, campaignID string, seq *int64) (install.RecordResult, bool, error) {
	in.Duplicate, in.CampaignID = false, campaignID
	if seq == nil {
		// Counted, but the home shard had no room (or the budget is not
		// set up yet): the ledger's slow path takes it from here.
		return install.RecordResult{}, false, nil
	}
	r.Seq, r.InstallID, r.CampaignID, r.TenantID = *seq, in.ID, campaignID, in.TenantID
	r.SubscriberID, r.MSISDN, r.DeviceID = in.SubscriberID, in.MSISDN, in.DeviceID
	r.UpdatedAt, r.Reason = r.CreatedAt, ""
	return install.RecordResult{}, true, nil
}

// recordInstallRewardedAlone is RecordInstallRewarded in a statement of
// its own, for c (newCountedInstall(in), with r's fields).
func (s *Store) recordInstallRewardedAlone(ctx context.Context, in *install.Install, r *reward.Reward, c countedInstall) (install.RecordResult, bool, error) {
	var (
		inserted int
		seq      *int64
	)
	err := s.pool.QueryRow(ctx, recordInstallRewardedSQL, c.id, c.subscriberID, c.installedAt, c.receivedAt,
		c.attributedAt, c.campaignID, c.tenantID, c.msisdn, c.deviceID, c.platform, c.region, c.via,
		c.referral, c.countShard, r.ID, r.DataMB, r.CreatedAt, c.budgetShard).Scan(&inserted, &seq)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			// A reward rule said no: record the install alone; the ledger
			// records the reward's rejection.
			res, err := s.recordInstallAlone(ctx, in, false)
			return res, false, err
		}
		return install.RecordResult{}, false, fmt.Errorf("postgres: record install: %w", err)
	}
	if inserted == 0 {
		// A replay or a later install of the number.
		res, err := s.recordInstallAlone(ctx, in, true)
		return res, false, err
	}
	return rewarded(in, r, *c.campaignID, seq)
}

func (s *Store) installByKey(ctx context.Context, k install.ReplayKey) (install.Install, bool, error) {
	in, err := scanInstall(s.pool.QueryRow(ctx, `SELECT `+installColumns+` FROM installs
		WHERE tenant_id = $1 AND device_id = $2 AND msisdn = $3 AND installed_at = $4`,
		k.TenantID, k.DeviceID, k.MSISDN, k.InstalledAt))
	if errors.Is(err, pgx.ErrNoRows) {
		return install.Install{}, false, nil
	}
	if err != nil {
		return install.Install{}, false, fmt.Errorf("postgres: install by key: %w", err)
	}
	return in, true, nil
}

// RecordClick counts a click on the install link with this code.
func (s *Store) RecordClick(ctx context.Context, code string, at time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO link_clicks AS l (campaign_id, subscriber_id, tenant_id, clicks, first_at, last_at)
		SELECT d.campaign_id, d.subscriber_id, d.tenant_id, 1, $2::timestamptz, $2::timestamptz
		FROM deliveries d WHERE d.referral_code = $1
		LIMIT 1
		ON CONFLICT (campaign_id, subscriber_id) DO UPDATE
		SET clicks = l.clicks + 1, last_at = GREATEST(l.last_at, EXCLUDED.last_at)`, code, at.UTC())
	if err != nil {
		return false, fmt.Errorf("postgres: record click: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// Clicks returns a campaign's install-link clicks: links clicked at least
// once, and clicks in all.
func (s *Store) Clicks(ctx context.Context, tenantID, campaignID string) (links, clicks int64, err error) {
	key, ok := ledgerUUID(campaignID)
	if !ok {
		return 0, 0, nil
	}
	err = s.pool.QueryRow(ctx, `SELECT count(*), COALESCE(sum(clicks), 0)::bigint FROM link_clicks
		WHERE campaign_id = $1 AND tenant_id = $2`, key, tenantID).Scan(&links, &clicks)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: clicks: %w", err)
	}
	return links, clicks, nil
}

// InstallCounts returns the tenant's counted installs by region.
func (s *Store) InstallCounts(ctx context.Context, tenantID string) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT region, sum(installs)::bigint FROM install_counts
		WHERE tenant_id = $1 GROUP BY region`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("postgres: install counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var region string
		var n int64
		if err := rows.Scan(&region, &n); err != nil {
			return nil, fmt.Errorf("postgres: install counts: %w", err)
		}
		if n != 0 {
			out[region] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: install counts: %w", err)
	}
	return out, nil
}

// AddInstallCounts adds installs counted outside this engine (a backfill of
// the app's own figures, or a fixture) to the tenant's counts by region.
func (s *Store) AddInstallCounts(ctx context.Context, tenantID string, counts map[string]int64) error {
	b := &pgx.Batch{}
	for region, n := range counts {
		b.Queue(`INSERT INTO install_counts AS ic (tenant_id, region, shard, installs) VALUES ($1, $2, 0, $3)
			ON CONFLICT (tenant_id, region, shard) DO UPDATE SET installs = ic.installs + EXCLUDED.installs`,
			tenantID, region, n)
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: add install counts: %w", err)
	}
	return nil
}

// CampaignRewardStats reports a campaign's counted installs and its granted
// rewards (campaign.RewardStats).
func (s *Store) CampaignRewardStats(ctx context.Context, tenantID, campaignID string) (installs, granted, mb int64, err error) {
	key, ok := ledgerUUID(campaignID)
	if !ok {
		return 0, 0, 0, nil
	}
	err = s.pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM installs WHERE campaign_id = $1 AND NOT duplicate AND tenant_id = $2),
			count(*), COALESCE(sum(data_mb), 0)::bigint
		FROM rewards WHERE campaign_id = $1 AND state = 'granted' AND tenant_id = $2`, key, tenantID).
		Scan(&installs, &granted, &mb)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("postgres: campaign reward stats: %w", err)
	}
	return installs, granted, mb, nil
}
