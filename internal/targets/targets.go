// Package targets holds the target-group type that every ecs-sd source produces and every output
// writes: the JSON shape of Prometheus file_sd and http_sd.
package targets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
)

// Label names shared with the seed's file format. Prometheus removes the double-underscore ones
// after relabelling; the others end up on every scraped series.
const (
	LabelCluster        = "cluster"
	LabelService        = "service"
	LabelTaskDefinition = "taskdefinition"
	LabelJob            = model.JobLabel
	LabelMetricsPath    = model.MetricsPathLabel
	LabelScheme         = model.SchemeLabel
	LabelAddress        = model.AddressLabel
	// LabelSource names the ecs-sd sources that found a target, as a comma-wrapped list
	// (",cloudmap,ecs,").
	LabelSource = model.MetaLabelPrefix + "ecs_sd_source"
	// DefaultMetricsPath is the path scraped when nothing says otherwise.
	DefaultMetricsPath = "/metrics"
)

// Group is one Prometheus target group: the element of a file_sd or http_sd list.
type Group struct {
	Targets []string       `json:"targets"`
	Labels  model.LabelSet `json:"labels"`
}

// Address returns the single target address of g (ecs-sd writes one target per group).
func (g *Group) Address() string {
	if len(g.Targets) == 0 {
		return ""
	}
	return g.Targets[0]
}

// Key identifies the endpoint that g scrapes: scheme, address and metrics path. Two groups with
// the same key make Prometheus scrape the same URL.
func (g *Group) Key() string {
	scheme := string(g.Labels[LabelScheme])
	if scheme == "" {
		scheme = "http"
	}
	path := string(g.Labels[LabelMetricsPath])
	if path == "" {
		path = DefaultMetricsPath
	}
	return scheme + "://" + g.Address() + path
}

// CheckPort returns an error unless p is a port number a target can have (1-65535). The error
// starts with p, so that "port " + err reads as a sentence.
func CheckPort(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("%d %s", p, notAPort)
	}
	return nil
}

// ParsePort parses a port number (1-65535); spaces around it are ignored. The error starts with
// v, quoted, so that "service tag METRICS_PORT=" + err reads as a sentence.
func ParsePort(v string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || CheckPort(p) != nil {
		return 0, fmt.Errorf("%q %s", v, notAPort)
	}
	return p, nil
}

const notAPort = "is not a port number (1-65535)"

// JoinHostPort formats ip and port as a target address; IPv6 addresses are bracketed.
func JoinHostPort(ip string, port int) string {
	return net.JoinHostPort(ip, fmt.Sprint(port))
}

var invalidLabelChars = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// SanitizeLabelName turns any string into a valid Prometheus label-name fragment, replacing every
// character outside [a-zA-Z0-9_] with an underscore (as Prometheus's own discoverers do).
func SanitizeLabelName(s string) string {
	return invalidLabelChars.ReplaceAllString(s, "_")
}

// Sort orders groups deterministically: by key, then by the full label set. Each key is computed
// once, not at every comparison.
func Sort(groups []*Group) {
	type keyed struct {
		key string
		g   *Group
	}
	ks := make([]keyed, len(groups))
	for i, g := range groups {
		ks[i] = keyed{g.Key(), g}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(a.g.Labels.String(), b.g.Labels.String())
	})
	for i := range ks {
		groups[i] = ks[i].g
	}
}

// Snapshot is one merged target list, sorted and rendered once for every output.
type Snapshot struct {
	Groups []*Group // sorted
	// JSON is Groups as the file_sd and http_sd list (see Marshal). Outputs share it and must
	// not modify it.
	JSON []byte
}

// NewSnapshot sorts groups in place and renders them.
func NewSnapshot(groups []*Group) (Snapshot, error) {
	if groups == nil {
		groups = []*Group{}
	}
	Sort(groups)
	data, err := encode(groups)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Groups: groups, JSON: data}, nil
}

// Marshal renders groups as the JSON list Prometheus reads, sorted, indented, ending in a newline;
// an empty list is "[]". groups is left as it is.
func Marshal(groups []*Group) ([]byte, error) {
	sorted := make([]*Group, len(groups))
	copy(sorted, groups)
	Sort(sorted)
	return encode(sorted)
}

func encode(sorted []*Group) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(sorted); err != nil {
		return nil, fmt.Errorf("encode target groups: %w", err)
	}
	return buf.Bytes(), nil
}

// Unmarshal parses a file_sd JSON list.
func Unmarshal(data []byte) ([]*Group, error) {
	var groups []*Group
	if err := json.Unmarshal(data, &groups); err != nil {
		return nil, fmt.Errorf("parse target groups: %w", err)
	}
	return groups, nil
}

// Merge combines the groups of several sources into one list in which every endpoint (Key) appears
// once. When two sources found the same endpoint, the labels of both are kept (the earlier source,
// by name, wins a conflict on a label name) and LabelSource lists every source that found it. The
// list is in no particular order: NewSnapshot sorts it, once.
func Merge(bySource map[string][]*Group) []*Group {
	names := make([]string, 0, len(bySource))
	for name := range bySource {
		names = append(names, name)
	}
	sort.Strings(names)
	index := map[string]*Group{}
	var out []*Group
	for _, name := range names {
		for _, g := range bySource[name] {
			key := g.Key()
			if prev, ok := index[key]; ok {
				for k, v := range g.Labels {
					if _, exists := prev.Labels[k]; !exists {
						prev.Labels[k] = v
					}
				}
				if !strings.Contains(string(prev.Labels[LabelSource]), ","+name+",") {
					prev.Labels[LabelSource] += model.LabelValue(name + ",")
				}
				continue
			}
			c := &Group{Targets: append([]string(nil), g.Targets...), Labels: g.Labels.Clone()}
			c.Labels[LabelSource] = model.LabelValue("," + name + ",")
			index[key] = c
			out = append(out, c)
		}
	}
	return out
}
