package synth

import (
	"encoding/binary"
	"io"
	"math"
	"path/filepath"
	"strconv"

	"github.com/ckptdev/ckpt/layout"
)

// Resume-state file names as Trainer writes them.
const (
	optimizerName    = "optimizer.pt"
	schedulerName    = "scheduler.pt"
	scalerName       = "scaler.pt"
	rngStateName     = "rng_state.pth"
	trainingArgsName = "training_args.bin"
)

// Sizes of torch's RNG states: the CPU Mersenne Twister state tensor and a
// CUDA Philox state (seed and offset).
const (
	cpuRNGStateBytes  = 5056
	cudaRNGStateBytes = 16
)

// torchTensor is the pickle of a contiguous CPU tensor over the whole
// storage key, as torch.save writes it.
func torchTensor(storageType, key string, numel int64, shape []int64) any {
	size := make(pyTuple, len(shape))
	stride := make(pyTuple, len(shape))
	elems := int64(1)
	for d := len(shape) - 1; d >= 0; d-- {
		size[d] = shape[d]
		stride[d] = elems
		elems *= shape[d]
	}
	return pyReduce{pyGlobal{"torch._utils", "_rebuild_tensor_v2"}, pyTuple{
		pyPersistentID{pyTuple{"storage", pyGlobal{"torch", storageType}, key, "cpu", numel}},
		0, size, stride, false,
		pyReduce{pyGlobal{"collections", "OrderedDict"}, pyTuple{}},
	}}
}

// storageKeys hands out torch.save's storage keys: "0", "1", ... in the
// order the pickler meets the storages.
type storageKeys int

func (k *storageKeys) next() string {
	key := strconv.Itoa(int(*k))
	*k++
	return key
}

// writeOptimizer writes optimizer.pt: AdamW's state_dict with exp_avg and
// exp_avg_sq (float32) for every trainable parameter, so about
// OptimizerScale (default 2) times the float32 size of the trainable
// parameters. Frozen embeddings are not trainable and have no state.
// Parameters are in Trainer's two groups: with weight decay (matrices,
// embeddings), then without (biases, layer norms).
func writeOptimizer(dir string, spec RunSpec, s schedule, step int64) error {
	scale := spec.OptimizerScale
	if scale == 0 {
		scale = 2
	}
	var decay, noDecay []tensorSpec
	for _, t := range spec.Model.specs() {
		switch {
		case spec.FrozenEmbedding && t.embedding:
		case t.decay:
			decay = append(decay, t)
		default:
			noDecay = append(noDecay, t)
		}
	}

	var (
		keys     storageKeys
		state    pyDict
		storages []torchStorage
		scratch  = newWeightBuffers()
	)
	stepBytes := binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(step)))
	for index, t := range append(append([]tensorSpec(nil), decay...), noDecay...) {
		numel, shape := t.numel(), t.Shape
		if scale != 2 {
			numel = max(1, int64(math.Round(float64(numel)*scale/2)))
			shape = []int64{numel}
		}
		stepKey := keys.next()
		storages = append(storages, bytesStorage(stepKey, stepBytes))
		moments := pyDict{{"step", torchTensor("FloatStorage", stepKey, 1, nil)}}
		for m, name := range []string{"exp_avg", "exp_avg_sq"} {
			key := keys.next()
			storages = append(storages, momentStorage(key, spec.Seed, t.Name, uint64(step)*2+uint64(m), numel, m == 1, scratch))
			moments = append(moments, pyItem{name, torchTensor("FloatStorage", key, numel, shape)})
		}
		state = append(state, pyItem{index, moments})
	}

	group := func(params []tensorSpec, first int, decayRate float64) pyDict {
		ids := make(pyList, len(params))
		for i := range params {
			ids[i] = first + i
		}
		return pyDict{
			{"weight_decay", decayRate},
			{"lr", s.learningRate(step)},
			{"betas", pyTuple{0.9, 0.999}},
			{"eps", 1e-08},
			{"amsgrad", false},
			{"maximize", false},
			{"foreach", nil},
			{"capturable", false},
			{"differentiable", false},
			{"fused", nil},
			{"initial_lr", baseLearningRate},
			{"params", ids},
		}
	}
	stateDict := pyDict{
		{"state", state},
		{"param_groups", pyList{group(decay, 0, weightDecay), group(noDecay, len(decay), 0.0)}},
	}
	return writeTorchSave(filepath.Join(dir, optimizerName), pickleProtocol2(stateDict), storages)
}

// momentStorage is an Adam moment of numel float32s: exp_avg around 0,
// exp_avg_sq small and positive.
func momentStorage(key string, seed uint64, name string, extra uint64, numel int64, squared bool, scratch *weightBuffers) torchStorage {
	return torchStorage{key: key, size: 4 * numel, write: func(w io.Writer) error {
		stream := newNormalStream(seed, domainOptimizer, name, extra)
		for remaining := numel; remaining > 0; {
			n := min(remaining, chunkElems)
			remaining -= n
			values := scratch.values[:n]
			if squared {
				stream.fill(values, 0, 3e-4)
				for i, v := range values {
					values[i] = v * v
				}
			} else {
				stream.fill(values, 0, 1e-4)
			}
			if _, err := w.Write(encodeValues(scratch.out, values, layout.DtypeF32)); err != nil {
				return err
			}
		}
		return nil
	}}
}

// writeScheduler writes scheduler.pt: LambdaLR's state_dict for the linear
// schedule, one entry per parameter group.
func writeScheduler(dir string, s schedule, step int64) error {
	lr := s.learningRate(step)
	state := pyDict{
		{"base_lrs", pyList{baseLearningRate, baseLearningRate}},
		{"last_epoch", step},
		{"verbose", false},
		{"_step_count", step + 1},
		{"_get_lr_called_within_step", false},
		{"_last_lr", pyList{lr, lr}},
		{"lr_lambdas", pyList{nil, nil}},
	}
	return writeTorchSave(filepath.Join(dir, schedulerName), pickleProtocol2(state), nil)
}

// writeScaler writes scaler.pt, GradScaler's state_dict, which Trainer
// saves only for fp16 mixed precision.
func writeScaler(dir string, step int64) error {
	state := pyDict{
		{"scale", 65536.0 / float64(int64(1)<<(step%5))},
		{"growth_factor", 2.0},
		{"backoff_factor", 0.5},
		{"growth_interval", 2000},
		{"_growth_tracker", step % 2000},
	}
	return writeTorchSave(filepath.Join(dir, scalerName), pickleProtocol2(state), nil)
}

// writeRNGState writes rng_state.pth as Trainer's _save_rng_state does on
// one GPU: Python's random.getstate(), numpy's get_state(), torch's CPU
// generator state and the CUDA generator state.
func writeRNGState(dir string, spec RunSpec, step int64) error {
	r := newRand(spec.Seed, domainRNG, "rng_state", uint64(step))
	pythonMT := make(pyTuple, 625)
	numpyMT := make([]byte, 4*624)
	for i := range 624 {
		pythonMT[i] = r.Uint32()
		binary.LittleEndian.PutUint32(numpyMT[4*i:], r.Uint32())
	}
	pythonMT[624] = 624
	cpuState := make([]byte, cpuRNGStateBytes)
	cudaState := make([]byte, cudaRNGStateBytes)
	for _, b := range [][]byte{cpuState, cudaState} {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	}

	var keys storageKeys
	cpuKey, cudaKey := keys.next(), keys.next()
	states := pyDict{
		{"python", pyTuple{3, pythonMT, nil}},
		{"numpy", pyTuple{"MT19937", numpyArray("u4", 624, numpyMT), 624, 0, 0.0}},
		{"cpu", torchTensor("ByteStorage", cpuKey, cpuRNGStateBytes, []int64{cpuRNGStateBytes})},
		{"cuda", torchTensor("ByteStorage", cudaKey, cudaRNGStateBytes, []int64{cudaRNGStateBytes})},
	}
	storages := []torchStorage{bytesStorage(cpuKey, cpuState), bytesStorage(cudaKey, cudaState)}
	return writeTorchSave(filepath.Join(dir, rngStateName), pickleProtocol2(states), storages)
}

// numpyArray is the protocol-2 pickle of a 1-D little-endian numpy array.
func numpyArray(typeCode string, length int, data []byte) any {
	dtype := pyBuild{
		obj:   pyReduce{pyGlobal{"numpy", "dtype"}, pyTuple{typeCode, false, true}},
		state: pyTuple{3, "<", nil, nil, nil, -1, -1, 0},
	}
	return pyBuild{
		obj: pyReduce{pyGlobal{"numpy.core.multiarray", "_reconstruct"},
			pyTuple{pyGlobal{"numpy", "ndarray"}, pyTuple{0}, pyBytes("b")}},
		state: pyTuple{1, pyTuple{length}, dtype, false, pyBytes(data)},
	}
}

// writeTrainingArgs writes training_args.bin: the pickled TrainingArguments
// dataclass (the fields a typical causal-LM fine-tune sets, plus enums as
// transformers defines them).
func writeTrainingArgs(dir string, spec RunSpec, s schedule) error {
	enum := func(module, class, value string) any {
		return pyReduce{pyGlobal{module, class}, pyTuple{value}}
	}
	steps := enum("transformers.trainer_utils", "IntervalStrategy", "steps")
	args := pyDict{
		{"output_dir", s.outputDir},
		{"overwrite_output_dir", false},
		{"do_train", false},
		{"do_eval", true},
		{"do_predict", false},
		{"eval_strategy", steps},
		{"prediction_loss_only", false},
		{"per_device_train_batch_size", trainBatchSize},
		{"per_device_eval_batch_size", trainBatchSize},
		{"gradient_accumulation_steps", 1},
		{"learning_rate", baseLearningRate},
		{"weight_decay", weightDecay},
		{"adam_beta1", 0.9},
		{"adam_beta2", 0.999},
		{"adam_epsilon", 1e-08},
		{"max_grad_norm", 1.0},
		{"num_train_epochs", float64(defaultEpochs)},
		{"max_steps", s.maxSteps},
		{"lr_scheduler_type", enum("transformers.trainer_utils", "SchedulerType", "linear")},
		{"warmup_ratio", 0.0},
		{"warmup_steps", 0},
		{"logging_dir", s.outputDir + "/runs"},
		{"logging_strategy", steps},
		{"logging_steps", s.loggingSteps},
		{"save_strategy", steps},
		{"save_steps", s.saveSteps},
		{"save_total_limit", nil},
		{"save_only_model", false},
		{"seed", spec.Seed},
		{"bf16", spec.Model.Dtype == layout.DtypeBF16},
		{"fp16", spec.Model.Dtype == layout.DtypeF16},
		{"eval_steps", s.saveSteps},
		{"run_name", s.outputDir},
		{"load_best_model_at_end", false},
		{"metric_for_best_model", "loss"},
		{"greater_is_better", false},
		{"optim", enum("transformers.training_args", "OptimizerNames", "adamw_torch")},
		{"report_to", pyList{}},
		{"push_to_hub", false},
		{"hub_strategy", enum("transformers.trainer_utils", "HubStrategy", "every_save")},
	}
	obj := pyNewObj{cls: pyGlobal{"transformers.training_args", "TrainingArguments"}, args: pyTuple{}, state: args}
	return writeTorchSave(filepath.Join(dir, trainingArgsName), pickleProtocol2(obj), nil)
}
