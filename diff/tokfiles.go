package diff

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Parsers of the tokenizer files Hugging Face writes. Each takes the file's
// bytes, returns an error for malformed input and never panics.

// merge is one BPE merge rule: the pair of tokens it joins.
type merge struct{ left, right string }

func (m merge) String() string { return m.left + " " + m.right }

// addedToken is an entry of tokenizer.json's added_tokens or of
// tokenizer_config.json's added_tokens_decoder.
type addedToken struct {
	ID      int
	Content string
	Special bool
}

// tokenizerJSON is what diff reads of a tokenizer.json.
type tokenizerJSON struct {
	vocab  map[string]int // model.vocab; nil when it has none
	merges []merge        // model.merges; nil when it has none
	added  []addedToken
}

// parseTokenizerJSON reads model.vocab (an object token → id, or Unigram's
// list of [token, score] pairs, where the id is the position), model.merges
// (strings "a b" or pairs ["a", "b"]) and added_tokens.
func parseTokenizerJSON(data []byte) (*tokenizerJSON, error) {
	var doc struct {
		AddedTokens []struct {
			ID      *int    `json:"id"`
			Content *string `json:"content"`
			Special bool    `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Vocab  json.RawMessage `json:"vocab"`
			Merges json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	out := &tokenizerJSON{}
	for i, t := range doc.AddedTokens {
		if t.ID == nil || t.Content == nil {
			return nil, fmt.Errorf("tokenizer.json: added_tokens[%d] lacks id or content", i)
		}
		out.added = append(out.added, addedToken{ID: *t.ID, Content: *t.Content, Special: t.Special})
	}
	var err error
	if out.vocab, err = parseModelVocab(doc.Model.Vocab); err != nil {
		return nil, fmt.Errorf("tokenizer.json: model.vocab: %w", err)
	}
	if out.merges, err = parseModelMerges(doc.Model.Merges); err != nil {
		return nil, fmt.Errorf("tokenizer.json: model.merges: %w", err)
	}
	return out, nil
}

// isNull reports whether raw is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// parseModelVocab reads a vocab object {token: id} or a Unigram vocab
// [[token, score], ...].
func parseModelVocab(raw json.RawMessage) (map[string]int, error) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return nil, nil
	}
	if raw[0] == '{' {
		var vocab map[string]int
		if err := json.Unmarshal(raw, &vocab); err != nil {
			return nil, err
		}
		return vocab, nil
	}
	var pieces [][]json.RawMessage
	if err := json.Unmarshal(raw, &pieces); err != nil {
		return nil, errors.New("neither an object of token ids nor a list of [token, score] pairs")
	}
	vocab := make(map[string]int, len(pieces))
	for i, p := range pieces {
		var token string
		if len(p) == 0 || json.Unmarshal(p[0], &token) != nil {
			return nil, fmt.Errorf("entry %d is not [token, score]", i)
		}
		if _, dup := vocab[token]; !dup {
			vocab[token] = i
		}
	}
	return vocab, nil
}

// parseModelMerges reads merges as strings "a b" or as pairs ["a", "b"]
// (the form tokenizers writes since merges may hold spaces).
func parseModelMerges(raw json.RawMessage) ([]merge, error) {
	if isNull(raw) {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, errors.New("not a list")
	}
	merges := make([]merge, 0, len(items))
	for i, item := range items {
		var s string
		if json.Unmarshal(item, &s) == nil {
			m, err := splitMerge(s)
			if err != nil {
				return nil, fmt.Errorf("merge %d: %w", i, err)
			}
			merges = append(merges, m)
			continue
		}
		var pair []string
		if json.Unmarshal(item, &pair) != nil || len(pair) != 2 {
			return nil, fmt.Errorf("merge %d: %s is neither \"a b\" nor [\"a\", \"b\"]", i, abbreviate(string(item)))
		}
		merges = append(merges, merge{pair[0], pair[1]})
	}
	return merges, nil
}

// splitMerge splits "a b" at its space.
func splitMerge(s string) (merge, error) {
	left, right, ok := strings.Cut(s, " ")
	if !ok {
		return merge{}, fmt.Errorf("%q is not two tokens separated by a space", abbreviate(s))
	}
	return merge{left, right}, nil
}

// parseMergesTxt reads merges.txt: one "a b" merge per line, after an
// optional "#version: ..." header line; empty lines are skipped.
func parseMergesTxt(data []byte) ([]merge, error) {
	lines := strings.Split(string(data), "\n")
	merges := make([]merge, 0, len(lines))
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if line == "" || i == 0 && strings.HasPrefix(line, "#version") {
			continue
		}
		m, err := splitMerge(line)
		if err != nil {
			return nil, fmt.Errorf("merges.txt: line %d: %w", i+1, err)
		}
		merges = append(merges, m)
	}
	return merges, nil
}

// parseVocabJSON reads vocab.json or added_tokens.json: {token: id}.
func parseVocabJSON(name string, data []byte) (map[string]int, error) {
	var vocab map[string]int
	if err := json.Unmarshal(data, &vocab); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return vocab, nil
}

// parseVocabTxt reads vocab.txt (WordPiece): one token per line, the id
// being the line number from 0.
func parseVocabTxt(data []byte) map[string]int {
	text := strings.TrimSuffix(string(data), "\n")
	if text == "" {
		return map[string]int{}
	}
	lines := strings.Split(text, "\n")
	vocab := make(map[string]int, len(lines))
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if _, dup := vocab[line]; !dup {
			vocab[line] = i
		}
	}
	return vocab
}

// specialTokens is what special_tokens_map.json or tokenizer_config.json
// says about special tokens.
type specialTokens struct {
	roles  map[string]string // bos_token, eos_token, ... → the token
	tokens []string          // every token named, lists included
	added  []addedToken      // tokenizer_config.json's added_tokens_decoder
}

// parseSpecialTokensMap reads special_tokens_map.json: each key maps to a
// token (a string or {"content": ...}) or to a list of tokens
// (additional_special_tokens).
func parseSpecialTokensMap(data []byte) (*specialTokens, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("special_tokens_map.json: %w", err)
	}
	st := &specialTokens{roles: map[string]string{}}
	for key, raw := range doc {
		if err := st.addRole(key, raw); err != nil {
			return nil, fmt.Errorf("special_tokens_map.json: %s: %w", key, err)
		}
	}
	return st, nil
}

// parseTokenizerConfig reads tokenizer_config.json's special token roles
// (keys ending in "_token", and additional_special_tokens) and its
// added_tokens_decoder {"id": {"content": ..., "special": ...}}.
func parseTokenizerConfig(data []byte) (*specialTokens, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("tokenizer_config.json: %w", err)
	}
	st := &specialTokens{roles: map[string]string{}}
	for key, raw := range doc {
		if !strings.HasSuffix(key, "_token") && key != "additional_special_tokens" {
			continue
		}
		if err := st.addRole(key, raw); err != nil {
			// Keys such as add_bos_token are flags, not tokens.
			continue
		}
	}
	if raw := doc["added_tokens_decoder"]; !isNull(raw) {
		var decoder map[string]struct {
			Content *string `json:"content"`
			Special bool    `json:"special"`
		}
		if err := json.Unmarshal(raw, &decoder); err != nil {
			return nil, fmt.Errorf("tokenizer_config.json: added_tokens_decoder: %w", err)
		}
		for id, t := range decoder {
			n, err := strconv.Atoi(id)
			if err != nil || t.Content == nil {
				return nil, fmt.Errorf("tokenizer_config.json: added_tokens_decoder: entry %q is not an id with a content", abbreviate(id))
			}
			st.added = append(st.added, addedToken{ID: n, Content: *t.Content, Special: t.Special})
		}
	}
	return st, nil
}

// addRole records key → token(s); null values are no token.
func (st *specialTokens) addRole(key string, raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	if token, ok := tokenContent(raw); ok {
		st.roles[key] = token
		st.tokens = append(st.tokens, token)
		return nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return fmt.Errorf("%s is not a token or a list of tokens", abbreviate(string(raw)))
	}
	for _, item := range list {
		token, ok := tokenContent(item)
		if !ok {
			return fmt.Errorf("%s is not a token", abbreviate(string(item)))
		}
		st.tokens = append(st.tokens, token)
	}
	return nil
}

// tokenContent reads a token written as a string or as {"content": ...}.
func tokenContent(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Content != nil {
		return *obj.Content, true
	}
	return "", false
}

// abbreviate shortens s for an error message.
func abbreviate(s string) string {
	const limit = 60
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "..."
}
