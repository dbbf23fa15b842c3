package campaign_test

import (
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"outreach/campaign"
	"outreach/templates"
)

const optOut = "Tu choi: soan TC gui 9241"

var vnPolicy = campaign.Policy{Label: "QC", OptOutText: optOut}

// TestDecorateSMSSendsWhatItCounts: the text DecorateSMS returns is what the
// worker hands the provider and what it counts segments on, so it must be
// NFC, or a decomposed "a" + U+0300 goes out as UCS-2 while CountSMS (which
// composes first) said GSM-7.
func TestDecorateSMSSendsWhatItCounts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		policy        campaign.Policy
		kind          campaign.Kind
		body          string
		transliterate bool
		want          string
		encoding      templates.Encoding
		segments      int
	}{
		{"a decomposed greeting in an alert is sent composed, as GSM-7",
			vnPolicy, campaign.KindExposureAlert, "Xin cha\u0300o", false,
			"Xin chào", templates.GSM7, 1},
		{"a decomposed marketing body is sent composed with its label and opt-out",
			vnPolicy, campaign.KindInstallPromotion, "Xin cha\u0300o", false,
			"QC: Xin chào - " + optOut, templates.GSM7, 1},
		{"decomposed Vietnamese that stays Vietnamese is composed UCS-2, 70 characters a segment",
			vnPolicy, campaign.KindExposureAlert, "Ba\u0323n la\u0300 F1, ha\u0303y lie\u0302n he\u0323\u0302 y te\u0302\u0301.", false,
			"Bạn là F1, hãy liên hệ y tế.", templates.UCS2, 1},
		{"a decomposed promo transliterated is plain GSM-7",
			vnPolicy, campaign.KindInstallPromotion, "Ca\u0300i Bluezone nha\u0302\u0323n 5120MB: https://bz.vn/i/AbCd1234", true,
			"QC: Cai Bluezone nhan 5120MB: https://bz.vn/i/AbCd1234 - " + optOut, templates.GSM7, 1},
		{"a decomposed opt-out text from the configuration is composed too",
			campaign.Policy{Label: "QC", OptOutText: "Tu\u031b\u0300 cho\u0302\u0301i: soa\u0323n TC gu\u031b\u0309i 9241"},
			campaign.KindInstallPromotion, "Cai ngay.", false,
			"QC: Cai ngay. Từ chối: soạn TC gửi 9241", templates.UCS2, 1},
		{"an opt-out text already in a decomposed body is not added again",
			campaign.Policy{Label: "QC", OptOutText: "Từ chối: soạn TC gửi 9241"},
			campaign.KindInstallPromotion, "QC: Cai ngay. Tu\u031b\u0300 cho\u0302\u0301i: soa\u0323n TC gu\u031b\u0309i 9241", false,
			"QC: Cai ngay. Từ chối: soạn TC gửi 9241", templates.UCS2, 1},
		{"opt-out instructions written with diacritics are not added again without them",
			vnPolicy, campaign.KindInstallPromotion, "Cài Bluezone nhận 5GB: https://bz.vn/i/AbCd1234. Từ chối: soạn TC gửi 9241", true,
			"QC: Cai Bluezone nhan 5GB: https://bz.vn/i/AbCd1234. Tu choi: soan TC gui 9241", templates.GSM7, 1},
		{"nor when the body keeps its diacritics",
			vnPolicy, campaign.KindInstallPromotion, "Cài Bluezone. Từ chối: soạn TC gửi 9241", false,
			"QC: Cài Bluezone. Từ chối: soạn TC gửi 9241", templates.UCS2, 1},
		{"a long decomposed body keeps the GSM-7 segment count it was measured at",
			vnPolicy, campaign.KindExposureAlert, strings.Repeat("cha\u0300o ", 40), false,
			strings.TrimSpace(strings.Repeat("chào ", 40)), templates.GSM7, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sent := tc.policy.DecorateSMS(tc.kind, tc.body, tc.transliterate)
			if sent != tc.want {
				t.Errorf("DecorateSMS = %q, want %q", sent, tc.want)
			}
			if nfc := norm.NFC.String(sent); sent != nfc {
				t.Errorf("DecorateSMS = %+q is not NFC (%+q)", sent, nfc)
			}
			c := templates.CountSMS(sent)
			if c.Encoding != tc.encoding || c.Segments != tc.segments {
				t.Errorf("CountSMS(%q) = %+v, want %s in %d segments", sent, c, tc.encoding, tc.segments)
			}
			// The parts a phone receives are cut from the NFC text: they make
			// up exactly what was sent only when what was sent is NFC.
			if parts := templates.SplitSMS(sent); strings.Join(parts, "") != sent || len(parts) != c.Segments {
				t.Errorf("SplitSMS(%q) = %q, not the text sent in %d segments", sent, parts, c.Segments)
			}
			// The preview shows what is sent, with the same count.
			if text, pc := templates.Preview(sent, tc.transliterate); text != sent || pc != c {
				t.Errorf("Preview(sent) = %q, %+v; sent %q, %+v", text, pc, sent, c)
			}
		})
	}
}

// TestDecorateSMSRenderedDecomposedName: a subscriber name imported
// decomposed, rendered and decorated, leaves as NFC.
func TestDecorateSMSRenderedDecomposedName(t *testing.T) {
	t.Parallel()
	tm, err := templates.Parse("greet", "Cha\u0300o {{.Name}}! Cai Bluezone: {{.InstallLink}}")
	if err != nil {
		t.Fatal(err)
	}
	body, err := tm.Render(templates.Vars{Name: "Le\u0302 Va\u0306n An", InstallLink: "https://bz.vn/i/x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, translit := range []bool{false, true} {
		sent := vnPolicy.DecorateSMS(campaign.KindInstallPromotion, body, translit)
		want := "QC: Chào Lê Văn An! Cai Bluezone: https://bz.vn/i/x - " + optOut
		if translit {
			want = "QC: Chao Le Van An! Cai Bluezone: https://bz.vn/i/x - " + optOut
		}
		if sent != want || !norm.NFC.IsNormalString(sent) {
			t.Errorf("transliterate=%v: sent %+q, want %+q", translit, sent, want)
		}
	}
}

func TestDecorateSMSLabel(t *testing.T) {
	t.Parallel()
	noOptOut := campaign.Policy{Label: "QC"}
	cases := []struct {
		name   string
		policy campaign.Policy
		kind   campaign.Kind
		body   string
		want   string
	}{
		{"a plain body is labelled", noOptOut, campaign.KindInstallPromotion,
			"Cai Bluezone ngay", "QC: Cai Bluezone ngay"},
		{"a body starting with the label's letters is still labelled", noOptOut, campaign.KindInstallPromotion,
			"QCVN 01:2020 khuyen cao deo khau trang", "QC: QCVN 01:2020 khuyen cao deo khau trang"},
		{"the label followed by a digit is not a label", noOptOut, campaign.KindInstallPromotion,
			"QC2 dat chuan", "QC: QC2 dat chuan"},
		{"the label followed by a dot is not a label (QC.vn)", noOptOut, campaign.KindInstallPromotion,
			"QC.vn tang 5GB", "QC: QC.vn tang 5GB"},
		{"a lower-case qc is not the label", noOptOut, campaign.KindInstallPromotion,
			"qc: tang 5GB", "QC: qc: tang 5GB"},
		{"QC: is left alone", noOptOut, campaign.KindInstallPromotion, "QC: tang 5GB", "QC: tang 5GB"},
		{"QC and a space is left alone", noOptOut, campaign.KindInstallPromotion, "QC tang 5GB", "QC tang 5GB"},
		{"QC and a dash is left alone", noOptOut, campaign.KindInstallPromotion, "QC - tang 5GB", "QC - tang 5GB"},
		{"[QC] is left alone", noOptOut, campaign.KindInstallPromotion, "[QC] tang 5GB", "[QC] tang 5GB"},
		{"(QC) is left alone even without a space", noOptOut, campaign.KindInstallPromotion, "(QC)tang 5GB", "(QC)tang 5GB"},
		{"leading space does not hide the label", noOptOut, campaign.KindInstallPromotion, "  QC: tang 5GB ", "QC: tang 5GB"},
		{"a label with its own punctuation gets a space only", campaign.Policy{Label: "[QC]"}, campaign.KindInstallPromotion,
			"tang 5GB", "[QC] tang 5GB"},
		{"a label with its own punctuation is found without a space", campaign.Policy{Label: "[QC]"}, campaign.KindInstallPromotion,
			"[QC]tang 5GB", "[QC]tang 5GB"},
		{"an empty label adds nothing", campaign.Policy{}, campaign.KindInstallPromotion, "tang 5GB", "tang 5GB"},
		{"an alert is never labelled", noOptOut, campaign.KindExposureAlert, "QCVN: ban la F1", "QCVN: ban la F1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.policy.DecorateSMS(tc.kind, tc.body, false); got != tc.want {
				t.Errorf("DecorateSMS(%q) = %q, want %q", tc.body, got, tc.want)
			}
		})
	}
}

func TestDecorateSMSOptOut(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		body          string
		transliterate bool
		want          string
	}{
		{"after a full stop, a space only", "Cai ngay.", false, "QC: Cai ngay. " + optOut},
		{"after an exclamation mark, a space only", "Install now!", false, "QC: Install now! " + optOut},
		{"after a question mark, a space only", "Ban da cai chua?", false, "QC: Ban da cai chua? " + optOut},
		{"after an ellipsis, a space only", "Con 3 ngay…", false, "QC: Con 3 ngay… " + optOut},
		{"after a transliterated ellipsis, a space only", "Còn 3 ngày…", true, "QC: Con 3 ngay... " + optOut},
		{"after punctuation inside a closing quote, a space only", `"Cai ngay!"`, false, `QC: "Cai ngay!" ` + optOut},
		{"a link at the end is not touched", "Cai Bluezone: https://bz.vn/i/AbCd1234", false,
			"QC: Cai Bluezone: https://bz.vn/i/AbCd1234 - " + optOut},
		{"a transliterated link at the end is not touched", "Cài Bluezone: https://bz.vn/i/AbCd1234", true,
			"QC: Cai Bluezone: https://bz.vn/i/AbCd1234 - " + optOut},
		{"a link in brackets at the end is not touched", "Cai Bluezone (https://bz.vn/i/x)", false,
			"QC: Cai Bluezone (https://bz.vn/i/x) - " + optOut},
		{"a body ending in a word gets the dash", "Cai Bluezone ngay", false, "QC: Cai Bluezone ngay - " + optOut},
		{"trailing space is not a separator", "Cai ngay!  \n", false, "QC: Cai ngay! " + optOut},
		{"a body with the instructions already is left alone", "Cai ngay. " + optOut, false, "QC: Cai ngay. " + optOut},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := vnPolicy.DecorateSMS(campaign.KindInstallPromotion, tc.body, tc.transliterate)
			if got != tc.want {
				t.Errorf("DecorateSMS(%q) = %q, want %q", tc.body, got, tc.want)
			}
			if strings.Contains(got, "!.") || strings.Contains(got, "?.") || strings.Contains(got, "/.") {
				t.Errorf("DecorateSMS(%q) = %q doubles punctuation or touches a link", tc.body, got)
			}
			if c := templates.CountSMS(got); !tc.transliterate && c.Encoding != templates.GSM7 && !strings.Contains(got, "…") {
				t.Errorf("DecorateSMS(%q) = %q is %s", tc.body, got, c.Encoding)
			}
		})
	}
	t.Run("an empty opt-out text adds nothing", func(t *testing.T) {
		t.Parallel()
		p := campaign.Policy{Label: "QC"}
		if got := p.DecorateSMS(campaign.KindInstallPromotion, "Cai ngay", false); got != "QC: Cai ngay" {
			t.Errorf("DecorateSMS = %q", got)
		}
	})
	t.Run("an alert gets no opt-out text", func(t *testing.T) {
		t.Parallel()
		if got := vnPolicy.DecorateSMS(campaign.KindExposureAlert, "Ban la F1: https://bz.vn/f1", false); got != "Ban la F1: https://bz.vn/f1" {
			t.Errorf("DecorateSMS = %q", got)
		}
	})
}
