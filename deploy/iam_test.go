package deploy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/ecs-sd/ecs-sd/internal/awscheck"
)

// These tests keep the IAM policies, their documentation and the code in step: every AWS
// operation ecs-sd can call is granted and documented, and every granted action is one ecs-sd
// calls or one documented as needed by ECS or Prometheus themselves. They read files only.

const (
	moduleRoot = ".."
	// daemon is the command whose code (its package and every package of the module it imports,
	// test files aside) makes the AWS calls.
	daemon = "cmd/ecs-sd"
	// harness holds the test and demo support packages, none of which the daemon may import.
	harness = "internal/harness"
)

// sdkServices maps the aws-sdk-go-v2 service packages the daemon may use to their IAM prefix.
var sdkServices = map[string]string{
	"github.com/aws/aws-sdk-go-v2/service/ec2":              "ec2",
	"github.com/aws/aws-sdk-go-v2/service/ecs":              "ecs",
	"github.com/aws/aws-sdk-go-v2/service/servicediscovery": "servicediscovery",
	"github.com/aws/aws-sdk-go-v2/service/sqs":              "sqs",
	"github.com/aws/aws-sdk-go-v2/service/ssm":              "ssm",
	"github.com/aws/aws-sdk-go-v2/service/sts":              "sts",
}

// providerActions maps the SDK credential providers the daemon may use, by package and
// function, to the IAM action of the call they make: an assumed role's credentials come from
// sts:AssumeRole, which the provider calls (its input is not named in ecs-sd's code).
var providerActions = map[string]map[string]string{
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds": {"NewAssumeRoleProvider": "sts:AssumeRole"},
}

// noPermissionNeeded returns the operations ecs-sd calls that IAM does not authorise (from
// awscheck's table), with why: no policy grants them, the IAM sections list them.
func noPermissionNeeded() map[string]string {
	out := map[string]string{}
	for _, a := range awscheck.Actions {
		if a.NoPermission != "" {
			out[a.Name] = a.NoPermission
		}
	}
	return out
}

// operationActions maps the operations authorised by an IAM action of another name to that
// action: SQS's batch operations need the action of the single operation (the Service
// Authorization Reference for Amazon SQS has no batch actions).
var operationActions = map[string]string{
	"sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
	"sqs:DeleteMessageBatch":           "sqs:DeleteMessage",
	"sqs:SendMessageBatch":             "sqs:SendMessage",
}

// eventsPackage is ecs-sd's event consumer (--events.queue-url), which receives and deletes the
// messages of the event queue; the task role's events-consumer policy allows exactly its calls, on
// that queue only.
const eventsPackage = "internal/events"

// notCalledByEcsSd are the actions the policies grant that ecs-sd does not call: ECS and
// Prometheus need them. deploy/README.md's IAM section documents each.
var notCalledByEcsSd = map[string]string{
	"aps:RemoteWrite":                 "Prometheus remote-writes to AMP with the task role",
	"ecr:GetAuthorizationToken":       "the ECS agent logs in to ECR (execution role)",
	"ecr:BatchCheckLayerAvailability": "the ECS agent pulls images from ECR (execution role)",
	"ecr:BatchGetImage":               "the ECS agent pulls images from ECR (execution role)",
	"ecr:GetDownloadUrlForLayer":      "the ECS agent pulls images from ECR (execution role)",
	"logs:CreateLogStream":            "the awslogs driver (execution role)",
	"logs:PutLogEvents":               "the awslogs driver (execution role)",
}

// modulePath reads the module path from go.mod.
func modulePath(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(moduleRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "module "); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatal("go.mod has no module line")
	return ""
}

// daemonPackages returns the directories (relative to the module root) of the daemon's package
// and of every package of the module it imports, and their non-test Go files.
func daemonPackages(t *testing.T) map[string][]string {
	t.Helper()
	module := modulePath(t)
	out := map[string][]string{}
	queue := []string{daemon}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		if _, seen := out[dir]; seen {
			continue
		}
		pkg, err := build.Default.ImportDir(filepath.Join(moduleRoot, dir), 0)
		if err != nil {
			t.Fatalf("read package %s: %v", dir, err)
		}
		out[dir] = pkg.GoFiles
		for _, imp := range pkg.Imports {
			if rel, ok := strings.CutPrefix(imp, module+"/"); ok {
				queue = append(queue, rel)
			}
		}
	}
	return out
}

// sdkName matches the package-level names of an SDK service package that name an operation:
// its input type, its paginator (and the client interface the paginator takes), its waiters.
var sdkName = regexp.MustCompile(`^(?:(\w+)Input|New(\w+)Paginator|(\w+)APIClient|New(\w+)Waiter)$`)

// codeActions returns the IAM actions of the AWS operations the daemon's code can call, each
// with where the code names it. An operation is found by its input type, which every call names
// (`&ecs.ListTasksInput{...}`, or an interface method's parameter), or by its paginator.
func codeActions(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	for dir, files := range daemonPackages(t) {
		for _, name := range files {
			path := filepath.Join(dir, name)
			f, err := parser.ParseFile(fset, filepath.Join(moduleRoot, path), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			actions, problems := fileActions(fset, path, f)
			for _, p := range problems {
				t.Error(p)
			}
			for action, at := range actions {
				for _, a := range at {
					if !slices.Contains(out[action], a) {
						out[action] = append(out[action], a)
					}
				}
			}
		}
	}
	return out
}

// fileActions returns the IAM actions of the AWS operations one parsed Go file names (path is
// where it is, for the positions), and what the search cannot tell: an SDK service this test does
// not know, a waiter.
func fileActions(fset *token.FileSet, path string, f *ast.File) (actions map[string][]string, problems []string) {
	actions = map[string][]string{}
	services := map[string]string{}             // local package name -> IAM prefix
	providers := map[string]map[string]string{} // local package name -> providerActions
	for _, imp := range f.Imports {
		ip := strings.Trim(imp.Path.Value, `"`)
		if p, ok := providerActions[ip]; ok {
			local := ip[strings.LastIndex(ip, "/")+1:]
			if imp.Name != nil {
				local = imp.Name.Name
			}
			providers[local] = p
			continue
		}
		rest, ok := strings.CutPrefix(ip, "github.com/aws/aws-sdk-go-v2/service/")
		if !ok || strings.Contains(rest, "/") {
			continue
		}
		prefix, known := sdkServices[ip]
		if !known {
			problems = append(problems, fmt.Sprintf("%s imports %s, whose IAM actions this test does not know: add it to sdkServices", path, ip))
			continue
		}
		local := rest
		if imp.Name != nil {
			local = imp.Name.Name
		}
		services[local] = prefix
	}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		pkg, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		if action := providers[pkg.Name][sel.Sel.Name]; action != "" {
			if at := fmt.Sprintf("%s:%d", path, fset.Position(sel.Pos()).Line); !slices.Contains(actions[action], at) {
				actions[action] = append(actions[action], at)
			}
			return true
		}
		if services[pkg.Name] == "" {
			return true
		}
		m := sdkName.FindStringSubmatch(sel.Sel.Name)
		if m == nil {
			return true
		}
		if m[4] != "" {
			problems = append(problems, fmt.Sprintf("%s: waiter %s.%s: name the operations it calls in this test", fset.Position(sel.Pos()), pkg.Name, sel.Sel.Name))
			return true
		}
		action := services[pkg.Name] + ":" + m[1] + m[2] + m[3]
		if a, ok := operationActions[action]; ok {
			action = a
		}
		if at := fmt.Sprintf("%s:%d", path, fset.Position(sel.Pos()).Line); !slices.Contains(actions[action], at) {
			actions[action] = append(actions[action], at)
		}
		return true
	})
	return actions, problems
}

// TestFileActions: the search finds SQS operations by their inputs and paginators, under any
// import name, and gives the batch operations the action that authorises them.
func TestFileActions(t *testing.T) {
	t.Parallel()
	const src = `package events

import (
	"context"

	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

type queue interface {
	ReceiveMessage(context.Context, *awssqs.ReceiveMessageInput, ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(context.Context, *awssqs.DeleteMessageBatchInput, ...func(*awssqs.Options)) (*awssqs.DeleteMessageBatchOutput, error)
}

func attributes(ctx context.Context, c *awssqs.Client, m types.Message) {
	_, _ = c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{})
	_ = awssqs.NewListQueuesPaginator(c, nil)
	_ = kinesis.GetRecordsInput{}
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "queue.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	actions, problems := fileActions(fset, "internal/events/queue.go", f)
	want := map[string][]string{
		"sqs:ReceiveMessage":     {"internal/events/queue.go:12"},
		"sqs:DeleteMessage":      {"internal/events/queue.go:13"},
		"sqs:GetQueueAttributes": {"internal/events/queue.go:17"},
		"sqs:ListQueues":         {"internal/events/queue.go:18"},
	}
	if !maps.EqualFunc(actions, want, slices.Equal) {
		t.Errorf("actions %v, want %v", actions, want)
	}
	if len(problems) != 1 || !strings.Contains(problems[0], "imports github.com/aws/aws-sdk-go-v2/service/kinesis") {
		t.Errorf("problems %q, want one naming the kinesis import", problems)
	}
}

// placeholder matches the ${NAME} placeholders of the policy templates.
var placeholder = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// policyStatements returns every Allow statement of the permission policies: deploy/iam/*.json
// (placeholders filled with dummies) and the template's IAM roles and policies, both branches of
// every condition; each with where it is.
func policyStatements(t *testing.T) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	var collect func(where string, v any)
	collect = func(where string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["Action"]; ok && x["Principal"] == nil && x["Effect"] == "Allow" {
				out[where] = append(out[where], x)
				return
			}
			for k, val := range x {
				if k != "AssumeRolePolicyDocument" {
					collect(where, val)
				}
			}
		case []any:
			for _, val := range x {
				collect(where, val)
			}
		}
	}
	files, err := filepath.Glob("iam/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no policies in iam/: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		filled := placeholder.ReplaceAllStringFunc(string(data), func(m string) string {
			if strings.HasSuffix(m, "_JSON}") {
				return `"placeholder"`
			}
			return "placeholder"
		})
		var doc any
		if err := json.Unmarshal([]byte(filled), &doc); err != nil {
			t.Fatalf("%s is not JSON once its placeholders are filled: %v", file, err)
		}
		collect("deploy/"+file, doc)
	}
	for _, path := range []string{templatePath, readerTemplatePath} {
		c := loadTemplateFile(t, path)
		for name, r := range c.section("Resources") {
			r := r.(map[string]any)
			if typ, _ := r["Type"].(string); strings.HasPrefix(typ, "AWS::IAM::") {
				collect("template "+filepath.Base(path)+" "+name, r["Properties"])
			}
		}
	}
	return out
}

// policyActions returns every action the policies grant, with where.
func policyActions(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for where, sts := range policyStatements(t) {
		for _, st := range sts {
			for _, a := range strs(st["Action"]) {
				if !slices.Contains(out[a], where) {
					out[a] = append(out[a], where)
				}
			}
		}
	}
	return out
}

// section returns the part of a Markdown file under the first heading whose text starts with
// title, up to the next heading of the same or a higher level.
func section(t *testing.T, file, title string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(moduleRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	level := 0
	fenced := false
	var out []string
	for _, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		hashes := len(line) - len(strings.TrimLeft(line, "#"))
		isHeading := !fenced && hashes > 0 && strings.HasPrefix(line[hashes:], " ")
		if level == 0 {
			if isHeading && strings.HasPrefix(strings.TrimSpace(line[hashes:]), title) {
				level = hashes
			}
			continue
		}
		if isHeading && hashes <= level {
			break
		}
		out = append(out, line)
	}
	if level == 0 {
		t.Fatalf("%s has no section %q", file, title)
	}
	return strings.Join(out, "\n")
}

var (
	codeSpan   = regexp.MustCompile("`([^`]+)`")
	fullAction = regexp.MustCompile(`^([a-z0-9-]+):([A-Z][A-Za-z]+)$`)
	bareAction = regexp.MustCompile(`^[A-Z][A-Za-z]+$`)
)

// listSeparator is what may stand between two items of a list of actions.
var listSeparator = regexp.MustCompile(`^\s*(,|and|or|, and|, or)?\s*$`)

// docActions returns the IAM actions a Markdown text names in code spans: `svc:Action`, and
// `Action` listed right after one (as in "`ec2:DescribeVpcs`, `DescribeSubnets` and `X`").
func docActions(text string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		prefix, end := "", 0
		for _, m := range codeSpan.FindAllStringSubmatchIndex(line, -1) {
			span := line[m[2]:m[3]]
			listed := prefix != "" && listSeparator.MatchString(line[end:m[0]])
			switch f := fullAction.FindStringSubmatch(span); {
			case f != nil:
				prefix = f[1]
				out[span] = true
			case listed && bareAction.MatchString(span):
				out[prefix+":"+span] = true
			default:
				prefix = ""
			}
			end = m[1]
		}
	}
	return out
}

func TestDocActions(t *testing.T) {
	t.Parallel()
	got := docActions("| `ec2:DescribeVpcs`, `DescribeSubnets` and `CreateVpc` | `*` |\n" +
		"`Lonely` `ssm:GetParameter` (`ECS_AWSVPC_BLOCK_IMDS`), `iam:PassRole` for `Service` `ecs:ListTasks` with `ArnLike`\n")
	want := []string{"ec2:CreateVpc", "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ecs:ListTasks", "iam:PassRole", "ssm:GetParameter"}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
		t.Errorf("docActions = %v, want %v", keys, want)
	}
}

// TestIAMMatchesTheCode: every AWS operation ecs-sd can call is granted by the policies and
// listed in the IAM tables (deploy/README.md, and README.md or docs/ecs-source.md), and every
// action the policies grant is one ecs-sd calls or one ECS or Prometheus needs (documented).
func TestIAMMatchesTheCode(t *testing.T) {
	t.Parallel()
	code := codeActions(t)
	// The packages that hold the AWS calls are the daemon's: the check would pass vacuously
	// otherwise. Test and demo support must not be part of it.
	packages := daemonPackages(t)
	for _, want := range []string{"internal/cloudmap", "internal/ecs", "internal/ssmparam", "internal/promconfig"} {
		if _, ok := packages[want]; !ok {
			t.Errorf("%s is not among the daemon's packages %v", want, slices.Sorted(maps.Keys(packages)))
		}
	}
	for _, dir := range slices.Sorted(maps.Keys(packages)) {
		if dir == harness || strings.HasPrefix(dir, harness+"/") {
			t.Errorf("the daemon imports the test or demo support package %s", dir)
		}
	}
	for _, want := range []string{"ssm:GetParameter", "servicediscovery:DiscoverInstances", "servicediscovery:ListServices", "ecs:ListTasks", "ec2:DescribeInstances"} {
		if _, ok := code[want]; !ok {
			t.Errorf("the code's AWS calls %v lack %s: the search of the sources is broken", slices.Sorted(maps.Keys(code)), want)
		}
	}
	if _, ok := packages[eventsPackage]; !ok {
		t.Errorf("the daemon does not hold the event consumer %s", eventsPackage)
	}
	for _, want := range []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sts:AssumeRole", "sts:GetCallerIdentity"} {
		if _, ok := code[want]; !ok {
			t.Errorf("the code's AWS calls %v lack %s, which the event consumer %s makes: the search of the sources is broken", slices.Sorted(maps.Keys(code)), want, eventsPackage)
		}
	}

	granted := policyActions(t)
	deployIAM := docActions(section(t, "deploy/README.md", "IAM"))
	readmeIAM := docActions(section(t, "README.md", "IAM"))
	ecsSourceIAM := docActions(section(t, "docs/ecs-source.md", "IAM"))
	for _, action := range slices.Sorted(maps.Keys(code)) {
		where := strings.Join(code[action], ", ")
		_, ok := granted[action]
		switch why, free := noPermissionNeeded()[action]; {
		case free && ok:
			t.Errorf("%s grant %s, which needs no permission (%s): remove it", strings.Join(granted[action], ", "), action, why)
		case !free && !ok:
			t.Errorf("the code calls %s (%s) but no policy grants it: add it to deploy/iam/ and the template's roles", action, where)
		}
		if !deployIAM[action] {
			t.Errorf("the code calls %s (%s) but the IAM section of deploy/README.md does not list it", action, where)
		}
		if !readmeIAM[action] && !ecsSourceIAM[action] {
			t.Errorf("the code calls %s (%s) but neither README.md's nor docs/ecs-source.md's IAM section lists it", action, where)
		}
	}
	for _, action := range slices.Sorted(maps.Keys(granted)) {
		if _, called := code[action]; called {
			continue
		}
		why, needed := notCalledByEcsSd[action]
		switch {
		case !needed:
			t.Errorf("%s grant %s, which ecs-sd does not call and nothing documents as needed: remove it, or document why in notCalledByEcsSd and deploy/README.md", strings.Join(granted[action], ", "), action)
		case !deployIAM[action]:
			t.Errorf("%s grant %s (%s), which the IAM section of deploy/README.md does not list", strings.Join(granted[action], ", "), action, why)
		}
	}
	for action := range notCalledByEcsSd {
		if _, ok := granted[action]; !ok {
			t.Errorf("notCalledByEcsSd lists %s, which no policy grants any more: remove it", action)
		}
	}
	for doc, actions := range map[string]map[string]bool{"README.md": readmeIAM, "docs/ecs-source.md": ecsSourceIAM} {
		for action := range actions {
			if _, called := code[action]; !called && notCalledByEcsSd[action] == "" {
				t.Errorf("the IAM section of %s lists %s, which ecs-sd does not call", doc, action)
			}
		}
	}
}

// cliPrefixes maps AWS CLI service names to IAM prefixes where they differ.
var cliPrefixes = map[string]string{"amp": "aps"}

// cliWaiters maps the CLI waiters the scripts use to the action they poll with.
var cliWaiters = map[string]string{"ec2 wait nat-gateway-available": "ec2:DescribeNatGateways"}

// impliedOperatorActions are needed by the scripts' calls without being calls of their own.
var impliedOperatorActions = map[string]string{
	"iam:PassRole":   "register-task-definition names the two roles",
	"ec2:CreateTags": "create-vpc tags the VPC it creates (--tag-specifications)",
}

var awscliCall = regexp.MustCompile(`\bawscli\s+([a-z0-9-]+)\s+([a-z0-9-]+)(?:\s+([a-z0-9-]+))?`)

// scriptActions returns the IAM actions of the AWS CLI calls of deploy/scripts, with where.
func scriptActions(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob("scripts/*.sh")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	out := map[string][]string{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, m := range awscliCall.FindAllStringSubmatch(line, -1) {
				service, command := m[1], m[2]
				var action string
				if command == "wait" {
					action = cliWaiters[service+" wait "+m[3]]
					if action == "" {
						t.Errorf("%s:%d: waiter %s %s: add the action it polls with to cliWaiters", file, i+1, service, m[3])
						continue
					}
				} else {
					prefix := service
					if p, ok := cliPrefixes[service]; ok {
						prefix = p
					}
					var pascal strings.Builder
					for _, word := range strings.Split(command, "-") {
						r := []rune(word)
						pascal.WriteString(string(unicode.ToUpper(r[0])) + string(r[1:]))
					}
					action = prefix + ":" + pascal.String()
				}
				out[action] = append(out[action], fmt.Sprintf("%s:%d", file, i+1))
			}
		}
	}
	return out
}

// TestOperatorPermissionsMatchTheScripts: deploy/README.md lists exactly the actions the CLI
// path's operator needs: every call of the scripts (and what those calls imply).
func TestOperatorPermissionsMatchTheScripts(t *testing.T) {
	t.Parallel()
	calls := scriptActions(t)
	for _, want := range []string{"ecs:CreateService", "ssm:PutParameter", "aps:CreateWorkspace", "iam:CreateServiceLinkedRole"} {
		if _, ok := calls[want]; !ok {
			t.Fatalf("the scripts' calls %v lack %s: the search of the scripts is broken", slices.Sorted(maps.Keys(calls)), want)
		}
	}
	listed := docActions(section(t, "deploy/README.md", "Who runs the CLI path"))
	for _, action := range slices.Sorted(maps.Keys(calls)) {
		if !listed[action] {
			t.Errorf("the scripts call %s (%s) but deploy/README.md's operator permissions do not list it", action, strings.Join(calls[action], ", "))
		}
	}
	for action, why := range impliedOperatorActions {
		if !listed[action] {
			t.Errorf("the operator needs %s (%s) but deploy/README.md's operator permissions do not list it", action, why)
		}
	}
	for _, action := range slices.Sorted(maps.Keys(listed)) {
		if _, called := calls[action]; !called && impliedOperatorActions[action] == "" {
			t.Errorf("deploy/README.md's operator permissions list %s, which no script needs", action)
		}
	}
}

// checkPackage is `ecs-sd check aws`, which calls each action of awscheck.Actions.
const checkPackage = "internal/awscheck"

// calledElsewhere are the actions of awscheck.Actions that the check calls through other
// packages of ecs-sd, as the daemon does.
var calledElsewhere = map[string]string{
	awscheck.AssumeRole:        "the pair's credentials (awsclient.ForPair)",
	awscheck.GetCallerIdentity: "awsclient.Identity",
	awscheck.GetParameter:      "ssmparam, as the daemon reads its parameters",
}

// TestCheckTableMatchesTheCodeAndThePolicies: awscheck.Actions, the table `ecs-sd check aws`
// walks, lists exactly the actions ecs-sd calls; the check calls each (but those it must not);
// and each action's resource ("*" or not) and condition key are those of every kit statement that
// grants it, so that the statement the check tells to add is the kit's.
func TestCheckTableMatchesTheCodeAndThePolicies(t *testing.T) {
	t.Parallel()
	code := codeActions(t)
	table := map[string]awscheck.Action{}
	for _, a := range awscheck.Actions {
		table[a.Name] = a
	}
	if got, want := slices.Sorted(maps.Keys(table)), slices.Sorted(maps.Keys(code)); !slices.Equal(got, want) {
		t.Errorf("awscheck.Actions lists %v; the code calls %v", got, want)
	}

	checked := map[string][]string{}
	fset := token.NewFileSet()
	pkg, err := build.Default.ImportDir(filepath.Join(moduleRoot, checkPackage), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range pkg.GoFiles {
		path := filepath.Join(checkPackage, name)
		f, err := parser.ParseFile(fset, filepath.Join(moduleRoot, path), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		actions, _ := fileActions(fset, path, f)
		maps.Copy(checked, actions)
	}
	for _, a := range awscheck.Actions {
		_, called := checked[a.Name]
		switch {
		case a.NotCalled != "" && called:
			t.Errorf("%s calls %s, which the table says it does not (%s)", checkPackage, a.Name, a.NotCalled)
		case a.NotCalled == "" && !called && calledElsewhere[a.Name] == "":
			t.Errorf("%s does not call %s", checkPackage, a.Name)
		}
	}

	granted := 0
	for where, statements := range policyStatements(t) {
		for _, st := range statements {
			resources := strs(st["Resource"])
			conditions := map[string]bool{}
			if c, ok := st["Condition"].(map[string]any); ok {
				for _, keys := range c { // ArnLike or ArnEquals: both match an exact ARN
					if keys, ok := keys.(map[string]any); ok {
						for key := range keys {
							conditions[key] = true
						}
					}
				}
			}
			for _, action := range strs(st["Action"]) {
				a, ok := table[action]
				if !ok {
					continue
				}
				granted++
				star := slices.Equal(resources, []string{"*"})
				if star != (a.Resource == awscheck.AnyResource) {
					t.Errorf("%s grants %s on %v; awscheck.Actions has resource %d", where, action, resources, a.Resource)
				}
				want := map[string]bool{}
				if a.Condition.Key != "" {
					want[a.Condition.Key] = true
				}
				if !maps.Equal(conditions, want) {
					t.Errorf("%s grants %s with conditions %v; awscheck.Actions has %v", where, action, conditions, want)
				}
			}
		}
	}
	if granted < len(awscheck.Actions)-1 {
		t.Errorf("only %d statements grant an action of awscheck.Actions: the search of the policies is broken", granted)
	}
}
