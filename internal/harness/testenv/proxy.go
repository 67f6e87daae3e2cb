package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Proxy is a reverse proxy on 127.0.0.1 in front of moto that counts AWS operations, can answer
// chosen requests with a fault instead of forwarding them (an AWS error, an HTML error page, a
// reset connection, or no answer at all), and can rewrite responses. Point the code under test at
// URL (AWSConfig(tb, p.URL) or AWSEnv(p.URL)). It is safe for concurrent use.
//
// The operation of a request is the part after the last dot of its X-Amz-Target header for
// JSON-protocol services (Cloud Map "ListInstances", SSM "GetParameter", ECS "DescribeTasks"), or
// its Action form field for query-protocol services (EC2 "DescribeInstances").
type Proxy struct {
	// URL is the proxy's base URL, http://127.0.0.1:PORT.
	URL string

	mu      sync.Mutex
	calls   map[string]int
	faults  []rule
	hook    func(op string, reqBody, respBody []byte) []byte
	release chan struct{} // closed by ClearFaults: held requests go on
	held    int           // requests held now
}

// Request is what a fault rule is matched against.
type Request struct {
	Op   string // the AWS operation
	Body []byte
	// Attempt is the SDK's attempt number of the call (its amz-sdk-request header): 1 for the
	// first, 2 for the first retry, ...; 0 when the client sent none.
	Attempt int
	// AccessKeyID, Region and Service are those of the request's SigV4 credential scope (the
	// Authorization header): on moto, the region is the one whose resources the request sees,
	// and an assumed role's access key is that of its account. Empty when unsigned.
	AccessKeyID, Region, Service string
}

// credentialScope matches the credential of a SigV4 Authorization header.
var credentialScope = regexp.MustCompile(`Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request`)

// signedBy fills in the credential scope of r's Authorization header.
func signedBy(r *http.Request, req *Request) {
	if m := credentialScope.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		req.AccessKeyID, req.Region, req.Service = m[1], m[2], m[3]
	}
}

// Fault is how the proxy answers a request that a rule matches, instead of forwarding it.
type Fault struct {
	kind   faultKind
	code   string // AWS error code
	status int    // HTTP status of an HTML error page
}

type faultKind int

const (
	faultAWSError faultKind = iota
	faultHTML
	faultReset
	faultHold
)

// AWSError answers HTTP 400 with the AWS error code (e.g. "ThrottlingException", which the SDK
// retries, or "AccessDeniedException", which it does not), in the request's protocol.
func AWSError(code string) Fault { return Fault{kind: faultAWSError, code: code} }

// HTMLError answers status with an HTML page, as a load balancer or a network proxy in front of
// AWS does.
func HTMLError(status int) Fault { return Fault{kind: faultHTML, status: status} }

// ResetConnection closes the connection with a TCP reset instead of answering.
func ResetConnection() Fault { return Fault{kind: faultReset} }

// Hold answers nothing, as an endpoint that hangs: the request waits until ClearFaults (then it
// is forwarded) or until the client gives up.
func Hold() Fault { return Fault{kind: faultHold} }

type rule struct {
	match func(Request) bool
	fault Fault
}

// requestInfo travels with a forwarded request to the response hook.
type requestInfo struct {
	op   string
	body []byte
}

type requestInfoKey struct{}

// faultMessage is the message of every injected error.
const faultMessage = "injected fault"

// NewProxy starts a proxy to targetURL (usually Moto.URL) and closes it when tb ends.
func NewProxy(tb testing.TB, targetURL string) *Proxy {
	tb.Helper()
	target, err := url.Parse(targetURL)
	if err != nil {
		tb.Fatalf("parse proxy target %q: %v", targetURL, err)
	}
	p := &Proxy{calls: map[string]int{}, release: make(chan struct{})}
	reverse := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			// Let the transport negotiate and undo compression, so hooks see plain bodies.
			r.Out.Header.Del("Accept-Encoding")
		},
		ModifyResponse: p.modifyResponse,
	}
	srv := httptest.NewServer(p.handler(reverse))
	tb.Cleanup(func() {
		p.ClearFaults() // let held requests end, or Close waits for them
		srv.Close()
	})
	p.URL = srv.URL
	return p
}

// Calls returns how many requests of each operation the proxy received since the last ResetCalls,
// failed ones included.
func (p *Proxy) Calls() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.calls)
}

// ResetCalls sets all call counts to zero.
func (p *Proxy) ResetCalls() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.calls)
}

// Inject makes the proxy answer every request for which match is true with f instead of
// forwarding it. The first matching rule wins. match runs concurrently and must be safe for that.
func (p *Proxy) Inject(match func(Request) bool, f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, rule{match: match, fault: f})
}

// FailWhen makes the proxy answer every request for which match(op, body) is true with the AWS
// error code: Inject with AWSError(code).
func (p *Proxy) FailWhen(match func(op string, body []byte) bool, code string) {
	p.Inject(func(r Request) bool { return match(r.Op, r.Body) }, AWSError(code))
}

// ClearFaults removes every rule; requests held by a Hold rule are forwarded.
func (p *Proxy) ClearFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
	close(p.release)
	p.release = make(chan struct{})
}

// Held returns how many requests a Hold rule holds now.
func (p *Proxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// SetResponseHook makes the proxy pass every forwarded response body through hook, which returns
// the body to send instead. nil removes the hook.
func (p *Proxy) SetResponseHook(hook func(op string, reqBody, respBody []byte) []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hook = hook
}

func (p *Proxy) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read request body: "+err.Error(), http.StatusBadGateway)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		op, queryProtocol := operation(r, body)
		req := Request{Op: op, Body: body, Attempt: attempt(r)}
		signedBy(r, &req)
		if f, ok := p.record(req); ok {
			if answered := p.answer(w, r, f, queryProtocol, req.Service); answered {
				return
			}
		}
		ctx := context.WithValue(r.Context(), requestInfoKey{}, requestInfo{op: op, body: body})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// record counts a call and returns the fault to answer it with, if a rule matches.
func (p *Proxy) record(req Request) (Fault, bool) {
	p.mu.Lock()
	p.calls[req.Op]++
	faults := p.faults
	p.mu.Unlock()
	for _, f := range faults { // matched outside the lock: match may be slow or call back
		if f.match(req) {
			return f.fault, true
		}
	}
	return Fault{}, false
}

// answer answers r with f; false means a held request was released and is to be forwarded.
func (p *Proxy) answer(w http.ResponseWriter, r *http.Request, f Fault, queryProtocol bool, service string) (answered bool) {
	switch f.kind {
	case faultHTML:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.status)
		_, _ = fmt.Fprintf(w, "<html>\n<head><title>%d %s</title></head>\n<body><center><h1>%d %s</h1></center></body>\n</html>\n",
			f.status, http.StatusText(f.status), f.status, http.StatusText(f.status))
	case faultReset:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "hijack: "+err.Error(), http.StatusInternalServerError)
			return true
		}
		if tcp, ok := conn.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0) // close with RST
		}
		_ = conn.Close()
	case faultHold:
		p.mu.Lock()
		p.held++
		release := p.release
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			p.held--
			p.mu.Unlock()
		}()
		select {
		case <-release:
			return false
		case <-r.Context().Done(): // the client gave up
		}
	default:
		writeFault(w, f.code, queryProtocol, service)
	}
	return true
}

// attempt returns the SDK's attempt number from the amz-sdk-request header ("attempt=2; max=5").
func attempt(r *http.Request) int {
	for _, part := range strings.Split(r.Header.Get("Amz-Sdk-Request"), ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "attempt="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

func (p *Proxy) modifyResponse(resp *http.Response) error {
	p.mu.Lock()
	hook := p.hook
	p.mu.Unlock()
	info, ok := resp.Request.Context().Value(requestInfoKey{}).(requestInfo)
	if hook == nil || !ok {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	body = hook(info.op, info.body, body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("Content-Encoding")
	return nil
}

// operation returns the AWS operation of a request and whether it uses the query protocol.
func operation(r *http.Request, body []byte) (op string, queryProtocol bool) {
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		return target[strings.LastIndex(target, ".")+1:], false
	}
	if action := r.URL.Query().Get("Action"); action != "" {
		return action, true
	}
	if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Action") != "" {
		return form.Get("Action"), true
	}
	return "", false
}

// writeFault answers with an AWS error in the shape of the request's protocol (EC2's own query
// error document for EC2, the query protocol's for other query services such as STS).
func writeFault(w http.ResponseWriter, code string, queryProtocol bool, service string) {
	w.Header().Set("X-Amzn-RequestId", "testenv-injected")
	if queryProtocol {
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(http.StatusBadRequest)
		if service != "" && service != "ec2" {
			_, _ = io.WriteString(w, queryError(code))
			return
		}
		_, _ = io.WriteString(w, ec2Error(code))
		return
	}
	body, _ := json.Marshal(map[string]string{"__type": code, "message": faultMessage})
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write(body)
}

// ec2Error returns the XML error document EC2 (query protocol) sends.
func ec2Error(code string) string {
	var escaped strings.Builder
	_ = xml.EscapeText(&escaped, []byte(code))
	return `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<Response><Errors><Error><Code>` + escaped.String() + `</Code><Message>` + faultMessage +
		`</Message></Error></Errors><RequestID>testenv-injected</RequestID></Response>`
}

// queryError returns the XML error document of the query protocol's services other than EC2.
func queryError(code string) string {
	var escaped strings.Builder
	_ = xml.EscapeText(&escaped, []byte(code))
	return `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<ErrorResponse><Error><Type>Sender</Type><Code>` + escaped.String() + `</Code><Message>` + faultMessage +
		`</Message></Error><RequestId>testenv-injected</RequestId></ErrorResponse>`
}

// Config returns an SDK configuration that sends every call through the proxy.
func (p *Proxy) Config(tb testing.TB) aws.Config {
	tb.Helper()
	return AWSConfig(tb, p.URL)
}
