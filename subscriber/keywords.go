package subscriber

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Keyword is what an inbound SMS asks for.
type Keyword int

const (
	KeywordNone Keyword = iota
	KeywordOptOut
	KeywordOptIn
	KeywordHelp
)

// Keywords are the inbound SMS words that opt a subscriber out of marketing
// or back in. Matching is on the whole message, case- and
// diacritic-insensitive, so "Hủy", "HUY" and "huy" are one keyword.
type Keywords struct {
	OptOut []string
	OptIn  []string
	Help   []string
}

// DefaultKeywords are Twilio's defaults plus the Vietnamese carriers' usual
// ones (HUY, TU CHOI, TC, KHONG).
var DefaultKeywords = Keywords{
	OptOut: []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
		"HUY", "TU CHOI", "TUCHOI", "TC", "KHONG", "HUY QC", "DUNG", "TU CHOI QC", "TUCHOI QC", "TCQC"},
	OptIn: []string{"START", "YES", "UNSTOP", "BAT DAU", "DK"},
	Help:  []string{"HELP", "INFO", "TRO GIUP"},
}

var fold = transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)

// keywordLetters folds the letters the diacritic fold leaves: đ/Đ, and
// ð/Ð (U+00F0/U+00D0), which text from the legacy Vietnamese encodings and
// some keyboards has for them.
var keywordLetters = strings.NewReplacer("đ", "d", "Đ", "D", "ð", "d", "Ð", "D")

// normalizeKeyword upper-cases, strips diacritics (đ → D), trims
// punctuation and collapses spaces.
func normalizeKeyword(s string) string {
	s, _, _ = transform.String(fold, s)
	s = keywordLetters.Replace(s)
	// Format characters (a zero-width space, a BOM a phone put in front)
	// are invisible: "STOP" with one is STOP.
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) })
	return strings.ToUpper(strings.Join(strings.Fields(s), " "))
}

// With returns k with optOut and optIn added (a carrier's own words, from
// the configuration). A word given for one list leaves the others, so that
// a carrier may turn a default opt-in word into an opt-out one.
func (k Keywords) With(optOut, optIn []string) Keywords {
	drop := func(words []string, take []string) []string {
		var out []string
		for _, w := range words {
			if !slices.ContainsFunc(take, func(t string) bool { return normalizeKeyword(t) == normalizeKeyword(w) }) {
				out = append(out, w)
			}
		}
		return out
	}
	return Keywords{
		OptOut: append(drop(k.OptOut, optIn), optOut...),
		OptIn:  append(drop(k.OptIn, optOut), optIn...),
		Help:   drop(k.Help, append(slices.Clone(optOut), optIn...)),
	}
}

// CheckKeyword says what is wrong with w as a keyword ("" if nothing): it
// must keep some letters or digits once normalised as Match compares.
func CheckKeyword(w string) string {
	if normalizeKeyword(w) == "" {
		return fmt.Sprintf("%q has no letters or digits", w)
	}
	return ""
}

// Match classifies an inbound message body.
func (k Keywords) Match(body string) Keyword {
	b := normalizeKeyword(body)
	for _, set := range []struct {
		words []string
		kw    Keyword
	}{{k.OptOut, KeywordOptOut}, {k.OptIn, KeywordOptIn}, {k.Help, KeywordHelp}} {
		for _, w := range set.words {
			if b == normalizeKeyword(w) {
				return set.kw
			}
		}
	}
	return KeywordNone
}
