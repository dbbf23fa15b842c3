package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"outreach/internal/testenv"
	"outreach/store/postgres"
	"outreach/store/storetest"
	"outreach/subscriber"
)

// openSubscriberStore opens a migrated store on a fresh schema of the test
// database, or skips when no database is configured.
func openSubscriberStore(t testing.TB) *postgres.Store {
	t.Helper()
	url := testenv.PostgresURL(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSubscriberContract(t *testing.T) {
	storetest.RunSubscribers(t, func(t *testing.T) storetest.SubscriberStore { return openSubscriberStore(t) })
}

// Times come back in UTC whatever the host's zone, so that the API writes
// one format on every store: a subscriber's used to come back in the local
// zone (+07:00 on a host in Vietnam). Not parallel: it sets time.Local.
func TestTimesAreReadInUTCWhateverTheHostsZone(t *testing.T) {
	saved := time.Local
	time.Local = time.FixedZone("ICT", 7*3600)
	t.Cleanup(func() { time.Local = saved })
	ctx := context.Background()
	s := openSubscriberStore(t)
	tn, err := s.EnsureTenant(ctx, t.Name()+"/"+uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpsertSubscribers(ctx, tn.ID, []subscriber.Row{{MSISDN: "+84912345678", Region: "HN"}}, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDevice(ctx, tn.ID, "+84912345678", subscriber.Device{Platform: subscriber.PlatformFCM, Token: "tok-1"}); err != nil {
		t.Fatal(err)
	}
	sub, err := s.GetSubscriber(ctx, tn.ID, "+84912345678")
	if err != nil {
		t.Fatal(err)
	}
	for name, at := range map[string]time.Time{"created_at": sub.CreatedAt, "updated_at": sub.UpdatedAt,
		"device created_at": sub.Devices[0].CreatedAt} {
		if at.Location() != time.UTC {
			t.Errorf("%s read in %v, want UTC", name, at.Location())
		}
	}
}
