package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestTmpSteps(t *testing.T) {
	s := openSubscriberStore(t)
	ctx := context.Background()
	tn, _ := s.EnsureTenant(ctx, "x")
	p := s.Pool()
	var tot [6]time.Duration
	const B = 40
	for b := 0; b < B; b++ {
		rows := make([][]any, 10000)
		for i := range rows {
			rows[i] = []any{fmt.Sprintf("+849%d%07d", rand.IntN(9), rand.IntN(10000000)), "HN", "vi", []byte(`{"name":"Nguyễn Văn An","plan":"prepaid"}`)}
		}
		t0 := time.Now()
		tx, _ := p.Begin(ctx)
		tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS stg (msisdn text NOT NULL, region text NOT NULL, locale text NOT NULL, attributes jsonb NOT NULL) ON COMMIT DELETE ROWS`)
		t1 := time.Now()
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"stg"}, []string{"msisdn", "region", "locale", "attributes"}, pgx.CopyFromRows(rows)); err != nil {
			t.Fatal(err)
		}
		t2 := time.Now()
		var n int
		if err := tx.QueryRow(ctx, `WITH up AS (INSERT INTO subscribers AS s (tenant_id, msisdn, region, locale, attributes)
	SELECT DISTINCT ON (msisdn) $1, u.msisdn, u.region, u.locale, u.attributes FROM stg u ORDER BY u.msisdn
	ON CONFLICT (tenant_id, msisdn) DO UPDATE SET region = EXCLUDED.region
	RETURNING xmax = 0 AS inserted) SELECT count(*) FILTER (WHERE inserted) FROM up`, tn.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		t3 := time.Now()
		tx.Commit(ctx)
		t4 := time.Now()
		tot[0] += t1.Sub(t0)
		tot[1] += t2.Sub(t1)
		tot[2] += t3.Sub(t2)
		tot[3] += t4.Sub(t3)
		if b%10 == 9 {
			t.Logf("after %d: begin+create %v copy %v upsert %v commit %v", b+1, tot[0]/10, tot[1]/10, tot[2]/10, tot[3]/10)
			tot = [6]time.Duration{}
		}
	}
}
