package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"outreach/internal/apperr"
	"outreach/subscriber"
	"outreach/tenant"
)

// RunSubscribers is the tenant and subscriber contract. newStore returns a
// fresh, migrated, empty store that lives until the test ends.
func RunSubscribers(t *testing.T, newStore func(t *testing.T) SubscriberStore) {
	ctx := context.Background()

	// One store serves every subtest: each works in tenants of its own,
	// named after it, which the isolation tests show is enough. Subtests
	// run one at a time: the suite takes well under a second, and SQLite's
	// single writer under -race on a busy machine could otherwise wait out
	// its busy timeout.
	store := newStore(t)
	setup := func(t *testing.T) (SubscriberStore, tenant.Tenant) {
		t.Helper()
		tn, err := store.EnsureTenant(ctx, t.Name())
		if err != nil {
			t.Fatalf("EnsureTenant: %v", err)
		}
		return store, tn
	}
	get := func(t *testing.T, s SubscriberStore, tenantID, msisdn string) subscriber.Subscriber {
		t.Helper()
		sub, err := s.GetSubscriber(ctx, tenantID, msisdn)
		if err != nil {
			t.Fatalf("GetSubscriber(%s): %v", msisdn, err)
		}
		return sub
	}
	upsert := func(t *testing.T, s SubscriberStore, tenantID string, rows []subscriber.Row, list string) subscriber.UpsertResult {
		t.Helper()
		res, err := s.UpsertSubscribers(ctx, tenantID, rows, list)
		if err != nil {
			t.Fatalf("UpsertSubscribers: %v", err)
		}
		return res
	}
	wantNotFound := func(t *testing.T, what string, err error) {
		t.Helper()
		if !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("%s: got %v, want apperr.ErrNotFound", what, err)
		}
	}

	t.Run("EnsureTenant creates a tenant once and returns the same one after", func(t *testing.T) {
		s, first := setup(t)
		if first.ID == "" || first.Name != t.Name() || first.CreatedAt.IsZero() {
			t.Fatalf("tenant = %+v, want an id, the name and a creation time", first)
		}
		again, err := s.EnsureTenant(ctx, t.Name())
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != first.ID {
			t.Fatalf("second EnsureTenant gave id %s, want %s", again.ID, first.ID)
		}
		other, err := s.EnsureTenant(ctx, t.Name()+"/mobifone")
		if err != nil {
			t.Fatal(err)
		}
		if other.ID == first.ID {
			t.Fatal("two tenant names share one id")
		}
		byName, err := s.TenantByName(ctx, t.Name())
		if err != nil || byName.ID != first.ID {
			t.Fatalf("TenantByName = %+v, %v; want id %s", byName, err, first.ID)
		}
	})

	t.Run("a tenant's policy settings start empty and are replaced whole", func(t *testing.T) {
		s, tn := setup(t)
		p, err := s.TenantPolicy(ctx, tn.ID)
		if err != nil || p != (tenant.Policy{}) {
			t.Fatalf("a new tenant's policy = %+v, %v; want none set", p, err)
		}
		none := ""
		set := tenant.Policy{Timezone: "Asia/Bangkok", SendWindow: "08:00-20:00", FrequencyCap: "2/24h",
			MarketingLabel: &none, OptOutText: "Từ chối: soạn HUY gửi 1234"}
		if err := s.SetTenantPolicy(ctx, tn.ID, set); err != nil {
			t.Fatal(err)
		}
		got, err := s.TenantPolicy(ctx, tn.ID)
		if err != nil || got.Timezone != set.Timezone || got.SendWindow != set.SendWindow || got.FrequencyCap != set.FrequencyCap ||
			got.OptOutText != set.OptOutText || got.MarketingLabel == nil || *got.MarketingLabel != "" {
			t.Fatalf("policy read back = %+v, %v; want %+v (an empty label kept, not dropped)", got, err, set)
		}
		if err := s.SetTenantPolicy(ctx, tn.ID, tenant.Policy{SendWindow: "09:00-18:00"}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.TenantPolicy(ctx, tn.ID); err != nil || got != (tenant.Policy{SendWindow: "09:00-18:00"}) {
			t.Fatalf("after a second set: %+v, %v; want only the window", got, err)
		}
		wantNotFound(t, "TenantPolicy of an unknown tenant", func() error { _, err := s.TenantPolicy(ctx, uuid.NewString()); return err }())
		wantNotFound(t, "SetTenantPolicy of an unknown tenant", s.SetTenantPolicy(ctx, uuid.NewString(), set))
	})

	t.Run("an unknown tenant name is not found", func(t *testing.T) {
		s, _ := setup(t)
		_, err := s.TenantByName(ctx, "nobody")
		wantNotFound(t, "TenantByName", err)
	})

	t.Run("an API key resolves to its tenant and role by hash", func(t *testing.T) {
		s, tn := setup(t)
		plain, hash := tenant.NewKey()
		if err := s.CreateAPIKey(ctx, tenant.APIKey{ID: "key-1", TenantID: tn.ID, Role: tenant.RoleMarketer, Hash: hash}); err != nil {
			t.Fatalf("CreateAPIKey: %v", err)
		}
		p, err := s.PrincipalByKeyHash(ctx, tenant.HashKey(plain))
		if err != nil {
			t.Fatalf("PrincipalByKeyHash: %v", err)
		}
		want := tenant.Principal{KeyID: "key-1", TenantID: tn.ID, TenantName: t.Name(), Role: tenant.RoleMarketer}
		if p != want {
			t.Fatalf("principal = %+v, want %+v", p, want)
		}
	})

	t.Run("a tenant's keys are listed and one revoked is refused at once", func(t *testing.T) {
		s, tn := setup(t)
		other, err := s.EnsureTenant(ctx, t.Name()+"-other")
		if err != nil {
			t.Fatal(err)
		}
		plain, hash := tenant.NewKey()
		_, hash2 := tenant.NewKey()
		_, hash3 := tenant.NewKey()
		at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
		for _, k := range []tenant.APIKey{{ID: "k-a", TenantID: tn.ID, Role: tenant.RoleMarketer, Hash: hash, CreatedAt: at},
			{ID: "k-b", TenantID: tn.ID, Role: tenant.RoleAdmin, Hash: hash2, CreatedAt: at.Add(time.Minute)},
			{ID: "k-c", TenantID: other.ID, Role: tenant.RoleAdmin, Hash: hash3, CreatedAt: at}} {
			if err := s.CreateAPIKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		keys, err := s.APIKeys(ctx, tn.ID)
		if err != nil || len(keys) != 2 || keys[0].ID != "k-a" || keys[0].Role != tenant.RoleMarketer ||
			!keys[0].CreatedAt.Equal(at) || keys[1].ID != "k-b" || keys[0].Hash != "" {
			t.Fatalf("APIKeys = %+v, %v", keys, err)
		}
		wantNotFound(t, "DeleteAPIKey of another tenant's key", s.DeleteAPIKey(ctx, tn.ID, "k-c"))
		if err := s.DeleteAPIKey(ctx, tn.ID, "k-a"); err != nil {
			t.Fatal(err)
		}
		_, err = s.PrincipalByKeyHash(ctx, tenant.HashKey(plain))
		wantNotFound(t, "PrincipalByKeyHash of a revoked key", err)
		wantNotFound(t, "DeleteAPIKey again", s.DeleteAPIKey(ctx, tn.ID, "k-a"))
		if keys, err := s.APIKeys(ctx, tn.ID); err != nil || len(keys) != 1 || keys[0].ID != "k-b" {
			t.Errorf("APIKeys after the revocation = %+v, %v", keys, err)
		}
	})

	t.Run("an unknown key hash is not found", func(t *testing.T) {
		s, _ := setup(t)
		_, err := s.PrincipalByKeyHash(ctx, tenant.HashKey("ok_nope"))
		wantNotFound(t, "PrincipalByKeyHash", err)
	})

	t.Run("a key for an unknown tenant is not found and a reused hash conflicts", func(t *testing.T) {
		s, tn := setup(t)
		_, hash := tenant.NewKey()
		err := s.CreateAPIKey(ctx, tenant.APIKey{TenantID: "no-such-tenant", Role: tenant.RoleAdmin, Hash: hash})
		wantNotFound(t, "CreateAPIKey for unknown tenant", err)
		if err := s.CreateAPIKey(ctx, tenant.APIKey{TenantID: tn.ID, Role: tenant.RoleAdmin, Hash: hash}); err != nil {
			t.Fatalf("CreateAPIKey without id: %v", err)
		}
		err = s.CreateAPIKey(ctx, tenant.APIKey{TenantID: tn.ID, Role: tenant.RoleViewer, Hash: hash})
		if !errors.Is(err, apperr.ErrConflict) {
			t.Fatalf("CreateAPIKey with a reused hash: got %v, want apperr.ErrConflict", err)
		}
	})

	t.Run("the install secret starts empty and is kept once set", func(t *testing.T) {
		s, tn := setup(t)
		if tn.InstallSecret != "" {
			t.Fatalf("new tenant has install secret %q", tn.InstallSecret)
		}
		if err := s.SetInstallSecret(ctx, tn.ID, "s3cret"); err != nil {
			t.Fatalf("SetInstallSecret: %v", err)
		}
		got, err := s.TenantByName(ctx, t.Name())
		if err != nil || got.InstallSecret != "s3cret" {
			t.Fatalf("TenantByName = %+v, %v; want install secret kept", got, err)
		}
		again, err := s.EnsureTenant(ctx, t.Name())
		if err != nil || again.InstallSecret != "s3cret" {
			t.Fatalf("EnsureTenant = %+v, %v; want install secret kept", again, err)
		}
		wantNotFound(t, "SetInstallSecret for unknown tenant", s.SetInstallSecret(ctx, "no-such-tenant", "x"))
	})

	t.Run("ReplaceRegions replaces the whole region table of one tenant", func(t *testing.T) {
		s, tn := setup(t)
		other, _ := s.EnsureTenant(ctx, t.Name()+"/mobifone")
		if err := s.ReplaceRegions(ctx, other.ID, []subscriber.Region{{Code: "HN", Name: "Hà Nội", Population: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceRegions(ctx, tn.ID, []subscriber.Region{
			{Code: "HN", Name: "Hà Nội", Population: 8053663},
			{Code: "DN", Name: "Đà Nẵng", Population: 1128713},
		}); err != nil {
			t.Fatalf("ReplaceRegions: %v", err)
		}
		if err := s.ReplaceRegions(ctx, tn.ID, []subscriber.Region{
			{Code: "HG", Name: "Hà Giang", Population: 854679},
			{Code: "DN", Name: "Đà Nẵng", Population: 1128714},
		}); err != nil {
			t.Fatalf("ReplaceRegions again: %v", err)
		}
		got, err := s.ListRegions(ctx, tn.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []subscriber.Region{{Code: "DN", Name: "Đà Nẵng", Population: 1128714}, {Code: "HG", Name: "Hà Giang", Population: 854679}}
		if !slices.Equal(got, want) {
			t.Fatalf("regions = %+v, want %+v", got, want)
		}
		got, _ = s.ListRegions(ctx, other.ID)
		if len(got) != 1 || got[0].Population != 1 {
			t.Fatalf("other tenant's regions = %+v, want its own one row untouched", got)
		}
		wantNotFound(t, "ReplaceRegions for unknown tenant", s.ReplaceRegions(ctx, "no-such-tenant", nil))
	})

	t.Run("an upsert counts inserted and updated rows", func(t *testing.T) {
		s, tn := setup(t)
		res := upsert(t, s, tn.ID, []subscriber.Row{
			{MSISDN: "+84912345678", Region: "HN", Locale: "vi", Attributes: map[string]string{"name": "An"}},
			{MSISDN: "+84987654321", Region: "DN", Locale: "en"},
		}, "")
		if res != (subscriber.UpsertResult{Inserted: 2}) {
			t.Fatalf("first upsert = %+v, want 2 inserted", res)
		}
		res = upsert(t, s, tn.ID, []subscriber.Row{
			{MSISDN: "+84912345678", Region: "HG", Locale: "vi"},
			{MSISDN: "+84987654321", Region: "DN", Locale: "en"}, // unchanged
			{MSISDN: "+84901234567", Region: "DB"},
		}, "")
		if res != (subscriber.UpsertResult{Inserted: 1, Updated: 2}) {
			t.Fatalf("second upsert = %+v, want 1 inserted, 2 updated", res)
		}
		sub := get(t, s, tn.ID, "+84901234567")
		if sub.Locale != "vi" || sub.Region != "DB" || sub.OptedOut || sub.Installed || sub.ID == 0 || sub.TenantID != tn.ID {
			t.Fatalf("new subscriber = %+v, want locale vi by default, region DB", sub)
		}
		if sub.Attributes == nil || sub.Devices == nil || sub.Lists == nil {
			t.Fatalf("new subscriber = %+v, want empty (not nil) attributes, devices and lists", sub)
		}
		if sub.CreatedAt.IsZero() || sub.UpdatedAt.IsZero() {
			t.Fatalf("new subscriber = %+v, want creation and update times", sub)
		}
	})

	t.Run("a number repeated in one batch is one subscriber with the later values", func(t *testing.T) {
		s, tn := setup(t)
		res := upsert(t, s, tn.ID, []subscriber.Row{
			{MSISDN: "+84912345678", Region: "HN", Locale: "vi", Attributes: map[string]string{"name": "An", "plan": "prepaid"}},
			{MSISDN: "+84912345678", Region: "DN", Locale: "en", Attributes: map[string]string{"plan": "postpaid"}},
		}, "")
		if res != (subscriber.UpsertResult{Inserted: 1, Updated: 1}) {
			t.Fatalf("upsert = %+v, want 1 inserted, 1 updated", res)
		}
		sub := get(t, s, tn.ID, "+84912345678")
		if sub.Region != "DN" || sub.Locale != "en" || !maps.Equal(sub.Attributes, map[string]string{"name": "An", "plan": "postpaid"}) {
			t.Fatalf("subscriber = %+v, want the later row folded over the first", sub)
		}
	})

	t.Run("an update replaces region and locale and merges attributes", func(t *testing.T) {
		s, tn := setup(t)
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: "+84912345678", Region: "HN", Locale: "vi",
			Attributes: map[string]string{"name": "Nguyễn Văn An", "plan": "prepaid"}}}, "")
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: "+84912345678", Region: "DN", Locale: "en",
			Attributes: map[string]string{"plan": "postpaid", "segment": "youth"}}}, "")
		sub := get(t, s, tn.ID, "+84912345678")
		want := map[string]string{"name": "Nguyễn Văn An", "plan": "postpaid", "segment": "youth"}
		if sub.Region != "DN" || sub.Locale != "en" || !maps.Equal(sub.Attributes, want) {
			t.Fatalf("subscriber = %+v, want region DN, locale en, attributes %v", sub, want)
		}
	})

	t.Run("an update with an empty region and locale keeps the stored ones", func(t *testing.T) {
		s, tn := setup(t)
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: "+84912345678", Region: "HN", Locale: "en",
			Attributes: map[string]string{"name": "An"}}}, "")
		res := upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: "+84912345678"}}, "vip")
		if res != (subscriber.UpsertResult{Updated: 1}) {
			t.Fatalf("upsert = %+v, want 1 updated", res)
		}
		sub := get(t, s, tn.ID, "+84912345678")
		if sub.Region != "HN" || sub.Locale != "en" || sub.Attributes["name"] != "An" {
			t.Fatalf("subscriber = %+v, want region, locale and attributes kept", sub)
		}
		if !slices.Equal(sub.Lists, []string{"vip"}) {
			t.Fatalf("lists = %v, want [vip]", sub.Lists)
		}
	})

	t.Run("an update keeps the opt-out and install state", func(t *testing.T) {
		s, tn := setup(t)
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: "+84912345678", Region: "HN"}}, "")
		if err := s.SetOptOut(ctx, tn.ID, "+84912345678", true); err != nil {
			t.Fatal(err)
		}
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: "+84912345678", Region: "DN", Locale: "vi"}}, "")
		sub := get(t, s, tn.ID, "+84912345678")
		if !sub.OptedOut || sub.Installed || sub.Region != "DN" {
			t.Fatalf("subscriber = %+v, want still opted out, not installed, region updated", sub)
		}
	})

	t.Run("rows upserted with a list name join that list once", func(t *testing.T) {
		s, tn := setup(t)
		rows := []subscriber.Row{{MSISDN: "+84912345678"}, {MSISDN: "+84987654321"}}
		upsert(t, s, tn.ID, rows, "f1-contacts")
		upsert(t, s, tn.ID, rows, "f1-contacts")
		upsert(t, s, tn.ID, rows[:1], "vip")
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: "+84901234567"}}, "")
		if l := get(t, s, tn.ID, "+84912345678").Lists; !slices.Equal(l, []string{"f1-contacts", "vip"}) {
			t.Fatalf("lists = %v, want [f1-contacts vip]", l)
		}
		if l := get(t, s, tn.ID, "+84987654321").Lists; !slices.Equal(l, []string{"f1-contacts"}) {
			t.Fatalf("lists = %v, want [f1-contacts]", l)
		}
		if l := get(t, s, tn.ID, "+84901234567").Lists; len(l) != 0 {
			t.Fatalf("lists = %v, want none", l)
		}
		other, _ := s.EnsureTenant(ctx, t.Name()+"/mobifone")
		upsert(t, s, other.ID, rows[:1], "f1-contacts")
		if l := get(t, s, other.ID, "+84912345678").Lists; !slices.Equal(l, []string{"f1-contacts"}) {
			t.Fatalf("other tenant's lists = %v, want only its own [f1-contacts]", l)
		}
		for _, c := range []struct {
			tenant, name string
			want         bool
		}{{tn.ID, "f1-contacts", true}, {tn.ID, "vip", true}, {tn.ID, "VIP", false}, {tn.ID, "nope", false},
			{other.ID, "f1-contacts", true}, {other.ID, "vip", false}} {
			got, err := s.ListExists(ctx, c.tenant, c.name)
			if err != nil || got != c.want {
				t.Fatalf("ListExists(%s) = %v, %v; want %v", c.name, got, err, c.want)
			}
		}
	})

	t.Run("an upsert for an unknown tenant is not found", func(t *testing.T) {
		s, _ := setup(t)
		_, err := s.UpsertSubscribers(ctx, "no-such-tenant", []subscriber.Row{{MSISDN: "+84912345678"}}, "")
		wantNotFound(t, "UpsertSubscribers", err)
		_, err = s.EnsureSubscribers(ctx, "no-such-tenant", []string{"+84912345678"})
		wantNotFound(t, "EnsureSubscribers", err)
	})

	t.Run("a batch of thousands of rows lands in one call", func(t *testing.T) {
		s, tn := setup(t)
		rows := make([]subscriber.Row, 5000)
		for i := range rows {
			rows[i] = subscriber.Row{MSISDN: fmt.Sprintf("+8491%07d", i), Region: "HN",
				Attributes: map[string]string{"n": fmt.Sprint(i)}}
		}
		if res := upsert(t, s, tn.ID, rows, "big"); res != (subscriber.UpsertResult{Inserted: 5000}) {
			t.Fatalf("upsert = %+v, want 5000 inserted", res)
		}
		for i := range rows {
			rows[i].Region = "DN"
		}
		if res := upsert(t, s, tn.ID, rows, "big"); res != (subscriber.UpsertResult{Updated: 5000}) {
			t.Fatalf("upsert again = %+v, want 5000 updated", res)
		}
		sub := get(t, s, tn.ID, "+84910004999")
		if sub.Region != "DN" || sub.Attributes["n"] != "4999" || !slices.Equal(sub.Lists, []string{"big"}) {
			t.Fatalf("subscriber = %+v", sub)
		}
	})

	t.Run("the same MSISDN in two tenants is two subscribers", func(t *testing.T) {
		s, a := setup(t)
		b, _ := s.EnsureTenant(ctx, t.Name()+"/mobifone")
		upsert(t, s, a.ID, []subscriber.Row{{MSISDN: "+84912345678", Region: "HN"}}, "")
		if res := upsert(t, s, b.ID, []subscriber.Row{{MSISDN: "+84912345678", Region: "DN"}}, ""); res.Inserted != 1 {
			t.Fatalf("upsert in the second tenant = %+v, want a new subscriber", res)
		}
		sa, sb := get(t, s, a.ID, "+84912345678"), get(t, s, b.ID, "+84912345678")
		if sa.ID == sb.ID || sa.Region != "HN" || sb.Region != "DN" {
			t.Fatalf("subscribers = %+v and %+v, want two distinct ones", sa, sb)
		}
	})

	t.Run("one tenant never sees or changes the other's subscribers", func(t *testing.T) {
		s, a := setup(t)
		b, _ := s.EnsureTenant(ctx, t.Name()+"/mobifone")
		upsert(t, s, a.ID, []subscriber.Row{{MSISDN: "+84912345678", Region: "HN"}}, "")
		if err := s.PutDevice(ctx, a.ID, "+84912345678", subscriber.Device{Platform: subscriber.PlatformFCM, Token: "tok"}); err != nil {
			t.Fatal(err)
		}
		_, err := s.GetSubscriber(ctx, b.ID, "+84912345678")
		wantNotFound(t, "GetSubscriber from the other tenant", err)
		wantNotFound(t, "SetOptOut from the other tenant", s.SetOptOut(ctx, b.ID, "+84912345678", true))
		wantNotFound(t, "PutDevice from the other tenant",
			s.PutDevice(ctx, b.ID, "+84912345678", subscriber.Device{Platform: subscriber.PlatformAPNs, Token: "x"}))
		if err := s.RemoveDevice(ctx, b.ID, subscriber.PlatformFCM, "tok"); err != nil {
			t.Fatal(err)
		}
		sub := get(t, s, a.ID, "+84912345678")
		if sub.OptedOut || len(sub.Devices) != 1 {
			t.Fatalf("subscriber = %+v, want untouched by the other tenant", sub)
		}
		ids, err := s.EnsureSubscribers(ctx, b.ID, []string{"+84912345678"})
		if err != nil {
			t.Fatal(err)
		}
		if ids["+84912345678"] == sub.ID {
			t.Fatal("EnsureSubscribers in another tenant returned this tenant's subscriber")
		}
	})

	t.Run("putting a device twice registers it once and removing it deletes it", func(t *testing.T) {
		s, tn := setup(t)
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: "+84912345678"}, {MSISDN: "+84987654321"}}, "")
		fcm := subscriber.Device{Platform: subscriber.PlatformFCM, Token: "fcm-token"}
		apns := subscriber.Device{Platform: subscriber.PlatformAPNs, Token: "apns-token"}
		// Registered on another number first, the token moves to this one.
		if err := s.PutDevice(ctx, tn.ID, "+84987654321", fcm); err != nil {
			t.Fatal(err)
		}
		for _, d := range []subscriber.Device{fcm, fcm, apns} {
			if err := s.PutDevice(ctx, tn.ID, "+84912345678", d); err != nil {
				t.Fatalf("PutDevice: %v", err)
			}
		}
		devs := get(t, s, tn.ID, "+84912345678").Devices
		if len(devs) != 2 {
			t.Fatalf("devices = %+v, want 2", devs)
		}
		for _, d := range devs {
			if d.CreatedAt.IsZero() {
				t.Fatalf("device %+v has no creation time", d)
			}
		}
		if err := s.RemoveDevice(ctx, tn.ID, subscriber.PlatformFCM, "fcm-token"); err != nil {
			t.Fatalf("RemoveDevice: %v", err)
		}
		devs = get(t, s, tn.ID, "+84912345678").Devices
		if len(devs) != 1 || devs[0].Platform != subscriber.PlatformAPNs || devs[0].Token != "apns-token" {
			t.Fatalf("devices after remove = %+v, want only the apns one", devs)
		}
		if devs := get(t, s, tn.ID, "+84987654321").Devices; len(devs) != 0 {
			t.Fatalf("a token stays on the number it moved from: %+v", devs)
		}
		if err := s.RemoveDevice(ctx, tn.ID, subscriber.PlatformFCM, "fcm-token"); err != nil {
			t.Fatalf("removing an unknown token: %v", err)
		}
	})

	// A push token is one app install on one phone: registered for another
	// number of the tenant (the phone changed hands, the app was reinstalled
	// under another number) it leaves the old one, or an exposure alert
	// would reach someone else's phone.
	t.Run("a token registered on another subscriber moves to it, within the tenant only", func(t *testing.T) {
		s, tn := setup(t)
		other, err := s.EnsureTenant(ctx, t.Name()+"/mobifone")
		if err != nil {
			t.Fatal(err)
		}
		const a, b, tok = "+84912345678", "+84988000002", "tok-fcm-1"
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: a}, {MSISDN: b}}, "")
		upsert(t, s, other.ID, []subscriber.Row{{MSISDN: a}}, "")
		put := func(tenantID, msisdn string, p subscriber.Platform, token string) {
			t.Helper()
			if err := s.PutDevice(ctx, tenantID, msisdn, subscriber.Device{Platform: p, Token: token}); err != nil {
				t.Fatalf("PutDevice(%s, %s, %s): %v", msisdn, p, token, err)
			}
		}
		// holding lists the platforms under which msisdn holds token.
		holding := func(tenantID, msisdn, token string) []subscriber.Platform {
			t.Helper()
			var ps []subscriber.Platform
			for _, d := range get(t, s, tenantID, msisdn).Devices {
				if d.Token == token {
					ps = append(ps, d.Platform)
				}
			}
			return ps
		}
		fcm, apns := subscriber.PlatformFCM, subscriber.PlatformAPNs

		put(tn.ID, a, fcm, tok)
		put(tn.ID, a, apns, "tok-a-own") // a's other phone stays with a
		put(other.ID, a, fcm, tok)       // the same token in another tenant
		put(tn.ID, b, fcm, tok)
		if got := holding(tn.ID, a, tok); len(got) != 0 {
			t.Fatalf("A still holds the token under %v after it was registered on B", got)
		}
		if got := holding(tn.ID, a, "tok-a-own"); !slices.Equal(got, []subscriber.Platform{apns}) {
			t.Fatalf("A's other device = %v, want kept", got)
		}
		if got := holding(tn.ID, b, tok); !slices.Equal(got, []subscriber.Platform{fcm}) {
			t.Fatalf("B holds the token under %v, want fcm once", got)
		}

		first := get(t, s, tn.ID, b).Devices
		put(tn.ID, b, fcm, tok) // idempotent: nothing changes
		if again := get(t, s, tn.ID, b).Devices; len(again) != 1 || !again[0].CreatedAt.Equal(first[0].CreatedAt) {
			t.Fatalf("devices after re-registering = %+v, want unchanged %+v", again, first)
		}

		put(tn.ID, b, apns, tok) // the platform changes: one row, the new platform
		if got := holding(tn.ID, b, tok); !slices.Equal(got, []subscriber.Platform{apns}) {
			t.Fatalf("B holds the token under %v after a platform change, want apns once", got)
		}
		if devs := get(t, s, tn.ID, b).Devices; len(devs) != 1 {
			t.Fatalf("B's devices = %+v, want one", devs)
		}
		if got := holding(tn.ID, a, tok); len(got) != 0 {
			t.Fatalf("A holds the token again under %v", got)
		}

		if got := holding(other.ID, a, tok); !slices.Equal(got, []subscriber.Platform{fcm}) {
			t.Fatalf("the other tenant's subscriber holds the token under %v, want fcm untouched", got)
		}
		if err := s.RemoveDevice(ctx, tn.ID, apns, tok); err != nil {
			t.Fatal(err)
		}
		if got := holding(other.ID, a, tok); !slices.Equal(got, []subscriber.Platform{fcm}) {
			t.Fatalf("removing the token in one tenant touched the other: %v", got)
		}

		put(tn.ID, a, fcm, tok) // and back to A
		if got, gotB := holding(tn.ID, a, tok), holding(tn.ID, b, tok); !slices.Equal(got, []subscriber.Platform{fcm}) || len(gotB) != 0 {
			t.Fatalf("after moving back: A holds %v, B holds %v; want A fcm once, B none", got, gotB)
		}
	})

	t.Run("concurrent registrations of one token leave it on one subscriber", func(t *testing.T) {
		s, tn := setup(t)
		const n = 8
		var rows []subscriber.Row
		for i := range n {
			rows = append(rows, subscriber.Row{MSISDN: fmt.Sprintf("+8491234%04d", i)})
		}
		upsert(t, s, tn.ID, rows, "")
		errs := make(chan error, n)
		for i, r := range rows {
			p := subscriber.PlatformFCM
			if i%2 == 1 {
				p = subscriber.PlatformAPNs
			}
			go func() {
				errs <- s.PutDevice(ctx, tn.ID, r.MSISDN, subscriber.Device{Platform: p, Token: "shared-token"})
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("PutDevice: %v", err)
			}
		}
		held := 0
		for _, r := range rows {
			held += len(get(t, s, tn.ID, r.MSISDN).Devices)
		}
		if held != 1 {
			t.Fatalf("the token is registered %d times, want once", held)
		}
	})

	t.Run("the longest values the API and importer accept are stored", func(t *testing.T) {
		s, a := setup(t)
		long := func(c string, n int) string { return strings.Repeat(c, n) }
		row := subscriber.Row{MSISDN: "+84912345678", Region: long("R", subscriber.MaxRegionCodeLen),
			Attributes: map[string]string{long("a", subscriber.MaxAttributeNameBytes): long("v", subscriber.MaxAttributeValueBytes)}}
		upsert(t, s, a.ID, []subscriber.Row{row}, long("l", 100))
		// Random, so that PostgreSQL cannot compress the index entry.
		token := make([]byte, subscriber.MaxTokenBytes)
		for i := range token {
			token[i] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"[rand.IntN(64)]
		}
		if err := s.PutDevice(ctx, a.ID, row.MSISDN, subscriber.Device{Platform: subscriber.PlatformFCM, Token: string(token)}); err != nil {
			t.Fatalf("PutDevice with a %d-byte token: %v", len(token), err)
		}
		if sub := get(t, s, a.ID, row.MSISDN); sub.Region != row.Region || len(sub.Devices) != 1 {
			t.Fatalf("subscriber = %+v", sub)
		}
	})

	t.Run("a device for an unknown subscriber is not found and a bad one is refused", func(t *testing.T) {
		s, tn := setup(t)
		wantNotFound(t, "PutDevice", s.PutDevice(ctx, tn.ID, "+84912345678",
			subscriber.Device{Platform: subscriber.PlatformFCM, Token: "t"}))
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: "+84912345678"}}, "")
		var fe apperr.FieldErrors
		err := s.PutDevice(ctx, tn.ID, "+84912345678", subscriber.Device{Platform: "sms", Token: ""})
		if !errors.As(err, &fe) || fe["platform"] == "" || fe["token"] == "" {
			t.Fatalf("PutDevice with a bad platform and no token: got %v, want field errors for both", err)
		}
	})

	t.Run("a subscriber opts out and back in", func(t *testing.T) {
		s, tn := setup(t)
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: "+84912345678"}}, "")
		before := get(t, s, tn.ID, "+84912345678")
		for _, opt := range []bool{true, true, false, true} {
			if err := s.SetOptOut(ctx, tn.ID, "+84912345678", opt); err != nil {
				t.Fatal(err)
			}
			if got := get(t, s, tn.ID, "+84912345678").OptedOut; got != opt {
				t.Fatalf("opted out = %v after SetOptOut(%v)", got, opt)
			}
		}
		after := get(t, s, tn.ID, "+84912345678")
		if after.UpdatedAt.Before(before.UpdatedAt) {
			t.Fatalf("updated_at went back: %v → %v", before.UpdatedAt, after.UpdatedAt)
		}
		wantNotFound(t, "SetOptOut of an unknown number", s.SetOptOut(ctx, tn.ID, "+84987654321", true))
	})

	t.Run("a STOP before any tenant holds the number opts out the subscribers created for it later", func(t *testing.T) {
		s, tn := setup(t)
		// Numbers of this subtest alone: a number's opt-out is the
		// deployment's, not a tenant's.
		const early, alertOnly, restarted = "+84970000001", "+84970000002", "+84970000003"
		for _, m := range []string{early, alertOnly, restarted} {
			n, err := s.OptOutEverywhere(ctx, m, true)
			if err != nil || n != 0 {
				t.Fatalf("OptOutEverywhere(%s) = %d, %v; want 0 subscribers, no error", m, n, err)
			}
		}
		if n, err := s.OptOutEverywhere(ctx, early, true); err != nil || n != 0 { // a repeat
			t.Fatalf("a repeated STOP: %d, %v", n, err)
		}
		if n, err := s.OptOutEverywhere(ctx, restarted, false); err != nil || n != 0 { // START
			t.Fatalf("START: %d, %v", n, err)
		}
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: early, Region: "HN"}, {MSISDN: restarted, Region: "HN"},
			{MSISDN: "+84970000004", Region: "HN"}}, "")
		if _, err := s.EnsureSubscribers(ctx, tn.ID, []string{alertOnly}); err != nil {
			t.Fatal(err)
		}
		for m, want := range map[string]bool{early: true, alertOnly: true, restarted: false, "+84970000004": false} {
			sub := get(t, s, tn.ID, m)
			if sub.OptedOut != want {
				t.Errorf("%s: opted out %v, want %v", m, sub.OptedOut, want)
			}
		}
		// Once it is a subscriber, the tenant's own opt-in still works, and
		// a later import keeps it.
		if err := s.SetOptOut(ctx, tn.ID, early, false); err != nil {
			t.Fatal(err)
		}
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: early, Region: "DN"}}, "")
		if get(t, s, tn.ID, early).OptedOut {
			t.Error("a re-import opted the subscriber the tenant opted back in out again")
		}
		// START clears the number's opt-out with its subscribers'.
		if n, err := s.OptOutEverywhere(ctx, alertOnly, false); err != nil || n != 1 {
			t.Fatalf("START of an alert's contact: %d, %v", n, err)
		}
		other, err := s.EnsureTenant(ctx, t.Name()+"/other")
		if err != nil {
			t.Fatal(err)
		}
		upsert(t, s, other.ID, []subscriber.Row{{MSISDN: alertOnly, Region: "HN"}, {MSISDN: early, Region: "HN"}}, "")
		if get(t, s, other.ID, alertOnly).OptedOut || !get(t, s, other.ID, early).OptedOut {
			t.Errorf("another tenant's import: %+v / %+v, want the number that sent START marketable and the one that sent STOP opted out",
				get(t, s, other.ID, alertOnly), get(t, s, other.ID, early))
		}
	})

	t.Run("EnsureSubscribers creates unknown numbers bare and returns every id", func(t *testing.T) {
		s, tn := setup(t)
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: "+84912345678", Region: "HN", Locale: "en"}}, "")
		known := get(t, s, tn.ID, "+84912345678")
		ids, err := s.EnsureSubscribers(ctx, tn.ID, []string{"+84912345678", "+84987654321", "+84987654321"})
		if err != nil {
			t.Fatalf("EnsureSubscribers: %v", err)
		}
		if len(ids) != 2 || ids["+84912345678"] != known.ID || ids["+84987654321"] == 0 {
			t.Fatalf("ids = %v, want the known id %d and a new one", ids, known.ID)
		}
		bare := get(t, s, tn.ID, "+84987654321")
		if bare.ID != ids["+84987654321"] || bare.Region != "" || bare.Locale != "vi" || !bare.AlertOnly {
			t.Fatalf("new subscriber = %+v, want bare with locale vi, alert only", bare)
		}
		if k := get(t, s, tn.ID, "+84912345678"); k.Region != "HN" || k.Locale != "en" || k.AlertOnly {
			t.Fatalf("known subscriber = %+v, want untouched", k)
		}
		again, err := s.EnsureSubscribers(ctx, tn.ID, []string{"+84987654321"})
		if err != nil || again["+84987654321"] != ids["+84987654321"] {
			t.Fatalf("EnsureSubscribers again = %v, %v; want the same id", again, err)
		}
		none, err := s.EnsureSubscribers(ctx, tn.ID, nil)
		if err != nil || len(none) != 0 {
			t.Fatalf("EnsureSubscribers(nil) = %v, %v", none, err)
		}
		// Imported, the number joins the base as new: counted inserted and
		// created now, so that neither tells that an alert named it.
		time.Sleep(2 * time.Millisecond)
		res := upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: "+84987654321", Region: "DN"}, {MSISDN: "+84912345678"}}, "")
		if res.Inserted != 1 || res.Updated != 1 {
			t.Fatalf("importing an alert's contact and a subscriber = %+v, want 1 inserted, 1 updated", res)
		}
		if imported := get(t, s, tn.ID, "+84987654321"); imported.AlertOnly || !imported.CreatedAt.After(bare.CreatedAt) {
			t.Fatalf("imported subscriber = %+v, want no longer alert only, created at the import (not %v)", imported, bare.CreatedAt)
		}
	})

	t.Run("an unknown subscriber is not found", func(t *testing.T) {
		s, tn := setup(t)
		_, err := s.GetSubscriber(ctx, tn.ID, "+84912345678")
		wantNotFound(t, "GetSubscriber", err)
	})

	t.Run("device and subscriber times come back in UTC-comparable form", func(t *testing.T) {
		s, tn := setup(t)
		start := time.Now().Add(-time.Minute)
		upsert(t, s, tn.ID, []subscriber.Row{{MSISDN: "+84912345678"}}, "")
		sub := get(t, s, tn.ID, "+84912345678")
		if sub.CreatedAt.Before(start) || sub.CreatedAt.After(time.Now().Add(time.Minute)) {
			t.Fatalf("created_at = %v, want about now", sub.CreatedAt)
		}
	})
}

// BenchRowsVar sets the number of rows BenchImport imports per iteration.
const BenchRowsVar = "OUTREACH_BENCH_ROWS"

// BenchImport measures subscriber.Importer on a store: per iteration, a
// synthetic CSV of OUTREACH_BENCH_ROWS rows (default 100,000; the batch
// size and writer count may be set with OUTREACH_BENCH_BATCH and
// OUTREACH_BENCH_WRITERS), generated
// lazily, streams into a fresh tenant ("new": every row an insert) or into
// a tenant that already holds the same base ("existing": every row an
// update that changes nothing). It reports rows/s.
func BenchImport(b *testing.B, s SubscriberStore) {
	knob := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			b.Fatalf("%s=%q: want a number", name, v)
		}
		return n
	}
	rows := knob(BenchRowsVar, 100_000)
	// Tuning knobs; 0 keeps the importer's defaults.
	batch, writers := knob("OUTREACH_BENCH_BATCH", 0), knob("OUTREACH_BENCH_WRITERS", 0)
	ctx := context.Background()
	run := func(b *testing.B, tenantID string, seed int64) {
		b.Helper()
		im := &subscriber.Importer{Store: s, BatchSize: batch, Writers: writers}
		res, err := im.Import(ctx, tenantID, subscriber.SyntheticCSV(rows, seed), "")
		if err != nil {
			b.Fatal(err)
		}
		if res.Imported+res.Updated != rows || res.Rejected != 0 {
			b.Fatalf("import = %+v, want %d rows landed", res, rows)
		}
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	}
	b.Run("new", func(b *testing.B) {
		i := 0
		for b.Loop() {
			b.StopTimer()
			tn, err := s.EnsureTenant(ctx, fmt.Sprintf("bench-new-%d-%d", rows, i))
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			run(b, tn.ID, int64(i))
			i++
		}
		report(b)
	})
	b.Run("existing", func(b *testing.B) {
		tn, err := s.EnsureTenant(ctx, fmt.Sprintf("bench-existing-%d", rows))
		if err != nil {
			b.Fatal(err)
		}
		run(b, tn.ID, 1)
		for b.Loop() {
			run(b, tn.ID, 1)
		}
		report(b)
	})
}

// CheckDeviceTokenMigration checks migration 0007 on a store migrated up to
// 0006: it registers tokens of tenant tn on numbers a, b and c, one of them
// also in another tenant, through insert (the backend's own SQL, written
// as before 0007), runs the migration through migrate, and checks that each
// token is left with its newest registration, the other tenant keeps its
// own, and the migrated table takes registrations under the
// one-subscriber rule.
func CheckDeviceTokenMigration(t *testing.T, s SubscriberStore,
	insert func(subscriberID int64, platform, token string, at time.Time) error, migrate func() error) {
	t.Helper()
	ctx := context.Background()
	tenantOf := func(name string) string {
		t.Helper()
		tn, err := s.EnsureTenant(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return tn.ID
	}
	tn, other := tenantOf("viettel"), tenantOf("mobifone")
	const a, b, c = "+84912345678", "+84988000002", "+84988000003"
	ids, err := s.EnsureSubscribers(ctx, tn, []string{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	otherIDs, err := s.EnsureSubscribers(ctx, other, []string{a})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range []struct {
		id              int64
		platform, token string
		at              time.Time
	}{
		{ids[c], "apns", "tok-1", t0},
		{ids[a], "fcm", "tok-1", t0.Add(time.Hour)},
		{ids[b], "fcm", "tok-1", t0.Add(2 * time.Hour)}, // newest: kept
		{ids[a], "fcm", "tok-2", t0.Add(time.Hour)},
		{ids[a], "apns", "tok-2", t0.Add(2 * time.Hour)}, // newest: kept
		{ids[a], "fcm", "tok-3", t0},
		{otherIDs[a], "fcm", "tok-1", t0}, // another tenant: kept
	} {
		if err := insert(r.id, r.platform, r.token, r.at); err != nil {
			t.Fatal(err)
		}
	}
	if err := migrate(); err != nil {
		t.Fatalf("Migrate over duplicate tokens: %v", err)
	}

	devices := func(tenantID, msisdn string) []string {
		t.Helper()
		sub, err := s.GetSubscriber(ctx, tenantID, msisdn)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range sub.Devices {
			out = append(out, string(d.Platform)+":"+d.Token)
		}
		return out
	}
	for _, w := range []struct {
		tenant, msisdn string
		want           []string
	}{
		{tn, a, []string{"fcm:tok-3", "apns:tok-2"}},
		{tn, b, []string{"fcm:tok-1"}},
		{tn, c, nil},
		{other, a, []string{"fcm:tok-1"}},
	} {
		if got := devices(w.tenant, w.msisdn); !slices.Equal(got, w.want) {
			t.Errorf("devices of %s in %s = %v, want %v", w.msisdn, w.tenant, got, w.want)
		}
	}
	if err := s.PutDevice(ctx, tn, c, subscriber.Device{Platform: subscriber.PlatformFCM, Token: "tok-3"}); err != nil {
		t.Fatal(err)
	}
	if got := devices(tn, a); !slices.Equal(got, []string{"apns:tok-2"}) {
		t.Errorf("devices of A after moving tok-3 = %v", got)
	}
}
