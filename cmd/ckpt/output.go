package main

// The --json output of every command, in one place. Each command prints one
// JSON object whose first key is "schema": "ckpt.<command>/v1" (subcommands
// joined by "."), documented field by field in docs/cli-json.md; a test
// (TestJSONDocsMatchTypes) keeps the two in step, and golden files under
// testdata/json pin the output itself.
//
// Conventions, kept by every type here:
//   - keys are snake_case and always present: no omitempty; a missing
//     object is null, an empty list [] and an empty map {};
//   - byte counts are integers (keys end in _bytes, or are a file's or
//     chunk's size);
//   - times are RFC 3339 strings in UTC (fractional seconds when not zero);
//   - durations are seconds, as a number (keys end in _seconds);
//   - object and registry IDs are lowercase hex strings; versions, tags and
//     names are strings; steps are integers.
//
// Within v1, fields are only added, never renamed, removed or retyped.
// Library types (store.Record, store.PullResult, diff.Report, ...) are
// never marshalled directly: they are copied into these, so that a change
// in a library cannot change the CLI's output by accident.

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"time"

	"github.com/ckptdev/ckpt/diff"
	"github.com/ckptdev/ckpt/hfcache/hfbridge"
	"github.com/ckptdev/ckpt/layout"
	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/manifest"
	"github.com/ckptdev/ckpt/store/refs"
)

// schemaVersion is the version of every schema below.
const schemaVersion = "v1"

// schemaName is the "schema" value of a command's output.
func schemaName(command string) string { return "ckpt." + command + "/" + schemaVersion }

// outputTypes maps every schema to its type (TestJSONDocsMatchTypes walks
// them against the docs).
var outputTypes = map[string]any{
	schemaName("init"):            initOutput{},
	schemaName("push"):            pushOutput{},
	schemaName("import-hf"):       importHFOutput{},
	schemaName("pull-hf-cache"):   pullHFCacheOutput{},
	schemaName("pull"):            pullOutput{},
	schemaName("copy"):            copyOutput{},
	schemaName("ls"):              lsOutput{},
	schemaName("show"):            showOutput{},
	schemaName("tag"):             tagOutput{},
	schemaName("untag"):           untagOutput{},
	schemaName("rm"):              rmOutput{},
	schemaName("verify"):          verifyOutput{},
	schemaName("du"):              duOutput{},
	schemaName("diff"):            diffOutput{},
	schemaName("gc"):              gcOutput{},
	schemaName("retention.plan"):  retentionPlanOutput{},
	schemaName("retention.apply"): retentionApplyOutput{},
	schemaName("retention.set"):   retentionSetOutput{},
}

// checkOutput is an error unless v is one of outputTypes with its own
// schema: nothing else is printed as JSON.
func checkOutput(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Struct {
		if f := rv.FieldByName("Schema"); f.IsValid() && f.Kind() == reflect.String {
			if want, ok := outputTypes[f.String()]; ok && reflect.TypeOf(want) == rv.Type() {
				return nil
			}
		}
	}
	return fmt.Errorf("internal error: %T is not the output type of its schema (cmd/ckpt/output.go)", v)
}

// sharedTypes are objects several schemas hold, documented once under
// their name.
var sharedTypes = map[string]any{
	"record":   recordOutput{},
	"policy":   policyOutput{},
	"decision": decisionOutput{},
}

// jsonTime is t as RFC 3339 in UTC.
func jsonTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// orEmpty is s, or an empty list for nil (so that it prints as []).
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// distinct is s without repeats, in order of first appearance (never nil).
func distinct(s []string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// absPath is p made absolute when possible.
func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// --- shared objects ---

// recordOutput is a checkpoint's record (refs/<NAME>/v/<VERSION>).
type recordOutput struct {
	Name         string             `json:"name"`
	Version      string             `json:"version"`
	Manifest     string             `json:"manifest"`
	Pushed       string             `json:"pushed"`
	Step         int64              `json:"step"`
	Epoch        *float64           `json:"epoch"`
	Metrics      map[string]float64 `json:"metrics"`
	Base         *baseOutput        `json:"base"`
	Files        int                `json:"files"`
	LogicalBytes int64              `json:"logical_bytes"`
	StoredBytes  int64              `json:"stored_bytes"`
	Source       string             `json:"source"`
	HF           *hfOriginOutput    `json:"hf"`
	TrainerBest  *trainerBestOutput `json:"trainer_best"`
}

// hfOriginOutput is the Hugging Face Hub repository and commit a
// checkpoint was imported from (ckpt import-hf).
type hfOriginOutput struct {
	Repo     string `json:"repo"`
	Revision string `json:"revision"`
}

// trainerBestOutput is what trainer_state.json said about Trainer's best
// checkpoint when the checkpoint was saved.
type trainerBestOutput struct {
	BestMetric          *float64 `json:"best_metric"`
	Metric              *string  `json:"metric"`
	BestGlobalStep      *int64   `json:"best_global_step"`
	BestModelCheckpoint *string  `json:"best_model_checkpoint"`
	Step                *int64   `json:"step"`
}

func newTrainerBestOutput(t *refs.TrainerBest) *trainerBestOutput {
	if t.IsZero() {
		return nil
	}
	nonEmpty := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	out := &trainerBestOutput{BestMetric: t.Value, Metric: nonEmpty(t.Metric), BestGlobalStep: t.GlobalStep,
		BestModelCheckpoint: nonEmpty(t.ModelCheckpoint)}
	if step, ok := t.Step(); ok {
		out.Step = &step
	}
	return out
}

// bestByOutput is what NAME@best ranks by.
type bestByOutput struct {
	Metric          string `json:"metric"`
	GreaterIsBetter bool   `json:"greater_is_better"`
	Source          string `json:"source"`
}

func newBestByOutput(by refs.BestBy) *bestByOutput {
	return &bestByOutput{Metric: by.Metric, GreaterIsBetter: by.GreaterIsBetter, Source: string(by.Source)}
}

// baseOutput is the base a record inherits from.
type baseOutput struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Manifest string `json:"manifest"`
}

func newRecordOutput(rec refs.Record) recordOutput {
	out := recordOutput{
		Name: rec.Name, Version: rec.Version, Manifest: rec.Manifest.String(), Pushed: jsonTime(rec.Pushed),
		Step: rec.Step, Epoch: rec.Epoch, Metrics: rec.Metrics, Files: rec.Files,
		LogicalBytes: rec.Logical, StoredBytes: rec.Stored, Source: rec.Source,
		TrainerBest: newTrainerBestOutput(rec.TrainerBest),
	}
	if out.Metrics == nil {
		out.Metrics = map[string]float64{}
	}
	if rec.Base != nil {
		out.Base = &baseOutput{Name: rec.Base.Name, Version: rec.Base.Version, Manifest: rec.Base.Manifest.String()}
	}
	if rec.HF != nil {
		out.HF = &hfOriginOutput{Repo: rec.HF.Repo, Revision: rec.HF.Revision}
	}
	return out
}

// policyOutput is a retention policy, with its metric normalized and its
// direction resolved.
type policyOutput struct {
	KeepLast          int     `json:"keep_last"`
	KeepBest          int     `json:"keep_best"`
	Metric            string  `json:"metric"`
	GreaterIsBetter   bool    `json:"greater_is_better"`
	KeepEvery         int64   `json:"keep_every"`
	KeepWithinSeconds float64 `json:"keep_within_seconds"`
	Description       string  `json:"description"`
}

func newPolicyOutput(p retention.Policy) policyOutput {
	greater := retention.GreaterIsBetter(p.Metric)
	if p.GreaterIsBetter != nil {
		greater = *p.GreaterIsBetter
	}
	return policyOutput{
		KeepLast: p.KeepLast, KeepBest: p.KeepBest, Metric: retention.NormalizeMetric(p.Metric), GreaterIsBetter: greater,
		KeepEvery: p.KeepEvery, KeepWithinSeconds: p.KeepWithin.Seconds(), Description: p.String(),
	}
}

// decisionOutput is what a retention plan decides for one checkpoint.
type decisionOutput struct {
	Version string   `json:"version"`
	Step    int64    `json:"step"`
	Keep    bool     `json:"keep"`
	Reasons []string `json:"reasons"`
	Tags    []string `json:"tags"`
}

func newDecisionOutputs(plan retention.Plan) []decisionOutput {
	out := make([]decisionOutput, len(plan.Decisions))
	for i, d := range plan.Decisions {
		out[i] = decisionOutput{Version: d.Checkpoint.Version, Step: d.Checkpoint.Step, Keep: d.Keep,
			Reasons: orEmpty(d.Reasons), Tags: orEmpty(d.Checkpoint.Tags)}
	}
	return out
}

// --- init ---

type initOutput struct {
	Schema     string `json:"schema"`
	Created    bool   `json:"created"`
	RegistryID string `json:"registry_id"`
	Location   string `json:"location"`
}

func newInitOutput(r *store.Registry, created bool) initOutput {
	return initOutput{Schema: schemaName("init"), Created: created, RegistryID: r.ID(), Location: r.Location()}
}

// --- push ---

type pushOutput struct {
	Schema         string         `json:"schema"`
	Record         recordOutput   `json:"record"`
	Unchanged      bool           `json:"unchanged"`
	Files          int            `json:"files"`
	SymlinkedFiles int            `json:"symlinked_files"`
	LogicalBytes   int64          `json:"logical_bytes"`
	ReadBytes      int64          `json:"read_bytes"`
	Chunks         int            `json:"chunks"`
	NewBlobs       int            `json:"new_blobs"`
	NewRawBytes    int64          `json:"new_raw_bytes"`
	NewStoredBytes int64          `json:"new_stored_bytes"`
	DedupeRatio    float64        `json:"dedupe_ratio"`
	DeltaBlobs     int            `json:"delta_blobs"`
	RepairedBlobs  int            `json:"repaired_blobs"`
	Adapter        *adapterOutput `json:"adapter"`
	BaseLinked     bool           `json:"base_linked_automatically"`
}

// adapterOutput is a PEFT adapter's configuration, as far as ckpt reads it.
type adapterOutput struct {
	PeftType            string `json:"peft_type"`
	BaseModelNameOrPath string `json:"base_model_name_or_path"`
	Revision            string `json:"revision"`
	Description         string `json:"description"`
}

func newAdapterOutput(a *layout.Adapter) *adapterOutput {
	if a == nil {
		return nil
	}
	return &adapterOutput{PeftType: a.Config.PeftType, BaseModelNameOrPath: a.Config.BaseModelNameOrPath,
		Revision: a.Config.Revision, Description: a.Config.Describe()}
}

func newPushOutput(res *store.PushResult) pushOutput {
	return pushOutput{
		Schema: schemaName("push"), Record: newRecordOutput(res.Record), Unchanged: res.Unchanged,
		Files: res.Files, SymlinkedFiles: res.Symlinked, LogicalBytes: res.Logical, ReadBytes: res.BytesRead, Chunks: res.Chunks,
		NewBlobs: res.NewBlobs, NewRawBytes: res.NewRaw, NewStoredBytes: res.NewStored, DedupeRatio: res.DedupeRatio(),
		DeltaBlobs: res.DeltaBlobs, RepairedBlobs: res.RepairedBlobs, Adapter: newAdapterOutput(res.Adapter), BaseLinked: res.AutoBase,
	}
}

// --- import-hf ---

type importHFOutput struct {
	Schema         string       `json:"schema"`
	HFRepo         string       `json:"hf_repo"`
	HFCommit       string       `json:"hf_commit"`
	HFRef          string       `json:"hf_ref"`
	SnapshotDir    string       `json:"snapshot_dir"`
	Record         recordOutput `json:"record"`
	Unchanged      bool         `json:"unchanged"`
	Files          int          `json:"files"`
	SymlinkedFiles int          `json:"symlinked_files"`
	LogicalBytes   int64        `json:"logical_bytes"`
	ReadBytes      int64        `json:"read_bytes"`
	NewBlobs       int          `json:"new_blobs"`
	NewStoredBytes int64        `json:"new_stored_bytes"`
}

func newImportHFOutput(res *hfbridge.ImportResult) importHFOutput {
	p := res.Push
	return importHFOutput{
		Schema: schemaName("import-hf"), HFRepo: res.Snapshot.Repo.String(), HFCommit: res.Snapshot.Commit, HFRef: res.Snapshot.Ref,
		SnapshotDir: res.Snapshot.Dir, Record: newRecordOutput(p.Record), Unchanged: p.Unchanged, Files: p.Files,
		SymlinkedFiles: p.Symlinked, LogicalBytes: p.Logical, ReadBytes: p.BytesRead, NewBlobs: p.NewBlobs, NewStoredBytes: p.NewStored,
	}
}

// --- pull --hf-cache ---

type pullHFCacheOutput struct {
	Schema       string             `json:"schema"`
	Record       recordOutput       `json:"record"`
	CacheDir     string             `json:"cache_dir"`
	HFRepo       string             `json:"hf_repo"`
	HFRevision   string             `json:"hf_revision"`
	HFBranch     string             `json:"hf_branch"`
	SnapshotDir  string             `json:"snapshot_dir"`
	Files        []pulledFileOutput `json:"files"`
	LogicalBytes int64              `json:"logical_bytes"`
}

func newPullHFCacheOutput(res *hfbridge.PullResult, cacheDir string) pullHFCacheOutput {
	out := pullHFCacheOutput{
		Schema: schemaName("pull-hf-cache"), Record: newRecordOutput(res.Record), CacheDir: absPath(cacheDir),
		HFRepo: res.Repo, HFRevision: res.Revision, HFBranch: res.Branch, SnapshotDir: absPath(res.SnapshotDir),
		Files: make([]pulledFileOutput, len(res.Files)), LogicalBytes: res.Bytes,
	}
	for i, f := range res.Files {
		out.Files[i] = pulledFileOutput{Path: f.Path, Size: f.Size, Role: f.Role, From: f.From}
	}
	return out
}

// --- pull ---

type pullOutput struct {
	Schema       string             `json:"schema"`
	Record       recordOutput       `json:"record"`
	Dir          string             `json:"dir"`
	Files        []pulledFileOutput `json:"files"`
	LogicalBytes int64              `json:"logical_bytes"`
	Linked       linkedOutput       `json:"linked"`
	Base         *recordOutput      `json:"base"`
	Partial      bool               `json:"partial"`
	Runnable     bool               `json:"runnable"`
	NotRunnable  string             `json:"not_runnable"`
	LeftOut      []pulledFileOutput `json:"left_out"`
	RemovedOld   []string           `json:"removed_old"`
}

// copyOutput is what ckpt copy did: one entry per version ref and tag,
// then the objects it transferred.
type copyOutput struct {
	Schema            string              `json:"schema"`
	From              string              `json:"from"`
	To                string              `json:"to"`
	Versions          []copiedVersionJSON `json:"versions"`
	Tags              []copiedTagJSON     `json:"tags"`
	Objects           int                 `json:"objects"`
	PresentObjects    int                 `json:"present_objects"`
	CopiedBlobs       int                 `json:"copied_blobs"`
	CopiedManifests   int                 `json:"copied_manifests"`
	ContentBytes      int64               `json:"content_bytes"`
	StoredBytes       int64               `json:"stored_bytes"`
	ServerSideObjects int                 `json:"server_side_objects"`
}

type copiedVersionJSON struct {
	Name     string  `json:"name"`
	Version  string  `json:"version"`
	Manifest string  `json:"manifest"`
	Base     bool    `json:"base"`
	Status   string  `json:"status"`
	Error    *string `json:"error"`
}

type copiedTagJSON struct {
	Name    string  `json:"name"`
	Tag     string  `json:"tag"`
	Version string  `json:"version"`
	Status  string  `json:"status"`
	Error   *string `json:"error"`
}

// errorText is err's message, or nil for none.
func errorText(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

func newCopyOutput(res *store.CopyResult, from, to string) copyOutput {
	out := copyOutput{
		Schema: schemaName("copy"), From: from, To: to,
		Versions: make([]copiedVersionJSON, len(res.Versions)), Tags: make([]copiedTagJSON, len(res.Tags)),
		Objects: res.Objects, PresentObjects: res.Present, CopiedBlobs: res.Blobs, CopiedManifests: res.Manifests,
		ContentBytes: res.ContentBytes, StoredBytes: res.StoredBytes, ServerSideObjects: res.ServerSide,
	}
	for i, v := range res.Versions {
		out.Versions[i] = copiedVersionJSON{Name: v.Name, Version: v.Version, Manifest: v.Manifest.String(),
			Base: v.Base, Status: string(v.Status), Error: errorText(v.Err)}
	}
	for i, t := range res.Tags {
		out.Tags[i] = copiedTagJSON{Name: t.Name, Tag: t.Tag, Version: t.Version, Status: string(t.Status), Error: errorText(t.Err)}
	}
	return out
}

type pulledFileOutput struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Role string `json:"role"`
	From string `json:"from"`
}

// linkedOutput counts the files pull --link materialized by each method.
type linkedOutput struct {
	Reflink  int `json:"reflink"`
	Hardlink int `json:"hardlink"`
	Copy     int `json:"copy"`
}

func newPullOutput(res *store.PullResult, dir string) pullOutput {
	out := pullOutput{
		Schema: schemaName("pull"), Record: newRecordOutput(res.Record), Dir: absPath(dir),
		Files: make([]pulledFileOutput, len(res.Files)), LogicalBytes: res.Bytes,
		Linked: linkedOutput{
			Reflink:  res.Linked[store.LinkReflink],
			Hardlink: res.Linked[store.LinkHardlink],
			Copy:     res.Linked[store.LinkCopy],
		},
	}
	for i, f := range res.Files {
		out.Files[i] = pulledFileOutput{Path: f.Path, Size: f.Size, Role: f.Role, From: f.From}
	}
	out.Partial, out.Runnable, out.NotRunnable = res.Partial, res.Runnable, res.NotRunnable
	if res.Base != nil {
		base := newRecordOutput(*res.Base)
		out.Base = &base
	}
	out.LeftOut = make([]pulledFileOutput, len(res.LeftOut))
	for i, f := range res.LeftOut {
		out.LeftOut[i] = pulledFileOutput{Path: f.Path, Size: f.Size, Role: f.Role, From: f.From}
	}
	out.RemovedOld = make([]string, len(res.RemovedOld))
	for i, p := range res.RemovedOld {
		out.RemovedOld[i] = absPath(p)
	}
	return out
}

// --- ls ---

type lsOutput struct {
	Schema string         `json:"schema"`
	Names  []lsNameOutput `json:"names"`
}

type lsNameOutput struct {
	Name      string            `json:"name"`
	BestBy    *bestByOutput     `json:"best_by"`
	BestError string            `json:"best_error"`
	Versions  []lsVersionOutput `json:"versions"`
}

// lsVersionOutput is a record with its markers.
type lsVersionOutput struct {
	recordOutput
	Tags   []string `json:"tags"`
	Latest bool     `json:"latest"`
	Best   bool     `json:"best"`
}

func newLsOutput(c *refs.Catalog) lsOutput {
	out := lsOutput{Schema: schemaName("ls"), Names: []lsNameOutput{}}
	for _, n := range c.Names() {
		recs := c.Records[n]
		no := lsNameOutput{Name: n}
		best, by, hasBest, err := c.Best(n)
		if err != nil {
			no.BestError = err.Error()
		} else {
			no.BestBy = newBestByOutput(by)
		}
		vs := make([]lsVersionOutput, len(recs))
		for i, rec := range recs {
			vs[i] = lsVersionOutput{
				recordOutput: newRecordOutput(rec),
				Tags:         orEmpty(c.TagsOf(n, rec.Version)),
				Latest:       i == len(recs)-1,
				Best:         hasBest && rec.Version == best.Version,
			}
		}
		no.Versions = vs
		out.Names = append(out.Names, no)
	}
	return out
}

// --- show ---

type showOutput struct {
	Schema string               `json:"schema"`
	Record recordOutput         `json:"record"`
	Tags   []string             `json:"tags"`
	Best   *showBestOutput      `json:"best"`
	Files  []manifestFileOutput `json:"files"`
}

// showBestOutput is ckpt's choice of best next to Trainer's.
type showBestOutput struct {
	By             bestByOutput `json:"by"`
	Version        *string      `json:"version"`
	AsOfVersion    *string      `json:"as_of_version"`
	TrainerVersion *string      `json:"trainer_version"`
	Comparable     bool         `json:"comparable"`
	Agree          bool         `json:"agree"`
	Disagreement   string       `json:"disagreement"`
}

// newShowBestOutput is rec's comparison of ckpt's best with Trainer's;
// nil when what NAME@best ranks by cannot be told (NAME's stored policy
// is corrupt).
func newShowBestOutput(chk refs.BestCheck, best *refs.Record) *showBestOutput {
	version := func(r *refs.Record) *string {
		if r == nil {
			return nil
		}
		v := r.Version
		return &v
	}
	return &showBestOutput{By: *newBestByOutput(chk.By), Version: version(best), AsOfVersion: version(chk.Ckpt),
		TrainerVersion: version(chk.TrainerRecord), Comparable: chk.Comparable, Agree: chk.Agree, Disagreement: chk.Why}
}

// manifestFileOutput is one file of a manifest.
type manifestFileOutput struct {
	Path        string             `json:"path"`
	Size        int64              `json:"size"`
	Mode        uint32             `json:"mode"`
	Role        string             `json:"role"`
	Digest      string             `json:"digest"`
	Chunks      []chunkOutput      `json:"chunks"`
	Safetensors *safetensorsOutput `json:"safetensors"`
}

type chunkOutput struct {
	ID     string `json:"id"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

type safetensorsOutput struct {
	DataOffset int64             `json:"data_offset"`
	Metadata   map[string]string `json:"metadata"`
	Tensors    []tensorOutput    `json:"tensors"`
}

type tensorOutput struct {
	Name   string  `json:"name"`
	Dtype  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	Begin  int64   `json:"begin"`
	End    int64   `json:"end"`
	Digest string  `json:"digest"`
}

func newShowOutput(rec refs.Record, tags []string, best *showBestOutput, m *manifest.Manifest) showOutput {
	out := showOutput{Schema: schemaName("show"), Record: newRecordOutput(rec), Tags: orEmpty(tags), Best: best,
		Files: make([]manifestFileOutput, len(m.Files))}
	for i, f := range m.Files {
		mf := manifestFileOutput{Path: f.Path, Size: f.Size, Mode: f.Mode, Role: f.Role, Digest: f.Digest,
			Chunks: make([]chunkOutput, len(f.Chunks))}
		for j, c := range f.Chunks {
			mf.Chunks[j] = chunkOutput{ID: c.ID.String(), Offset: c.Offset, Size: c.Size}
		}
		if st := f.Safetensors; st != nil {
			so := &safetensorsOutput{DataOffset: st.DataOffset, Metadata: st.Metadata, Tensors: make([]tensorOutput, len(st.Tensors))}
			if so.Metadata == nil {
				so.Metadata = map[string]string{}
			}
			for j, t := range st.Tensors {
				so.Tensors[j] = tensorOutput{Name: t.Name, Dtype: t.Dtype, Shape: orEmpty(t.Shape), Begin: t.Begin, End: t.End, Digest: t.Digest}
			}
			mf.Safetensors = so
		}
		out.Files[i] = mf
	}
	return out
}

// --- tag, untag, rm ---

type tagOutput struct {
	Schema  string `json:"schema"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Tag     string `json:"tag"`
}

type untagOutput struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Tag    string `json:"tag"`
}

type rmOutput struct {
	Schema      string       `json:"schema"`
	Record      recordOutput `json:"record"`
	RemovedTags []string     `json:"removed_tags"`
}

// --- verify ---

type verifyOutput struct {
	Schema      string          `json:"schema"`
	OK          bool            `json:"ok"`
	All         bool            `json:"all"`
	ReadData    bool            `json:"read_data"`
	Refs        int             `json:"refs"`
	Checkpoints int             `json:"checkpoints"`
	Manifests   int             `json:"manifests"`
	Blobs       int             `json:"blobs"`
	ReadBytes   int64           `json:"read_bytes"`
	Problems    []problemOutput `json:"problems"`
}

type problemOutput struct {
	Object string   `json:"object"`
	UsedBy []string `json:"used_by"`
	Error  string   `json:"error"`
}

func newVerifyOutput(rep *store.VerifyReport, all, readData bool) verifyOutput {
	out := verifyOutput{
		Schema: schemaName("verify"), OK: len(rep.Problems) == 0, All: all, ReadData: readData,
		Refs: rep.Refs, Checkpoints: rep.Checkpoints, Manifests: rep.Manifests, Blobs: rep.Blobs,
		ReadBytes: rep.BytesRead, Problems: make([]problemOutput, len(rep.Problems)),
	}
	for i, p := range rep.Problems {
		out.Problems[i] = problemOutput{Object: p.Object, UsedBy: distinct(p.Files), Error: p.Err.Error()}
	}
	return out
}

// --- du ---

type duOutput struct {
	Schema              string  `json:"schema"`
	Names               int     `json:"names"`
	Checkpoints         int     `json:"checkpoints"`
	Blobs               int     `json:"blobs"`
	Manifests           int     `json:"manifests"`
	LogicalBytes        int64   `json:"logical_bytes"`
	UniqueBytes         int64   `json:"unique_bytes"`
	StoredBytes         int64   `json:"stored_bytes"`
	UnreferencedBytes   int64   `json:"unreferenced_bytes"`
	UnreferencedObjects int     `json:"unreferenced_objects"`
	DeltaRefBytes       int64   `json:"delta_reference_bytes"`
	DeltaRefObjects     int     `json:"delta_reference_objects"`
	DedupeRatio         float64 `json:"dedupe_ratio"`
	CompressionRatio    float64 `json:"compression_ratio"`
}

func newDuOutput(u *store.Usage) duOutput {
	return duOutput{
		Schema: schemaName("du"), Names: u.Names, Checkpoints: u.Checkpoints, Blobs: u.Blobs, Manifests: u.Manifests,
		LogicalBytes: u.Logical, UniqueBytes: u.Unique, StoredBytes: u.Stored,
		UnreferencedBytes: u.Unreferenced, UnreferencedObjects: u.UnreferencedObjects,
		DeltaRefBytes: u.DeltaReferences, DeltaRefObjects: u.DeltaReferenceObjects,
		DedupeRatio: u.DedupeRatio(), CompressionRatio: u.CompressionRatio(),
	}
}

// --- gc ---

type gcOutput struct {
	Schema             string  `json:"schema"`
	DryRun             bool    `json:"dry_run"`
	Checkpoints        int     `json:"checkpoints"`
	ReachableManifests int     `json:"reachable_manifests"`
	ReachableBlobs     int     `json:"reachable_blobs"`
	DeletedManifests   int     `json:"deleted_manifests"`
	DeletedBlobs       int     `json:"deleted_blobs"`
	FreedBytes         int64   `json:"freed_bytes"`
	KeptYoung          int     `json:"kept_young"`
	DeltaBlobs         int     `json:"delta_blobs"`
	Reencoded          int     `json:"reencoded"`
	Rekeyed            int     `json:"rekeyed"`
	DurationSeconds    float64 `json:"duration_seconds"`
}

func newGCOutput(res *store.GCResult) gcOutput {
	return gcOutput{
		Schema: schemaName("gc"), DryRun: res.DryRun, Checkpoints: res.Checkpoints,
		ReachableManifests: res.ReachableManifests, ReachableBlobs: res.ReachableBlobs,
		DeletedManifests: res.DeletedManifests, DeletedBlobs: res.DeletedBlobs,
		FreedBytes: res.FreedBytes, KeptYoung: res.KeptYoung,
		DeltaBlobs: res.DeltaBlobs, Reencoded: res.Reencoded, Rekeyed: res.Rekeyed, DurationSeconds: res.Duration.Seconds(),
	}
}

// --- retention ---

type retentionPlanOutput struct {
	Schema    string           `json:"schema"`
	Name      string           `json:"name"`
	Policy    policyOutput     `json:"policy"`
	Decisions []decisionOutput `json:"decisions"`
	Kept      int              `json:"kept"`
	Deleted   int              `json:"deleted"`
}

func newRetentionPlanOutput(name string, plan retention.Plan) retentionPlanOutput {
	return retentionPlanOutput{Schema: schemaName("retention.plan"), Name: name, Policy: newPolicyOutput(plan.Policy),
		Decisions: newDecisionOutputs(plan), Kept: len(plan.Kept()), Deleted: len(plan.Deleted())}
}

type retentionApplyOutput struct {
	Schema             string                   `json:"schema"`
	Names              []retentionAppliedOutput `json:"names"`
	DeletedCheckpoints int                      `json:"deleted_checkpoints"`
	DurationSeconds    float64                  `json:"duration_seconds"`
}

// retentionAppliedOutput is what apply did to one NAME.
type retentionAppliedOutput struct {
	Name      string           `json:"name"`
	Skipped   bool             `json:"skipped"`
	Policy    *policyOutput    `json:"policy"`
	Decisions []decisionOutput `json:"decisions"`
	Kept      int              `json:"kept"`
	Deleted   int              `json:"deleted"`
	Removed   []string         `json:"removed"`
}

// newRetentionSkipped is a NAME apply skipped: it has no stored policy.
func newRetentionSkipped(name string) retentionAppliedOutput {
	return retentionAppliedOutput{Name: name, Skipped: true, Decisions: []decisionOutput{}, Removed: []string{}}
}

func newRetentionApplied(name string, plan retention.Plan, removed []string) retentionAppliedOutput {
	pol := newPolicyOutput(plan.Policy)
	return retentionAppliedOutput{Name: name, Policy: &pol, Decisions: newDecisionOutputs(plan),
		Kept: len(plan.Kept()), Deleted: len(plan.Deleted()), Removed: orEmpty(removed)}
}

type retentionSetOutput struct {
	Schema string       `json:"schema"`
	Name   string       `json:"name"`
	Policy policyOutput `json:"policy"`
}

// --- diff ---

type diffOutput struct {
	Schema    string               `json:"schema"`
	A         string               `json:"a"`
	B         string               `json:"b"`
	Summary   string               `json:"summary"`
	Identical bool                 `json:"identical"`
	Stats     bool                 `json:"stats"`
	Files     []diffFileOutput     `json:"files"`
	JSON      []diffJSONOutput     `json:"json"`
	Tokenizer *diffTokenizerOutput `json:"tokenizer"`
	Adapter   *diffAdapterOutput   `json:"adapter"`
	Tensors   []diffTensorOutput   `json:"tensors"`
	Notes     []string             `json:"notes"`
}

// diffAdapterOutput compares PEFT adapter settings.
type diffAdapterOutput struct {
	A       string                    `json:"a"`
	B       string                    `json:"b"`
	Changes []diffAdapterChangeOutput `json:"changes"`
}

type diffAdapterChangeOutput struct {
	Setting string `json:"setting"`
	A       string `json:"a"`
	B       string `json:"b"`
}

type diffFileOutput struct {
	Path  string `json:"path"`
	Role  string `json:"role"`
	Kind  string `json:"kind"`
	SizeA int64  `json:"size_a"`
	SizeB int64  `json:"size_b"`
	FromA string `json:"from_a"`
	FromB string `json:"from_b"`
}

type diffJSONOutput struct {
	File string          `json:"file"`
	Key  string          `json:"key"`
	Kind string          `json:"kind"`
	Old  json.RawMessage `json:"old"`
	New  json.RawMessage `json:"new"`
}

type diffTokenizerOutput struct {
	InA            bool                   `json:"in_a"`
	InB            bool                   `json:"in_b"`
	Same           bool                   `json:"same"`
	VocabA         int                    `json:"vocab_a"`
	VocabB         int                    `json:"vocab_b"`
	Added          []diffTokenOutput      `json:"added"`
	Removed        []diffTokenOutput      `json:"removed"`
	Renumbered     []diffTokenMoveOutput  `json:"renumbered"`
	SpecialAdded   []diffTokenOutput      `json:"special_added"`
	SpecialRemoved []diffTokenOutput      `json:"special_removed"`
	SpecialRoles   []diffRoleChangeOutput `json:"special_roles"`
	Merges         *diffMergesOutput      `json:"merges"`
	Notes          []string               `json:"notes"`
}

type diffTokenOutput struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
}

type diffTokenMoveOutput struct {
	Content string `json:"content"`
	OldID   int    `json:"old_id"`
	NewID   int    `json:"new_id"`
}

type diffRoleChangeOutput struct {
	Role string `json:"role"`
	Kind string `json:"kind"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

type diffMergesOutput struct {
	CountA       int      `json:"count_a"`
	CountB       int      `json:"count_b"`
	Added        int      `json:"added"`
	Removed      int      `json:"removed"`
	FirstAdded   []string `json:"first_added"`
	FirstRemoved []string `json:"first_removed"`
	Reordered    bool     `json:"reordered"`
}

type diffTensorOutput struct {
	Name   string                 `json:"name"`
	Kind   string                 `json:"kind"`
	FileA  string                 `json:"file_a"`
	FileB  string                 `json:"file_b"`
	DtypeA string                 `json:"dtype_a"`
	DtypeB string                 `json:"dtype_b"`
	ShapeA *[]int64               `json:"shape_a"` // null on the side without the tensor
	ShapeB *[]int64               `json:"shape_b"`
	BytesA int64                  `json:"bytes_a"`
	BytesB int64                  `json:"bytes_b"`
	Stats  *diffTensorStatsOutput `json:"stats"`
}

type diffTensorStatsOutput struct {
	Elements    int64    `json:"elements"`
	Differing   int64    `json:"differing"`
	NonFinite   int64    `json:"non_finite"`
	MaxAbsDelta float64  `json:"max_abs_delta"`
	NormA       float64  `json:"norm_a"`
	NormDelta   float64  `json:"norm_delta"`
	RelL2       *float64 `json:"rel_l2"`
	Skipped     string   `json:"skipped"`
	Note        string   `json:"note"`
}

func newDiffOutput(rep *diff.Report) diffOutput {
	out := diffOutput{
		Schema: schemaName("diff"), A: rep.A, B: rep.B, Summary: rep.Summary(), Identical: rep.Identical(), Stats: rep.Stats,
		Files: make([]diffFileOutput, len(rep.Files)), JSON: make([]diffJSONOutput, len(rep.JSON)),
		Tensors: make([]diffTensorOutput, len(rep.Tensors)), Notes: orEmpty(rep.Notes),
	}
	if d := rep.Adapter; d != nil {
		out.Adapter = &diffAdapterOutput{A: d.A, B: d.B, Changes: make([]diffAdapterChangeOutput, len(d.Changes))}
		for i, c := range d.Changes {
			out.Adapter.Changes[i] = diffAdapterChangeOutput{Setting: c.Setting, A: c.A, B: c.B}
		}
	}
	for i, f := range rep.Files {
		out.Files[i] = diffFileOutput{Path: f.Path, Role: f.Role, Kind: string(f.Kind), SizeA: f.SizeA, SizeB: f.SizeB, FromA: f.FromA, FromB: f.FromB}
	}
	for i, c := range rep.JSON {
		out.JSON[i] = diffJSONOutput{File: c.File, Key: c.Key, Kind: string(c.Kind), Old: orNull(c.Old), New: orNull(c.New)}
	}
	if t := rep.Tokenizer; t != nil {
		out.Tokenizer = &diffTokenizerOutput{
			InA: t.InA, InB: t.InB, Same: t.Same, VocabA: t.VocabA, VocabB: t.VocabB,
			Added: diffTokens(t.Added), Removed: diffTokens(t.Removed), Renumbered: make([]diffTokenMoveOutput, len(t.Renumbered)),
			SpecialAdded: diffTokens(t.SpecialAdded), SpecialRemoved: diffTokens(t.SpecialRemoved),
			SpecialRoles: make([]diffRoleChangeOutput, len(t.SpecialRoles)), Notes: orEmpty(t.Notes),
		}
		for i, m := range t.Renumbered {
			out.Tokenizer.Renumbered[i] = diffTokenMoveOutput{Content: m.Content, OldID: m.OldID, NewID: m.NewID}
		}
		for i, r := range t.SpecialRoles {
			out.Tokenizer.SpecialRoles[i] = diffRoleChangeOutput{Role: r.Role, Kind: string(r.Kind), Old: r.Old, New: r.New}
		}
		if m := t.Merges; m != nil {
			out.Tokenizer.Merges = &diffMergesOutput{CountA: m.CountA, CountB: m.CountB, Added: m.Added, Removed: m.Removed,
				FirstAdded: orEmpty(m.FirstAdded), FirstRemoved: orEmpty(m.FirstRemoved), Reordered: m.Reordered}
		}
	}
	for i, tc := range rep.Tensors {
		to := diffTensorOutput{Name: tc.Name, Kind: string(tc.Kind), FileA: tc.FileA, FileB: tc.FileB, DtypeA: tc.DtypeA, DtypeB: tc.DtypeB,
			BytesA: tc.BytesA, BytesB: tc.BytesB}
		// A shape is null on the side that lacks the tensor, [] for a scalar.
		if tc.Kind != diff.Added {
			shape := orEmpty(tc.ShapeA)
			to.ShapeA = &shape
		}
		if tc.Kind != diff.Removed {
			shape := orEmpty(tc.ShapeB)
			to.ShapeB = &shape
		}
		if s := tc.Stats; s != nil {
			to.Stats = &diffTensorStatsOutput{Elements: s.Elements, Differing: s.Differing, NonFinite: s.NonFinite, MaxAbsDelta: s.MaxAbsDelta,
				NormA: s.NormA, NormDelta: s.NormDelta, RelL2: s.RelL2, Skipped: s.Skipped, Note: s.Note}
		}
		out.Tensors[i] = to
	}
	return out
}

func diffTokens(ts []diff.Token) []diffTokenOutput {
	out := make([]diffTokenOutput, len(ts))
	for i, t := range ts {
		out[i] = diffTokenOutput{ID: t.ID, Content: t.Content}
	}
	return out
}

// orNull is raw, or JSON null when raw is empty.
func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}
