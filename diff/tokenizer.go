package diff

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/ckptdev/ckpt/layout"
)

// Token is one vocabulary entry.
type Token struct {
	ID      int    `json:"id"` // -1 when the side's vocabulary does not hold the token
	Content string `json:"content"`
}

// TokenMove is a token both sides have, under different ids.
type TokenMove struct {
	Content string `json:"content"`
	OldID   int    `json:"old_id"`
	NewID   int    `json:"new_id"`
}

// RoleChange is a special token role (bos_token, eos_token, pad_token, ...)
// that was added, removed or given another token.
type RoleChange struct {
	Role string `json:"role"`
	Kind Kind   `json:"kind"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
}

// MergesDiff compares the BPE merge lists of the two sides.
type MergesDiff struct {
	CountA  int `json:"count_a"`
	CountB  int `json:"count_b"`
	Added   int `json:"added"`   // merges only in B
	Removed int `json:"removed"` // merges only in A
	// FirstAdded and FirstRemoved are the first few of those ("a b"), in
	// the order of their side's list.
	FirstAdded   []string `json:"first_added,omitempty"`
	FirstRemoved []string `json:"first_removed,omitempty"`
	// Reordered: the merges both sides have are ranked differently, which
	// changes how BPE tokenizes.
	Reordered bool `json:"reordered"`
}

// firstMerges is how many added and removed merges a MergesDiff lists.
const firstMerges = 10

// TokenizerDiff compares the tokenizers of the two sides.
//
// A side's vocabulary is the union of vocab.txt, vocab.json,
// added_tokens.json, tokenizer_config.json's added_tokens_decoder and
// tokenizer.json's model.vocab and added_tokens (later ones winning on a
// conflicting id). Its merges are tokenizer.json's model.merges, else
// merges.txt. Its special tokens are the tokens named by
// special_tokens_map.json and tokenizer_config.json (roles and
// additional_special_tokens) and the added tokens marked special in
// tokenizer_config.json and tokenizer.json. Only files at the folder's root
// are read; sentencepiece models are compared as files only.
type TokenizerDiff struct {
	InA bool `json:"in_a"` // A has tokenizer files
	InB bool `json:"in_b"`
	// Same: no token, special token or merge differs (every tokenizer file
	// may still not be byte-identical; see the file changes).
	Same bool `json:"same"`
	// VocabA and VocabB are the vocabulary sizes; 0 when the files were
	// identical and not read.
	VocabA         int          `json:"vocab_a,omitempty"`
	VocabB         int          `json:"vocab_b,omitempty"`
	Added          []Token      `json:"added,omitempty"`   // tokens only in B, by id
	Removed        []Token      `json:"removed,omitempty"` // tokens only in A, by id
	Renumbered     []TokenMove  `json:"renumbered,omitempty"`
	SpecialAdded   []Token      `json:"special_added,omitempty"`
	SpecialRemoved []Token      `json:"special_removed,omitempty"`
	SpecialRoles   []RoleChange `json:"special_roles,omitempty"`
	// Merges is nil unless both sides' merges were read.
	Merges *MergesDiff `json:"merges,omitempty"`
	Notes  []string    `json:"notes,omitempty"`
}

// diffTokenizer compares the tokenizers of a and b, reading their files
// only when some tokenizer file differs.
func diffTokenizer(ctx context.Context, a, b *Side, files []FileChange) (*TokenizerDiff, error) {
	d := &TokenizerDiff{
		InA: len(filesOf(a.Manifest, string(layout.RoleTokenizer))) > 0,
		InB: len(filesOf(b.Manifest, string(layout.RoleTokenizer))) > 0,
	}
	if !d.InA || !d.InB {
		d.Same = !d.InA && !d.InB
		return d, nil
	}
	d.Same = true
	for _, fc := range files {
		if fc.Role == string(layout.RoleTokenizer) && fc.Kind != Same {
			d.Same = false
		}
	}
	if d.Same {
		return d, nil
	}
	ta, err := loadTokenizer(ctx, a)
	if err != nil {
		return nil, err
	}
	tb, err := loadTokenizer(ctx, b)
	if err != nil {
		return nil, err
	}
	d.Notes = append(ta.notes, tb.notes...)
	d.VocabA, d.VocabB = len(ta.vocab), len(tb.vocab)
	if ta.vocab != nil && tb.vocab != nil {
		d.Added, d.Removed, d.Renumbered = diffVocab(ta.vocab, tb.vocab)
	} else if ta.vocab != nil || tb.vocab != nil {
		d.Notes = append(d.Notes, "only one side has a vocabulary diff can read: tokens not compared")
	}
	d.SpecialAdded = tokensOnlyIn(tb.special, ta.special)
	d.SpecialRemoved = tokensOnlyIn(ta.special, tb.special)
	d.SpecialRoles = diffRoles(ta.roles, tb.roles)
	if ta.merges != nil && tb.merges != nil {
		d.Merges = diffMerges(ta.merges, tb.merges)
	} else if ta.merges != nil || tb.merges != nil {
		d.Notes = append(d.Notes, "only one side has merges: merges not compared")
	}
	d.Same = len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Renumbered) == 0 &&
		len(d.SpecialAdded) == 0 && len(d.SpecialRemoved) == 0 && len(d.SpecialRoles) == 0 &&
		(d.Merges == nil || d.Merges.Added == 0 && d.Merges.Removed == 0 && !d.Merges.Reordered)
	return d, nil
}

// tokenizerModel is what one side's tokenizer files define.
type tokenizerModel struct {
	vocab   map[string]int // nil when no file defines one
	merges  []merge        // nil when no file defines them
	special map[string]int // special token → id (-1 unknown)
	roles   map[string]string
	notes   []string
}

// loadTokenizer reads and parses the tokenizer files at the root of s. A
// file that does not parse is left out, with a note.
func loadTokenizer(ctx context.Context, s *Side) (*tokenizerModel, error) {
	m := &tokenizerModel{special: map[string]int{}, roles: map[string]string{}}
	read := func(name string) ([]byte, error) {
		f := s.Manifest.File(name)
		if f == nil || f.Role != string(layout.RoleTokenizer) {
			return nil, nil
		}
		data, err := s.readWhole(ctx, f)
		if errors.Is(err, errTooLarge) {
			m.notes = append(m.notes, err.Error())
			return nil, nil
		}
		return data, err
	}
	fail := func(err error) { m.notes = append(m.notes, fmt.Sprintf("%s: %v; left out", s.Label, err)) }
	addVocab := func(v map[string]int) {
		if m.vocab == nil {
			m.vocab = map[string]int{}
		}
		for tok, id := range v {
			m.vocab[tok] = id
		}
	}
	var addedSpecial []addedToken
	addAdded := func(added []addedToken) {
		for _, t := range added {
			addVocab(map[string]int{t.Content: t.ID})
			if t.Special {
				addedSpecial = append(addedSpecial, t)
			}
		}
	}

	data, err := read("vocab.txt")
	if err != nil {
		return nil, err
	}
	if data != nil {
		addVocab(parseVocabTxt(data))
	}
	for _, name := range []string{"vocab.json", "added_tokens.json"} {
		if data, err = read(name); err != nil {
			return nil, err
		}
		if data != nil {
			if v, err := parseVocabJSON(name, data); err != nil {
				fail(err)
			} else {
				addVocab(v)
			}
		}
	}
	var config, tokensMap *specialTokens
	if data, err = read("tokenizer_config.json"); err != nil {
		return nil, err
	}
	if data != nil {
		if config, err = parseTokenizerConfig(data); err != nil {
			fail(err)
		} else {
			addAdded(config.added)
		}
	}
	if data, err = read("tokenizer.json"); err != nil {
		return nil, err
	}
	if data != nil {
		if tj, err := parseTokenizerJSON(data); err != nil {
			fail(err)
		} else {
			if tj.vocab != nil {
				addVocab(tj.vocab)
			}
			addAdded(tj.added)
			m.merges = tj.merges
		}
	}
	if m.merges == nil {
		if data, err = read("merges.txt"); err != nil {
			return nil, err
		}
		if data != nil {
			if m.merges, err = parseMergesTxt(data); err != nil {
				fail(err)
			}
		}
	}
	if data, err = read("special_tokens_map.json"); err != nil {
		return nil, err
	}
	if data != nil {
		if tokensMap, err = parseSpecialTokensMap(data); err != nil {
			fail(err)
		}
	}

	for _, st := range []*specialTokens{config, tokensMap} { // the map wins a role
		if st == nil {
			continue
		}
		for role, tok := range st.roles {
			m.roles[role] = tok
		}
		for _, tok := range st.tokens {
			m.special[tok] = m.idOf(tok)
		}
	}
	for _, t := range addedSpecial {
		m.special[t.Content] = t.ID
	}
	return m, nil
}

func (m *tokenizerModel) idOf(tok string) int {
	if id, ok := m.vocab[tok]; ok {
		return id
	}
	return -1
}

// diffVocab lists tokens only in b, only in a, and in both under different ids.
func diffVocab(a, b map[string]int) (added, removed []Token, moved []TokenMove) {
	added = tokensOnlyIn(b, a)
	removed = tokensOnlyIn(a, b)
	for tok, ida := range a {
		if idb, ok := b[tok]; ok && idb != ida {
			moved = append(moved, TokenMove{Content: tok, OldID: ida, NewID: idb})
		}
	}
	sort.Slice(moved, func(i, j int) bool {
		if moved[i].OldID != moved[j].OldID {
			return moved[i].OldID < moved[j].OldID
		}
		return moved[i].Content < moved[j].Content
	})
	return added, removed, moved
}

// tokensOnlyIn lists the tokens of x that y lacks, by id then content.
func tokensOnlyIn(x, y map[string]int) []Token {
	var out []Token
	for tok, id := range x {
		if _, ok := y[tok]; !ok {
			out = append(out, Token{ID: id, Content: tok})
		}
	}
	sortTokens(out)
	return out
}

func sortTokens(ts []Token) {
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].ID != ts[j].ID {
			return ts[i].ID < ts[j].ID
		}
		return ts[i].Content < ts[j].Content
	})
}

// diffRoles compares special token roles, sorted by role.
func diffRoles(a, b map[string]string) []RoleChange {
	var out []RoleChange
	for role, old := range a {
		switch tok, ok := b[role]; {
		case !ok:
			out = append(out, RoleChange{Role: role, Kind: Removed, Old: old})
		case tok != old:
			out = append(out, RoleChange{Role: role, Kind: Changed, Old: old, New: tok})
		}
	}
	for role, tok := range b {
		if _, ok := a[role]; !ok {
			out = append(out, RoleChange{Role: role, Kind: Added, New: tok})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Role < out[j].Role })
	return out
}

// diffMerges compares two merge lists as sets, and the order of the merges
// they share.
func diffMerges(a, b []merge) *MergesDiff {
	d := &MergesDiff{CountA: len(a), CountB: len(b)}
	inA, inB := setOf(a), setOf(b)
	d.Added, d.FirstAdded = missingFrom(b, inA)
	d.Removed, d.FirstRemoved = missingFrom(a, inB)
	d.Reordered = !slices.Equal(shared(a, inB), shared(b, inA))
	return d
}

func setOf(ms []merge) map[merge]bool {
	set := make(map[merge]bool, len(ms))
	for _, m := range ms {
		set[m] = true
	}
	return set
}

// missingFrom counts the distinct merges of list absent from set, and
// returns the first few.
func missingFrom(list []merge, set map[merge]bool) (int, []string) {
	n := 0
	var first []string
	seen := map[merge]bool{}
	for _, m := range list {
		if set[m] || seen[m] {
			continue
		}
		seen[m] = true
		n++
		if len(first) < firstMerges {
			first = append(first, m.String())
		}
	}
	return n, first
}

// shared returns the merges of list that are in set, first occurrences only.
func shared(list []merge, set map[merge]bool) []merge {
	out := make([]merge, 0, len(list))
	seen := make(map[merge]bool, len(list))
	for _, m := range list {
		if set[m] && !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}
