package sqlite_test

import (
	"testing"

	"outreach/store/storetest"
)

// BenchmarkImport streams a synthetic subscriber CSV through the importer
// into this store. Size it with OUTREACH_BENCH_ROWS, e.g.
//
//	OUTREACH_BENCH_ROWS=1000000 go test -run '^$' -bench Import -benchtime 1x ./store/sqlite/
func BenchmarkImport(b *testing.B) {
	storetest.BenchImport(b, openSubscriberStore(b))
}
