package ecs

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// FuzzDockerLabelsAndTags builds the targets of an awsvpc task whose container carries any
// docker labels (the rule's port, path, scheme and job labels, and two more of any key) and
// whose task carries any tags, under the default rules and a port-name rule. Properties: no
// panic; every target passes targets.Group.Check (valid label names under Prometheus's classic
// rules, a port from 1 to 65535, a path starting with /, a scheme of http or https); a container
// whose port label is not a port, whose path does not start with / or whose scheme is neither
// http nor https (nor blank: unset) gives no docker-label target but a skip with that reason,
// naming the label; and
// building again, with fresh label builders, gives the same targets.
func FuzzDockerLabelsAndTags(f *testing.F) {
	f.Add("9100", "/metrics", "", "", "com.example/tier", "front", "team:owner", "payments", "metrics-x")
	f.Add(" 8080 ", "/m", "HTTPS", "job", "a.b", "1", "a-b", "2", "metrics")
	f.Add("abc", "metrics", "ftp", "", "", "", "", "", "")
	f.Add("70000", "", "http", "j", "é", "\xff", "PROMETHEUS_EXPORTER_PORT", "9", "web")
	rules := testConfig(f, []string{"prod"}, nil).rules
	f.Fuzz(func(t *testing.T, port, path, scheme, job, k1, v1, k2, v2, portName string) {
		dl := DefaultConfig().DockerLabels
		labels := map[string]string{dl.PortLabel: port, k1: v1, k2: v2}
		for k, v := range map[string]string{dl.PathLabel: path, dl.SchemeLabel: scheme, dl.JobLabel: job} {
			if v != "" {
				labels[k] = v
			}
		}
		def := &awstypes.TaskDefinition{
			TaskDefinitionArn: aws.String(arnPrefix + "task-definition/fuzz:1"), Family: aws.String("fuzz"),
			NetworkMode: awstypes.NetworkModeAwsvpc,
			ContainerDefinitions: []awstypes.ContainerDefinition{
				containerDef("app", labels, portMap(9100, 0, portName)),
			},
		}
		task := &awstypes.Task{
			TaskArn: aws.String(arnPrefix + "task/prod/0123"), ClusterArn: aws.String(clusterARN("prod")),
			TaskDefinitionArn: def.TaskDefinitionArn, LastStatus: aws.String("RUNNING"), DesiredStatus: aws.String("RUNNING"),
			LaunchType: awstypes.LaunchTypeFargate, Tags: awsTags(map[string]string{k1: v2, k2: v1}),
			Attachments: []awstypes.Attachment{{Type: aws.String("ElasticNetworkInterface"), Details: []awstypes.KeyValuePair{
				{Name: aws.String("privateIPv4Address"), Value: aws.String("10.0.0.1")},
			}}},
		}
		facts := taskFacts{task: task, def: def, cluster: clusterInfo{name: "prod", tags: map[string]string{k2: v2}, found: true}}
		groups, skips := buildTargets(facts, *rules, &labeler{})

		_, portErr := targets.ParsePort(labels[dl.PortLabel])
		p, ok := labels[dl.PathLabel]
		pathBad := ok && !strings.HasPrefix(p, "/")
		s, ok := labels[dl.SchemeLabel]
		s = strings.ToLower(strings.TrimSpace(s))
		schemeBad := ok && s != "" && s != "http" && s != "https" // blank: unset, http
		dockerTarget := false
		for _, g := range groups {
			require.NoError(t, g.Check())
			require.True(t, strings.HasPrefix(g.Targets[0], "10.0.0.1:"), g.Targets[0])
			require.Contains(t, g.Labels, model.LabelName(targets.LabelMetricsPath))
			dockerTarget = dockerTarget || strings.Contains(string(g.Labels[LabelRules]), ","+ruleDockerLabels+",")
		}
		wantSkip := ""
		switch {
		case portErr != nil:
			wantSkip = reasonBadPort
		case pathBad:
			wantSkip = reasonBadPath
		case schemeBad:
			wantSkip = reasonBadScheme
		}
		require.Equal(t, wantSkip == "", dockerTarget, "a docker-label target exactly when its labels are good")
		if wantSkip != "" {
			require.Len(t, skips, 1)
			require.Equal(t, wantSkip, skips[0].reason)
			require.Equal(t, "app", skips[0].container)
			require.Contains(t, skips[0].detail, "docker label PROMETHEUS_EXPORTER_")
		} else {
			require.Empty(t, skips)
		}

		again, _ := buildTargets(facts, *rules, &labeler{})
		require.Len(t, again, len(groups))
		for i := range groups {
			require.True(t, groups[i].Equal(again[i]), "built again: %v, then %v", groups[i], again[i])
		}
	})
}
