// Package httpsd serves the target list for Prometheus http_sd: the last snapshot the refresh
// loop produced, never a live AWS scan per request.
//
// The handler holds the list as the snapshot holds it, gzip-compressed (about 0.2 MB at 10 000
// targets, where the JSON is about 15 MB), and its entity tags, computed once per change. A
// client that accepts gzip gets those bytes as they are; any other (Prometheus's own http_sd
// client asks for no compression) gets the list uncompressed on the way, never held whole; a
// request whose If-None-Match names the current entity tag gets 304 Not Modified.
package httpsd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// representations are one target list as served: the snapshot's compressed list (without its
// groups, which the handler does not need) and the entity tags of its two representations,
// plain and gzip-compressed (strong ones: the two differ, as their bytes do).
type representations struct {
	list                targets.Snapshot
	plainETag, gzipETag string
}

// New returns a handler that serves "[]" until its first update, and registers its metric with
// reg (when not nil).
func New(reg prometheus.Registerer) *Handler {
	h := &Handler{responses: newResponses(reg)}
	empty, err := targets.NewSnapshot(nil)
	if err != nil {
		panic(err) // compressing "[]" into memory does not fail
	}
	h.current.Store(prepare(empty))
	return h
}

// Name implements refresh.Sink.
func (h *Handler) Name() string { return "http_sd" }

// Update implements refresh.Sink: the snapshot's rendered list is served from now on. Its
// entity tags are computed here, once, unless it is the list already served.
func (h *Handler) Update(_ context.Context, snap targets.Snapshot) error {
	if bytes.Equal(h.current.Load().list.Gzip, snap.Gzip) {
		return nil
	}
	h.current.Store(prepare(snap))
	return nil
}

// prepare computes both entity tags of snap. They hash the compressed list: the same list is
// compressed to the same bytes (the loop renders and compresses every list alike), and two lists
// that differ are compressed to bytes that differ.
func prepare(snap targets.Snapshot) *representations {
	sum := sha256.Sum256(snap.Gzip)
	tag := hex.EncodeToString(sum[:16])
	return &representations{
		list:      targets.Snapshot{Gzip: snap.Gzip, Size: snap.Size},
		plainETag: `"` + tag + `"`,
		gzipETag:  `"` + tag + `-gzip"`,
	}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	cur := h.current.Load()
	gzipped := acceptsGzip(r.Header.Values("Accept-Encoding"))
	size, etag, encoding := cur.list.Size, cur.plainETag, "identity"
	header := w.Header()
	header.Add("Vary", "Accept-Encoding")
	if gzipped {
		size, etag, encoding = int64(len(cur.list.Gzip)), cur.gzipETag, "gzip"
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
	header.Set("Content-Length", strconv.FormatInt(size, 10))
	h.responses.WithLabelValues("200", encoding).Inc()
	switch {
	case r.Method == http.MethodHead:
	case gzipped:
		_, _ = w.Write(cur.list.Gzip)
	default:
		_, _ = cur.list.WriteTo(w) // the header is sent: an error (the client went away) has no answer
	}
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
