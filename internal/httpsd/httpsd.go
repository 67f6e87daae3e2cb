// Package httpsd serves the target list for Prometheus http_sd: the last snapshot the refresh
// loop produced, never a live AWS scan per request.
package httpsd

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Handler is both the http_sd endpoint and the refresh sink that feeds it.
//
// It holds the snapshot's list as the snapshot does, gzip-compressed: a client that accepts
// gzip (Prometheus's does) gets those bytes as they are, any other the list uncompressed on the
// way.
type Handler struct {
	snap atomic.Pointer[targets.Snapshot]
}

// New returns a handler that serves "[]" until its first update.
func New() *Handler {
	h := &Handler{}
	empty, err := targets.NewSnapshot(nil)
	if err != nil {
		panic(err) // compressing "[]" into memory does not fail
	}
	h.snap.Store(&empty)
	return h
}

// Name implements refresh.Sink.
func (h *Handler) Name() string { return "http_sd" }

// Update implements refresh.Sink: the snapshot's rendered list is served from now on.
// Prometheus's http_sd has no file to protect, so the list is served as discovered, complete or
// not.
func (h *Handler) Update(_ context.Context, snap targets.Snapshot, _ bool) error {
	h.snap.Store(&snap)
	return nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	snap := h.snap.Load()
	header := w.Header()
	header.Set("Content-Type", "application/json")
	header.Add("Vary", "Accept-Encoding")
	gzipped := acceptsGzip(r.Header.Values("Accept-Encoding"))
	if gzipped {
		header.Set("Content-Encoding", "gzip")
		header.Set("Content-Length", strconv.Itoa(len(snap.Gzip)))
	} else {
		header.Set("Content-Length", strconv.FormatInt(snap.Size, 10))
	}
	switch {
	case r.Method == http.MethodHead:
	case gzipped:
		_, _ = w.Write(snap.Gzip)
	default:
		_, _ = snap.WriteTo(w)
	}
}

// acceptsGzip reports whether Accept-Encoding header values accept gzip: named (or x-gzip), or
// matched by "*", with a quality above 0; a named entry wins over "*".
func acceptsGzip(values []string) bool {
	star := false
	for _, v := range values {
		for _, entry := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(entry, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "x-gzip" && coding != "*" {
				continue
			}
			ok := true
			if name, q, found := strings.Cut(strings.TrimSpace(params), "="); found && strings.EqualFold(strings.TrimSpace(name), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(q), 64)
				ok = err == nil && f > 0
			}
			if coding != "*" {
				return ok
			}
			star = ok
		}
	}
	return star
}
