package awscheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// peekInput is the ReceiveMessage of the check: one message at most, no wait, and no visibility
// timeout (sent by peek), so that a message received is visible to the daemon again at once and
// none is deleted.
func peekInput(queueURL string) *sqs.ReceiveMessageInput {
	return &sqs.ReceiveMessageInput{QueueUrl: &queueURL, MaxNumberOfMessages: 1}
}

// peek is a client option of ReceiveMessage that sends WaitTimeSeconds and VisibilityTimeout as
// 0. The SDK leaves a 0 out of the request, and SQS then applies the queue's own values: a long
// poll of up to 20 s, and a message hidden for the queue's visibility timeout (30 s by default).
func peek(o *sqs.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Serialize.Add(middleware.SerializeMiddlewareFunc("ecsSDPeek",
			func(ctx context.Context, in middleware.SerializeInput, next middleware.SerializeHandler) (middleware.SerializeOutput, middleware.Metadata, error) {
				req, ok := in.Request.(*smithyhttp.Request)
				if !ok || req.GetStream() == nil {
					return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("sqs receive message: unexpected request %T", in.Request)
				}
				body, err := io.ReadAll(req.GetStream())
				if err != nil {
					return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("sqs receive message: read request: %w", err)
				}
				var fields map[string]any
				if err := json.Unmarshal(body, &fields); err != nil {
					return middleware.SerializeOutput{}, middleware.Metadata{}, fmt.Errorf("sqs receive message: request is not JSON: %w", err)
				}
				fields["WaitTimeSeconds"], fields["VisibilityTimeout"] = 0, 0
				if body, err = json.Marshal(fields); err != nil {
					return middleware.SerializeOutput{}, middleware.Metadata{}, err
				}
				if req, err = req.SetStream(bytes.NewReader(body)); err != nil {
					return middleware.SerializeOutput{}, middleware.Metadata{}, err
				}
				in.Request = req
				return next.HandleSerialize(ctx, in)
			}), middleware.After)
	})
}
