package targets

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/binary"
	"fmt"
)

// HashMod returns the shard of value among n shards as Prometheus's relabel action hashmod with
// modulus n computes it: the MD5 sum of value, its last 8 bytes read as a big-endian unsigned
// integer, modulo n. n must not be 0.
func HashMod(value string, n uint64) uint64 {
	sum := md5.Sum([]byte(value))
	return binary.BigEndian.Uint64(sum[8:]) % n
}

// Shard returns the groups of shard i of n, as a relabel rule hashmod of __address__ with
// modulus n followed by keep of i selects them: each group with only its targets whose address
// falls in shard i, in their order, and with its labels; a group none of whose targets does is
// left out. A group all of whose targets fall in the shard is returned as it is, one that loses
// some is a copy sharing its labels. groups is not modified.
//
// Prometheus takes a target's __address__ from the group's targets list, never from its labels,
// and hashes it before any relabelling: so does Shard.
func Shard(groups []*Group, i, n uint64) []*Group {
	out := []*Group{}
	for _, g := range groups {
		if g == nil {
			continue
		}
		var in []string // of a group that loses some of its targets
		all := true
		for k, t := range g.Targets {
			switch {
			case HashMod(t, n) != i:
				if all {
					in = append(make([]string, 0, len(g.Targets)-1), g.Targets[:k]...)
					all = false
				}
			case !all:
				in = append(in, t)
			}
		}
		switch {
		case all && len(g.Targets) > 0:
			out = append(out, g)
		case len(in) > 0:
			out = append(out, &Group{Targets: in, Labels: g.Labels})
		}
	}
	return out
}

// List returns the groups of the snapshot: Groups, or when the snapshot does not hold them (a
// list held compressed only), the groups read back from Gzip.
func (s Snapshot) List() ([]*Group, error) {
	if s.Groups != nil {
		return s.Groups, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(s.Gzip))
	if err != nil {
		return nil, fmt.Errorf("read compressed target list: %w", err)
	}
	return Read(zr)
}
