package subscriber_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"outreach/internal/apperr"
	"outreach/subscriber"
)

func FuzzNormalizeMSISDN(f *testing.F) {
	for _, seed := range []string{
		"0912345678", "84912345678", "+84912345678", "+84 91 234 5678", "(091) 234-5678",
		"0084912345678", "+840912345678", "84912", "+1 202 555 0143", "+44 7911 123456",
		"", " ", "+", "0", "84", "٠٩١٢٣٤٥٦٧٨", "０９１２３４５６７８", "091234567８",
		"tel:+84912345678", "+84912345678;ext=12", "+8491234567812345678901234567890",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := subscriber.NormalizeMSISDN(raw)
		// The cached path answers what the full parse answers.
		if full, ferr := subscriber.ParseMSISDN(raw); full != got || (ferr == nil) != (err == nil) {
			t.Fatalf("NormalizeMSISDN(%q) = %q, %v; the full parse says %q, %v", raw, got, err, full, ferr)
		}
		if err != nil {
			if !errors.Is(err, subscriber.ErrInvalidMSISDN) {
				t.Fatalf("NormalizeMSISDN(%q) failed with %v, not an ErrInvalidMSISDN", raw, err)
			}
			return
		}
		if !isE164(got) {
			t.Fatalf("NormalizeMSISDN(%q) = %q, not '+' and at most 15 digits", raw, got)
		}
		again, err := subscriber.NormalizeMSISDN(got)
		if err != nil || again != got {
			t.Fatalf("NormalizeMSISDN(%q) = %q, but NormalizeMSISDN(%q) = %q, %v", raw, got, got, again, err)
		}
	})
}

func isE164(s string) bool {
	if len(s) < 2 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func FuzzKeywords(f *testing.F) {
	for _, seed := range []string{
		"STOP", "stop", "  Stop. ", "Hủy", "HUY", "từ chối", "Từ   Chối", "TC", "START", "bắt đầu",
		"help", "Trợ giúp", "please stop sending", "", "!!!", "\u0301", "Đ", "đừng", "e\u0301\u0323",
		"\xff\xfe", "STOP\x00", "tu\tchoi", "İ", "ﬀ",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		kw := subscriber.DefaultKeywords.Match(body)
		if kw < subscriber.KeywordNone || kw > subscriber.KeywordHelp {
			t.Fatalf("Match(%q) = %d, not a Keyword", body, kw)
		}
		if !isASCII(body) {
			return
		}
		lower, upper := subscriber.DefaultKeywords.Match(strings.ToLower(body)), subscriber.DefaultKeywords.Match(strings.ToUpper(body))
		if lower != upper || lower != kw {
			t.Fatalf("Match(%q) = %d, lower-cased %d, upper-cased %d", body, kw, lower, upper)
		}
		// Surrounding blanks and punctuation are not part of the word.
		if padded := subscriber.DefaultKeywords.Match(" \t" + body + ". \n"); padded != kw {
			t.Fatalf("Match(%q) = %d, but padded %d", body, kw, padded)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// memStore is the least of a subscriber.Store an import needs: upserts
// into a map, safe for the importer's concurrent writers.
type memStore struct {
	subscriber.Store // every other method panics: the importer must not call them
	mu               sync.Mutex
	rows             map[string]subscriber.Row
	written          int
}

// ListRegions: no region table, so any region is taken.
func (m *memStore) ListRegions(context.Context, string) ([]subscriber.Region, error) { return nil, nil }

func (m *memStore) UpsertSubscribers(_ context.Context, _ string, rows []subscriber.Row, _ string) (subscriber.UpsertResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var res subscriber.UpsertResult
	for _, r := range rows {
		if _, ok := m.rows[r.MSISDN]; ok {
			res.Updated++
		} else {
			res.Inserted++
		}
		m.rows[r.MSISDN] = r
		m.written++
	}
	return res, nil
}

func FuzzImportCSV(f *testing.F) {
	for _, seed := range []string{
		"msisdn,region,locale\n0912345678,HN,vi\n84987654321,DN,en\n+84912345678,,\n",
		"msisdn\n0912345678\n0912345678\n\n , \n",
		"\xef\xbb\xbfMSISDN,Locale,name\r\n0912345678,VI,An\r\n0912345679,fr,Binh\r\n",
		"name,msisdn\n\"Nguyễn, Văn An\",0912345678\n\"multi\nline\",0912345679\n",
		"msisdn,name\n\"0912,broken\n0912345678,ok\n0912345679,\"bad\"quote\n",
		"msisdn,region\n0912345678\n0912345679,HN,extra\n12345,HN\n,HN\n",
		"msisdn,msisdn\n0912345678,0912345678\n",
		"region,locale\nHN,vi\n",
		",,,\n\nmsisdn\n0912345678",
		"",
		"msisdn\n\"",
		"\"msisdn\nx",
	} {
		f.Add([]byte(seed), uint8(0), uint8(0), uint8(0))
	}
	f.Add([]byte("msisdn\n0912345678\n0912345679\n0912345680\nbad\nbad\nbad\n"), uint8(1), uint8(2), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, batch, writers, maxErrors uint8) {
		store := &memStore{rows: map[string]subscriber.Row{}}
		im := &subscriber.Importer{Store: store, BatchSize: int(batch % 8), Writers: int(writers % 4), MaxErrors: int(maxErrors % 8)}
		res, err := im.Import(context.Background(), "t1", bytes.NewReader(data), "")
		if err != nil {
			var fe apperr.FieldErrors
			if !errors.As(err, &fe) {
				t.Fatalf("Import failed with %v: only a bad header may fail an import that a store does not", err)
			}
			if res.Imported+res.Updated+res.Rejected != 0 || store.written != 0 {
				t.Fatalf("a refused header still did something: %+v, %d rows written", res, store.written)
			}
			return
		}
		if res.Imported+res.Updated != store.written {
			t.Fatalf("result %+v counts %d rows upserted, the store got %d", res, res.Imported+res.Updated, store.written)
		}
		if res.Imported != len(store.rows) {
			t.Fatalf("result %+v counts %d new subscribers, the store has %d", res, res.Imported, len(store.rows))
		}
		for msisdn, r := range store.rows {
			if n, err := subscriber.NormalizeMSISDN(msisdn); err != nil || n != msisdn {
				t.Fatalf("stored %q, which is not normalised", msisdn)
			}
			if r.Locale != "" && r.Locale != "vi" && r.Locale != "en" {
				t.Fatalf("stored locale %q", r.Locale)
			}
		}

		lines := physicalLines(data)
		rows := res.Imported + res.Updated + res.Rejected
		if rows > len(lines)-1 {
			t.Fatalf("result %+v counts %d rows in a file of %d lines", res, rows, len(lines))
		}
		limit := int(maxErrors % 8)
		if limit == 0 {
			limit = 100
		}
		if want := min(res.Rejected, limit); len(res.Errors) != want {
			t.Fatalf("%d rows rejected, %d reported with MaxErrors %d", res.Rejected, len(res.Errors), limit)
		}
		last := 1
		for _, e := range res.Errors {
			if e.Line < 2 || e.Line > len(lines) {
				t.Fatalf("row error on line %d of a %d-line file: %+v", e.Line, len(lines), res.Errors)
			}
			if e.Line <= last {
				t.Fatalf("row errors out of line order or repeated: %+v", res.Errors)
			}
			last = e.Line
			if e.MSISDN != "" && !masked(e.MSISDN) {
				t.Fatalf("row error carries %q, not a masked number", e.MSISDN)
			}
		}
		// Without quotes a record is a line: then the rows are exactly the
		// non-blank lines after the header.
		if want, ok := plainDataRows(lines); ok && rows != want {
			t.Fatalf("result %+v counts %d rows, the file has %d", res, rows, want)
		}
	})
}

// physicalLines splits data as the importer numbers its lines.
func physicalLines(data []byte) [][]byte {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// plainDataRows counts the data rows of a file without quotes (where every
// record is one line); false when the file has quotes or overlong lines.
func plainDataRows(lines [][]byte) (int, bool) {
	header, rows := false, 0
	for i, l := range lines {
		if bytes.IndexByte(l, '"') >= 0 || len(l) >= 64<<10 {
			return 0, false
		}
		if i == 0 {
			l = bytes.TrimPrefix(l, []byte("\xef\xbb\xbf"))
		}
		blank := true
		for _, field := range strings.Split(string(l), ",") {
			if strings.TrimSpace(field) != "" {
				blank = false
			}
		}
		switch {
		case blank:
		case !header:
			header = true
		default:
			rows++
		}
	}
	return rows, true
}

// masked reports whether s shows at most its last three bytes, as
// subscriber.Mask leaves a number.
func masked(s string) bool {
	return strings.HasPrefix(s, "*") && len(strings.TrimLeft(s, "*")) <= 3
}
