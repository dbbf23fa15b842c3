package api

import (
	"strings"
	"testing"
	"unicode/utf8"

	"outreach/tenant"
)

const promoVI = "Chào {{.Name}}, hãy cài ứng dụng Bluezone để bảo vệ bản thân và nhận {{.RewardMB}}MB data miễn phí: {{.InstallLink}}"

var anVars = map[string]any{"vars": map[string]any{
	"Name": "An", "RewardMB": 5120, "InstallLink": "https://bluezone.gov.vn/i/abc"}}

func TestTemplatePreview(t *testing.T) {
	f := newFixture(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	create := func(t *testing.T, body map[string]any) string {
		t.Helper()
		r := must(t, 201, f.call(t, "POST", "/v1/templates", mk, body))
		m := r.obj(t)
		for _, k := range []string{"name", "channel", "locale", "body"} {
			if want, ok := body[k]; ok && m[k] != want {
				t.Errorf("created %s = %v, want %v", k, m[k], body[k])
			}
		}
		return m["id"].(string)
	}

	t.Run("Vietnamese with diacritics is UCS-2 and costs two segments", func(t *testing.T) {
		id := create(t, map[string]any{"name": "promo-vi", "channel": "sms", "locale": "vi", "body": promoVI})
		got := must(t, 200, f.call(t, "POST", "/v1/templates/"+id+"/preview", mk, anVars)).obj(t)
		want := "Chào An, hãy cài ứng dụng Bluezone để bảo vệ bản thân và nhận 5120MB data miễn phí: https://bluezone.gov.vn/i/abc"
		if got["text"] != want {
			t.Errorf("text %q, want %q", got["text"], want)
		}
		if got["encoding"] != "UCS-2" || got["segments"] != 2.0 ||
			got["characters"] != float64(utf8.RuneCountInString(want)) {
			t.Errorf("preview %v, want UCS-2, 2 segments, %d characters", got, utf8.RuneCountInString(want))
		}
	})

	t.Run("the same text transliterated is GSM-7 in one segment", func(t *testing.T) {
		id := create(t, map[string]any{"name": "promo-vi-ascii", "channel": "sms", "locale": "vi",
			"body": promoVI, "transliterate": true})
		got := must(t, 200, f.call(t, "POST", "/v1/templates/"+id+"/preview", mk, anVars)).obj(t)
		want := "Chao An, hay cai ung dung Bluezone de bao ve ban than va nhan 5120MB data mien phi: https://bluezone.gov.vn/i/abc"
		if got["text"] != want {
			t.Errorf("text %q, want %q", got["text"], want)
		}
		if got["encoding"] != "GSM-7" || got["segments"] != 1.0 || got["characters"] != float64(len(want)) {
			t.Errorf("preview %v, want GSM-7, 1 segment, %d characters", got, len(want))
		}
		// The answer says what it was previewed for: a marketer's, as an
		// install promotion; a health official's, as an alert.
		if got["kind"] != "install_promotion" {
			t.Errorf("a marketer's preview is for %v, want install_promotion", got["kind"])
		}
		got = must(t, 200, f.call(t, "POST", "/v1/templates/"+id+"/preview", f.key(tenantA, tenant.RoleHealth), anVars)).obj(t)
		if got["kind"] != "exposure_alert" {
			t.Errorf("a health official's preview is for %v, want exposure_alert", got["kind"])
		}
	})

	t.Run("đ becomes d and custom attributes fill in", func(t *testing.T) {
		id := create(t, map[string]any{"name": "dn", "channel": "sms", "locale": "vi",
			"body": `Đà Nẵng: {{.Attr "ward"}}`, "transliterate": true})
		got := must(t, 200, f.call(t, "POST", "/v1/templates/"+id+"/preview", mk,
			map[string]any{"vars": map[string]any{"ward": "Hải Châu"}})).obj(t)
		if got["text"] != "Da Nang: Hai Chau" || got["encoding"] != "GSM-7" {
			t.Errorf("preview %v", got)
		}
	})

	t.Run("a push template previews title, text and data with no segments", func(t *testing.T) {
		id := create(t, map[string]any{"name": "push", "channel": "push", "locale": "vi",
			"title": "Chào {{.Name}}", "body": "Nhận {{.RewardMB}}MB", "data": map[string]string{"link": "{{.InstallLink}}"}})
		got := must(t, 200, f.call(t, "POST", "/v1/templates/"+id+"/preview", mk, anVars)).obj(t)
		if got["title"] != "Chào An" || got["text"] != "Nhận 5120MB" ||
			got["data"].(map[string]any)["link"] != "https://bluezone.gov.vn/i/abc" {
			t.Errorf("preview %v", got)
		}
		// A health key previews it as an exposure alert: no install link,
		// as an alert's deliveries have none.
		got = must(t, 200, f.call(t, "POST", "/v1/templates/"+id+"/preview", f.key(tenantA, tenant.RoleHealth), anVars)).obj(t)
		if got["title"] != "Chào An" || got["data"].(map[string]any)["link"] != "" {
			t.Errorf("alert preview %v", got)
		}
		for _, k := range []string{"segments", "encoding", "characters"} {
			if _, ok := got[k]; ok {
				t.Errorf("a push preview has %s", k)
			}
		}
	})

	t.Run("a preview with no body renders with empty variables", func(t *testing.T) {
		id := create(t, map[string]any{"name": "plain", "channel": "sms", "body": "Xin chao {{.Name}}"})
		got := must(t, 200, f.call(t, "POST", "/v1/templates/"+id+"/preview", mk, nil)).obj(t)
		if got["text"] != "Xin chao " || got["encoding"] != "GSM-7" {
			t.Errorf("preview %v", got)
		}
		if got := must(t, 200, f.call(t, "GET", "/v1/templates/"+id, mk, nil)).obj(t); got["locale"] != "vi" {
			t.Errorf("an empty locale is stored as %v, want vi", got["locale"])
		}
	})

	t.Run("a variable of the wrong type is a 422 naming it", func(t *testing.T) {
		id := create(t, map[string]any{"name": "bad-vars", "channel": "sms", "body": "{{.RewardMB}}"})
		r := must(t, 422, f.call(t, "POST", "/v1/templates/"+id+"/preview", mk,
			map[string]any{"vars": map[string]any{"RewardMB": "lots", "Name": 3}}))
		d := r.details(t)
		if _, ok := d["vars.RewardMB"]; !ok {
			t.Errorf("details %v do not name vars.RewardMB", d)
		}
		if _, ok := d["vars.Name"]; !ok {
			t.Errorf("details %v do not name vars.Name", d)
		}
	})

	t.Run("a template reads back as created", func(t *testing.T) {
		id := create(t, map[string]any{"name": "read", "channel": "sms", "locale": "en", "body": "Hi {{.Name}}"})
		got := must(t, 200, f.call(t, "GET", "/v1/templates/"+id, f.key(tenantA, tenant.RoleHealth), nil)).obj(t)
		if got["id"] != id || got["body"] != "Hi {{.Name}}" || got["locale"] != "en" {
			t.Errorf("read %v", got)
		}
	})
}

func TestTemplateValidation(t *testing.T) {
	f := newFixture(t)
	mk := f.key(tenantA, tenant.RoleMarketer)
	cases := []struct {
		name   string
		body   map[string]any
		fields []string
	}{
		{"every field wrong is named",
			map[string]any{"name": "", "channel": "fax", "locale": "fr", "body": ""},
			[]string{"name", "channel", "locale", "body"}},
		{"a body that does not parse names body with its line",
			map[string]any{"name": "x", "channel": "sms", "body": "Chào {{.Phone}}"},
			[]string{"body"}},
		{"a push template needs a title",
			map[string]any{"name": "x", "channel": "push", "body": "hi"},
			[]string{"title"}},
		{"an SMS template has no title or data",
			map[string]any{"name": "x", "channel": "sms", "body": "hi", "title": "t", "data": map[string]string{"a": "b"}},
			[]string{"title", "data"}},
		{"a body that fails for a subscriber without a name",
			map[string]any{"name": "x", "channel": "sms", "body": "Chao {{slice .Name 1}}"},
			[]string{"body"}},
		{"a body that renders to no text",
			map[string]any{"name": "x", "channel": "sms", "body": `{{""}}`},
			[]string{"body"}},
		{"a push data value must parse",
			map[string]any{"name": "x", "channel": "push", "title": "t", "body": "b", "data": map[string]string{"k": "{{.Nope}}"}},
			[]string{"data.k"}},
		{"push data keys that FCM or APNs keep for themselves",
			map[string]any{"name": "x", "channel": "push", "title": "t", "body": "b", "data": map[string]string{
				"from": "a", "message_type": "b", "google.c": "c", "gcm.notification.d": "d", "aps": "e", "deep_link": "f"}},
			[]string{"data.from", "data.message_type", "data.google.c", "data.gcm.notification.d", "data.aps"}},
		{"a push payload larger than APNs and FCM take, with sample values",
			map[string]any{"name": "x", "channel": "push", "title": strings.Repeat("t", 60), "body": strings.Repeat("b", 4000)},
			[]string{"body"}},
		{"an SMS body longer than a provider takes, with sample values",
			map[string]any{"name": "x", "channel": "sms", "body": strings.Repeat("á", 1590) + "{{.InstallLink}}"},
			[]string{"body"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := must(t, 422, f.call(t, "POST", "/v1/templates", mk, tc.body))
			if r.errorCode(t) != "invalid_fields" {
				t.Errorf("code %q", r.errorCode(t))
			}
			d := r.details(t)
			for _, field := range tc.fields {
				if _, ok := d[field]; !ok {
					t.Errorf("details %v do not name %s", d, field)
				}
			}
			if len(d) != len(tc.fields) {
				t.Errorf("details %v name more than %v", d, tc.fields)
			}
		})
	}
	t.Run("an SMS body of 1,600 characters with sample values is taken", func(t *testing.T) {
		// 1,600 once transliterated: a long Vietnamese text the author
		// asked to send as GSM-7.
		must(t, 201, f.call(t, "POST", "/v1/templates", mk, map[string]any{"name": "x", "channel": "sms",
			"body": strings.Repeat("đ", 1600-len("An")) + "{{.Name}}", "transliterate": true}))
	})
	t.Run("the parse error points at the line", func(t *testing.T) {
		r := must(t, 422, f.call(t, "POST", "/v1/templates", mk,
			map[string]any{"name": "x", "channel": "sms", "body": "Chào\n{{.Phone}}"}))
		if msg, _ := r.details(t)["body"].(string); !strings.Contains(msg, "line 2") || !strings.Contains(msg, ".Phone") {
			t.Errorf("body error %q does not point at line 2 and .Phone", msg)
		}
	})
}
