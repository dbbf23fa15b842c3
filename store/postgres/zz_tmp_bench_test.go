package postgres_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"outreach/subscriber"
)

type nopStore struct{ subscriber.Store }

func (nopStore) UpsertSubscribers(_ context.Context, _ string, rows []subscriber.Row, _ string) (subscriber.UpsertResult, error) {
	return subscriber.UpsertResult{Inserted: len(rows)}, nil
}

func TestTmpParseOnly(t *testing.T) {
	start := time.Now()
	res, err := (&subscriber.Importer{Store: nopStore{}}).Import(context.Background(), "x", subscriber.SyntheticCSV(200000, 1), "")
	t.Logf("parse only: %+v %v → %.0f rows/s", res.Imported, err, 200000/time.Since(start).Seconds())
	start = time.Now()
	n, _ := io.Copy(io.Discard, subscriber.SyntheticCSV(200000, 1))
	t.Logf("generate only: %d bytes %.0f rows/s", n, 200000/time.Since(start).Seconds())
}

func TestTmpStoreOnly(t *testing.T) {
	s := openSubscriberStore(t)
	ctx := context.Background()
	tn, _ := s.EnsureTenant(ctx, "x")
	bs, _ := strconv.Atoi(os.Getenv("BS"))
	if bs == 0 {
		bs = 10000
	}
	var batches [][]subscriber.Row
	for b := 0; b < 200000/bs; b++ {
		rows := make([]subscriber.Row, bs)
		for i := range rows {
			rows[i] = subscriber.Row{MSISDN: fmt.Sprintf("+849%d%07d", b%9, b/9*bs+i), Region: "HN", Locale: "vi", Attributes: map[string]string{"name": "Nguyễn Văn An", "plan": "prepaid"}}
		}
		batches = append(batches, rows)
	}
	start := time.Now()
	for _, rows := range batches {
		if _, err := s.UpsertSubscribers(ctx, tn.ID, rows, ""); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("store only insert: %.0f rows/s", 200000/time.Since(start).Seconds())
	start = time.Now()
	for _, rows := range batches {
		if _, err := s.UpsertSubscribers(ctx, tn.ID, rows, ""); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("store only unchanged: %.0f rows/s", 200000/time.Since(start).Seconds())
}
