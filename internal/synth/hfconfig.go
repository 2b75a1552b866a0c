package synth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

const (
	configName           = "config.json"
	generationConfigName = "generation_config.json"
)

// tokenizerFiles are the files tokenizer.save_pretrained writes, in the
// order it writes them; those present in the tokenizer folder are copied.
var tokenizerFiles = []string{
	"tokenizer_config.json",
	"special_tokens_map.json",
	"chat_template.jinja",
	"vocab.json",
	"merges.txt",
	"vocab.txt",
	"spiece.model",
	"tokenizer.model",
	"added_tokens.json",
	"tokenizer.json",
}

// modelConfigs returns config.json and generation_config.json for m, built
// from the config.json in tokenizerDir with the shape fields (n_layer,
// n_embd, n_head, vocab_size, n_positions, n_ctx, torch_dtype) set to m's.
// Token ids that would not fit a smaller vocabulary are clamped to its
// last id. Both are formatted as transformers' save_pretrained does.
func modelConfigs(tokenizerDir string, m Model) (config, generation []byte, err error) {
	path := filepath.Join(tokenizerDir, configName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("synth: reading base config: %w", err)
	}
	var fields map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return nil, nil, fmt.Errorf("synth: %s: %w", path, err)
	}
	fields["n_layer"] = m.Layers
	fields["n_embd"] = m.Hidden
	fields["n_head"] = m.heads()
	fields["vocab_size"] = m.Vocab
	fields["n_positions"] = m.Positions
	if _, ok := fields["n_ctx"]; ok {
		fields["n_ctx"] = m.Positions
	}
	fields["torch_dtype"] = m.torchDtype()
	for _, key := range []string{"bos_token_id", "eos_token_id", "pad_token_id"} {
		if n, ok := fields[key].(json.Number); ok {
			if id, err := n.Int64(); err == nil && id >= int64(m.Vocab) {
				fields[key] = m.Vocab - 1
			}
		}
	}
	version, ok := fields["transformers_version"]
	if !ok {
		version = "4.44.0"
		fields["transformers_version"] = version
	}
	gen := pyObject{"_from_model_config": true, "transformers_version": version}
	for _, key := range []string{"bos_token_id", "eos_token_id"} {
		if id, ok := fields[key]; ok && id != nil {
			gen[key] = id
		}
	}
	return append(pyJSON(pyObject(fields)), '\n'), append(pyJSON(gen), '\n'), nil
}

// writeModelConfigs writes config.json and generation_config.json into dir.
func writeModelConfigs(dir, tokenizerDir string, m Model) error {
	config, generation, err := modelConfigs(tokenizerDir, m)
	if err != nil {
		return err
	}
	if err := writeFileBytes(filepath.Join(dir, configName), config); err != nil {
		return err
	}
	return writeFileBytes(filepath.Join(dir, generationConfigName), generation)
}

// copyTokenizer copies the tokenizer files found in tokenizerDir into dir,
// byte for byte, and fails if there are none.
func copyTokenizer(dir, tokenizerDir string) error {
	copied := 0
	for _, name := range tokenizerFiles {
		data, err := os.ReadFile(filepath.Join(tokenizerDir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("synth: %w", err)
		}
		if err := writeFileBytes(filepath.Join(dir, name), data); err != nil {
			return err
		}
		copied++
	}
	if copied == 0 {
		return fmt.Errorf("synth: no tokenizer files (tokenizer.json, vocab.json, ...) in %s", tokenizerDir)
	}
	return nil
}
