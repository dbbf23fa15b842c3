package api_test

import (
	"net/http"
	"testing"

	"outreach/api"
)

func TestAnInstallLinkCountsTheClickAndRedirectsToTheStore(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			h := newInstallHarness(t, kind.open(t))
			ids := h.seed(t, 2)
			c := h.promote(t, ids, 2, 10*installTestData)
			for range 3 {
				status, _, hdr := h.get(t, "/i/"+refCode(1), "")
				if status != http.StatusFound || hdr.Get("Location") != appStoreURL || hdr.Get("Cache-Control") != "no-store" {
					t.Fatalf("%d Location %q Cache-Control %q", status, hdr.Get("Location"), hdr.Get("Cache-Control"))
				}
			}
			for _, code := range []string{"unknown", "a-b", "x%27%20OR%201=1"} {
				if status, _, hdr := h.get(t, "/i/"+code, ""); status != http.StatusFound || hdr.Get("Location") != appStoreURL {
					t.Errorf("%s: %d %q", code, status, hdr.Get("Location"))
				}
			}
			links, clicks, err := h.st.Clicks(h.ctx, h.tenant.ID, c.ID)
			if err != nil || links != 1 || clicks != 3 {
				t.Errorf("clicks: %d links, %d clicks, %v; want 1 and 3", links, clicks, err)
			}
		})
	}
}

// A flood of clicks from one source (a carrier's NAT carries thousands of
// subscribers) still sends every one to the store; past the per-source
// limit the clicks are not counted. It used to answer 429 with a JSON
// error instead of the app store.
func TestAnInstallLinkRedirectsPastTheClickLimit(t *testing.T) {
	h := newInstallHarness(t, storeKinds[0].open(t), func(d *api.InstallDeps) {
		d.Clicks = api.NewPerSourceLimiter(0.001, 5, 0)
	})
	ids := h.seed(t, 1)
	c := h.promote(t, ids, 1, 10*installTestData)
	for i := range 20 {
		if status, _, hdr := h.get(t, "/i/"+refCode(1), ""); status != http.StatusFound || hdr.Get("Location") != appStoreURL {
			t.Fatalf("click %d: %d %q, want a redirect to the store", i+1, status, hdr.Get("Location"))
		}
	}
	if _, clicks, err := h.st.Clicks(h.ctx, h.tenant.ID, c.ID); err != nil || clicks != 5 {
		t.Errorf("%d clicks counted (%v), want the 5 within the limit", clicks, err)
	}
}
