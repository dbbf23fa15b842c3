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
func (s *Store) PurgeAlertContacts(ctx context.Context, before time.Time) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge alert contacts: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id FROM campaigns WHERE kind = 'exposure_alert'
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
	for _, id := range ids {
		for _, q := range []string{
			purgeAlertOnlySQL,
			`DELETE FROM campaign_contacts WHERE campaign_id = ?1`,
			// Its Idempotency-Key's hash names its contacts too.
			`DELETE FROM request_keys WHERE campaign_id = ?1`,
			`UPDATE deliveries SET subscriber_id = -subscriber_id, provider_message_id = NULL
				WHERE campaign_id = ?1 AND subscriber_id > 0`,
			`UPDATE campaigns SET contacts_purged_at = ?2 WHERE id = ?1`,
		} {
			if _, err := tx.ExecContext(ctx, q, id, stamp(time.Now())); err != nil {
				return 0, fmt.Errorf("sqlite: purge alert %s: %w", id, err)
			}
		}
	}
	return len(ids), tx.Commit()
}

// purgeAlertOnlySQL deletes the alert's contacts that are only that.
const purgeAlertOnlySQL = `DELETE FROM subscribers AS s
	WHERE s.id IN (SELECT subscriber_id FROM campaign_contacts WHERE campaign_id = ?1) AND s.alert_only AND NOT s.installed
	-- An opt-out kept by number (number_opt_outs) outlives the contact.
	AND (NOT s.opted_out OR EXISTS (SELECT 1 FROM number_opt_outs n WHERE n.msisdn = s.msisdn))
	AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.subscriber_id = s.id)
	AND NOT EXISTS (SELECT 1 FROM list_members m WHERE m.subscriber_id = s.id)
	AND NOT EXISTS (SELECT 1 FROM campaign_contacts o WHERE o.subscriber_id = s.id AND o.campaign_id <> ?1)`
