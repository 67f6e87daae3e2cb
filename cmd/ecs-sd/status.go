package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/version"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// The status's lists are cut at these lengths; what is left out is counted.
const (
	maxStatusSkipped = 1000 // skipped items in the API and the page
	maxPageTargets   = 500  // rows of the page's target table
)

// statusView is what the status API and page read of the discovery loop (refresh.Loop).
type statusView interface {
	Ready() bool
	Pending() []string
	Status(maxSkipped int) refresh.Status
	Targets() ([]*targets.Group, error)
}

// statusAPI serves GET /api/v1/status: the loop's refresh.Status as JSON.
func statusAPI(view statusView) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := json.MarshalIndent(view.Status(maxStatusSkipped), "", "  ")
		if err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(body, '\n'))
	})
}

//go:embed status.html
var statusHTML string

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"secs": func(s float64) string {
		return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
	},
}).Parse(statusHTML))

// pageLink is a link of the status page.
type pageLink struct {
	Address, Text, Description string
}

// pageTarget is a row of the page's target table.
type pageTarget struct {
	Endpoint string
	Labels   []string // name="value", sorted by name
}

// statusPage is what the page's template is given.
type statusPage struct {
	Version  string
	Ready    bool
	Pending  []string
	Status   refresh.Status
	Query    string
	Targets  []pageTarget
	Matched  int // targets that match the query
	Total    int
	ListErr  string
	Links    []pageLink
	Rendered time.Time
}

// statusPageHandler serves the status page: the sources and their health, the targets (those
// whose endpoint or a label, written name="value", holds the query ?q=, ignoring case; at most
// maxPageTargets rows), the skipped items, the latest changes and links. Everything is rendered
// on the server: no script, no outside asset.
func statusPageHandler(view statusView, links []pageLink) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		page := statusPage{
			Version:  version.Info(),
			Ready:    view.Ready(),
			Pending:  view.Pending(),
			Status:   view.Status(maxStatusSkipped),
			Query:    strings.TrimSpace(r.URL.Query().Get("q")),
			Links:    links,
			Rendered: time.Now(),
		}
		groups, err := view.Targets()
		if err != nil {
			page.ListErr = err.Error()
		}
		page.Total = len(groups)
		q := strings.ToLower(page.Query)
		for _, g := range groups {
			t := pageTarget{Endpoint: g.Key(), Labels: labelPairs(g.Labels)}
			if !matches(t, q) {
				continue
			}
			page.Matched++
			if len(page.Targets) < maxPageTargets {
				page.Targets = append(page.Targets, t)
			}
		}
		var buf bytes.Buffer
		if err := statusTemplate.Execute(&buf, page); err != nil {
			http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = buf.WriteTo(w)
	})
}

// labelPairs returns labels as name="value", sorted by name.
func labelPairs(labels model.LabelSet) []string {
	out := make([]string, 0, len(labels))
	for name, value := range labels {
		out = append(out, string(name)+"="+`"`+string(value)+`"`)
	}
	slices.Sort(out)
	return out
}

// matches reports whether the target's endpoint or one of its labels, written name="value" or
// name=value, holds q (lower case); an empty q matches every target.
func matches(t pageTarget, q string) bool {
	if q == "" || strings.Contains(strings.ToLower(t.Endpoint), q) {
		return true
	}
	return slices.ContainsFunc(t.Labels, func(l string) bool {
		l = strings.ToLower(l)
		plain := strings.Replace(strings.TrimSuffix(l, `"`), `="`, "=", 1) // name=value
		return strings.Contains(l, q) || strings.Contains(plain, q)
	})
}
