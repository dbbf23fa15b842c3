package provisioning_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"outreach/provider"
	"outreach/provider/provisioning"
)

// A carrier API that echoes the request must not put the subscriber's
// number into the error (logged, and stored as a reward's last_error).
func TestAnErrorBodyEchoingTheNumberIsRedacted(t *testing.T) {
	bodies := map[string]string{
		"echo":      `{"error":"msisdn not eligible","request":{"msisdn":"+84912345678","data_mb":5120}}`,
		"spaced":    `{"error":"msisdn not eligible","msisdn":"+84 912 345 678"}`,
		"national":  "line 0912-345-678 is not eligible",
		"long":      strings.Repeat(" ", 150) + `"msisdn":"+84912345678"` + strings.Repeat("x", 300),
		"cut":       strings.Repeat("x", 2040) + "+84912345678",
		"multiline": "error:\n\tmsisdn +84912345678\r\n not eligible",
	}
	for _, status := range []int{http.StatusUnprocessableEntity, http.StatusInternalServerError} {
		for name, body := range bodies {
			t.Run(strconv.Itoa(status)+"/"+name, func(t *testing.T) {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(status)
					_, _ = io.WriteString(w, body)
				}))
				defer srv.Close()
				err := provisioning.New(srv.URL, "s3cret").Grant(context.Background(), grant("r1"))
				if err == nil {
					t.Fatal("no error")
				}
				text := err.Error()
				for _, leak := range []string{"84912345678", "912345678", "912 345", "0912-345", "2345678"} {
					if strings.Contains(text, leak) {
						t.Errorf("error %q holds %q", text, leak)
					}
				}
				if strings.ContainsAny(text, "\n\r\t") {
					t.Errorf("error %q is not one line", text)
				}
				if !strings.Contains(text, strconv.Itoa(status)) || !strings.Contains(text, http.StatusText(status)) {
					t.Errorf("error %q does not say the status", text)
				}
				if provider.CodeOf(err) != strconv.Itoa(status) {
					t.Errorf("code = %q", provider.CodeOf(err))
				}
				if len(text) > 300 {
					t.Errorf("error is %d bytes long", len(text))
				}
			})
		}
	}
}

func TestAnErrorExcerptStillSaysWhatHappened(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, `{"error":"msisdn not eligible","msisdn":"+84912345678","data_mb":5120}`)
	}))
	defer srv.Close()
	err := provisioning.New(srv.URL, "s3cret").Grant(context.Background(), grant("r1"))
	if provider.ClassOf(err) != provider.Permanent {
		t.Fatalf("err = %v, want permanent", err)
	}
	text := err.Error()
	for _, want := range []string{"Unprocessable Entity", "msisdn not eligible", `"+********678"`, "5120"} {
		if !strings.Contains(text, want) {
			t.Errorf("error %q lacks %q", text, want)
		}
	}
}
