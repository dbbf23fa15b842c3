package provisioning_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"outreach/provider"
	"outreach/provider/provisioning"
	"outreach/provider/provisioning/provisioningfake"
)

func grant(id string) provider.Grant {
	return provider.Grant{RewardID: id, CampaignID: "c1", MSISDN: "+84912345678", DataMB: 5120}
}

func TestAGrantIsSignedAndCreditedOnce(t *testing.T) {
	fake := provisioningfake.New("s3cret")
	defer fake.Close()
	c := fake.Client()
	ctx := context.Background()
	for range 3 {
		if err := c.Grant(ctx, grant("r1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Grant(ctx, grant("r2")); err != nil {
		t.Fatal(err)
	}
	tot := fake.Totals()
	if tot.Grants != 2 || tot.MB != 10240 || tot.Replays != 2 || tot.Rejected != 0 {
		t.Errorf("totals = %+v", tot)
	}
	gs := fake.Grants()
	if len(gs) != 2 || gs[0].RewardID != "r1" || gs[0].MSISDN != "+84912345678" || gs[0].CampaignID != "c1" || gs[0].DataMB != 5120 {
		t.Errorf("grants = %+v", gs)
	}
	if fake.CountMSISDN("+84912345678") != 2 || !fake.Granted("r2") || fake.Granted("r3") {
		t.Error("per-number counts are off")
	}
}

func TestFailuresAreClassified(t *testing.T) {
	fake := provisioningfake.New("s3cret")
	defer fake.Close()
	ctx := context.Background()
	cases := []struct {
		status int
		want   provider.Class
	}{
		{500, provider.Transient}, {502, provider.Transient}, {503, provider.Transient},
		{429, provider.Transient}, {408, provider.Transient},
		{400, provider.Permanent}, {403, provider.Permanent}, {404, provider.Permanent}, {422, provider.Permanent},
	}
	for _, c := range cases {
		t.Run(strconv.Itoa(c.status), func(t *testing.T) {
			fake.FailNext(c.status)
			err := fake.Client().Grant(ctx, grant("r-"+strconv.Itoa(c.status)))
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Class != c.want || pe.Code != strconv.Itoa(c.status) {
				t.Fatalf("err = %v, want %v %d", err, c.want, c.status)
			}
		})
	}
	if fake.Totals().Grants != 0 {
		t.Error("a failed call credited")
	}
}

func TestAWrongSecretIsRefusedPermanently(t *testing.T) {
	fake := provisioningfake.New("s3cret")
	defer fake.Close()
	c := provisioning.New(fake.URL(), "wrong")
	err := c.Grant(context.Background(), grant("r1"))
	if provider.ClassOf(err) != provider.Permanent || provider.CodeOf(err) != "401" {
		t.Fatalf("err = %v", err)
	}
	if tot := fake.Totals(); tot.Rejected != 1 || tot.Grants != 0 {
		t.Errorf("totals = %+v", tot)
	}
}

func TestAStaleClockIsRefused(t *testing.T) {
	fake := provisioningfake.New("s3cret")
	defer fake.Close()
	c := fake.Client()
	c.Now = func() time.Time { return time.Now().Add(-10 * time.Minute) }
	if err := c.Grant(context.Background(), grant("r1")); provider.CodeOf(err) != "401" {
		t.Fatalf("err = %v", err)
	}
}

func TestTimeoutsAndConnectionFailuresAreTransient(t *testing.T) {
	fake := provisioningfake.New("s3cret")
	defer fake.Close()
	fake.SetLatency(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := fake.Client().Grant(ctx, grant("r1")); provider.ClassOf(err) != provider.Transient {
		t.Errorf("timeout: %v", err)
	}
	dead := provisioning.New("http://127.0.0.1:1/grants", "s3cret")
	if err := dead.Grant(context.Background(), grant("r1")); provider.ClassOf(err) != provider.Transient {
		t.Errorf("refused connection: %v", err)
	}
}

func TestTheRequestOnTheWire(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusConflict)
	}))
	defer srv.Close()
	now := time.Unix(1_764_000_000, 0)
	c := provisioning.New(srv.URL+"/grants", "s3cret")
	c.Now = func() time.Time { return now }
	if err := c.Grant(context.Background(), grant("r-42")); err != nil {
		t.Fatalf("409 must be success: %v", err)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/grants" || got.Header.Get("Idempotency-Key") != "r-42" ||
		got.Header.Get("Content-Type") != "application/json" || got.Header.Get("X-Outreach-Timestamp") != "1764000000" {
		t.Errorf("request %s %s headers %v", got.Method, got.URL.Path, got.Header)
	}
	if want := `{"msisdn":"+84912345678","data_mb":5120,"campaign_id":"c1","reward_id":"r-42"}`; string(body) != want {
		t.Errorf("body %s\nwant %s", body, want)
	}
	if sig := got.Header.Get("X-Outreach-Signature"); sig != provisioning.Sign("s3cret", "1764000000", body) {
		t.Errorf("signature %s", sig)
	}
	if err := provisioning.Verify("s3cret", "1764000000", body, got.Header.Get("X-Outreach-Signature"), now, time.Minute); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestTheLogProvisionerCreditsNothing(t *testing.T) {
	if err := (provisioning.Log{}).Grant(context.Background(), grant("r1")); err != nil {
		t.Fatal(err)
	}
}

func TestForURLPicksTheLogProvisionerWithoutAURL(t *testing.T) {
	if _, ok := provisioning.ForURL("", "", nil).(provisioning.Log); !ok {
		t.Error("no URL: want the log provisioner")
	}
	if c, ok := provisioning.ForURL("http://127.0.0.1:9/grants", "s", nil).(*provisioning.Client); !ok || c.URL != "http://127.0.0.1:9/grants" {
		t.Error("a URL: want the HTTP client")
	}
}
