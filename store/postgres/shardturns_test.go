package postgres

import "testing"

// Rewards of a campaign are dealt to its budget shards in turn, each
// campaign on its own turn, so that after k rounds every shard has been
// dealt exactly k rewards however the campaigns' rewards interleave.
func TestBudgetShardsAreDealtInTurnPerCampaign(t *testing.T) {
	var turns shardTurns
	const shards, rounds = 64, 5
	dealt := map[string][]int{"a": make([]int, shards), "b": make([]int, shards/2)}
	// b's rewards come between a's, two of a's for each of b's.
	for i := range shards * rounds {
		dealt["a"][turns.take("a", shards)]++
		if i%2 == 0 {
			dealt["b"][turns.take("b", shards/2)]++
		}
	}
	for campaign, counts := range dealt {
		for shard, n := range counts {
			if n != rounds {
				t.Errorf("campaign %s: shard %d dealt %d rewards, want %d", campaign, shard, n, rounds)
			}
		}
	}
	if got := turns.take("c", 1); got != 0 {
		t.Errorf("a budget of one shard: dealt shard %d", got)
	}
}
