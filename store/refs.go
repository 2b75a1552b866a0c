package store

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ckptdev/ckpt/retention"
)

// Refs live under "refs/<NAME>/<kind>/<key>"; NAME may itself contain
// slashes, so a ref key is parsed from its end.
const (
	refKindVersion = "v" // refs/<NAME>/v/<VERSION>: a Record
	refKindTag     = "t" // refs/<NAME>/t/<TAG>: a TagRecord
	refKindPolicy  = "p" // refs/<NAME>/p/<KEY>: per-name settings (retention policy)
)

// Reserved refs that resolve dynamically and can never be a version or tag.
const (
	RefLatest = "latest"
	RefBest   = "best"
)

// ErrInvalidName marks a NAME, VERSION, TAG or REF that breaks the naming rules.
var ErrInvalidName = errors.New("invalid name")

// CheckName validates a checkpoint NAME: segments of letters, digits, '.',
// '_' and '-', separated by single slashes (like org/run); no segment is
// empty, "." or "..", or starts with '.'.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty NAME", ErrInvalidName)
	}
	if len(name) > 200 {
		return fmt.Errorf("%w: NAME %q is longer than 200 characters", ErrInvalidName, name)
	}
	for _, seg := range strings.Split(name, "/") {
		if err := checkSegment(seg); err != nil {
			return fmt.Errorf("%w: NAME %q: %v", ErrInvalidName, name, err)
		}
	}
	return nil
}

// CheckVersion validates a VERSION or TAG: one segment, not a reserved ref.
func CheckVersion(kind, v string) error {
	if err := checkSegment(v); err != nil {
		return fmt.Errorf("%w: %s %q: %v", ErrInvalidName, kind, v, err)
	}
	if len(v) > 128 {
		return fmt.Errorf("%w: %s %q is longer than 128 characters", ErrInvalidName, kind, v)
	}
	if v == RefLatest || v == RefBest {
		return fmt.Errorf("%w: %s %q is reserved (it names a computed ref)", ErrInvalidName, kind, v)
	}
	return nil
}

// CheckTag validates a TAG: a VERSION-like word that is not all digits, so
// that a tag never shadows a step number.
func CheckTag(tag string) error {
	if err := CheckVersion("TAG", tag); err != nil {
		return err
	}
	if _, err := strconv.ParseUint(tag, 10, 64); err == nil {
		return fmt.Errorf("%w: TAG %q is all digits and would read as a version", ErrInvalidName, tag)
	}
	return nil
}

func checkSegment(s string) error {
	switch {
	case s == "":
		return errors.New("empty segment")
	case s == "." || s == "..":
		return fmt.Errorf("segment %q not allowed", s)
	case s[0] == '.':
		return fmt.Errorf("segment %q starts with '.'", s)
	}
	for _, c := range s {
		if !isKeyChar(c) {
			return fmt.Errorf("character %q not allowed (use letters, digits, '.', '_', '-')", c)
		}
	}
	return nil
}

// ParseRef splits "NAME@REF". REF may be empty when allowEmpty.
func ParseRef(s string, allowEmpty bool) (name, ref string, err error) {
	name, ref, found := strings.Cut(s, "@")
	if err := CheckName(name); err != nil {
		return "", "", err
	}
	if !found || ref == "" {
		if allowEmpty {
			return name, "", nil
		}
		return "", "", fmt.Errorf("%w: %q needs @REF (a version, a tag, latest or best)", ErrInvalidName, s)
	}
	if ref != RefLatest && ref != RefBest {
		if err := checkSegment(ref); err != nil {
			return "", "", fmt.Errorf("%w: REF %q: %v", ErrInvalidName, ref, err)
		}
	}
	return name, ref, nil
}

func versionKey(name, version string) string {
	return "refs/" + name + "/" + refKindVersion + "/" + version
}
func tagKey(name, tag string) string    { return "refs/" + name + "/" + refKindTag + "/" + tag }
func policyKey(name, key string) string { return "refs/" + name + "/" + refKindPolicy + "/" + key }

// parseRefKey splits a ref object key into NAME, kind and key.
func parseRefKey(key string) (name, kind, last string, ok bool) {
	rest, found := strings.CutPrefix(key, "refs/")
	if !found {
		return "", "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return "", "", "", false
	}
	last = rest[i+1:]
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '/')
	if j <= 0 {
		return "", "", "", false
	}
	return rest[:j], rest[j+1:], last, true
}

// Record is what refs/<NAME>/v/<VERSION> holds: one recorded checkpoint.
type Record struct {
	Name     string             `json:"name"`
	Version  string             `json:"version"`
	Manifest ID                 `json:"manifest"`
	Pushed   time.Time          `json:"pushed"`          // client clock, informational
	Step     int64              `json:"step,omitempty"`  // training step (trainer_state.json global_step, or the numeric version)
	Epoch    *float64           `json:"epoch,omitempty"` // from trainer_state.json
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	Base     *BaseRef           `json:"base,omitempty"`
	Files    int                `json:"files"`
	Logical  int64              `json:"logical_bytes"` // sum of file sizes
	Stored   int64              `json:"stored_bytes"`  // bytes this push newly wrote to the registry
	Source   string             `json:"source,omitempty"`
}

// BaseRef is the model a checkpoint inherits config and tokenizer from. The
// manifest ID is kept so that gc keeps the base's data alive and pull works
// even if the base's own ref is later removed.
type BaseRef struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Manifest ID     `json:"manifest"`
}

func (b *BaseRef) String() string { return b.Name + "@" + b.Version }

// TagRecord is what refs/<NAME>/t/<TAG> holds.
type TagRecord struct {
	Version string    `json:"version"`
	Tagged  time.Time `json:"tagged"`
}

// SortRecords orders records by version, oldest first (retention.CompareVersions).
func SortRecords(rs []Record) {
	sort.Slice(rs, func(i, j int) bool { return retention.CompareVersions(rs[i].Version, rs[j].Version) < 0 })
}
