// Package refs is what a ckpt registry says about its checkpoints
// (docs/format.md, section 5): version records, tags and per-NAME
// settings, their keys and naming rules, the ref checksum that every
// reader verifies, and the catalog of a registry's refs with its pure
// resolution of NAME@REF (versions, tags, latest, best, version order).
// It does no I/O: the engine (package store) reads and writes refs.
package refs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store/backend"
	"github.com/ckptdev/ckpt/store/object"
)

// Refs live under "refs/<NAME>/<kind>/<key>"; NAME may itself contain
// slashes, so a ref key is parsed from its end (ParseKey).
const (
	KindVersion = "v" // refs/<NAME>/v/<VERSION>: a Record
	KindTag     = "t" // refs/<NAME>/t/<TAG>: a TagRecord
	KindPolicy  = "p" // refs/<NAME>/p/<KEY>: per-name settings (retention policy)
)

// Reserved refs that resolve dynamically and can never be a version or tag.
const (
	Latest = "latest"
	Best   = "best"
)

// ErrInvalidName marks a NAME, VERSION, TAG or REF that breaks the naming rules.
var ErrInvalidName = errors.New("invalid name")

// CheckName validates a NAME to record checkpoints under: the rules of
// CheckStoredName, and no segment after the first may be "v", "t" or "p"
// (in either case), the ref-kind folders. Otherwise the refs of x/v/1 would live
// under refs/x/v/1/, the key of x@1: on a local registry one key would have
// to be a file and a folder at once.
func CheckName(name string) error {
	if err := CheckStoredName(name); err != nil {
		return err
	}
	segs := strings.Split(name, "/")
	for i := 1; i < len(segs); i++ {
		if isRefKind(segs[i]) {
			owner := strings.Join(segs[:i], "/")
			return fmt.Errorf("%w: NAME %q: segment %q is reserved after the first (refs/%s/%s/ holds the %s of %s, so the refs of %s would collide with them)",
				ErrInvalidName, name, segs[i], owner, strings.ToLower(segs[i]), refKindWords[strings.ToLower(segs[i])], owner, name)
		}
	}
	return nil
}

// CheckStoredName validates a NAME that may already be in a registry:
// segments of letters, digits, '.', '_' and '-', separated by single slashes
// (like org/run); no segment is empty, "." or "..", or starts with '.'; at
// most 200 characters. Registries written before CheckName reserved the
// ref-kind segments may hold such names; they stay readable and removable.
func CheckStoredName(name string) error {
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

var refKindWords = map[string]string{KindVersion: "versions", KindTag: "tags", KindPolicy: "settings"}

// isRefKind reports whether seg is a ref-kind folder name, in either case
// (a case-insensitive file system folds V into v).
func isRefKind(seg string) bool {
	seg = strings.ToLower(seg)
	return seg == KindVersion || seg == KindTag || seg == KindPolicy
}

// CheckVersion validates a VERSION or TAG: one segment, not a reserved ref.
func CheckVersion(kind, v string) error {
	if err := checkSegment(v); err != nil {
		return fmt.Errorf("%w: %s %q: %v", ErrInvalidName, kind, v, err)
	}
	if len(v) > 128 {
		return fmt.Errorf("%w: %s %q is longer than 128 characters", ErrInvalidName, kind, v)
	}
	if v == Latest || v == Best {
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
		if !backend.IsKeyChar(c) {
			return fmt.Errorf("character %q not allowed (use letters, digits, '.', '_', '-')", c)
		}
	}
	return nil
}

// Parse splits "NAME@REF". REF may be empty when allowEmpty. NAME is
// checked as a stored name (CheckStoredName): recording under it needs
// CheckName too.
func Parse(s string, allowEmpty bool) (name, ref string, err error) {
	name, ref, found := strings.Cut(s, "@")
	if err := CheckStoredName(name); err != nil {
		return "", "", err
	}
	if !found || ref == "" {
		if allowEmpty {
			return name, "", nil
		}
		return "", "", fmt.Errorf("%w: %q needs @REF (a version, a tag, latest or best)", ErrInvalidName, s)
	}
	if ref != Latest && ref != Best {
		if err := checkSegment(ref); err != nil {
			return "", "", fmt.Errorf("%w: REF %q: %v", ErrInvalidName, ref, err)
		}
	}
	return name, ref, nil
}

// VersionKey is the object key of NAME@VERSION's record.
func VersionKey(name, version string) string {
	return "refs/" + name + "/" + KindVersion + "/" + version
}

// TagKey is the object key of NAME's TAG.
func TagKey(name, tag string) string { return "refs/" + name + "/" + KindTag + "/" + tag }

// PolicyKey is the object key of NAME's setting key (PolicyRetention).
func PolicyKey(name, key string) string { return "refs/" + name + "/" + KindPolicy + "/" + key }

// ParseKey splits a ref object key into NAME, kind and key.
func ParseKey(key string) (name, kind, last string, ok bool) {
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
	Manifest object.ID          `json:"manifest"`
	Pushed   time.Time          `json:"pushed"`          // client clock, informational
	Step     int64              `json:"step,omitempty"`  // training step (trainer_state.json global_step, or the numeric version)
	Epoch    *float64           `json:"epoch,omitempty"` // from trainer_state.json
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	Base     *BaseRef           `json:"base,omitempty"`
	Files    int                `json:"files"`
	Logical  int64              `json:"logical_bytes"` // sum of file sizes
	Stored   int64              `json:"stored_bytes"`  // bytes this push newly wrote to the registry
	Source   string             `json:"source,omitempty"`
	// TrainerBest is what trainer_state.json said about Trainer's best
	// checkpoint when this one was saved; nil when it said nothing.
	TrainerBest *TrainerBest `json:"trainer_best,omitempty"`
	// HF is the Hugging Face Hub repository and commit the checkpoint was
	// imported from, nil for one pushed from a folder. Old records have
	// none, and a record without one is written without the member.
	HF *HFOrigin `json:"hf,omitempty"`
}

// HFOrigin says which Hugging Face Hub repository, at which commit, a
// checkpoint is a copy of (a snapshot of the Hugging Face cache pushed by
// import): so that the checkpoint can be put back into a Hugging Face cache
// under that id and commit, where Hub clients find it. Like every member of
// a record, it is covered by the ref checksum. Readers treat it as outside
// input: it is checked where it is used (a repository id and a 40-hex-digit
// commit), never trusted to name a path as it is.
type HFOrigin struct {
	// Repo is the model's id on the Hub: "ORG/NAME", or "NAME".
	Repo string `json:"repo"`
	// Revision is the commit: 40 lowercase hex digits.
	Revision string `json:"revision"`
}

func (o *HFOrigin) String() string { return o.Repo + "@" + o.Revision }

// BaseRef is the model a checkpoint inherits config and tokenizer from. The
// manifest ID is kept so that gc keeps the base's data alive and pull works
// even if the base's own ref is later removed.
type BaseRef struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	Manifest object.ID `json:"manifest"`
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

// ErrCorrupt marks a ref object (version, tag or policy) whose content
// cannot be trusted: it is not one JSON object, its checksum does not match,
// or it says something its key contradicts. Errors wrap it with the key.
var ErrCorrupt = errors.New("corrupt ref")

// Ref checksums (docs/format.md, section 5): a ref is a JSON object with a
// member "checksum": "sha256:<64 hex>", the SHA-256 of the object's
// canonical form. Refs written before checksums existed have no such member
// and are read as they are (legacy).
const (
	refChecksumMember = "checksum"
	refChecksumPrefix = "sha256:"
	// MaxSize bounds what a reader holds of one ref object.
	MaxSize = 1 << 20
)

// refMember is one top-level member of a ref object, as written.
type refMember struct {
	name  string          // the name; it is written without escapes
	value json.RawMessage // the value's text, as written
}

// parseRefObject splits data, which must be one JSON object and nothing
// else, into its top-level members, in the order written. Member names must
// be written without escapes and be unique, so that every reader agrees on
// what the canonical form is.
func parseRefObject(data []byte) ([]refMember, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var members []refMember
	seen := map[string]bool{}
	for dec.More() {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not JSON: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("not JSON: member name expected")
		}
		// The name's text runs from the first quote after the previous
		// token (only ',' and white space lie between) to the offset now.
		end := dec.InputOffset()
		start := before + int64(bytes.IndexByte(data[before:end], '"'))
		if raw := data[start:end]; len(raw) != len(name)+2 || string(raw[1:len(raw)-1]) != name {
			return nil, fmt.Errorf("member name %s is written with escapes or is not UTF-8", raw)
		}
		if seen[name] {
			return nil, fmt.Errorf("member %q appears twice", name)
		}
		seen[name] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("not JSON: member %q: %w", name, err)
		}
		members = append(members, refMember{name, value})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not JSON: data after the object")
	}
	return members, nil
}

// canonicalRef is the canonical form of a ref object: its members but
// "checksum", sorted by name (bytewise), each written as the quoted name,
// ':' and the value as written with white space outside strings removed,
// separated by ',' inside braces.
func canonicalRef(members []refMember) ([]byte, error) {
	sorted := make([]refMember, 0, len(members))
	for _, m := range members {
		if m.name != refChecksumMember {
			sorted = append(sorted, m)
		}
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range sorted {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('"')
		buf.WriteString(m.name)
		buf.WriteString(`":`)
		if err := json.Compact(&buf, m.value); err != nil {
			return nil, fmt.Errorf("member %q: %w", m.name, err)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// refChecksum is "sha256:" + the hex SHA-256 of the canonical form.
func refChecksum(members []refMember) (string, error) {
	canon, err := canonicalRef(members)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canon)
	return refChecksumPrefix + hex.EncodeToString(sum[:]), nil
}

// Encode is the stored form of a ref: v as indented JSON with its
// checksum as the last member.
func Encode(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	members, err := parseRefObject(data)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if m.name == refChecksumMember {
			return nil, errors.New("a ref value must not carry its own checksum member")
		}
	}
	sum, err := refChecksum(members)
	if err != nil {
		return nil, err
	}
	body := bytes.TrimRight(data, " \t\r\n")
	body = bytes.TrimRight(body[:len(body)-1], " \t\r\n") // without the closing brace
	sep := ",\n"
	if len(members) == 0 {
		sep = "\n"
	}
	out := make([]byte, 0, len(body)+len(sum)+32)
	out = append(out, body...)
	out = append(out, sep...)
	out = append(out, `  "`+refChecksumMember+`": "`+sum+"\"\n}\n"...)
	return out, nil
}

// verifyRefData checks a ref object's checksum. legacy reports an object
// without one (written before checksums existed). A member whose name
// differs from "checksum" in exactly one byte counts as a damaged checksum,
// so that one flipped bit cannot turn a checked ref into a legacy one.
func verifyRefData(data []byte) (legacy bool, err error) {
	members, err := parseRefObject(data)
	if err != nil {
		return false, err
	}
	var stated *string
	for _, m := range members {
		if m.name == refChecksumMember {
			var s string
			if err := json.Unmarshal(m.value, &s); err != nil {
				return false, fmt.Errorf("checksum is not a string")
			}
			stated = &s
		} else if oneByteOff(m.name, refChecksumMember) {
			return false, fmt.Errorf("member %q looks like a damaged %q", m.name, refChecksumMember)
		}
	}
	if stated == nil {
		return true, nil
	}
	hexSum, ok := strings.CutPrefix(*stated, refChecksumPrefix)
	if !ok {
		return false, fmt.Errorf("checksum %q: unknown algorithm (this ckpt knows %q)", *stated, refChecksumPrefix)
	}
	if len(hexSum) != 2*sha256.Size || strings.ToLower(hexSum) != hexSum {
		return false, fmt.Errorf("checksum %q: want %q and 64 lowercase hex digits", *stated, refChecksumPrefix)
	}
	want, err := refChecksum(members)
	if err != nil {
		return false, err
	}
	if *stated != want {
		return false, fmt.Errorf("checksum mismatch: the ref says %s, its content hashes to %s", *stated, want)
	}
	return false, nil
}

func oneByteOff(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	diff := 0
	for i := range len(a) {
		if a[i] != b[i] {
			diff++
		}
	}
	return diff == 1
}

// Decode verifies a ref object read from key and decodes it into v; legacy
// reports a ref written before checksums existed.
func Decode(key string, data []byte, v any) (legacy bool, err error) {
	if legacy, err = verifyRefData(data); err != nil {
		return false, fmt.Errorf("%s: %w: %v", key, ErrCorrupt, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%s: %w: %v", key, ErrCorrupt, err)
	}
	return legacy, nil
}

// checkRecord refuses a version record that contradicts its key or lacks
// what every reader relies on.
func checkRecord(key string, rec *Record) error {
	name, _, version, _ := ParseKey(key)
	switch {
	case rec.Name != name || rec.Version != version:
		return fmt.Errorf("%s: %w: it records %s@%s, not what its key says", key, ErrCorrupt, rec.Name, rec.Version)
	case rec.Manifest.IsZero():
		return fmt.Errorf("%s: %w: no manifest", key, ErrCorrupt)
	case rec.Base != nil && rec.Base.Manifest.IsZero():
		return fmt.Errorf("%s: %w: base %s has no manifest", key, ErrCorrupt, rec.Base)
	}
	return nil
}

// DecodeRecord verifies and decodes the version record stored under key:
// its checksum, and that it records what its key says and names a
// manifest.
func DecodeRecord(key string, data []byte) (Record, error) {
	var rec Record
	if _, err := Decode(key, data, &rec); err != nil {
		return Record{}, err
	}
	if err := checkRecord(key, &rec); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// DecodeTag verifies and decodes the tag stored under key.
func DecodeTag(key string, data []byte) (TagRecord, error) {
	var t TagRecord
	if _, err := Decode(key, data, &t); err != nil {
		return TagRecord{}, err
	}
	if err := CheckVersion("VERSION", t.Version); err != nil {
		return TagRecord{}, fmt.Errorf("%s: %w: %v", key, ErrCorrupt, err)
	}
	return t, nil
}
