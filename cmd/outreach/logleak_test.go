package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"outreach/install"
	"outreach/internal/testenv"
	"outreach/provider/fcm/fcmfake"
	"outreach/provider/provisioning/provisioningfake"
	"outreach/provider/twilio/twiliofake"
)

// secretSet is what must never appear in a log line, by the name a failure
// reports (the value itself is not printed again).
type secretSet map[string]string

func (s secretSet) add(name, value string) { s[name] = value }

// TestNoSecretNumberOrTokenReachesTheLogs runs a campaign, an exposure alert,
// receipts, inbound keywords, installs and refused requests of every kind
// through the whole binary at debug level, then reads every log line for a
// phone number in any of its forms, a push token or a secret.
func TestNoSecretNumberOrTokenReachesTheLogs(t *testing.T) {
	ctx := context.Background()
	const (
		accountSID    = "AC5e1f0c2b9a7d4e63aa"
		authToken     = "twAuth5e1f0c2b9a7d4e63"
		serviceSID    = "MG5e1f0c2b9a7d4e63aa"
		installSecret = "instSecret8c4b2f7a19e0d356"
		rewardsSecret = "rwdSecret3a9f6c1e7b2d0845"
	)
	leaks := secretSet{}
	leaks.add("the Twilio auth token", authToken)
	leaks.add("the Twilio basic auth", base64.StdEncoding.EncodeToString([]byte(accountSID+":"+authToken)))
	leaks.add("the deployment install secret", installSecret)
	leaks.add("the rewards secret", rewardsSecret)
	leaks.add("the FCM access token", fcmfake.AccessToken)

	tw := twiliofake.New(accountSID, authToken)
	twURL, err := tw.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tw.Close)
	fcm := fcmfake.New()
	fcmURL, err := fcm.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fcm.Close)
	sa := fcm.ServiceAccountJSON("leaktest")
	var key struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(sa, &key); err != nil {
		t.Fatal(err)
	}
	pemBody := strings.Fields(key.PrivateKey)[3] // after "-----BEGIN PRIVATE KEY-----"
	leaks.add("the FCM service account's private key", pemBody[:40])
	saPath := filepath.Join(t.TempDir(), "fcm.json")
	if err := os.WriteFile(saPath, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	prov := provisioningfake.New(rewardsSecret)
	t.Cleanup(prov.Close)
	prov.FailNext(503, 500) // the first grants are retried

	addr := freeAddr(t)
	base := "http://" + addr
	vars := map[string]string{
		"OUTREACH_HTTP_ADDR":                    addr,
		"OUTREACH_DATABASE_URL":                 "sqlite://" + t.TempDir() + "/outreach.db",
		"OUTREACH_SEND_WINDOW":                  "00:00-24:00",
		"OUTREACH_LOG_LEVEL":                    "debug",
		"OUTREACH_PUBLIC_URL":                   base,
		"OUTREACH_SMS_PROVIDER":                 "twilio",
		"TWILIO_ACCOUNT_SID":                    accountSID,
		"TWILIO_AUTH_TOKEN":                     authToken,
		"OUTREACH_TWILIO_MESSAGING_SERVICE_SID": serviceSID,
		"OUTREACH_TWILIO_BASE_URL":              twURL,
		"OUTREACH_PUSH_PROVIDER":                "native",
		"OUTREACH_FCM_CREDENTIALS":              saPath,
		"OUTREACH_FCM_ENDPOINT":                 fcmURL,
		"OUTREACH_INSTALL_SECRET":               installSecret,
		"OUTREACH_REWARDS_URL":                  prov.URL(),
		"OUTREACH_REWARDS_SECRET":               rewardsSecret,
	}
	getenv := mapEnv(vars)

	// Subscribers with known numbers, imported in the three written forms;
	// contacts only the alert knows; push tokens.
	var nsns, contactNSNs []string
	for i := range 24 {
		nsns = append(nsns, fmt.Sprintf("9%d%07d", []int{1, 4, 6, 7, 8}[i%5], 3141592+i*7919))
	}
	for i := range 4 {
		contactNSNs = append(contactNSNs, fmt.Sprintf("8%d%07d", []int{1, 3, 5, 8}[i], 2718281+i*104729))
	}
	tokens := map[string]string{} // by nsn
	for _, n := range nsns[:10] {
		b := make([]byte, 48)
		rand.Read(b)
		tokens[n] = "c" + hex.EncodeToString(b[:8]) + ":APA91b" + base64.RawURLEncoding.EncodeToString(b[8:])
	}
	apnsToken := hex.EncodeToString(func() []byte { b := make([]byte, 32); rand.Read(b); return b }())
	fcm.Unregister(tokens[nsns[1]]) // a dead token the worker removes

	var logs *testenv.LogBuffer
	t.Cleanup(func() { // after serve's own cleanup: the logs of shutdown too
		if logs != nil {
			checkLogs(t, logs.String(), leaks, append(nsns, contactNSNs...), tokens, apnsToken)
		}
	})
	logs = serve(t, getenv)
	waitReady(t, base)

	admin := createKey(t, getenv, "viettel", "admin")
	health := createKey(t, getenv, "viettel", "health")
	viewer := createKey(t, getenv, "viettel", "viewer")
	leaks.add("the admin API key", admin)
	leaks.add("the health API key", health)
	leaks.add("the viewer API key", viewer)
	var out bytes.Buffer
	if err := realMain(ctx, []string{"keys", "install-secret", "--tenant", "viettel"}, &out, io.Discard, getenv); err != nil {
		t.Fatal(err)
	}
	tenantSecret := strings.TrimSpace(out.String())
	leaks.add("the tenant's install secret", tenantSecret)
	c := client{t: t, base: base, key: admin}

	var csv strings.Builder
	csv.WriteString("msisdn,region,locale,name\n")
	for i, n := range nsns {
		fmt.Fprintf(&csv, "%s,HN,vi,Khách %d\n", []string{"0", "84", "+84"}[i%3]+n, i)
	}
	fmt.Fprintf(&csv, "\"0%s,broken\n", nsns[0]) // malformed: the number is in the rejected row
	fmt.Fprintf(&csv, "0%sx,HN,vi,bad\n", nsns[2])
	fmt.Fprintf(&csv, "0%s,HN,fr,bad locale\n", nsns[3])
	var imp struct{ Imported, Updated, Rejected int }
	if code := c.do("POST", "/v1/subscribers/import", "text/csv", strings.NewReader(csv.String()), &imp); code != 200 || imp.Imported != len(nsns) {
		t.Fatalf("import: %d %+v", code, imp)
	}
	// A list without a header: its first number is read as the header.
	headerless := "0" + nsns[4] + "\n0" + nsns[5] + "\n"
	if code := c.do("POST", "/v1/subscribers/import", "text/csv", strings.NewReader(headerless), nil); code != 422 {
		t.Fatalf("headerless import: %d, want 422", code)
	}
	for n, tok := range tokens {
		if code := c.json("PUT", "/v1/subscribers/0"+n+"/devices", map[string]string{"platform": "fcm", "token": tok}, nil); code != 200 && code != 201 && code != 204 {
			t.Fatalf("put device: %d", code)
		}
	}
	// No APNs provider is configured: pushes to this device fail.
	if code := c.json("PUT", "/v1/subscribers/84"+nsns[11]+"/devices", map[string]string{"platform": "apns", "token": apnsToken}, nil); code >= 300 {
		t.Fatalf("put apns device: %d", code)
	}
	c.json("PUT", "/v1/subscribers/0"+nsns[12]+"/devices", map[string]string{"platform": "fcm", "token": "has space " + tokens[nsns[0]]}, nil)
	c.do("GET", "/v1/subscribers/0"+nsns[6], "", nil, nil)
	c.do("GET", "/v1/subscribers/%2B84"+nsns[7], "", nil, nil)
	c.do("GET", "/v1/subscribers/0"+contactNSNs[0], "", nil, nil) // unknown: 404
	c.do("GET", "/v1/subscribers/0"+nsns[8]+"0000", "", nil, nil) // invalid: 422
	c.do("GET", "/v1/nowhere/0"+nsns[8], "", nil, nil)            // no route
	c.do("POST", "/v1/subscribers/0"+nsns[9]+"/opt-out", "", nil, nil)
	c.do("POST", "/v1/subscribers/0"+nsns[9]+"/opt-in", "", nil, nil)

	// Provider faults: a retried outage, an unsubscribed and an invalid number.
	tw.FailNext(2, 500, 20500)
	tw.FailTo("+84"+nsns[13], 400, 21610)
	tw.FailTo("+84"+nsns[14], 400, 21211)

	var sms, push struct{ ID string }
	if code := c.json("POST", "/v1/templates", map[string]any{"name": "promo", "channel": "sms", "locale": "vi",
		"body": "Cai Bluezone nhan {{.RewardMB}}MB: {{.InstallLink}}"}, &sms); code != 201 {
		t.Fatalf("sms template: %d", code)
	}
	if code := c.json("POST", "/v1/templates", map[string]any{"name": "promo-push", "channel": "push", "locale": "vi",
		"title": "Bluezone", "body": "Cài Bluezone, {{.Name}}", "data": map[string]string{"screen": "install"}}, &push); code != 201 {
		t.Fatalf("push template: %d", code)
	}
	var camp struct{ ID string }
	if code := c.json("POST", "/v1/campaigns", map[string]any{"name": "Bluezone Q3", "kind": "install_promotion",
		"channels": []string{"sms", "push"}, "templates": map[string]string{"sms": sms.ID, "push": push.ID},
		"rate_per_second": 0, "reward": map[string]any{"data_mb": 1024, "budget_mb": 1 << 20, "attribution_days": 14}}, &camp); code != 201 {
		t.Fatalf("create campaign: %d", code)
	}
	c.json("POST", "/v1/campaigns/"+camp.ID+"/test", map[string]string{"msisdn": "0" + nsns[15]}, nil)
	c.json("POST", "/v1/campaigns/"+camp.ID+"/test", map[string]string{"msisdn": "0" + nsns[15] + "99"}, nil)
	if code := c.json("POST", "/v1/campaigns/"+camp.ID+"/start", nil, nil); code != 200 {
		t.Fatalf("start: %d", code)
	}
	waitState(t, c, "/v1/campaigns/"+camp.ID+"/stats")

	// An exposure alert to subscribers and to numbers nobody imported.
	contacts := []string{"0" + nsns[16], "84" + nsns[17], "+84" + nsns[0], "0" + nsns[11], "0" + nsns[16] + "7", "12345"}
	for _, n := range contactNSNs {
		contacts = append(contacts, "0"+n)
	}
	var alert, alertSMS struct{ ID string }
	hc := client{t: t, base: base, key: health}
	if code := hc.json("POST", "/v1/templates", map[string]any{"name": "f1", "channel": "sms", "locale": "vi",
		"body": "Ban da o gan nguoi nhiem COVID-19, {{.Name}}. Hay tu cach ly."}, &alertSMS); code != 201 {
		t.Fatalf("alert template: %d", code)
	}
	if code := hc.json("POST", "/v1/alerts", map[string]any{"name": "F1 contacts", "channels": []string{"push", "sms"},
		"templates": map[string]string{"sms": alertSMS.ID, "push": push.ID}, "contacts": contacts, "push_fallback_sms": true}, &alert); code != 202 {
		t.Fatalf("create alert: %d", code)
	}
	waitState(t, hc, "/v1/alerts/"+alert.ID)

	// Receipts, signed and forged; inbound keywords.
	msgs := tw.Messages()
	if len(msgs) < len(nsns)-2 {
		t.Fatalf("twilio saw %d messages", len(msgs))
	}
	for i, m := range msgs {
		switch i % 3 {
		case 0:
			err = tw.SendStatus(ctx, m, "delivered", "")
		case 1:
			err = tw.SendStatusError(ctx, m, "undelivered", "30005", "")
		default:
			err = tw.SendStatus(ctx, m, "sent", "")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	forged := url.Values{"MessageSid": {msgs[0].SID}, "MessageStatus": {"delivered"}, "To": {msgs[0].To}, "From": {serviceSID}}
	postForm(t, base+"/webhooks/twilio/status", forged, "bm90IGEgc2lnbmF0dXJl")
	postForm(t, base+"/webhooks/twilio/inbound", url.Values{"MessageSid": {"SMx"}, "From": {"+84" + nsns[18]}, "To": {serviceSID}, "Body": {"STOP"}}, "")
	for _, body := range []string{"Hủy", "START", "what is this 0" + nsns[19] + "?"} {
		if err := tw.SendInbound(ctx, base+"/webhooks/twilio/inbound", "+84"+nsns[19], serviceSID, body, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.SendInbound(ctx, base+"/webhooks/twilio/inbound", "+84"+contactNSNs[1], serviceSID, "STOP", ""); err != nil {
		t.Fatal(err)
	}

	// Install callbacks, when the routes are wired: good, replayed, refused.
	if code := (client{t: t, base: base}).do("POST", "/v1/installs", "application/json", strings.NewReader("{}"), nil); code == 404 {
		t.Log("POST /v1/installs is not routed yet: installs and rewards were not exercised")
	} else {
		codes := referralCodes(msgs, base+"/i/")
		now := time.Now()
		send := func(secret string, at time.Time, body map[string]any) int {
			b, _ := json.Marshal(body)
			req, _ := http.NewRequest("POST", base+"/v1/installs", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			install.SignRequest(req.Header, "viettel", secret, b, at)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		installed := func(n string) map[string]any {
			return map[string]any{"msisdn": "0" + n, "device_id": "dev-" + n[len(n)-4:], "platform": "android",
				"installed_at": now.Add(-time.Minute).UTC().Format(time.RFC3339)}
		}
		for i, n := range nsns[:6] {
			body := installed(n)
			if code, ok := codes["+84"+n]; ok && i%2 == 0 {
				body["referral_code"] = code
			}
			if code := send(tenantSecret, now, body); code >= 300 {
				t.Errorf("install callback: %d", code)
			}
		}
		send(tenantSecret, now, installed(nsns[0]))                       // a replay
		send(installSecret, now, installed(nsns[20]))                     // the deployment secret does not serve a tenant with its own
		send(tenantSecret, now.Add(-time.Hour), installed(nsns[21]))      // stale
		send(tenantSecret, now, installed(contactNSNs[2]))                // a number no campaign reached
		send(tenantSecret, now, map[string]any{"msisdn": "0" + nsns[22]}) // incomplete
		send(tenantSecret, now, map[string]any{"msisdn": "0" + nsns[22] + "5", "device_id": "d", "platform": "ios",
			"installed_at": now.UTC().Format(time.RFC3339)}) // an invalid number
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for _, code := range []string{codes["+84"+nsns[0]], codes["+84"+nsns[1]], "nosuchcode"} {
			if resp, err := noRedirect.Get(base + "/i/" + code); err == nil {
				resp.Body.Close()
			}
		}
		c.do("GET", "/v1/rewards", "", nil, nil)
		c.do("GET", "/v1/reports/adoption", "", nil, nil)
		for deadline := time.Now().Add(5 * time.Second); len(prov.Grants()) == 0 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond) // rewards are granted by the workers
		}
		t.Logf("rewards granted: %d", len(prov.Grants()))
	}
	c.do("GET", "/v1/campaigns/"+camp.ID+"/deliveries", "", nil, nil)
	c.do("GET", "/v1/campaigns/"+camp.ID+"/deliveries?status=failed", "", nil, nil)
	(client{t: t, base: base, key: admin + "x"}).do("GET", "/v1/campaigns", "", nil, nil) // a wrong key
	(client{t: t, base: base, key: viewer}).json("POST", "/v1/alerts", map[string]any{"contacts": []string{"0" + nsns[23]}}, nil)
	time.Sleep(300 * time.Millisecond) // let the last receipts and tasks log
	t.Logf("sent: %d SMS, %d pushes", tw.Count(), fcm.Count())
}

// waitState polls path until its state is completed.
func waitState(t *testing.T, c client, path string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		var v struct{ State string }
		c.do("GET", path, "", nil, &v)
		if v.State == "completed" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: state %q after 45 s, want completed", path, v.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func postForm(t *testing.T, to string, form url.Values, signature string) {
	t.Helper()
	req, _ := http.NewRequest("POST", to, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signature != "" {
		req.Header.Set("X-Twilio-Signature", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// referralCodes are the codes of the install links in the messages' bodies,
// by recipient.
func referralCodes(msgs []twiliofake.Message, linkBase string) map[string]string {
	re := regexp.MustCompile(regexp.QuoteMeta(linkBase) + `([0-9A-Za-z]+)`)
	codes := map[string]string{}
	for _, m := range msgs {
		if sub := re.FindStringSubmatch(m.Body); sub != nil {
			codes[m.To] = sub[1]
		}
	}
	return codes
}

// checkLogs fails on every log line holding a secret, a phone number in
// any form (its national significant number is in all of them, escaped or
// not) or a push token (whole, or its first 16 characters).
func checkLogs(t *testing.T, logs string, secrets secretSet, nsns []string, tokens map[string]string, apnsToken string) {
	t.Helper()
	needles := map[string]string{}
	for name, v := range secrets {
		needles[v] = name
	}
	for _, n := range nsns {
		needles[n] = "the phone number ending " + n[len(n)-3:]
	}
	for _, tok := range tokens {
		needles[tok[:16]] = "an FCM push token"
		needles[tok[len(tok)-16:]] = "the tail of an FCM push token"
	}
	needles[apnsToken[:16]] = "an APNs push token"
	needles[apnsToken[len(apnsToken)-16:]] = "the tail of an APNs push token"

	lines := strings.Split(logs, "\n")
	if len(lines) < 50 {
		t.Errorf("only %d log lines at debug level: is the log captured?", len(lines))
	}
	found := 0
	for i, line := range lines {
		for needle, what := range needles {
			if strings.Contains(line, needle) || strings.Contains(unescapeJSON(line), needle) {
				found++
				if found <= 20 {
					t.Errorf("log line %d holds %s: %s", i+1, what, line)
				}
			}
		}
	}
	if found > 20 {
		t.Errorf("... and %d more", found-20)
	}
	msgs := map[string]int{}
	for _, line := range lines {
		var l struct{ Msg string }
		if json.Unmarshal([]byte(line), &l) == nil {
			msgs[l.Msg]++
		}
	}
	if os.Getenv("LOGLEAK_DUMP") != "" {
		t.Log(logs)
	}
	t.Logf("%d log lines checked for %d secrets, numbers and tokens; messages: %v", len(lines), len(needles), msgs)
}

// unescapeJSON undoes \u escapes and + encoding a line may carry.
func unescapeJSON(line string) string {
	if s, err := strconv.Unquote(`"` + strings.ReplaceAll(line, `"`, `\"`) + `"`); err == nil {
		line = s
	}
	if s, err := url.QueryUnescape(line); err == nil {
		line = s
	}
	return line
}
