package synth

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strings"
)

// The pickle values below are the subset of Python objects torch.save'd
// training state is made of. pickleProtocol2 encodes them with the opcodes
// Python's pickler uses at protocol 2, torch.save's default (without the
// memo, which a loader does not need).
type (
	pyTuple []any
	pyList  []any
	// pyDict keeps insertion order, like a Python dict.
	pyDict []pyItem
	pyItem struct {
		key, value any
	}
	// pyGlobal is a module-level name (GLOBAL opcode).
	pyGlobal struct{ module, name string }
	// pyReduce is callable(*args).
	pyReduce struct {
		callable any
		args     pyTuple
	}
	// pyNewObj is cls.__new__(cls, *args) followed by BUILD with state.
	pyNewObj struct {
		cls   pyGlobal
		args  pyTuple
		state any
	}
	// pyBuild is obj.__setstate__(state) (BUILD opcode).
	pyBuild struct {
		obj   any
		state any
	}
	// pyPersistentID is an object the loader resolves itself; torch.save
	// uses it for tensor storages.
	pyPersistentID struct{ id pyTuple }
	// pyBytes is a Python bytes object, which protocol 2 spells as
	// _codecs.encode(latin-1 text, "latin1").
	pyBytes []byte
)

// Pickle opcodes (Python's Lib/pickle.py names).
const (
	opMark       = '('
	opStop       = '.'
	opBinInt     = 'J'
	opBinInt1    = 'K'
	opBinInt2    = 'M'
	opNone       = 'N'
	opBinPersID  = 'Q'
	opReduce     = 'R'
	opBinUnicode = 'X'
	opAppend     = 'a'
	opBuild      = 'b'
	opGlobal     = 'c'
	opAppends    = 'e'
	opBinFloat   = 'G'
	opEmptyList  = ']'
	opEmptyDict  = '}'
	opEmptyTuple = ')'
	opSetItem    = 's'
	opSetItems   = 'u'
	opTuple      = 't'
	opProto      = 0x80
	opNewObj     = 0x81
	opTuple1     = 0x85
	opTuple2     = 0x86
	opTuple3     = 0x87
	opNewTrue    = 0x88
	opNewFalse   = 0x89
	opLong1      = 0x8a
)

// batchSize is how many items Python's pickler puts in one APPENDS or
// SETITEMS.
const batchSize = 1000

// pickleProtocol2 returns the pickle of v.
func pickleProtocol2(v any) []byte {
	var buf bytes.Buffer
	buf.Write([]byte{opProto, 2})
	writePickle(&buf, v)
	buf.WriteByte(opStop)
	return buf.Bytes()
}

func writePickle(buf *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		buf.WriteByte(opNone)
	case bool:
		if v {
			buf.WriteByte(opNewTrue)
		} else {
			buf.WriteByte(opNewFalse)
		}
	case int:
		writePickleInt(buf, big.NewInt(int64(v)))
	case int64:
		writePickleInt(buf, big.NewInt(v))
	case uint32:
		writePickleInt(buf, big.NewInt(int64(v)))
	case uint64:
		writePickleInt(buf, new(big.Int).SetUint64(v))
	case float64:
		buf.WriteByte(opBinFloat)
		binary.Write(buf, binary.BigEndian, math.Float64bits(v))
	case string:
		buf.WriteByte(opBinUnicode)
		binary.Write(buf, binary.LittleEndian, uint32(len(v)))
		buf.WriteString(v)
	case pyBytes:
		// What Python 3 writes for bytes at protocol 2.
		var latin1 strings.Builder
		for _, b := range v {
			latin1.WriteRune(rune(b))
		}
		writePickle(buf, pyReduce{pyGlobal{"_codecs", "encode"}, pyTuple{latin1.String(), "latin1"}})
	case pyTuple:
		switch len(v) {
		case 0:
			buf.WriteByte(opEmptyTuple)
		case 1, 2, 3:
			for _, element := range v {
				writePickle(buf, element)
			}
			buf.WriteByte([]byte{opTuple1, opTuple2, opTuple3}[len(v)-1])
		default:
			buf.WriteByte(opMark)
			for _, element := range v {
				writePickle(buf, element)
			}
			buf.WriteByte(opTuple)
		}
	case pyList:
		buf.WriteByte(opEmptyList)
		for start := 0; start < len(v); start += batchSize {
			batch := v[start:min(start+batchSize, len(v))]
			if len(batch) == 1 {
				writePickle(buf, batch[0])
				buf.WriteByte(opAppend)
				continue
			}
			buf.WriteByte(opMark)
			for _, element := range batch {
				writePickle(buf, element)
			}
			buf.WriteByte(opAppends)
		}
	case pyDict:
		buf.WriteByte(opEmptyDict)
		for start := 0; start < len(v); start += batchSize {
			batch := v[start:min(start+batchSize, len(v))]
			if len(batch) == 1 {
				writePickle(buf, batch[0].key)
				writePickle(buf, batch[0].value)
				buf.WriteByte(opSetItem)
				continue
			}
			buf.WriteByte(opMark)
			for _, item := range batch {
				writePickle(buf, item.key)
				writePickle(buf, item.value)
			}
			buf.WriteByte(opSetItems)
		}
	case pyGlobal:
		buf.WriteByte(opGlobal)
		buf.WriteString(v.module + "\n" + v.name + "\n")
	case pyReduce:
		writePickle(buf, v.callable)
		writePickle(buf, v.args)
		buf.WriteByte(opReduce)
	case pyNewObj:
		writePickle(buf, v.cls)
		writePickle(buf, v.args)
		buf.WriteByte(opNewObj)
		writePickle(buf, v.state)
		buf.WriteByte(opBuild)
	case pyBuild:
		writePickle(buf, v.obj)
		writePickle(buf, v.state)
		buf.WriteByte(opBuild)
	case pyPersistentID:
		writePickle(buf, v.id)
		buf.WriteByte(opBinPersID)
	default:
		panic(fmt.Sprintf("synth: cannot pickle %T", v))
	}
}

// writePickleInt uses the shortest opcode Python's pickler would: BININT1,
// BININT2, BININT, else LONG1 with minimal two's complement bytes.
func writePickleInt(buf *bytes.Buffer, n *big.Int) {
	switch {
	case n.Sign() >= 0 && n.Cmp(big.NewInt(0xff)) <= 0:
		buf.Write([]byte{opBinInt1, byte(n.Int64())})
		return
	case n.Sign() >= 0 && n.Cmp(big.NewInt(0xffff)) <= 0:
		buf.WriteByte(opBinInt2)
		binary.Write(buf, binary.LittleEndian, uint16(n.Int64()))
		return
	case n.IsInt64() && n.Int64() >= math.MinInt32 && n.Int64() <= math.MaxInt32:
		buf.WriteByte(opBinInt)
		binary.Write(buf, binary.LittleEndian, int32(n.Int64()))
		return
	}
	// Two's complement, little-endian, as few bytes as keep the sign.
	size := n.BitLen()/8 + 1
	value := new(big.Int).Set(n)
	if n.Sign() < 0 {
		value.Add(value, new(big.Int).Lsh(big.NewInt(1), uint(8*size)))
	}
	encoded := make([]byte, size)
	value.FillBytes(encoded)
	for i, j := 0, len(encoded)-1; i < j; i, j = i+1, j-1 {
		encoded[i], encoded[j] = encoded[j], encoded[i]
	}
	buf.Write([]byte{opLong1, byte(size)})
	buf.Write(encoded)
}
