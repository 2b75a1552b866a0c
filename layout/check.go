package layout

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/ckptdev/ckpt/internal/textsafe"
)

// MissingError reports a folder that lacks files: a checkpoint that is not
// complete or a model that is not runnable.
type MissingError struct {
	// What is "checkpoint" or "model".
	What string
	// Dir names the folder in messages; it may be "".
	Dir string
	// Missing says exactly what is missing, one item each, e.g.
	// "trainer_state.json" or "model-00002-of-00003.safetensors (named by
	// model.safetensors.index.json)".
	Missing []string
	// NeedsBase is set for a PEFT adapter folder whose adapter_config.json
	// parses: complete, it would still run only on top of this base.
	NeedsBase *AdapterBase
}

func (e *MissingError) Error() string {
	subject := e.What
	if e.Dir != "" {
		subject += " " + e.Dir
	}
	verdict := "is incomplete"
	if e.What == "model" {
		verdict = "is not runnable"
	}
	msg := fmt.Sprintf("%s %s: missing %s", subject, verdict, strings.Join(e.Missing, "; "))
	if e.NeedsBase != nil {
		msg += "; as a PEFT adapter it also " + e.NeedsBase.needs()
	}
	return msg
}

// CheckComplete judges fsys as a training checkpoint. It is complete when
// trainer_state.json is present and parses, and every shard named by every
// weights index (*.index.json, anywhere in the folder, shards relative to
// the index's folder) exists. It returns nil, a *MissingError listing what
// is missing, or an error naming a file that is malformed or unreadable.
func CheckComplete(fsys fs.FS) error {
	var missing []string
	data, err := fs.ReadFile(fsys, trainerStateName)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		missing = append(missing, trainerStateName)
	case err != nil:
		return err
	default:
		if _, err := ParseTrainerState(data); err != nil {
			return err
		}
	}

	var indexes []string
	err = fs.WalkDir(fsys, ".", func(name string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !entry.IsDir() && Classify(name) == RoleWeightsIndex {
			indexes = append(indexes, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	missingShards, err := findMissingShards(fsys, indexes)
	if err != nil {
		return err
	}
	missing = append(missing, missingShards...)
	if len(missing) > 0 {
		return &MissingError{What: "checkpoint", Missing: missing}
	}
	return nil
}

// CheckCompleteDir is CheckComplete on a local folder, naming it in errors.
func CheckCompleteDir(dir string) error {
	return withDir(CheckComplete(os.DirFS(dir)), dir)
}

// CheckRunnable judges the top level of fsys as a model that transformers
// (or PEFT) can load. It needs:
//   - config.json, or for a PEFT adapter folder (adapter_config.json or
//     adapter_model.*, and no full-model weights) adapter_config.json that
//     parses plus adapter_model.safetensors or adapter_model.bin instead of
//     both config and full weights: such a folder is runnable with its base
//     (CheckRunnableAlone tells it apart), and a *MissingError about it
//     names the base (NeedsBase);
//   - complete weights: a full single file (any weights file that is not a
//     numbered shard), or a weights index; every index present must have
//     all its shards;
//   - if there is any tokenizer file, a usable tokenizer: tokenizer.json,
//     vocab.json with merges.txt, vocab.txt, or a SentencePiece model
//     (spiece.model, tokenizer.model, sentencepiece.bpe.model);
//     tokenizer_config.json alone is not one.
//
// It returns nil, a *MissingError listing what is missing, or an error
// naming a file that is malformed or unreadable.
func CheckRunnable(fsys fs.FS) error {
	files, err := topLevelFiles(fsys)
	if err != nil {
		return err
	}
	var (
		missing            []string
		indexes            []string
		fullWeights        []string // non-adapter weights files
		adapterWeights     bool
		adapterBase        *AdapterBase
		tokenizerFiles     []string
		shardsWithoutIndex []string
	)
	for _, name := range files {
		switch Classify(name) {
		case RoleWeightsIndex:
			indexes = append(indexes, name)
		case RoleWeights:
			if strings.HasPrefix(name, "adapter_model.") {
				adapterWeights = true
			} else {
				fullWeights = append(fullWeights, name)
			}
		case RoleTokenizer:
			tokenizerFiles = append(tokenizerFiles, name)
		}
	}
	has := func(name string) bool { _, found := slices.BinarySearch(files, name); return found }

	if isAdapterFolder(files) {
		if has(AdapterConfigName) {
			config, err := ReadAdapterConfig(fsys, AdapterConfigName)
			if err != nil {
				return err
			}
			base := config.Base()
			adapterBase = &base
		} else {
			missing = append(missing, AdapterConfigName)
		}
		if !adapterWeights {
			missing = append(missing, "adapter weights (adapter_model.safetensors or adapter_model.bin)")
		}
	} else {
		if !has("config.json") {
			missing = append(missing, "config.json")
		}
		singleFile := false
		for _, name := range fullWeights {
			if shardNamePattern.MatchString(name) {
				shardsWithoutIndex = append(shardsWithoutIndex, name)
			} else {
				singleFile = true
			}
		}
		switch {
		case singleFile || len(indexes) > 0:
		case len(shardsWithoutIndex) > 0:
			missing = append(missing, fmt.Sprintf("weights index (found shard %s but no *.index.json)", shardsWithoutIndex[0]))
		default:
			missing = append(missing, "weights (no *.safetensors, pytorch_model*.bin or adapter_model.*)")
		}
		missingShards, err := findMissingShards(fsys, indexes)
		if err != nil {
			return err
		}
		missing = append(missing, missingShards...)
	}

	if len(tokenizerFiles) > 0 {
		usable := has("tokenizer.json") || (has("vocab.json") && has("merges.txt")) || has("vocab.txt") ||
			has("spiece.model") || has("tokenizer.model") || has("sentencepiece.bpe.model")
		switch {
		case usable:
		case has("vocab.json"):
			missing = append(missing, "merges.txt (vocab.json needs it)")
		case has("merges.txt"):
			missing = append(missing, "vocab.json (merges.txt needs it)")
		default:
			missing = append(missing, fmt.Sprintf(
				"tokenizer vocabulary (found %s but no tokenizer.json, vocab.json+merges.txt, vocab.txt, spiece.model or tokenizer.model)",
				strings.Join(tokenizerFiles, ", ")))
		}
	}
	if len(missing) > 0 {
		return &MissingError{What: "model", Missing: missing, NeedsBase: adapterBase}
	}
	return nil
}

// CheckRunnableDir is CheckRunnable on a local folder, naming it in errors.
func CheckRunnableDir(dir string) error {
	return withDir(CheckRunnable(os.DirFS(dir)), dir)
}

// shardNamePattern matches numbered weight shards such as
// model-00001-of-00003.safetensors and pytorch_model-00001-of-00002.bin.
var shardNamePattern = regexp.MustCompile(`-[0-9]+-of-[0-9]+\.[^/]+$`)

func withDir(err error, dir string) error {
	var missingErr *MissingError
	if errors.As(err, &missingErr) {
		missingErr.Dir = dir
		return missingErr
	}
	var needsBase *NeedsBaseError
	if errors.As(err, &needsBase) {
		needsBase.Dir = dir
		return needsBase
	}
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}

// topLevelFiles returns the sorted names of the files (not folders) at the
// root of fsys, symlinks resolved.
func topLevelFiles(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var files []string
	for _, entry := range entries {
		if entry.IsDir() {
			continue
		}
		if entry.Type()&fs.ModeSymlink != 0 {
			isFile, err := isFile(fsys, entry.Name())
			if err != nil {
				return nil, err
			}
			if !isFile {
				continue
			}
		}
		files = append(files, entry.Name())
	}
	slices.Sort(files)
	return files, nil
}

// isFile reports whether name exists in fsys and is not a directory.
func isFile(fsys fs.FS, name string) (bool, error) {
	info, err := fs.Stat(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !info.IsDir(), nil
}

// findMissingShards parses each index (a slash path in fsys) and lists the
// shards it names that do not exist, as "<shard> (named by <index>)", in
// index then shard order.
func findMissingShards(fsys fs.FS, indexes []string) ([]string, error) {
	slices.Sort(indexes)
	var missing []string
	for _, indexPath := range indexes {
		data, err := fs.ReadFile(fsys, indexPath)
		if err != nil {
			return nil, err
		}
		index, err := ParseShardIndex(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", indexPath, err)
		}
		for _, shard := range index.Shards() {
			shardPath := path.Join(path.Dir(indexPath), shard)
			present, err := isFile(fsys, shardPath)
			if err != nil {
				return nil, err
			}
			if !present {
				missing = append(missing, fmt.Sprintf("%s (named by %s)", textsafe.Name(shardPath), textsafe.Name(indexPath)))
			}
		}
	}
	return missing, nil
}
