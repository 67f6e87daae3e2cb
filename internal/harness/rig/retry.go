package rig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// FixtureConfig is AWSConfig for the clients that build fixtures on moto: a call that changes
// moto's state is made once. An attempt that failed on the client's side (a connection reset, an
// answer cut off, a 5xx after the change was made) may have been carried out by moto all the
// same, and moto does not take a repeated write as AWS does: registering an instance id again
// adds a duplicate, deleting again answers NotFound. So only reads (Get*, List*, Describe*,
// Discover*) are retried, and writes only when the connection could not be made at all. There
// is no deadline per attempt: a slow moto is waited for (up to the caller's context), not asked
// twice.
func FixtureConfig(ctx context.Context, endpointURL string) (aws.Config, error) {
	cfg, err := AWSConfig(ctx, endpointURL)
	if err != nil {
		return cfg, err
	}
	cfg.Retryer = func() aws.Retryer { return writesOnce{retry.NewStandard()} }
	return cfg, nil
}

// writesOnce is the SDK's standard retryer, except that it refuses to retry a call that changes
// state unless its attempt never reached the server.
type writesOnce struct{ *retry.Standard }

// GetRetryToken implements aws.Retryer.
func (r writesOnce) GetRetryToken(ctx context.Context, opErr error) (func(error) error, error) {
	if op := awsmiddleware.GetOperationName(ctx); !readOnly(op) && !notSent(opErr) {
		return nil, fmt.Errorf("%s is not retried: the failed attempt may have been carried out", op)
	}
	return r.Standard.GetRetryToken(ctx, opErr)
}

// readOnly reports whether the AWS operation op only reads.
func readOnly(op string) bool {
	for _, prefix := range []string{"Get", "List", "Describe", "Discover"} {
		if strings.HasPrefix(op, prefix) {
			return true
		}
	}
	return false
}

// notSent reports whether err says the request never reached the server: the connection could
// not be made.
func notSent(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}
