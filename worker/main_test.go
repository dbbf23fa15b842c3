package worker_test

import (
	"flag"
	"os"
	"strconv"
	"testing"
)

// scenariosAtOnce is how many parallel scenarios run at once unless
// -test.parallel says otherwise. Most of them wait far more than they
// compute (on a sender's rate, a send window, a claim going stale), so
// more than the two cores' worth run at once; the scenarios that check an
// effect within a second run alone, before them (forEachBackendAlone).
const scenariosAtOnce = 4

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		flag.Set("test.parallel", strconv.Itoa(scenariosAtOnce))
	}
	os.Exit(m.Run())
}
