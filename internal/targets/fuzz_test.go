package targets

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// FuzzSanitizeLabelName checks that any string, behind a label-name prefix, gives a valid
// Prometheus label name (the classic, non-UTF-8 rules), one underscore-or-character per character
// of the input, keeping every character that is allowed, and that sanitising is idempotent.
func FuzzSanitizeLabelName(f *testing.F) {
	for _, s := range []string{"", "AVAILABILITY_ZONE", "team:owner-x.y", "a.b", "a-b", "é", "\xff", "0", "__", "日本語", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SanitizeLabelName(s)
		require.True(t, model.LegacyValidation.IsValidLabelName("__meta_x_"+got), "%q -> %q", s, got)
		require.Equal(t, got, SanitizeLabelName(got), "idempotent")
		require.Equal(t, utf8.RuneCountInString(s), len(got), "one byte per character of %q", s)
		want := []byte{}
		for _, r := range s {
			if r >= utf8.RuneSelf || !isLabelChar(byte(r)) {
				r = '_'
			}
			want = append(want, byte(r))
		}
		require.Equal(t, string(want), got, "allowed characters kept, others replaced")
	})
}

// FuzzRender checks the file_sd renderer against encoding/json, byte for byte, on label sets
// made of arbitrary strings, and that the size it reports is the size it writes; the output parses
// back into the same groups when the strings are valid.
func FuzzRender(f *testing.F) {
	f.Add("10.0.0.1:80", "__meta_x", "v", "k2", "é\u2028\xff\"\\\n<&>")
	f.Add("", "", "", "a", "")
	f.Fuzz(func(t *testing.T, target, n1, v1, n2, v2 string) {
		groups := []*Group{
			{Targets: []string{target}, Labels: model.LabelSet{model.LabelName(n1): model.LabelValue(v1), model.LabelName(n2): model.LabelValue(v2)}},
			{Targets: []string{target, v1}, Labels: model.LabelSet{model.LabelName(v2): model.LabelValue(n1)}},
		}
		got := rendered(t, groups)
		require.Equal(t, string(jsonEncoder(t, groups)), string(got))
		for _, s := range []string{target, n1, v1, n2, v2} {
			if !utf8.ValidString(s) || !model.UTF8Validation.IsValidLabelName(s) && (s == n1 || s == n2 || s == v2) {
				return // invalid UTF-8 is written as U+FFFD; invalid names are refused when read
			}
		}
		back, err := Unmarshal(got)
		require.NoError(t, err)
		require.Len(t, back, 2)
		for i := range groups {
			require.True(t, groups[i].Equal(back[i]), "group %d: %v, read back %v", i, groups[i], back[i])
		}
	})
}

// FuzzParsePort checks that a port is accepted exactly when it is a whole number from 1 to 65535
// (spaces around it allowed), and that a refusal quotes the value.
func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"80", " 9100 ", "0", "65536", "-1", "abc", "", "+80", "0080", "1e3", "\t443\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		n, convErr := strconv.Atoi(strings.TrimSpace(s))
		if convErr != nil || n < 1 || n > 65535 {
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), strconv.Quote(s)+" "), err.Error())
			return
		}
		require.NoError(t, err)
		require.Equal(t, n, p)
	})
}

// FuzzRead checks the streaming reader of file_sd lists against encoding/json's decoding of
// []*Group (model.LabelSet validates the names): both accept the same documents and give the same
// groups; what Read accepts, rendered and read again, gives the same groups.
func FuzzRead(f *testing.F) {
	f.Add(`[{"targets":["10.0.0.1:80"],"labels":{"a":"1","__meta_x":"é"}}]`)
	f.Add(`[null, {"targets":null,"labels":null}, {}]`)
	f.Add(`null`)
	f.Add(`[] x`)
	f.Add(`[{"labels":{"0bad":"1"}}]`)
	f.Add(`{"targets":[]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		got, err := Unmarshal([]byte(doc))
		var want []*Group
		wantErr := json.Unmarshal([]byte(doc), &want)
		if wantErr != nil {
			require.Error(t, err, "encoding/json refuses %q: %v", doc, wantErr)
			return
		}
		require.NoError(t, err, doc)
		require.Len(t, got, len(want))
		for i := range want {
			require.True(t, want[i].Equal(got[i]), "group %d of %q: %v, want %v", i, doc, got[i], want[i])
		}
		again, err := Unmarshal(rendered(t, got))
		require.NoError(t, err)
		if got == nil {
			got = []*Group{}
		}
		require.Len(t, again, len(got))
		for i := range got {
			require.True(t, got[i].Equal(again[i]), "group %d of %q read again", i, doc)
		}
	})
}
