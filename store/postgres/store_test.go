package postgres_test

import (
	"context"
	"runtime"
	"testing"

	"outreach/internal/testenv"
	"outreach/store/postgres"
)

// The pool holds four connections a core and at least 8, unless the URL
// names its own size.
func TestThePoolSizeFollowsTheCoresUnlessTheURLSetsIt(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		url  string
		want int32
	}{
		{"default", testenv.PostgresURL(t), int32(max(8, 4*runtime.GOMAXPROCS(0)))},
		{"the URL's own", testenv.WithPoolMax(t, testenv.PostgresURL(t), 3), 3},
		{"the URL's own, larger", testenv.WithPoolMax(t, testenv.PostgresURL(t), 40), 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := postgres.Open(ctx, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.Pool().Config().MaxConns; got != tc.want {
				t.Errorf("MaxConns = %d, want %d", got, tc.want)
			}
		})
	}
}
