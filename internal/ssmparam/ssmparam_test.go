package ssmparam

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/stretchr/testify/require"
)

func TestSplitList(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"ecs-services":                   {"ecs-services"},
		" a , b,,c ,a":                   {"a", "b", "c"},
		"":                               nil,
		" , ,":                           nil,
		"ns-abc,\tecs-services\n, other": {"ns-abc", "ecs-services", "other"},
	} {
		require.Equal(t, want, SplitList(in), "input %q", in)
	}
}

type fakeSSM map[string]string

func (f fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	if !aws.ToBool(in.WithDecryption) {
		return nil, errors.New("decryption not asked for")
	}
	v, ok := f[aws.ToString(in.Name)]
	if !ok {
		return nil, &types.ParameterNotFound{Message: aws.String("not found")}
	}
	return &ssm.GetParameterOutput{Parameter: &types.Parameter{Value: aws.String(v)}}, nil
}

func TestGetAndList(t *testing.T) {
	t.Parallel()
	api := fakeSSM{"ns": "a, b"}
	got, err := List(api, "ns")(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, got)

	_, err = Get(context.Background(), api, "missing")
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorContains(t, err, `"missing"`)
}

type typedSSM struct{ typ types.ParameterType }

func (f typedSSM) GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	return &ssm.GetParameterOutput{Parameter: &types.Parameter{Value: aws.String("v"), Type: f.typ}}, nil
}

func TestReadTellsSecrets(t *testing.T) {
	t.Parallel()
	for typ, secure := range map[types.ParameterType]bool{
		types.ParameterTypeSecureString: true,
		types.ParameterTypeString:       false,
		types.ParameterTypeStringList:   false,
	} {
		p, err := Read(context.Background(), typedSSM{typ}, "p")
		require.NoError(t, err)
		require.Equal(t, Parameter{Value: "v", Secure: secure}, p, typ)
	}
}
