package synth

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/ckptdev/ckpt/layout"
)

// Weight file names as transformers writes them.
const (
	singleWeightsName = "model.safetensors"
	weightsIndexName  = "model.safetensors.index.json"
)

// perturbFraction is the standard deviation of a checkpoint's perturbation
// relative to the tensor's own: large enough that almost every bf16 element
// changes, so no chunk of a perturbed tensor deduplicates.
const perturbFraction = 0.25

// minTableElems is the size from which a tensor generated without
// perturbation goes through an encodedTable16: building the table costs
// about as much as generating 65536 elements the generic way.
const minTableElems = 1 << 18

// safetensorsMetadata is the __metadata__ transformers writes.
var safetensorsMetadata = map[string]string{"format": "pt"}

// weightPlan says how to produce every tensor of one weights folder.
type weightPlan struct {
	model Model
	// baseSeed generates the base values when base is nil.
	baseSeed uint64
	// base, if not nil, holds the base model's values, read from disk.
	base *baseWeights
	// perturb adds a checkpoint's perturbation, drawn from (runSeed, step),
	// to every tensor but the frozen ones.
	perturb bool
	runSeed uint64
	step    int64
	// drift is the perturbation's standard deviation relative to the
	// tensor's own; 0 means perturbFraction.
	drift float64
	// frozenEmbedding keeps wte and wpe exactly the base's.
	frozenEmbedding bool
}

// driftFraction is the perturbation's standard deviation relative to a
// tensor's own.
func (p *weightPlan) driftFraction() float32 {
	if p.drift > 0 {
		return float32(p.drift)
	}
	return perturbFraction
}

func (p *weightPlan) frozen(t tensorSpec) bool {
	return !p.perturb || (p.frozenEmbedding && t.embedding)
}

// weightBuffers are the scratch buffers reused across tensors.
type weightBuffers struct {
	values []float32 // chunkElems
	out    []byte    // chunkElems elements of up to 4 bytes
	table  *encodedTable16
}

func newWeightBuffers() *weightBuffers {
	return &weightBuffers{
		values: make([]float32, chunkElems),
		out:    make([]byte, 4*chunkElems),
		table:  new(encodedTable16),
	}
}

// writeTensor writes the bytes of tensor t to w: the base's encoded values
// (generated, or read from the base folder), plus the checkpoint's
// perturbation unless t is frozen. The perturbation is added to the encoded
// base values, so a run on a base folder written by WriteBase with the
// run's seed is byte-identical to the same run without BaseDir.
func (p *weightPlan) writeTensor(w io.Writer, t tensorSpec, bufs *weightBuffers) error {
	frozen := p.frozen(t)
	elemSize := int64(t.Dtype.ElemSize())
	var (
		section    *io.SectionReader
		baseStream *normalStream
		useTable   bool
		delta      *normalStream
	)
	if p.base != nil {
		var err error
		if section, err = p.base.section(t.TensorInfo); err != nil {
			return err
		}
		if frozen { // byte-identical copy of the base's tensor
			if _, err := io.CopyBuffer(w, section, bufs.out); err != nil {
				return fmt.Errorf("copying %s from %s: %w", t.Name, p.base.dir, err)
			}
			return nil
		}
	} else {
		baseStream = newNormalStream(p.baseSeed, domainBase, t.Name, 0)
		if useTable = elemSize == 2 && t.numel() >= minTableElems; useTable {
			bufs.table.build(t.mean, t.std, t.Dtype)
		}
	}
	if !frozen {
		delta = newNormalStream(p.runSeed, domainDelta, t.Name, uint64(p.step))
	}

	for remaining := t.numel(); remaining > 0; {
		n := min(remaining, chunkElems)
		remaining -= n
		chunk := bufs.out[:n*elemSize]
		switch {
		case section != nil:
			if _, err := io.ReadFull(section, chunk); err != nil {
				return fmt.Errorf("reading %s from %s: %w", t.Name, p.base.dir, err)
			}
		case useTable:
			baseStream.fillEncoded16(chunk, bufs.table)
		default:
			values := bufs.values[:n]
			baseStream.fill(values, t.mean, t.std)
			encodeValues(chunk, values, t.Dtype)
		}
		if delta != nil {
			delta.perturbEncoded(chunk, p.driftFraction()*t.std, t.Dtype, bufs.values)
		}
		if _, err := w.Write(chunk); err != nil {
			return err
		}
	}
	return nil
}

// weightFile is one safetensors file of a folder: its name and its tensors
// with offsets relative to its own data buffer.
type weightFile struct {
	name    string
	tensors []tensorSpec
}

// planWeightFiles splits the model's tensors, in order, into shards files
// of roughly equal size (transformers' names), or one model.safetensors if
// shards <= 1.
func planWeightFiles(specs []tensorSpec, shards int) ([]weightFile, error) {
	if shards <= 1 {
		return []weightFile{{name: singleWeightsName, tensors: specs}}, nil
	}
	if shards > len(specs) {
		return nil, fmt.Errorf("synth: %d shards for %d tensors: every shard needs a tensor", shards, len(specs))
	}
	total := specs[len(specs)-1].End
	groups := make([][]tensorSpec, shards)
	shard := 0
	for i, t := range specs {
		size := t.End - t.Begin
		tensorsLeft := len(specs) - i
		if len(groups[shard]) > 0 && shard < shards-1 &&
			(t.Begin+size/2 >= int64(shard+1)*total/int64(shards) || tensorsLeft <= shards-1-shard) {
			shard++
		}
		groups[shard] = append(groups[shard], t)
	}
	files := make([]weightFile, shards)
	for k, group := range groups {
		var offset int64
		for i := range group {
			size := group[i].End - group[i].Begin
			group[i].Begin, group[i].End = offset, offset+size
			offset += size
		}
		files[k] = weightFile{name: fmt.Sprintf("model-%05d-of-%05d.safetensors", k+1, shards), tensors: group}
	}
	return files, nil
}

// writeWeights writes the model's weights into dir: model.safetensors, or
// the shards followed by model.safetensors.index.json. It returns the file
// names written, in order.
func writeWeights(dir string, plan *weightPlan, shards int) ([]string, error) {
	files, err := planWeightFiles(plan.model.specs(), shards)
	if err != nil {
		return nil, err
	}
	bufs := newWeightBuffers()
	var names []string
	for _, file := range files {
		if err := plan.writeFile(filepath.Join(dir, file.name), file.tensors, bufs); err != nil {
			return names, err
		}
		names = append(names, file.name)
	}
	if len(files) > 1 {
		weightMap := pyObject{}
		for _, file := range files {
			for _, t := range file.tensors {
				weightMap[t.Name] = file.name
			}
		}
		index := pyObject{
			"metadata":   pyObject{"total_size": plan.model.WeightBytes()},
			"weight_map": weightMap,
		}
		if err := writeFileBytes(filepath.Join(dir, weightsIndexName), append(pyJSON(index), '\n')); err != nil {
			return names, err
		}
		names = append(names, weightsIndexName)
	}
	return names, nil
}

// writeFile writes one safetensors file holding tensors.
func (p *weightPlan) writeFile(path string, tensors []tensorSpec, bufs *weightBuffers) (err error) {
	infos := make([]layout.TensorInfo, len(tensors))
	for i, t := range tensors {
		infos[i] = t.TensorInfo
	}
	header, err := layout.EncodeSafetensorsHeader(infos, safetensorsMetadata)
	if err != nil {
		return fmt.Errorf("synth: %s: %w", path, err)
	}
	file, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	defer func() {
		if closeErr := file.Close(); err == nil && closeErr != nil {
			err = fmt.Errorf("synth: %w", closeErr)
		}
	}()
	w := newAsyncWriter(file, 4<<20, 3)
	defer func() {
		if closeErr := w.Close(); err == nil && closeErr != nil {
			err = fmt.Errorf("synth: writing %s: %w", path, closeErr)
		}
	}()
	if _, err := w.Write(header); err != nil {
		return fmt.Errorf("synth: writing %s: %w", path, err)
	}
	for _, t := range tensors {
		if err := p.writeTensor(w, t, bufs); err != nil {
			return fmt.Errorf("synth: writing %s: %w", path, err)
		}
	}
	return nil
}

// baseWeights reads tensors of a base model folder written earlier
// (model.safetensors or shards with model.safetensors.index.json).
type baseWeights struct {
	dir     string
	tensors map[string]baseTensor
	files   map[string]*os.File
}

type baseTensor struct {
	path   string
	info   layout.TensorInfo
	offset int64 // of the tensor's first byte in the file
}

func openBaseWeights(dir string) (*baseWeights, error) {
	b := &baseWeights{dir: dir, tensors: map[string]baseTensor{}, files: map[string]*os.File{}}
	var paths []string
	indexPath := filepath.Join(dir, weightsIndexName)
	if data, err := os.ReadFile(indexPath); err == nil {
		index, err := layout.ParseShardIndex(data)
		if err != nil {
			return nil, fmt.Errorf("synth: base model %s: %w", indexPath, err)
		}
		for _, shard := range index.Shards() {
			paths = append(paths, filepath.Join(dir, shard))
		}
	} else if errors.Is(err, os.ErrNotExist) {
		paths = []string{filepath.Join(dir, singleWeightsName)}
	} else {
		return nil, fmt.Errorf("synth: base model: %w", err)
	}
	for _, path := range paths {
		header, err := layout.ReadSafetensorsHeader(path)
		if err != nil {
			return nil, fmt.Errorf("synth: base model: %w", err)
		}
		for _, info := range header.Tensors {
			b.tensors[info.Name] = baseTensor{path: path, info: info, offset: header.DataOffset + info.Begin}
		}
	}
	return b, nil
}

// section returns a reader of the base's bytes for tensor want, which must
// have the same dtype and shape there.
func (b *baseWeights) section(want layout.TensorInfo) (*io.SectionReader, error) {
	t, ok := b.tensors[want.Name]
	if !ok {
		return nil, fmt.Errorf("base model %s has no tensor %s", b.dir, want.Name)
	}
	if t.info.Dtype != want.Dtype || !slices.Equal(t.info.Shape, want.Shape) {
		return nil, fmt.Errorf("base model %s: tensor %s is %s%v, want %s%v",
			b.dir, want.Name, t.info.Dtype, t.info.Shape, want.Dtype, want.Shape)
	}
	file := b.files[t.path]
	if file == nil {
		var err error
		if file, err = os.Open(t.path); err != nil {
			return nil, err
		}
		b.files[t.path] = file
	}
	return io.NewSectionReader(file, t.offset, t.info.End-t.info.Begin), nil
}

func (b *baseWeights) Close() error {
	var errs []error
	for _, file := range b.files {
		errs = append(errs, file.Close())
	}
	return errors.Join(errs...)
}

// writeFileBytes writes data to path, wrapping errors with "synth:".
func writeFileBytes(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}
