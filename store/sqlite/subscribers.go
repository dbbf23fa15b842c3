package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"outreach/internal/apperr"
	"outreach/subscriber"
)

var _ subscriber.Store = (*Store)(nil)

// The upsert runs per row inside one transaction with prepared statements:
// SQLite has no COPY, and within one transaction a row costs a few
// microseconds. An insert that meets an existing number does nothing, then
// an update changes only what differs (an empty region or locale keeps the
// stored one, attributes merge), so re-importing a base rewrites nothing.
const (
	// A number whose install came before it joined the base is installed.
	// One that sent STOP before it joined the base is opted out.
	subInsertSQL = `INSERT INTO subscribers (tenant_id, msisdn, region, locale, attributes, created_at, updated_at,
			installed, installed_at, opted_out, opted_out_at)
		SELECT ?1, ?2, ?3, COALESCE(NULLIF(?4, ''), 'vi'), ?5, ?6, ?6, i.installed_at IS NOT NULL, i.installed_at,
			o.msisdn IS NOT NULL, o.opted_out_at
		FROM (SELECT 1) LEFT JOIN installs i ON i.tenant_id = ?1 AND i.msisdn = ?2 AND NOT i.duplicate
		LEFT JOIN number_opt_outs o ON o.msisdn = ?2
		WHERE true
		ON CONFLICT (tenant_id, msisdn) DO NOTHING`
	subUpdateSQL = `UPDATE subscribers SET
			region = COALESCE(NULLIF(?3, ''), region),
			locale = COALESCE(NULLIF(?4, ''), locale),
			attributes = json_patch(attributes, ?5),
			alert_only = 0,
			created_at = CASE WHEN alert_only THEN ?6 ELSE created_at END,
			updated_at = ?6
		WHERE tenant_id = ?1 AND msisdn = ?2 AND (
			alert_only OR
			region IS NOT COALESCE(NULLIF(?3, ''), region) OR
			locale IS NOT COALESCE(NULLIF(?4, ''), locale) OR
			attributes IS NOT json_patch(attributes, ?5))
		RETURNING id, created_at = ?6`
	subIDSQL     = `SELECT id FROM subscribers WHERE tenant_id = ? AND msisdn = ?`
	subMemberSQL = `INSERT INTO list_members (list_id, subscriber_id) VALUES (?, ?) ON CONFLICT DO NOTHING`
)

// UpsertSubscribers writes one batch in one transaction. Updated counts
// every row that did not create a subscriber (including a number repeated
// within the batch), so that Inserted+Updated = len(rows).
func (s *Store) UpsertSubscribers(ctx context.Context, tenantID string, rows []subscriber.Row, list string) (subscriber.UpsertResult, error) {
	if len(rows) == 0 && list == "" {
		return subscriber.UpsertResult{}, nil
	}
	merged := subscriber.MergeRows(rows)
	// Index order keeps the B-tree writes local.
	slices.SortFunc(merged, func(a, b subscriber.Row) int { return strings.Compare(a.MSISDN, b.MSISDN) })
	now := coreStamp(time.Now())

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return subscriber.UpsertResult{}, fmt.Errorf("sqlite: upsert subscribers: %w", err)
	}
	defer tx.Rollback()
	if err := subTenantExists(ctx, tx, tenantID); err != nil {
		return subscriber.UpsertResult{}, err
	}
	var listID int64
	if list != "" {
		if listID, err = subEnsureList(ctx, tx, tenantID, list, now); err != nil {
			return subscriber.UpsertResult{}, err
		}
	}
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = tx.PrepareContext(ctx, q)
		return st
	}
	ins, upd, byID, member := prep(subInsertSQL), prep(subUpdateSQL), prep(subIDSQL), prep(subMemberSQL)
	if err != nil {
		return subscriber.UpsertResult{}, fmt.Errorf("sqlite: upsert subscribers: prepare: %w", err)
	}
	defer func() {
		for _, st := range []*sql.Stmt{ins, upd, byID, member} {
			st.Close()
		}
	}()

	inserted := 0
	for i := range merged {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return subscriber.UpsertResult{}, err
			}
		}
		r := &merged[i]
		attrs := subEncodeAttributes(r.Attributes)
		res, err := ins.ExecContext(ctx, tenantID, r.MSISDN, r.Region, r.Locale, attrs, now)
		if err != nil {
			return subscriber.UpsertResult{}, fmt.Errorf("sqlite: upsert subscribers: insert: %w", err)
		}
		var id int64
		if n, _ := res.RowsAffected(); n == 1 {
			inserted++
			if id, err = res.LastInsertId(); err != nil {
				return subscriber.UpsertResult{}, fmt.Errorf("sqlite: upsert subscribers: %w", err)
			}
		} else {
			// A number only an alert named (alert_only) joins the base as
			// new: counted inserted and created now, so that neither the
			// answer nor created_at tells that it was an alert's contact.
			var joined bool
			err := upd.QueryRowContext(ctx, tenantID, r.MSISDN, r.Region, r.Locale, attrs, now).Scan(&id, &joined)
			if joined {
				inserted++
			}
			if errors.Is(err, sql.ErrNoRows) && list != "" {
				err = byID.QueryRowContext(ctx, tenantID, r.MSISDN).Scan(&id) // unchanged row
			}
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return subscriber.UpsertResult{}, fmt.Errorf("sqlite: upsert subscribers: update: %w", err)
			}
		}
		if list != "" {
			if _, err := member.ExecContext(ctx, listID, id); err != nil {
				return subscriber.UpsertResult{}, fmt.Errorf("sqlite: upsert subscribers: list member: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return subscriber.UpsertResult{}, fmt.Errorf("sqlite: upsert subscribers: commit: %w", err)
	}
	return subscriber.UpsertResult{Inserted: inserted, Updated: len(rows) - inserted}, nil
}

type subQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// subTenantExists answers apperr.ErrNotFound for an unknown tenant. The
// subscriber tables carry no foreign key to tenants (see 0001_core.sql).
func subTenantExists(ctx context.Context, q subQuerier, tenantID string) error {
	var ok bool
	if err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM tenants WHERE id = ?)`, tenantID).Scan(&ok); err != nil {
		return fmt.Errorf("sqlite: tenant: %w", err)
	}
	if !ok {
		return apperr.NotFound("tenant")
	}
	return nil
}

// subEnsureList returns the id of the tenant's list, creating it if needed.
func subEnsureList(ctx context.Context, tx *sql.Tx, tenantID, name, now string) (int64, error) {
	if _, err := tx.ExecContext(ctx, `INSERT INTO lists (tenant_id, name, created_at) VALUES (?, ?, ?)
		ON CONFLICT (tenant_id, name) DO NOTHING`, tenantID, name, now); err != nil {
		return 0, fmt.Errorf("sqlite: ensure list: %w", err)
	}
	var id int64
	if err := tx.QueryRowContext(ctx, `SELECT id FROM lists WHERE tenant_id = ? AND name = ?`, tenantID, name).Scan(&id); err != nil {
		return 0, fmt.Errorf("sqlite: ensure list: %w", err)
	}
	return id, nil
}

func subEncodeAttributes(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, err := json.Marshal(m)
	if err != nil { // a map[string]string always marshals
		panic(err)
	}
	return string(b)
}

// EnsureSubscribers creates bare subscribers for unknown numbers and returns
// the id of every number.
func (s *Store) EnsureSubscribers(ctx context.Context, tenantID string, msisdns []string) (map[string]int64, error) {
	uniq := slices.Clone(msisdns)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	now := coreStamp(time.Now())
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: ensure subscribers: %w", err)
	}
	defer tx.Rollback()
	if err := subTenantExists(ctx, tx, tenantID); err != nil {
		return nil, err
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO subscribers (tenant_id, msisdn, alert_only, created_at, updated_at,
			installed, installed_at, opted_out, opted_out_at)
		SELECT ?1, ?2, 1, ?3, ?3, i.installed_at IS NOT NULL, i.installed_at, o.msisdn IS NOT NULL, o.opted_out_at
		FROM (SELECT 1) LEFT JOIN installs i ON i.tenant_id = ?1 AND i.msisdn = ?2 AND NOT i.duplicate
		LEFT JOIN number_opt_outs o ON o.msisdn = ?2
		WHERE true ON CONFLICT (tenant_id, msisdn) DO NOTHING`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: ensure subscribers: %w", err)
	}
	defer ins.Close()
	byID, err := tx.PrepareContext(ctx, subIDSQL)
	if err != nil {
		return nil, fmt.Errorf("sqlite: ensure subscribers: %w", err)
	}
	defer byID.Close()
	ids := make(map[string]int64, len(uniq))
	for _, m := range uniq {
		res, err := ins.ExecContext(ctx, tenantID, m, now)
		if err != nil {
			return nil, fmt.Errorf("sqlite: ensure subscribers: %w", err)
		}
		var id int64
		if n, _ := res.RowsAffected(); n == 1 {
			id, err = res.LastInsertId()
		} else {
			err = byID.QueryRowContext(ctx, tenantID, m).Scan(&id)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: ensure subscribers: %w", err)
		}
		ids[m] = id
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: ensure subscribers: %w", err)
	}
	return ids, nil
}

// GetSubscriber returns one subscriber with devices and lists.
func (s *Store) GetSubscriber(ctx context.Context, tenantID, msisdn string) (subscriber.Subscriber, error) {
	var sub subscriber.Subscriber
	var attrs, created, updated string
	var installedAt sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT id, tenant_id, msisdn, region, locale, attributes,
			opted_out, installed, installed_at, created_at, updated_at, alert_only
		FROM subscribers WHERE tenant_id = ? AND msisdn = ?`, tenantID, msisdn).
		Scan(&sub.ID, &sub.TenantID, &sub.MSISDN, &sub.Region, &sub.Locale, &attrs,
			&sub.OptedOut, &sub.Installed, &installedAt, &created, &updated, &sub.AlertOnly)
	if errors.Is(err, sql.ErrNoRows) {
		return subscriber.Subscriber{}, apperr.NotFound("subscriber")
	}
	if err != nil {
		return subscriber.Subscriber{}, fmt.Errorf("sqlite: get subscriber: %w", err)
	}
	sub.Attributes = map[string]string{}
	if err := json.Unmarshal([]byte(attrs), &sub.Attributes); err != nil {
		return subscriber.Subscriber{}, fmt.Errorf("sqlite: get subscriber: attributes: %w", err)
	}
	if sub.CreatedAt, err = coreUnstamp(created); err != nil {
		return subscriber.Subscriber{}, err
	}
	if sub.UpdatedAt, err = coreUnstamp(updated); err != nil {
		return subscriber.Subscriber{}, err
	}
	if installedAt.Valid && installedAt.String != "" {
		t, err := coreUnstamp(installedAt.String)
		if err != nil {
			return subscriber.Subscriber{}, err
		}
		sub.InstalledAt = &t
	}

	sub.Devices = []subscriber.Device{}
	rows, err := s.db.QueryContext(ctx, `SELECT platform, token, created_at FROM devices
		WHERE subscriber_id = ? ORDER BY created_at, platform, token`, sub.ID)
	if err != nil {
		return subscriber.Subscriber{}, fmt.Errorf("sqlite: get subscriber: devices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d subscriber.Device
		var p, at string
		if err := rows.Scan(&p, &d.Token, &at); err != nil {
			return subscriber.Subscriber{}, fmt.Errorf("sqlite: get subscriber: devices: %w", err)
		}
		d.Platform = subscriber.Platform(p)
		if d.CreatedAt, err = coreUnstamp(at); err != nil {
			return subscriber.Subscriber{}, err
		}
		sub.Devices = append(sub.Devices, d)
	}
	if err := rows.Err(); err != nil {
		return subscriber.Subscriber{}, fmt.Errorf("sqlite: get subscriber: devices: %w", err)
	}
	rows.Close()

	sub.Lists = []string{}
	rows, err = s.db.QueryContext(ctx, `SELECT l.name FROM list_members m JOIN lists l ON l.id = m.list_id
		WHERE m.subscriber_id = ? ORDER BY l.name`, sub.ID)
	if err != nil {
		return subscriber.Subscriber{}, fmt.Errorf("sqlite: get subscriber: lists: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return subscriber.Subscriber{}, fmt.Errorf("sqlite: get subscriber: lists: %w", err)
		}
		sub.Lists = append(sub.Lists, name)
	}
	if err := rows.Err(); err != nil {
		return subscriber.Subscriber{}, fmt.Errorf("sqlite: get subscriber: lists: %w", err)
	}
	return sub, nil
}

// PutDevice registers a push token for a known subscriber; idempotent.
//
// A token is one app install on one phone, so within the tenant it belongs
// to this subscriber alone, on this platform: the unique (tenant_id, token)
// key moves a token registered on another number (the phone changed hands,
// the app was reinstalled under another number) or on another platform to
// this registration, in the same transaction as the look-up of the
// subscriber. Re-registering the same device changes nothing, its creation
// time included.
func (s *Store) PutDevice(ctx context.Context, tenantID, msisdn string, d subscriber.Device) error {
	if err := subValidateDevice(d); err != nil {
		return err
	}
	at := d.CreatedAt
	if at.IsZero() {
		at = time.Now()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: put device: %w", err)
	}
	defer tx.Rollback()
	var id int64
	err = tx.QueryRowContext(ctx, subIDSQL, tenantID, msisdn).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return apperr.NotFound("subscriber")
	}
	if err != nil {
		return fmt.Errorf("sqlite: put device: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO devices (tenant_id, subscriber_id, platform, token, created_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, token) DO UPDATE SET
			subscriber_id = excluded.subscriber_id,
			platform = excluded.platform,
			created_at = excluded.created_at
		WHERE subscriber_id IS NOT excluded.subscriber_id OR platform IS NOT excluded.platform`,
		tenantID, id, string(d.Platform), d.Token, coreStamp(at)); err != nil {
		return fmt.Errorf("sqlite: put device: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: put device: %w", err)
	}
	return nil
}

func subValidateDevice(d subscriber.Device) error {
	fe := apperr.FieldErrors{}
	if d.Platform != subscriber.PlatformFCM && d.Platform != subscriber.PlatformAPNs {
		fe.Add("platform", "must be fcm or apns")
	}
	if strings.TrimSpace(d.Token) == "" {
		fe.Add("token", "is required")
	}
	return fe.Err()
}

// RemoveDevice deletes a push token from the tenant, whichever subscriber
// holds it (the (tenant_id, token) key finds it); removing an unknown token
// is not an error.
func (s *Store) RemoveDevice(ctx context.Context, tenantID string, platform subscriber.Platform, token string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM devices WHERE tenant_id = ? AND platform = ? AND token = ?`,
		tenantID, string(platform), token); err != nil {
		return fmt.Errorf("sqlite: remove device: %w", err)
	}
	return nil
}

// SetOptOut sets or clears the marketing opt-out; opted_out_at keeps the
// time of the first opt-out until the subscriber opts back in.
func (s *Store) SetOptOut(ctx context.Context, tenantID, msisdn string, optedOut bool) error {
	res, err := s.db.ExecContext(ctx, `UPDATE subscribers SET
			opted_out = ?3,
			opted_out_at = CASE WHEN NOT ?3 THEN NULL WHEN opted_out THEN opted_out_at ELSE ?4 END,
			updated_at = ?4
		WHERE tenant_id = ?1 AND msisdn = ?2`, tenantID, msisdn, optedOut, coreStamp(time.Now()))
	if err != nil {
		return fmt.Errorf("sqlite: set opt-out: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return apperr.NotFound("subscriber")
	}
	return nil
}

// ReplaceRegions replaces the tenant's region table in one transaction; a
// code given twice keeps its last row.
func (s *Store) ReplaceRegions(ctx context.Context, tenantID string, regions []subscriber.Region) error {
	for i, r := range regions {
		if r.Code == "" {
			return apperr.FieldErrors{fmt.Sprintf("regions[%d].code", i): "is required"}
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: replace regions: %w", err)
	}
	defer tx.Rollback()
	if err := subTenantExists(ctx, tx, tenantID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM regions WHERE tenant_id = ?`, tenantID); err != nil {
		return fmt.Errorf("sqlite: replace regions: %w", err)
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO regions (tenant_id, code, name, population) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id, code) DO UPDATE SET name = excluded.name, population = excluded.population`)
	if err != nil {
		return fmt.Errorf("sqlite: replace regions: %w", err)
	}
	defer ins.Close()
	for _, r := range regions {
		if _, err := ins.ExecContext(ctx, tenantID, r.Code, r.Name, r.Population); err != nil {
			return fmt.Errorf("sqlite: replace regions: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: replace regions: %w", err)
	}
	return nil
}

// ListExists reports whether the tenant has a list of that name.
func (s *Store) ListExists(ctx context.Context, tenantID, name string) (bool, error) {
	var ok bool
	err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM lists WHERE tenant_id = ? AND name = ?)`, tenantID, name).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("sqlite: list exists: %w", err)
	}
	return ok, nil
}

// ListRegions returns the tenant's regions ordered by code.
func (s *Store) ListRegions(ctx context.Context, tenantID string) ([]subscriber.Region, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT code, name, population FROM regions WHERE tenant_id = ? ORDER BY code`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list regions: %w", err)
	}
	defer rows.Close()
	out := []subscriber.Region{}
	for rows.Next() {
		var g subscriber.Region
		if err := rows.Scan(&g.Code, &g.Name, &g.Population); err != nil {
			return nil, fmt.Errorf("sqlite: list regions: %w", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list regions: %w", err)
	}
	return out, nil
}

// UpsertTuning asks subscriber.Importer for batches of 20,000 rows, written
// one at a time (SQLite has one writer). New numbers land all over the
// unique index, so a batch rewrites about one index page per row into the
// WAL and again at checkpoint; a bigger batch shares each page among more
// rows (1M-row import: 20k rows/s at 5,000 per batch, 28k at 20,000, 39k
// at 50,000, for more memory).
func (s *Store) UpsertTuning() (batchSize, writers int) { return 20_000, 1 }
