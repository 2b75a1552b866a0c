package chaos

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// verify runs `ckpt verify --all --read-data` from a fresh process without
// any per-machine cache: every manifest and blob a ref reaches exists, and
// every blob decodes and matches its ID.
func (c *campaign) verify(check string) {
	c.check(check, "verify", "--all", "--read-data", "--json")
	c.pass(check)
}

// listedRef is one version as `ckpt ls --json` prints it.
type listedRef struct {
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Manifest string   `json:"manifest"`
	Tags     []string `json:"tags"`
	Base     *struct {
		Name     string `json:"name"`
		Version  string `json:"version"`
		Manifest string `json:"manifest"`
	} `json:"base"`
}

// listRefs is every version ref, by NAME@VERSION, from a fresh process
// without cache. It also refreshes the scratch versions pulls choose from.
func (c *campaign) listRefs() map[string]listedRef {
	out := c.check("ls", "ls", "--json")
	var listed struct {
		Names []struct {
			Name     string      `json:"name"`
			Versions []listedRef `json:"versions"`
		} `json:"names"`
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		c.fatalf("ls --json: %v\n%s", err, out)
	}
	refs := map[string]listedRef{}
	c.scratchListed = c.scratchListed[:0]
	for _, n := range listed.Names {
		name, vs := n.Name, n.Versions
		for _, v := range vs {
			if v.Name != name {
				c.fatalf("ls --json lists %s@%s under %s", v.Name, v.Version, name)
			}
			ref := name + "@" + v.Version
			refs[ref] = v
			if name == "scratch" {
				c.scratchListed = append(c.scratchListed, ref)
			}
		}
	}
	sort.Strings(c.scratchListed)
	return refs
}

// learnPush records a push that exited 0: the manifest its folder yields
// (always the same: manifests are content-addressed), and for ft that its
// ref must stay.
func (c *campaign) learnPush(cmd *command, p *proc) {
	var res struct {
		Record struct {
			Name     string `json:"name"`
			Version  string `json:"version"`
			Manifest string `json:"manifest"`
		} `json:"record"`
		DeltaBlobs int `json:"delta_blobs"`
	}
	if err := json.Unmarshal(p.stdout.Bytes(), &res); err != nil || res.Record.Manifest == "" {
		c.fatalf("push %s exited 0 but printed no record (%v):\n%s", cmd.ref, err, p.stdout.String())
	}
	if got := res.Record.Name + "@" + res.Record.Version; got != cmd.ref {
		c.fatalf("push %s recorded %s", cmd.ref, got)
	}
	if m, ok := c.manifestOf[cmd.src]; ok && m != res.Record.Manifest {
		c.fatalf("push %s of %s gave manifest %s, an earlier push of the same folder gave %s", cmd.ref, cmd.src, res.Record.Manifest, m)
	}
	c.manifestOf[cmd.src] = res.Record.Manifest
	c.stats.deltas += res.DeltaBlobs
	if cmd.tracked {
		for _, r := range c.tracked {
			if r == cmd.ref {
				return
			}
		}
		c.tracked = append(c.tracked, cmd.ref)
	}
}

// checkRefs checks invariant 2 on a listing: every ft push that exited 0 is
// there with its folder's manifest, and every listed ref is one some push
// was started for, naming that folder's manifest and the base's. After
// recovery (settled) every killed push has been re-run, so every ref's
// manifest is known and every ft ref is tracked.
func (c *campaign) checkRefs(refs map[string]listedRef, settled bool) {
	for _, ref := range c.tracked {
		got, ok := refs[ref]
		if !ok {
			c.fatalf("2 %s was pushed (exit 0) and is gone from the registry", ref)
		}
		if want := c.manifestOf[c.refSrc[ref]]; got.Manifest != want {
			c.fatalf("2 %s names manifest %s, its push recorded %s", ref, got.Manifest, want)
		}
	}
	c.pass("2 every push that exited 0 is listed with its manifest")
	tracked := map[string]bool{}
	for _, r := range c.tracked {
		tracked[r] = true
	}
	baseManifest := c.manifestOf[c.data.base]
	for ref, got := range refs {
		src, ok := c.refSrc[ref]
		if !ok {
			c.fatalf("2 the registry lists %s, which no push was started for", ref)
		}
		if want, ok := c.manifestOf[src]; ok && got.Manifest != want {
			c.fatalf("2 %s names manifest %s; its folder %s yields %s", ref, got.Manifest, src, want)
		} else if !ok && settled {
			c.fatalf("2 %s is listed but no push of its folder %s succeeded, even the re-run", ref, src)
		}
		if ref == "gpt2@1" {
			if got.Base != nil || !contains(got.Tags, "base") {
				c.fatalf("2 gpt2@1 lost its tag or gained a base: %+v", got)
			}
			continue
		}
		if got.Base == nil || got.Base.Name != "gpt2" || got.Base.Version != "1" || got.Base.Manifest != baseManifest {
			c.fatalf("2 %s does not record base gpt2@1 (manifest %s): %+v", ref, baseManifest, got.Base)
		}
		if settled && strings.HasPrefix(ref, "ft@") && !tracked[ref] {
			c.fatalf("2 %s is listed but its push never exited 0, even the re-run", ref)
		}
	}
	if _, ok := refs["gpt2@1"]; !ok {
		c.fatalf("2 the base gpt2@1 is gone")
	}
	c.pass("2 every listed ref names the manifest of the folder pushed to it")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// judgePull checks invariant 3 on a pull of the chaos phase: exit 0 means
// DIR is exactly the expected folder; a killed (or refused) pull left DIR
// absent, unchanged, or complete and byte-identical. A pull may be refused
// only if it pulled a scratch version that retention removed.
func (c *campaign) judgePull(cmd *command, retentionInRound bool, refs map[string]listedRef) {
	p := cmd.p
	if p.exit == 0 {
		c.checkDir("pull that exited 0: "+cmd.String(), cmd.dir, cmd.expect)
		c.pass("2 a pull that exited 0 wrote exactly the pushed files")
		c.checkBeside(cmd.dir)
		c.rememberPulled(cmd.dir)
		return
	}
	if !p.killed {
		_, listed := refs[cmd.pullRef]
		if !strings.HasPrefix(cmd.pullRef, "scratch@") || (listed && !retentionInRound) {
			c.fatalf("pull failed unkilled: %s\nstderr:\n%s", cmd, p.stderr.String())
		}
		c.stats.refused[kindPull]++
	}
	got, exists, err := readTree(cmd.dir)
	if err != nil {
		c.fatalf("3 reading %s after %s: %v", cmd.dir, cmd, err)
	}
	where := ""
	switch {
	case exists && got.equal(cmd.expect):
		where = "pull killed with DIR complete"
	case exists && cmd.before != nil && got.equal(cmd.before):
		where = "pull --force killed with DIR unchanged"
	case !exists && cmd.before == nil:
		where = "pull killed with DIR absent"
	case exists:
		what := "a partial folder"
		if cmd.before != nil {
			what = "neither its old content nor the new"
		}
		c.fatalf("3 %s left %s in %s: %s", cmd, what, cmd.dir, cmd.expect.diff(got))
	case cmd.before != nil:
		// DIR is gone: its old content must still be beside it.
		aside := c.findAside(cmd.dir, cmd.before)
		if aside == "" {
			c.fatalf("3 %s removed %s and its old content is nowhere beside it", cmd, cmd.dir)
		}
		where = "pull --force killed with DIR moved aside, old content kept"
		c.logf("  note: %s left %s absent; its old content is in %s", cmd, cmd.dir, aside)
	}
	if p.killed {
		c.stats.where[where]++
	}
	c.pass("3 a killed pull leaves DIR absent, unchanged or complete")
}

// findAside returns a folder beside dir holding exactly old, or "".
func (c *campaign) findAside(dir string, old tree) string {
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		c.fatalf("%v", err)
	}
	for _, e := range entries {
		p := filepath.Join(filepath.Dir(dir), e.Name())
		if p == dir || !e.IsDir() {
			continue
		}
		if got, _, err := readTree(p); err == nil && got.equal(old) {
			return p
		}
	}
	return ""
}

// checkDir fails unless dir holds exactly want.
func (c *campaign) checkDir(what, dir string, want tree) {
	c.t.Helper()
	got, exists, err := readTree(dir)
	switch {
	case err != nil:
		c.fatalf("%s: %v", what, err)
	case !exists:
		c.fatalf("%s: %s does not exist", what, dir)
	case !want.equal(got):
		c.fatalf("%s: %s is not what was pushed: %s", what, dir, want.diff(got))
	}
}

// checkBeside fails if a completed pull left anything beside DIR (each
// pull's DIR has a parent of its own): no temporary or resume folder, and
// no earlier content of DIR that a killed pull --force moved aside (the
// pull that completes DIR removes it).
func (c *campaign) checkBeside(dir string) {
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		c.fatalf("%v", err)
	}
	var litter []string
	for _, e := range entries {
		if e.Name() != filepath.Base(dir) {
			litter = append(litter, e.Name())
		}
	}
	if len(litter) > 0 {
		c.fatalf("3 a completed pull into %s left %v beside it", dir, litter)
	}
	c.pass("3 a completed pull leaves nothing beside DIR")
}

// Key shapes of docs/format.md, section 2.
var (
	hexID       = `[0-9a-f]{64}`
	keyPatterns = map[string]*regexp.Regexp{
		"format":   regexp.MustCompile(`^ckpt-registry\.json$`),
		"blob":     regexp.MustCompile(`^blobs/[0-9a-f]{2}/` + hexID + `$`),
		"manifest": regexp.MustCompile(`^manifests/[0-9a-f]{2}/` + hexID + `$`),
		"ref":      regexp.MustCompile(`^refs/([A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*)/([vtp])/([A-Za-z0-9._-]+)$`),
		"lock":     regexp.MustCompile(`^locks/(publish|gc)-[0-9a-f]{16}\.json$`),
		"gc run":   regexp.MustCompile(`^gc/runs/[0-9a-f]{24}\.json$`),
		// Delta blobs (section 9): edges, rescue copies of blobs being
		// replaced in place, the format file of a raise in progress.
		"delta edge":     regexp.MustCompile(`^deltas/[0-9a-f]{2}/` + hexID + `/` + hexID + `$`),
		"rescue":         regexp.MustCompile(`^rescue/[0-9a-f]{2}/` + hexID + `$`),
		"format upgrade": regexp.MustCompile(`^ckpt-registry-upgrade\.json$`),
	}
)

// classifyKey returns the kind of a registry key, or "" for a stray one.
func classifyKey(key string) string {
	for kind, re := range keyPatterns {
		if re.MatchString(key) {
			if kind == "blob" || kind == "manifest" || kind == "rescue" {
				// The folder is the first two digits of the ID.
				dir, id, _ := strings.Cut(key[strings.IndexByte(key, '/')+1:], "/")
				if id[:2] != dir {
					return ""
				}
			}
			return kind
		}
	}
	return ""
}

// checkKeys checks invariant 5 after the recovery gc (gc, which ran alone
// with --grace 0s): every key has a registry shape, no lock is left (the
// killed processes' locks were stale at once), the version refs are exactly
// the listed ones, blobs/ and manifests/ hold exactly what gc found
// reachable (nothing stray, and with verify nothing reachable missing), and
// a local registry's .tmp/ is empty (its partial files were aged past the
// grace period before the gc).
func (c *campaign) checkKeys(gc *command, refs map[string]listedRef) {
	var res struct {
		Manifests int `json:"reachable_manifests"`
		Blobs     int `json:"reachable_blobs"`
		Rekeyed   int `json:"rekeyed"`
	}
	if err := json.Unmarshal(gc.p.stdout.Bytes(), &res); err != nil {
		c.fatalf("gc --json: %v\n%s", err, gc.p.stdout.String())
	}
	c.stats.rekeyed += res.Rekeyed
	keys, tmp, err := c.reg.keys(context.Background())
	if err != nil {
		c.fatalf("listing the registry: %v", err)
	}
	if tmp > 0 {
		c.fatalf("5 %d partial files of killed writes, aged past the grace period, are left under the local registry's .tmp/ after a gc", tmp)
	}
	count := map[string]int{}
	var stray, locks []string
	versions := map[string]bool{}
	for _, k := range keys {
		kind := classifyKey(k)
		count[kind]++
		switch kind {
		case "":
			stray = append(stray, k)
		case "lock":
			locks = append(locks, k)
		case "ref":
			m := keyPatterns["ref"].FindStringSubmatch(k)
			if m[2] == "v" {
				versions[m[1]+"@"+m[3]] = true
			}
		}
	}
	if len(stray) > 0 {
		c.fatalf("5 the registry holds keys of no known shape: %v", stray)
	}
	if len(locks) > 0 {
		c.fatalf("5 locks left after a clean gc (the locks of killed processes should be stale at once): %v", locks)
	}
	if count["format"] != 1 {
		c.fatalf("5 ckpt-registry.json is missing")
	}
	if count["blob"] != res.Blobs || count["manifest"] != res.Manifests {
		c.fatalf("5 after gc --grace 0s the registry holds %d blobs and %d manifests; gc found %d and %d reachable",
			count["blob"], count["manifest"], res.Blobs, res.Manifests)
	}
	for ref := range refs {
		if !versions[ref] {
			c.fatalf("5 ls lists %s but the registry has no such version ref", ref)
		}
	}
	for ref := range versions {
		if _, ok := refs[ref]; !ok {
			c.fatalf("5 the registry holds the version ref %s but ls does not list it", ref)
		}
	}
	c.pass("5 no stray objects, no lock left, nothing unreachable after gc")
}

// checkShapes checks, right after the kills, that every key has a
// registry shape (unreferenced blobs and manifests are allowed: gc removes
// them later).
func (c *campaign) checkShapes() {
	keys, _, err := c.reg.keys(context.Background())
	if err != nil {
		c.fatalf("listing the registry: %v", err)
	}
	for _, k := range keys {
		switch classifyKey(k) {
		case "":
			c.fatalf("5 the registry holds a key of no known shape after the kills: %s", k)
		case "lock":
			// A killed process's lock: the recovery gc must find it stale.
			c.stats.where["lock left when the round ended (for the next gc)"]++
		}
	}
	c.pass("5 every key has a registry shape after kills")
}
