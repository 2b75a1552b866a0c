package diff

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store/manifest"
)

// AdapterDiff compares the PEFT adapter configurations of two sides, when
// either is an adapter (layout.DetectAdapter's rule, applied to the
// manifest). The adapters' tensors are compared with the other tensors.
type AdapterDiff struct {
	// A and B describe each side's adapter in one line ("LORA r=16
	// alpha=32 dropout=0.05 on q_proj, v_proj"); "" for a side that is
	// not an adapter.
	A string `json:"a"`
	B string `json:"b"`
	// Changes lists the settings that differ, in a fixed order (peft_type,
	// task_type, base_model_name_or_path, revision, r, lora_alpha,
	// lora_dropout, target_modules, modules_to_save, bias, use_dora,
	// use_rslora, fan_in_fan_out), when both sides are adapters.
	// target_modules and modules_to_save are sets (PEFT saves them in no
	// order): a reordering is no change.
	Changes []AdapterChange `json:"changes"`
}

// AdapterChange is one adapter setting that differs. A and B are its
// values as text, "" when absent.
type AdapterChange struct {
	Setting string `json:"setting"`
	A       string `json:"a"`
	B       string `json:"b"`
}

// adapterOf returns the adapter configuration of side s, nil when s is not
// an adapter folder.
func adapterOf(ctx context.Context, s *Side) (*layout.AdapterConfig, error) {
	var config *manifest.File
	for i := range s.Manifest.Files {
		f := &s.Manifest.Files[i]
		if strings.Contains(f.Path, "/") {
			continue
		}
		if f.Path == layout.AdapterConfigName {
			config = f
		}
		switch layout.Role(f.Role) {
		case layout.RoleWeights, layout.RoleWeightsIndex:
			if !layout.IsAdapterFile(f.Path) {
				return nil, nil // a full model, whatever adapter files it carries
			}
		}
	}
	if config == nil {
		return nil, nil
	}
	if config.Size > layout.MaxAdapterConfig {
		return nil, fmt.Errorf("%s: %s: %w (%d bytes)", s.Label, config.Path, errTooLarge, config.Size)
	}
	data, err := s.Data.ReadRange(ctx, config, 0, config.Size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Label, err)
	}
	c, err := layout.ParseAdapterConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Label, err)
	}
	return c, nil
}

// diffAdapters compares the adapters of a and b; nil when neither is one.
// An adapter_config.json that cannot be read or parsed is left to the file
// and key comparison, with a note.
func diffAdapters(ctx context.Context, a, b *Side) (*AdapterDiff, []string, error) {
	var notes []string
	configs := make([]*layout.AdapterConfig, 2)
	for i, s := range []*Side{a, b} {
		c, err := adapterOf(ctx, s)
		var configErr *layout.AdapterConfigError
		switch {
		case errors.Is(err, errTooLarge) || errors.As(err, &configErr):
			notes = append(notes, fmt.Sprintf("%v: adapter settings not compared", err))
			return nil, notes, nil
		case err != nil:
			return nil, nil, err
		}
		configs[i] = c
	}
	ca, cb := configs[0], configs[1]
	if ca == nil && cb == nil {
		return nil, nil, nil
	}
	d := &AdapterDiff{Changes: []AdapterChange{}}
	if ca != nil {
		d.A = ca.Describe()
	}
	if cb != nil {
		d.B = cb.Describe()
	}
	if ca == nil || cb == nil {
		return d, nil, nil
	}
	add := func(setting, va, vb string) {
		if va != vb {
			d.Changes = append(d.Changes, AdapterChange{Setting: setting, A: textsafe.Name(va), B: textsafe.Name(vb)})
		}
	}
	add("peft_type", ca.PeftType, cb.PeftType)
	add("task_type", ca.TaskType, cb.TaskType)
	add("base_model_name_or_path", ca.BaseModelNameOrPath, cb.BaseModelNameOrPath)
	add("revision", ca.Revision, cb.Revision)
	add("r", intText(ca.R), intText(cb.R))
	add("lora_alpha", floatText(ca.LoraAlpha), floatText(cb.LoraAlpha))
	add("lora_dropout", floatText(ca.LoraDropout), floatText(cb.LoraDropout))
	if !modulesEqual(ca.TargetModules, cb.TargetModules) {
		d.Changes = append(d.Changes, AdapterChange{Setting: "target_modules", A: modulesText(ca.TargetModules), B: modulesText(cb.TargetModules)})
	}
	if !setEqual(ca.ModulesToSave, cb.ModulesToSave) {
		d.Changes = append(d.Changes, AdapterChange{Setting: "modules_to_save", A: listText(ca.ModulesToSave), B: listText(cb.ModulesToSave)})
	}
	add("bias", ca.Bias, cb.Bias)
	add("use_dora", boolText(ca.UseDoRA), boolText(cb.UseDoRA))
	add("use_rslora", boolText(ca.UseRSLoRA), boolText(cb.UseRSLoRA))
	add("fan_in_fan_out", boolText(ca.FanInFanOut), boolText(cb.FanInFanOut))
	return d, nil, nil
}

// dropReorderedSets removes the key changes of adapter_config.json that
// only reorder a set (target_modules, modules_to_save): d says whether
// they changed.
func dropReorderedSets(changes []JSONChange, d *AdapterDiff) []JSONChange {
	if d == nil || d.A == "" || d.B == "" {
		return changes
	}
	changed := map[string]bool{}
	for _, c := range d.Changes {
		changed[c.Setting] = true
	}
	return slices.DeleteFunc(changes, func(c JSONChange) bool {
		if c.File != layout.AdapterConfigName {
			return false
		}
		for _, set := range []string{"target_modules", "modules_to_save"} {
			if (c.Key == set || strings.HasPrefix(c.Key, set+"[") || strings.HasPrefix(c.Key, set+".")) && !changed[set] {
				return true
			}
		}
		return false
	})
}

// summary is the adapter part of Report.Summary: "same (LORA r=16 ...)",
// "A only", "B only", or the changes.
func (d *AdapterDiff) summary() string {
	switch {
	case d.A == "":
		return "none in A, " + d.B + " in B"
	case d.B == "":
		return d.A + " in A, none in B"
	case len(d.Changes) == 0:
		return "same (" + d.A + ")"
	}
	parts := make([]string, len(d.Changes))
	for i, c := range d.Changes {
		parts[i] = fmt.Sprintf("%s %s -> %s", c.Setting, orDash(c.A), orDash(c.B))
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func intText(v *int64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(*v, 10)
}

func floatText(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}

func boolText(v *bool) string {
	if v == nil {
		return ""
	}
	return strconv.FormatBool(*v)
}

func modulesEqual(a, b *layout.Modules) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func modulesText(m *layout.Modules) string {
	if m == nil {
		return ""
	}
	if m.IsPattern {
		return m.String()
	}
	return "[" + m.String() + "]"
}

func setEqual(a, b []string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return modulesEqual(&layout.Modules{Names: a}, &layout.Modules{Names: b})
}

func listText(list []string) string {
	if list == nil {
		return ""
	}
	return modulesText(&layout.Modules{Names: list})
}
