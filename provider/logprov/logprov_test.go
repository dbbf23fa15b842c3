package logprov_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"outreach/internal/testenv"
	"outreach/provider"
	"outreach/provider/logprov"
)

func newProvider(opts ...logprov.Option) (*logprov.Provider, *testenv.LogBuffer) {
	buf := &testenv.LogBuffer{}
	return logprov.New(slog.New(slog.NewTextHandler(buf, nil)), opts...), buf
}

func TestSMS(t *testing.T) {
	t.Parallel()
	t.Run("an SMS is logged with the number masked and kept in full in the outbox", func(t *testing.T) {
		p, buf := newProvider()
		res, err := p.SendSMS(context.Background(), provider.SMS{To: "+84912345678", Body: "Xin chào"})
		if err != nil {
			t.Fatal(err)
		}
		if res.MessageID != "log-1" || res.Segments != 1 {
			t.Errorf("result %+v", res)
		}
		out := buf.String()
		if strings.Contains(out, "84912345678") || strings.Contains(out, "912345") {
			t.Errorf("log leaks the number: %s", out)
		}
		if !strings.Contains(out, "to=*********678") || !strings.Contains(out, "message_id=log-1") {
			t.Errorf("log lacks the masked number or id: %s", out)
		}
		box := p.Outbox()
		if len(box) != 1 || box[0].To != "+84912345678" || box[0].Channel != "sms" || box[0].Body != "Xin chào" {
			t.Errorf("outbox %+v", box)
		}
	})
	t.Run("message ids count up", func(t *testing.T) {
		p, _ := newProvider()
		for i := 1; i <= 3; i++ {
			res, err := p.SendSMS(context.Background(), provider.SMS{To: "+84900000001", Body: "x"})
			if err != nil || res.MessageID != fmt.Sprintf("log-%d", i) {
				t.Fatalf("send %d: %+v %v", i, res, err)
			}
		}
	})
	t.Run("a cancelled context is transient and nothing is recorded", func(t *testing.T) {
		p, _ := newProvider()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := p.SendSMS(ctx, provider.SMS{To: "+84900000001", Body: "x"})
		if provider.ClassOf(err) != provider.Transient || err == nil {
			t.Errorf("err = %v", err)
		}
		if len(p.Outbox()) != 0 {
			t.Error("recorded")
		}
	})
	t.Run("an empty recipient is permanent", func(t *testing.T) {
		p, _ := newProvider()
		if _, err := p.SendSMS(context.Background(), provider.SMS{Body: "x"}); provider.ClassOf(err) != provider.Permanent {
			t.Errorf("err = %v", err)
		}
	})
}

func TestPush(t *testing.T) {
	t.Parallel()
	t.Run("a push is logged with the token masked to its last four characters", func(t *testing.T) {
		p, buf := newProvider()
		token := "fcm-token-abcdefghijklmnop-WXYZ"
		res, err := p.SendPush(context.Background(), provider.Push{Platform: "fcm", Token: token, Title: "Cảnh báo", Body: "b", Urgent: true, Data: map[string]string{"k": "v"}})
		if err != nil || res.MessageID != "log-1" {
			t.Fatalf("%+v %v", res, err)
		}
		out := buf.String()
		if strings.Contains(out, "abcdefghijklmnop") || !strings.Contains(out, "token=****WXYZ") {
			t.Errorf("log: %s", out)
		}
		e := p.Outbox()[0]
		if e.To != token || e.Channel != "push" || e.Platform != "fcm" || !e.Urgent || e.Data["k"] != "v" {
			t.Errorf("entry %+v", e)
		}
	})
	t.Run("an empty token is token-invalid", func(t *testing.T) {
		p, _ := newProvider()
		if _, err := p.SendPush(context.Background(), provider.Push{Platform: "apns"}); provider.ClassOf(err) != provider.TokenInvalid {
			t.Errorf("err = %v", err)
		}
	})
}

func TestOutbox(t *testing.T) {
	t.Parallel()
	t.Run("the outbox keeps only the last N entries, oldest first", func(t *testing.T) {
		p, _ := newProvider(logprov.WithCapacity(5))
		for i := range 12 {
			if _, err := p.SendSMS(context.Background(), provider.SMS{To: fmt.Sprintf("+849000000%02d", i), Body: "x"}); err != nil {
				t.Fatal(err)
			}
		}
		box := p.Outbox()
		if len(box) != 5 {
			t.Fatalf("len %d", len(box))
		}
		for i, e := range box {
			if want := fmt.Sprintf("log-%d", 8+i); e.MessageID != want {
				t.Errorf("entry %d = %s, want %s", i, e.MessageID, want)
			}
		}
		if p.Sent() != 12 {
			t.Errorf("sent %d", p.Sent())
		}
		p.Reset()
		if len(p.Outbox()) != 0 {
			t.Error("Reset kept entries")
		}
	})
	t.Run("the default outbox holds 1000", func(t *testing.T) {
		p := logprov.New(slog.New(slog.DiscardHandler))
		for range 1200 {
			_, _ = p.SendSMS(context.Background(), provider.SMS{To: "+84900000001", Body: "x"})
		}
		if n := len(p.Outbox()); n != 1000 {
			t.Errorf("len %d", n)
		}
	})
	t.Run("concurrent sends get unique ids", func(t *testing.T) {
		p := logprov.New(slog.New(slog.DiscardHandler), logprov.WithCapacity(10000))
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 200 {
					_, _ = p.SendSMS(context.Background(), provider.SMS{To: "+84900000001", Body: "x"})
					_, _ = p.SendPush(context.Background(), provider.Push{Token: "tok12345"})
				}
			}()
		}
		wg.Wait()
		seen := map[string]bool{}
		for _, e := range p.Outbox() {
			if seen[e.MessageID] {
				t.Fatalf("duplicate %s", e.MessageID)
			}
			seen[e.MessageID] = true
		}
		if len(seen) != 3200 {
			t.Errorf("%d entries", len(seen))
		}
	})
}

func TestMasks(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"+84912345678": "*********678", "678": "***", "": "", "12": "**"} {
		if got := logprov.MaskMSISDN(in); got != want {
			t.Errorf("MaskMSISDN(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"abcdefgh": "****efgh", "abcd": "****", "": "****"} {
		if got := logprov.MaskToken(in); got != want {
			t.Errorf("MaskToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSegments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body string
		want int
	}{
		{"", 0},
		{strings.Repeat("a", 160), 1},
		{strings.Repeat("a", 161), 2},
		{strings.Repeat("a", 306), 2},
		{strings.Repeat("a", 307), 3},
		{strings.Repeat("€", 80), 1},
		{"Xin chào", 1},
		{strings.Repeat("ư", 70), 1},
		{strings.Repeat("ư", 71), 2},
		{strings.Repeat("ư", 135), 3},
	} {
		if got := logprov.Segments(tc.body); got != tc.want {
			t.Errorf("Segments(%d chars %q…) = %d, want %d", len([]rune(tc.body)), firstRune(tc.body), got, tc.want)
		}
	}
}

func firstRune(s string) string {
	for _, r := range s {
		return string(r)
	}
	return ""
}

// A per-recipient install link names its delivery: the log shows the link
// with its code masked, the outbox keeps it whole.
func TestTheLogMasksTheCodesOfLinks(t *testing.T) {
	t.Parallel()
	p, buf := newProvider()
	sms := "QC: Chao An, cai Bluezone: http://localhost:8080/i/yaFAkRfpV - Tu choi: soan TC gui 9241"
	if _, err := p.SendSMS(context.Background(), provider.SMS{To: "+84912345678", Body: sms}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendPush(context.Background(), provider.Push{Platform: "fcm", Token: "tok-WXYZ",
		Title: "Nhận 5GB https://bluezone.gov.vn/r/Q7w2Zk", Body: "Cài: https://s.vn/i/xhZ2usC6B?src=push."}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, code := range []string{"yaFAkRfpV", "Q7w2Zk", "xhZ2usC6B"} {
		if strings.Contains(out, code) {
			t.Errorf("the log holds the code %s: %s", code, out)
		}
	}
	if !strings.Contains(out, "http://localhost:8080/i/*** - Tu choi") || !strings.Contains(out, "https://s.vn/i/***?src=push.") {
		t.Errorf("the log should keep the links with their codes masked: %s", out)
	}
	if box := p.Outbox(); box[0].Body != sms {
		t.Errorf("the outbox keeps the message whole: %q", box[0].Body)
	}
	for in, want := range map[string]string{
		"no link here":              "no link here",
		"https://bluezone.gov.vn/":  "https://bluezone.gov.vn/",
		"https://bluezone.gov.vn":   "https://bluezone.gov.vn",
		"a http://x.vn/a/b c":       "a http://x.vn/a/*** c",
		"http://x.vn/i/A, http://y": "http://x.vn/i/***, http://y",
	} {
		if got := logprov.MaskLinks(in); got != want {
			t.Errorf("MaskLinks(%q) = %q, want %q", in, got, want)
		}
	}
}
