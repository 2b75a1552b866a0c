package watch

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ckptdev/ckpt/store/object"
	"github.com/ckptdev/ckpt/store/refs"
)

// State is the per-machine key-value store the watcher keeps its progress in.
// *store.Index implements it (its state/ buckets); nil means memory only.
type State interface {
	GetState(bucket, key string) ([]byte, bool)
	PutState(bucket, key string, value []byte) error
	StateKeys(bucket string) []string
}

// Entry is what the watcher records about one pushed checkpoint, under the
// key StepKey(step) of its bucket (StateBucket).
type Entry struct {
	Version  string        `json:"version"`
	Manifest object.ID     `json:"manifest"`
	Base     *refs.BaseRef `json:"base,omitempty"` // kept so a later Verify checks the same data
	Pushed   time.Time     `json:"pushed"`
	Verified bool          `json:"verified,omitempty"` // every blob of the record was found in the registry
	Deleted  bool          `json:"deleted,omitempty"`  // the local folder was removed by --delete-local
	// Listing is the digest of the folder's listing (every entry with its
	// size, modification time, and for files change time and inode) when
	// its content was last found to be Manifest: a folder whose listing
	// still matches is the pushed checkpoint; any other is looked at again.
	// "" (entries of older versions) means unknown.
	Listing string `json:"listing,omitempty"`
}

// record is the registry record the entry stands for, enough for Verify.
func (e Entry) record(name string) refs.Record {
	return refs.Record{Name: name, Version: e.Version, Manifest: e.Manifest, Base: e.Base}
}

// StateBucket names the state bucket of one watch: one registry, one
// absolute output folder, one NAME.
func StateBucket(registryID, absDir, name string) string {
	return "watch/" + registryID + "/" + absDir + "/" + name
}

// StepKey is the state key of a step: zero-padded, so byte order is step order.
func StepKey(step int64) string { return fmt.Sprintf("%020d", step) }

// loadEntries reads every entry of the bucket; unreadable ones are returned
// as problems and otherwise ignored (their checkpoints will be pushed again,
// which is a cheap no-op for identical content).
func loadEntries(st State, bucket string) (map[int64]Entry, []error) {
	entries := map[int64]Entry{}
	var problems []error
	for _, k := range st.StateKeys(bucket) {
		step, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			problems = append(problems, fmt.Errorf("watch state %s: key %q is not a step", bucket, k))
			continue
		}
		data, ok := st.GetState(bucket, k)
		if !ok {
			continue
		}
		var e Entry
		if err := json.Unmarshal(data, &e); err != nil || e.Version == "" || e.Manifest.IsZero() {
			problems = append(problems, fmt.Errorf("watch state %s: step %d: unreadable entry %q", bucket, step, data))
			continue
		}
		entries[step] = e
	}
	return entries, problems
}

// memState is the State used without a per-machine index (--no-cache): the
// progress lives as long as the process.
type memState struct {
	mu sync.Mutex
	m  map[string]map[string][]byte
}

func newMemState() *memState { return &memState{m: map[string]map[string][]byte{}} }

func (s *memState) GetState(bucket, key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[bucket][key]
	return append([]byte(nil), v...), ok
}

func (s *memState) PutState(bucket, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[bucket] == nil {
		s.m[bucket] = map[string][]byte{}
	}
	s.m[bucket][key] = append([]byte(nil), value...)
	return nil
}

func (s *memState) StateKeys(bucket string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.m[bucket]))
	for k := range s.m[bucket] {
		keys = append(keys, k)
	}
	return keys
}
