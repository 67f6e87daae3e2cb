package httpsd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// benchSnapshot is n targets labelled as the Cloud Map source labels an ECS task registered by
// ECS in an HTTP namespace (the attributes ECS sets for a Fargate task, a METRICS_PORT service
// tag, the seed's labels): 1.3 KB of JSON per target.
func benchSnapshot(b *testing.B, n int) targets.Snapshot {
	b.Helper()
	groups := make([]*targets.Group, n)
	for i := range groups {
		ip := fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256)
		svc := fmt.Sprintf("service-%03d", i/50)
		task := fmt.Sprintf("%032x", i*7919)
		groups[i] = &targets.Group{Targets: []string{ip + ":3000"}, Labels: model.LabelSet{
			"cluster": "production-cluster", "service": model.LabelValue(svc), "taskdefinition": model.LabelValue(svc + "-task"),
			"__metrics_path__":                                     "/metrics",
			"__meta_cloudmap_namespace_id":                         "ns-abcdefghijklmnop",
			"__meta_cloudmap_namespace_name":                       "ecs-services",
			"__meta_cloudmap_namespace_type":                       "HTTP",
			"__meta_cloudmap_service_id":                           model.LabelValue(fmt.Sprintf("srv-%016x", i/50)),
			"__meta_cloudmap_service_name":                         model.LabelValue(svc),
			"__meta_cloudmap_instance_id":                          model.LabelValue(task),
			"__meta_cloudmap_health_status":                        "HEALTHY",
			"__meta_cloudmap_metrics_endpoint":                     "application",
			"__meta_cloudmap_attribute_AWS_INSTANCE_IPV4":          model.LabelValue(ip),
			"__meta_cloudmap_attribute_AWS_INSTANCE_PORT":          "3000",
			"__meta_cloudmap_attribute_AVAILABILITY_ZONE":          "us-east-1a",
			"__meta_cloudmap_attribute_ECS_CLUSTER_NAME":           "production-cluster",
			"__meta_cloudmap_attribute_ECS_SERVICE_NAME":           model.LabelValue(svc),
			"__meta_cloudmap_attribute_ECS_TASK_DEFINITION_FAMILY": model.LabelValue(svc + "-task"),
			"__meta_cloudmap_attribute_REGION":                     "us-east-1",
			"__meta_cloudmap_service_tag_METRICS_PORT":             "3000",
			"__meta_ecs_sd_source":                                 ",cloudmap,",
		}}
	}
	snap, err := targets.NewSnapshot(groups)
	if err != nil {
		b.Fatal(err)
	}
	return snap
}

// BenchmarkServe5000 answers http_sd requests for 5 000 targets over real HTTP connections, with
// as many concurrent clients as GOMAXPROCS and client and server on the same cores (run with
// -cpu 2). answers/s is the throughput; wire-bytes/answer what each answer sends. The clients
// read the bytes as sent, without undoing gzip. plain is an answer to a client that does not
// accept gzip (Prometheus's own http_sd client): the list, uncompressed from the snapshot's gzip
// as it is sent; gzip is an answer to a client that accepts gzip (the snapshot's bytes as they
// are); not-modified a 304 to one that sends the entity tag it has. shard-of-10 are the same
// answers for shard 3 of 10 (rendered once, before the clients ask).
func BenchmarkServe5000(b *testing.B) {
	h := New(nil)
	if err := h.Update(context.Background(), benchSnapshot(b, 5000)); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	cur := h.current.Load()
	shard, err := cur.shard(3, 10)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		query  string
		header http.Header
		code   int
	}{
		{"plain", "", http.Header{}, http.StatusOK},
		{"gzip", "", http.Header{"Accept-Encoding": {"gzip"}}, http.StatusOK},
		{"not-modified", "", http.Header{"Accept-Encoding": {"gzip"}, "If-None-Match": {cur.gzipETag}}, http.StatusNotModified},
		{"shard-of-10/plain", "?shard=3&of=10", http.Header{}, http.StatusOK},
		{"shard-of-10/gzip", "?shard=3&of=10", http.Header{"Accept-Encoding": {"gzip"}}, http.StatusOK},
		{"shard-of-10/not-modified", "?shard=3&of=10", http.Header{"If-None-Match": {shard.plainETag}}, http.StatusNotModified},
	} {
		b.Run(bc.name, func(b *testing.B) {
			transport := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}
			defer transport.CloseIdleConnections()
			var wire atomic.Int64
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, srv.URL+bc.query, http.NoBody)
					req.Header = bc.header.Clone()
					resp, err := transport.RoundTrip(req)
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != bc.code {
						b.Errorf("status %d, want %d", resp.StatusCode, bc.code)
						return
					}
					wire.Add(n)
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "answers/s")
			b.ReportMetric(float64(wire.Load())/float64(b.N), "wire-bytes/answer")
		})
	}
}

// BenchmarkUpdate5000 is the handler's work at one change of a 5 000-target list: computing its
// entity tags, once for every answer until the next change (the list comes compressed, rendered
// once by the loop for every output).
func BenchmarkUpdate5000(b *testing.B) {
	snap := benchSnapshot(b, 5000)
	b.ReportAllocs()
	b.SetBytes(int64(len(snap.Gzip)))
	for b.Loop() {
		prepare(snap)
	}
}

// BenchmarkPlainList5000 is the work of one plain answer (to Prometheus's http_sd client) without
// the network: the 5 000-target list uncompressed from the snapshot's gzip bytes.
func BenchmarkPlainList5000(b *testing.B) {
	snap := benchSnapshot(b, 5000)
	b.ReportAllocs()
	b.SetBytes(snap.Size)
	for b.Loop() {
		if _, err := snap.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkShard5000 is the work of the first request for shards of a 5 000-target list, done
// once per shard and change of the list: the shard's targets picked (an MD5 sum per target),
// sorted, rendered into gzip and given entity tags. one is shard 3 of 10; all-of-10 every shard
// of 10, as a fleet of 10 agents asks for them.
func BenchmarkShard5000(b *testing.B) {
	snap := benchSnapshot(b, 5000)
	b.Run("one", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := serve(snap).shard(3, 10); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("all-of-10", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s := serve(snap)
			for i := range uint64(10) {
				if _, err := s.shard(i, 10); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
