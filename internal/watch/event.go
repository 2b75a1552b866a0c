package watch

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/internal/units"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/object"
)

// Kind says what an Event reports.
type Kind string

// The kinds of events, one log line each.
const (
	EventPushed     Kind = "pushed"     // a checkpoint was recorded (Result)
	EventIncomplete Kind = "incomplete" // a settled folder lacks files and was skipped (Err: *layout.MissingError)
	EventDeleted    Kind = "deleted"    // a local checkpoint folder was removed (--delete-local)
	EventRetention  Kind = "retention"  // retention removed refs (Removed)
	EventConflict   Kind = "conflict"   // a folder's content differs from what NAME@N records (Err: *ConflictError); neither pushed nor deleted
	EventError      Kind = "error"      // something failed; the watch goes on (Err names the folder)
	EventWarning    Kind = "warning"    // degraded operation, e.g. no fsnotify (Err)
)

// Event is one thing the watcher did or could not do.
type Event struct {
	Kind    Kind
	Name    string            // NAME
	Step    int64             // the checkpoint's step, when the event concerns one
	Dir     string            // the checkpoint folder, when the event concerns one
	Result  *store.PushResult // EventPushed
	Removed []string          // EventRetention: versions whose refs were removed
	Err     error             // EventIncomplete, EventError, EventWarning
}

// IsError reports whether the event belongs on stderr.
func (e Event) IsError() bool {
	return e.Kind == EventError || e.Kind == EventWarning || e.Kind == EventConflict
}

// ConflictError says that a checkpoint folder holds other content than the
// registry's (or this watch's record of) NAME@VERSION: training was re-run
// into the same output folder, or the folder was edited after its push.
// The folder is neither pushed under that version nor deleted.
type ConflictError struct {
	Dir      string    // the checkpoint folder
	Name     string    // NAME
	Version  string    // the version the folder would be pushed as
	Recorded object.ID // the manifest NAME@VERSION records (or recorded when this watch pushed it)
	Local    object.ID // the folder's manifest now; zero if not computed
	// Rewritten: this watch pushed the folder before and its content
	// changed since (else the registry already had the version from
	// elsewhere).
	Rewritten bool
}

func (c *ConflictError) Error() string {
	local := ""
	if !c.Local.IsZero() {
		local = " " + c.Local.String()[:12]
	}
	if c.Rewritten {
		return fmt.Sprintf("%s was rewritten after its push as %s@%s: its content (manifest%s) differs from the pushed one (%s); not pushed again, kept locally",
			textsafe.Name(c.Dir), c.Name, c.Version, local, c.Recorded.String()[:12])
	}
	return fmt.Sprintf("%s: %s@%s already records other content (manifest %s, this folder%s); not pushed, kept locally",
		textsafe.Name(c.Dir), c.Name, c.Version, c.Recorded.String()[:12], local)
}

// Unwrap makes a conflict match store.ErrVersionExists.
func (c *ConflictError) Unwrap() error { return store.ErrVersionExists }

// String is the event's log line: one line, with names from the output
// folder escaped (textsafe).
func (e Event) String() string {
	switch e.Kind {
	case EventPushed:
		res := e.Result
		if res == nil {
			return fmt.Sprintf("pushed %s@%d", e.Name, e.Step)
		}
		ref := res.Record.Name + "@" + res.Record.Version
		if res.Unchanged {
			return fmt.Sprintf("pushed %s: already recorded with this content, nothing new", ref)
		}
		s := fmt.Sprintf("pushed %s: %s new of %s", ref, units.Bytes(res.NewStored), units.Bytes(res.Logical))
		if res.NewStored > 0 {
			s += fmt.Sprintf(" (%.2fx)", res.DedupeRatio())
		}
		if v, ok := res.Record.Metrics["eval_loss"]; ok {
			s += fmt.Sprintf(", eval_loss=%.6g", v)
		}
		return s
	case EventIncomplete:
		var me *layout.MissingError
		if errors.As(e.Err, &me) {
			return fmt.Sprintf("skipped incomplete %s: missing %s", textsafe.Name(filepath.Base(e.Dir)), textsafe.Line(strings.Join(me.Missing, "; ")))
		}
		return fmt.Sprintf("skipped incomplete %s: %s", textsafe.Name(filepath.Base(e.Dir)), errLine(e.Err))
	case EventDeleted:
		return fmt.Sprintf("deleted local %s (pushed as %s@%d)", textsafe.Name(filepath.Base(e.Dir)), e.Name, e.Step)
	case EventRetention:
		return fmt.Sprintf("retention %s: removed %s", e.Name, strings.Join(e.Removed, ", "))
	case EventWarning:
		return "warning: " + errLine(e.Err)
	case EventConflict:
		return "conflict: " + errLine(e.Err)
	default:
		return "error: " + errLine(e.Err)
	}
}

// errLine is an error's text on one line, safe for a terminal: file names
// inside it may come from the checkpoint folder.
func errLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	return textsafe.Line(err.Error())
}
