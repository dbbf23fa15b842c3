package postgres

import (
	"context"
	"fmt"
)

// OptOutEverywhere sets or clears the marketing opt-out of a number in
// every tenant that has it: an inbound STOP names a phone, not a tenant.
// The number's own opt-out (number_opt_outs) is kept for tenants that do
// not hold it yet: a subscriber created for it later starts opted out.
func (s *Store) OptOutEverywhere(ctx context.Context, msisdn string, optedOut bool) (int64, error) {
	byNumber := `DELETE FROM number_opt_outs WHERE msisdn = $1`
	if optedOut {
		byNumber = `INSERT INTO number_opt_outs (msisdn) VALUES ($1) ON CONFLICT (msisdn) DO NOTHING`
	}
	tag, err := s.pool.Exec(ctx, `WITH n AS (`+byNumber+`)
		UPDATE subscribers SET
			opted_out = $2,
			opted_out_at = CASE WHEN NOT $2 THEN NULL WHEN opted_out THEN opted_out_at ELSE now() END,
			updated_at = now()
		WHERE msisdn = $1`, msisdn, optedOut)
	if err != nil {
		return 0, fmt.Errorf("postgres: opt-out everywhere: %w", err)
	}
	return tag.RowsAffected(), nil
}
