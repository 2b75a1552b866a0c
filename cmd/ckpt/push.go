package main

import (
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
)

func (a *app) pushCommand() *cobra.Command {
	var opts store.PushOptions
	var metrics []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "push DIR NAME[@VERSION]",
		Short: "Record a checkpoint or model folder",
		Long: `Record the folder DIR as NAME@VERSION. Identical files and unchanged tensors
already in the registry are not stored again.

VERSION defaults to trainer_state.json's global_step, else the N of a
checkpoint-N folder name. Pushing identical content to an existing version is a
no-op; different content is refused unless --force.

A symbolic link to a regular file is followed wherever the file is (as cp -rL
and hf upload do) and recorded as that file's content; push says how many
files came through links. So a snapshot folder of the Hugging Face cache,
whose files link to ../../blobs/, can be pushed as it is (or use ckpt
import-hf). A link to a folder outside DIR, a loop or a dangling link is
refused, naming the link.

The eval metrics logged at the pushed step in trainer_state.json are recorded;
--metric key=value adds or overrides metrics for other trainers.

A PEFT adapter folder (adapter_config.json and adapter_model.safetensors or
.bin, no full-model weights) pushed without --base is linked to the base its
base_model_name_or_path names: a NAME of the registry (at the version or tag its
revision names, else the latest), else a model import-hf recorded from that
Hugging Face repo; push says which, or that none was found.`,
		Example: `  ckpt push out/checkpoint-500 llama-sft --base llama-base@1
  ckpt push ./my-model my-model@v1 --tag prod --metric eval_loss=1.42`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, err := parseRef(args[1], true)
			if err != nil {
				return err
			}
			opts.Name, opts.Version = name, version
			if opts.Metrics, err = parseMetrics(metrics); err != nil {
				return err
			}
			r, err := a.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			res, err := r.Push(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(newPushOutput(res))
			}
			a.printPush(res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Base, "base", "", "NAME@REF whose config and tokenizer this checkpoint inherits")
	f.StringArrayVar(&opts.Tags, "tag", nil, "tag the pushed version (repeatable)")
	f.StringArrayVar(&metrics, "metric", nil, "record a metric key=value (repeatable)")
	f.BoolVar(&opts.Force, "force", false, "replace an existing version that has different content")
	f.BoolVar(&a.deltas, "deltas", false, "experimental: store a tensor chunk as its difference from the same tensor in the previous version or the base when that is smaller (the registry then needs a ckpt that reads format version 2)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON (docs/cli-json.md)")
	return cmd
}

func parseMetrics(kvs []string) (map[string]float64, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]float64, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--metric %q: want key=value", kv)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, usagef("--metric %q: %q is not a number", kv, v)
		}
		m[k] = f
	}
	return m, nil
}

func (a *app) printPush(res *store.PushResult) {
	rec := res.Record
	if res.Unchanged {
		a.printf("%s@%s already records this content (manifest %s): nothing to do\n", rec.Name, rec.Version, rec.Manifest.String()[:12])
		a.printf("  read       %s of %s (unchanged files come from the stat cache)\n", humanBytes(res.BytesRead), humanBytes(res.Logical))
		a.printf("  new        %s stored\n", humanBytes(res.NewStored))
		return
	}
	a.printf("pushed %s@%s (manifest %s)\n", rec.Name, rec.Version, rec.Manifest.String()[:12])
	a.printf("  files      %d (%s)\n", res.Files, humanBytes(res.Logical))
	if res.Symlinked > 0 {
		a.printf("  symlinks   %d of them read through symbolic links (recorded as the files they point to)\n", res.Symlinked)
	}
	a.printf("  read       %s\n", humanBytes(res.BytesRead))
	a.printf("  new        %d of %d chunks, %s stored (%s before compression)\n", res.NewBlobs, res.Chunks, humanBytes(res.NewStored), humanBytes(res.NewRaw))
	a.printf("  deduped    %s already in the registry\n", humanBytes(res.Logical-res.NewRaw))
	if res.DeltaBlobs > 0 {
		a.printf("  deltas     %d of the new chunks stored as differences from a reference chunk\n", res.DeltaBlobs)
	}
	if res.RepairedBlobs > 0 {
		a.printf("  repaired   %d damaged blobs in the registry stored again from the folder\n", res.RepairedBlobs)
	}
	if res.NewStored > 0 {
		a.printf("  ratio      %.2fx (logical / newly stored)\n", res.DedupeRatio())
	}
	switch {
	case res.AutoBase:
		a.printf("  base       %s, linked automatically: %s names %s (--base chooses another)\n",
			rec.Base, layout.AdapterConfigName, res.Adapter.Config.Base())
	case rec.Base != nil:
		a.printf("  base       %s\n", rec.Base)
	}
	if res.Adapter != nil {
		a.printf("  adapter    PEFT %s\n", res.Adapter.Config.Describe())
		if rec.Base == nil {
			a.printf("  base       none linked: %s names %s, which is neither a NAME nor an imported repo of this registry (push the base, then pass --base NAME@REF)\n",
				layout.AdapterConfigName, orNone(res.Adapter.Config.Base().String()))
		}
	}
	if len(rec.Metrics) > 0 {
		a.printf("  metrics    %s\n", formatMetrics(rec.Metrics))
	}
}

// orNone is s, or "none" when empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func formatMetrics(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = textsafe.Name(k) + "=" + strconv.FormatFloat(m[k], 'g', 6, 64)
	}
	return strings.Join(parts, " ")
}
