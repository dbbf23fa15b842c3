package subscriber

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
