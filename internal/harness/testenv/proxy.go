package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Proxy is a reverse proxy on 127.0.0.1 in front of moto that counts AWS operations, can answer
// chosen requests with an AWS error instead of forwarding them, and can rewrite responses. Point
// the code under test at URL (AWSConfig(tb, p.URL) or AWSEnv(p.URL)). It is safe for concurrent use.
//
// The operation of a request is the part after the last dot of its X-Amz-Target header for
// JSON-protocol services (Cloud Map "ListInstances", SSM "GetParameter", ECS "DescribeTasks"), or
// its Action form field for query-protocol services (EC2 "DescribeInstances").
type Proxy struct {
	// URL is the proxy's base URL, http://127.0.0.1:PORT.
	URL string

	mu     sync.Mutex
	calls  map[string]int
	faults []fault
	hook   func(op string, reqBody, respBody []byte) []byte
}

type fault struct {
	match func(op string, body []byte) bool
	code  string
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
	p := &Proxy{calls: map[string]int{}}
	reverse := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			// Let the transport negotiate and undo compression, so hooks see plain bodies.
			r.Out.Header.Del("Accept-Encoding")
		},
		ModifyResponse: p.modifyResponse,
	}
	srv := httptest.NewServer(p.handler(reverse))
	tb.Cleanup(srv.Close)
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

// FailWhen makes the proxy answer every request for which match(op, body) is true with HTTP 400
// and the AWS error code (e.g. "ThrottlingException", which the SDK retries, or
// "AccessDeniedException", which it does not) instead of forwarding it. The first matching rule
// wins. match runs concurrently and must be safe for that.
func (p *Proxy) FailWhen(match func(op string, body []byte) bool, code string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, fault{match: match, code: code})
}

// ClearFaults removes every FailWhen rule.
func (p *Proxy) ClearFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
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
		if code, failed := p.record(op, body); failed {
			writeFault(w, code, queryProtocol)
			return
		}
		ctx := context.WithValue(r.Context(), requestInfoKey{}, requestInfo{op: op, body: body})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// record counts a call and returns the error code to answer it with, if a fault rule matches.
func (p *Proxy) record(op string, body []byte) (code string, failed bool) {
	p.mu.Lock()
	p.calls[op]++
	faults := p.faults
	p.mu.Unlock()
	for _, f := range faults { // matched outside the lock: match may be slow or call back
		if f.match(op, body) {
			return f.code, true
		}
	}
	return "", false
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

// writeFault answers with an AWS error in the shape of the request's protocol.
func writeFault(w http.ResponseWriter, code string, queryProtocol bool) {
	w.Header().Set("X-Amzn-RequestId", "testenv-injected")
	if queryProtocol {
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(http.StatusBadRequest)
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

// Config returns an SDK configuration that sends every call through the proxy.
func (p *Proxy) Config(tb testing.TB) aws.Config {
	tb.Helper()
	return AWSConfig(tb, p.URL)
}
