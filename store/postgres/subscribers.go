package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"outreach/internal/apperr"
	"outreach/subscriber"
)

var _ subscriber.Store = (*Store)(nil)

// subscriberStage is the per-connection temporary table a bulk upsert
// COPYs into before one INSERT … SELECT … ON CONFLICT moves it into
// subscribers. ON COMMIT DELETE ROWS empties it at the end of each
// transaction, so the table is created once per connection, not per batch.
const subscriberStage = "subscriber_upsert_stage"

const createSubscriberStage = `CREATE TEMP TABLE IF NOT EXISTS ` + subscriberStage + ` (
	msisdn     text NOT NULL,
	region     text NOT NULL,
	locale     text NOT NULL,
	attributes jsonb NOT NULL
) ON COMMIT DELETE ROWS`

// upsertFromStage moves staged rows into subscribers and answers how many
// were new (xmax = 0 only for a freshly inserted tuple). An empty region or
// locale keeps the stored one; attributes merge; opt-out and install state
// are never touched (a new subscriber whose number installed, or sent STOP,
// before it joined the base starts installed, or opted out). A row whose values would not change is not rewritten
// (no dead tuple, no WAL), which makes re-importing a base cheap. Rows go
// in MSISDN order so that concurrent imports lock rows in the same order.
// %s: the locale filter of this pass, the locale to insert, the locale to
// set on conflict.
const upsertFromStage = `WITH up AS (
	INSERT INTO subscribers AS s (tenant_id, msisdn, region, locale, attributes, installed, installed_at,
		opted_out, opted_out_at)
	SELECT $1, u.msisdn, u.region, %[2]s, u.attributes, i.installed_at IS NOT NULL, i.installed_at,
		o.msisdn IS NOT NULL, o.opted_out_at
	FROM ` + subscriberStage + ` u
	-- A number whose install came before it joined the base is installed.
	LEFT JOIN installs i ON i.tenant_id = $1 AND i.msisdn = u.msisdn AND NOT i.duplicate
	-- A number that sent STOP before it joined the base is opted out.
	LEFT JOIN number_opt_outs o ON o.msisdn = u.msisdn
	WHERE %[1]s ORDER BY u.msisdn
	ON CONFLICT (tenant_id, msisdn) DO UPDATE SET
		region = COALESCE(NULLIF(EXCLUDED.region, ''), s.region),
		locale = %[3]s,
		attributes = s.attributes || EXCLUDED.attributes,
		alert_only = false,
		-- A number only an alert named joins the base as new (created now,
		-- counted inserted): neither tells that it was an alert's contact.
		created_at = CASE WHEN s.alert_only THEN now() ELSE s.created_at END,
		updated_at = now()
	WHERE (s.region, s.locale, s.attributes, s.alert_only) IS DISTINCT FROM
		(COALESCE(NULLIF(EXCLUDED.region, ''), s.region), %[3]s, s.attributes || EXCLUDED.attributes, false)
	RETURNING xmax = 0 OR s.created_at = now() AS inserted
)
SELECT count(*) FILTER (WHERE inserted) FROM up`

var (
	upsertWithLocale    = fmt.Sprintf(upsertFromStage, `u.locale <> ''`, `u.locale`, `EXCLUDED.locale`)
	upsertKeepingLocale = fmt.Sprintf(upsertFromStage, `u.locale = ''`, `'vi'`, `s.locale`)
)

// UpsertSubscribers writes one batch: COPY into a staging table, then one
// set-based upsert. Updated counts every row that did not create a
// subscriber (including a number repeated within the batch), so that
// Inserted+Updated = len(rows).
func (s *Store) UpsertSubscribers(ctx context.Context, tenantID string, rows []subscriber.Row, list string) (subscriber.UpsertResult, error) {
	if len(rows) == 0 && list == "" {
		return subscriber.UpsertResult{}, nil
	}
	merged := subscriber.MergeRows(rows)
	slices.SortFunc(merged, func(a, b subscriber.Row) int { return strings.Compare(a.MSISDN, b.MSISDN) })
	withLocale := 0
	attrs := make([][]byte, len(merged))
	for i, r := range merged {
		if r.Locale != "" {
			withLocale++
		}
		attrs[i] = subEncodeAttributes(r.Attributes)
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return subscriber.UpsertResult{}, fmt.Errorf("postgres: upsert subscribers: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := subTenantExists(ctx, tx, tenantID); err != nil {
		return subscriber.UpsertResult{}, err
	}
	if _, err := tx.Exec(ctx, createSubscriberStage); err != nil {
		return subscriber.UpsertResult{}, fmt.Errorf("postgres: upsert subscribers: stage: %w", err)
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{subscriberStage},
		[]string{"msisdn", "region", "locale", "attributes"},
		pgx.CopyFromSlice(len(merged), func(i int) ([]any, error) {
			r := &merged[i]
			return []any{r.MSISDN, r.Region, r.Locale, attrs[i]}, nil
		}))
	if err != nil {
		return subscriber.UpsertResult{}, fmt.Errorf("postgres: upsert subscribers: copy: %w", err)
	}
	inserted := 0
	for _, pass := range []struct {
		sql string
		n   int
	}{{upsertWithLocale, withLocale}, {upsertKeepingLocale, len(merged) - withLocale}} {
		if pass.n == 0 {
			continue
		}
		var n int
		if err := tx.QueryRow(ctx, pass.sql, tenantID).Scan(&n); err != nil {
			return subscriber.UpsertResult{}, fmt.Errorf("postgres: upsert subscribers: %w", err)
		}
		inserted += n
	}
	if list != "" {
		listID, err := subEnsureList(ctx, tx, tenantID, list)
		if err != nil {
			return subscriber.UpsertResult{}, err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO list_members (list_id, subscriber_id)
			SELECT $2, s.id FROM `+subscriberStage+` u
			JOIN subscribers s ON s.tenant_id = $1 AND s.msisdn = u.msisdn
			ORDER BY s.id
			ON CONFLICT DO NOTHING`, tenantID, listID); err != nil {
			return subscriber.UpsertResult{}, fmt.Errorf("postgres: upsert subscribers: list members: %w", err)
		}
	}
	var createdAt time.Time // the transaction's now(): the created_at of the rows it inserts
	if inserted > 0 {
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&createdAt); err != nil {
			return subscriber.UpsertResult{}, fmt.Errorf("postgres: upsert subscribers: %w", err)
		}
	}
	if s.beforeCommit != nil {
		s.beforeCommit("import")
	}
	if err := tx.Commit(ctx); err != nil {
		return subscriber.UpsertResult{}, fmt.Errorf("postgres: upsert subscribers: commit: %w", err)
	}
	if inserted > 0 {
		numbers := make([]string, len(merged))
		for i, r := range merged {
			numbers[i] = r.MSISDN
		}
		if err := s.subscriberOptOutsAfterImport(ctx, tenantID, numbers, createdAt); err != nil {
			return subscriber.UpsertResult{}, err
		}
	}
	return subscriber.UpsertResult{Inserted: inserted, Updated: len(rows) - inserted}, nil
}

// subEnsureList returns the id of the tenant's list, creating it if needed.
func subEnsureList(ctx context.Context, tx pgx.Tx, tenantID, name string) (int64, error) {
	// The second try covers a list created by a concurrent import after
	// this statement's snapshot was taken.
	for range 2 {
		var id int64
		err := tx.QueryRow(ctx, `WITH ins AS (
				INSERT INTO lists (tenant_id, name) VALUES ($1, $2)
				ON CONFLICT (tenant_id, name) DO NOTHING RETURNING id)
			SELECT id FROM ins UNION ALL
			SELECT id FROM lists WHERE tenant_id = $1 AND name = $2
			LIMIT 1`, tenantID, name).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("postgres: ensure list: %w", err)
		}
		return id, nil
	}
	return 0, fmt.Errorf("postgres: ensure list %q: not visible after insert", name)
}

// subTenantExists answers apperr.ErrNotFound for an unknown tenant. The
// subscriber tables carry no foreign key to tenants (see 0001_core.sql).
func subTenantExists(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, tenantID string) error {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)`, tenantID).Scan(&ok); err != nil {
		return fmt.Errorf("postgres: tenant: %w", err)
	}
	if !ok {
		return apperr.NotFound("tenant")
	}
	return nil
}

func subEncodeAttributes(m map[string]string) []byte {
	if len(m) == 0 {
		return []byte("{}")
	}
	b, err := json.Marshal(m)
	if err != nil { // a map[string]string always marshals
		panic(err)
	}
	return b
}

// EnsureSubscribers creates bare subscribers for unknown numbers and returns
// the id of every number.
func (s *Store) EnsureSubscribers(ctx context.Context, tenantID string, msisdns []string) (map[string]int64, error) {
	uniq := slices.Clone(msisdns)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	if err := subTenantExists(ctx, s.pool, tenantID); err != nil {
		return nil, err
	}
	// Most numbers of an alert are subscribers already: they are looked up
	// (an index probe each), and only the others inserted, in one
	// statement. INSERT … ON CONFLICT DO NOTHING over all of them would
	// pay a speculative insertion per existing number, several times the
	// probe. A number another caller inserts meanwhile conflicts, is not
	// returned, and is read by the second query.
	ids := make(map[string]int64, len(uniq))
	collect := func(rows pgx.Rows) error {
		var (
			m  string
			id int64
		)
		_, err := pgx.ForEachRow(rows, []any{&m, &id}, func() error {
			ids[m] = id
			return nil
		})
		return err
	}
	rows, err := s.pool.Query(ctx, `WITH m AS (SELECT unnest($2::text[]) AS msisdn),
		found AS (
			SELECT s.msisdn, s.id FROM m JOIN subscribers s ON s.tenant_id = $1 AND s.msisdn = m.msisdn
		), ins AS (
			INSERT INTO subscribers (tenant_id, msisdn, alert_only, installed, installed_at, opted_out, opted_out_at)
			SELECT $1, m.msisdn, true, i.installed_at IS NOT NULL, i.installed_at, o.msisdn IS NOT NULL, o.opted_out_at FROM m
			LEFT JOIN installs i ON i.tenant_id = $1 AND i.msisdn = m.msisdn AND NOT i.duplicate
			LEFT JOIN number_opt_outs o ON o.msisdn = m.msisdn
			WHERE m.msisdn NOT IN (SELECT msisdn FROM found) ORDER BY 2
			ON CONFLICT (tenant_id, msisdn) DO NOTHING
			RETURNING msisdn, id
		)
		SELECT msisdn, id FROM found UNION ALL SELECT msisdn, id FROM ins`, tenantID, uniq)
	if err != nil {
		return nil, fmt.Errorf("postgres: ensure subscribers: %w", err)
	}
	if err := collect(rows); err != nil {
		return nil, fmt.Errorf("postgres: ensure subscribers: %w", err)
	}
	if len(ids) < len(uniq) {
		var missing []string
		for _, m := range uniq {
			if _, ok := ids[m]; !ok {
				missing = append(missing, m)
			}
		}
		rows, err := s.pool.Query(ctx, `SELECT msisdn, id FROM subscribers
			WHERE tenant_id = $1 AND msisdn = ANY($2::text[])`, tenantID, missing)
		if err != nil {
			return nil, fmt.Errorf("postgres: ensure subscribers: %w", err)
		}
		if err := collect(rows); err != nil {
			return nil, fmt.Errorf("postgres: ensure subscribers: %w", err)
		}
	}
	return ids, nil
}

// GetSubscriber returns one subscriber with devices and lists.
func (s *Store) GetSubscriber(ctx context.Context, tenantID, msisdn string) (subscriber.Subscriber, error) {
	var sub subscriber.Subscriber
	var attrs []byte
	err := s.pool.QueryRow(ctx, `SELECT id, tenant_id, msisdn, region, locale, attributes,
			opted_out, installed, installed_at, created_at, updated_at, alert_only
		FROM subscribers WHERE tenant_id = $1 AND msisdn = $2`, tenantID, msisdn).
		Scan(&sub.ID, &sub.TenantID, &sub.MSISDN, &sub.Region, &sub.Locale, &attrs,
			&sub.OptedOut, &sub.Installed, &sub.InstalledAt, &sub.CreatedAt, &sub.UpdatedAt, &sub.AlertOnly)
	if errors.Is(err, pgx.ErrNoRows) {
		return subscriber.Subscriber{}, apperr.NotFound("subscriber")
	}
	if err != nil {
		return subscriber.Subscriber{}, fmt.Errorf("postgres: get subscriber: %w", err)
	}
	sub.Attributes = map[string]string{}
	if err := json.Unmarshal(attrs, &sub.Attributes); err != nil {
		return subscriber.Subscriber{}, fmt.Errorf("postgres: get subscriber: attributes: %w", err)
	}

	rows, err := s.pool.Query(ctx, `SELECT platform, token, created_at FROM devices
		WHERE subscriber_id = $1 ORDER BY created_at, platform, token`, sub.ID)
	if err != nil {
		return subscriber.Subscriber{}, fmt.Errorf("postgres: get subscriber: devices: %w", err)
	}
	sub.Devices, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (subscriber.Device, error) {
		var d subscriber.Device
		var p string
		err := r.Scan(&p, &d.Token, &d.CreatedAt)
		d.Platform = subscriber.Platform(p)
		return d, err
	})
	if err != nil {
		return subscriber.Subscriber{}, fmt.Errorf("postgres: get subscriber: devices: %w", err)
	}

	rows, err = s.pool.Query(ctx, `SELECT l.name FROM list_members m JOIN lists l ON l.id = m.list_id
		WHERE m.subscriber_id = $1 ORDER BY l.name`, sub.ID)
	if err != nil {
		return subscriber.Subscriber{}, fmt.Errorf("postgres: get subscriber: lists: %w", err)
	}
	sub.Lists, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return subscriber.Subscriber{}, fmt.Errorf("postgres: get subscriber: lists: %w", err)
	}
	return sub, nil
}

// PutDevice registers a push token for a known subscriber; idempotent.
//
// A token is one app install on one phone, so within the tenant it belongs
// to this subscriber alone, on this platform: the unique (tenant_id, token)
// key moves a token registered on another number (the phone changed hands,
// the app was reinstalled under another number) or on another platform to
// this registration, in the same statement, so concurrent registrations of
// one token leave exactly one row. Re-registering the same device changes
// nothing, its creation time included.
func (s *Store) PutDevice(ctx context.Context, tenantID, msisdn string, d subscriber.Device) error {
	if err := subValidateDevice(d); err != nil {
		return err
	}
	var at *time.Time
	if !d.CreatedAt.IsZero() {
		at = &d.CreatedAt
	}
	var id int64
	err := s.pool.QueryRow(ctx, `WITH sub AS (
			SELECT id FROM subscribers WHERE tenant_id = $1 AND msisdn = $2
		), put AS (
			INSERT INTO devices (tenant_id, subscriber_id, platform, token, created_at)
			SELECT $1, id, $3, $4, COALESCE($5::timestamptz, now()) FROM sub
			ON CONFLICT (tenant_id, token) DO UPDATE SET
				subscriber_id = EXCLUDED.subscriber_id,
				platform = EXCLUDED.platform,
				created_at = EXCLUDED.created_at
			WHERE (devices.subscriber_id, devices.platform) IS DISTINCT FROM (EXCLUDED.subscriber_id, EXCLUDED.platform)
		)
		SELECT id FROM sub`, tenantID, msisdn, string(d.Platform), d.Token, at).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return apperr.NotFound("subscriber")
	}
	if err != nil {
		return fmt.Errorf("postgres: put device: %w", err)
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
	if _, err := s.pool.Exec(ctx, `DELETE FROM devices WHERE tenant_id = $1 AND platform = $2 AND token = $3`,
		tenantID, string(platform), token); err != nil {
		return fmt.Errorf("postgres: remove device: %w", err)
	}
	return nil
}

// SetOptOut sets or clears the marketing opt-out; opted_out_at keeps the
// time of the first opt-out until the subscriber opts back in.
func (s *Store) SetOptOut(ctx context.Context, tenantID, msisdn string, optedOut bool) error {
	tag, err := s.pool.Exec(ctx, `UPDATE subscribers SET
			opted_out = $3,
			opted_out_at = CASE WHEN NOT $3 THEN NULL WHEN opted_out THEN opted_out_at ELSE now() END,
			updated_at = now()
		WHERE tenant_id = $1 AND msisdn = $2`, tenantID, msisdn, optedOut)
	if err != nil {
		return fmt.Errorf("postgres: set opt-out: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return apperr.NotFound("subscriber")
	}
	return nil
}

// ReplaceRegions replaces the tenant's region table in one transaction; a
// code given twice keeps its last row.
func (s *Store) ReplaceRegions(ctx context.Context, tenantID string, regions []subscriber.Region) error {
	at := make(map[string]int, len(regions))
	var codes, names []string
	var pops []int64
	for i, r := range regions {
		if r.Code == "" {
			return apperr.FieldErrors{fmt.Sprintf("regions[%d].code", i): "is required"}
		}
		if j, ok := at[r.Code]; ok {
			names[j], pops[j] = r.Name, r.Population
			continue
		}
		at[r.Code] = len(codes)
		codes, names, pops = append(codes, r.Code), append(names, r.Name), append(pops, r.Population)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: replace regions: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := subTenantExists(ctx, tx, tenantID); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM regions WHERE tenant_id = $1`, tenantID); err != nil {
		return fmt.Errorf("postgres: replace regions: %w", err)
	}
	if len(codes) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO regions (tenant_id, code, name, population)
			SELECT $1, c, n, p FROM unnest($2::text[], $3::text[], $4::bigint[]) AS r (c, n, p)`,
			tenantID, codes, names, pops); err != nil {
			return fmt.Errorf("postgres: replace regions: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: replace regions: %w", err)
	}
	return nil
}

// ListExists reports whether the tenant has a list of that name.
func (s *Store) ListExists(ctx context.Context, tenantID, name string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM lists WHERE tenant_id = $1 AND name = $2)`, tenantID, name).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("postgres: list exists: %w", err)
	}
	return ok, nil
}

// ListRegions returns the tenant's regions ordered by code.
func (s *Store) ListRegions(ctx context.Context, tenantID string) ([]subscriber.Region, error) {
	rows, err := s.pool.Query(ctx, `SELECT code, name, population FROM regions WHERE tenant_id = $1 ORDER BY code`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list regions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (subscriber.Region, error) {
		var g subscriber.Region
		err := r.Scan(&g.Code, &g.Name, &g.Population)
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list regions: %w", err)
	}
	if out == nil {
		out = []subscriber.Region{}
	}
	return out, nil
}

// UpsertTuning tells subscriber.Importer to keep its batch size and to
// write two batches at once: an upsert keeps one backend busy on one CPU,
// and a second overlaps its COPY, index work and commit with the first
// (measured best of 1–3 writers and 5,000 or 10,000 rows per batch).
func (s *Store) UpsertTuning() (batchSize, writers int) { return 0, 2 }
