package templates

import (
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Transliterate strips diacritics so that Vietnamese text fits GSM-7, three
// times cheaper than UCS-2: it decomposes (NFD), drops every nonspacing mark
// (tones and the breve, circumflex and horn) and recomposes (NFC). đ and Đ
// have no decomposition and become d and D. Typographic punctuation that
// editors insert (curly quotes, dashes, ellipsis, no-break space) is folded
// to ASCII too, since one such character would put the whole message back
// in UCS-2.
//
// Marks are dropped in every script, so use it only on text meant to be
// read as unaccented Latin.
//
// Normalisation never reaches across an ASCII space (a starter that
// composes with nothing), so each space-separated word is transliterated
// on its own: ASCII words stay as they are and the others go through a
// small cache, since a campaign's messages repeat the same words.
func Transliterate(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for {
		word, rest, more := strings.Cut(s, " ")
		if ascii(word) {
			b.WriteString(word)
		} else if t, ok := wordCache.Load().m.Load(word); ok {
			b.WriteString(t.(string))
		} else {
			t := transliterate(word)
			cacheWord(word, t)
			b.WriteString(t)
		}
		if !more {
			return b.String()
		}
		b.WriteByte(' ')
		s = rest
	}
}

// wordCache holds the transliteration of up to wordCacheMax words (a
// template's words and the names and places filled into it). A full one
// starts afresh: one that kept its first words for good made every later
// template's words cost a transliteration a message (22 times the time).
var wordCache atomic.Pointer[wordTable]

type wordTable struct {
	m sync.Map
	n atomic.Int64
}

func init() { wordCache.Store(new(wordTable)) }

const wordCacheMax = 8192

func cacheWord(word, t string) {
	w := wordCache.Load()
	if w.n.Add(1) > wordCacheMax {
		wordCache.CompareAndSwap(w, new(wordTable))
		w = wordCache.Load()
		w.n.Add(1)
	}
	w.m.Store(word, t)
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// transliterate is Transliterate of the whole text at once.
func transliterate(s string) string {
	d := norm.NFD.String(validUTF8(s))
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		if f, ok := fold(r); ok {
			b.WriteString(f)
			continue
		}
		b.WriteRune(r)
	}
	return norm.NFC.String(b.String())
}

// fold maps the characters NFD leaves alone but GSM-7 lacks. Ð (U+00D0, Eth)
// is there because legacy Vietnamese encodings used it for Đ.
func fold(r rune) (string, bool) {
	switch r {
	case 'đ':
		return "d", true
	case 'Đ', 'Ð':
		return "D", true
	case '‘', '’', '‚', '‛', '′':
		return "'", true
	case '“', '”', '„', '‟', '″':
		return `"`, true
	case '–', '—', '‒', '−':
		return "-", true
	case '…':
		return "...", true
	case '\u00A0', '\u202F', '\u2009':
		return " ", true
	}
	return "", false
}

// validUTF8 replaces each invalid byte with U+FFFD, as ranging over s and
// encoding/json do. norm does not decompose text next to an invalid byte,
// which would leave marks on it.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}
