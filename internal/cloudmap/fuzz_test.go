package cloudmap

import (
	"net"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/targets"
)

// FuzzServiceTags builds the targets of an instance from any service tags METRICS_PORT,
// METRICS_PATH, ECS_METRICS_PORT and ECS_METRICS_PATH (absent when empty), any IP and port
// attributes, and two more attributes and tags of any key. Properties: no panic; every target
// passes targets.Group.Check (valid label names under Prometheus's classic rules, a port from 1
// to 65535, a path starting with /); each endpoint gives a target or a skip with the reason its tag earns
// (bad_port, bad_path; no_ip, bad_ip for the instance); and building again with a fresh builder
// gives the same targets.
func FuzzServiceTags(f *testing.F) {
	f.Add("3000", "/metrics", "", "", "10.0.0.1", "", "a.b", "1", "team:owner", "x")
	f.Add(" 9100", "metrics", "51678", "/v1/metrics", "2001:db8::1", "8080", "a-b", "2", "a.b", "3")
	f.Add("abc", "", "0", "", "10.0.0", "x", "AWS_INSTANCE_IPV4", "", "METRICS_PORT", "70000")
	f.Add("", "", "", "", "", "", "", "", "", "")
	f.Add("80", "/", "", "", "", "", "AWS_INSTANCE_IPV6", "x", "k", " ::1 ")
	f.Fuzz(func(t *testing.T, port, path, ecsPort, ecsPath, ip, instPort, k1, v1, k2, v2 string) {
		tags := map[string]string{k1: v1, k2: v2}
		for k, v := range map[string]string{tagMetricsPort: port, tagMetricsPath: path, tagECSMetricsPort: ecsPort, tagECSMetricsPath: ecsPath} {
			if v != "" {
				tags[k] = v
			}
		}
		attrs := map[string]string{k2: v1, k1: v2}
		if ip != "" {
			attrs[attrIPv4] = ip
		}
		if instPort != "" {
			attrs[attrPort] = instPort
		}
		ns := namespace{ID: "ns-1", Name: "one", Type: "HTTP", HTTPName: "one"}
		svc := service{ID: "srv-1", Name: "web", Tags: tags}
		inst := instance{ID: "task-1", Attributes: attrs, Health: "HEALTHY"}
		groups, skips, _ := newBuilder(ns, svc, false).build(inst)
		addr := strings.TrimSpace(attrs[attrIPv4])
		if addr == "" {
			addr = strings.TrimSpace(attrs[attrIPv6])
		}

		for _, g := range groups {
			require.NoError(t, g.Check())
			host, _, err := net.SplitHostPort(g.Targets[0])
			require.NoError(t, err)
			require.Equal(t, addr, host)
			require.Contains(t, g.Labels, model.LabelName(targets.LabelMetricsPath))
		}
		if addr == "" || net.ParseIP(addr) == nil {
			require.Empty(t, groups)
			require.Len(t, skips, 1)
			require.Contains(t, []string{reasonNoIP, reasonBadIP}, skips[0].Reason)
			return
		}
		endpoints := 1
		if _, ok := tags[tagECSMetricsPort]; ok {
			endpoints = 2
		}
		require.Equal(t, endpoints, len(groups)+len(skips), "each endpoint gives a target or a skip")
		for _, sk := range skips {
			require.Contains(t, []string{reasonBadPort, reasonBadPath}, sk.Reason)
			require.True(t, strings.HasPrefix(sk.Item, "task-1/"), sk.Item)
		}

		again, _, _ := newBuilder(ns, svc, false).build(inst)
		require.Len(t, again, len(groups))
		for i := range groups {
			require.True(t, groups[i].Equal(again[i]), "built again: %v, then %v", groups[i], again[i])
		}
	})
}
