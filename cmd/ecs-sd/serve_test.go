package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// testConfig is a daemon configuration whose AWS endpoint refuses connections, writing into dir
// and listening on addr.
func testConfig(dir, addr string) config.Config {
	cfg := config.Default()
	cfg.AWS.Region, cfg.AWS.EndpointURL = "us-east-1", "http://127.0.0.1:1"
	cfg.Output.Dir = dir
	cfg.Web.ListenAddresses = []string{addr}
	cfg.CloudMap.Namespaces = []string{"apps"}
	cfg.PrometheusConfig.Enabled = false
	return cfg
}

// TestAddressInUse: one error, naming the setting and the address, before the loop has run or
// a file was touched (the output directory of another ecs-sd keeps its files as they are).
func TestAddressInUse(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	dir := t.TempDir()
	tmp := filepath.Join(dir, ".ecs-services.json.tmp-12345")
	require.NoError(t, os.WriteFile(tmp, []byte("another ecs-sd's write in flight"), 0o600))

	var logs testenv.SyncBuffer
	err = serve(t.Context(), testConfig(dir, busy.Addr().String()), runMode{}, slog.New(slog.NewTextHandler(&logs, nil)))
	require.EqualError(t, err, "web listen address: listen tcp "+busy.Addr().String()+": bind: address already in use")
	require.NotContains(t, logs.String(), "level=ERROR", "no other error before the real one")
	require.NotContains(t, logs.String(), "canceled")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "nothing written, nothing removed")

	// The second of two addresses is in use: the first one is let go again.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := free.Addr().String()
	require.NoError(t, free.Close())
	_, err = listen(config.Web{ListenAddresses: []string{addr, busy.Addr().String()}})
	require.ErrorContains(t, err, "address already in use")
	again, err := net.Listen("tcp", addr)
	require.NoError(t, err, "the first address was released")
	require.NoError(t, again.Close())
}

func TestBadWebConfigFileIsAConfigurationError(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "web.yml")
	require.NoError(t, os.WriteFile(path, []byte("tls_server_config:\n  cert_file: /no/such/cert.pem\n  key_file: /no/such/key.pem\n"), 0o600))
	_, err := listen(config.Web{ConfigFile: path, ListenAddresses: []string{"127.0.0.1:0"}})
	require.ErrorAs(t, err, new(configError))
	require.ErrorContains(t, err, path)
}

// TestServerErrorsAreStructuredLogs: what the HTTP server logs by itself (here a TLS handshake
// that fails: a client speaking plain HTTP to the TLS port) goes through the structured logger.
func TestServerErrorsAreStructuredLogs(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	dir := t.TempDir()
	certFile, keyFile := selfSignedCert(t, dir)
	webConfig := filepath.Join(dir, "web.yml")
	require.NoError(t, os.WriteFile(webConfig, []byte("tls_server_config:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+"\n"), 0o600))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	cfg := testConfig(dir, addr)
	cfg.Web.ConfigFile = webConfig

	logs := startServe(t, cfg)
	require.Eventually(t, func() bool {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer conn.Close()
		_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = conn.Read(make([]byte, 512))
		return strings.Contains(logs.String(), "TLS handshake error")
	}, 10*time.Second, 50*time.Millisecond, "logs:\n%s", logs.String())
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "TLS handshake error") {
			line = l
		}
	}
	require.Contains(t, line, `level=WARN msg="HTTP server error" err="http: TLS handshake error from 127.0.0.1:`)
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key into dir.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ecs-sd test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}

// startServe runs serve with cfg until the test ends, then stops it and requires that it ended
// without error; its log is returned, and printed when the test failed.
func startServe(t *testing.T, cfg config.Config) *testenv.SyncBuffer {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, runMode{}, slog.New(slog.NewTextHandler(logs, nil))) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		if t.Failed() {
			t.Logf("ecs-sd's log:\n%s", logs.String())
		}
	})
	return logs
}
