package synth

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/ckptdev/ckpt/layout"
)

// GGUFFile describes a GGUF file for EncodeGGUF.
type GGUFFile struct {
	// Version is 2 or 3; 0 means 3.
	Version uint32
	// BigEndian writes every number big-endian.
	BigEndian bool
	// Alignment, if not 0, is written as general.alignment (after
	// Metadata) and used to align the data; 0 keeps the default 32 and
	// writes no key.
	Alignment uint32
	// Metadata is written in order; Value must be the Go type ParseGGUF
	// returns for Type (see layout.GGUFKV).
	Metadata []layout.GGUFKV
	// Tensors are laid out in order, each at the next aligned offset.
	Tensors []GGUFTensor
}

// GGUFTensor is a tensor to write: its bytes must be exactly what its type
// and dims call for.
type GGUFTensor struct {
	Name string
	Type layout.GGMLType
	Dims []uint64
	Data []byte
}

// EncodeGGUF returns the bytes of the GGUF file f describes, laid out as
// llama.cpp's gguf writer lays it out: header, metadata, tensor infos,
// zero padding to the alignment, then every tensor's data padded with
// zeros to the alignment.
func EncodeGGUF(f GGUFFile) ([]byte, error) {
	version := f.Version
	if version == 0 {
		version = 3
	}
	var order binary.AppendByteOrder = binary.LittleEndian
	if f.BigEndian {
		order = binary.BigEndian
	}
	alignment := uint64(layout.GGUFDefaultAlignment)
	metadata := f.Metadata
	if f.Alignment != 0 {
		alignment = uint64(f.Alignment)
		metadata = append(metadata[:len(metadata):len(metadata)],
			layout.GGUFKV{Key: layout.GGUFAlignmentKey, Type: layout.GGUFUint32, Value: f.Alignment})
	}
	w := &ggufWriter{order: order}
	w.buf.WriteString("GGUF")
	w.u32(version)
	w.u64(uint64(len(f.Tensors)))
	w.u64(uint64(len(metadata)))
	for _, kv := range metadata {
		w.str(kv.Key)
		w.u32(uint32(kv.Type))
		if err := w.value(kv.Type, kv.ArrayType, kv.Value); err != nil {
			return nil, fmt.Errorf("synth: gguf metadata %q: %w", kv.Key, err)
		}
	}
	var offset uint64
	for _, t := range f.Tensors {
		size, err := t.Type.TensorSize(t.Dims)
		if err != nil {
			return nil, fmt.Errorf("synth: gguf tensor %q: %w", t.Name, err)
		}
		if int64(len(t.Data)) != size {
			return nil, fmt.Errorf("synth: gguf tensor %q: %d bytes of data, its type and dims call for %d", t.Name, len(t.Data), size)
		}
		w.str(t.Name)
		w.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			w.u64(d)
		}
		w.u32(uint32(t.Type))
		w.u64(offset)
		offset += padTo(uint64(size), alignment)
	}
	w.pad(alignment)
	for _, t := range f.Tensors {
		w.buf.Write(t.Data)
		w.pad(alignment)
	}
	return w.buf.Bytes(), nil
}

func padTo(n, alignment uint64) uint64 { return (n + alignment - 1) / alignment * alignment }

type ggufWriter struct {
	buf   bytes.Buffer
	order binary.AppendByteOrder
}

func (w *ggufWriter) u32(v uint32) { w.buf.Write(w.order.AppendUint32(nil, v)) }
func (w *ggufWriter) u64(v uint64) { w.buf.Write(w.order.AppendUint64(nil, v)) }

func (w *ggufWriter) str(s string) {
	w.u64(uint64(len(s)))
	w.buf.WriteString(s)
}

func (w *ggufWriter) pad(alignment uint64) {
	for uint64(w.buf.Len())%alignment != 0 {
		w.buf.WriteByte(0)
	}
}

// value writes v as a value of type t (arrays of elemType).
func (w *ggufWriter) value(t, elemType layout.GGUFValueType, v any) error {
	bad := func() error { return fmt.Errorf("value %T does not fit type %s", v, t) }
	switch t {
	case layout.GGUFUint8, layout.GGUFInt8, layout.GGUFBool:
		var b byte
		switch x := v.(type) {
		case uint8:
			b = x
		case int8:
			b = byte(x)
		case bool:
			if x {
				b = 1
			}
		default:
			return bad()
		}
		w.buf.WriteByte(b)
	case layout.GGUFUint16, layout.GGUFInt16:
		switch x := v.(type) {
		case uint16:
			w.buf.Write(w.order.AppendUint16(nil, x))
		case int16:
			w.buf.Write(w.order.AppendUint16(nil, uint16(x)))
		default:
			return bad()
		}
	case layout.GGUFUint32, layout.GGUFInt32, layout.GGUFFloat32:
		switch x := v.(type) {
		case uint32:
			w.u32(x)
		case int32:
			w.u32(uint32(x))
		case float32:
			w.u32(math.Float32bits(x))
		default:
			return bad()
		}
	case layout.GGUFUint64, layout.GGUFInt64, layout.GGUFFloat64:
		switch x := v.(type) {
		case uint64:
			w.u64(x)
		case int64:
			w.u64(uint64(x))
		case float64:
			w.u64(math.Float64bits(x))
		default:
			return bad()
		}
	case layout.GGUFString:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		w.str(s)
	case layout.GGUFArray:
		return w.array(elemType, v)
	default:
		return fmt.Errorf("unknown value type %d", uint32(t))
	}
	return nil
}

// array writes a typed slice as an array of elemType; arrays of arrays are
// []any of typed slices, whose element types are inferred.
func (w *ggufWriter) array(elemType layout.GGUFValueType, v any) error {
	writeAll := func(n int, at func(i int) any) error {
		w.u32(uint32(elemType))
		w.u64(uint64(n))
		for i := range n {
			if err := w.value(elemType, 0, at(i)); err != nil {
				return err
			}
		}
		return nil
	}
	switch x := v.(type) {
	case []uint8:
		return writeAll(len(x), func(i int) any { return x[i] })
	case []int8:
		return writeAll(len(x), func(i int) any { return x[i] })
	case []bool:
		return writeAll(len(x), func(i int) any { return x[i] })
	case []uint16:
		return writeAll(len(x), func(i int) any { return x[i] })
	case []int16:
		return writeAll(len(x), func(i int) any { return x[i] })
	case []uint32:
		return writeAll(len(x), func(i int) any { return x[i] })
	case []int32:
		return writeAll(len(x), func(i int) any { return x[i] })
	case []float32:
		return writeAll(len(x), func(i int) any { return x[i] })
	case []uint64:
		return writeAll(len(x), func(i int) any { return x[i] })
	case []int64:
		return writeAll(len(x), func(i int) any { return x[i] })
	case []float64:
		return writeAll(len(x), func(i int) any { return x[i] })
	case []string:
		return writeAll(len(x), func(i int) any { return x[i] })
	case []any:
		if elemType != layout.GGUFArray {
			return fmt.Errorf("[]any is an array of arrays, not of %s", elemType)
		}
		w.u32(uint32(layout.GGUFArray))
		w.u64(uint64(len(x)))
		for _, inner := range x {
			innerType, ok := sliceElemType(inner)
			if !ok {
				return fmt.Errorf("nested array of %T", inner)
			}
			if err := w.array(innerType, inner); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("array value %T", v)
}

// sliceElemType is the GGUF element type of a typed slice.
func sliceElemType(v any) (layout.GGUFValueType, bool) {
	switch v.(type) {
	case []uint8:
		return layout.GGUFUint8, true
	case []int8:
		return layout.GGUFInt8, true
	case []bool:
		return layout.GGUFBool, true
	case []uint16:
		return layout.GGUFUint16, true
	case []int16:
		return layout.GGUFInt16, true
	case []uint32:
		return layout.GGUFUint32, true
	case []int32:
		return layout.GGUFInt32, true
	case []float32:
		return layout.GGUFFloat32, true
	case []uint64:
		return layout.GGUFUint64, true
	case []int64:
		return layout.GGUFInt64, true
	case []float64:
		return layout.GGUFFloat64, true
	case []string:
		return layout.GGUFString, true
	case []any:
		return layout.GGUFArray, true
	}
	return 0, false
}
