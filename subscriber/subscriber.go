// Package subscriber holds subscribers, their push devices, regions and named
// lists, MSISDN normalisation and the streaming CSV import.
package subscriber

import (
	"context"
	"time"
)

// Platform of a push device.
type Platform string

const (
	PlatformFCM  Platform = "fcm"
	PlatformAPNs Platform = "apns"
)

// Device is one push token of a subscriber.
type Device struct {
	Platform  Platform  `json:"platform"`
	Token     string    `json:"token"`
	CreatedAt time.Time `json:"created_at"`
}

// Subscriber is one line of a carrier.
type Subscriber struct {
	ID          int64             `json:"-"`
	TenantID    string            `json:"-"`
	MSISDN      string            `json:"msisdn"`
	Region      string            `json:"region"`
	Locale      string            `json:"locale"`
	Attributes  map[string]string `json:"attributes"`
	OptedOut    bool              `json:"opted_out"`
	Installed   bool              `json:"installed"`
	InstalledAt *time.Time        `json:"installed_at,omitempty"`
	Devices     []Device          `json:"devices"`
	Lists       []string          `json:"lists"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	// AlertOnly is a number that only an exposure alert named (it became a
	// subscriber as the alert's contact): health data, shown to health keys
	// only.
	AlertOnly bool `json:"-"`
}

// Row is one subscriber to upsert, as read from an import.
type Row struct {
	MSISDN     string
	Region     string
	Locale     string
	Attributes map[string]string
}

// Region is a province or city: targeting and the adoption report use it.
type Region struct {
	Code       string `json:"code"`
	Name       string `json:"name"`
	Population int64  `json:"population"`
}

// UpsertResult counts what an upsert did.
type UpsertResult struct {
	Inserted int
	Updated  int
}

// Store is what this package needs from persistence. Every call is scoped to
// one tenant; an MSISDN is always in normalised E.164 form here.
type Store interface {
	// UpsertSubscribers inserts or updates rows in one batch; on update the
	// region, locale and attributes are replaced, opt-out and install state
	// kept. When list is not empty every row is also added to that list.
	UpsertSubscribers(ctx context.Context, tenantID string, rows []Row, list string) (UpsertResult, error)
	// EnsureSubscribers creates bare subscribers (no region, locale vi) for
	// the numbers not yet known and returns the id of every number.
	EnsureSubscribers(ctx context.Context, tenantID string, msisdns []string) (map[string]int64, error)
	// GetSubscriber returns one subscriber with devices and lists.
	GetSubscriber(ctx context.Context, tenantID, msisdn string) (Subscriber, error)
	// PutDevice registers a push token for the subscriber (idempotent). A
	// token is one app install on one phone: within the tenant it belongs
	// to this subscriber alone from now on, on this platform alone.
	PutDevice(ctx context.Context, tenantID, msisdn string, d Device) error
	// RemoveDevice deletes a dead push token of the tenant.
	RemoveDevice(ctx context.Context, tenantID string, platform Platform, token string) error
	// SetOptOut sets or clears the marketing opt-out.
	SetOptOut(ctx context.Context, tenantID, msisdn string, optedOut bool) error
	// OptOutEverywhere sets or clears the marketing opt-out of a number in
	// every tenant that has it (a STOP to the deployment's sender), and
	// answers how many subscribers that was.
	OptOutEverywhere(ctx context.Context, msisdn string, optedOut bool) (int64, error)
	// ReplaceRegions replaces the tenant's region table.
	ReplaceRegions(ctx context.Context, tenantID string, regions []Region) error
	ListRegions(ctx context.Context, tenantID string) ([]Region, error)
	// ListExists reports whether the tenant has a list of that name (one
	// an import with ?list= created).
	ListExists(ctx context.Context, tenantID, name string) (bool, error)
}
