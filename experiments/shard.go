package experiments

import (
	"fmt"
	"strconv"
	"strings"
)

// Shard is one deterministic slice i of n of an experiment's jobs.
type Shard struct{ Index, Count int }

// All is the whole experiment as one shard.
var All = Shard{Index: 0, Count: 1}

// ParseShard reads "i/n" with 0 <= i < n.
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return All, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("--shard %q: want i/n with 0 <= i < n, e.g. 0/4", s)
	}
	return Shard{Index: i, Count: n}, nil
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Select returns the jobs of this shard: every Count-th job from Index, so
// that shards stay balanced when jobs are listed by configuration then seed.
func (s Shard) Select(jobs []Job) []Job {
	var out []Job
	for i, j := range jobs {
		if i%s.Count == s.Index {
			out = append(out, j)
		}
	}
	return out
}
