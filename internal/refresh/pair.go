package refresh

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// Pair is the AWS account and region a source discovers in. ecs-sd runs every enabled source
// once per pair it is configured for; the loop tells the sources of one kind apart by their pair.
type Pair struct {
	Account string // 12-digit account id
	Region  string
}

// String names the pair as readiness and logs show it: "111111111111/eu-west-1", or the region
// alone while the account is not known.
func (p Pair) String() string {
	if p.Account == "" {
		return p.Region
	}
	return p.Account + "/" + p.Region
}

// Attrs returns the pair as log attributes, those that are known.
func (p Pair) Attrs() []any {
	var attrs []any
	if p.Account != "" {
		attrs = append(attrs, "account", p.Account)
	}
	if p.Region != "" {
		attrs = append(attrs, "region", p.Region)
	}
	return attrs
}

// Logger returns logger with the pair's attributes.
func (p Pair) Logger(logger *slog.Logger) *slog.Logger {
	if p == (Pair{}) {
		return logger
	}
	return logger.With(p.Attrs()...)
}

// Paired is a Source that discovers in one (account, region) pair. Sources that are not Paired
// have the zero Pair. A source's Pair must never change: the loop keys the source by its name
// and pair.
type Paired interface {
	Pair() Pair
}

// Located is a Paired source that can tell its pair as known now: with the account id read by
// its first discovery (Place.Pair), where Pair gives the pair as configured. The status shows it.
type Located interface {
	Paired
	Location() Pair
}

// locationOf returns the pair of s as known now (Located), else as configured (Paired).
func locationOf(s Source) Pair {
	if l, ok := s.(Located); ok {
		return l.Location()
	}
	return pairOf(s)
}

// pairOf returns the pair of s, the zero Pair when it has none.
func pairOf(s Source) Pair {
	if p, ok := s.(Paired); ok {
		return p.Pair()
	}
	return Pair{}
}

// sourceKey identifies a source in the loop: its name and its pair.
type sourceKey struct {
	name string
	pair Pair
}

func keyOf(s Source) sourceKey { return sourceKey{s.Name(), pairOf(s)} }

// String names the source as readiness shows it: "cloudmap" or "cloudmap in 111111111111/eu-west-1".
func (k sourceKey) String() string {
	if k.pair == (Pair{}) {
		return k.name
	}
	return k.name + " in " + k.pair.String()
}

// Place is where a source discovers: its pair, whose account id may be read only when first
// needed (ecs-sd's own account, whose id STS tells). A source holds one and resolves it at the
// start of each discovery: while the account cannot be read, the discovery fails as a whole,
// and the source keeps its last targets, as for any AWS call that fails.
type Place struct {
	resolving sync.Mutex // one read of the account at a time
	mu        sync.Mutex // guards pair and account; never held during a read
	pair      Pair
	account   func(context.Context) (string, error) // nil once the account is known
}

// NewPlace returns the place of pair; account, when not nil, reads pair's account id, which is
// empty until it has.
func NewPlace(pair Pair, account func(context.Context) (string, error)) *Place {
	if pair.Account != "" {
		account = nil
	}
	return &Place{pair: pair, account: account}
}

// Pair returns the pair as known now: an account not read yet is empty. It never waits for a
// read of the account.
func (p *Place) Pair() Pair {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pair
}

// Resolve reads the account id if it is not known yet, and returns the pair.
func (p *Place) Resolve(ctx context.Context) (Pair, error) {
	p.resolving.Lock()
	defer p.resolving.Unlock()
	p.mu.Lock()
	pair, read := p.pair, p.account
	p.mu.Unlock()
	if read == nil {
		return pair, nil
	}
	id, err := read(ctx)
	if err != nil {
		return pair, fmt.Errorf("read the account id: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pair.Account, p.account = id, nil
	return p.pair, nil
}
