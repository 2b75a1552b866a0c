package chaos

import (
	"os"
	"strings"
	"testing"
)

// Known bugs of the code outside this package that the campaign runs into.
// Each check (or campaign move) that fails on one is skipped, naming the
// bug, unless CKPT_CHAOS_KNOWN_BUGS names it (or is "all"); once the bug is
// fixed, delete its constant and guards so that the check always runs.
const (
	// bugGCMarkerRace: gc deletes data a push is about to publish. The
	// push lists gc/runs/ first (R0) and re-checks its data at publish only
	// if a marker not in R0 appeared; but a gc writes its marker before it
	// marks and deletes, so a push that starts while a gc is marking sees
	// that gc's marker in R0, finds the unreferenced blobs and manifest it
	// needs still present (and skips them), the gc deletes them, and the
	// push, which waits for the gc lock only to publish, then publishes a
	// ref to data that no longer exists: verify fails, pull fails, the
	// checkpoint is lost. No kill and no cache is needed
	// (TestPushDuringGCMark, which fails at its first attempt on both
	// backends). The campaign first met it through the known-blob cache,
	// before harden-index was merged (MinIO, seed 1796079837982542876,
	// round 281): a push killed in that window had cached the blobs under
	// the generation that includes the marker, and its clean re-run skipped
	// them. Since then push confirms what only a cache vouched for, but it
	// still trusts what it saw itself during the gc's mark phase. Until it
	// is fixed no round of the campaign has both a gc and a push.
	bugGCMarkerRace = "gc-marker-race"
)

// checking reports whether the checks and campaign moves that hit bug run:
// CKPT_CHAOS_KNOWN_BUGS is "all" (or "1") or a comma-separated list of bug
// names that includes it.
func checking(bug string) bool {
	v := os.Getenv("CKPT_CHAOS_KNOWN_BUGS")
	if v == "all" || v == "1" {
		return true
	}
	for _, name := range strings.Split(v, ",") {
		if strings.TrimSpace(name) == bug {
			return true
		}
	}
	return false
}

// knownBug skips t unless bug is being checked.
func knownBug(t *testing.T, bug string) {
	t.Helper()
	if !checking(bug) {
		t.Skipf("known bug %q (see knownbugs_test.go), not fixed yet; CKPT_CHAOS_KNOWN_BUGS=%s runs this check", bug, bug)
	}
}
