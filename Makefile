# outreach: the README's commands, spelled once.
GO ?= go
GOTESTFLAGS ?=

.PHONY: build test test-race bench lint run

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/outreach ./cmd/outreach

run: build
	./bin/outreach serve

# The whole suite. Suites that need a real PostgreSQL or Redis run when
# OUTREACH_TEST_DATABASE_URL / OUTREACH_TEST_REDIS_URL are set; the script
# names the ones it leaves out.
test:
	GOTESTFLAGS="$(GOTESTFLAGS)" ./scripts/test

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...
