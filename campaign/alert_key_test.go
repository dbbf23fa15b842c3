package campaign_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/internal/apperr"
)

// addStall holds the at-th AddContacts (1: the first) until proceed: an
// alert's list being written, slowly.
type addStall struct {
	campaign.Store
	at               int32
	adds             atomic.Int32
	entered, proceed chan struct{}
}

func (s *addStall) AddContacts(ctx context.Context, id string, ids []int64) error {
	if s.adds.Add(1) == s.at {
		close(s.entered)
		<-s.proceed
	}
	return s.Store.AddContacts(ctx, id, ids)
}

func newAddStall(st campaign.Store, at int32) *addStall {
	return &addStall{Store: st, at: at, entered: make(chan struct{}), proceed: make(chan struct{})}
}

// startsAtOnce is a Dispatcher that starts an alert with its first
// contacts (an AlertStarter) and queues nothing.
func startsAtOnce(e *env) campaign.Dispatcher {
	return alertStarterFuncs{Dispatcher: e.disp,
		hold: func(context.Context, campaign.Campaign) (func(context.Context, bool) error, error) {
			return func(context.Context, bool) error { return nil }, nil
		},
		queue: func(context.Context, campaign.Campaign, []int64) error { return nil }}
}

// smsAlert is an SMS alert to n national numbers from 09<from>, under an
// Idempotency-Key.
func (e *env) smsAlert(t *testing.T, n, from int, key string) campaign.AlertInput {
	tm := e.template(t, campaign.TemplateInput{Name: "f1", Channel: campaign.ChannelSMS, Body: "Hay tu cach ly."})
	contacts := make([]string, n)
	for i := range contacts {
		contacts[i] = fmt.Sprintf("09%08d", from+i)
	}
	return campaign.AlertInput{Name: "F1", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: tm.ID}, Contacts: contacts, IdempotencyKey: key}
}

// alertOut is what CreateAlert answered.
type alertOut struct {
	r   campaign.AlertResult
	err error
}

// createAlertAsync runs CreateAlert in a goroutine; its answer comes on the
// channel.
func (e *env) createAlertAsync(ctx context.Context, in campaign.AlertInput) <-chan alertOut {
	out := make(chan alertOut, 1)
	go func() { r, err := e.svc.CreateAlert(ctx, e.p, in); out <- alertOut{r, err} }()
	return out
}

// slowClaim's first ClaimRequestKey returns 31 s after it was stamped (a
// slow pool or database); its first AddContacts waits for proceed.
type slowClaim struct {
	*addStall
	advance func(time.Duration)
	claims  atomic.Int32
}

func (s *slowClaim) ClaimRequestKey(ctx context.Context, tenantID, key, hash, id string, at, since time.Time) (campaign.RequestKey, error) {
	h, err := s.Store.ClaimRequestKey(ctx, tenantID, key, hash, id, at, since)
	if s.claims.Add(1) == 1 {
		s.advance(31 * time.Second)
	}
	return h, err
}

// A request sent again with its Idempotency-Key once a creation's time is
// over takes the key over, and the creation it took it from, slow but
// alive, cannot start a second alert: its draft is cancelled first. One
// request under one key started two alerts when the claim itself was slow.
func TestATakenOverKeyLeavesOneAlertRunning(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var mu sync.Mutex
	now := e.now
	e.svc.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	tm := e.template(t, campaign.TemplateInput{Name: "f1", Channel: campaign.ChannelSMS, Body: "Hay tu cach ly."})
	st := &slowClaim{addStall: newAddStall(e.st, 1), advance: set}
	e.svc.Store = st
	in := campaign.AlertInput{Name: "F1", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: tm.ID}, Contacts: []string{"+84912345001"},
		IdempotencyKey: "k-1"}
	first := e.createAlertAsync(ctx, in)
	<-st.entered
	// A's claim was stamped at T, returned at T+31s; its creation may run to
	// T+31s+4m. The retry comes at T+4m30.5s, within that budget.
	set(4*time.Minute + 30*time.Second + 500*time.Millisecond - 31*time.Second)
	b, errB := e.svc.CreateAlert(ctx, e.p, in)
	close(st.proceed)
	a := <-first
	cs, err := e.st.ListCampaigns(ctx, e.p.TenantID, campaign.KindExposureAlert, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, c := range cs {
		if c.State == campaign.StateRunning {
			running++
		}
	}
	if running != 1 || errB != nil || b.State != campaign.StateRunning || a.err == nil {
		t.Errorf("the slow first: %+v, %v; the one sent again: %+v, %v; %d alerts running: want the second alone running",
			a.r, a.err, b, errB, running)
	}
}

// dying fails every state change and every key release: a process that
// died after storing its alert as a draft.
type dying struct{ campaign.Store }

func (dying) TransitionCampaign(context.Context, string, string, []campaign.State, campaign.State, time.Time) (campaign.Campaign, error) {
	return campaign.Campaign{}, context.Canceled
}
func (dying) ReleaseRequestKey(context.Context, string, string, string) error {
	return context.Canceled
}

// The draft of a creation that died, when its key is taken over, is
// cancelled: the retention purge reaches its contact list. It stayed a
// draft with its contacts for good.
func TestATakenOverDraftIsCancelledAndPurged(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tm := e.template(t, campaign.TemplateInput{Name: "f1", Channel: campaign.ChannelSMS, Body: "Hay tu cach ly."})
	in := campaign.AlertInput{Name: "F1", Channels: []campaign.Channel{campaign.ChannelSMS},
		Templates: map[campaign.Channel]string{campaign.ChannelSMS: tm.ID}, Contacts: []string{"+84912345001"},
		IdempotencyKey: "k-1"}
	e.svc.Store = dying{e.st}
	if _, err := e.svc.CreateAlert(ctx, e.p, in); err == nil {
		t.Fatal("want failure")
	}
	e.svc.Store = e.st
	e.now = e.now.Add(10 * time.Minute)
	b, err := e.svc.CreateAlert(ctx, e.p, in)
	if err != nil || b.Replay {
		t.Fatalf("takeover: %+v %v", b, err)
	}
	cs, err := e.st.ListCampaigns(ctx, e.p.TenantID, campaign.KindExposureAlert, "", 10)
	if err != nil || len(cs) != 2 {
		t.Fatalf("alerts %d, %v: want the dead one and the new one", len(cs), err)
	}
	if _, err := e.st.PurgeAlertContacts(ctx, time.Now().Add(365*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.ID == b.ID {
			continue
		}
		ids, err := e.st.AudiencePage(ctx, c, 0, 10)
		if err != nil || c.State != campaign.StateCancelled || len(ids) != 0 {
			t.Errorf("the dead creation's alert: %s with contacts %v (%v), want cancelled and purged", c.State, ids, err)
		}
	}
}

// An alert starts with its first contacts while the rest of its list is
// written. A request sent again with its Idempotency-Key meanwhile is told
// to try again (409): the creation may yet fail and cancel the alert. It
// was answered 202 replay as soon as the alert ran, and a client that
// stopped there was told of an alert that could still be cancelled. Once
// the list is whole, the retry is answered the alert.
func TestARetryWhileARunningAlertsListIsWrittenIsToldToTryAgain(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.svc.Dispatcher = startsAtOnce(e)
	st := newAddStall(e.st, 2) // the second part of the list
	e.svc.Store = st
	in := e.smsAlert(t, 500, 13000000, "k-run")
	first := e.createAlertAsync(ctx, in)
	<-st.entered
	running, err := e.st.ListCampaigns(ctx, e.p.TenantID, campaign.KindExposureAlert, "", 10)
	if err != nil || len(running) != 1 || running[0].State != campaign.StateRunning {
		t.Fatalf("while its list is written: %+v, %v; want one alert running", running, err)
	}
	_, errB := e.svc.CreateAlert(ctx, e.p, in)
	close(st.proceed)
	a := <-first
	if !errors.Is(errB, apperr.ErrConflict) || !strings.Contains(errB.Error(), "still creating") {
		t.Errorf("sent again while the list was written: %v, want a conflict saying it is still being created", errB)
	}
	if a.err != nil || a.r.Contacts != 500 {
		t.Fatalf("the first: %+v, %v", a.r, a.err)
	}
	c, err := e.svc.CreateAlert(ctx, e.p, in)
	if err != nil || !c.Replay || c.ID != a.r.ID {
		t.Errorf("sent again once whole: %+v, %v; want the first alert, replayed", c, err)
	}
}

// diedMidList is a creation that died while writing its list: its second
// part is never stored, and neither the cancel nor the key's release that
// would follow a failure gets through; nor does marking the key done.
type diedMidList struct {
	campaign.Store
	adds atomic.Int32
}

func (s *diedMidList) AddContacts(ctx context.Context, id string, ids []int64) error {
	if s.adds.Add(1) >= 2 {
		return context.Canceled
	}
	return s.Store.AddContacts(ctx, id, ids)
}

func (s *diedMidList) TransitionCampaign(ctx context.Context, tenantID, id string, from []campaign.State, to campaign.State, at time.Time) (campaign.Campaign, error) {
	if to == campaign.StateCancelled {
		return campaign.Campaign{}, context.Canceled
	}
	return s.Store.TransitionCampaign(ctx, tenantID, id, from, to, at)
}

func (*diedMidList) ReleaseRequestKey(context.Context, string, string, string) error {
	return context.Canceled
}

func (*diedMidList) FinishRequestKey(context.Context, string, string, string) error {
	return context.Canceled
}

// finishFails is a creation that wrote its whole list and died just
// before marking its key done.
type finishFails struct{ campaign.Store }

func (finishFails) FinishRequestKey(context.Context, string, string, string) error {
	return context.Canceled
}

// A creation that died with part of its list running is not passed off as
// the alert: once its time is over, a request sent again with its key
// cancels what is left of it and creates the alert with the whole list
// (the part's contacts get it twice, none is left out). It was answered
// 202 replay with the request's 500 contacts for an alert of 200, which
// then completed. A creation that died only before marking its key done
// is answered as the whole alert it is.
func TestARetryAfterACreationDiedMidListSendsTheWholeList(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wrap  func(campaign.Store) campaign.Store
		whole bool
	}{
		{"died mid-list", func(st campaign.Store) campaign.Store { return &diedMidList{Store: st} }, false},
		{"died before marking its key done", func(st campaign.Store) campaign.Store { return finishFails{st} }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			var mu sync.Mutex
			now := e.now
			e.svc.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			e.svc.Dispatcher = startsAtOnce(e)
			in := e.smsAlert(t, 1500, 14000000, "k-died")
			e.svc.Store = tc.wrap(e.st)
			first, firstErr := e.svc.CreateAlert(ctx, e.p, in)
			e.svc.Store = e.st
			if tc.whole != (firstErr == nil) {
				t.Fatalf("the first creation: %+v, %v", first, firstErr)
			}
			if _, err := e.svc.CreateAlert(ctx, e.p, in); !errors.Is(err, apperr.ErrConflict) {
				t.Errorf("sent again at once: %v, want 409 still creating", err)
			}
			mu.Lock()
			now = now.Add(5 * time.Minute) // past the creation's time
			mu.Unlock()
			again, err := e.svc.CreateAlert(ctx, e.p, in)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := e.st.ListCampaigns(ctx, e.p.TenantID, campaign.KindExposureAlert, "", 10)
			if err != nil {
				t.Fatal(err)
			}
			states := map[string]campaign.State{}
			for _, c := range cs {
				states[c.ID] = c.State
			}
			if tc.whole {
				if !again.Replay || again.ID != first.ID || len(cs) != 1 {
					t.Errorf("sent again: %+v; alerts %v: want the whole first one replayed", again, states)
				}
				if third, err := e.svc.CreateAlert(ctx, e.p, in); err != nil || !third.Replay || third.ID != first.ID {
					t.Errorf("sent a third time: %+v, %v: want the replay, the key now done", third, err)
				}
				return
			}
			if again.Replay || len(cs) != 2 || states[again.ID] != campaign.StateRunning {
				t.Fatalf("sent again: %+v; alerts %v: want a new alert running beside the cancelled part", again, states)
			}
			for id, st := range states {
				if id != again.ID && st != campaign.StateCancelled {
					t.Errorf("the part left by the dead creation is %s, want cancelled", st)
				}
			}
			c, err := e.st.GetCampaign(ctx, e.p.TenantID, again.ID)
			if err != nil {
				t.Fatal(err)
			}
			ids, err := e.st.AudiencePage(ctx, c, 0, 10_000)
			if err != nil || len(ids) != 1500 {
				t.Errorf("the new alert has %d contacts (%v), want the whole 1,500", len(ids), err)
			}
		})
	}
}
