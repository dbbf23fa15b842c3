package subscriber_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"outreach/internal/apperr"
	"outreach/store/sqlite"
	"outreach/subscriber"
)

// newImportStore opens a real SQLite store with one tenant.
func newImportStore(t *testing.T) (*sqlite.Store, string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "import.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	tn, err := s.EnsureTenant(ctx, "viettel")
	if err != nil {
		t.Fatal(err)
	}
	return s, tn.ID
}

func runImport(t *testing.T, im *subscriber.Importer, tenantID, csv, list string) subscriber.ImportResult {
	t.Helper()
	res, err := im.Import(context.Background(), tenantID, strings.NewReader(csv), list)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	return res
}

func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

func TestImport(t *testing.T) {
	ctx := context.Background()

	t.Run("a malformed row and an invalid number are reported by line and every other row lands", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		res := runImport(t, &subscriber.Importer{Store: s}, tid, lines(
			"msisdn,region,locale,name",
			"0912345678,HN,vi,An",
			`0987654321,DN,"en,Bình`, // line 3: quoted field never closed
			"0901234567,HG,vi,Châu",
			`09812"34567,HN,vi,Dũng`, // line 5: bare quote
			"12345,HN,vi,Hà",         // line 6: invalid number
			"0977777777,HN,vi",       // line 7: a field short
			"0966666666,DB,en,Hải",
		), "")
		want := []subscriber.RowError{
			{Line: 3, Reason: "malformed CSV: a quoted field is never closed"},
			{Line: 5, Reason: "malformed CSV: " + `bare " in non-quoted-field`},
			{Line: 6, MSISDN: "**345", Reason: "invalid phone number"},
			{Line: 7, Reason: "has 3 fields, the header has 4"},
		}
		if res.Imported != 3 || res.Updated != 0 || res.Rejected != 4 || !slices.Equal(res.Errors, want) {
			t.Fatalf("result = %+v,\nwant 3 imported, 4 rejected: %+v", res, want)
		}
		for _, m := range []string{"+84912345678", "+84901234567", "+84966666666"} {
			if _, err := s.GetSubscriber(ctx, tid, m); err != nil {
				t.Errorf("good row %s did not land: %v", m, err)
			}
		}
	})

	t.Run("a cell with a NUL or bytes that are not UTF-8 is reported by line and every other row lands", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		res := runImport(t, &subscriber.Importer{Store: s}, tid, lines(
			"msisdn,region,name",
			"0912345678,HN,An",
			"0987654321,DN,B\x00nh", // line 3: PostgreSQL's text cannot hold a NUL
			"0901234567,H\xe9,Châu", // line 4: Latin-1, not UTF-8
			"0966666666,DB,Hải",
		), "")
		want := []subscriber.RowError{
			{Line: 3, MSISDN: subscriber.Mask("+84987654321"), Reason: `column "name" must not contain NUL characters`},
			{Line: 4, MSISDN: subscriber.Mask("+84901234567"), Reason: "region must be UTF-8 text"},
		}
		if res.Imported != 2 || res.Rejected != 2 || !slices.Equal(res.Errors, want) {
			t.Fatalf("result = %+v,\nwant 2 imported, 2 rejected: %+v", res, want)
		}
		for _, m := range []string{"+84912345678", "+84966666666"} {
			if _, err := s.GetSubscriber(ctx, tid, m); err != nil {
				t.Errorf("good row %s did not land: %v", m, err)
			}
		}
		if _, err := s.GetSubscriber(ctx, tid, "+84987654321"); !errors.Is(err, apperr.ErrNotFound) {
			t.Errorf("the rejected row landed: %v", err)
		}
	})

	t.Run("0912345678 and +84912345678 are one subscriber, updated not inserted twice", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		for _, batch := range []int{1, 100} {
			im := &subscriber.Importer{Store: s, BatchSize: batch}
			csv := lines("msisdn,region", "0912345678,HN", "+84912345678,DN", "84912345678,HG")
			res := runImport(t, im, tid, csv, "")
			if batch == 1 && (res.Imported != 1 || res.Updated != 2) {
				t.Fatalf("batch size 1: result = %+v, want 1 imported, 2 updated", res)
			}
			if batch == 100 && (res.Imported != 0 || res.Updated != 3) {
				t.Fatalf("batch size 100, second import: result = %+v, want 3 updated", res)
			}
		}
		sub, err := s.GetSubscriber(ctx, tid, "+84912345678")
		if err != nil || sub.Region != "HG" {
			t.Fatalf("subscriber = %+v, %v; want the last row's region", sub, err)
		}
	})

	t.Run("attribute columns land under their header names, quoted Vietnamese names intact", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		res := runImport(t, &subscriber.Importer{Store: s}, tid, lines(
			"plan, MSISDN ,Name,locale,Region,note",
			`postpaid,0912345678,"Nguyễn Văn An, Jr.",EN,HN,"nói ""xin chào"""`,
			`prepaid,0987654321,"Trần Thị
Bình",,DN,`,
		), "")
		if res.Imported != 2 || res.Rejected != 0 {
			t.Fatalf("result = %+v", res)
		}
		a, _ := s.GetSubscriber(ctx, tid, "+84912345678")
		want := map[string]string{"plan": "postpaid", "Name": "Nguyễn Văn An, Jr.", "note": `nói "xin chào"`}
		if a.Locale != "en" || a.Region != "HN" || fmt.Sprint(a.Attributes) != fmt.Sprint(want) {
			t.Fatalf("subscriber = %+v, want locale en, region HN, attributes %v", a, want)
		}
		b, _ := s.GetSubscriber(ctx, tid, "+84987654321")
		if b.Locale != "vi" || b.Attributes["Name"] != "Trần Thị\nBình" || len(b.Attributes) != 2 {
			t.Fatalf("subscriber = %+v, want locale vi, a two-line name and no empty note", b)
		}
	})

	t.Run("a UTF-8 byte-order mark before the header is ignored", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		res := runImport(t, &subscriber.Importer{Store: s}, tid, "\ufeffmsisdn,region\r\n0912345678,HN\r\n", "")
		if res.Imported != 1 || res.Rejected != 0 {
			t.Fatalf("result = %+v, want 1 imported", res)
		}
	})

	t.Run("rows join the named list", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		runImport(t, &subscriber.Importer{Store: s}, tid, lines("msisdn", "0912345678", "0987654321"), "f1-contacts")
		sub, err := s.GetSubscriber(ctx, tid, "+84987654321")
		if err != nil || !slices.Equal(sub.Lists, []string{"f1-contacts"}) {
			t.Fatalf("subscriber = %+v, %v; want in list f1-contacts", sub, err)
		}
	})

	t.Run("a locale other than vi or en is rejected and an empty one means vi", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		res := runImport(t, &subscriber.Importer{Store: s}, tid, lines("msisdn,locale", "0912345678,fr", "0987654321,"), "")
		if res.Imported != 1 || res.Rejected != 1 || res.Errors[0].Line != 2 || !strings.Contains(res.Errors[0].Reason, "vi or en") {
			t.Fatalf("result = %+v", res)
		}
		if sub, _ := s.GetSubscriber(ctx, tid, "+84987654321"); sub.Locale != "vi" {
			t.Fatalf("locale = %q, want vi", sub.Locale)
		}
	})

	t.Run("only the first MaxErrors rejected rows are listed but all are counted", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		var b strings.Builder
		b.WriteString("msisdn\n")
		for range 50 {
			b.WriteString("123\n")
		}
		b.WriteString("0912345678\n")
		res := runImport(t, &subscriber.Importer{Store: s, MaxErrors: 10}, tid, b.String(), "")
		if res.Imported != 1 || res.Rejected != 50 || len(res.Errors) != 10 || res.Errors[0].Line != 2 || res.Errors[9].Line != 11 {
			t.Fatalf("result = %+v", res)
		}
	})

	t.Run("a region or attribute over its limit rejects its row, by line, and the others land", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		res := runImport(t, &subscriber.Importer{Store: s}, tid, lines("msisdn,region,ward",
			"0912345671,HN,Ba Dinh",
			"0912345672,"+strings.Repeat("R", subscriber.MaxRegionCodeLen+1)+",Ba Dinh",
			"0912345673,HN,"+strings.Repeat("w", subscriber.MaxAttributeValueBytes+1),
			"0912345674,"+strings.Repeat("R", subscriber.MaxRegionCodeLen)+","+strings.Repeat("w", subscriber.MaxAttributeValueBytes)), "")
		if res.Imported != 2 || res.Rejected != 2 || res.Errors[0].Line != 3 || !strings.Contains(res.Errors[0].Reason, "region is over 32") ||
			res.Errors[1].Line != 4 || !strings.Contains(res.Errors[1].Reason, `"ward" is over 1024 bytes`) {
			t.Fatalf("result = %+v", res)
		}
		_, err := (&subscriber.Importer{Store: s}).Import(ctx, tid,
			strings.NewReader(lines("msisdn,"+strings.Repeat("a", subscriber.MaxAttributeNameBytes+1), "0912345678,x")), "")
		if err == nil || !strings.Contains(err.Error(), "name is over 128 bytes") {
			t.Fatalf("a long column name: %v", err)
		}
	})

	t.Run("blank lines are skipped and do not shift line numbers", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		res := runImport(t, &subscriber.Importer{Store: s}, tid, lines("msisdn,region", "", "0912345678,HN", ",", "", "bad,HN"), "")
		if res.Imported != 1 || res.Rejected != 1 || res.Errors[0].Line != 6 {
			t.Fatalf("result = %+v, want the bad row on line 6", res)
		}
	})

	t.Run("a line too long is rejected without holding it", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		csv := lines("msisdn,name", "0912345678,"+strings.Repeat("x", 200<<10), "0987654321,An")
		res := runImport(t, &subscriber.Importer{Store: s}, tid, csv, "")
		if res.Imported != 1 || res.Rejected != 1 || res.Errors[0].Line != 2 || !strings.Contains(res.Errors[0].Reason, "longer") {
			t.Fatalf("result = %+v", res)
		}
	})

	for _, tc := range []struct{ name, csv, want string }{
		{"an empty file", "", "empty"},
		{"a header without msisdn", "phone,region\n0912345678,HN\n", "no msisdn column"},
		{"a column named twice", "msisdn,region,Region\n", `"Region" appears twice`},
		{"a column without a name", "msisdn,,locale\n", "column 2 has no name"},
		{"a malformed header", "msisdn,\"region\n0912345678,HN\n", "never closed"},
	} {
		t.Run(tc.name+" is a header error naming the problem", func(t *testing.T) {
			t.Parallel()
			s, tid := newImportStore(t)
			_, err := (&subscriber.Importer{Store: s}).Import(ctx, tid, strings.NewReader(tc.csv), "")
			var fe apperr.FieldErrors
			if !errors.As(err, &fe) || !strings.Contains(fe["header"], tc.want) {
				t.Fatalf("Import = %v, want a header field error containing %q", err, tc.want)
			}
		})
	}

	t.Run("an unknown tenant stops the import with not found", func(t *testing.T) {
		t.Parallel()
		s, _ := newImportStore(t)
		_, err := (&subscriber.Importer{Store: s}).Import(ctx, "nobody", strings.NewReader("msisdn\n0912345678\n"), "")
		if !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("Import = %v, want apperr.ErrNotFound", err)
		}
	})

	t.Run("with several writers the rows of one number still apply in file order", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		var b strings.Builder
		b.WriteString("msisdn,region,step\n")
		for i := range 200 {
			fmt.Fprintf(&b, "09123456%02d,R%d,%d\n", i%10, i, i)
		}
		res := runImport(t, &subscriber.Importer{Store: s, BatchSize: 3, Writers: 4}, tid, b.String(), "")
		if res.Imported != 10 || res.Updated != 190 {
			t.Fatalf("result = %+v, want 10 imported, 190 updated", res)
		}
		for i := 190; i < 200; i++ {
			m := fmt.Sprintf("+849123456%02d", i%10)
			sub, err := s.GetSubscriber(ctx, tid, m)
			if err != nil || sub.Region != fmt.Sprintf("R%d", i) || sub.Attributes["step"] != fmt.Sprint(i) {
				t.Fatalf("%s = %+v, %v; want the last row of the file, R%d", m, sub, err, i)
			}
		}
	})

	t.Run("a cancelled context stops the import with its error", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := (&subscriber.Importer{Store: s, BatchSize: 10}).Import(cctx, tid, subscriber.SyntheticCSV(100, 1), "")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Import = %v, want context.Canceled", err)
		}
	})

	t.Run("a synthetic base of distinct valid numbers lands in many batches", func(t *testing.T) {
		t.Parallel()
		s, tid := newImportStore(t)
		res, err := (&subscriber.Importer{Store: s, BatchSize: 128}).Import(ctx, tid, subscriber.SyntheticCSV(3000, 7), "")
		if err != nil || res.Imported != 3000 || res.Rejected != 0 {
			t.Fatalf("Import = %+v, %v; want 3000 imported", res, err)
		}
	})
}

// recordingStore keeps the rows it is given: the normalisation test looks
// at what the importer hands the store, not at storage.
type recordingStore struct {
	subscriber.Store
	rows []subscriber.Row
}

func (r *recordingStore) UpsertSubscribers(_ context.Context, _ string, rows []subscriber.Row, _ string) (subscriber.UpsertResult, error) {
	r.rows = append(r.rows, rows...)
	return subscriber.UpsertResult{Inserted: len(rows)}, nil
}

func TestImportNormalisesEveryNumberAsNormalizeMSISDN(t *testing.T) {
	t.Parallel()
	// Every form and many prefixes, valid and not: the importer's fast path
	// must agree with the full parse on each.
	var raws []string
	for p := 0; p < 1000; p++ {
		nsns := []string{fmt.Sprintf("%03d123456", p), fmt.Sprintf("%03d7654321", p)}
		if p%10 == 0 {
			nsns = append(nsns, fmt.Sprintf("%03d1234567", p), fmt.Sprintf("%03d12345", p), fmt.Sprintf("%03d765432", p))
		}
		for _, nsn := range nsns {
			raws = append(raws, "0"+nsn, "84"+nsn, "+84"+nsn)
		}
	}
	raws = append(raws, "+1 202 555 0143", "091 234 5678", "+840912345678", "0084912345678", "84912", "")
	var csv strings.Builder
	csv.WriteString("msisdn\n")
	var want []string
	for _, r := range raws {
		csv.WriteString(r + "\n")
		if e, err := subscriber.NormalizeMSISDN(r); err == nil {
			want = append(want, e)
		}
	}
	rec := &recordingStore{}
	res, err := (&subscriber.Importer{Store: rec}).Import(context.Background(), "t", strings.NewReader(csv.String()), "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rec.rows {
		got = append(got, r.MSISDN)
	}
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("row %d: importer gave %s, NormalizeMSISDN %s", i, got[i], want[i])
			}
		}
		t.Fatalf("importer kept %d numbers, NormalizeMSISDN accepts %d", len(got), len(want))
	}
	if res.Imported+res.Rejected != len(raws)-1 { // the empty one is a blank line
		t.Fatalf("result = %+v for %d rows", res, len(raws))
	}
}

func TestSyntheticCSVIsLazyAndRepeatable(t *testing.T) {
	t.Parallel()
	a, _ := io.ReadAll(subscriber.SyntheticCSV(500, 1))
	b, _ := io.ReadAll(subscriber.SyntheticCSV(500, 1))
	if string(a) != string(b) {
		t.Fatal("the same seed gave two files")
	}
	ls := strings.Split(strings.TrimSpace(string(a)), "\n")
	if len(ls) != 501 || ls[0] != subscriber.SyntheticHeader {
		t.Fatalf("got %d lines starting %q", len(ls), ls[0])
	}
	// A huge base costs nothing until it is read.
	r := subscriber.SyntheticCSV(50_000_000, 1)
	buf := make([]byte, 4096)
	if n, err := r.Read(buf); err != nil || n == 0 {
		t.Fatalf("Read = %d, %v", n, err)
	}
}

// Two header names that differ only in how they are composed (NFC and
// NFD) are one column named twice, refused as such; the second used to
// overwrite the first silently.
func TestAColumnNamedTwiceOnceDecomposedIsRefused(t *testing.T) {
	s, tid := newImportStore(t)
	csv := "msisdn,t\u1ec9nh,ti\u0309nh\n0912345678,HN,DN\n"
	_, err := (&subscriber.Importer{Store: s}).Import(context.Background(), tid, strings.NewReader(csv), "")
	if err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Fatalf("import err = %v, want the column named twice refused", err)
	}
}

// Once the tenant has loaded its regions, a row whose region is not one of
// them is reported by line (with the code it may have meant) and the rest
// land; before that, any region is taken.
func TestARowInARegionOutsideTheTableIsRefused(t *testing.T) {
	ctx := context.Background()
	s, tid := newImportStore(t)
	csv := lines(
		"msisdn,region,name",
		"0912345678,HN,An",
		"0987654321,XX,Bình", // line 3: no such region
		"0901234567,hg,Châu", // line 4: lower case
		"0966666666,,Hải",    // no region: keeps the stored one
	)
	before := runImport(t, &subscriber.Importer{Store: s}, tid, csv, "")
	if before.Imported != 4 || before.Rejected != 0 {
		t.Fatalf("before the region table is loaded: %+v, want every row", before)
	}
	if err := s.ReplaceRegions(ctx, tid, []subscriber.Region{{Code: "HN", Name: "Hà Nội", Population: 8_000_000},
		{Code: "HG", Name: "Hà Giang", Population: 850_000}}); err != nil {
		t.Fatal(err)
	}
	res := runImport(t, &subscriber.Importer{Store: s}, tid, strings.Replace(csv, "0912345678", "0912345679", 1), "")
	want := []subscriber.RowError{
		{Line: 3, MSISDN: subscriber.Mask("+84987654321"), Reason: `region "XX" is not in the region table (PUT /v1/regions; an empty cell keeps the stored region)`},
		{Line: 4, MSISDN: subscriber.Mask("+84901234567"), Reason: `region "hg" is not in the region table (PUT /v1/regions; an empty cell keeps the stored region); did you mean "HG"?`},
	}
	if res.Imported != 1 || res.Updated != 1 || res.Rejected != 2 || !slices.Equal(res.Errors, want) {
		t.Fatalf("result = %+v,\nwant 1 imported, 1 updated, 2 rejected: %+v", res, want)
	}
}
