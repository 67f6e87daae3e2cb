// Package rig is the local stand-in for AWS and Amazon Managed Service for Prometheus that ecs-sd's
// integration tests (testenv) and its local demo (demo) run on: moto_server (an
// AWS API emulator) and Prometheus servers on loopback, the settings that point AWS clients and
// child processes at moto, and the Cloud Map registration of an ECS task as ECS itself makes it.
//
// Processes are started with supervise; rig only says how (program, arguments,
// readiness), so that callers decide where logs go and when things stop.
package rig

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region is the AWS region of every client and child process that talks to moto.
const Region = "us-east-1"

// Credential is both the access key id and the secret key given to moto, which accepts any.
const Credential = "test"

// AWSConfig returns an SDK configuration that sends every call to endpointURL (moto or a proxy in
// front of it), in Region with static credentials test/test. It is built by
// config.LoadDefaultConfig, so the SDK's own HTTP client (which honours AWS_CA_BUNDLE) is kept.
func AWSConfig(ctx context.Context, endpointURL string) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(Credential, Credential, "")),
		config.WithBaseEndpoint(endpointURL),
	)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config for %s: %w", endpointURL, err)
	}
	return cfg, nil
}

// AWSEnv returns os.Environ() set up for a child process (ecs-sd, the AWS CLI, a deploy script)
// to send every AWS call to endpointURL: AWS_ACCESS_KEY_ID=test, AWS_SECRET_ACCESS_KEY=test,
// AWS_REGION=us-east-1 and AWS_ENDPOINT_URL=endpointURL, with AWS_PROFILE, AWS_SESSION_TOKEN,
// AWS_DEFAULT_REGION and every AWS_ENDPOINT_URL_<SERVICE> removed. AWS_CA_BUNDLE and the like are
// kept.
func AWSEnv(endpointURL string) []string {
	env := make([]string, 0, len(os.Environ())+4)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !overriddenAWSVar(name) {
			env = append(env, kv)
		}
	}
	return append(env,
		"AWS_ACCESS_KEY_ID="+Credential,
		"AWS_SECRET_ACCESS_KEY="+Credential,
		"AWS_REGION="+Region,
		"AWS_ENDPOINT_URL="+endpointURL,
	)
}

// overriddenAWSVar reports whether AWSEnv drops the environment variable name.
func overriddenAWSVar(name string) bool {
	switch name {
	case "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_REGION", "AWS_DEFAULT_REGION":
		return true
	}
	return strings.HasPrefix(name, "AWS_ENDPOINT_URL")
}
