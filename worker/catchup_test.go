package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"outreach/campaign"
	"outreach/worker"
)

// pushInsertFails fails the next `left` push InsertDeliveries, as a
// dropped connection would.
type pushInsertFails struct {
	testStore
	left atomic.Int32
}

func (s *pushInsertFails) InsertDeliveries(ctx context.Context, c campaign.Campaign, ch campaign.Channel, ds []campaign.NewDelivery) (int, error) {
	if ch == campaign.ChannelPush && s.left.Add(-1) >= 0 {
		return 0, errors.New("connection reset by peer")
	}
	return s.testStore.InsertDeliveries(ctx, c, ch, ds)
}

// A catch-up round that fails between channels (the SMS rows written, the
// push insert refused) is retried and writes the push rows too: a
// subscriber short of a delivery on any channel is still unreached. The
// SMS rows used to hide them, and the push never went.
func TestACatchUpRoundFailingBetweenChannelsStillWritesEveryChannel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *harness) {
		msisdns := h.seed(20)
		c := h.listWalked(msisdns, campaign.ChannelSMS, campaign.ChannelPush)
		h.onList(msisdns, 5, 7) // below the cursor, with FCM devices
		st := &pushInsertFails{testStore: h.store}
		st.left.Store(1) // the catch-up's push insert fails once
		h.startWorkerOn(worker.Settings{}, st, nil)
		h.waitState(c.ID, campaign.StateCompleted, 90*time.Second)
		for _, i := range []int{1, 5, 7, 19} {
			if got := h.twilio.CountTo(msisdns[i]); got != 1 {
				t.Errorf("subscriber %d got %d SMS, want 1", i, got)
			}
			if got := h.fcm.CountToken(fmt.Sprintf("fcm-token-%d", i)); got != 1 {
				t.Errorf("subscriber %d got %d pushes, want 1", i, got)
			}
		}
	})
}
