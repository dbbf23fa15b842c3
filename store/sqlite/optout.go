package sqlite

import (
	"context"
	"fmt"
	"time"
)

// OptOutEverywhere sets or clears the marketing opt-out of a number in
// every tenant that has it: an inbound STOP names a phone, not a tenant.
// The number's own opt-out (number_opt_outs) is kept for tenants that do
// not hold it yet: a subscriber created for it later starts opted out.
func (s *Store) OptOutEverywhere(ctx context.Context, msisdn string, optedOut bool) (int64, error) {
	now := coreStamp(time.Now())
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite: opt-out everywhere: %w", err)
	}
	defer tx.Rollback()
	byNumber := `DELETE FROM number_opt_outs WHERE msisdn = ?1`
	if optedOut {
		byNumber = `INSERT INTO number_opt_outs (msisdn, opted_out_at) VALUES (?1, ?2) ON CONFLICT (msisdn) DO NOTHING`
	}
	if _, err := tx.ExecContext(ctx, byNumber, msisdn, now); err != nil {
		return 0, fmt.Errorf("sqlite: opt-out everywhere: %w", err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE subscribers SET
			opted_out = ?2,
			opted_out_at = CASE WHEN NOT ?2 THEN NULL WHEN opted_out THEN opted_out_at ELSE ?3 END,
			updated_at = ?3
		WHERE msisdn = ?1`, msisdn, optedOut, now)
	if err != nil {
		return 0, fmt.Errorf("sqlite: opt-out everywhere: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: opt-out everywhere: %w", err)
	}
	return n, nil
}
