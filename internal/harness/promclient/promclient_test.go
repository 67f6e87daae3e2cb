package promclient

import (
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeAPI answers /api/v1/query and /api/v1/targets with canned bodies.
func fakeAPI(t *testing.T, answers map[string]string) *Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Path + "?" + r.URL.RawQuery
		body, ok := answers[key]
		if !ok {
			t.Errorf("unexpected request %s", key)
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return &Client{URL: srv.URL}
}

func TestQuery(t *testing.T) {
	c := fakeAPI(t, map[string]string{
		"/api/v1/query?query=up": `{"status":"success","data":{"resultType":"vector","result":[` +
			`{"metric":{"job":"a"},"value":[1,"1"]},{"metric":{"job":"b"},"value":[1,"NaN"]}]}}`,
		"/api/v1/query?query=scalar%281%29": `{"status":"success","data":{"resultType":"scalar","result":[1,"2.5"]}}`,
		"/api/v1/query?query=up%7B":         `{"status":"error","errorType":"bad_data","error":"parse error"}`,
		"/api/v1/query?query=m":             `{"status":"success","data":{"resultType":"matrix","result":[]}}`,
	})
	samples, err := c.Query(t.Context(), "up")
	require.NoError(t, err)
	require.Len(t, samples, 2)
	assert.Equal(t, map[string]string{"job": "a"}, samples[0].Metric)
	assert.Equal(t, 1.0, samples[0].Value)
	assert.True(t, math.IsNaN(samples[1].Value))

	samples, err = c.Query(t.Context(), "scalar(1)")
	require.NoError(t, err)
	assert.Equal(t, []Sample{{Metric: map[string]string{}, Value: 2.5}}, samples)

	_, err = c.Query(t.Context(), "up{")
	assert.ErrorContains(t, err, "bad_data: parse error")
	_, err = c.Query(t.Context(), "m")
	assert.ErrorContains(t, err, `unsupported result type "matrix"`)
}

func TestActiveTargets(t *testing.T) {
	c := fakeAPI(t, map[string]string{
		"/api/v1/targets?state=active": `{"status":"success","data":{"activeTargets":[{"labels":{"instance":"x:1"},` +
			`"scrapePool":"job","health":"up"}],"droppedTargets":[]}}`,
	})
	targets, err := c.ActiveTargets(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []Target{{Labels: map[string]string{"instance": "x:1"}, ScrapePool: "job", Health: "up"}}, targets)
}

func TestConfig(t *testing.T) {
	c := fakeAPI(t, map[string]string{
		"/api/v1/status/config?": `{"status":"success","data":{"yaml":"global:\n  scrape_interval: 1m\n"}}`,
	})
	yaml, err := c.Config(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "global:\n  scrape_interval: 1m\n", yaml)
}
