package postgres

import (
	"context"
	"testing"

	"outreach/subscriber"
)

// A STOP from a number and an import creating its subscriber, at the same
// time, leave the subscriber opted out whichever commits first. The
// import's insert read number_opt_outs before the STOP committed, and the
// STOP's update did not see the import's uncommitted row: the subscriber
// was created opted in, and marketing went to a number that had said STOP.
func TestAStopRacingTheImportOfItsNumberIsKept(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	ten, err := s.EnsureTenant(ctx, "optout-race")
	if err != nil {
		t.Fatal(err)
	}
	imp := func(msisdn string) {
		if _, err := s.UpsertSubscribers(ctx, ten.ID, []subscriber.Row{{MSISDN: msisdn, Region: "HN", Locale: "vi"}}, ""); err != nil {
			t.Error(err)
		}
	}
	stop := func(msisdn string) {
		if _, err := s.OptOutEverywhere(ctx, msisdn, true); err != nil {
			t.Error(err)
		}
	}
	for _, tc := range []struct {
		name, msisdn, open string // open: the one the other commits inside
		first, inside      func(string)
	}{
		{"the STOP commits while the import is open", "+84912340001", "import", imp, stop},
		{"the import commits while the STOP is open", "+84912340002", "opt-out", stop, imp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran := false
			s.beforeCommit = func(op string) {
				if op == tc.open && !ran {
					ran = true
					tc.inside(tc.msisdn)
				}
			}
			defer func() { s.beforeCommit = nil }()
			tc.first(tc.msisdn)
			if !ran {
				t.Fatal("the two did not interleave")
			}
			sub, err := s.GetSubscriber(ctx, ten.ID, tc.msisdn)
			if err != nil {
				t.Fatal(err)
			}
			if !sub.OptedOut {
				t.Errorf("subscriber %+v: want opted out", sub)
			}
		})
	}
}

// A START and then a STOP from one number, handled at once (two inbound
// webhooks): the STOP comes in after the START committed and before the
// START sets the subscribers again. The STOP, last, has the last word: the
// START's second pass used to opt the subscriber back in.
func TestTheLastOfAStartAndAStopHasTheLastWord(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	ten, err := s.EnsureTenant(ctx, "optout-last-word")
	if err != nil {
		t.Fatal(err)
	}
	const m = "+84912349901"
	if _, err := s.UpsertSubscribers(ctx, ten.ID, []subscriber.Row{{MSISDN: m, Region: "HN", Locale: "vi"}}, ""); err != nil {
		t.Fatal(err)
	}
	for _, first := range []bool{false, true} { // START then STOP; STOP then START
		ran := false
		s.beforeCommit = func(op string) {
			if op == "opt-out committed" && !ran {
				ran = true
				if _, err := s.OptOutEverywhere(ctx, m, !first); err != nil {
					t.Error(err)
				}
			}
		}
		if _, err := s.OptOutEverywhere(ctx, m, first); err != nil {
			t.Fatal(err)
		}
		s.beforeCommit = nil
		sub, err := s.GetSubscriber(ctx, ten.ID, m)
		if err != nil {
			t.Fatal(err)
		}
		if !ran || sub.OptedOut != !first {
			t.Errorf("opted out %v, then %v at once: the subscriber is opted out %v, want %v", first, !first, sub.OptedOut, !first)
		}
	}
}
