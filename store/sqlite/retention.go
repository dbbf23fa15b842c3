package sqlite

import (
	"context"
	"fmt"
	"time"
)

// PurgeAlertContacts cuts exposure alerts finished before `before` from
// the people they reached: the contact list is deleted and each delivery
// keeps its status, channel and times but loses its subscriber (the id is
// negated, so counts and uniqueness still hold) and provider message id.
// A contact that was no subscriber before the alert (alert_only) is deleted
// with it, unless it has become more than a contact since: opted out,
// installed, a device, a list, or a contact of another alert not purged yet.
// It returns how many alerts were purged.
//
// Each alert is purged in a transaction of its own: the store's one writer
// is held for one alert's list at a time, not for every list due at once,
// so an exposure alert created meanwhile waits for one list at most.
func (s *Store) PurgeAlertContacts(ctx context.Context, before time.Time) (int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM campaigns WHERE kind = 'exposure_alert'
		AND state IN ('completed', 'cancelled') AND finished_at < ? AND contacts_purged_at IS NULL`, stamp(before))
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge alert contacts: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sqlite: purge alert contacts: %w", err)
	}
	purged := 0
	for _, id := range ids {
		done, err := s.purgeAlert(ctx, id)
		if err != nil {
			return purged, err
		}
		if done {
			purged++
		}
	}
	return purged, nil
}

// purgeAlert purges one alert's contacts, unless another process has.
func (s *Store) purgeAlert(ctx context.Context, id string) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlite: purge alert %s: %w", id, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE campaigns SET contacts_purged_at = ?2
		WHERE id = ?1 AND contacts_purged_at IS NULL`, id, stamp(time.Now()))
	if err != nil {
		return false, fmt.Errorf("sqlite: purge alert %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	for _, q := range []string{
		purgeAlertOnlySQL,
		`DELETE FROM campaign_contacts WHERE campaign_id = ?1`,
		// Its Idempotency-Key's hash names its contacts too.
		`DELETE FROM request_keys WHERE campaign_id = ?1`,
		`UPDATE deliveries SET subscriber_id = -subscriber_id, provider_message_id = NULL
			WHERE campaign_id = ?1 AND subscriber_id > 0`,
	} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return false, fmt.Errorf("sqlite: purge alert %s: %w", id, err)
		}
	}
	return true, tx.Commit()
}

// purgeAlertOnlySQL deletes the alert's contacts that are only that.
const purgeAlertOnlySQL = `DELETE FROM subscribers AS s
	WHERE s.id IN (SELECT subscriber_id FROM campaign_contacts WHERE campaign_id = ?1) AND s.alert_only AND NOT s.installed
	-- An opt-out kept by number (number_opt_outs) outlives the contact.
	AND (NOT s.opted_out OR EXISTS (SELECT 1 FROM number_opt_outs n WHERE n.msisdn = s.msisdn))
	AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.subscriber_id = s.id)
	AND NOT EXISTS (SELECT 1 FROM list_members m WHERE m.subscriber_id = s.id)
	AND NOT EXISTS (SELECT 1 FROM campaign_contacts o WHERE o.subscriber_id = s.id AND o.campaign_id <> ?1)`
