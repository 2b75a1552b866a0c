package diff

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/layout"
)

// Options tune Compare.
type Options struct {
	// Stats reads the data of Changed tensors on both sides and measures
	// the change (TensorStats).
	Stats bool
	// MaxRead bounds each read of tensor data, per side; 0 means
	// DefaultMaxRead.
	MaxRead int64
}

// Report is the comparison of side A with side B.
type Report struct {
	A string `json:"a"` // side labels
	B string `json:"b"`
	// Files lists every path of either side, sorted.
	Files []FileChange `json:"files"`
	// JSON lists the key changes of JSON files both sides have (see
	// keyDiffed), by file then key.
	JSON []JSONChange `json:"json"`
	// Tokenizer compares the tokenizers.
	Tokenizer *TokenizerDiff `json:"tokenizer"`
	// Adapter compares the PEFT adapter settings; nil when neither side
	// is an adapter.
	Adapter *AdapterDiff `json:"adapter"`
	// Tensors lists every tensor name of either side, in natural order.
	Tensors []TensorChange `json:"tensors"`
	// Stats tells whether tensor statistics were computed.
	Stats bool `json:"stats"`
	// Notes are what was not compared, and why.
	Notes []string `json:"notes,omitempty"`
}

// Compare compares a with b. It reads JSON and tokenizer files that differ,
// and with opts.Stats the data of changed tensors; everything else comes
// from the manifests.
func Compare(ctx context.Context, a, b *Side, opts Options) (*Report, error) {
	rep := &Report{A: a.Label, B: b.Label, Stats: opts.Stats}
	rep.Files = diffFiles(a, b)
	var notes []string
	var err error
	if rep.JSON, notes, err = diffJSONFiles(ctx, a, b, rep.Files); err != nil {
		return nil, err
	}
	rep.Notes = append(rep.Notes, notes...)
	if rep.Adapter, notes, err = diffAdapters(ctx, a, b); err != nil {
		return nil, err
	}
	rep.Notes = append(rep.Notes, notes...)
	rep.JSON = dropReorderedSets(rep.JSON, rep.Adapter)
	if rep.Tokenizer, err = diffTokenizer(ctx, a, b, rep.Files); err != nil {
		return nil, err
	}
	rep.Tensors, notes = diffTensors(a, b)
	rep.Notes = append(rep.Notes, notes...)
	for _, fc := range rep.Files {
		if fc.Role == string(layout.RoleWeights) && fc.Kind != Same && !hasTensorTable(a, fc.Path) && !hasTensorTable(b, fc.Path) {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: no tensor table (not safetensors, or pushed before manifest version 2): compared as a file only", textsafe.Name(fc.Path)))
		}
	}
	if opts.Stats {
		maxRead := opts.MaxRead
		if maxRead <= 0 {
			maxRead = DefaultMaxRead
		}
		if err := computeStats(ctx, a, b, rep.Tensors, maxRead); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// hasTensorTable reports whether the manifest of s records the tensors of
// the file at path.
func hasTensorTable(s *Side, path string) bool {
	f := s.Manifest.File(path)
	return f != nil && (f.Safetensors != nil || f.Tensors != nil)
}

// MarshalJSON encodes the report with its summary line as "summary".
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		*plain
		Summary string `json:"summary"`
	}{(*plain)(r), r.Summary()})
}

// Identical reports whether every file of both sides has the same content.
func (r *Report) Identical() bool {
	for _, fc := range r.Files {
		if fc.Kind != Same {
			return false
		}
	}
	return true
}

// Summary says in one line what changed, in three parts (and a fourth for
// other files when any differs), e.g.
//
//	config: 1 key changed; tokenizer: same; weights: 146 of 148 tensors changed (91% of bytes)
//
// config counts the key changes of config and generation-config files
// ("none" when neither side has one, "none in A" when only B has). tokenizer
// is "same", "none", "none in A", or what changed: tokens, special tokens,
// merges, keys of its JSON files. weights counts the tensors that differ in
// any way among all tensor names of both sides, with the share of bytes
// they make up (of B's tensor bytes plus those of tensors only in A), and
// the added, removed, dtype- and shape-changed ones; "same (N tensors)"
// when none differs. When either side is a PEFT adapter, an adapter part
// follows weights: its settings that changed ("r 8 -> 16, target_modules
// [q_proj, v_proj] -> [k_proj, q_proj, v_proj]"), or "same (LORA r=16
// ...)".
func (r *Report) Summary() string {
	parts := []string{"config: " + r.configSummary(), "tokenizer: " + r.tokenizerSummary(), "weights: " + r.weightsSummary()}
	if r.Adapter != nil {
		parts = append(parts, "adapter: "+r.Adapter.summary())
	}
	if s := r.otherSummary(); s != "" {
		parts = append(parts, "other files: "+s)
	}
	return strings.Join(parts, "; ")
}

func (r *Report) roleFiles(roles ...layout.Role) (inA, inB int, byKind map[Kind]int) {
	byKind = map[Kind]int{}
	for _, fc := range r.Files {
		for _, role := range roles {
			if fc.Role != string(role) {
				continue
			}
			if fc.Kind != Added {
				inA++
			}
			if fc.Kind != Removed {
				inB++
			}
			byKind[fc.Kind]++
		}
	}
	return inA, inB, byKind
}

// jsonCounts counts the key changes of files of the given roles, by kind.
func (r *Report) jsonCounts(roles ...layout.Role) map[Kind]int {
	role := map[string]string{}
	for _, fc := range r.Files {
		role[fc.Path] = fc.Role
	}
	counts := map[Kind]int{}
	for _, c := range r.JSON {
		for _, want := range roles {
			if role[c.File] == string(want) {
				counts[c.Kind]++
			}
		}
	}
	return counts
}

func (r *Report) configSummary() string {
	roles := []layout.Role{layout.RoleConfig, layout.RoleGenerationConfig}
	inA, inB, files := r.roleFiles(roles...)
	switch {
	case inA == 0 && inB == 0:
		return "none"
	case inA == 0:
		return "none in A"
	case inB == 0:
		return "none in B"
	}
	keys := r.jsonCounts(roles...)
	parts := countParts("key", "keys", keys[Changed], keys[Added], keys[Removed])
	if n := files[Added]; n > 0 {
		parts = append(parts, plural(n, "file", "files")+" added")
	}
	if n := files[Removed]; n > 0 {
		parts = append(parts, plural(n, "file", "files")+" removed")
	}
	if len(parts) == 0 {
		if files[Changed] > 0 {
			return "same values (files differ)"
		}
		return "same"
	}
	return strings.Join(parts, ", ")
}

func (r *Report) tokenizerSummary() string {
	t := r.Tokenizer
	switch {
	case t == nil || !t.InA && !t.InB:
		return "none"
	case !t.InA:
		return "none in A"
	case !t.InB:
		return "none in B"
	}
	var parts []string
	tokens := countParts("token", "tokens", 0, len(t.Added), len(t.Removed))
	if n := len(t.Renumbered); n > 0 {
		tokens = append(tokens, fmt.Sprintf("%d renumbered", n))
	}
	parts = append(parts, tokens...)
	if n := len(t.SpecialRoles) + len(t.SpecialAdded) + len(t.SpecialRemoved); n > 0 {
		parts = append(parts, plural(n, "special token", "special tokens")+" changed")
	}
	if m := t.Merges; m != nil && (m.Added > 0 || m.Removed > 0 || m.Reordered) {
		s := fmt.Sprintf("merges +%d -%d", m.Added, m.Removed)
		if m.Reordered {
			s += " (reordered)"
		}
		parts = append(parts, s)
	}
	keys := r.jsonCounts(layout.RoleTokenizer)
	if n := keys[Changed] + keys[Added] + keys[Removed]; n > 0 {
		parts = append(parts, plural(n, "key", "keys")+" changed")
	}
	if len(parts) == 0 {
		if !t.Same {
			return "changed" // a difference the counts above do not show
		}
		var differ []string
		for _, fc := range r.Files {
			if fc.Role == string(layout.RoleTokenizer) && fc.Kind != Same {
				differ = append(differ, textsafe.Name(fc.Path))
			}
		}
		switch {
		case len(differ) == 0:
			return "same"
		case len(differ) == 1:
			return "same tokens (" + differ[0] + " differs)"
		case len(differ) == 2:
			return "same tokens (" + strings.Join(differ, " and ") + " differ)"
		}
		return fmt.Sprintf("same tokens (%d files differ)", len(differ))
	}
	return strings.Join(parts, ", ")
}

func (r *Report) weightsSummary() string {
	if len(r.Tensors) == 0 {
		_, _, files := r.roleFiles(layout.RoleWeights)
		total := files[Same] + files[Changed] + files[Added] + files[Removed]
		switch {
		case total == 0:
			return "none"
		case total == files[Same]:
			return fmt.Sprintf("same (%s, no tensor information)", plural(total, "file", "files"))
		}
		return fmt.Sprintf("%d of %s changed (no tensor information)", total-files[Same], plural(total, "file", "files"))
	}
	var differ int
	var differBytes, totalBytes int64
	byKind := map[Kind]int{}
	for _, t := range r.Tensors {
		size := t.BytesB
		if t.Kind == Removed {
			size = t.BytesA
		}
		totalBytes += size
		byKind[t.Kind]++
		if t.Kind != Same {
			differ++
			differBytes += size
		}
	}
	if differ == 0 {
		return fmt.Sprintf("same (%s)", plural(len(r.Tensors), "tensor", "tensors"))
	}
	s := fmt.Sprintf("%d of %d tensors changed (%s of bytes)", differ, len(r.Tensors), percent(differBytes, totalBytes))
	var detail []string
	for _, k := range []struct {
		kind Kind
		word string
	}{{Added, "added"}, {Removed, "removed"}, {DtypeChanged, "dtype changed"}, {ShapeChanged, "shape changed"}} {
		if n := byKind[k.kind]; n > 0 {
			detail = append(detail, fmt.Sprintf("%d %s", n, k.word))
		}
	}
	if len(detail) > 0 {
		s += ": " + strings.Join(detail, ", ")
	}
	return s
}

// otherSummary counts differing files of the other roles (resume state,
// trainer state, shard indexes, ...); "" when none differs.
func (r *Report) otherSummary() string {
	counted := map[string]bool{
		string(layout.RoleConfig): true, string(layout.RoleGenerationConfig): true,
		string(layout.RoleTokenizer): true, string(layout.RoleWeights): true,
	}
	byKind := map[Kind]int{}
	for _, fc := range r.Files {
		if !counted[fc.Role] {
			byKind[fc.Kind]++
		}
	}
	return strings.Join(countParts("", "", byKind[Changed], byKind[Added], byKind[Removed]), ", ")
}

// countParts renders counts as "2 keys changed", "1 added", "3 removed",
// leaving out zeros; the first part carries the noun.
func countParts(one, many string, changed, added, removed int) []string {
	var parts []string
	for _, c := range []struct {
		n    int
		verb string
	}{{changed, "changed"}, {added, "added"}, {removed, "removed"}} {
		if c.n == 0 {
			continue
		}
		if len(parts) == 0 && one != "" {
			parts = append(parts, plural(c.n, one, many)+" "+c.verb)
		} else {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.verb))
		}
	}
	return parts
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// percent renders part/total as a whole percentage, never rounding a
// non-zero share to 0% or a partial one to 100%.
func percent(part, total int64) string {
	if total <= 0 {
		return "0%"
	}
	p := float64(part) * 100 / float64(total)
	switch {
	case part > 0 && p < 1:
		return "<1%"
	case part < total && p > 99:
		return ">99%"
	}
	return fmt.Sprintf("%.0f%%", p)
}
