package twilio_test

import (
	"context"
	"testing"
	"time"

	"outreach/provider"
	"outreach/provider/twilio"
)

// FindSMS lists, through twilio-go's message list, what Twilio took for one
// number from this client's sender within a time window: a send whose
// answer was lost is found, one whose request never got in is not.
func TestFindSMSTellsATakenMessageFromOneThatNeverGotIn(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		cfg   twilio.Config
		other twilio.Config // another sender of the same account
	}{
		{"from a number", twilio.Config{From: "+84900000001"}, twilio.Config{From: "+84900000002"}},
		{"through a Messaging Service", twilio.Config{MessagingServiceSID: testMSID},
			twilio.Config{MessagingServiceSID: "MG99999999999999999999999999999999"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, base := startFake(t)
			tc.cfg.BaseURL, tc.other.BaseURL = base, base
			tc.cfg.Timeout, tc.other.Timeout = 2*time.Second, 2*time.Second
			c, other := newClient(t, tc.cfg), newClient(t, tc.other)
			const lost, dropped, plain = "+84911000001", "+84911000002", "+84911000003"
			fake.LoseAnswerTo(lost, true)
			fake.DropRequestTo(dropped, true)
			since := time.Now()
			for _, to := range []string{lost, dropped} {
				_, err := c.SendSMS(ctx, provider.SMS{To: to, Body: "Cai Bluezone"})
				wantClass(t, err, provider.Ambiguous)
			}
			res, err := c.SendSMS(ctx, provider.SMS{To: plain, Body: "Cai Bluezone"})
			if err != nil {
				t.Fatal(err)
			}
			// Another sender's message to the same number is not this client's.
			if _, err := other.SendSMS(ctx, provider.SMS{To: plain, Body: "Khac"}); err != nil {
				t.Fatal(err)
			}
			until := time.Now()

			var lostSID string
			for _, m := range fake.Messages() {
				if m.To == lost {
					lostSID = m.SID
				}
			}
			if lostSID == "" {
				t.Fatalf("the fake did not take the message whose answer it lost: %+v", fake.Messages())
			}
			found, err := c.FindSMS(ctx, lost, since, until)
			if err != nil || len(found) != 1 || found[0].MessageID != lostSID || found[0].Segments != 1 || found[0].Body != "Cai Bluezone" {
				t.Errorf("FindSMS(lost answer) = %+v, %v; want its SID %s, 1 segment", found, err, lostSID)
			}
			if found, err := c.FindSMS(ctx, dropped, since, until); err != nil || len(found) != 0 {
				t.Errorf("FindSMS(request cut before it got in) = %+v, %v; want none", found, err)
			}
			if found, err := c.FindSMS(ctx, plain, since, until); err != nil || len(found) != 1 || found[0].MessageID != res.MessageID {
				t.Errorf("FindSMS(plain) = %+v, %v; want only this sender's %s", found, err, res.MessageID)
			}
			// Outside the window: nothing.
			if found, err := c.FindSMS(ctx, lost, until.Add(2*time.Second), until.Add(time.Hour)); err != nil || len(found) != 0 {
				t.Errorf("FindSMS after the window = %+v, %v; want none", found, err)
			}
			if found, err := c.FindSMS(ctx, lost, since.Add(-time.Hour), since.Add(-2*time.Second)); err != nil || len(found) != 0 {
				t.Errorf("FindSMS before the window = %+v, %v; want none", found, err)
			}
		})
	}
}

// A list that cannot be read is an error, not "none found": the engine
// must not take it for a message that never got in.
func TestFindSMSFailsWhenTwilioIsDown(t *testing.T) {
	fake, base := startFake(t)
	c := newClient(t, twilio.Config{BaseURL: base, Timeout: 2 * time.Second})
	fake.SetDown(true)
	if found, err := c.FindSMS(context.Background(), "+84911000001", time.Now().Add(-time.Minute), time.Now()); err == nil {
		t.Errorf("FindSMS with Twilio down = %+v, nil; want an error", found)
	}
}

// The list pages through twilio-go's next_page_uri: a number with more
// messages than a page still has its older ones found.
func TestFindSMSReadsPastTheFirstPage(t *testing.T) {
	_, base := startFake(t)
	c := newClient(t, twilio.Config{BaseURL: base, Timeout: 2 * time.Second})
	ctx := context.Background()
	const to = "+84911000009"
	since := time.Now()
	first, err := c.SendSMS(ctx, provider.SMS{To: to, Body: "dau tien"})
	if err != nil {
		t.Fatal(err)
	}
	for range 150 {
		if _, err := c.SendSMS(ctx, provider.SMS{To: to, Body: "tiep"}); err != nil {
			t.Fatal(err)
		}
	}
	found, err := c.FindSMS(ctx, to, since, time.Now())
	if err != nil || len(found) != 151 || found[len(found)-1].MessageID != first.MessageID {
		t.Errorf("FindSMS found %d (err %v), the oldest last: want 151, the oldest %s", len(found), err, first.MessageID)
	}
}
