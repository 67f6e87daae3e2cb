// Package ssmparam reads SSM Parameter Store parameters: the Cloud Map namespace list and the
// Prometheus configuration that the seed's deployment keeps there.
package ssmparam

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// API is the part of the SSM client ecs-sd uses.
type API interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// ErrNotFound reports a parameter that does not exist.
var ErrNotFound = errors.New("parameter not found")

// Parameter is a parameter's value, and whether it is a secret.
type Parameter struct {
	Value string
	// Secure is true for a SecureString, whose value was decrypted: it must not be written
	// where others can read it.
	Secure bool
}

// Read returns the parameter name, its value decrypted when it is a SecureString. A missing
// parameter gives an error that wraps ErrNotFound.
func Read(ctx context.Context, api API, name string) (Parameter, error) {
	out, err := api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		var nf *types.ParameterNotFound
		if errors.As(err, &nf) {
			return Parameter{}, fmt.Errorf("ssm parameter %q: %w", name, ErrNotFound)
		}
		return Parameter{}, fmt.Errorf("get ssm parameter %q: %w", name, err)
	}
	if out.Parameter == nil {
		return Parameter{}, fmt.Errorf("ssm parameter %q: %w", name, ErrNotFound)
	}
	return Parameter{Value: aws.ToString(out.Parameter.Value), Secure: out.Parameter.Type == types.ParameterTypeSecureString}, nil
}

// Get returns the value of the parameter name (see Read).
func Get(ctx context.Context, api API, name string) (string, error) {
	p, err := Read(ctx, api, name)
	return p.Value, err
}

// SplitList splits a comma-separated list (a String or StringList parameter), trimming
// whitespace and dropping empty entries and repeats, in the order given.
func SplitList(v string) []string {
	var out []string
	seen := map[string]bool{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" || seen[item] {
			continue
		}
		seen[item] = true
		out = append(out, item)
	}
	return out
}

// List returns a function that reads the comma-separated list held in the parameter name, for use
// as a source of Cloud Map namespaces that is re-read every cycle.
func List(api API, name string) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		v, err := Get(ctx, api, name)
		if err != nil {
			return nil, err
		}
		return SplitList(v), nil
	}
}
