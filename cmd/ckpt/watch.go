package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/internal/watch"
	"github.com/ckptdev/ckpt/store/refs"
)

func (a *app) watchCommand() *cobra.Command {
	var pf policyFlags
	var opts watch.Options
	var once bool
	cmd := &cobra.Command{
		Use:   "watch OUTPUT_DIR NAME [retention flags] [--delete-local] [--base NAME@REF]",
		Short: "Push every checkpoint-N a training run writes, as it completes",
		Long: `Watch a Trainer output_dir and push each OUTPUT_DIR/checkpoint-N as NAME@N once it
is complete (trainer_state.json present, every shard of an index present) and its
files have not changed for --settle. Checkpoints are pushed in step order, each
once; progress is kept in the per-machine index, so a restarted watch pushes only
what it had not pushed, including checkpoints written while it was down.

With retention flags, the policy is applied to NAME after every push (refs only;
"ckpt gc" frees data). --delete-local replaces Trainer's save_total_limit: it
deletes local checkpoint folders that are pushed and verified in the registry,
never the newest one nor the best (by eval_loss, or the policy's --metric), and
only once their content, checked right before, is exactly what the registry
records for them.

A pushed checkpoint folder that is rewritten (training re-run into the same
output folder) with other content is a conflict: it is reported, never pushed
under the same NAME@N and never deleted. Watch a re-run under another NAME to
record it. Rewritten with the same bytes, it is the same checkpoint.

The folder is watched with inotify and rescanned every --interval (network file
systems deliver no events). SIGINT/SIGTERM stop the watch after the push in
flight. A checkpoint that fails to push is reported and retried when it changes.
--once pushes what is complete and exits (cron, CI); it exits 1 if anything failed.`,
		Example: `  ckpt watch out/ my-sft --base gpt2@base --keep-last 2 --keep-best 1 --delete-local
  ckpt watch out/ my-sft --once`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dir, opts.Name = args[0], args[1]
			if strings.Contains(opts.Name, "@") {
				return usagef("watch %s: NAME takes no @VERSION: each checkpoint is pushed as NAME@<step>", opts.Name)
			}
			if err := refs.CheckName(opts.Name); err != nil {
				return err
			}
			if opts.Interval <= 0 || opts.Settle <= 0 {
				return usagef("--interval and --settle must be positive")
			}
			if pf.given() {
				pol, err := pf.policy()
				if err != nil {
					return err
				}
				opts.Retention = &pol
			}
			ctx := cmd.Context()
			r, err := a.open(ctx, true)
			if err != nil {
				return err
			}
			if opts.Base != "" {
				bname, bref, err := parseRef(opts.Base, false)
				if err != nil {
					return err
				}
				if _, err := r.Resolve(ctx, bname, bref); err != nil {
					return fmt.Errorf("--base: %w", err)
				}
			}
			if a.index != nil {
				opts.State = a.index
			} else {
				fmt.Fprintf(a.stderr, "ckpt: warning: without the index cache, watch progress is kept in memory only\n")
			}
			opts.OnEvent = func(ev watch.Event) {
				if ev.IsError() {
					fmt.Fprintf(a.stderr, "ckpt: %s%s\n", ev, conflictHint(ev))
					return
				}
				a.printf("%s\n", ev)
			}
			w, err := watch.New(r, opts)
			if err != nil {
				return err
			}
			if once {
				return w.RunOnce(ctx)
			}
			a.printf("watching %s for %s (%s)\n", opts.Dir, opts.Name, describeWatch(opts))
			return w.Run(ctx)
		},
	}
	pf.register(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&opts.Base, "base", "", "NAME@REF whose config and tokenizer the checkpoints inherit")
	f.BoolVar(&opts.DeleteLocal, "delete-local", false, "delete local checkpoint folders once pushed and verified (never the newest or the best)")
	f.DurationVar(&opts.Interval, "interval", watch.DefaultInterval, "rescan period, also when file events work")
	f.DurationVar(&opts.Settle, "settle", watch.DefaultSettle, "how long a checkpoint's files must stay unchanged before it is pushed")
	f.BoolVar(&once, "once", false, "push what is complete, then exit")
	f.BoolVar(&a.deltas, "deltas", false, "experimental: store a tensor chunk as its difference from the same tensor in the previous version or the base when that is smaller (the registry then needs a ckpt that reads format version 2)")
	return cmd
}

// conflictHint says what to do about a conflict event.
func conflictHint(ev watch.Event) string {
	var c *watch.ConflictError
	if ev.Kind != watch.EventConflict || !errors.As(ev.Err, &c) {
		return ""
	}
	if c.Rewritten {
		return fmt.Sprintf(" (to record a re-run, watch it under another NAME: `ckpt watch %s NAME2`)", textsafe.Name(filepath.Dir(c.Dir)))
	}
	return fmt.Sprintf(" (watch under another NAME, or remove %s@%s with `ckpt rm` if this folder should replace it)", c.Name, c.Version)
}

// describeWatch summarizes the watch's settings for its first line.
func describeWatch(o watch.Options) string {
	parts := []string{fmt.Sprintf("rescan every %s, settle %s", o.Interval, o.Settle)}
	if o.Retention != nil {
		parts = append(parts, "retention "+o.Retention.String())
	}
	if o.DeleteLocal {
		parts = append(parts, "deleting pushed local checkpoints")
	}
	return strings.Join(parts, "; ")
}
