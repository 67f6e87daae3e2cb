package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-sd/ecs-sd/internal/awsclient"
	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/refresh"
	"github.com/ecs-sd/ecs-sd/internal/ssmparam"
)

// pair is one (account, region) in which every enabled source discovers, with what its sources
// are built from. Each pair has its own AWS configuration (credentials, region, call metrics), so
// its own clients, caches and rate budget: a pair that fails fails alone.
type pair struct {
	refresh.Pair
	aws aws.Config
	// role is the role assumed in the pair's account; nil in ecs-sd's own account.
	role *awsclient.Role
	// reg registers the metrics of the pair's sources: labelled by account and region when
	// there are several pairs.
	reg    prometheus.Registerer
	logger *slog.Logger
	// account reads the pair's account id when Pair has none yet (ecs-sd's own, with one pair).
	account func(context.Context) (string, error)
}

// accounts is where ecs-sd discovers, and its own AWS configuration.
type accounts struct {
	// own is the configuration of ecs-sd's own credentials in its own region: the events queue
	// and the Prometheus configuration parameter are read with it.
	own   aws.Config
	pairs []pair
	// several is true with more than one pair: metrics are then labelled by account and region,
	// and events routed by the account and region of their envelope.
	several bool
	// callMetrics are the AWS API call metrics (labelled by pair when several).
	callMetrics *awsclient.Metrics
}

// newAccounts resolves the pairs to discover in: ecs-sd's own account when aws.own_account is on,
// and the account of each aws.accounts role, each in every region of aws.regions (else
// aws.region).
//
// ecs-sd's own account id comes from sts:GetCallerIdentity (which needs no permission). With one
// pair it is read by the first discoveries that can (refresh.Place): ecs-sd starts, serves the
// earlier list and reports its discovery failures while AWS cannot be reached, as it always has.
// With several pairs it is read before discovery starts, retried until it can be (once), since
// every metric of the pair is labelled by it.
func newAccounts(ctx context.Context, cfg config.Config, once bool, reg prometheus.Registerer, logger *slog.Logger) (accounts, error) {
	opts := awsclient.Options{
		Region:         cfg.AWS.Region,
		EndpointURL:    cfg.AWS.EndpointURL,
		AttemptTimeout: time.Duration(cfg.AWS.AttemptTimeout),
		CallTimeout:    time.Duration(cfg.AWS.CallTimeout),
	}
	base, err := awsclient.Load(ctx, opts, nil)
	if err != nil {
		return accounts{}, configError{err}
	}
	regions := cfg.AWS.DiscoveryRegions(base.Region)
	accountCount := len(cfg.AWS.Accounts)
	if cfg.AWS.OwnAccount {
		accountCount++
	}
	out := accounts{several: accountCount*len(regions) > 1}
	own := &ownAccount{cfg: base}
	ownID := ""
	if out.several {
		if ownID, err = own.wait(ctx, once, logger); err != nil {
			return accounts{}, err
		}
	}
	if out.several {
		out.callMetrics = awsclient.NewPairMetrics(reg)
	} else {
		out.callMetrics = awsclient.NewMetrics(reg)
	}
	out.own = awsclient.ForPair(base, base.Region, nil, opts.CallTimeout, out.callMetrics.For(ownID, base.Region))
	add := func(account string, role *awsclient.Role) {
		for _, region := range regions {
			p := pair{Pair: refresh.Pair{Account: account, Region: region}, role: role, reg: reg, logger: logger}
			if account == "" {
				p.account = own.id
			}
			if out.several {
				p.reg = prometheus.WrapRegistererWith(prometheus.Labels{"account": account, "region": region}, reg)
				p.logger = p.Logger(logger)
			}
			p.aws = awsclient.ForPair(base, region, role, opts.CallTimeout, out.callMetrics.For(account, region))
			out.pairs = append(out.pairs, p)
		}
	}
	if cfg.AWS.OwnAccount {
		add(ownID, nil)
	}
	for _, a := range cfg.AWS.Accounts {
		id := config.RoleAccount(a.RoleARN)
		if id == ownID && cfg.AWS.OwnAccount {
			return accounts{}, configError{fmt.Errorf("aws accounts: role arn %q is in ecs-sd's own account %s, discovered already (set own_account to false to discover there with the role)", a.RoleARN, ownID)}
		}
		add(id, &awsclient.Role{ARN: a.RoleARN, ExternalID: a.ExternalID})
	}
	if out.several {
		logger.Info("Discovering in several accounts and regions", "accounts", accountCount, "regions", len(regions), "pairs", len(out.pairs))
	}
	return out, nil
}

// ownAccount reads ecs-sd's own account id, once it can.
type ownAccount struct {
	cfg   aws.Config
	mu    sync.Mutex
	known string
}

// id returns the account id, read from STS the first time it can be.
func (o *ownAccount) id(ctx context.Context) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.known != "" {
		return o.known, nil
	}
	id, err := awsclient.Identity(ctx, o.cfg)
	if err != nil {
		return "", err
	}
	o.known = id
	return id, nil
}

// Back-off of the reads of the own account id at start (several pairs).
const (
	identityRetryInitial = time.Second
	identityRetryMax     = 30 * time.Second
)

// wait returns the account id, reading it until it can be (once: one read), or ctx ends.
func (o *ownAccount) wait(ctx context.Context, once bool, logger *slog.Logger) (string, error) {
	delay := identityRetryInitial
	for {
		id, err := o.id(ctx)
		switch {
		case err == nil:
			return id, nil
		case once || ctx.Err() != nil:
			return "", fmt.Errorf("read ecs-sd's own account id: %w", err)
		}
		logger.Error("Cannot read ecs-sd's own account id; discovery starts once it can", "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("read ecs-sd's own account id: %w", ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, identityRetryMax)
	}
}

// refreshMetrics returns the loop's metrics: labelled by account and region with several pairs.
func (a accounts) refreshMetrics(reg prometheus.Registerer) *refresh.Metrics {
	if a.several {
		return refresh.NewPairMetrics(reg)
	}
	return refresh.NewMetrics(reg)
}

// eventPairs returns the pairs whose events are applied: every pair's with several, nil (any
// event) with one.
func (a accounts) eventPairs() []refresh.Pair {
	if !a.several {
		return nil
	}
	out := make([]refresh.Pair, len(a.pairs))
	for i, p := range a.pairs {
		out[i] = p.Pair
	}
	return out
}

// namespacesOf returns the Cloud Map namespace list of a pair: the configured one, or else the
// pair's own SSM parameter, read every cycle. With several pairs, a pair without the parameter
// has no namespaces (a member account that does not use Cloud Map): that is logged once, when
// the parameter goes missing, and is no failure. With one pair a missing parameter fails the
// discovery, as it always has.
func namespacesOf(cfg config.CloudMap, p pair, several bool) func(context.Context) ([]string, error) {
	if len(cfg.Namespaces) > 0 {
		static := cfg.Namespaces
		return func(context.Context) ([]string, error) { return static, nil }
	}
	read := ssmparam.List(awsclient.SSM(p.aws), cfg.NamespacesParameter)
	if !several {
		return read
	}
	var missing atomic.Bool
	return func(ctx context.Context) ([]string, error) {
		list, err := read(ctx)
		switch {
		case errors.Is(err, ssmparam.ErrNotFound):
			if !missing.Swap(true) {
				p.logger.Warn("No Cloud Map namespaces parameter in this account and region: no Cloud Map namespaces discovered there", "parameter", cfg.NamespacesParameter)
			}
			return nil, nil
		case err == nil && missing.Swap(false):
			p.logger.Info("Cloud Map namespaces parameter found", "parameter", cfg.NamespacesParameter, "namespaces", len(list))
		}
		return list, err
	}
}
