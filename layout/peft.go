package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/ckptdev/ckpt/internal/textsafe"
)

// PEFT adapters
//
// A PEFT (huggingface/peft) adapter folder holds adapter_config.json and the
// adapter's weights, adapter_model.safetensors (PEFT's default) or
// adapter_model.bin, and no full-model weights; a Trainer checkpoint of a
// PEFT run adds tokenizer and resume-state files. Classify gives the
// adapter files the roles RoleConfig and RoleWeights, so that they are
// pulled, selected and compared like a model's config and weights; but
// they do not stand in for them: an adapter runs only on top of the base
// model its adapter_config.json names (base_model_name_or_path), and
// adapter_config.json is not config.json. IsAdapterFile tells them apart.

// AdapterConfigName is the file PEFT saves an adapter's configuration in
// (peft.utils.CONFIG_NAME).
const AdapterConfigName = "adapter_config.json"

// AdapterWeightsNames are the files PEFT saves an adapter's weights in,
// safetensors first (peft.utils SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME).
var AdapterWeightsNames = []string{"adapter_model.safetensors", "adapter_model.bin"}

// MaxAdapterConfig bounds the size of an adapter_config.json: PEFT writes a
// few KiB (rank_pattern and alpha_pattern, one entry per module at most,
// are the only parts that grow with the model).
const MaxAdapterConfig = 4 << 20

// IsAdapterFile reports whether relPath is one of the files of a PEFT
// adapter at the root of its folder: adapter_config.json,
// adapter_model.safetensors or adapter_model.bin. A caller that asks
// whether a folder has its own model config or model weights (to inherit
// them from a base, say) must not count these.
func IsAdapterFile(relPath string) bool {
	return relPath == AdapterConfigName || slices.Contains(AdapterWeightsNames, relPath)
}

// AdapterConfig is what ckpt reads from an adapter_config.json as PEFT
// writes it (PeftConfig and, for LoRA, LoraConfig in huggingface/peft).
// Every key is optional and may be null; a value of the wrong type is an
// error. Strings are "" and pointers nil when the key is absent or null.
type AdapterConfig struct {
	PeftType            string // "LORA", "ADALORA", "IA3", "PREFIX_TUNING", ...
	TaskType            string // "CAUSAL_LM", "SEQ_CLS", ...
	BaseModelNameOrPath string // a Hugging Face repo id or a local path
	Revision            string // of the base model
	PeftVersion         string // the PEFT version that saved it (newer PEFT)
	InferenceMode       *bool
	R                   *int64 // LoRA rank
	LoraAlpha           *float64
	LoraDropout         *float64
	TargetModules       *Modules
	ModulesToSave       []string // nil when absent or null
	Bias                string   // "none", "all" or "lora_only"
	FanInFanOut         *bool
	UseRSLoRA           *bool // use_rslora
	UseDoRA             *bool // use_dora
	// Extra holds every other key with its value as written
	// (init_lora_weights, layers_to_transform, rank_pattern, auto_mapping,
	// keys of newer PEFT versions, ...); nil if there is none.
	Extra map[string]json.RawMessage
}

// Modules is PEFT's target_modules: a list of module names, each matched
// exactly or as a suffix of a module's name, or one string: a regular
// expression matched against whole module names, or "all-linear".
type Modules struct {
	// Names is the list form, as written. PEFT saves a set, so the order
	// carries no meaning.
	Names []string
	// Pattern is the string form.
	Pattern string
	// IsPattern tells the forms apart.
	IsPattern bool
}

// String returns the pattern, or the names sorted and comma-separated.
func (m Modules) String() string {
	if m.IsPattern {
		return textsafe.Name(m.Pattern)
	}
	names := textsafe.Names(m.Names)
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Equal reports whether m and o select the same modules as written: the
// same pattern, or the same set of names.
func (m Modules) Equal(o Modules) bool {
	if m.IsPattern || o.IsPattern {
		return m.IsPattern == o.IsPattern && m.Pattern == o.Pattern
	}
	a, b := slices.Clone(m.Names), slices.Clone(o.Names)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// AdapterBase names the base model an adapter runs on.
type AdapterBase struct {
	// Name is base_model_name_or_path: a Hugging Face repo id such as
	// "meta-llama/Llama-3.2-1B" or the local path the base was loaded
	// from; "" when the config names none.
	Name string
	// Revision is the base's revision, "" for none.
	Revision string
}

// Base returns the base model c names.
func (c *AdapterConfig) Base() AdapterBase {
	return AdapterBase{Name: c.BaseModelNameOrPath, Revision: c.Revision}
}

// String returns the base as "NAME" or "NAME at revision REV", quoted
// where not plain text; "" when no base is named.
func (b AdapterBase) String() string {
	if b.Name == "" {
		return ""
	}
	s := textsafe.Name(b.Name)
	if b.Revision != "" {
		s += " at revision " + textsafe.Name(b.Revision)
	}
	return s
}

// needs says what running the adapter needs, for messages.
func (b AdapterBase) needs() string {
	if b.Name == "" {
		return "needs a base model, which " + AdapterConfigName + " does not name"
	}
	return "needs base " + b.String()
}

// Describe summarizes c in one line for people, e.g. "LORA r=16 alpha=32
// dropout=0.05 on q_proj, v_proj". Absent values are left out.
func (c *AdapterConfig) Describe() string {
	var parts []string
	add := func(s string) { parts = append(parts, s) }
	if c.PeftType != "" {
		add(textsafe.Name(c.PeftType))
	} else {
		add("adapter")
	}
	if c.R != nil {
		add(fmt.Sprintf("r=%d", *c.R))
	}
	if c.LoraAlpha != nil {
		add(fmt.Sprintf("alpha=%g", *c.LoraAlpha))
	}
	if c.LoraDropout != nil {
		add(fmt.Sprintf("dropout=%g", *c.LoraDropout))
	}
	if c.UseDoRA != nil && *c.UseDoRA {
		add("DoRA")
	}
	if c.UseRSLoRA != nil && *c.UseRSLoRA {
		add("rsLoRA")
	}
	s := strings.Join(parts, " ")
	if c.TargetModules != nil {
		s += " on " + c.TargetModules.String()
	}
	return s
}

// AdapterConfigError reports an adapter_config.json that is not a JSON
// object or has a value of the wrong type.
type AdapterConfigError struct {
	// Path is the file's path, or "adapter_config.json" when parsing bytes.
	Path string
	// Reason says what is wrong, e.g. `r is "8", want an integer`.
	Reason string
}

func (e *AdapterConfigError) Error() string { return textsafe.Name(e.Path) + ": " + e.Reason }

// adapterConfigKeys are the keys AdapterConfig has fields for.
var adapterConfigKeys = []string{
	"peft_type", "task_type", "base_model_name_or_path", "revision", "peft_version", "inference_mode",
	"r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save", "bias", "fan_in_fan_out",
	"use_rslora", "use_dora",
}

// ParseAdapterConfig parses the contents of an adapter_config.json. Bare
// NaN and Infinity literals (Python's json module writes them) are read as
// null. Errors are *AdapterConfigError.
func ParseAdapterConfig(data []byte) (*AdapterConfig, error) {
	fail := func(format string, args ...any) (*AdapterConfig, error) {
		return nil, &AdapterConfigError{Path: AdapterConfigName, Reason: fmt.Sprintf(format, args...)}
	}
	if len(data) > MaxAdapterConfig {
		return fail("larger than %d bytes, the most an adapter configuration may have", MaxAdapterConfig)
	}
	data = replaceNonFiniteLiterals(data)
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return fail("not a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return fail("not valid JSON: %v", err)
	}
	c := &AdapterConfig{}
	var err error
	for _, s := range []struct {
		key string
		to  *string
	}{
		{"peft_type", &c.PeftType}, {"task_type", &c.TaskType},
		{"base_model_name_or_path", &c.BaseModelNameOrPath}, {"revision", &c.Revision},
		{"peft_version", &c.PeftVersion}, {"bias", &c.Bias},
	} {
		if *s.to, err = optionalString(s.key, fields[s.key]); err != nil {
			return fail("%v", err)
		}
	}
	for _, b := range []struct {
		key string
		to  **bool
	}{
		{"inference_mode", &c.InferenceMode}, {"fan_in_fan_out", &c.FanInFanOut},
		{"use_rslora", &c.UseRSLoRA}, {"use_dora", &c.UseDoRA},
	} {
		if *b.to, err = optionalBool(b.key, fields[b.key]); err != nil {
			return fail("%v", err)
		}
	}
	if c.R, err = optionalInt("r", fields["r"]); err != nil {
		return fail("%v", err)
	}
	if c.R != nil && *c.R < 0 {
		return fail("r is %d, want a rank of 0 or more", *c.R)
	}
	if c.LoraAlpha, err = optionalFloat("lora_alpha", fields["lora_alpha"]); err != nil {
		return fail("%v", err)
	}
	if c.LoraDropout, err = optionalFloat("lora_dropout", fields["lora_dropout"]); err != nil {
		return fail("%v", err)
	}
	if raw := fields["target_modules"]; raw != nil && string(raw) != "null" {
		m := &Modules{}
		switch raw[0] {
		case '"':
			m.IsPattern = true
			if err := json.Unmarshal(raw, &m.Pattern); err != nil {
				return fail("target_modules: %v", err)
			}
		case '[':
			if m.Names, err = stringList("target_modules", raw); err != nil {
				return fail("%v", err)
			}
		default:
			return fail("target_modules is %s, want a list of module names or a string", abbreviate(raw))
		}
		c.TargetModules = m
	}
	if raw := fields["modules_to_save"]; raw != nil && string(raw) != "null" {
		if c.ModulesToSave, err = stringList("modules_to_save", raw); err != nil {
			return fail("%v", err)
		}
	}
	for key, value := range fields {
		if !slices.Contains(adapterConfigKeys, key) {
			if c.Extra == nil {
				c.Extra = map[string]json.RawMessage{}
			}
			c.Extra[key] = value
		}
	}
	return c, nil
}

// ReadAdapterConfig reads and parses the adapter configuration at name in
// fsys, reading at most MaxAdapterConfig bytes. Errors name the file.
func ReadAdapterConfig(fsys fs.FS, name string) (*AdapterConfig, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read-only
	data, err := io.ReadAll(io.LimitReader(f, MaxAdapterConfig+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", textsafe.Name(name), err)
	}
	c, err := ParseAdapterConfig(data)
	if err != nil {
		var configErr *AdapterConfigError
		if errors.As(err, &configErr) {
			configErr.Path = name
		}
		return nil, err
	}
	return c, nil
}

// Adapter is a PEFT adapter folder.
type Adapter struct {
	Config *AdapterConfig
	// Weights is the adapter's weights file: adapter_model.safetensors,
	// else adapter_model.bin; "" when it has neither (an incomplete
	// adapter).
	Weights string
}

// DetectAdapter reports whether the root of fsys is a PEFT adapter folder:
// it has adapter_config.json and no full-model weights (any weights file
// but adapter_model.*, or a weights index). It returns nil, nil for any
// other folder (a full model that also carries adapter files runs alone),
// and an error when adapter_config.json cannot be read or parsed.
func DetectAdapter(fsys fs.FS) (*Adapter, error) {
	files, err := topLevelFiles(fsys)
	if err != nil {
		return nil, err
	}
	if !isAdapterFolder(files) || !hasFile(files, AdapterConfigName) {
		return nil, nil
	}
	config, err := ReadAdapterConfig(fsys, AdapterConfigName)
	if err != nil {
		return nil, err
	}
	adapter := &Adapter{Config: config}
	for _, name := range AdapterWeightsNames {
		if hasFile(files, name) {
			adapter.Weights = name
			break
		}
	}
	return adapter, nil
}

// isAdapterFolder applies CheckRunnable's rule to the sorted names of a
// folder's top-level files: some adapter file (adapter_config.json or
// adapter_model.*), and neither full-model weights nor a weights index.
func isAdapterFolder(files []string) bool {
	adapter := false
	for _, name := range files {
		switch Classify(name) {
		case RoleWeightsIndex:
			return false
		case RoleWeights:
			if !strings.HasPrefix(name, "adapter_model.") {
				return false
			}
			adapter = true
		}
		if name == AdapterConfigName {
			adapter = true
		}
	}
	return adapter
}

func hasFile(sorted []string, name string) bool {
	_, found := slices.BinarySearch(sorted, name)
	return found
}

// NeedsBaseError reports a complete PEFT adapter folder: it is runnable,
// but only on top of its base model.
type NeedsBaseError struct {
	// Dir names the folder in messages; it may be "".
	Dir string
	// Base is the base model adapter_config.json names.
	Base AdapterBase
}

func (e *NeedsBaseError) Error() string {
	subject := "model"
	if e.Dir != "" {
		subject += " " + e.Dir
	}
	return subject + " is a PEFT adapter: it " + e.Base.needs()
}

// CheckRunnableAlone is CheckRunnable for a model that must run by itself:
// where CheckRunnable accepts a complete PEFT adapter folder (runnable with
// its base), it returns a *NeedsBaseError naming the base.
func CheckRunnableAlone(fsys fs.FS) error {
	if err := CheckRunnable(fsys); err != nil {
		return err
	}
	adapter, err := DetectAdapter(fsys)
	if err != nil {
		return err
	}
	if adapter != nil {
		return &NeedsBaseError{Base: adapter.Config.Base()}
	}
	return nil
}

// CheckRunnableAloneDir is CheckRunnableAlone on a local folder, naming it
// in errors.
func CheckRunnableAloneDir(dir string) error {
	return withDir(CheckRunnableAlone(os.DirFS(dir)), dir)
}

// optionalString reads a string that may be absent or null.
func optionalString(name string, raw json.RawMessage) (string, error) {
	if raw == nil || string(raw) == "null" {
		return "", nil
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", fmt.Errorf("%s is %s, want a string", name, abbreviate(raw))
	}
	return s, nil
}

// optionalBool reads a boolean that may be absent or null.
func optionalBool(name string, raw json.RawMessage) (*bool, error) {
	switch string(raw) {
	case "", "null":
		return nil, nil
	case "true", "false":
		b := string(raw) == "true"
		return &b, nil
	}
	return nil, fmt.Errorf("%s is %s, want true or false", name, abbreviate(raw))
}

// stringList reads a JSON array of strings.
func stringList(name string, raw json.RawMessage) ([]string, error) {
	var list []string
	if raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, fmt.Errorf("%s is %s, want a list of strings", name, abbreviate(raw))
	}
	if list == nil {
		list = []string{}
	}
	return list, nil
}
