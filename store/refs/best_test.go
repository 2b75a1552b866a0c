package refs

import (
	"errors"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/retention"
	"github.com/ckptdev/ckpt/store/object"
)

func ptr[T any](v T) *T { return &v }

// rec is NAME@step with the given metrics.
func rec(name string, step int64, metrics map[string]float64) Record {
	return Record{Name: name, Version: itoa(step), Step: step, Metrics: metrics, Manifest: object.Hash([]byte(name + itoa(step)))}
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// classifierRun is a run whose eval_loss is lowest at step 300 while
// eval_accuracy peaks at step 400; step 100 was evaluated on loss only.
func classifierRun() *Catalog {
	c := NewCatalog()
	c.Records["cls"] = []Record{
		rec("cls", 100, map[string]float64{"eval_loss": 0.9}),
		rec("cls", 200, map[string]float64{"eval_loss": 0.7, "eval_accuracy": 0.70}),
		rec("cls", 300, map[string]float64{"eval_loss": 0.6, "eval_accuracy": 0.80}),
		rec("cls", 400, map[string]float64{"eval_loss": 0.65, "eval_accuracy": 0.91}),
		rec("cls", 500, map[string]float64{"eval_loss": 0.7, "eval_accuracy": 0.88}),
	}
	return c
}

func TestResolveBestFollowsTheRunsMetric(t *testing.T) {
	cases := []struct {
		name    string
		rule    BestRule
		policy  *retention.Policy
		want    string
		wantBy  BestBy
		wantErr error
	}{
		{name: "default is eval_loss, lower is better", want: "300",
			wantBy: BestBy{Metric: "eval_loss", Source: BestFromDefault}},
		{name: "explicit metric, direction from its name", rule: BestRule{Metric: "eval_accuracy"}, want: "400",
			wantBy: BestBy{Metric: "eval_accuracy", GreaterIsBetter: true, Source: BestFromRule}},
		{name: "explicit metric without the eval_ prefix", rule: BestRule{Metric: "accuracy"}, want: "400",
			wantBy: BestBy{Metric: "eval_accuracy", GreaterIsBetter: true, Source: BestFromRule}},
		{name: "explicit direction overrides", rule: BestRule{Metric: "accuracy", GreaterIsBetter: ptr(false)}, want: "200",
			wantBy: BestBy{Metric: "eval_accuracy", Source: BestFromRule}},
		{name: "explicit loss, greater is better", rule: BestRule{Metric: "loss", GreaterIsBetter: ptr(true)}, want: "100",
			wantBy: BestBy{Metric: "eval_loss", GreaterIsBetter: true, Source: BestFromRule}},
		{name: "the stored policy's metric", policy: &retention.Policy{KeepBest: 1, Metric: "eval_accuracy"}, want: "400",
			wantBy: BestBy{Metric: "eval_accuracy", GreaterIsBetter: true, Source: BestFromPolicy}},
		{name: "the stored policy's direction", policy: &retention.Policy{KeepBest: 1, Metric: "accuracy", GreaterIsBetter: ptr(false)}, want: "200",
			wantBy: BestBy{Metric: "eval_accuracy", Source: BestFromPolicy}},
		{name: "a policy without a metric ranks by eval_loss", policy: &retention.Policy{KeepLast: 2}, want: "300",
			wantBy: BestBy{Metric: "eval_loss", Source: BestFromPolicy}},
		{name: "explicit beats the policy", rule: BestRule{Metric: "eval_loss"}, policy: &retention.Policy{KeepBest: 1, Metric: "eval_accuracy"}, want: "300",
			wantBy: BestBy{Metric: "eval_loss", Source: BestFromRule}},
		{name: "no version has the metric", rule: BestRule{Metric: "eval_f1"}, wantErr: ErrNoMetric,
			wantBy: BestBy{Metric: "eval_f1", GreaterIsBetter: true, Source: BestFromRule}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := classifierRun()
			c.Rule = tc.rule
			if tc.policy != nil {
				c.Policies["cls"] = *tc.policy
			}
			by, err := c.BestBy("cls")
			require.NoError(t, err)
			assert.Equal(t, tc.wantBy, by)
			got, err := c.Resolve("cls", Best)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.ErrorIs(t, err, ErrNoCheckpoint)
				assert.Contains(t, err.Error(), "no version of cls has eval_f1 recorded")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got.Version)
		})
	}
}

func TestBestByUnreadablePolicy(t *testing.T) {
	c := classifierRun()
	key := PolicyKey("cls", PolicyRetention)
	c.Problems = append(c.Problems, Problem{Key: key, Err: errors.New(key + ": corrupt ref: checksum mismatch")})
	// The metric is the policy's, which cannot be read: no guess.
	_, err := c.Resolve("cls", Best)
	require.Error(t, err)
	assert.Contains(t, err.Error(), key)
	assert.Contains(t, err.Error(), "cls@best")
	// Other refs resolve, and an explicit metric needs no policy.
	got, err := c.Resolve("cls", Latest)
	require.NoError(t, err)
	assert.Equal(t, "500", got.Version)
	c.Rule = BestRule{Metric: "eval_accuracy"}
	got, err = c.Resolve("cls", Best)
	require.NoError(t, err)
	assert.Equal(t, "400", got.Version)
}

func TestBestRuleValidate(t *testing.T) {
	assert.NoError(t, BestRule{}.Validate())
	assert.NoError(t, BestRule{Metric: "f1", GreaterIsBetter: ptr(true)}.Validate())
	assert.ErrorIs(t, BestRule{GreaterIsBetter: ptr(true)}.Validate(), ErrInvalidBestRule)
	assert.ErrorIs(t, BestRule{Metric: "eval_"}.Validate(), ErrInvalidBestRule)
}

func TestTrainerBestStep(t *testing.T) {
	cases := []struct {
		tb   *TrainerBest
		step int64
		ok   bool
	}{
		{nil, 0, false},
		{&TrainerBest{GlobalStep: ptr(int64(400)), ModelCheckpoint: "out/checkpoint-300"}, 400, true},
		{&TrainerBest{ModelCheckpoint: "out/checkpoint-300"}, 300, true},
		{&TrainerBest{ModelCheckpoint: `C:\out\checkpoint-300`}, 300, true},
		{&TrainerBest{ModelCheckpoint: "out/best"}, 0, false},
		{&TrainerBest{Value: ptr(0.5)}, 0, false},
	}
	for _, tc := range cases {
		step, ok := tc.tb.Step()
		assert.Equal(t, tc.ok, ok, "%+v", tc.tb)
		assert.Equal(t, tc.step, step, "%+v", tc.tb)
	}
}

func TestCheckBest(t *testing.T) {
	accuracyBest := &TrainerBest{Value: ptr(0.91), Metric: "eval_accuracy", GlobalStep: ptr(int64(400)), ModelCheckpoint: "out/checkpoint-400"}
	cases := []struct {
		name       string
		rule       BestRule
		show       int64 // the step of the checkpoint shown
		trainer    *TrainerBest
		drop       int64 // a version removed from the registry
		comparable bool
		agree      bool
		ckpt       string // ckpt's pick as of the shown step
		latest     bool
		why        string
	}{
		{name: "different metric", show: 500, trainer: accuracyBest, comparable: true, ckpt: "300", latest: true,
			why: "Trainer ranked by eval_accuracy, ckpt by eval_loss"},
		{name: "same metric agrees", rule: BestRule{Metric: "eval_accuracy"}, show: 500, trainer: accuracyBest,
			comparable: true, agree: true, ckpt: "400", latest: true},
		{name: "Trainer's best was removed", rule: BestRule{Metric: "eval_accuracy"}, show: 500, trainer: accuracyBest, drop: 400,
			comparable: true, ckpt: "500", latest: true, why: "step 400 is not a version of cls (not pushed, or removed)"},
		// At step 300 Trainer (by loss, without best_global_step) had seen
		// nothing better than 300; ckpt's pick as of 300 agrees, though
		// NAME@best overall is another version.
		{name: "as of an earlier step", rule: BestRule{Metric: "eval_accuracy"}, show: 300,
			trainer:    &TrainerBest{Value: ptr(0.8), ModelCheckpoint: "out/checkpoint-300"},
			comparable: true, agree: true, ckpt: "300", latest: false},
		{name: "Trainer recorded no best", show: 500, ckpt: "300", latest: true},
		{name: "Trainer's best step unknown", show: 500, trainer: &TrainerBest{Value: ptr(0.9)}, ckpt: "300", latest: true},
		{name: "Trainer's best lacks ckpt's metric", rule: BestRule{Metric: "eval_accuracy"}, show: 500,
			trainer:    &TrainerBest{Value: ptr(0.9), GlobalStep: ptr(int64(100))},
			comparable: true, ckpt: "400", latest: true, why: "cls@100 has no eval_accuracy recorded"},
		{name: "same metric, Trainer's value differs", show: 500,
			trainer:    &TrainerBest{Value: ptr(0.1), Metric: "eval_loss", GlobalStep: ptr(int64(400))},
			comparable: true, ckpt: "300", latest: true,
			why: "by eval_loss, cls@300 is better (lower is better); Trainer's best_metric 0.1 is not the eval_loss recorded at step 400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := classifierRun()
			c.Rule = tc.rule
			if tc.drop != 0 {
				recs := c.Records["cls"][:0]
				for _, r := range c.Records["cls"] {
					if r.Step != tc.drop {
						recs = append(recs, r)
					}
				}
				c.Records["cls"] = recs
			}
			shown, ok := c.Record("cls", itoa(tc.show))
			require.True(t, ok)
			shown.TrainerBest = tc.trainer
			chk, err := c.CheckBest(shown)
			require.NoError(t, err)
			assert.Equal(t, tc.comparable, chk.Comparable)
			assert.Equal(t, tc.agree, chk.Agree)
			require.NotNil(t, chk.Ckpt)
			assert.Equal(t, tc.ckpt, chk.Ckpt.Version)
			assert.Equal(t, tc.latest, chk.Latest)
			assert.Equal(t, tc.why, chk.Why)
			assert.Equal(t, tc.trainer, chk.Trainer)
		})
	}
}

// A record with Trainer's best round-trips through its stored form, and
// a record without one stores no trainer_best member (older readers and
// the checksum see the same object as before).
func TestRecordTrainerBestRoundTrip(t *testing.T) {
	r := rec("cls", 500, map[string]float64{"eval_loss": 0.7})
	data, err := Encode(r)
	require.NoError(t, err)
	assert.NotContains(t, string(data), "trainer_best")

	r.TrainerBest = &TrainerBest{Value: ptr(0.91), Metric: "eval_accuracy", GlobalStep: ptr(int64(400)), ModelCheckpoint: "out/checkpoint-400"}
	data, err = Encode(r)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"best_global_step": 400`)
	got, err := DecodeRecord(VersionKey("cls", "500"), data)
	require.NoError(t, err)
	assert.Equal(t, r.TrainerBest, got.TrainerBest)
	// Only best_model_checkpoint, as older transformers write it.
	r.TrainerBest = &TrainerBest{ModelCheckpoint: "out/checkpoint-300"}
	data, err = Encode(r)
	require.NoError(t, err)
	got, err = DecodeRecord(VersionKey("cls", "500"), data)
	require.NoError(t, err)
	assert.Equal(t, r.TrainerBest, got.TrainerBest)
}

// best_model_checkpoint comes from the registry (hostile input): Step
// never panics, and a step it finds is what the folder name says.
func FuzzTrainerBestStep(f *testing.F) {
	for _, seed := range []string{"out/checkpoint-300", `C:\out\checkpoint-7`, "checkpoint-", "checkpoint--1", "checkpoint-99999999999999999999", "", "/", "checkpoint-1/"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, folder string) {
		step, ok := (&TrainerBest{ModelCheckpoint: folder}).Step()
		if !ok {
			require.Zero(t, step)
			return
		}
		require.GreaterOrEqual(t, step, int64(0))
		last := path.Base(strings.ReplaceAll(folder, `\`, "/"))
		digits, found := strings.CutPrefix(last, "checkpoint-")
		require.True(t, found, last)
		n, err := strconv.ParseInt(digits, 10, 64)
		require.NoError(t, err)
		require.Equal(t, step, n)
	})
}
