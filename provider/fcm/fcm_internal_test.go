package fcm

import (
	"net/http"
	"testing"
	"time"
)

func TestFormatTTL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   time.Duration
		want string
	}{
		{"whole seconds are written as is", time.Hour, "3600s"},
		{"a fraction of a second rounds up", 1500 * time.Millisecond, "2s"},
		{"a sub-second ttl never becomes zero", time.Millisecond, "1s"},
		{"a ttl over 28 days is clamped to the FCM maximum", 29 * 24 * time.Hour, "2419200s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := formatTTL(tc.in); got != tc.want {
				t.Fatalf("formatTTL(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name string
		in   string
		want time.Duration
	}{
		{"an absent header means no hint", "", 0},
		{"delta seconds are honoured", "30", 30 * time.Second},
		{"an HTTP date is turned into a delay", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"a date in the past means no hint", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"garbage means no hint", "soon", 0},
		{"a huge value is capped at a day", "999999999999", 24 * time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := parseRetryAfter(tc.in, now); got != tc.want {
				t.Fatalf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
