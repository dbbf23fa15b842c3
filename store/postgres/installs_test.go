package postgres_test

import (
	"context"
	"testing"

	"outreach/internal/testenv"
	"outreach/store/postgres"
	"outreach/store/storetest"
)

// openInstallStore opens a migrated store on a fresh schema of the test
// database, or skips when no database is configured.
func openInstallStore(tb testing.TB) *postgres.Store {
	tb.Helper()
	url := testenv.PostgresURL(tb)
	ctx := context.Background()
	s, err := postgres.Open(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestInstallContract(t *testing.T) {
	storetest.RunInstalls(t, func(t *testing.T) storetest.InstallStore { return openInstallStore(t) })
}

// A reward whose write is chosen as a deadlock's victim (against another
// process's install batch) is written on the next try instead of the
// callback answering 500.
func TestARewardChosenAsADeadlockVictimIsWrittenAgain(t *testing.T) {
	s := openInstallStore(t)
	storetest.CheckARewardOutlivesAFault(t, s, func(t *testing.T) {
		// The first insert into rewards fails as PostgreSQL's deadlock
		// detector fails its victim; a sequence, which no rollback undoes,
		// makes it once.
		_, err := s.Pool().Exec(context.Background(), `
			CREATE SEQUENCE deadlock_once;
			CREATE FUNCTION deadlock_once() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF nextval('deadlock_once') = 1 THEN
					RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01';
				END IF;
				RETURN NEW;
			END $$;
			CREATE TRIGGER deadlock_once BEFORE INSERT ON rewards FOR EACH ROW EXECUTE FUNCTION deadlock_once();`)
		if err != nil {
			t.Fatal(err)
		}
	})
}
