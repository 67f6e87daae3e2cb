package main

import (
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"

	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/ecs"
)

// registerECSFlags registers the ECS source's flags. Matchers are set in the YAML file only.
func registerECSFlags(f *flags, app *kingpin.Application, def ecs.Config) {
	stringsFlag(f, app, "ecs.cluster", "ECS cluster name or ARN whose tasks to discover with the ECS API (repeatable); turns the ECS source on.",
		def.Clusters, func(c *config.Config, v []string) { c.ECS.Clusters = v })
	boolFlag(f, app, "ecs.all-clusters", "Discover the tasks of every ECS cluster of the region with the ECS API.",
		def.AllClusters, func(c *config.Config, v bool) { c.ECS.AllClusters = v })
	boolFlag(f, app, "ecs.docker-labels", "Make targets of the containers whose definition has the --ecs.port-label docker label.",
		def.DockerLabels.Enabled, func(c *config.Config, v bool) { c.ECS.DockerLabels.Enabled = v })
	stringFlag(f, app, "ecs.port-label", "Docker label holding a container's metrics port (a container port).",
		def.DockerLabels.PortLabel, func(c *config.Config, v string) { c.ECS.DockerLabels.PortLabel = v })
	stringFlag(f, app, "ecs.path-label", "Docker label holding a container's metrics path.",
		def.DockerLabels.PathLabel, func(c *config.Config, v string) { c.ECS.DockerLabels.PathLabel = v })
	stringFlag(f, app, "ecs.scheme-label", "Docker label holding a container's metrics scheme (http or https).",
		def.DockerLabels.SchemeLabel, func(c *config.Config, v string) { c.ECS.DockerLabels.SchemeLabel = v })
	stringFlag(f, app, "ecs.job-label", "Docker label holding the job label of a container's target.",
		def.DockerLabels.JobLabel, func(c *config.Config, v string) { c.ECS.DockerLabels.JobLabel = v })
	stringFlag(f, app, "ecs.scrape-interval-label", "Docker label holding a container's scrape interval (a Prometheus duration); empty: none.",
		def.DockerLabels.ScrapeIntervalLabel, func(c *config.Config, v string) { c.ECS.DockerLabels.ScrapeIntervalLabel = v })
	stringFlag(f, app, "ecs.scrape-timeout-label", "Docker label holding a container's scrape timeout (a Prometheus duration); empty: none.",
		def.DockerLabels.ScrapeTimeoutLabel, func(c *config.Config, v string) { c.ECS.DockerLabels.ScrapeTimeoutLabel = v })
	boolFlag(f, app, "ecs.port-names", "Make targets of the port mappings whose name matches --ecs.port-name-pattern.",
		def.PortNames.Enabled, func(c *config.Config, v bool) { c.ECS.PortNames.Enabled = v })
	stringFlag(f, app, "ecs.port-name-pattern", "Regular expression matching the whole name of the port mappings that are metrics endpoints.",
		def.PortNames.Pattern, func(c *config.Config, v string) { c.ECS.PortNames.Pattern = v })
	stringFlag(f, app, "ecs.port-name-path", "Metrics path of the targets found by port name.",
		def.PortNames.Path, func(c *config.Config, v string) { c.ECS.PortNames.Path = v })
	durationFlag(f, app, "ecs.task-refresh-interval", "How long a running task's description (health and last status) is used before the task is described again; 0: never again.",
		time.Duration(def.TaskRefreshInterval), func(c *config.Config, v time.Duration) { c.ECS.TaskRefreshInterval = model.Duration(v) })
	durationFlag(f, app, "ecs.instance-refresh-interval", "How long what ECS and EC2 tell of a container instance (EC2 id, IP, type, tags) is used; 0: for its life.",
		time.Duration(def.InstanceRefreshInterval), func(c *config.Config, v time.Duration) { c.ECS.InstanceRefreshInterval = model.Duration(v) })
	durationFlag(f, app, "ecs.metadata-refresh-interval", "How long an ECS service's or cluster's ARN, status and tags are used; 0: for its life.",
		time.Duration(def.MetadataRefreshInterval), func(c *config.Config, v time.Duration) { c.ECS.MetadataRefreshInterval = model.Duration(v) })
	floatFlag(f, app, "ecs.api.requests-per-second", "Most ECS-source AWS calls per second per API family (0: no limit).",
		def.API.RequestsPerSecond, func(c *config.Config, v float64) { c.ECS.API.RequestsPerSecond = v })
	intFlag(f, app, "ecs.api.burst", "Most ECS-source AWS calls at once per API family after a pause.",
		def.API.Burst, func(c *config.Config, v int) { c.ECS.API.Burst = v })
	intFlag(f, app, "ecs.api.concurrency", "Most ECS-source AWS calls in flight per API family.",
		def.API.Concurrency, func(c *config.Config, v int) { c.ECS.API.Concurrency = v })
}
