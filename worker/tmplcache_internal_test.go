package worker

import (
	"context"
	"fmt"
	"testing"

	"outreach/campaign"
)

// templateStore serves any template id as one SMS template.
type templateStore struct{ campaign.Store }

func (templateStore) GetTemplate(_ context.Context, tenantID, id string) (campaign.MessageTemplate, error) {
	return campaign.MessageTemplate{ID: id, TenantID: tenantID, Name: "promo-" + id, Channel: campaign.ChannelSMS,
		Body: "Cai Bluezone de nhan {{.RewardMB}}MB: {{.InstallLink}}"}, nil
}

// A long-running worker sees every template of every tenant's campaigns
// and alerts: its cache of compiled templates stays bounded.
func TestTheTemplateCacheIsBounded(t *testing.T) {
	e := &Engine{Deps: Deps{Store: templateStore{}}, tmplCache: map[string]*compiled{}}
	for i := range maxCachedTemplates + 100 {
		if _, err := e.template(context.Background(), "t", fmt.Sprintf("tmpl-%d", i)); err != nil {
			t.Fatal(err)
		}
		if len(e.tmplCache) > maxCachedTemplates {
			t.Fatalf("%d templates cached after %d, over %d", len(e.tmplCache), i+1, maxCachedTemplates)
		}
	}
	if _, ok := e.tmplCache[fmt.Sprintf("tmpl-%d", maxCachedTemplates+99)]; !ok {
		t.Error("the latest template is not cached")
	}
}
