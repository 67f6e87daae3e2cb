package promclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Get returns the body of the answer to GET url: an error unless it is 200 OK.
func Get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("build request for %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: %s: %s", url, resp.Status, body)
	}
	return body, nil
}

// Scrape returns the value of one series of the metrics page at url (an exporter's /metrics),
// named as the text format writes it, e.g. `ecs_sd_refresh_duration_seconds_count{source="ecs"}`.
func Scrape(ctx context.Context, url, series string) (float64, error) {
	body, err := Get(ctx, url)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(body)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				return 0, fmt.Errorf("series %s of %s: %w", series, url, err)
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("%s has no series %s", url, series)
}
