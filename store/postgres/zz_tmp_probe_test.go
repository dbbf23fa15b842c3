package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"outreach/campaign"
)

func TestZZProbe(t *testing.T) {
	s := openCampaignStore(t)
	ctx := context.Background()
	ten, _ := s.EnsureTenant(ctx, "p")
	c := campaign.Campaign{TenantID: ten.ID, Name: "p", Kind: campaign.KindInstallPromotion, Channels: []campaign.Channel{"sms"}}
	if err := s.CreateCampaign(ctx, &c); err != nil {
		t.Fatal(err)
	}
	var ds []campaign.NewDelivery
	for i := 1; i <= 20000; i++ {
		ds = append(ds, campaign.NewDelivery{SubscriberID: int64(i), ReferralCode: fmt.Sprint("R", i)})
	}
	for i := 0; i < len(ds); i += 5000 {
		t0 := time.Now()
		if _, err := s.InsertDeliveries(ctx, c, "sms", ds[i:i+5000]); err != nil {
			t.Fatal(err)
		}
		t.Log("insert", time.Since(t0))
	}
	var claim, rec time.Duration
	for b := 0; b < 100; b++ {
		ids := make([]int64, 100)
		for i := range ids {
			ids[i] = int64(b*100 + i + 1)
		}
		t0 := time.Now()
		rs, err := s.ClaimDeliveries(ctx, c.ID, "sms", ids)
		if err != nil || len(rs) != 100 {
			t.Fatal(err, len(rs))
		}
		t1 := time.Now()
		var outs []campaign.Outcome
		for _, r := range rs {
			outs = append(outs, campaign.Outcome{CampaignID: c.ID, SubscriberID: r.SubscriberID, Channel: "sms", Status: "sent", Provider: "t", ProviderMessageID: fmt.Sprint("SM", r.SubscriberID), Segments: 1})
		}
		if err := s.RecordOutcomes(ctx, outs); err != nil {
			t.Fatal(err)
		}
		claim += t1.Sub(t0)
		rec += time.Since(t1)
	}
	t.Log("claim avg", claim/100, "record avg", rec/100)
	var n int
	t0 := time.Now()
	for i := 0; i < 100; i++ {
		s.Pool().QueryRow(ctx, "select 1").Scan(&n)
	}
	t.Log("select 1 avg", time.Since(t0)/100)
	t0 = time.Now()
	for i := 0; i < 100; i++ {
		s.Pool().Exec(ctx, "create table if not exists zz (a int); insert into zz values (1)")
	}
	t.Log("commit avg", time.Since(t0)/100)
}
