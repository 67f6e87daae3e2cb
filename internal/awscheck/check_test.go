package awscheck

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/awsclient"
	"github.com/ecs-sd/ecs-sd/internal/config"
)

// fakeAWS is an AWS endpoint that answers every operation of the check with a small, consistent
// world (namespace apps, service web, cluster prod with an EC2 task of service web, a queue),
// and the chosen operations with an error.
type fakeAWS struct {
	*httptest.Server
	mu     sync.Mutex
	errors map[string]string // operation -> error code
	bodies map[string]string // operation -> last request body
}

// fakeAnswers are the JSON answers of the JSON-protocol operations.
var fakeAnswers = map[string]string{
	"GetParameter":               `{"Parameter":{"Name":"ECS-ServiceDiscovery-Namespaces","Type":"String","Value":"apps"}}`,
	"ListNamespaces":             `{"Namespaces":[{"Id":"ns-1","Name":"apps","Arn":"arn:aws:servicediscovery:us-east-1:123456789012:namespace/ns-1","Type":"HTTP","Properties":{"HttpProperties":{"HttpName":"apps"}}}]}`,
	"ListServices":               `{"Services":[{"Id":"srv-1","Name":"web","Arn":"arn:aws:servicediscovery:us-east-1:123456789012:service/srv-1"}]}`,
	"GetService":                 `{"Service":{"Id":"srv-1","Name":"web","NamespaceId":"ns-1","HealthCheckCustomConfig":{}}}`,
	"ListTagsForResource":        `{"Tags":[]}`,
	"DiscoverInstances":          `{"Instances":[]}`,
	"ListInstances":              `{"Instances":[]}`,
	"GetInstancesHealthStatus":   `{"Status":{}}`,
	"ListClusters":               `{"clusterArns":["arn:aws:ecs:us-east-1:123456789012:cluster/prod"]}`,
	"DescribeClusters":           `{"clusters":[{"clusterName":"prod"}]}`,
	"ListTasks":                  `{"taskArns":["arn:aws:ecs:us-east-1:123456789012:task/prod/t1","arn:aws:ecs:us-east-1:123456789012:task/prod/t2"]}`,
	"DescribeTasks":              `{"tasks":[{"taskArn":"arn:aws:ecs:us-east-1:123456789012:task/prod/t1","group":"family:batch","taskDefinitionArn":"arn:aws:ecs:us-east-1:123456789012:task-definition/batch:1"},{"taskArn":"arn:aws:ecs:us-east-1:123456789012:task/prod/t2","group":"service:web","taskDefinitionArn":"arn:aws:ecs:us-east-1:123456789012:task-definition/web:3","containerInstanceArn":"arn:aws:ecs:us-east-1:123456789012:container-instance/prod/ci1"}]}`,
	"DescribeTaskDefinition":     `{"taskDefinition":{}}`,
	"DescribeContainerInstances": `{"containerInstances":[{"ec2InstanceId":"i-0abc"}]}`,
	"DescribeServices":           `{"services":[]}`,
	"ReceiveMessage":             `{"Messages":[]}`,
}

// fakeQueryAnswers are the XML answers of the query-protocol operations (STS, EC2).
var fakeQueryAnswers = map[string]string{
	"GetCallerIdentity": `<GetCallerIdentityResponse><GetCallerIdentityResult><Account>%s</Account><Arn>arn:aws:iam::%s:user/x</Arn><UserId>x</UserId></GetCallerIdentityResult></GetCallerIdentityResponse>`,
	"AssumeRole":        `<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAMEMBER</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::111111111111:assumed-role/r/ecs-sd</Arn><AssumedRoleId>x</AssumedRoleId></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>`,
	"DescribeInstances": `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><reservationSet/></DescribeInstancesResponse>`,
}

func newFakeAWS(t *testing.T) *fakeAWS {
	f := &fakeAWS{errors: map[string]string{}, bodies: map[string]string{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// fail makes op answer with the AWS error code.
func (f *fakeAWS) fail(op, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors[op] = code
}

func (f *fakeAWS) body(op string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[op]
}

func (f *fakeAWS) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	op, query := r.Header.Get("X-Amz-Target"), false
	op = op[strings.LastIndex(op, ".")+1:]
	if op == "" {
		form, _ := url.ParseQuery(string(body))
		op, query = form.Get("Action"), true
	}
	// The member account's calls are signed with the assumed role's key.
	account := "123456789012"
	if strings.Contains(r.Header.Get("Authorization"), "ASIAMEMBER") {
		account = "111111111111"
	}
	f.mu.Lock()
	f.bodies[op] = string(body)
	code := f.errors[op]
	f.mu.Unlock()
	switch {
	case code != "" && op == "DescribeInstances": // EC2's own error document
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `<Response><Errors><Error><Code>`+code+`</Code><Message>no `+op+` for you</Message></Error></Errors></Response>`)
	case code != "" && query:
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>`+code+`</Code><Message>no `+op+` for you</Message></Error></ErrorResponse>`)
	case code != "":
		message := "Rate exceeded"
		if strings.Contains(code, "Denied") {
			message = "User is not authorized to perform: " + op
		}
		w.Header().Set("X-Amzn-ErrorType", code)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"__type":"`+code+`","message":"`+message+`"}`)
	case query:
		answer, ok := fakeQueryAnswers[op]
		if !ok {
			http.Error(w, "unknown operation "+op, http.StatusNotImplemented)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = io.WriteString(w, strings.ReplaceAll(answer, "%s", account))
	default:
		answer, ok := fakeAnswers[op]
		if !ok {
			http.Error(w, "unknown operation "+op, http.StatusNotImplemented)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = io.WriteString(w, answer)
	}
}

// awsConfig returns a configuration of region that sends every call to f, without retries.
func (f *fakeAWS) awsConfig(t *testing.T, region string) aws.Config {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	cfg, err := awsclient.Load(t.Context(), awsclient.Options{Region: region, EndpointURL: f.URL, MaxAttempts: 1}, nil)
	require.NoError(t, err)
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIAOWN", "secret", "")
	return cfg
}

// checkConfig returns a configuration with Cloud Map (namespaces from SSM), ECS on cluster
// prod, the events queue and the Prometheus configuration sync.
func checkConfig() config.Config {
	cfg := config.Default()
	cfg.AWS.Region = "us-east-1"
	cfg.ECS.Clusters = []string{"prod"}
	cfg.Events.QueueURL = "https://sqs.us-east-1.amazonaws.com/123456789012/ecs-sd-events"
	return cfg
}

// lines runs the check and returns its output lines and whether it passed.
func lines(t *testing.T, opts Options) ([]string, bool) {
	t.Helper()
	var out strings.Builder
	passed, err := Write(&out, Run(t.Context(), opts))
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"), passed
}

func TestEveryActionAllowed(t *testing.T) {
	f := newFakeAWS(t)
	own := f.awsConfig(t, "us-east-1")
	got, passed := lines(t, Options{Config: checkConfig(), Pairs: []Pair{{Region: "us-east-1", AWS: own}}, Own: own})
	require.Equal(t, []string{
		"ok  sts:GetCallerIdentity  account 123456789012",
		"ok  ssm:GetParameter  parameter ECS-ServiceDiscovery-Namespaces",
		"ok  servicediscovery:ListNamespaces",
		"ok  servicediscovery:ListServices  namespace apps",
		"ok  servicediscovery:GetService  service web (srv-1)",
		"ok  servicediscovery:ListTagsForResource  service web (srv-1)",
		"ok  servicediscovery:DiscoverInstances  service web (srv-1) in namespace apps",
		"ok  servicediscovery:ListInstances  service web (srv-1)",
		"ok  servicediscovery:GetInstancesHealthStatus  service web (srv-1)",
		"ok  ecs:DescribeClusters  clusters prod",
		"ok  ecs:ListTasks  cluster prod",
		"ok  ecs:DescribeTasks  2 task(s) in cluster prod",
		"ok  ecs:DescribeTaskDefinition  task definition arn:aws:ecs:us-east-1:123456789012:task-definition/web:3",
		"ok  ecs:DescribeContainerInstances  container instance arn:aws:ecs:us-east-1:123456789012:container-instance/prod/ci1",
		"ok  ec2:DescribeInstances  instance i-0abc",
		"ok  ecs:DescribeServices  service web in cluster prod",
		"ok  sqs:ReceiveMessage  queue https://sqs.us-east-1.amazonaws.com/123456789012/ecs-sd-events",
		"skipped  sqs:DeleteMessage  not called: it deletes messages (the kit grants it with sqs:ReceiveMessage)",
		"ok  ssm:GetParameter  parameter ECS-Prometheus-Configuration",
	}, got)
	require.True(t, passed)

	// The queue is peeked at: no wait, and a message received is visible again at once.
	var receive map[string]any
	require.NoError(t, json.Unmarshal([]byte(f.body("ReceiveMessage")), &receive))
	require.Equal(t, map[string]any{"QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/ecs-sd-events",
		"MaxNumberOfMessages": float64(1), "WaitTimeSeconds": float64(0), "VisibilityTimeout": float64(0)}, receive)
}

// TestDenied: each denied action says so with the kit's statement for it, on the resources it was
// called on; what needs its answer is skipped; the others are checked still.
func TestDenied(t *testing.T) {
	for _, tc := range []struct {
		op, code, want string
		skipped        []string
	}{
		{op: "ListTasks", code: "AccessDeniedException",
			want:    `denied  ecs:ListTasks  cluster prod  AccessDeniedException: User is not authorized to perform: ListTasks  add: {"Effect":"Allow","Action":"ecs:ListTasks","Resource":"*","Condition":{"ArnLike":{"ecs:cluster":"arn:aws:ecs:us-east-1:123456789012:cluster/prod"}}}`,
			skipped: []string{"ecs:DescribeTasks", "ecs:DescribeTaskDefinition", "ecs:DescribeContainerInstances", "ec2:DescribeInstances", "ecs:DescribeServices"}},
		{op: "DiscoverInstances", code: "AccessDeniedException",
			want: `denied  servicediscovery:DiscoverInstances  service web (srv-1) in namespace apps  AccessDeniedException: User is not authorized to perform: DiscoverInstances  add: {"Effect":"Allow","Action":"servicediscovery:DiscoverInstances","Resource":["arn:aws:servicediscovery:us-east-1:123456789012:namespace/ns-1","arn:aws:servicediscovery:us-east-1:123456789012:service/srv-1"]}`},
		{op: "GetParameter", code: "AccessDeniedException",
			want: `denied  ssm:GetParameter  parameter ECS-ServiceDiscovery-Namespaces  AccessDeniedException: User is not authorized to perform: GetParameter  add: {"Effect":"Allow","Action":"ssm:GetParameter","Resource":"arn:aws:ssm:us-east-1:123456789012:parameter/ECS-ServiceDiscovery-Namespaces"}`},
		{op: "DescribeInstances", code: "UnauthorizedOperation",
			want: `denied  ec2:DescribeInstances  instance i-0abc  UnauthorizedOperation: no DescribeInstances for you  add: {"Effect":"Allow","Action":"ec2:DescribeInstances","Resource":"*"}`},
		{op: "ReceiveMessage", code: "AccessDenied",
			want: `denied  sqs:ReceiveMessage  queue https://sqs.us-east-1.amazonaws.com/123456789012/ecs-sd-events  AccessDenied: User is not authorized to perform: ReceiveMessage  add: {"Effect":"Allow","Action":"sqs:ReceiveMessage","Resource":"arn:aws:sqs:us-east-1:123456789012:ecs-sd-events"}`},
		{op: "DescribeClusters", code: "ThrottlingException",
			want: `failed  ecs:DescribeClusters  clusters prod  ThrottlingException: Rate exceeded`},
	} {
		t.Run(tc.op, func(t *testing.T) {
			f := newFakeAWS(t)
			f.fail(tc.op, tc.code)
			own := f.awsConfig(t, "us-east-1")
			got, passed := lines(t, Options{Config: checkConfig(), Pairs: []Pair{{Region: "us-east-1", AWS: own}}, Own: own})
			require.False(t, passed)
			require.Contains(t, got, tc.want)
			for _, l := range got {
				action := strings.Fields(l)[1]
				switch {
				case strings.HasPrefix(tc.want, strings.Fields(l)[0]+"  "+action+"  "):
				case len(tc.skipped) > 0 && strings.Contains(strings.Join(tc.skipped, " "), action):
					require.Regexp(t, `^skipped  \S+  not tried: `, l)
				case action == DeleteMessage:
				default:
					require.Regexp(t, `^ok  `, l, "the others are checked still")
				}
			}
		})
	}
}

// TestPairs: with several pairs each has its section; a role that cannot be assumed is denied
// with the statement that allows it, and its pair's other actions are not tried; a member account
// without the namespaces parameter has no Cloud Map namespaces (as the daemon has it).
func TestPairs(t *testing.T) {
	f := newFakeAWS(t)
	own := f.awsConfig(t, "us-east-1")
	const role = "arn:aws:iam::111111111111:role/ecs-sd-reader"
	cfg := checkConfig()
	cfg.ECS.Clusters = nil
	cfg.Events.QueueURL = ""
	cfg.PrometheusConfig.Enabled = false
	member := awsclient.ForPair(own, "eu-west-1", &awsclient.Role{ARN: role}, 0, nil)
	sections := Run(t.Context(), Options{Config: cfg, Own: own, Pairs: []Pair{{Region: "us-east-1", AWS: own}, {Region: "eu-west-1", RoleARN: role, AWS: member}}})
	require.Len(t, sections, 2)
	require.Equal(t, "account 123456789012 region us-east-1", sections[0].Title)
	require.Equal(t, "account 111111111111 region eu-west-1 role "+role, sections[1].Title)
	require.Equal(t, "ok  sts:AssumeRole  role "+role, sections[1].Results[0].Line())
	require.Equal(t, "ok  sts:GetCallerIdentity  account 111111111111", sections[1].Results[1].Line())

	f.fail("GetParameter", "ParameterNotFound")
	f.fail("AssumeRole", "AccessDenied")
	member = awsclient.ForPair(own, "eu-west-1", &awsclient.Role{ARN: role}, 0, nil)
	var out strings.Builder
	passed, err := Write(&out, Run(t.Context(), Options{Config: cfg, Own: own, Pairs: []Pair{{Region: "us-east-1", AWS: own}, {Region: "eu-west-1", RoleARN: role, AWS: member}}}))
	require.NoError(t, err)
	require.False(t, passed)
	require.Contains(t, out.String(), "# account 123456789012 region us-east-1\nok  sts:GetCallerIdentity  account 123456789012\n"+
		"ok  ssm:GetParameter  parameter ECS-ServiceDiscovery-Namespaces (not found: no Cloud Map namespaces here)\n")
	require.Contains(t, out.String(), "\n# account 111111111111 region eu-west-1 role "+role+"\n"+
		`denied  sts:AssumeRole  role `+role+`  AccessDenied: no AssumeRole for you  add: {"Effect":"Allow","Action":"sts:AssumeRole","Resource":"`+role+`"}`+"\n"+
		"skipped  ssm:GetParameter  not tried: the role cannot be assumed\n")

	// With one pair, a missing parameter fails discovery, so the check.
	got, passed := lines(t, Options{Config: cfg, Own: own, Pairs: []Pair{{Region: "us-east-1", AWS: own}}})
	require.False(t, passed)
	require.Regexp(t, `^failed  ssm:GetParameter  parameter ECS-ServiceDiscovery-Namespaces  ssm parameter "ECS-ServiceDiscovery-Namespaces": parameter not found$`, got[1])
}

func TestStatement(t *testing.T) {
	a, ok := Lookup(DescribeClusters)
	require.True(t, ok)
	st, ok := a.Statement("arn:aws:ecs:us-east-1:1:cluster/a", "arn:aws:ecs:us-east-1:1:cluster/b")
	require.True(t, ok)
	require.Equal(t, `{"Effect":"Allow","Action":"ecs:DescribeClusters","Resource":["arn:aws:ecs:us-east-1:1:cluster/a","arn:aws:ecs:us-east-1:1:cluster/b"]}`, st.String())
	a, _ = Lookup(GetCallerIdentity)
	_, ok = a.Statement()
	require.False(t, ok, "no statement grants what IAM does not authorise")
	require.Equal(t, "arn:aws-cn:sqs:cn-north-1:123456789012:q", queueARN("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q", "us-east-1", "1"))
	require.Equal(t, "arn:aws:sqs:eu-west-1:123456789012:q", queueARN("http://127.0.0.1:4566/123456789012/q", "eu-west-1", "1"))
}
