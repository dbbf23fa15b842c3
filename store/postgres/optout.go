package postgres

import (
	"context"
	"fmt"
	"time"
)

// OptOutEverywhere sets or clears the marketing opt-out of a number in
// every tenant that has it: an inbound STOP names a phone, not a tenant.
// The number's own opt-out (number_opt_outs) is kept for tenants that do
// not hold it yet: a subscriber created for it later starts opted out.
//
// An import creating the number's subscriber meanwhile could miss both
// ways: its insert reads number_opt_outs as it was before this commit,
// and this update does not see its uncommitted row. So once committed
// the subscribers are set again, in a statement that sees every import
// committed before it; an import committed later sees this one's
// number_opt_outs row itself (subscriberOptOutsAfterImport).
func (s *Store) OptOutEverywhere(ctx context.Context, msisdn string, optedOut bool) (int64, error) {
	byNumber := `DELETE FROM number_opt_outs WHERE msisdn = $1`
	if optedOut {
		byNumber = `INSERT INTO number_opt_outs (msisdn) VALUES ($1) ON CONFLICT (msisdn) DO NOTHING`
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: opt-out everywhere: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	tag, err := tx.Exec(ctx, `WITH n AS (`+byNumber+`)
		UPDATE subscribers SET
			opted_out = $2,
			opted_out_at = CASE WHEN NOT $2 THEN NULL WHEN opted_out THEN opted_out_at ELSE now() END,
			updated_at = now()
		WHERE msisdn = $1`, msisdn, optedOut)
	if err != nil {
		return 0, fmt.Errorf("postgres: opt-out everywhere: %w", err)
	}
	if s.beforeCommit != nil {
		s.beforeCommit("opt-out")
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("postgres: opt-out everywhere: commit: %w", err)
	}
	if s.beforeCommit != nil {
		s.beforeCommit("opt-out committed")
	}
	// Only while number_opt_outs still says so: a STOP or START from the
	// number committed since has the last word.
	again, err := s.pool.Exec(ctx, `UPDATE subscribers SET
			opted_out = $2,
			opted_out_at = CASE WHEN $2 THEN now() END,
			updated_at = now()
		WHERE msisdn = $1 AND opted_out <> $2
			AND EXISTS (SELECT 1 FROM number_opt_outs WHERE msisdn = $1) = $2`, msisdn, optedOut)
	if err != nil {
		return 0, fmt.Errorf("postgres: opt-out everywhere: subscribers created meanwhile: %w", err)
	}
	return tag.RowsAffected() + again.RowsAffected(), nil
}

// subscriberOptOutsAfterImport opts out the subscribers an import created
// at createdAt (its transaction's time) whose number sent STOP while the
// import ran: the import's insert read number_opt_outs before that STOP
// committed, and the STOP's update did not see the import's rows. Run
// after the import commits, it sees every STOP committed before; a STOP
// committed later sets the rows itself (OptOutEverywhere).
func (s *Store) subscriberOptOutsAfterImport(ctx context.Context, tenantID string, msisdns []string, createdAt time.Time) error {
	// From the batch's numbers that sent STOP (usually none: probes of
	// number_opt_outs' small key) to their subscribers, not the other way.
	if _, err := s.pool.Exec(ctx, `WITH stopped AS MATERIALIZED (
			SELECT msisdn, opted_out_at FROM number_opt_outs WHERE msisdn = ANY($2::text[]))
		UPDATE subscribers s SET
			opted_out = true, opted_out_at = o.opted_out_at, updated_at = now()
		FROM stopped o
		WHERE s.tenant_id = $1 AND s.msisdn = o.msisdn AND s.created_at = $3 AND NOT s.opted_out`,
		tenantID, msisdns, createdAt); err != nil {
		return fmt.Errorf("postgres: opt-outs sent during the import: %w", err)
	}
	return nil
}
