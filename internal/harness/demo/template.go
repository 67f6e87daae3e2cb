package demo

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// templateSettings are what the demo changes in the deploy kit's Prometheus configuration.
type templateSettings struct {
	FileSDPath        string        // every file_sd file: ecs-sd's ecs-services.json
	EcsSDAddr         string        // the target of the ecs_sd job
	RemoteWriteURL    string        // every remote_write url: the sink's /api/v1/write
	ScrapeInterval    time.Duration // global scrape_interval (and scrape_timeout when shorter)
	BatchSendDeadline time.Duration // remote_write queue_config.batch_send_deadline
}

// generatedHeader opens the generated template.
const generatedHeader = "# Written by ecs-sd's demo (internal/harness/demo) from deploy/prometheus/prometheus-file-sd.yml:\n" +
	"# local file_sd path and ecs-sd address, remote write to the local sink without sigv4, short intervals.\n"

// ecsSDJob is the deploy kit's job that scrapes ecs-sd itself.
const ecsSDJob = "ecs_sd"

// prometheusTemplate rewrites the deploy kit's Prometheus configuration template src for this
// machine: the file_sd files, the ecs_sd target, the remote_write URL (without sigv4: Debian's
// Prometheus 2.42 does not sign, and the sink does not check) and shorter intervals. Everything
// else (jobs, relabelling, the ${...} placeholders of 02-ssm-parameters.sh) is kept.
func prometheusTemplate(src []byte, s templateSettings) ([]byte, error) {
	doc, root, err := parseConfig(src)
	if err != nil {
		return nil, err
	}

	setScrapeInterval(root, s.ScrapeInterval)

	fileSD, ecsSD := 0, 0
	for _, job := range items(mappingValue(root, "scrape_configs")) {
		for _, sd := range items(mappingValue(job, "file_sd_configs")) {
			setValue(sd, "files", &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{scalar(s.FileSDPath)}})
			fileSD++
		}
		if name := mappingValue(job, "job_name"); name != nil && name.Value == ecsSDJob {
			static := &yaml.Node{Kind: yaml.MappingNode}
			setValue(static, "targets", &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{scalar(s.EcsSDAddr)}})
			setValue(job, "static_configs", &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{static}})
			ecsSD++
		}
	}
	writes := setRemoteWrite(root, s.RemoteWriteURL, s.BatchSendDeadline)
	switch {
	case fileSD == 0:
		return nil, errors.New("prometheus configuration template has no file_sd_configs")
	case ecsSD == 0:
		return nil, fmt.Errorf("prometheus configuration template has no %s job", ecsSDJob)
	case writes == 0:
		return nil, errors.New("prometheus configuration template has no remote_write")
	}
	return encodeConfig(generatedHeader, doc)
}

// parseConfig parses a Prometheus configuration (template) and returns its document and root
// mapping, with the template's own header comments removed: they do not describe what is
// generated from it.
func parseConfig(src []byte) (*yaml.Node, *yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, nil, fmt.Errorf("parse prometheus configuration template: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil, errors.New("prometheus configuration template is not a YAML mapping")
	}
	root := doc.Content[0]
	doc.HeadComment, root.HeadComment = "", ""
	if len(root.Content) > 0 {
		root.Content[0].HeadComment = ""
	}
	return &doc, root, nil
}

// global returns the global section of configuration root, added when missing.
func global(root *yaml.Node) *yaml.Node {
	g := mappingValue(root, "global")
	if g == nil {
		g = &yaml.Node{Kind: yaml.MappingNode}
		setValue(root, "global", g)
	}
	return g
}

// setScrapeInterval sets the global scrape_interval of configuration root to interval, and
// scrape_timeout too when interval is shorter than Prometheus's default timeout (10s).
func setScrapeInterval(root *yaml.Node, interval time.Duration) {
	g := global(root)
	setValue(g, "scrape_interval", scalar(interval.String()))
	if interval < 10*time.Second {
		setValue(g, "scrape_timeout", scalar(interval.String()))
	}
}

// setRemoteWrite points every remote_write of configuration root at url, without sigv4 (Debian's
// Prometheus 2.42 does not sign, and the sink does not check), sending a batch at least every
// deadline. It returns how many there are.
func setRemoteWrite(root *yaml.Node, url string, deadline time.Duration) int {
	writes := items(mappingValue(root, "remote_write"))
	for _, rw := range writes {
		setValue(rw, "url", scalar(url))
		deleteKey(rw, "sigv4")
		queue := mappingValue(rw, "queue_config")
		if queue == nil {
			queue = &yaml.Node{Kind: yaml.MappingNode}
			setValue(rw, "queue_config", queue)
		}
		setValue(queue, "batch_send_deadline", scalar(deadline.String()))
	}
	return len(writes)
}

// encodeConfig returns doc as YAML after header.
func encodeConfig(header string, doc *yaml.Node) ([]byte, error) {
	var out bytes.Buffer
	out.WriteString(header)
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode prometheus configuration: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode prometheus configuration: %w", err)
	}
	return out.Bytes(), nil
}

// scalar returns a plain string scalar node.
func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }

// mappingValue returns the value of key in mapping node m, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setValue sets key to value in mapping node m, in place when the key exists, else at the end.
func setValue(m *yaml.Node, key string, value *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = value
			return
		}
	}
	m.Content = append(m.Content, scalar(key), value)
}

// deleteKey removes key from mapping node m.
func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// items returns the elements of sequence node n (none when n is not a sequence).
func items(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}
