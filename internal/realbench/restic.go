package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// This file runs the restic column of the peers table: every checkpoint
// folder backed up, in push order, into one fresh local repository, then
// the snapshots of the checkpoints ckpt's retention removed forgotten and
// the repository pruned.

// resticHost is the host name every snapshot is taken with.
const resticHost = "realbench"

// resticSnapshot is the snapshot one checkpoint folder was backed up as.
type resticSnapshot struct {
	run, version string
	id           string
}

// resticForget returns the IDs of the snapshots of the checkpoints removed
// lists (by run, the versions ckpt's retention removed), in backup order.
func resticForget(snaps []resticSnapshot, removed map[string][]string) []string {
	gone := map[[2]string]bool{}
	for run, versions := range removed {
		for _, v := range versions {
			gone[[2]string{run, v}] = true
		}
	}
	var ids []string
	for _, s := range snaps {
		if gone[[2]string{s.run, s.version}] {
			ids = append(ids, s.id)
		}
	}
	return ids
}

// resticResult is the repository's size after all backups and after
// forget and prune.
type resticResult struct {
	before, after int64
	// forgotten is the number of snapshots forgotten.
	forgotten int
}

// resticRunner runs restic on one repository.
type resticRunner struct {
	bin, repo, cache string
}

func (rr resticRunner) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, rr.bin, append([]string{"--cache-dir", rr.cache}, args...)...)
	cmd.Env = append(os.Environ(), "RESTIC_PASSWORD=realbench", "RESTIC_REPOSITORY="+rr.repo)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("restic %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// backupSummary reads the snapshot ID from restic backup --json output.
func backupSummary(out []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var msg struct {
			MessageType string `json:"message_type"`
			SnapshotID  string `json:"snapshot_id"`
		}
		if json.Unmarshal(sc.Bytes(), &msg) != nil {
			continue
		}
		if msg.MessageType == "summary" && msg.SnapshotID != "" {
			return msg.SnapshotID, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("restic backup printed no summary with a snapshot ID")
}

// benchRestic backs up every pushed checkpoint folder into a fresh
// repository under tmp, measures it, forgets the snapshots of the
// checkpoints removed names and prunes.
func benchRestic(ctx context.Context, bin, tmp string, pushes []pushed, removed map[string][]string) (resticResult, error) {
	rr := resticRunner{bin: bin, repo: filepath.Join(tmp, "restic-repo"), cache: filepath.Join(tmp, "restic-cache")}
	if _, err := rr.run(ctx, "init", "--repository-version", "2"); err != nil {
		return resticResult{}, err
	}
	var snaps []resticSnapshot
	for _, p := range pushes {
		out, err := rr.run(ctx, "backup", "--json", "--host", resticHost, "--tag", p.run, p.dir)
		if err != nil {
			return resticResult{}, err
		}
		id, err := backupSummary(out)
		if err != nil {
			return resticResult{}, fmt.Errorf("restic backup %s: %w", p.dir, err)
		}
		snaps = append(snaps, resticSnapshot{run: p.run, version: p.version, id: id})
	}
	var res resticResult
	var err error
	if res.before, err = dirSize(rr.repo); err != nil {
		return res, err
	}
	ids := resticForget(snaps, removed)
	res.forgotten = len(ids)
	if len(ids) > 0 {
		if _, err := rr.run(ctx, append([]string{"forget"}, ids...)...); err != nil {
			return res, err
		}
	}
	// --max-unused 0: restic repacks until no unused byte is left, its
	// smallest repository (ckpt's gc is exact too).
	if _, err := rr.run(ctx, "prune", "--max-unused", "0"); err != nil {
		return res, err
	}
	res.after, err = dirSize(rr.repo)
	return res, err
}

// dirSize is the sum of the sizes of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}
