// Package targets holds the target-group type that every ecs-sd source produces and every output
// writes: the JSON shape of Prometheus file_sd and http_sd.
package targets

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

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
	// LabelAccountID and LabelRegion are the AWS account id and region in which a source found
	// a target: ecs-sd discovers in every (account, region) pair it is configured for.
	LabelAccountID = model.MetaLabelPrefix + "ecs_sd_account_id"
	LabelRegion    = model.MetaLabelPrefix + "ecs_sd_region"
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

// Check returns an error unless g is a target group as ecs-sd writes them: one target, host:port
// with a port from 1 to 65535, label names valid under Prometheus's classic rules (which every
// Prometheus version accepts), a metrics path starting with / and, when set, a scheme of http or
// https and a scrape interval and timeout that Prometheus accepts (durations above 0, the timeout
// no longer than the interval). The error names what is wrong. Every source's targets pass it (their tests check).
func (g *Group) Check() error {
	if len(g.Targets) != 1 {
		return fmt.Errorf("%d targets, want 1", len(g.Targets))
	}
	_, port, err := net.SplitHostPort(g.Targets[0])
	if err != nil {
		return fmt.Errorf("target %q: %w", g.Targets[0], err)
	}
	if _, err := ParsePort(port); err != nil || strings.TrimSpace(port) != port {
		return fmt.Errorf("target %q: port %q is not a port number (1-65535)", g.Targets[0], port)
	}
	for name := range g.Labels {
		if !model.LegacyValidation.IsValidLabelName(string(name)) {
			return fmt.Errorf("label name %q is not valid", name)
		}
	}
	if p, ok := g.Labels[LabelMetricsPath]; ok && !strings.HasPrefix(string(p), "/") {
		return fmt.Errorf("metrics path %q does not start with /", p)
	}
	return checkScrapeLabels(g.Labels)
}

// Equal reports whether g and o have the same targets and labels.
func (g *Group) Equal(o *Group) bool {
	return g == o || g != nil && o != nil && slices.Equal(g.Targets, o.Targets) && maps.Equal(g.Labels, o.Labels)
}

// Reuse replaces each group of groups that equals the group of last at the same place with that
// group, and returns last itself when every group is equal. A source that rebuilds its targets
// every cycle thus keeps one copy of the labels of those that did not change, and the loop finds
// them unchanged without comparing their labels.
func Reuse(groups, last []*Group) []*Group {
	same := len(groups) == len(last)
	for i, g := range groups {
		if i < len(last) && g.Equal(last[i]) {
			groups[i] = last[i]
		} else {
			same = false
		}
	}
	if same && last != nil {
		return last
	}
	return groups
}

// SourceValue is the value of LabelSource for the targets of one source (",cloudmap,"). A source
// that sets it on its targets spares the merge a copy of their labels.
func SourceValue(source string) model.LabelValue {
	return model.LabelValue("," + source + ",")
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

// Snapshot is one cycle's target list, sorted and rendered once for every output.
//
// The list is held compressed: at 10 000 targets the JSON is about 15 MB and its gzip about
// 0.2 MB, so the process does not hold the rendered list beside the label sets it was made from.
// An http_sd client that accepts gzip gets those very bytes; the file, and the http_sd answer to
// a client that does not (Prometheus's own), are written from them, uncompressed on the way
// (WriteTo).
type Snapshot struct {
	// Groups is the list, sorted; nil when the snapshot's maker let the groups go and holds the
	// list compressed only (the refresh loop's earlier list, until it is read back): List reads
	// them back from Gzip.
	Groups []*Group
	// Gzip is Groups as the file_sd and http_sd list (see Marshal), compressed with gzip.
	// Outputs share it and must not modify it.
	Gzip []byte
	// Size is the length of the list, uncompressed.
	Size int64
}

// NewSnapshot sorts groups in place and renders them.
func NewSnapshot(groups []*Group) (Snapshot, error) {
	if groups == nil {
		groups = []*Group{}
	}
	Sort(groups)
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return Snapshot{}, fmt.Errorf("compress target list: %w", err)
	}
	n, err := render(zw, groups)
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("compress target list: %w", err)
	}
	return Snapshot{Groups: groups, Gzip: bytes.Clone(buf.Bytes()), Size: n}, nil
}

// WriteTo writes the list, uncompressed, to w. It is safe for concurrent use (http_sd answers).
func (s Snapshot) WriteTo(w io.Writer) (int64, error) {
	d, _ := decompressors.Get().(*decompressor)
	if d == nil {
		d = new(decompressor)
	}
	defer decompressors.Put(d)
	if err := d.zr.Reset(bytes.NewReader(s.Gzip)); err != nil {
		return 0, fmt.Errorf("read target list: %w", err)
	}
	// Through d.buf, and not through w's ReadFrom (a network connection's makes a buffer of its
	// own at every call).
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, &d.zr, d.buf[:])
	if err != nil {
		return n, fmt.Errorf("write target list: %w", err)
	}
	return n, nil
}

// decompressor is WriteTo's state, reused: a gzip reader (about 40 KB) and a copy buffer.
type decompressor struct {
	zr  gzip.Reader
	buf [32 << 10]byte
}

var decompressors sync.Pool

// JSON returns the list, uncompressed.
func (s Snapshot) JSON() ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, s.Size))
	_, err := s.WriteTo(buf)
	return buf.Bytes(), err
}

// Update returns the snapshot of groups, which it sorts in place: s itself when they are the
// groups of s (the same targets with the same labels, in the same order once sorted), else
// NewSnapshot(groups). An unchanged list is thus not rendered again, and every output gets the
// very bytes it had. The zero Snapshot is never the same as a list.
func (s Snapshot) Update(groups []*Group) (Snapshot, error) {
	if groups == nil {
		groups = []*Group{}
	}
	Sort(groups)
	if s.Gzip != nil && len(groups) == len(s.Groups) {
		same := true
		for i, g := range groups {
			if !g.Equal(s.Groups[i]) {
				same = false
				break
			}
		}
		if same {
			return s, nil
		}
	}
	return NewSnapshot(groups)
}

// WithLacking returns the snapshot of groups together with the groups of earlier whose endpoints
// (Key) groups lack, and the number of those. earlier is a snapshot that holds its list
// compressed only, sorted (NewSnapshot's): its groups are decoded one at a time as the list is
// rendered and let go at once, so that the list an earlier run left is never held decoded beside
// groups. groups is sorted in place; the snapshot holds no groups (List reads them back), and is
// the one NewSnapshot would make of the same groups.
func WithLacking(groups []*Group, earlier Snapshot) (Snapshot, int, error) {
	Sort(groups)
	keys := make([]string, len(groups))
	have := make(map[string]bool, len(groups))
	for i, g := range groups {
		keys[i] = g.Key()
		have[keys[i]] = true
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return Snapshot{}, 0, fmt.Errorf("compress target list: %w", err)
	}
	kept := 0
	var readErr error
	// Both lists are sorted by endpoint first, and an earlier group given has an endpoint that
	// groups lack: merging them keeps the order Sort gives.
	merged := func(yield func(*Group) bool) {
		i, more := 0, true
		readErr = earlier.each(func(g *Group) bool {
			if g == nil {
				return true
			}
			key := g.Key()
			if have[key] {
				return true
			}
			for ; more && i < len(groups) && keys[i] < key; i++ {
				more = yield(groups[i])
			}
			if more {
				kept++
				more = yield(g)
			}
			return more
		})
		for ; more && readErr == nil && i < len(groups); i++ {
			more = yield(groups[i])
		}
	}
	n, err := renderSeq(zw, merged)
	if err == nil {
		err = zw.Close()
	}
	switch {
	case readErr != nil:
		return Snapshot{}, 0, readErr
	case err != nil:
		return Snapshot{}, 0, fmt.Errorf("compress target list: %w", err)
	}
	return Snapshot{Gzip: bytes.Clone(buf.Bytes()), Size: n}, kept, nil
}

// CountLacking returns the number of the groups of earlier (a snapshot held compressed only)
// whose endpoints groups lack, decoding them one at a time.
func CountLacking(groups []*Group, earlier Snapshot) (int, error) {
	have := make(map[string]bool, len(groups))
	for _, g := range groups {
		have[g.Key()] = true
	}
	n := 0
	err := earlier.each(func(g *Group) bool {
		if g != nil && !have[g.Key()] {
			n++
		}
		return true
	})
	return n, err
}

// each gives fn each group of the snapshot's compressed list, decoded one at a time (label
// values not shared: the groups are not meant to be held), until fn returns false.
func (s Snapshot) each(fn func(*Group) bool) error {
	zr, err := gzip.NewReader(bytes.NewReader(s.Gzip))
	if err != nil {
		return fmt.Errorf("read compressed target list: %w", err)
	}
	if _, err := readEach(json.NewDecoder(zr), false, fn); err != nil {
		return fmt.Errorf("read compressed target list: %w", err)
	}
	return nil
}

// Marshal renders groups as the JSON list Prometheus reads, sorted, indented, ending in a newline;
// an empty list is "[]". groups is left as it is.
func Marshal(groups []*Group) ([]byte, error) {
	sorted := make([]*Group, len(groups))
	copy(sorted, groups)
	Sort(sorted)
	var buf bytes.Buffer
	if _, err := render(&buf, sorted); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Unmarshal parses a file_sd JSON list (see Read).
func Unmarshal(data []byte) ([]*Group, error) {
	return Read(bytes.NewReader(data))
}

// Read parses a file_sd JSON list from r, one group at a time: the list is never held whole, and
// label names and repeated values are held once however many groups carry them (at 10 000
// targets the file is about 15 MB). Label names must be valid UTF-8 (the rule of Prometheus 3
// and of model.LabelSet's own decoding). A null list gives nil, a null group a nil *Group.
func Read(r io.Reader) ([]*Group, error) {
	groups, err := read(json.NewDecoder(r))
	if err != nil {
		return nil, fmt.Errorf("parse target groups: %w", err)
	}
	return groups, nil
}

func read(dec *json.Decoder) ([]*Group, error) {
	groups := []*Group{}
	list, err := readEach(dec, true, func(g *Group) bool {
		groups = append(groups, g)
		return true
	})
	if err != nil || !list {
		return nil, err
	}
	return groups, nil
}

// readEach parses a file_sd JSON list from dec and gives fn each group as it is decoded, until
// fn returns false; list is false when the JSON is null. With intern, equal label values of all
// the groups are shared (for groups that are held); label names always are.
func readEach(dec *json.Decoder, intern bool, fn func(*Group) bool) (list bool, err error) {
	tok, err := dec.Token()
	if err != nil {
		return false, err
	}
	switch tok {
	case nil:
	case json.Delim('['):
		list = true
		var lb LabelBuilder
		for dec.More() {
			var g *struct {
				Targets []string          `json:"targets"`
				Labels  map[string]string `json:"labels"`
			}
			if err := dec.Decode(&g); err != nil {
				return true, err
			}
			if g == nil {
				if !fn(nil) {
					return true, nil
				}
				continue
			}
			out := &Group{Targets: g.Targets}
			if g.Labels != nil {
				out.Labels = make(model.LabelSet, len(g.Labels))
				for k, v := range g.Labels {
					if !model.UTF8Validation.IsValidLabelName(k) {
						return true, fmt.Errorf("%q is not a valid label name", k)
					}
					value := model.LabelValue(v)
					if intern {
						value = lb.Value(v)
					}
					out.Labels[model.LabelName(lb.Value(k))] = value
				}
			}
			if !fn(out) {
				return true, nil
			}
		}
		if _, err := dec.Token(); err != nil { // ]
			return true, err
		}
	default:
		return false, fmt.Errorf("not a list: starts with %v", tok)
	}
	if _, err := dec.Token(); err != io.EOF {
		return list, errors.New("data after the list")
	}
	return list, nil
}

// Merge combines the groups of several sources into one list in which every endpoint (Key) appears
// once, and sets LabelSource on every group to the sources that found its endpoint. When several
// groups have one endpoint, the labels of all are kept; a label name they disagree on takes the
// value of the earlier source by name, and within one source that of the group whose label set
// sorts first (model.LabelSet.String); the scrape interval and timeout are taken as a pair, from
// the first group in that order that sets either. So the result does not depend on the order of the
// groups. The groups given are not modified: a group is used as it is when it alone has its
// endpoint and already carries its source's LabelSource (SourceValue), and copied otherwise. The
// list is in no particular order: NewSnapshot sorts it, once.
func Merge(bySource map[string][]*Group) []*Group {
	names := slices.Sorted(maps.Keys(bySource))
	type found struct {
		g      *Group // as the source gave it
		source int    // index in names
	}
	var (
		out   []*Group
		first []found             // the first group of each key in out, as given
		index = map[string]int{}  // key -> position in out
		more  = map[int][]found{} // position in out -> every group of the key, when several
	)
	for si, name := range names {
		for _, g := range bySource[name] {
			key := g.Key()
			if i, ok := index[key]; ok {
				if more[i] == nil {
					more[i] = []found{first[i]}
				}
				more[i] = append(more[i], found{g, si})
				continue
			}
			index[key] = len(out)
			first = append(first, found{g, si})
			if g.Labels[LabelSource] != SourceValue(name) {
				g = &Group{Targets: g.Targets, Labels: withLabel(g.Labels, LabelSource, SourceValue(name))}
			}
			out = append(out, g)
		}
	}
	for i, fs := range more {
		slices.SortStableFunc(fs, func(a, b found) int {
			if a.source != b.source {
				return a.source - b.source
			}
			return strings.Compare(a.g.Labels.String(), b.g.Labels.String())
		})
		labels := make(model.LabelSet, len(fs[0].g.Labels)+1)
		sources := ","
		groups := make([]*Group, 0, len(fs))
		for _, f := range fs {
			groups = append(groups, f.g)
			for k, v := range f.g.Labels {
				if _, exists := labels[k]; !exists {
					labels[k] = v
				}
			}
			if s := names[f.source] + ","; !strings.Contains(sources, ","+s) {
				sources += s
			}
		}
		labels[LabelSource] = model.LabelValue(sources)
		keepScrapePair(labels, groups)
		out[i] = &Group{Targets: fs[0].g.Targets, Labels: labels}
	}
	return out
}

// keepScrapePair sets the scrape interval and timeout of merged labels both from the first of
// groups that sets either: each group's pair was checked, a pair made of two groups' might not be
// valid (a timeout longer than the interval).
func keepScrapePair(labels model.LabelSet, groups []*Group) {
	for _, g := range groups {
		_, interval := g.Labels[LabelScrapeInterval]
		_, timeout := g.Labels[LabelScrapeTimeout]
		if !interval && !timeout {
			continue
		}
		for _, name := range []model.LabelName{LabelScrapeInterval, LabelScrapeTimeout} {
			if v, ok := g.Labels[name]; ok {
				labels[name] = v
			} else {
				delete(labels, name)
			}
		}
		return
	}
}

// withLabel returns a copy of labels with name set to v.
func withLabel(labels model.LabelSet, name model.LabelName, v model.LabelValue) model.LabelSet {
	c := make(model.LabelSet, len(labels)+1)
	maps.Copy(c, labels)
	c[name] = v
	return c
}
