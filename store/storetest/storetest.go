// Package storetest is the contract every store implementation must pass.
// The same tests run against SQLite and PostgreSQL.
package storetest

import (
	"outreach/campaign"
	"outreach/subscriber"
	"outreach/tenant"
)

// SubscriberStore is the part of a store the subscriber contract covers.
type SubscriberStore interface {
	tenant.Store
	subscriber.Store
}

// CampaignStore is the part of a store the campaign contract covers; it
// seeds tenants and subscribers through the subscriber half.
type CampaignStore interface {
	tenant.Store
	subscriber.Store
	campaign.Store
}
