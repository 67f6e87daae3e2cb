package httpsd

import (
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

// shardedList is n one-target groups and, every fifth, a group of three targets (ecs-sd writes
// one target per group; an earlier file or another writer may not).
func shardedList(n int) []*targets.Group {
	var groups []*targets.Group
	for i := range n {
		g := &targets.Group{Targets: []string{fmt.Sprintf("10.0.%d.%d:3000", i/250, i%250)}, Labels: model.LabelSet{"service": model.LabelValue(fmt.Sprint("web-", i%4))}}
		if i%5 == 0 {
			g.Targets = append(g.Targets, fmt.Sprintf("10.1.%d.%d:9100", i/250, i%250), fmt.Sprintf("10.2.%d.%d:9100", i/250, i%250))
		}
		groups = append(groups, g)
	}
	return groups
}

// targetsOf returns every target of a list as address and labels.
func targetsOf(t *testing.T, list string) []string {
	t.Helper()
	groups, err := targets.Unmarshal([]byte(list))
	require.NoError(t, err)
	var out []string
	for _, g := range groups {
		require.NotEmpty(t, g.Targets, "no empty group")
		for _, a := range g.Targets {
			out = append(out, a+" "+g.Labels.String())
		}
	}
	return out
}

// TestShardsPartitionTheList: for several N, the shards of N, plain and gzip, are each the list
// of targets.Shard, every target in the shard Prometheus's hashmod gives it, and together the
// whole list, each target once.
func TestShardsPartitionTheList(t *testing.T) {
	t.Parallel()
	h := New(nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	groups := shardedList(400)
	snap, err := targets.NewSnapshot(groups)
	require.NoError(t, err)
	require.NoError(t, h.Update(context.Background(), snap))
	whole := do(t, http.MethodGet, srv.URL)
	all := targetsOf(t, whole.decoded)

	for _, n := range []uint64{1, 2, 3, 10} {
		var union []string
		etags := map[string]uint64{}
		for i := range n {
			url := fmt.Sprintf("%s/?shard=%d&of=%d", srv.URL, i, n)
			plain := do(t, http.MethodGet, url)
			zipped := do(t, http.MethodGet, url, "Accept-Encoding", "gzip")
			require.Equal(t, http.StatusOK, plain.code, plain.decoded)
			require.Equal(t, "gzip", zipped.header.Get("Content-Encoding"))
			require.Equal(t, "Accept-Encoding", plain.header.Get("Vary"))
			want, err := targets.Marshal(targets.Shard(snap.Groups, i, n))
			require.NoError(t, err)
			require.Equal(t, string(want), plain.decoded, "shard %d of %d", i, n)
			require.Equal(t, string(want), zipped.decoded, "shard %d of %d, gzip", i, n)
			require.Equal(t, fmt.Sprint(len(want)), plain.header.Get("Content-Length"))
			require.Equal(t, fmt.Sprint(len(zipped.body)), zipped.header.Get("Content-Length"))
			for _, tg := range targetsOf(t, plain.decoded) {
				addr, _, _ := strings.Cut(tg, " ")
				require.Equal(t, i, targets.HashMod(addr, n), "%s in shard %d of %d", addr, i, n)
				union = append(union, tg)
			}
			etag := plain.header.Get("ETag")
			require.Regexp(t, `^"[0-9a-f]{32}"$`, etag)
			require.NotContains(t, etags, etag, "shard %d of %d: a tag of its own", i, n)
			etags[etag] = i
			require.NotEqual(t, etag, zipped.header.Get("ETag"))

			nm := do(t, http.MethodGet, url, "If-None-Match", etag)
			require.Equal(t, http.StatusNotModified, nm.code)
			require.Empty(t, nm.body)
			nm = do(t, http.MethodGet, url, "Accept-Encoding", "gzip", "If-None-Match", zipped.header.Get("ETag"))
			require.Equal(t, http.StatusNotModified, nm.code)
			if n > 1 {
				require.Equal(t, http.StatusOK, do(t, http.MethodGet, url, "If-None-Match", whole.header.Get("ETag")).code,
					"the whole list's tag is not the shard's")
			}
		}
		require.Len(t, union, len(all), "n=%d: each target once", n)
		require.ElementsMatch(t, all, union, "n=%d", n)
		if n == 1 {
			require.Equal(t, whole.header.Get("ETag"), do(t, http.MethodGet, srv.URL+"?shard=0&of=1").header.Get("ETag"),
				"shard 0 of 1 is the whole list, byte for byte")
		}
	}
	require.Equal(t, 0.0, testutil.ToFloat64(h.responses.WithLabelValues("400", "identity")))
}

// TestShardRenderedOncePerList: a shard is rendered at the first request and then served as
// held, also to many clients at once, until the list changes; a list held compressed only
// (the earlier list, primed) is sharded alike.
func TestShardRenderedOncePerList(t *testing.T) {
	t.Parallel()
	h := New(nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	snap, err := targets.NewSnapshot(shardedList(100))
	require.NoError(t, err)
	require.NoError(t, h.Update(context.Background(), targets.Snapshot{Gzip: snap.Gzip, Size: snap.Size}))
	want, err := targets.Marshal(targets.Shard(snap.Groups, 1, 3))
	require.NoError(t, err)

	var wg sync.WaitGroup
	bodies := make([]string, 8)
	for k := range bodies {
		wg.Go(func() {
			resp, err := http.Get(srv.URL + "?of=3&shard=1") // parameters in any order
			if err != nil {
				bodies[k] = err.Error()
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			bodies[k] = string(body)
			if err != nil {
				bodies[k] = err.Error()
			}
		})
	}
	wg.Wait()
	for _, b := range bodies {
		require.Equal(t, string(want), b)
	}
	cur := h.current.Load()
	require.Len(t, cur.shards, 1)
	held := cur.shards[shardKey{1, 3}].rep
	require.NotNil(t, held)
	do(t, http.MethodGet, srv.URL+"?shard=1&of=3")
	require.Same(t, held, cur.shards[shardKey{1, 3}].rep, "served as held")

	// The same list with its groups (the first discovery finding the earlier list again): served
	// anew, its shards cut from those groups, with the same entity tags; then kept as it is.
	require.False(t, cur.ownGroups)
	require.NoError(t, h.Update(context.Background(), snap))
	again := h.current.Load()
	require.NotSame(t, cur, again)
	require.True(t, again.ownGroups)
	require.Equal(t, cur.plainETag, again.plainETag)
	rep, err := again.shard(1, 3)
	require.NoError(t, err)
	require.Equal(t, held.plainETag, rep.plainETag)
	require.NoError(t, h.Update(context.Background(), snap))
	require.NoError(t, h.Update(context.Background(), targets.Snapshot{Gzip: snap.Gzip, Size: snap.Size}))
	require.Same(t, again, h.current.Load())

	// A new list: its shards are rendered from it.
	_, wantWhole := update(t, h, "10.9.9.9:80")
	require.NotSame(t, again, h.current.Load())
	require.Empty(t, h.current.Load().shards)
	a := do(t, http.MethodGet, srv.URL+"?shard=0&of=1")
	require.Equal(t, wantWhole, a.decoded)
}

// TestShardsHeldAreBounded: beyond maxShards shards of one list, a shard is rendered for its
// request and not held; its answer is the same.
func TestShardsHeldAreBounded(t *testing.T) {
	t.Parallel()
	h := New(nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	snap, _ := update(t, h, addrList(50)...)
	n := uint64(maxShards + 10)
	for i := range n {
		a := do(t, http.MethodGet, fmt.Sprintf("%s?shard=%d&of=%d", srv.URL, i, n))
		want, err := targets.Marshal(targets.Shard(snap.Groups, i, n))
		require.NoError(t, err)
		require.Equal(t, string(want), a.decoded, "shard %d", i)
	}
	require.Len(t, h.current.Load().shards, maxShards)
}

// TestBadShardParameters: 400 with the reason; a query without shard and of is the whole list.
func TestBadShardParameters(t *testing.T) {
	t.Parallel()
	h := New(nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	_, want := update(t, h, addrList(20)...)
	for query, reason := range map[string]string{
		"shard=1":                         "parameter of (the number of shards) is missing",
		"of=3":                            "parameter shard (the shard number) is missing",
		"shard=&of=3":                     `parameter shard: "" is not a whole number from 0 up`,
		"shard=a&of=3":                    `parameter shard: "a" is not a whole number from 0 up`,
		"shard=1.0&of=3":                  `parameter shard: "1.0" is not a whole number from 0 up`,
		"shard=%2B1&of=3":                 `parameter shard: "+1" is not a whole number from 0 up`,
		"shard=+1&of=3":                   `parameter shard: " 1" is not a whole number from 0 up`,
		"shard=0&of=x3":                   `parameter of: "x3" is not a whole number from 0 up`,
		"shard=0&of=0":                    "parameter of: the number of shards must be at least 1, got 0",
		"shard=3&of=3":                    "parameter shard: shard 3 of 3 does not exist, shards are numbered from 0 to 2",
		"shard=7&of=3":                    "parameter shard: shard 7 of 3 does not exist",
		"shard=-1&of=3":                   "parameter shard: -1 is negative",
		"shard=0&of=-3":                   "parameter of: -3 is negative",
		"shard=0&shard=1&of=3":            "parameter shard is given 2 times, want once",
		"shard=0&of=3&of=3":               "parameter of is given 2 times, want once",
		"shard=%zz&of=3":                  `parameter shard: "%zz" is not a valid query value`,
		"shard=0&of=99999999999999999999": `parameter of: "99999999999999999999" is not a whole number from 0 up`,
	} {
		for _, enc := range []string{"", "gzip"} {
			a := do(t, http.MethodGet, srv.URL+"?"+query, "Accept-Encoding", enc)
			require.Equal(t, http.StatusBadRequest, a.code, query)
			require.Contains(t, a.decoded, reason, query)
			require.Empty(t, a.header.Get("Content-Encoding"), query)
			require.Empty(t, a.header.Get("ETag"), query)
		}
	}
	require.Equal(t, 34.0, testutil.ToFloat64(h.responses.WithLabelValues("400", "identity")))

	// Without shard and of, any query is the whole list, as it always was.
	for _, query := range []string{"", "?", "?foo=bar", "?x=%zz", "?shards=2", "?sharD=1"} {
		a := do(t, http.MethodGet, srv.URL+"/"+query)
		require.Equal(t, http.StatusOK, a.code, query)
		require.Equal(t, want, a.decoded, query)
	}
	// Escaped names and values are read as any query parser reads them.
	a := do(t, http.MethodGet, srv.URL+"?%73hard=%30&of=1")
	require.Equal(t, http.StatusOK, a.code)
	require.Equal(t, want, a.decoded)
}
