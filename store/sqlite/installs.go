package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"outreach/campaign"
	"outreach/install"
	"outreach/reward"
)

var (
	_ install.Store        = (*Store)(nil)
	_ campaign.RewardStats = (*Store)(nil)
)

// Installs and rewards keep their own small helpers, apart from the
// campaign files'.

// ledgerLayout is the stored form of every time (fixed width, UTC).
const ledgerLayout = "2006-01-02T15:04:05.000000Z"

func ledgerStamp(t time.Time) string { return t.UTC().Format(ledgerLayout) }

func ledgerStampPtr(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return ledgerStamp(*t)
}

func ledgerUnstamp(s string) (time.Time, error) {
	t, err := time.Parse(ledgerLayout, s)
	if err != nil {
		if t2, err2 := time.Parse(time.RFC3339Nano, s); err2 == nil {
			return t2.UTC(), nil
		}
		return time.Time{}, fmt.Errorf("sqlite: bad time %q: %w", s, err)
	}
	return t, nil
}

func ledgerUnstampNull(ns sql.NullString) (*time.Time, error) {
	if !ns.Valid || ns.String == "" {
		return nil, nil
	}
	t, err := ledgerUnstamp(ns.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// ledgerUUID normalises a uuid; ok is false when s is none.
func ledgerUUID(s string) (string, bool) {
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

type ledgerScanner interface{ Scan(dest ...any) error }

func ledgerNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func ledgerNullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func ledgerReward(raw sql.NullString) (*campaign.Reward, error) {
	if !raw.Valid || raw.String == "" || raw.String == "null" {
		return nil, nil
	}
	r := new(campaign.Reward)
	if err := json.Unmarshal([]byte(raw.String), r); err != nil {
		return nil, fmt.Errorf("sqlite: campaign reward: %w", err)
	}
	return r, nil
}

// InstallTarget finds one of the tenant's subscribers by number.
func (s *Store) InstallTarget(ctx context.Context, tenantID, msisdn string) (install.Target, bool, error) {
	t := install.Target{MSISDN: msisdn}
	err := s.db.QueryRowContext(ctx, `SELECT id, region FROM subscribers WHERE tenant_id = ? AND msisdn = ?`,
		tenantID, msisdn).Scan(&t.SubscriberID, &t.Region)
	if errors.Is(err, sql.ErrNoRows) {
		return install.Target{}, false, nil
	}
	if err != nil {
		return install.Target{}, false, fmt.Errorf("sqlite: install target: %w", err)
	}
	return t, true, nil
}

// AttributionByReferral finds the tenant's install-promotion delivery with
// this referral code.
func (s *Store) AttributionByReferral(ctx context.Context, tenantID, code string) (install.Attribution, bool, error) {
	var (
		a      install.Attribution
		sentAt string
		raw    sql.NullString
	)
	err := s.db.QueryRowContext(ctx, `SELECT d.campaign_id, d.subscriber_id, s.msisdn, s.region,
			COALESCE(d.sent_at, d.created_at), c.reward
		FROM deliveries d
		JOIN campaigns c ON c.id = d.campaign_id
		JOIN subscribers s ON s.id = d.subscriber_id
		WHERE d.referral_code = ? AND d.tenant_id = ? AND c.kind = 'install_promotion'
		ORDER BY d.sent_at IS NULL, d.sent_at DESC
		LIMIT 1`, code, tenantID).
		Scan(&a.CampaignID, &a.Target.SubscriberID, &a.Target.MSISDN, &a.Target.Region, &sentAt, &raw)
	if errors.Is(err, sql.ErrNoRows) {
		return install.Attribution{}, false, nil
	}
	if err != nil {
		return install.Attribution{}, false, fmt.Errorf("sqlite: attribution by referral: %w", err)
	}
	if a.SentAt, err = ledgerUnstamp(sentAt); err != nil {
		return install.Attribution{}, false, err
	}
	if a.Reward, err = ledgerReward(raw); err != nil {
		return install.Attribution{}, false, err
	}
	return a, true, nil
}

// LastPromotion finds the most recent install-promotion message sent to
// the subscriber within its campaign's attribution window before at.
func (s *Store) LastPromotion(ctx context.Context, tenantID string, subscriberID int64, at time.Time, defaultDays int) (install.Attribution, bool, error) {
	var (
		a      = install.Attribution{Target: install.Target{SubscriberID: subscriberID}}
		sentAt string
		raw    sql.NullString
	)
	maxDays := max(campaign.MaxAttributionDays, defaultDays)
	// The window's opening is at less the campaign's days, as a stamp
	// (date arithmetic on the date part, the time kept to the microsecond:
	// julianday keeps milliseconds only, and widened the window by up to one).
	err := s.db.QueryRowContext(ctx, `SELECT d.campaign_id, d.sent_at, c.reward
		FROM deliveries d
		JOIN campaigns c ON c.id = d.campaign_id
		WHERE d.subscriber_id = ?1 AND d.kind_marketing AND d.sent_at IS NOT NULL
		  AND d.sent_at <= ?6 AND d.sent_at >= ?3
		  AND d.tenant_id = ?4 AND d.status IN ('sent', 'delivered') AND c.kind = 'install_promotion'
		  AND d.sent_at >= date(?2, '-' || COALESCE(json_extract(c.reward, '$.attribution_days'), ?5) || ' days') || substr(?2, 11)
		ORDER BY d.sent_at DESC
		LIMIT 1`, subscriberID, ledgerStamp(at), ledgerStamp(at.AddDate(0, 0, -maxDays)), tenantID, defaultDays,
		ledgerStamp(at.Add(reward.InstallSkew))).
		Scan(&a.CampaignID, &sentAt, &raw)
	if errors.Is(err, sql.ErrNoRows) {
		return install.Attribution{}, false, nil
	}
	if err != nil {
		return install.Attribution{}, false, fmt.Errorf("sqlite: last promotion: %w", err)
	}
	if a.SentAt, err = ledgerUnstamp(sentAt); err != nil {
		return install.Attribution{}, false, err
	}
	if a.Reward, err = ledgerReward(raw); err != nil {
		return install.Attribution{}, false, err
	}
	return a, true, nil
}

const sqliteInstallColumns = `id, tenant_id, COALESCE(subscriber_id, 0), msisdn, device_id, platform,
	installed_at, received_at, attributed_at, COALESCE(campaign_id, ''), duplicate, region, via,
	COALESCE(referral_code, '')`

func scanSQLiteInstall(r ledgerScanner) (install.Install, error) {
	var (
		in                      install.Install
		installedAt, receivedAt string
		attributedAt            sql.NullString
	)
	if err := r.Scan(&in.ID, &in.TenantID, &in.SubscriberID, &in.MSISDN, &in.DeviceID, &in.Platform,
		&installedAt, &receivedAt, &attributedAt, &in.CampaignID, &in.Duplicate, &in.Region, &in.Via,
		&in.ReferralCode); err != nil {
		return in, err
	}
	var err error
	if in.InstalledAt, err = ledgerUnstamp(installedAt); err != nil {
		return in, err
	}
	if in.ReceivedAt, err = ledgerUnstamp(receivedAt); err != nil {
		return in, err
	}
	in.AttributedAt, err = ledgerUnstampNull(attributedAt)
	return in, err
}

// RecordInstall stores an install: counted, duplicate, or a replay of one
// stored (see install.Store), in one transaction.
func (s *Store) RecordInstall(ctx context.Context, in *install.Install) (install.RecordResult, error) {
	if in.ID == "" {
		in.ID = uuid.NewString()
	}
	var subID any
	if in.SubscriberID != 0 {
		subID = in.SubscriberID
	}
	campaignID := any(nil)
	if in.CampaignID != "" {
		key, ok := ledgerUUID(in.CampaignID)
		if !ok {
			return install.RecordResult{}, fmt.Errorf("sqlite: record install: campaign id %q is no uuid", in.CampaignID)
		}
		campaignID, in.CampaignID = key, key
	}
	in.InstalledAt = in.InstalledAt.UTC().Truncate(time.Microsecond)
	in.ReceivedAt = in.ReceivedAt.UTC().Truncate(time.Microsecond)
	installedAt := ledgerStamp(in.InstalledAt)

	// A replay is answered from a plain read, without queueing for the
	// write lock (SQLite's busy handler sleeps while another holds it).
	if stored, err := scanSQLiteInstall(s.db.QueryRowContext(ctx, `SELECT `+sqliteInstallColumns+` FROM installs
		WHERE tenant_id = ? AND device_id = ? AND msisdn = ? AND installed_at = ?`,
		in.TenantID, in.DeviceID, in.MSISDN, installedAt)); err == nil {
		*in = stored
		return install.RecordResult{Replay: true}, nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return install.RecordResult{}, fmt.Errorf("sqlite: install by key: %w", err)
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return install.RecordResult{}, fmt.Errorf("sqlite: record install: %w", err)
	}
	defer tx.Rollback()
	insert := func(duplicate bool) (bool, error) {
		res, err := tx.ExecContext(ctx, `INSERT INTO installs (id, tenant_id, subscriber_id, msisdn, device_id,
				platform, installed_at, received_at, attributed_at, campaign_id, duplicate, region, via, referral_code)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`,
			in.ID, in.TenantID, subID, in.MSISDN, in.DeviceID, string(in.Platform), installedAt,
			ledgerStamp(in.ReceivedAt), ledgerStampPtr(in.AttributedAt), campaignID, duplicate, in.Region,
			string(in.Via), ledgerNullString(in.ReferralCode))
		if err != nil {
			return false, fmt.Errorf("sqlite: record install: %w", err)
		}
		n, err := res.RowsAffected()
		return n == 1, err
	}
	replay := func() (bool, error) {
		stored, err := scanSQLiteInstall(tx.QueryRowContext(ctx, `SELECT `+sqliteInstallColumns+` FROM installs
			WHERE tenant_id = ? AND device_id = ? AND msisdn = ? AND installed_at = ?`,
			in.TenantID, in.DeviceID, in.MSISDN, installedAt))
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("sqlite: install by key: %w", err)
		}
		*in = stored
		return true, nil
	}

	counted, err := insert(false)
	if err != nil {
		return install.RecordResult{}, err
	}
	if counted {
		in.Duplicate = false
		if subID != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE subscribers SET installed = 1, installed_at = ?, updated_at = ?
				WHERE id = ? AND installed = 0`, installedAt, ledgerStamp(in.ReceivedAt), subID); err != nil {
				return install.RecordResult{}, fmt.Errorf("sqlite: mark installed: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO install_counts (tenant_id, region, installs) VALUES (?, ?, 1)
			ON CONFLICT (tenant_id, region) DO UPDATE SET installs = installs + 1`, in.TenantID, in.Region); err != nil {
			return install.RecordResult{}, fmt.Errorf("sqlite: count install: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return install.RecordResult{}, fmt.Errorf("sqlite: record install: %w", err)
		}
		return install.RecordResult{}, nil
	}
	if found, err := replay(); err != nil || found {
		return install.RecordResult{Replay: found}, err
	}
	dup, err := insert(true)
	if err != nil {
		return install.RecordResult{}, err
	}
	if !dup {
		// The transaction holds the write lock, so the only conflict left
		// is the replay key, which replay() did not find: a new id clash.
		return install.RecordResult{}, fmt.Errorf("sqlite: record install: unexpected conflict")
	}
	in.Duplicate = true
	if err := tx.Commit(); err != nil {
		return install.RecordResult{}, fmt.Errorf("sqlite: record install: %w", err)
	}
	return install.RecordResult{}, nil
}

// RecordClick counts a click on the install link with this code.
func (s *Store) RecordClick(ctx context.Context, code string, at time.Time) (bool, error) {
	stamp := ledgerStamp(at)
	res, err := s.db.ExecContext(ctx, `INSERT INTO link_clicks (campaign_id, subscriber_id, tenant_id, clicks, first_at, last_at)
		SELECT d.campaign_id, d.subscriber_id, d.tenant_id, 1, ?2, ?2
		FROM deliveries d WHERE d.referral_code = ?1
		LIMIT 1
		ON CONFLICT (campaign_id, subscriber_id) DO UPDATE
		SET clicks = clicks + 1, last_at = max(last_at, excluded.last_at)`, code, stamp)
	if err != nil {
		return false, fmt.Errorf("sqlite: record click: %w", err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Clicks returns a campaign's install-link clicks: links clicked at least
// once, and clicks in all.
func (s *Store) Clicks(ctx context.Context, tenantID, campaignID string) (links, clicks int64, err error) {
	key, ok := ledgerUUID(campaignID)
	if !ok {
		return 0, 0, nil
	}
	err = s.db.QueryRowContext(ctx, `SELECT count(*), COALESCE(sum(clicks), 0) FROM link_clicks
		WHERE campaign_id = ? AND tenant_id = ?`, key, tenantID).Scan(&links, &clicks)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: clicks: %w", err)
	}
	return links, clicks, nil
}

// InstallCounts returns the tenant's counted installs by region.
func (s *Store) InstallCounts(ctx context.Context, tenantID string) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT region, installs FROM install_counts WHERE tenant_id = ?`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: install counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var region string
		var n int64
		if err := rows.Scan(&region, &n); err != nil {
			return nil, fmt.Errorf("sqlite: install counts: %w", err)
		}
		if n != 0 {
			out[region] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: install counts: %w", err)
	}
	return out, nil
}

// AddInstallCounts adds installs counted outside this engine (a backfill of
// the app's own figures, or a fixture) to the tenant's counts by region.
func (s *Store) AddInstallCounts(ctx context.Context, tenantID string, counts map[string]int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: add install counts: %w", err)
	}
	defer tx.Rollback()
	for region, n := range counts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO install_counts (tenant_id, region, installs) VALUES (?, ?, ?)
			ON CONFLICT (tenant_id, region) DO UPDATE SET installs = installs + excluded.installs`,
			tenantID, region, n); err != nil {
			return fmt.Errorf("sqlite: add install counts: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: add install counts: %w", err)
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
	err = s.db.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM installs WHERE campaign_id = ?1 AND NOT duplicate AND tenant_id = ?2),
			count(*), COALESCE(sum(data_mb), 0)
		FROM rewards WHERE campaign_id = ?1 AND state = 'granted' AND tenant_id = ?2`, key, tenantID).
		Scan(&installs, &granted, &mb)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("sqlite: campaign reward stats: %w", err)
	}
	return installs, granted, mb, nil
}
