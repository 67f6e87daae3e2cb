// Package httpsd serves the target list for Prometheus http_sd: the last snapshot the refresh
// loop produced, never a live AWS scan per request.
package httpsd

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Handler is both the http_sd endpoint and the refresh sink that feeds it.
type Handler struct {
	body atomic.Pointer[[]byte]
}

// New returns a handler that serves "[]" until its first update.
func New() *Handler {
	h := &Handler{}
	empty := []byte("[]\n")
	h.body.Store(&empty)
	return h
}

// Name implements refresh.Sink.
func (h *Handler) Name() string { return "http_sd" }

// Update implements refresh.Sink: the snapshot's rendered list is served from now on.
// Prometheus's http_sd has no file to protect, so the list is served as discovered, complete or
// not.
func (h *Handler) Update(_ context.Context, snap targets.Snapshot, _ bool) error {
	h.body.Store(&snap.JSON)
	return nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(*h.body.Load())
}
