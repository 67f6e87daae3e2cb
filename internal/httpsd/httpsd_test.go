package httpsd

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// answer is one raw HTTP answer: the client neither asks for nor undoes compression by itself.
type answer struct {
	code    int
	header  http.Header
	body    []byte
	decoded string // body, decompressed when gzip
}

func do(t *testing.T, method, url string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, http.NoBody)
	require.NoError(t, err)
	for i := 0; i < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{code: resp.StatusCode, header: resp.Header, body: body, decoded: string(body)}
	if resp.Header.Get("Content-Encoding") == "gzip" && len(body) > 0 {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		require.NoError(t, err)
		plain, err := io.ReadAll(zr)
		require.NoError(t, err)
		a.decoded = string(plain)
	}
	return a
}

// addrList returns n target addresses.
func addrList(n int) []string {
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.0.%d.%d:3000", i/250, i%250)
	}
	return addrs
}

// update gives h the snapshot of the targets at addrs, and returns it with its list as
// targets.Marshal renders it.
func update(t *testing.T, h *Handler, addrs ...string) (targets.Snapshot, string) {
	t.Helper()
	var groups []*targets.Group
	for _, a := range addrs {
		groups = append(groups, &targets.Group{Targets: []string{a}, Labels: model.LabelSet{"service": "web"}})
	}
	want, err := targets.Marshal(groups)
	require.NoError(t, err)
	snap, err := targets.NewSnapshot(groups)
	require.NoError(t, err)
	require.NoError(t, h.Update(context.Background(), snap))
	return snap, string(want)
}

func TestHandlerServesLastSnapshot(t *testing.T) {
	t.Parallel()
	h := New(nil)
	srv := httptest.NewServer(h)
	defer srv.Close()

	a := do(t, http.MethodGet, srv.URL)
	require.Equal(t, http.StatusOK, a.code)
	require.Equal(t, "application/json", a.header.Get("Content-Type"))
	require.Equal(t, "[]\n", a.decoded)
	require.Empty(t, a.header.Get("Content-Encoding"), "not asked for")

	_, want := update(t, h, "10.0.0.1:3000")
	a = do(t, http.MethodGet, srv.URL)
	require.Equal(t, want, a.decoded)
	require.Equal(t, fmt.Sprint(len(want)), a.header.Get("Content-Length"))

	a = do(t, http.MethodPost, srv.URL)
	require.Equal(t, http.StatusMethodNotAllowed, a.code)
	require.Equal(t, "GET, HEAD", a.header.Get("Allow"))
}

// TestGzipETagNotModified: gzip for a client that accepts it, the plain list for one that does
// not, both the same list; an entity tag for each; 304 without a body while the list is
// unchanged, the new list once it changed.
func TestGzipETagNotModified(t *testing.T) {
	t.Parallel()
	h := New(nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	addrs := addrList(500)
	snap, want := update(t, h, addrs...)

	plain := do(t, http.MethodGet, srv.URL)
	zipped := do(t, http.MethodGet, srv.URL, "Accept-Encoding", "gzip")
	require.Equal(t, http.StatusOK, zipped.code)
	require.Equal(t, "gzip", zipped.header.Get("Content-Encoding"))
	require.Equal(t, "application/json", zipped.header.Get("Content-Type"))
	require.Equal(t, "Accept-Encoding", zipped.header.Get("Vary"))
	require.Equal(t, "Accept-Encoding", plain.header.Get("Vary"))
	require.Equal(t, want, zipped.decoded)
	require.Equal(t, want, plain.decoded)
	require.Equal(t, snap.Gzip, zipped.body, "the snapshot's compressed bytes, as they are")
	require.Less(t, len(zipped.body)*5, len(plain.body), "compressed: %d bytes for %d", len(zipped.body), len(plain.body))
	require.Equal(t, fmt.Sprint(len(zipped.body)), zipped.header.Get("Content-Length"))
	require.Equal(t, fmt.Sprint(len(want)), plain.header.Get("Content-Length"))

	etag, zetag := plain.header.Get("ETag"), zipped.header.Get("ETag")
	require.Regexp(t, `^"[0-9a-f]{32}"$`, etag)
	require.NotEqual(t, etag, zetag, "two representations, two strong tags")

	for _, tc := range []struct {
		name   string
		header []string
		code   int
	}{
		{"plain, same tag", []string{"If-None-Match", etag}, http.StatusNotModified},
		{"gzip, same tag", []string{"Accept-Encoding", "gzip", "If-None-Match", zetag}, http.StatusNotModified},
		{"weak comparison", []string{"If-None-Match", "W/" + etag}, http.StatusNotModified},
		{"one of a list", []string{"If-None-Match", `"other", ` + etag}, http.StatusNotModified},
		{"any", []string{"If-None-Match", "*"}, http.StatusNotModified},
		{"the other representation's tag", []string{"If-None-Match", zetag}, http.StatusOK},
		{"another tag", []string{"If-None-Match", `"0123"`}, http.StatusOK},
	} {
		a := do(t, http.MethodGet, srv.URL, tc.header...)
		require.Equal(t, tc.code, a.code, tc.name)
		if tc.code == http.StatusNotModified {
			require.Empty(t, a.body, tc.name)
			require.Empty(t, a.header.Get("Content-Encoding"), tc.name)
			require.NotEmpty(t, a.header.Get("ETag"), tc.name)
		} else {
			require.Equal(t, want, a.decoded, tc.name)
		}
	}

	// The same list again: nothing is prepared again, the tags stay.
	before := h.current.Load()
	update(t, h, addrs...)
	require.Same(t, before, h.current.Load())

	// A new list: new tags, and the old one no longer matches.
	_, want = update(t, h, addrs[:10]...)
	a := do(t, http.MethodGet, srv.URL, "Accept-Encoding", "gzip", "If-None-Match", zetag)
	require.Equal(t, http.StatusOK, a.code)
	require.Equal(t, want, a.decoded)
	require.NotEqual(t, zetag, a.header.Get("ETag"))

	// HEAD: the headers of a GET, no body.
	a = do(t, http.MethodHead, srv.URL, "Accept-Encoding", "gzip")
	require.Equal(t, http.StatusOK, a.code)
	require.Empty(t, a.body)
	require.Equal(t, "gzip", a.header.Get("Content-Encoding"))

	require.Equal(t, 4.0, testutil.ToFloat64(h.responses.WithLabelValues("304", "identity")))
	require.Equal(t, 1.0, testutil.ToFloat64(h.responses.WithLabelValues("304", "gzip")))
	require.Equal(t, 3.0, testutil.ToFloat64(h.responses.WithLabelValues("200", "gzip")))
}

// TestGoClientReadsGzip: Go's default client asks for gzip by itself and undoes it.
func TestGoClientReadsGzip(t *testing.T) {
	t.Parallel()
	h := New(nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	_, want := update(t, h, "10.0.0.1:3000", "10.0.0.2:3000")
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.True(t, resp.Uncompressed, "sent compressed, undone by the client")
	require.Equal(t, want, string(body))
	require.Equal(t, 1.0, testutil.ToFloat64(h.responses.WithLabelValues("200", "gzip")))
}

func TestAcceptsGzip(t *testing.T) {
	t.Parallel()
	for header, want := range map[string]bool{
		"":                      false,
		"gzip":                  true,
		"GZIP":                  true,
		"x-gzip":                true,
		"deflate, gzip;q=1.0":   true,
		"br;q=1, gzip;q=0.5":    true,
		"gzip;q=0":              false,
		"gzip; q=0.000":         false,
		"gzip;q=abc":            false,
		"*":                     true,
		"*;q=0":                 false,
		"gzip;q=0, *":           false,
		"*, gzip;q=0":           false,
		"identity":              false,
		"deflate, br":           false,
		" gzip ; level=1 ":      true,
		"compress, gzip ; q=.2": true,
	} {
		require.Equal(t, want, acceptsGzip([]string{header}), "%q", header)
	}
	require.True(t, acceptsGzip([]string{"br", "gzip"}), "several header lines")
}

// TestPlainAnswersAtOnce: clients that do not accept gzip, served at the same time, each get the
// whole list, uncompressed as it is sent.
func TestPlainAnswersAtOnce(t *testing.T) {
	t.Parallel()
	h := New(nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	_, want := update(t, h, addrList(2000)...)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}} // as Prometheus's
	var wg sync.WaitGroup
	bodies, errs := make([]string, 8), make([]error, 8)
	for i := range bodies {
		wg.Go(func() {
			resp, err := client.Get(srv.URL)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			var b strings.Builder
			_, errs[i] = io.Copy(&b, resp.Body)
			bodies[i] = b.String()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "" {
				errs[i] = fmt.Errorf("%s, content encoding %q", resp.Status, resp.Header.Get("Content-Encoding"))
			}
		})
	}
	wg.Wait()
	for i := range bodies {
		require.NoError(t, errs[i])
		require.Equal(t, want, bodies[i])
	}
	require.Equal(t, 8.0, testutil.ToFloat64(h.responses.WithLabelValues("200", "identity")))
}
