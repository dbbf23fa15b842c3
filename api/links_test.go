package api_test

import (
	"net/http"
	"testing"
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
