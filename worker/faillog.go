package worker

import (
	"sync"
	"time"
)

// failLogEvery is how often, at most, a provider's failures are logged:
// a provider that fails every call must not flood the log, and one that
// fails must not be silent (the metrics count the failures, the log says
// why: a revoked key, a refused sender, an endpoint down).
const failLogEvery = 30 * time.Second

// failLog lets one failure per provider through every failLogEvery and
// counts the ones it holds back.
type failLog struct {
	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// allow reports whether a failure of provider name is to be logged now,
// and how many were held back since the last one logged.
func (f *failLog) allow(name string, now time.Time) (bool, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		f.last, f.held = map[string]time.Time{}, map[string]int{}
	}
	if at, ok := f.last[name]; ok && now.Sub(at) < failLogEvery {
		f.held[name]++
		return false, 0
	}
	held := f.held[name]
	f.last[name], f.held[name] = now, 0
	return true, held
}
