package targets

import (
	"fmt"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestMarshalIsDeterministic(t *testing.T) {
	t.Parallel()
	a := &Group{Targets: []string{"10.0.0.2:80"}, Labels: model.LabelSet{"b": "2", "a": "1"}}
	b := &Group{Targets: []string{"10.0.0.1:80"}, Labels: model.LabelSet{"z": "1"}}
	one, err := Marshal([]*Group{a, b})
	require.NoError(t, err)
	two, err := Marshal([]*Group{b, a})
	require.NoError(t, err)
	require.Equal(t, string(one), string(two))
	require.Equal(t, `[
  {
    "targets": [
      "10.0.0.1:80"
    ],
    "labels": {
      "z": "1"
    }
  },
  {
    "targets": [
      "10.0.0.2:80"
    ],
    "labels": {
      "a": "1",
      "b": "2"
    }
  }
]
`, string(one))
	empty, err := Marshal(nil)
	require.NoError(t, err)
	require.Equal(t, "[]\n", string(empty))
	back, err := Unmarshal(one)
	require.NoError(t, err)
	require.Len(t, back, 2)
}

func TestJoinHostPortAndSanitize(t *testing.T) {
	t.Parallel()
	require.Equal(t, "10.0.0.1:9100", JoinHostPort("10.0.0.1", 9100))
	require.Equal(t, "[2001:db8::1]:80", JoinHostPort("2001:db8::1", 80))
	require.Equal(t, "team_owner_x_y", SanitizeLabelName("team:owner-x.y"))
}

func TestMergeDeduplicatesEndpoints(t *testing.T) {
	t.Parallel()
	cm := []*Group{
		{Targets: []string{"10.0.0.1:3000"}, Labels: model.LabelSet{"__metrics_path__": "/metrics", "service": "web", "__meta_cloudmap_service_name": "web-svc"}},
		{Targets: []string{"10.0.0.2:3000"}, Labels: model.LabelSet{"__metrics_path__": "/metrics"}},
	}
	ecs := []*Group{
		{Targets: []string{"10.0.0.1:3000"}, Labels: model.LabelSet{"service": "other", "__meta_ecs_task_arn": "arn"}},
		{Targets: []string{"10.0.0.1:3000"}, Labels: model.LabelSet{"__metrics_path__": "/other"}},
	}
	out := Merge(map[string][]*Group{"cloudmap": cm, "ecs": ecs})
	Sort(out)
	require.Len(t, out, 3)
	require.Equal(t, "http://10.0.0.1:3000/metrics", out[0].Key())
	require.Equal(t, model.LabelValue(",cloudmap,ecs,"), out[0].Labels[LabelSource])
	require.Equal(t, model.LabelValue("web"), out[0].Labels["service"], "the first source wins a conflict")
	require.Equal(t, model.LabelValue("arn"), out[0].Labels["__meta_ecs_task_arn"])
	require.Equal(t, model.LabelValue(",ecs,"), out[1].Labels[LabelSource])
	require.Equal(t, model.LabelValue(",cloudmap,"), out[2].Labels[LabelSource])
	// Inputs are not modified.
	require.NotContains(t, cm[0].Labels, model.LabelName(LabelSource))
}

func TestParsePort(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want int
	}{{"1", 1}, {" 9100 ", 9100}, {"65535", 65535}} {
		p, err := ParsePort(c.in)
		require.NoError(t, err, c.in)
		require.Equal(t, c.want, p)
	}
	for _, in := range []string{"", "0", "65536", "-1", "http", "80.5"} {
		_, err := ParsePort(in)
		require.EqualError(t, err, fmt.Sprintf("%q is not a port number (1-65535)", in))
	}
	require.NoError(t, CheckPort(65535))
	require.EqualError(t, CheckPort(0), "0 is not a port number (1-65535)")
}

func TestSnapshotSortsAndRendersOnce(t *testing.T) {
	t.Parallel()
	a := &Group{Targets: []string{"10.0.0.2:80"}, Labels: model.LabelSet{"b": "2"}}
	b := &Group{Targets: []string{"10.0.0.1:80"}, Labels: model.LabelSet{"z": "1"}}
	groups := []*Group{a, b}
	snap, err := NewSnapshot(groups)
	require.NoError(t, err)
	require.Equal(t, []*Group{b, a}, snap.Groups, "sorted")
	want, err := Marshal([]*Group{a, b})
	require.NoError(t, err)
	require.Equal(t, string(want), string(snap.JSON), "rendered as Marshal renders")

	empty, err := NewSnapshot(nil)
	require.NoError(t, err)
	require.Equal(t, "[]\n", string(empty.JSON))
	require.NotNil(t, empty.Groups)
}
