package campaign

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"outreach/internal/apperr"
	"outreach/subscriber"
	"outreach/tenant"
)

// MaxAlertContacts bounds one alert's contact list (a health authority names
// thousands; the JSON body limit usually binds first).
const MaxAlertContacts = 200_000

// alertFirstContacts is the first part of an alert's list: stored (a look-up
// each) and queued before the rest, so that the first message does not
// wait on the whole list.
const alertFirstContacts = 200

// contactChunk is how many numbers go to the store in one call after the
// first part: each part is queued as soon as it is stored, a fraction of a
// second of sending at provider rates.
const contactChunk = 1000

// alertCreateTimeout bounds the writing of an alert's list, which goes on
// when its caller hangs up. It is shorter than the worker's hold on the
// alert's fan-out (five minutes), so that a creation that runs out is
// cancelled (alertAbortTimeout) before anything else takes the alert up.
var alertCreateTimeout = 4 * time.Minute

const alertAbortTimeout = 30 * time.Second

// AlertInput is an exposure alert to create and start at once.
type AlertInput struct {
	Name      string             `json:"name"`
	Channels  []Channel          `json:"channels"`
	Templates map[Channel]string `json:"templates"`
	// LocaleTemplates are templates for contacts of a locale, per channel
	// ({"en": {"sms": ID}}); others get Templates.
	LocaleTemplates map[string]map[Channel]string `json:"locale_templates"`
	Contacts        []string                      `json:"contacts"`
	// PushFallbackSMS sends the SMS template to a contact with no device.
	PushFallbackSMS bool `json:"push_fallback_sms"`
	// IdempotencyKey (the Idempotency-Key header), when set, makes the same
	// request sent again within requestKeyTTL (a client's timeout and
	// retry, a double click) answer the alert the first one created,
	// rather than warn every contact twice.
	IdempotencyKey string `json:"-"`
}

// requestKeyTTL is how long an alert's Idempotency-Key is honoured.
const requestKeyTTL = 24 * time.Hour

// maxRequestKey bounds an Idempotency-Key.
const maxRequestKey = 255

// InvalidContact is a contact that is not a valid number; Index is its
// 0-based position in the request's contacts.
type InvalidContact struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// AlertResult is what creating an alert did.
type AlertResult struct {
	ID    string `json:"id"`
	State State  `json:"state"`
	// Contacts is how many distinct valid numbers the alert goes to.
	Contacts        int              `json:"contacts"`
	Duplicates      int              `json:"duplicates"`
	InvalidContacts []InvalidContact `json:"invalid_contacts"`
	// Replay: the request was sent before with its Idempotency-Key; this
	// is the alert it created, and nothing new was sent.
	Replay bool `json:"replay,omitempty"`
}

// AlertView is an alert with its report.
type AlertView struct {
	Campaign
	Stats Stats `json:"stats"`
}

// CreateAlert validates an exposure alert, makes subscribers of contacts not
// yet known, stores the alert with its contact list and starts it. Invalid
// contacts are reported by position and left out; if none is valid, nothing
// is created (422). The audit entry records who, how many and which
// templates, never the numbers.
func (s *Service) CreateAlert(ctx context.Context, p tenant.Principal, in AlertInput) (AlertResult, error) {
	fe := apperr.FieldErrors{}
	name := strings.TrimSpace(in.Name)
	checkName(fe, "name", name)
	if err := s.checkChannels(ctx, p, fe, KindExposureAlert, in.Channels, in.Templates, in.LocaleTemplates, in.PushFallbackSMS, true, false); err != nil {
		return AlertResult{}, err
	}
	res := AlertResult{InvalidContacts: []InvalidContact{}}
	var numbers []string
	switch {
	case len(in.Contacts) == 0:
		fe.Add("contacts", "at least one phone number")
	case len(in.Contacts) > MaxAlertContacts:
		fe.Add("contacts", "at most %d numbers in one alert", MaxAlertContacts)
	default:
		seen := make(map[string]bool, len(in.Contacts))
		for i, raw := range in.Contacts {
			num, err := subscriber.NormalizeMSISDN(raw)
			if err != nil {
				res.InvalidContacts = append(res.InvalidContacts, InvalidContact{Index: i, Reason: contactReason(raw, err)})
				continue
			}
			if seen[num] {
				res.Duplicates++
				continue
			}
			seen[num] = true
			numbers = append(numbers, num)
		}
		if len(numbers) == 0 {
			fe.Add("contacts", "none of the %d contacts is a valid phone number%s",
				len(in.Contacts), firstInvalid(res.InvalidContacts))
		}
	}
	key := in.IdempotencyKey
	if len(key) > maxRequestKey || strings.IndexFunc(key, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		fe.Add("Idempotency-Key", "must be at most %d printable ASCII characters, no spaces", maxRequestKey)
	}
	if err := fe.Err(); err != nil {
		return AlertResult{}, err
	}
	id := uuid.NewString()
	created := false // once the alert is whole: a failure before releases the key
	budget := alertCreateTimeout
	if key != "" {
		replay, claimedAt, err := s.claimRequestKey(ctx, p, key, alertRequestHash(name, in, numbers), id, len(numbers))
		if err != nil {
			return AlertResult{}, err
		}
		// The creation ends within alertCreateTimeout of the claim's
		// stamp, however long the claim took: past that, a request sent
		// again takes the key over (claimRequestKey).
		budget -= s.now().Sub(claimedAt)
		if replay.ID != "" {
			res.ID, res.State, res.Contacts, res.Replay = replay.ID, replay.State, len(numbers), true
			return res, nil
		}
		defer func() {
			if !created {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), alertAbortTimeout)
				defer cancel()
				if err := s.Store.ReleaseRequestKey(ctx, p.TenantID, key, id); err != nil {
					s.logger().ErrorContext(ctx, "alert: release its Idempotency-Key after a failed creation", "alert_id", id, "err", err)
				}
			}
		}()
	}

	// With a Dispatcher that can (AlertStarter), an alert is started with
	// its fan-out held as soon as its first contacts are stored, and each
	// part of the list is queued for sending as soon as it is stored: the
	// first messages go out while the rest of the list is written. When
	// the list is complete the fan-out is marked done (or, if a part could
	// not be queued, let go to page the whole list: deliveries that exist
	// are claimed once). Without one, the alert is stored as a draft,
	// given all its contacts, and only then started: a worker scanning
	// active campaigns must never fan out a running alert whose contact
	// list is still being written.
	//
	// The request is valid: what follows is carried out whole even if the
	// caller hangs up (a proxy's timeout, a dropped connection), since
	// messages may be going out already. Any failure once the alert is
	// stored cancels it (abort), so that it neither completes with part
	// of its list nor keeps health data out of reach of the retention
	// purge, and is audited.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	defer cancel()
	starter, _ := s.Dispatcher.(AlertStarter)
	first := numbers[:min(alertFirstContacts, len(numbers))]
	firstIDs, err := s.ensureContacts(ctx, p.TenantID, first)
	if err != nil {
		return AlertResult{}, err
	}
	now := s.now().UTC()
	c := Campaign{
		ID: id, TenantID: p.TenantID, Name: name, Kind: KindExposureAlert,
		Channels: in.Channels, Templates: in.Templates, LocaleTemplates: nonEmpty(in.LocaleTemplates), PushFallbackSMS: in.PushFallbackSMS,
		State: StateDraft, CreatedBy: p.KeyID, CreatedAt: now, UpdatedAt: now,
	}
	if err := s.Store.CreateCampaign(ctx, &c); err != nil {
		return AlertResult{}, fmt.Errorf("create alert: %w", err)
	}
	var (
		started   Campaign
		release   func(context.Context, bool) error
		queuedAll = true
	)
	abort := func(what string, err error) (AlertResult, error) {
		// On a context of its own: the list's may be what ran out.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), alertAbortTimeout)
		defer cancel()
		cf, ct, _ := Transition(ActionCancel)
		if _, cerr := s.Store.TransitionCampaign(ctx, p.TenantID, c.ID, cf, ct, s.now().UTC()); cerr != nil {
			s.logger().ErrorContext(ctx, "alert: cancel after a failed creation", "alert_id", c.ID, "err", cerr)
		}
		if release != nil {
			release(ctx, false)
		}
		s.Audit(ctx, p, "alert.abort", "campaign", c.ID, map[string]any{
			"name": name, "contacts": len(numbers), "reason": what})
		return AlertResult{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := s.Store.AddContacts(ctx, c.ID, firstIDs); err != nil {
		return abort("add alert contacts", err)
	}
	from, to, err := Transition(ActionStart)
	if err != nil {
		return abort("start alert", err)
	}
	queue := func(ids []int64) {
		if err := starter.QueueContacts(ctx, started, ids); err != nil {
			// The fan-out sends them when it is let go.
			queuedAll = false
			s.logger().WarnContext(ctx, "alert: queue contacts", "alert_id", c.ID, "err", err)
		}
	}
	if starter != nil {
		if release, err = starter.HoldFanout(ctx, c); err != nil {
			return abort("start alert", err)
		}
		if started, err = s.Store.TransitionCampaign(ctx, p.TenantID, c.ID, from, to, now); err != nil {
			return abort("start alert", err)
		}
		queue(firstIDs)
	}
	for start := len(first); start < len(numbers); start += contactChunk {
		ids, err := s.ensureContacts(ctx, p.TenantID, numbers[start:min(start+contactChunk, len(numbers))])
		if err == nil {
			err = s.Store.AddContacts(ctx, c.ID, ids)
		}
		if err != nil {
			// Started with part of its list: stop it rather than let it
			// complete as if that were all.
			return abort("add alert contacts", err)
		}
		if starter != nil {
			queue(ids)
		}
	}
	if starter == nil {
		if started, err = s.Store.TransitionCampaign(ctx, p.TenantID, c.ID, from, to, now); err != nil {
			return abort("start alert", err)
		}
	}
	s.Audit(ctx, p, "alert.create", "campaign", c.ID, map[string]any{
		"name": name, "channels": c.Channels, "templates": c.Templates, "locale_templates": c.LocaleTemplates,
		"contacts": len(numbers), "invalid_contacts": len(res.InvalidContacts), "duplicates": res.Duplicates,
	})
	if starter != nil {
		if err := release(ctx, queuedAll); err != nil {
			s.logger().ErrorContext(ctx, "alert: start fan-out failed; the reconciler will pick it up",
				"alert_id", c.ID, "err", err)
		}
	} else {
		s.kick(ctx, started)
	}
	res.ID, res.State, res.Contacts = started.ID, started.State, len(numbers)
	if key != "" {
		// A retry is answered this alert from now on; until now it was
		// told to try again (the alert runs from its first contacts on,
		// and its creation could still have failed and cancelled it).
		if err := s.Store.FinishRequestKey(ctx, p.TenantID, key, id); err != nil {
			s.logger().ErrorContext(ctx, "alert: mark its Idempotency-Key done; retries are told to try again until its creation's time is over",
				"alert_id", id, "err", err)
		}
	}
	created = true
	return res, nil
}

// alertRequestHash identifies an alert request for its Idempotency-Key:
// its name, channels, templates, fallback and contacts as normalised.
func alertRequestHash(name string, in AlertInput, numbers []string) string {
	b, _ := json.Marshal(struct {
		Name            string
		Channels        []Channel
		Templates       map[Channel]string
		LocaleTemplates map[string]map[Channel]string
		PushFallbackSMS bool
		Numbers         []string
	}{name, in.Channels, in.Templates, in.LocaleTemplates, in.PushFallbackSMS, numbers})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// claimRequestKey claims an alert request's Idempotency-Key for alert id
// (and answers when the claim was stamped), or answers the alert an
// earlier request under it created (a replay). The key of a request still
// creating its alert is a conflict to try again in a moment, even once
// the alert runs (it starts with its first contacts): that alert may yet
// fail. A claim whose creation is over without having started its
// alert (a process died) is taken over: its draft, if any, is cancelled
// first, so that it can neither start late nor keep its contacts out of
// the retention purge's reach.
func (s *Service) claimRequestKey(ctx context.Context, p tenant.Principal, key, hash, id string, want int) (Campaign, time.Time, error) {
	// Not cut short by a caller hanging up: a claim made must be seen
	// through (kept, or released on failure).
	ctx = context.WithoutCancel(ctx)
	for range 3 {
		at := s.now().UTC()
		held, err := s.Store.ClaimRequestKey(ctx, p.TenantID, key, hash, id, at, at.Add(-requestKeyTTL))
		if err != nil {
			return Campaign{}, at, fmt.Errorf("create alert: %w", err)
		}
		if held.CampaignID == "" {
			return Campaign{}, at, nil
		}
		c, err := s.Store.GetCampaign(ctx, p.TenantID, held.CampaignID)
		if err != nil && !errors.Is(err, apperr.ErrNotFound) {
			return Campaign{}, at, fmt.Errorf("read the alert of an Idempotency-Key: %w", err)
		}
		live := err == nil && c.State != StateDraft
		over := at.Sub(held.At) > alertCreateTimeout+alertAbortTimeout // the creation has ended, one way or another
		if !live && over {
			if err == nil { // its draft
				if _, err := s.Store.TransitionCampaign(ctx, p.TenantID, c.ID, []State{StateDraft}, StateCancelled, at); err != nil {
					if errors.Is(err, apperr.ErrConflict) {
						continue // it has just started: read it again
					}
					return Campaign{}, at, fmt.Errorf("create alert: %w", err)
				}
				s.Audit(ctx, p, "alert.abort", "campaign", c.ID, map[string]any{
					"name": c.Name, "reason": "its creation never ended; its Idempotency-Key was taken over"})
			}
			if err := s.Store.ReleaseRequestKey(ctx, p.TenantID, key, held.CampaignID); err != nil {
				return Campaign{}, at, fmt.Errorf("create alert: %w", err)
			}
			continue
		}
		switch {
		case held.Hash != hash:
			return Campaign{}, at, apperr.Conflict("Idempotency-Key %q was sent with another alert request (alert %s); "+
				"a new alert needs a new key", key, held.CampaignID)
		case live && held.Done:
			return c, at, nil
		case live && over:
			// Started, and its creation past its time without marking the
			// key done: the process died while writing the list, or just
			// before marking it. A whole list is answered; a part of one is
			// not passed off as the alert: what is left of it is cancelled
			// and the alert created again with the whole list, so that no
			// contact is left unwarned (those the part reached get it
			// twice).
			whole, err := s.alertIsWhole(ctx, c, want)
			if err != nil {
				return Campaign{}, at, fmt.Errorf("create alert: %w", err)
			}
			if whole {
				if err := s.Store.FinishRequestKey(ctx, p.TenantID, key, held.CampaignID); err != nil {
					return Campaign{}, at, fmt.Errorf("create alert: %w", err)
				}
				return c, at, nil
			}
			if !c.State.Final() {
				cf, ct, _ := Transition(ActionCancel)
				if _, err := s.Store.TransitionCampaign(ctx, p.TenantID, c.ID, cf, ct, at); err != nil && !errors.Is(err, apperr.ErrConflict) {
					return Campaign{}, at, fmt.Errorf("create alert: %w", err)
				}
			}
			s.Audit(ctx, p, "alert.abort", "campaign", c.ID, map[string]any{"name": c.Name,
				"reason": "its creation ended with part of its list; its Idempotency-Key was taken over to send the whole list"})
			if err := s.Store.ReleaseRequestKey(ctx, p.TenantID, key, held.CampaignID); err != nil {
				return Campaign{}, at, fmt.Errorf("create alert: %w", err)
			}
			continue
		}
		return Campaign{}, at, inProgress{apperr.Conflict("the request first sent with Idempotency-Key %q is still creating alert %s; "+
			"send it again in a few seconds", key, held.CampaignID)}
	}
	return Campaign{}, time.Time{}, inProgress{apperr.Conflict("Idempotency-Key %q is being claimed by another request; send it again in a few seconds", key)}
}

// ErrAlertInProgress is a conflict to retry: the request first sent with
// the same Idempotency-Key is still creating its alert. The API tells it
// apart (code in_progress, Retry-After) from a key sent with another
// request, which no retry mends.
var ErrAlertInProgress = errors.New("alert still being created")

// inProgress is a conflict that is also ErrAlertInProgress.
type inProgress struct{ error }

func (e inProgress) Unwrap() error      { return e.error }
func (inProgress) Is(target error) bool { return target == ErrAlertInProgress }

// alertIsWhole reports whether alert c's stored contact list holds want
// contacts (the request's, which its hash names).
func (s *Service) alertIsWhole(ctx context.Context, c Campaign, want int) (bool, error) {
	const page = 10_000
	var n int
	var after int64
	for {
		ids, err := s.Store.AudiencePage(ctx, c, after, page)
		if err != nil {
			return false, fmt.Errorf("count the alert's contacts: %w", err)
		}
		n += len(ids)
		if len(ids) < page {
			return n >= want, nil
		}
		after = ids[len(ids)-1]
	}
}

// ensureContacts makes subscribers of numbers not yet known and returns
// the id of each, in order.
func (s *Service) ensureContacts(ctx context.Context, tenantID string, numbers []string) ([]int64, error) {
	got, err := s.Subscribers.EnsureSubscribers(ctx, tenantID, numbers)
	if err != nil {
		return nil, fmt.Errorf("ensure subscribers: %w", err)
	}
	ids := make([]int64, 0, len(numbers))
	for _, num := range numbers {
		id, ok := got[num]
		if !ok {
			return nil, fmt.Errorf("ensure subscribers: no id for %s", subscriber.Mask(num))
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// contactReason says why a contact is refused without repeating the number.
func contactReason(raw string, err error) string {
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		return "empty"
	case len(s) > 32:
		return "too long to be a phone number"
	case errors.Is(err, subscriber.ErrNotMobile):
		return "not a mobile number: a landline, toll-free or premium-rate number takes no SMS"
	}
	return "not a valid phone number"
}

func firstInvalid(inv []InvalidContact) string {
	if len(inv) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" (")
	for i, c := range inv {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(inv)-5)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "index %d: %s", c.Index, c.Reason)
	}
	b.WriteString(")")
	return b.String()
}

// GetAlert reads an exposure alert with its report. An install promotion's
// id is not an alert: apperr.ErrNotFound.
func (s *Service) GetAlert(ctx context.Context, p tenant.Principal, id string) (AlertView, error) {
	c, err := s.Store.GetCampaign(ctx, p.TenantID, id)
	if err != nil {
		return AlertView{}, err
	}
	if c.Kind != KindExposureAlert {
		return AlertView{}, apperr.NotFound("alert")
	}
	st, err := s.stats(ctx, c)
	if err != nil {
		return AlertView{}, err
	}
	return AlertView{Campaign: c, Stats: st}, nil
}
