// Package chaos holds the kill -9 campaign against the ckpt binary. It has
// no code of its own outside its tests; this file documents the campaign.
//
// TestKillCampaign builds cmd/ckpt once, generates a small realistic
// training run (a GPT-2 shaped base model, a fine-tune "ft" whose weights-only
// checkpoints inherit config and tokenizer from the base, and a second
// fine-tune "scratch" of the same base with its own config, tokenizer and
// resume state), and then, for each backend (a local folder registry and a
// real MinIO server started by internal/miniotest), plays rounds:
//
//  1. Chaos: two to four ckpt processes, drawn at random from push (ft, or
//     scratch under a stored keep-last-2 retention policy; every scratch
//     push and every other ft push with --deltas, so delta blobs, their
//     edges and gc's re-keying of them meet kill -9 as well), pull (default
//     or --full, sometimes --link, sometimes --force over an earlier pull),
//     gc --grace 0s and retention apply --all, start together or at random
//     offsets. Half have an XDG_CACHE_HOME of their own, half share one of
//     two. Most get SIGKILL after a random delay scaled to how long that
//     command takes on this machine (measured at set-up, then followed
//     from the commands left to finish); some are left to finish.
//  2. Checks right after the kills, with a fresh process and --no-cache:
//     verify --all --read-data passes (every blob and manifest a ref reaches
//     exists and is intact); every push that exited 0 is listed with the
//     manifest its folder always yields; every ref names the manifest of
//     the folder its push was given; a killed pull left DIR absent, unchanged
//     or complete and byte-identical (an earlier DIR replaced with --force
//     may be moved aside but is never lost); a pull that exited 0 wrote
//     exactly the expected files.
//  3. Recovery: each killed push, pull and retention apply is run again,
//     unkilled, with the same arguments and cache, and must succeed (a pull
//     that already completed is re-run with --force); then a gc --grace 0s
//     must succeed. That gc proves that the locks of killed processes are
//     judged stale at once (their pid is dead on this host) rather than
//     after the 10-minute stale_after: otherwise it would wait for a dead
//     publish lock, or fail on a dead gc lock, until its deadline.
//  4. Checks again: verify and the ref checks as in 2; every object key in
//     the registry has one of the registry's key shapes; no lock is left;
//     blobs/ and manifests/ hold exactly as many objects as that gc found
//     reachable (nothing stray, nothing reachable missing); no partial file
//     is left under a local registry's .tmp/ (see below); a recovered pull
//     leaves nothing beside DIR but DIR (an earlier DIR a killed pull --force
//     moved aside is removed by the pull that completes DIR).
//
// The campaign found bugs, and a test stages each deterministically:
//
//   - TestPushDuringGCMark: a push that started while a gc was marking
//     published a ref to data the gc then deleted (the gc-marker race:
//     docs/format.md section 9 now has the push list the gc locks after
//     the run markers). It fails on the code before that fix.
//   - TestKilledPullThenPullAgain kills a pull of a folder of many small
//     files while it fills its temporary folder, then pulls again into the
//     same DIR, with and without --link in each order. The orders with
//     --link failed before harden-pull's private build folders; it now
//     guards them.
//
// On a local registry, the partial files killed writes leave under .tmp/
// are backdated by a week before the recovery gc (as if that time had
// passed), and the gc must remove them all.
//
// Every ckpt process runs under a deadline; nothing sleeps to wait for
// anything. Every random choice of a round comes from a generator seeded by
// CKPT_CHAOS_SEED, the backend and the round number; a failure names the
// seed and round, and the log holds every round's commands, delays and
// outcomes. Timing decides where a kill lands, so a seed reproduces the
// schedule, not the exact interleaving.
//
// Environment:
//
//	CKPT_CHAOS_SEED        seed (default: from the clock; printed on failure)
//	CKPT_CHAOS_ROUNDS      rounds per backend (default 24; 8 with -short)
//	CKPT_CHAOS_DURATION    also stop a backend's campaign after this long (e.g. 10m)
//	CKPT_CHAOS_BACKENDS    comma-separated subset of local,minio (default both)
//	CKPT_CHAOS_VERBOSE     non-empty: print the round log even when the campaign passes
//	CKPT_MINIO_BIN         the MinIO binary (see internal/miniotest)
//
// `make test` runs the short form as part of `go test ./...`; `make chaos`
// runs CHAOS_ROUNDS (default 500) rounds per backend and prints a summary:
// rounds, processes started, killed and finished per command, recoveries,
// and how many times each invariant was checked.
package chaos
