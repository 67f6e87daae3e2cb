// Package httpsd serves the target list for Prometheus http_sd: the last snapshot the refresh
// loop produced, never a live AWS scan per request.
//
// Each snapshot is prepared once, when it changes: its JSON (rendered by the loop), the same
// compressed with gzip, and an entity tag for each. A request is then answered with bytes
// already made: gzip when the client accepts it, 304 Not Modified when its If-None-Match names
// the current entity tag.
package httpsd

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Handler is both the http_sd endpoint and the refresh sink that feeds it.
type Handler struct {
	current   atomic.Pointer[representations]
	responses *prometheus.CounterVec
}

// representations are one target list as served: plain and gzip-compressed, each with its
// entity tag (a strong one: the two differ, as their bytes do).
type representations struct {
	plain, gzip         []byte
	plainETag, gzipETag string
}

// New returns a handler that serves "[]" until its first update, and registers its metric with
// reg (when not nil).
func New(reg prometheus.Registerer) *Handler {
	h := &Handler{responses: newResponses(reg)}
	empty, err := prepare([]byte("[]\n"))
	if err != nil {
		panic(err) // compressing three bytes into memory does not fail
	}
	h.current.Store(empty)
	return h
}

// Name implements refresh.Sink.
func (h *Handler) Name() string { return "http_sd" }

// Update implements refresh.Sink: the snapshot's rendered list is served from now on. It is
// compressed here, once, unless it is the list already served.
func (h *Handler) Update(_ context.Context, snap targets.Snapshot) error {
	if bytes.Equal(h.current.Load().plain, snap.JSON) {
		return nil
	}
	r, err := prepare(snap.JSON)
	if err != nil {
		return err
	}
	h.current.Store(r)
	return nil
}

// prepare compresses data and computes both entity tags.
func prepare(data []byte) (*representations, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		return nil, fmt.Errorf("compress target list: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress target list: %w", err)
	}
	sum := sha256.Sum256(data)
	tag := hex.EncodeToString(sum[:16])
	return &representations{
		plain:     data,
		gzip:      bytes.Clone(buf.Bytes()),
		plainETag: `"` + tag + `"`,
		gzipETag:  `"` + tag + `-gzip"`,
	}, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	cur := h.current.Load()
	body, etag, encoding := cur.plain, cur.plainETag, "identity"
	header := w.Header()
	header.Add("Vary", "Accept-Encoding")
	if acceptsGzip(r.Header.Values("Accept-Encoding")) {
		body, etag, encoding = cur.gzip, cur.gzipETag, "gzip"
		header.Set("Content-Encoding", "gzip")
	}
	header.Set("ETag", etag)
	if matches(r.Header.Values("If-None-Match"), etag) {
		header.Del("Content-Encoding")
		h.responses.WithLabelValues("304", encoding).Inc()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	header.Set("Content-Type", "application/json")
	header.Set("Content-Length", strconv.Itoa(len(body)))
	h.responses.WithLabelValues("200", encoding).Inc()
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// acceptsGzip reports whether the Accept-Encoding header values accept gzip: named (or x-gzip),
// or matched by "*", with a quality above 0. An explicit gzip entry wins over "*".
func acceptsGzip(values []string) bool {
	star := false
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "x-gzip" && coding != "*" {
				continue
			}
			ok := quality(params) > 0
			if coding != "*" {
				return ok
			}
			star = ok
		}
	}
	return star
}

// quality returns the q parameter of an Accept-Encoding entry's parameters (1 when absent, 0
// when not a number).
func quality(params string) float64 {
	for _, p := range strings.Split(params, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(name), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				return 0
			}
			return q
		}
	}
	return 1
}

// matches reports whether the If-None-Match header values name etag, or are "*". The comparison
// is weak, as RFC 9110 requires for If-None-Match: W/"x" matches "x".
func matches(values []string, etag string) bool {
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}

// newResponses creates the counter of http_sd answers and registers it with reg (when not nil).
func newResponses(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ecs_sd_http_sd_responses_total",
		Help: "Answers of the http_sd endpoint, by status code (200, 304) and content encoding (gzip, identity).",
	}, []string{"code", "encoding"})
	for _, code := range []string{"200", "304"} {
		for _, enc := range []string{"gzip", "identity"} {
			c.WithLabelValues(code, enc)
		}
	}
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}
