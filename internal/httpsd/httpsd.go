// Package httpsd serves the target list for Prometheus http_sd: the last snapshot the refresh
// loop produced, never a live AWS scan per request.
//
// The handler holds the list as the snapshot holds it, gzip-compressed (about 0.2 MB at 10 000
// targets, where the JSON is about 15 MB), and its entity tags, computed once per change. A
// client that accepts gzip gets those bytes as they are; any other (Prometheus's own http_sd
// client asks for no compression) gets the list uncompressed on the way, never held whole; a
// request whose If-None-Match names the current entity tag gets 304 Not Modified.
//
// A request with the parameters shard=I&of=N gets only the targets of shard I of N, as
// Prometheus's relabel action hashmod of __address__ with modulus N selects them
// (targets.Shard), with the same encodings, entity tags and 304s. Each shard asked for is
// rendered once per list, at the first request for it, and held with the list (at most
// maxShards of them): a fleet of N Prometheus servers, each asking for its shard every
// refresh_interval, costs one rendering of each shard per change of the list.
package httpsd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// Handler is both the http_sd endpoint and the refresh sink that feeds it.
type Handler struct {
	current   atomic.Pointer[served]
	responses *prometheus.CounterVec
}

// representations are one target list as served: its compressed bytes (without its groups) and
// the entity tags of its two representations, plain and gzip-compressed (strong ones: the two
// differ, as their bytes do).
type representations struct {
	list                targets.Snapshot
	plainETag, gzipETag string
}

// maxShards bounds the shards held rendered for one list: as many as a few fleets of shards
// ask for (e.g. 3 of 3, 10 of 10 and 64 of 64 together). A shard asked for beyond it is
// rendered for its request and not held.
const maxShards = 128

// served is the snapshot being served: the whole list, the groups to cut its shards from, and
// the shards rendered so far.
type served struct {
	representations
	// groups returns the snapshot's groups, read once: the snapshot's own (held by the refresh
	// loop anyway), or when it holds none, its compressed list decoded at the first request
	// for a shard.
	groups    func() ([]*targets.Group, error)
	ownGroups bool // the snapshot held its groups: groups does not read them back

	mu     sync.Mutex
	shards map[shardKey]*shard
}

type shardKey struct{ i, n uint64 }

// shard is one shard of a list, rendered once (by the first request for it; the others wait).
type shard struct {
	once sync.Once
	rep  *representations
	err  error
}

// New returns a handler that serves "[]" until its first update, and registers its metric with
// reg (when not nil).
func New(reg prometheus.Registerer) *Handler {
	h := &Handler{responses: newResponses(reg)}
	empty, err := targets.NewSnapshot(nil)
	if err != nil {
		panic(err) // compressing "[]" into memory does not fail
	}
	h.current.Store(serve(empty))
	return h
}

// Name implements refresh.Sink.
func (h *Handler) Name() string { return "http_sd" }

// Update implements refresh.Sink: the snapshot's rendered list is served from now on. Its
// entity tags are computed here, once, unless it is the list already served.
//
// The same list is served anew only when it now comes with its groups and came without (the
// earlier list, primed, then found again by the first discovery): its shards are then cut from
// the loop's groups rather than from a copy read back from the compressed list.
func (h *Handler) Update(_ context.Context, snap targets.Snapshot) error {
	cur := h.current.Load()
	if bytes.Equal(cur.list.Gzip, snap.Gzip) && (cur.ownGroups || snap.Groups == nil) {
		return nil
	}
	h.current.Store(serve(snap))
	return nil
}

// serve prepares snap to be served.
func serve(snap targets.Snapshot) *served {
	return &served{
		representations: *prepare(snap),
		groups:          sync.OnceValues(snap.List),
		ownGroups:       snap.Groups != nil,
		shards:          map[shardKey]*shard{},
	}
}

// shard returns the representations of shard i of n of the list, rendering it at the first
// request.
func (s *served) shard(i, n uint64) (*representations, error) {
	key := shardKey{i, n}
	s.mu.Lock()
	sh := s.shards[key]
	if sh == nil {
		sh = new(shard)
		if len(s.shards) < maxShards {
			s.shards[key] = sh
		}
	}
	s.mu.Unlock()
	sh.once.Do(func() {
		groups, err := s.groups()
		if err != nil {
			sh.err = err
			return
		}
		snap, err := targets.NewSnapshot(targets.Shard(groups, i, n))
		if err != nil {
			sh.err = err
			return
		}
		sh.rep = prepare(snap)
	})
	return sh.rep, sh.err
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
	list := h.current.Load()
	cur := &list.representations
	if r.URL.RawQuery != "" { // the whole list's answers do not parse an absent query
		i, n, sharded, err := shardParams(r.URL.RawQuery)
		if err != nil {
			h.responses.WithLabelValues("400", "identity").Inc()
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if sharded {
			if cur, err = list.shard(i, n); err != nil { // the list held cannot be read back
				h.responses.WithLabelValues("500", "identity").Inc()
				http.Error(w, fmt.Sprintf("shard %d of %d: %v", i, n, err), http.StatusInternalServerError)
				return
			}
		}
	}
	h.write(w, r, cur)
}

// write answers r with the list of cur.
func (h *Handler) write(w http.ResponseWriter, r *http.Request, cur *representations) {
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

// shardParams reads the parameters shard and of of a query: sharded is false when it has
// neither (the whole list), and err says what is wrong when it has only one, either more than
// once, or values that are not a shard number I and a number of shards N with 0 <= I < N.
// Other parameters are ignored, as they are without shard and of.
func shardParams(query string) (i, n uint64, sharded bool, err error) {
	var shardValues, ofValues []string
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		key, value, _ := strings.Cut(pair, "=")
		if k, kerr := url.QueryUnescape(key); kerr == nil {
			key = k
		}
		if key != "shard" && key != "of" {
			continue
		}
		v, verr := url.QueryUnescape(value)
		if verr != nil {
			return 0, 0, false, fmt.Errorf("parameter %s: %q is not a valid query value", key, value)
		}
		if key == "shard" {
			shardValues = append(shardValues, v)
		} else {
			ofValues = append(ofValues, v)
		}
	}
	switch {
	case shardValues == nil && ofValues == nil:
		return 0, 0, false, nil
	case ofValues == nil:
		return 0, 0, false, errors.New("parameter of (the number of shards) is missing: ask for shard=I&of=N")
	case shardValues == nil:
		return 0, 0, false, errors.New("parameter shard (the shard number) is missing: ask for shard=I&of=N")
	case len(shardValues) > 1:
		return 0, 0, false, fmt.Errorf("parameter shard is given %d times, want once", len(shardValues))
	case len(ofValues) > 1:
		return 0, 0, false, fmt.Errorf("parameter of is given %d times, want once", len(ofValues))
	}
	if n, err = count("of", ofValues[0]); err != nil {
		return 0, 0, false, err
	}
	if n == 0 {
		return 0, 0, false, errors.New("parameter of: the number of shards must be at least 1, got 0")
	}
	if i, err = count("shard", shardValues[0]); err != nil {
		return 0, 0, false, err
	}
	if i >= n {
		return 0, 0, false, fmt.Errorf("parameter shard: shard %d of %d does not exist, shards are numbered from 0 to %d", i, n, n-1)
	}
	return i, n, true, nil
}

// count parses the value of parameter name, a number from 0 up, written in decimal digits.
func count(name, v string) (uint64, error) {
	if strings.HasPrefix(v, "-") && strings.Trim(v[1:], "0123456789") == "" && len(v) > 1 {
		return 0, fmt.Errorf("parameter %s: %s is negative", name, v)
	}
	c, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parameter %s: %q is not a whole number from 0 up", name, v)
	}
	return c, nil
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
		Help: "Answers of the http_sd endpoint, whole list and shards alike, by status code (200, 304; 400 for bad shard parameters, 500 for a list that cannot be read back) and content encoding (gzip, identity).",
	}, []string{"code", "encoding"})
	c.WithLabelValues("400", "identity")
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
