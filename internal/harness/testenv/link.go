package testenv

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// Link is a TCP forwarder on 127.0.0.1 to a server, which can be taken down (connections
// refused, those open cut, as when a network path fails) and brought up again on the same port.
// Point the code under test at URL.
type Link struct {
	// URL is the link's base URL, http://127.0.0.1:PORT.
	URL string

	addr, target string

	mu    sync.Mutex
	l     net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// NewLink starts a link to targetURL (http://HOST:PORT) and takes it down when tb ends.
func NewLink(tb testing.TB, targetURL string) *Link {
	tb.Helper()
	k := &Link{target: strings.TrimPrefix(targetURL, "http://"), conns: map[net.Conn]bool{}}
	k.Up(tb)
	k.addr = k.l.Addr().String()
	k.URL = "http://" + k.addr
	tb.Cleanup(k.Down)
	return k
}

// Up listens (on the link's port, after the first time) and forwards.
func (k *Link) Up(tb testing.TB) {
	tb.Helper()
	addr := k.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	check(tb, err)
	k.mu.Lock()
	k.l = l
	k.mu.Unlock()
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", k.target)
			if err != nil {
				in.Close()
				continue
			}
			k.mu.Lock()
			k.conns[in], k.conns[out] = true, true
			k.mu.Unlock()
			k.wg.Add(2)
			go k.pipe(in, out)
			go k.pipe(out, in)
		}
	}()
}

func (k *Link) pipe(dst, src net.Conn) {
	defer k.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	k.mu.Lock()
	delete(k.conns, dst)
	delete(k.conns, src)
	k.mu.Unlock()
}

// Down stops listening and cuts every open connection.
func (k *Link) Down() {
	k.mu.Lock()
	if k.l != nil {
		_ = k.l.Close()
		k.l = nil
	}
	for c := range k.conns {
		_ = c.Close()
	}
	clear(k.conns)
	k.mu.Unlock()
	k.wg.Wait()
}
