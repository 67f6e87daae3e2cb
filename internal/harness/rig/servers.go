package rig

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ecs-sd/ecs-sd/internal/harness/supervise"
)

// How long the servers may take to become ready, and to stop after SIGTERM.
const (
	MotoStartTimeout       = 30 * time.Second
	MotoGrace              = 5 * time.Second
	PrometheusStartTimeout = 60 * time.Second
	PrometheusGrace        = 10 * time.Second
)

// Install hints quoted when a program is missing.
const (
	motoHint       = "make deps installs it: moto[server] of scripts/requirements.txt"
	prometheusHint = "apt-get install prometheus, or scripts/install-deps.sh"
)

// MotoServer returns how to start moto_server on 127.0.0.1 (a free port) with its output in
// logPath; it fails when moto_server is not on PATH. Start it with supervise.StartServer; its
// endpoint URL is then MotoURL(port).
func MotoServer(logPath string) (supervise.ServerSpec, error) {
	bin, err := supervise.LookPath("moto_server", motoHint)
	if err != nil {
		return supervise.ServerSpec{}, err
	}
	return supervise.ServerSpec{
		Name:   "moto_server",
		Binary: bin,
		Args: func(port int) []string {
			return []string{"-H", supervise.DefaultHost, "-p", strconv.Itoa(port)}
		},
		LogPath:   logPath,
		ReadyPath: "/moto-api/",
		Ready:     MotoReady,
		Timeout:   MotoStartTimeout,
		Grace:     MotoGrace,
	}, nil
}

// MotoReady tells a ready moto from its answer to GET /moto-api/.
func MotoReady(resp *http.Response) bool { return resp.StatusCode < http.StatusInternalServerError }

// MotoURL returns the endpoint URL of a moto listening on 127.0.0.1:port.
func MotoURL(port int) string { return fmt.Sprintf("http://%s:%d", supervise.DefaultHost, port) }

// Prometheus describes a Prometheus server to start.
type Prometheus struct {
	Name       string // what messages call it; default "prometheus"
	ConfigFile string
	// DataDir holds the TSDB, or the WAL in agent mode.
	DataDir string
	LogPath string
	Port    int // 0: a free port on 127.0.0.1
	// Agent runs Prometheus in agent mode (scrape and remote-write only, no queries), as the deploy
	// kit's task definition does.
	Agent     bool
	ExtraArgs []string
}

// Server returns how to start p on 127.0.0.1 with the lifecycle API on (POST /-/reload), ready
// when /-/ready answers 200; it fails when prometheus is not on PATH.
func (p Prometheus) Server() (supervise.ServerSpec, error) {
	bin, err := supervise.LookPath("prometheus", prometheusHint)
	if err != nil {
		return supervise.ServerSpec{}, err
	}
	name := p.Name
	if name == "" {
		name = "prometheus"
	}
	storage := []string{"--storage.tsdb.path=" + p.DataDir}
	if p.Agent {
		storage = []string{"--enable-feature=agent", "--storage.agent.path=" + p.DataDir}
	}
	return supervise.ServerSpec{
		Name:   name,
		Binary: bin,
		Args: func(port int) []string {
			args := append([]string{
				"--config.file=" + p.ConfigFile,
				"--web.listen-address=" + supervise.DefaultHost + ":" + strconv.Itoa(port),
				"--web.enable-lifecycle",
			}, storage...)
			return append(args, p.ExtraArgs...)
		},
		LogPath:   p.LogPath,
		Port:      p.Port,
		ReadyPath: "/-/ready",
		Ready:     func(resp *http.Response) bool { return resp.StatusCode == http.StatusOK },
		Timeout:   PrometheusStartTimeout,
		Grace:     PrometheusGrace,
	}, nil
}
