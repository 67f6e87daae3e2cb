package awsclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// fakeAWS answers STS AssumeRole (credentials whose access key names the role's account) and
// GetCallerIdentity, and SSM GetParameter; it records each request's operation, signing access
// key and region, and the AssumeRole forms.
type fakeAWS struct {
	mu       sync.Mutex
	requests []string // "op key region"
	assumed  []url.Values
}

var scope = regexp.MustCompile(`Credential=([^/]+)/\d{8}/([^/]+)/`)

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m := scope.FindStringSubmatch(r.Header.Get("Authorization"))
	form, _ := url.ParseQuery(string(body))
	op := form.Get("Action")
	if op == "" {
		op = r.Header.Get("X-Amz-Target")
	}
	f.mu.Lock()
	f.requests = append(f.requests, fmt.Sprintf("%s %s %s", op, m[1], m[2]))
	if op == "AssumeRole" {
		f.assumed = append(f.assumed, form)
	}
	f.mu.Unlock()
	switch op {
	case "AssumeRole":
		account := regexp.MustCompile(`::(\d{12}):`).FindStringSubmatch(form.Get("RoleArn"))[1]
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>AKID%s</AccessKeyId>
<SecretAccessKey>secret</SecretAccessKey><SessionToken>token</SessionToken><Expiration>%s</Expiration></Credentials>
</AssumeRoleResult></AssumeRoleResponse>`, account, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	case "GetCallerIdentity":
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprint(w, `<GetCallerIdentityResponse><GetCallerIdentityResult><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>`)
	default:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprint(w, `{"Parameter":{"Name":"p","Type":"String","Value":"apps"}}`)
	}
}

// TestForPair: each pair's calls are signed for its region with its own credentials (an assumed
// role's, obtained once with the external id and the session name ecs-sd, with base's
// credentials), and counted under its own account and region.
func TestForPair(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "base")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "base")
	fake := &fakeAWS{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	base, err := Load(t.Context(), Options{Region: "us-east-1", EndpointURL: srv.URL}, nil)
	require.NoError(t, err)
	id, err := Identity(t.Context(), base)
	require.NoError(t, err)
	require.Equal(t, "123456789012", id)

	m := NewPairMetrics(prometheus.NewRegistry())
	own := ForPair(base, "us-east-1", nil, time.Second, m.For("123456789012", "us-east-1"))
	member := ForPair(base, "eu-west-1", &Role{ARN: "arn:aws:iam::111111111111:role/reader", ExternalID: "ext"}, time.Second, m.For("111111111111", "eu-west-1"))
	for range 2 {
		for _, cfg := range []aws.Config{own, member} {
			_, err := SSM(cfg).GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String("p")})
			require.NoError(t, err)
		}
	}

	fake.mu.Lock()
	defer fake.mu.Unlock()
	require.Equal(t, []string{
		"GetCallerIdentity base us-east-1",
		"AmazonSSM.GetParameter base us-east-1",
		"AssumeRole base eu-west-1",
		"AmazonSSM.GetParameter AKID111111111111 eu-west-1",
		"AmazonSSM.GetParameter base us-east-1",
		"AmazonSSM.GetParameter AKID111111111111 eu-west-1",
	}, fake.requests, "the role is assumed once, and its credentials reused")
	require.Len(t, fake.assumed, 1)
	require.Equal(t, "ext", fake.assumed[0].Get("ExternalId"))
	require.Equal(t, SessionName, fake.assumed[0].Get("RoleSessionName"))
	require.Equal(t, 2.0, testutil.ToFloat64(m.Calls().WithLabelValues("123456789012", "us-east-1", "SSM", "GetParameter", "success")))
	require.Equal(t, 2.0, testutil.ToFloat64(m.Calls().WithLabelValues("111111111111", "eu-west-1", "SSM", "GetParameter", "success")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.Calls().WithLabelValues("111111111111", "eu-west-1", "STS", "AssumeRole", "success")))
	require.Equal(t, 0.0, testutil.ToFloat64(m.Calls().WithLabelValues("123456789012", "us-east-1", "STS", "AssumeRole", "success")))
}
