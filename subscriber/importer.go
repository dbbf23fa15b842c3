package subscriber

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"outreach/internal/apperr"
	"outreach/internal/textcheck"

	"golang.org/x/text/unicode/norm"
)

// RowError is one rejected line of an import.
type RowError struct {
	// Line is the 1-based line of the file (the header is line 1).
	Line int `json:"line"`
	// MSISDN is the number as given, masked to its last digits.
	MSISDN string `json:"msisdn,omitempty"`
	Reason string `json:"reason"`
}

// ImportResult counts what an import did. Imported+Updated+Rejected is the
// number of data rows (blank rows aside).
type ImportResult struct {
	Imported int `json:"imported"`
	Updated  int `json:"updated"`
	Rejected int `json:"rejected"`
	// Errors holds the first MaxErrors rejected rows, in line order.
	Errors []RowError `json:"errors"`
}

// Importer streams a subscriber CSV into a Store in batches, reading the
// next while the last is written, so that memory stays flat whatever the
// size of the file.
//
// The file starts with a header row naming its columns in any order:
// msisdn (required), region, locale (vi or en), and any others, which
// become attributes keyed by their header name. A bad row (malformed CSV,
// wrong number of fields, invalid number, unknown locale) is reported with
// its line and reason and the import goes on; every good row lands.
//
// On an existing subscriber an empty region or locale keeps the stored one
// and attributes merge key by key (an empty cell sets nothing), so that
// uploading a bare list of numbers never wipes what is known about them.
type Importer struct {
	Store Store
	// BatchSize is the number of rows per store call; 0 means what the
	// store asks for (UpsertTuning), else 5000.
	BatchSize int
	// MaxErrors is how many rejected rows are reported; default 100.
	MaxErrors int
	// Writers is how many batches are written at once; 0 means what the
	// store asks for (UpsertTuning), else 1.
	Writers int
}

const (
	defaultBatchSize = 5000
	defaultMaxErrors = 100
	// maxLineBytes bounds one physical line and maxRecordLines/-Bytes one
	// record: a runaway quote or a file without newlines costs a rejected
	// row, never the memory of the whole file.
	maxLineBytes   = 64 << 10
	maxRecordLines = 32
	maxRecordBytes = 256 << 10
)

type columns struct {
	msisdn, region, locale int // -1 when absent
	attrs                  []attrColumn
	n                      int
}

type attrColumn struct {
	index int
	key   string
}

// Import reads the CSV in r and upserts its rows into the tenant's
// subscribers, adding them to the named list when list is not empty. A
// header that cannot be used is an apperr.FieldErrors naming the problem;
// a read or store error stops the import and is returned with the counts
// of the batches already written.
func (im *Importer) Import(ctx context.Context, tenantID string, r io.Reader, list string) (ImportResult, error) {
	batchSize, writers, maxErrors := im.BatchSize, im.Writers, im.MaxErrors
	if t, ok := im.Store.(UpsertTuning); ok {
		b, w := t.UpsertTuning()
		if batchSize <= 0 {
			batchSize = b
		}
		if writers <= 0 {
			writers = w
		}
	}
	if batchSize <= 0 {
		batchSize = defaultBatchSize
	}
	if writers <= 0 {
		writers = 1
	}
	if maxErrors <= 0 {
		maxErrors = defaultMaxErrors
	}
	res := ImportResult{Errors: []RowError{}}
	reject := func(e RowError) {
		res.Rejected++
		// Errors found ahead by the record guard may arrive out of order:
		// keep the first maxErrors by line.
		if len(res.Errors) == maxErrors && e.Line >= res.Errors[maxErrors-1].Line {
			return
		}
		i, _ := slices.BinarySearchFunc(res.Errors, e.Line, func(a RowError, line int) int { return a.Line - line })
		res.Errors = slices.Insert(res.Errors, i, e)
		if len(res.Errors) > maxErrors {
			res.Errors = res.Errors[:maxErrors]
		}
	}

	guard := newRecordGuard(r, func(line int, reason string) { reject(RowError{Line: line, Reason: reason}) })
	cr := csv.NewReader(guard)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true

	header, err := cr.Read()
	for err == nil && allBlank(header) { // csv skips empty lines, not ",,,"
		header, err = cr.Read()
	}
	if errors.Is(err, io.EOF) {
		return ImportResult{Errors: []RowError{}}, apperr.FieldErrors{"header": "the file is empty: want a header row such as msisdn,region,locale"}
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return ImportResult{Errors: []RowError{}}, apperr.FieldErrors{"header": fmt.Sprintf("line %d: %v", pe.StartLine, pe.Err)}
	}
	if err != nil {
		return ImportResult{Errors: []RowError{}}, fmt.Errorf("import: read header: %w", err)
	}
	// A line the guard rejected before the header was the header itself.
	if headerLine, _ := cr.FieldPos(0); len(res.Errors) > 0 && res.Errors[0].Line < headerLine {
		return ImportResult{Errors: []RowError{}}, apperr.FieldErrors{"header": fmt.Sprintf("line %d: %s", res.Errors[0].Line, res.Errors[0].Reason)}
	}
	cols, err := parseHeader(header)
	if err != nil {
		return ImportResult{Errors: []RowError{}}, err
	}
	// Once the tenant has loaded its regions, a row's region must be one
	// of them: a subscriber in region "XX" would be left out of every
	// campaign by region and counted nowhere in the adoption report.
	var regions map[string]bool
	if cols.region >= 0 {
		rs, err := im.Store.ListRegions(ctx, tenantID)
		if err != nil {
			return ImportResult{Errors: []RowError{}}, fmt.Errorf("import: regions: %w", err)
		}
		if len(rs) > 0 {
			regions = make(map[string]bool, len(rs))
			for _, r := range rs {
				regions[r.Code] = true
			}
		}
	}

	w := im.startWriters(ctx, tenantID, list, batchSize, writers)
	finish := func(err error) (ImportResult, error) {
		up, werr := w.close()
		res.Imported += up.Inserted
		res.Updated += up.Updated
		if err == nil {
			err = werr
		}
		return res, err
	}

	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.As(err, &pe) {
			reject(RowError{Line: pe.StartLine, Reason: "malformed CSV: " + pe.Err.Error()})
			continue
		}
		if err != nil {
			return finish(fmt.Errorf("import: read: %w", err))
		}
		line, _ := cr.FieldPos(0)
		if allBlank(rec) {
			continue
		}
		if len(rec) != cols.n {
			reject(RowError{Line: line, Reason: fmt.Sprintf("has %d fields, the header has %d", len(rec), cols.n)})
			continue
		}
		raw := strings.TrimSpace(rec[cols.msisdn])
		if raw == "" {
			reject(RowError{Line: line, Reason: "missing phone number"})
			continue
		}
		msisdn, err := NormalizeMSISDN(raw)
		if err != nil {
			reject(RowError{Line: line, MSISDN: Mask(raw), Reason: "invalid phone number"})
			continue
		}
		row := Row{MSISDN: msisdn}
		if bad := badCell(rec, cols); bad != "" {
			reject(RowError{Line: line, MSISDN: Mask(msisdn), Reason: bad})
			continue
		}
		if cols.region >= 0 {
			row.Region = strings.TrimSpace(rec[cols.region])
			if row.Region != "" && regions != nil && !regions[row.Region] {
				reason := fmt.Sprintf("region %q is not in the region table (PUT /v1/regions; an empty cell keeps the stored region)", row.Region)
				if up := strings.ToUpper(row.Region); regions[up] {
					reason += fmt.Sprintf("; did you mean %q?", up)
				}
				reject(RowError{Line: line, MSISDN: Mask(msisdn), Reason: reason})
				continue
			}
		}
		if cols.locale >= 0 {
			switch l := strings.ToLower(strings.TrimSpace(rec[cols.locale])); l {
			case "", "vi", "en":
				row.Locale = l
			default:
				reject(RowError{Line: line, MSISDN: Mask(msisdn), Reason: fmt.Sprintf("locale %q is not vi or en", l)})
				continue
			}
		}
		for _, a := range cols.attrs {
			if v := AttributeText(rec[a.index]); v != "" {
				if row.Attributes == nil {
					row.Attributes = make(map[string]string, len(cols.attrs))
				}
				row.Attributes[a.key] = v
			}
		}
		if !w.add(row) {
			break // a writer failed: close reports why
		}
	}
	return finish(nil)
}

// UpsertTuning is implemented by a store whose bulk upsert runs best with
// other settings than the Importer's defaults. It answers the rows per
// batch and how many batches to write at once (disjoint batches side by
// side); 0 keeps the default. The Importer's own fields win over both.
type UpsertTuning interface {
	UpsertTuning() (batchSize, writers int)
}

// writers fans rows out to lanes by a hash of the MSISDN. Each lane has
// one goroutine writing its batches in order, so the rows of one number
// are applied in file order whatever the number of lanes, and lanes never
// contend for the same rows. While a lane writes, the reader fills the
// next batch: at most three batches per lane are alive at once.
type writers struct {
	ctx    context.Context
	cancel context.CancelFunc
	lanes  []*lane
	size   int
	wg     sync.WaitGroup

	mu    sync.Mutex
	total UpsertResult
	err   error
}

type lane struct {
	batch []Row
	ch    chan []Row
}

func (im *Importer) startWriters(ctx context.Context, tenantID, list string, size, n int) *writers {
	w := &writers{size: size}
	w.ctx, w.cancel = context.WithCancel(ctx)
	for range n {
		l := &lane{batch: make([]Row, 0, size), ch: make(chan []Row, 1)}
		w.lanes = append(w.lanes, l)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for batch := range l.ch {
				if w.ctx.Err() != nil {
					w.drop() // drain after a failure
					continue
				}
				up, err := im.Store.UpsertSubscribers(w.ctx, tenantID, batch, list)
				w.mu.Lock()
				w.total.Inserted += up.Inserted
				w.total.Updated += up.Updated
				if err != nil && w.err == nil {
					w.err = fmt.Errorf("import: %w", err)
					w.cancel()
				}
				w.mu.Unlock()
			}
		}()
	}
	return w
}

// add queues a row; false once the import has failed or been cancelled.
func (w *writers) add(r Row) bool {
	l := w.lanes[0]
	if len(w.lanes) > 1 {
		h := uint32(2166136261) // FNV-1a
		for i := 0; i < len(r.MSISDN); i++ {
			h = (h ^ uint32(r.MSISDN[i])) * 16777619
		}
		l = w.lanes[h%uint32(len(w.lanes))]
	}
	l.batch = append(l.batch, r)
	if len(l.batch) < w.size {
		return true
	}
	return w.send(l)
}

func (w *writers) send(l *lane) bool {
	if len(l.batch) == 0 {
		return w.ctx.Err() == nil
	}
	select {
	case l.ch <- l.batch:
		l.batch = make([]Row, 0, w.size)
		return true
	case <-w.ctx.Done():
		w.drop()
		return false
	}
}

// drop records that a batch was not written because the import stopped.
func (w *writers) drop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = fmt.Errorf("import: %w", w.ctx.Err())
	}
}

// close writes what is left, waits for every lane and answers the totals
// and the first error (a cancelled context included).
func (w *writers) close() (UpsertResult, error) {
	for _, l := range w.lanes {
		w.send(l)
		close(l.ch)
	}
	w.wg.Wait()
	defer w.cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total, w.err
}

// Limits on what a subscriber's cells hold: a region is a code of the
// region table, and an attribute is a value a template prints or an
// audience filters on (both refuse longer ones).
const (
	MaxRegionCodeLen       = 32
	MaxAttributeNameBytes  = 128
	MaxAttributeValueBytes = 1024
)

// AttributeText is an attribute's name or value as stored and as an
// audience compares it: trimmed, and in Unicode's composed form (NFC), so
// that "Hà Nội" exported decomposed (NFD, as macOS and some Vietnamese
// keyboards write it) matches "Hà Nội" typed in a campaign.
func AttributeText(s string) string { return norm.NFC.String(strings.TrimSpace(s)) }

// badCell says which of the row's stored cells cannot be stored as text
// or is over its limit, or "" when all are fine.
func badCell(rec []string, cols columns) string {
	if cols.region >= 0 {
		if p := textcheck.Problem(rec[cols.region]); p != "" {
			return "region " + p
		}
		if len(strings.TrimSpace(rec[cols.region])) > MaxRegionCodeLen {
			return fmt.Sprintf("region is over %d characters: a region is a code such as HN", MaxRegionCodeLen)
		}
	}
	for _, a := range cols.attrs {
		if p := textcheck.Problem(rec[a.index]); p != "" {
			return fmt.Sprintf("column %q %s", a.key, p)
		}
		if len(strings.TrimSpace(rec[a.index])) > MaxAttributeValueBytes {
			return fmt.Sprintf("column %q is over %d bytes", a.key, MaxAttributeValueBytes)
		}
	}
	return ""
}

func parseHeader(h []string) (columns, error) {
	cols := columns{msisdn: -1, region: -1, locale: -1, n: len(h)}
	// A bare list of numbers has no header: say so without quoting the row,
	// which would put a subscriber's number in the answer and the access log.
	for _, name := range h {
		if _, err := LookupMSISDN(name); err == nil {
			return cols, apperr.FieldErrors{"header": "no msisdn column: the first row holds a phone number, not column names; add a header row such as msisdn,region,locale"}
		}
	}
	seen := make(map[string]bool, len(h))
	for i, name := range h {
		name = strings.TrimSpace(name)
		// As stored (AttributeText): two names that differ only in how
		// they are composed are one column named twice.
		key := strings.ToLower(AttributeText(name))
		switch {
		case name == "":
			return cols, apperr.FieldErrors{"header": fmt.Sprintf("column %d has no name", i+1)}
		case seen[key]:
			return cols, apperr.FieldErrors{"header": fmt.Sprintf("column %q appears twice", name)}
		case textcheck.Problem(name) != "":
			return cols, apperr.FieldErrors{"header": fmt.Sprintf("column %d's name %s", i+1, textcheck.Problem(name))}
		case len(name) > MaxAttributeNameBytes:
			return cols, apperr.FieldErrors{"header": fmt.Sprintf("column %d's name is over %d bytes", i+1, MaxAttributeNameBytes)}
		}
		seen[key] = true
		switch key {
		case "msisdn":
			cols.msisdn = i
		case "region":
			cols.region = i
		case "locale":
			cols.locale = i
		default:
			cols.attrs = append(cols.attrs, attrColumn{index: i, key: AttributeText(name)})
		}
	}
	if cols.msisdn < 0 {
		return cols, apperr.FieldErrors{"header": fmt.Sprintf("no msisdn column (the header is %q; want msisdn,region,locale,…)", strings.Join(h, ","))}
	}
	return cols, nil
}

func allBlank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// recordGuard sits between the file and encoding/csv. csv.Reader keeps
// reading lines while a quoted field is open, so one stray quote would
// swallow the rest of the file into a single failing record. The guard
// passes csv only whole records: a quoted field still open after
// maxRecordLines lines (or at the end of the file) makes its first line a
// rejected row, replaced by an empty line (which csv skips, so line numbers
// hold), and the lines after it are read again as records of their own.
// It also strips a UTF-8 byte-order mark and bounds the length of a line.
type recordGuard struct {
	src     *bufio.Reader
	srcErr  error    // from src; io.EOF at the end
	replay  [][]byte // lines to examine again, in order
	next    int      // line number of the next line taken
	out     []byte   // bytes ready for csv
	outPos  int
	scratch []byte // the current line, when it needs copying
	bad     func(line int, reason string)
}

func newRecordGuard(r io.Reader, bad func(line int, reason string)) *recordGuard {
	return &recordGuard{src: bufio.NewReaderSize(r, maxLineBytes), next: 1, bad: bad}
}

func (g *recordGuard) Read(p []byte) (int, error) {
	for g.outPos == len(g.out) {
		if len(g.replay) == 0 && g.srcErr != nil {
			return 0, g.srcErr
		}
		g.out, g.outPos = g.out[:0], 0
		g.fill()
	}
	n := copy(p, g.out[g.outPos:])
	g.outPos += n
	return n, nil
}

// fill moves at least one line to out, unless the input has ended.
func (g *recordGuard) fill() {
	first, num, ok := g.take()
	if !ok {
		return
	}
	if open, _ := scanQuotes(false, first); !open {
		g.out = append(g.out, first...) // a line csv may reject, but alone
		return
	}
	held := [][]byte{slices.Clone(first)}
	size := len(first)
	open, broken := true, false
	for open && !broken && len(held) < maxRecordLines && size < maxRecordBytes {
		l, _, ok := g.take()
		if !ok {
			break
		}
		held = append(held, slices.Clone(l))
		size += len(l)
		open, broken = scanQuotes(true, l)
	}
	if !open && !broken {
		for _, l := range held {
			g.out = append(g.out, l...)
		}
		return
	}
	// csv would read every held line into one failing record: reject the
	// first alone and read the others again as rows of their own.
	g.bad(num, "malformed CSV: a quoted field is never closed")
	g.out = append(g.out, '\n')
	g.replay = append(held[1:], g.replay...)
	g.next -= len(held) - 1
}

// take returns the next line with its newline, valid until the next call.
func (g *recordGuard) take() ([]byte, int, bool) {
	num := g.next
	if len(g.replay) > 0 {
		l := g.replay[0]
		g.replay = g.replay[1:]
		g.next++
		return l, num, true
	}
	if g.srcErr != nil {
		return nil, 0, false
	}
	l, err := g.src.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		for errors.Is(err, bufio.ErrBufferFull) { // skip the rest of the line
			_, err = g.src.ReadSlice('\n')
		}
		g.bad(num, fmt.Sprintf("line longer than %d bytes", maxLineBytes))
		l = []byte{'\n'}
	}
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		g.srcErr = err
		if len(l) == 0 {
			return nil, 0, false
		}
	}
	if num == 1 {
		l = trimBOM(l)
	}
	g.next++
	return l, num, true
}

func trimBOM(b []byte) []byte {
	const bom = "\xef\xbb\xbf"
	if len(b) >= len(bom) && string(b[:len(bom)]) == bom {
		return b[len(bom):]
	}
	return b
}

// scanQuotes follows encoding/csv (LazyQuotes off) over one line, given
// whether a quoted field was open at its start: a field is quoted only if
// its first byte is a quote, inside it "" is an escaped quote, and a
// closing quote must end the field. It reports whether a quoted field is
// still open at the end of the line, or whether csv stops the record on
// this line with an error (broken), having read the lines before it too.
func scanQuotes(open bool, line []byte) (stillOpen, broken bool) {
	fieldStart := !open
	for i := 0; i < len(line); i++ {
		c := line[i]
		if open {
			if c != '"' {
				continue
			}
			if i+1 < len(line) && line[i+1] == '"' {
				i++
				continue
			}
			if i+1 < len(line) && line[i+1] != ',' && line[i+1] != '\n' && line[i+1] != '\r' {
				return false, true
			}
			open = false
			continue
		}
		switch {
		case c == ',':
			fieldStart = true
		case c == '"' && !fieldStart:
			return false, true // bare quote
		case c == '"':
			open, fieldStart = true, false
		default:
			fieldStart = false
		}
	}
	return open, false
}

// MergeRows folds rows that repeat an MSISDN into one, in first-seen order:
// a later non-empty region or locale wins, attributes merge key by key
// (later wins). A store must do this before a bulk upsert, which cannot
// touch one row twice; it is also what upserting the rows one by one would
// have produced. rows is not modified.
func MergeRows(rows []Row) []Row {
	at := make(map[string]int, len(rows))
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		i, seen := at[r.MSISDN]
		if !seen {
			at[r.MSISDN] = len(out)
			out = append(out, r)
			continue
		}
		m := &out[i]
		if r.Region != "" {
			m.Region = r.Region
		}
		if r.Locale != "" {
			m.Locale = r.Locale
		}
		if len(r.Attributes) > 0 {
			attrs := make(map[string]string, len(m.Attributes)+len(r.Attributes))
			for k, v := range m.Attributes {
				attrs[k] = v
			}
			for k, v := range r.Attributes {
				attrs[k] = v
			}
			m.Attributes = attrs
		}
	}
	return out
}
