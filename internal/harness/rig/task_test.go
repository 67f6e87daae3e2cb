package rig

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
)

func TestWriteOnce(t *testing.T) {
	lost := errors.New("read tcp: use of closed network connection")
	denied := &smithy.GenericAPIError{Code: "AccessDenied", Message: "no"}
	tests := []struct {
		name       string
		results    []error // what each write returns
		done       []bool  // what each check returns
		wantWrites int
		wantErr    error
	}{
		{name: "ok", results: []error{nil}, wantWrites: 1},
		{name: "carried out although the answer was lost", results: []error{lost}, done: []bool{true}, wantWrites: 1},
		{name: "lost before it was carried out", results: []error{lost, nil}, done: []bool{false}, wantWrites: 2},
		{name: "lost every time", results: []error{lost, lost, lost}, done: []bool{false, false}, wantWrites: 3, wantErr: lost},
		{name: "an AWS error is an answer", results: []error{denied}, wantWrites: 1, wantErr: denied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writes, checks := 0, 0
			err := writeOnce(context.Background(), func() error {
				writes++
				return tt.results[writes-1]
			}, func() (bool, error) {
				checks++
				return tt.done[checks-1], nil
			})
			require.Equal(t, tt.wantWrites, writes)
			require.Equal(t, len(tt.done), checks)
			if tt.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.wantErr)
			}
		})
	}
}
