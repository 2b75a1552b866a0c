package refs

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ckptdev/ckpt/retention"
)

// ErrNoCheckpoint is returned when NAME@REF resolves to nothing.
var ErrNoCheckpoint = errors.New("no such checkpoint")

// ErrNoMetric is returned (with ErrNoCheckpoint) when NAME@best resolves to
// nothing because no version of NAME has the metric recorded.
var ErrNoMetric = errors.New("no version has the metric recorded")

// Catalog is every record and tag of a registry, grouped by NAME.
type Catalog struct {
	Records map[string][]Record          // sorted by version
	Tags    map[string]map[string]string // NAME -> TAG -> VERSION
	// Policies holds the stored retention policies (when they were read).
	Policies map[string]retention.Policy
	// Rule is the reader's explicit choice of what NAME@best ranks by
	// (BestBy); the zero rule leaves it to each NAME's stored policy, else
	// eval_loss.
	Rule BestRule
	// Problems lists the refs that could not be read or verified, sorted by
	// key (when the reader kept going past them); such refs are in no
	// other field.
	Problems []Problem
}

// Problem is a ref that could not be read or verified.
type Problem struct {
	Key string // the ref's object key
	Err error
}

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog {
	return &Catalog{Records: map[string][]Record{}, Tags: map[string]map[string]string{}, Policies: map[string]retention.Policy{}}
}

// Item is one decoded ref: exactly one field is set, or none for a
// setting this version of ckpt does not know (only its checksum was
// checked).
type Item struct {
	Record *Record
	Tag    *TagRecord
	Policy *retention.Policy
}

// DecodeItem verifies and decodes the ref object stored under key, of any
// kind.
func DecodeItem(key string, data []byte) (Item, error) {
	_, kind, last, _ := ParseKey(key)
	switch kind {
	case KindVersion:
		rec, err := DecodeRecord(key, data)
		return Item{Record: &rec}, err
	case KindTag:
		t, err := DecodeTag(key, data)
		return Item{Tag: &t}, err
	case KindPolicy:
		if last == PolicyRetention {
			p, err := DecodePolicy(key, data)
			return Item{Policy: &p}, err
		}
		// A setting of a later ckpt: only its checksum can be checked.
		var v json.RawMessage
		_, err := Decode(key, data, &v)
		return Item{}, err
	}
	return Item{}, fmt.Errorf("%s: not a ref", key)
}

// Add files the item read from key.
func (c *Catalog) Add(key string, it Item) {
	n, _, last, _ := ParseKey(key)
	switch {
	case it.Record != nil:
		c.Records[n] = append(c.Records[n], *it.Record)
	case it.Tag != nil:
		if c.Tags[n] == nil {
			c.Tags[n] = map[string]string{}
		}
		c.Tags[n][last] = it.Tag.Version
	case it.Policy != nil:
		c.Policies[n] = *it.Policy
	}
}

// Sort orders every NAME's records by version and the problems by key.
func (c *Catalog) Sort() {
	for _, rs := range c.Records {
		SortRecords(rs)
	}
	sort.Slice(c.Problems, func(i, j int) bool { return c.Problems[i].Key < c.Problems[j].Key })
}

// Err is the error for a catalog with problems: the first one, and how
// many more there are; nil when it has none.
func (c *Catalog) Err() error {
	switch len(c.Problems) {
	case 0:
		return nil
	case 1:
		return c.Problems[0].Err
	}
	return fmt.Errorf("%w (and %d more unreadable refs)", c.Problems[0].Err, len(c.Problems)-1)
}

// ProblemAt returns the problem recorded for key, if any.
func (c *Catalog) ProblemAt(key string) *Problem {
	for i := range c.Problems {
		if c.Problems[i].Key == key {
			return &c.Problems[i]
		}
	}
	return nil
}

// Names of the catalog, sorted.
func (c *Catalog) Names() []string {
	names := make([]string, 0, len(c.Records))
	for n := range c.Records {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TagsOf returns the tags pointing at NAME@VERSION, sorted.
func (c *Catalog) TagsOf(name, version string) []string {
	var tags []string
	for t, v := range c.Tags[name] {
		if v == version {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	return tags
}

// Record returns NAME@VERSION's record, if the catalog has it.
func (c *Catalog) Record(name, version string) (Record, bool) {
	for _, rec := range c.Records[name] {
		if rec.Version == version {
			return rec, true
		}
	}
	return Record{}, false
}

// NoSuchName is the error for a NAME with no versions, suggesting a close
// one of names. It matches ErrNoCheckpoint.
func NoSuchName(name string, names []string) error {
	msg := fmt.Sprintf("%v: no checkpoint named %s", ErrNoCheckpoint, name)
	if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return &notFoundError{msg: msg}
}

// notFoundError carries a helpful message and still matches
// ErrNoCheckpoint (and also ErrNoMetric).
type notFoundError struct {
	msg      string
	noMetric bool
}

func (e *notFoundError) Error() string { return e.msg }
func (e *notFoundError) Is(target error) bool {
	return target == ErrNoCheckpoint || e.noMetric && target == ErrNoMetric
}

// Resolve resolves NAME@REF against the catalog, with a helpful error. REF
// is a version, a tag, "latest" (the highest version) or "best" (the best
// version by what c.BestBy(NAME) says).
func (c *Catalog) Resolve(name, ref string) (Record, error) {
	recs := c.Records[name]
	if len(recs) == 0 {
		return Record{}, NoSuchName(name, c.Names())
	}
	switch ref {
	case Latest:
		return recs[len(recs)-1], nil
	case Best:
		return c.resolveBest(name)
	}
	if rec, ok := c.Record(name, ref); ok {
		return rec, nil
	}
	if v, ok := c.Tags[name][ref]; ok {
		if rec, ok := c.Record(name, v); ok {
			return rec, nil
		}
	}
	versions := make([]string, len(recs))
	for i, rec := range recs {
		versions[i] = rec.Version
	}
	msg := fmt.Sprintf("%v: no checkpoint %s@%s; versions: %s", ErrNoCheckpoint, name, ref, strings.Join(versions, ", "))
	if tags := c.Tags[name]; len(tags) > 0 {
		var ts []string
		for t := range tags {
			ts = append(ts, t)
		}
		sort.Strings(ts)
		msg += "; tags: " + strings.Join(ts, ", ")
	}
	return Record{}, &notFoundError{msg: msg}
}

// BestRecord returns the best record by metric ("" = eval_loss), in the
// direction Trainer uses for it.
func BestRecord(recs []Record, metric string) (Record, bool) {
	metric = retention.NormalizeMetric(metric)
	return BestRecordBy(recs, BestBy{Metric: metric, GreaterIsBetter: retention.GreaterIsBetter(metric)})
}

// Checkpoints converts records to retention's input, with their tags.
func Checkpoints(recs []Record, tags map[string]string) []retention.Checkpoint {
	cps := make([]retention.Checkpoint, len(recs))
	for i, rec := range recs {
		cps[i] = retention.Checkpoint{Version: rec.Version, Step: rec.Step, Pushed: rec.Pushed, Metrics: rec.Metrics}
		for t, v := range tags {
			if v == rec.Version {
				cps[i].Tags = append(cps[i].Tags, t)
			}
		}
		sort.Strings(cps[i].Tags)
	}
	return cps
}

// suggest returns the candidate closest to s by edit distance, if close.
func suggest(s string, candidates []string) string {
	best, bestD := "", len(s)/2+2
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
