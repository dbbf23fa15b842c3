// Package chaos holds the fault-injection tests of the whole system: they
// build the outreach binary, run its real processes (outreach api and one or
// two outreach worker) against a real PostgreSQL and a real Redis and a fake
// Twilio in the test process, drive a campaign over HTTP, inject a fault
// (kill -9 of a worker, an emptied Redis, PostgreSQL unreachable, the
// provider down, a storm of 429s) and check that the campaign completes,
// that nobody is missed and that duplicates stay within the sends that were
// in flight at the fault.
//
// The same faults hit the rewards (installs reported by signed callbacks
// while a fake provisioning API credits data bonuses: every rightful reward
// granted, none credited twice, the ledger equal to what was credited, the
// budget kept) and an exposure alert going out by SMS and push (the real
// FCM client against a fake FCM).
//
// The package has tests only; RELIABILITY.md at the module root records the
// figures and how to reproduce them. Run the short (CI) configuration with
//
//	OUTREACH_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	OUTREACH_TEST_REDIS_URL=redis://127.0.0.1:6379/0 go test -race -count=1 ./chaos/
//
// and the full size (100,000 recipients, one-minute outages) with
// OUTREACH_CHAOS_FULL=1 and a longer -timeout.
package chaos
