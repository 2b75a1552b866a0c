package layout

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// This file reads Python pickles symbolically: it follows the opcodes of
// protocols 0 to 5 on a stack of inert Go values, so that the tuples a
// torch.save pickle hands to persistent_load, the callables it reduces and
// the state it builds objects with can be looked at. Nothing is ever
// resolved or called: a GLOBAL is just a (module, name) pair, REDUCE and
// NEWOBJ just record their callable and arguments. Every value costs at
// least one opcode byte, and the number of values is capped, so the work
// and memory are linear in the pickle's size.

// MaxPickleValues caps the values (stack entries, memo entries, marks and
// container items) one pickle may create.
const MaxPickleValues = 1 << 21

// MaxPickleStack caps the depth of the stack (Python's picklers batch
// list and dict items by 1000; only a tuple of more elements than this
// would need more).
const MaxPickleStack = 1 << 17

// Pickle opcodes (CPython's Lib/pickle.py names).
const (
	pkMark           = '('
	pkStop           = '.'
	pkPop            = '0'
	pkPopMark        = '1'
	pkDup            = '2'
	pkFloat          = 'F'
	pkInt            = 'I'
	pkBinInt         = 'J'
	pkBinInt1        = 'K'
	pkLong           = 'L'
	pkBinInt2        = 'M'
	pkNone           = 'N'
	pkPersID         = 'P'
	pkBinPersID      = 'Q'
	pkReduce         = 'R'
	pkString         = 'S'
	pkBinString      = 'T'
	pkShortBinString = 'U'
	pkUnicode        = 'V'
	pkBinUnicode     = 'X'
	pkAppend         = 'a'
	pkBuild          = 'b'
	pkGlobal         = 'c'
	pkDict           = 'd'
	pkEmptyDict      = '}'
	pkAppends        = 'e'
	pkGet            = 'g'
	pkBinGet         = 'h'
	pkInst           = 'i'
	pkLongBinGet     = 'j'
	pkList           = 'l'
	pkEmptyList      = ']'
	pkObj            = 'o'
	pkPut            = 'p'
	pkBinPut         = 'q'
	pkLongBinPut     = 'r'
	pkSetItem        = 's'
	pkTuple          = 't'
	pkEmptyTuple     = ')'
	pkSetItems       = 'u'
	pkBinFloat       = 'G'
	pkProto          = 0x80
	pkNewObj         = 0x81
	pkExt1           = 0x82
	pkExt2           = 0x83
	pkExt4           = 0x84
	pkTuple1         = 0x85
	pkTuple2         = 0x86
	pkTuple3         = 0x87
	pkNewTrue        = 0x88
	pkNewFalse       = 0x89
	pkLong1          = 0x8a
	pkLong4          = 0x8b
	pkBinBytes       = 'B'
	pkShortBinBytes  = 'C'
	pkShortBinUni    = 0x8c
	pkBinUnicode8    = 0x8d
	pkBinBytes8      = 0x8e
	pkEmptySet       = 0x8f
	pkAddItems       = 0x90
	pkFrozenSet      = 0x91
	pkNewObjEx       = 0x92
	pkStackGlobal    = 0x93
	pkMemoize        = 0x94
	pkFrame          = 0x95
	pkByteArray8     = 0x96
	pkNextBuffer     = 0x97
	pkReadonlyBuffer = 0x98
)

// Symbolic pickle values. Python None is nil; bool, int64, float64 and
// string (str) are themselves.
type (
	// pyBigInt is an integer that does not fit in an int64.
	pyBigInt struct{}
	// pyBytes is a bytes or bytearray object.
	pyBytes string
	// pyTuple is a tuple.
	pyTuple struct{ items []any }
	// pyList is a list; items are kept only when the reader keeps
	// containers.
	pyList struct{ items []any }
	// pyDict is a dict as key, value, key, value...; items are kept only
	// when the reader keeps containers.
	pyDict struct{ items []any }
	// pySet is a set or frozenset (contents dropped).
	pySet struct{}
	// pyGlobal is a module-level name: a class, function or constant.
	pyGlobal struct{ module, name string }
	// pyObject is what REDUCE, NEWOBJ, NEWOBJ_EX, INST or OBJ would build:
	// callable(*args), with the state a later BUILD passes.
	pyObject struct {
		callable any
		args     any
		state    any
	}
	// pyPersistent is what persistent_load(id) would return.
	pyPersistent struct{ id any }
)

// pickleMark is a MARK on the stack.
type pickleMark struct{}

// Shared values the reader pushes without allocating: the empty tuple
// (immutable), and the list, dict and set every container stands for when
// the reader drops container contents.
var (
	emptyTuple = &pyTuple{}
	sharedList = &pyList{}
	sharedDict = &pyDict{}
	sharedSet  = &pySet{}
)

// errPickle is wrapped by every malformed-pickle error.
var errPickle = errors.New("malformed pickle")

// pickleReader interprets one pickle.
type pickleReader struct {
	data []byte
	pos  int
	// op is the offset of the opcode being interpreted, for errors.
	op    int
	stack []any
	memo  map[uint32]any
	// budget is how many more values may be created.
	budget int
	// keepContainers keeps list and dict items (for small metadata
	// pickles); torch's data.pkl needs only tuples.
	keepContainers bool
	// onPersistent is called for every persistent id, onReduce for every
	// REDUCE, after the object is built.
	onPersistent func(*pyPersistent)
	onReduce     func(*pyObject)
}

func newPickleReader(data []byte) *pickleReader {
	return &pickleReader{data: data, memo: map[uint32]any{}, budget: MaxPickleValues}
}

func (p *pickleReader) fail(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", errPickle, p.op, fmt.Sprintf(format, args...))
}

// spend takes n values from the budget.
func (p *pickleReader) spend(n int) error {
	if n > p.budget {
		return p.fail("more than %d values", MaxPickleValues)
	}
	p.budget -= n
	return nil
}

func (p *pickleReader) push(v any) error {
	if err := p.spend(1); err != nil {
		return err
	}
	if len(p.stack) == MaxPickleStack {
		return p.fail("stack deeper than %d", MaxPickleStack)
	}
	p.stack = appendDoubling(p.stack, v)
	return nil
}

// appendDoubling appends like append, but doubles the capacity when it
// grows (append grows large slices by a quarter, which allocates five
// times the final size along the way).
func appendDoubling(s []any, items ...any) []any {
	if need := len(s) + len(items); need > cap(s) {
		grown := make([]any, len(s), max(2*cap(s), need, 8))
		copy(grown, s)
		s = grown
	}
	return append(s, items...)
}

// pop removes the top value, which must not be a mark.
func (p *pickleReader) pop() (any, error) {
	if len(p.stack) == 0 {
		return nil, p.fail("stack underflow")
	}
	v := p.stack[len(p.stack)-1]
	if _, isMark := v.(pickleMark); isMark {
		return nil, p.fail("unexpected mark")
	}
	p.stack = p.stack[:len(p.stack)-1]
	return v, nil
}

func (p *pickleReader) top() (any, error) {
	if len(p.stack) == 0 {
		return nil, p.fail("stack underflow")
	}
	v := p.stack[len(p.stack)-1]
	if _, isMark := v.(pickleMark); isMark {
		return nil, p.fail("unexpected mark")
	}
	return v, nil
}

// popMark removes and returns the values above the topmost mark (in
// order), and the mark. The slice aliases the stack: copy it to keep it.
func (p *pickleReader) popMark() ([]any, error) {
	for i := len(p.stack) - 1; i >= 0; i-- {
		if _, isMark := p.stack[i].(pickleMark); isMark {
			items := p.stack[i+1:]
			p.stack = p.stack[:i]
			return items, nil
		}
	}
	return nil, p.fail("no mark on the stack")
}

// take returns the next n bytes.
func (p *pickleReader) take(n uint64) ([]byte, error) {
	if n > uint64(len(p.data)-p.pos) {
		return nil, p.fail("%d-byte argument runs past the end of the pickle", n)
	}
	b := p.data[p.pos : p.pos+int(n)]
	p.pos += int(n)
	return b, nil
}

// line returns the bytes up to the next newline, which it consumes.
func (p *pickleReader) line() (string, error) {
	rest := p.data[p.pos:]
	for i, c := range rest {
		if c == '\n' {
			p.pos += i + 1
			return string(rest[:i]), nil
		}
	}
	return "", p.fail("text argument has no newline")
}

func (p *pickleReader) uint(n int) (uint64, error) {
	b, err := p.take(uint64(n))
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// sizedArg reads a length of lenBytes bytes, then that many bytes.
func (p *pickleReader) sizedArg(lenBytes int) ([]byte, error) {
	n, err := p.uint(lenBytes)
	if err != nil {
		return nil, err
	}
	if lenBytes == 4 && n > math.MaxInt32 {
		return nil, p.fail("negative length")
	}
	return p.take(n)
}

// longFromBytes decodes a little-endian two's complement integer.
func longFromBytes(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) > 8 {
		// It may still fit if the high bytes are sign extension.
		sign := byte(0)
		if b[len(b)-1]&0x80 != 0 {
			sign = 0xff
		}
		for _, c := range b[8:] {
			if c != sign {
				return pyBigInt{}
			}
		}
		if (b[7]&0x80 != 0) != (sign == 0xff) {
			return pyBigInt{}
		}
		b = b[:8]
	}
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	if shift := 64 - 8*uint(len(b)); shift > 0 {
		return int64(v<<shift) >> shift // sign-extend
	}
	return int64(v)
}

// parseTextInt parses the argument of INT or LONG.
func parseTextInt(s string) any {
	s = strings.TrimSuffix(s, "L")
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return pyBigInt{}
	}
	return nil
}

func (p *pickleReader) memoPut(index uint32) error {
	v, err := p.top()
	if err != nil {
		return err
	}
	if _, exists := p.memo[index]; !exists {
		if err := p.spend(1); err != nil {
			return err
		}
	}
	p.memo[index] = v
	return nil
}

func (p *pickleReader) memoGet(index uint32) error {
	v, ok := p.memo[index]
	if !ok {
		return p.fail("memo key %d was never stored", index)
	}
	return p.push(v)
}

// textIndex parses the decimal memo index of PUT and GET.
func (p *pickleReader) textIndex() (uint32, error) {
	s, err := p.line()
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, p.fail("memo index %q", s)
	}
	return uint32(n), nil
}

// newList returns a new list, or the shared one when contents are
// dropped.
func (p *pickleReader) newList() *pyList {
	if !p.keepContainers {
		return sharedList
	}
	return &pyList{}
}

// newDict returns a new dict, or the shared one when contents are dropped.
func (p *pickleReader) newDict() *pyDict {
	if !p.keepContainers {
		return sharedDict
	}
	return &pyDict{}
}

// tuple builds a tuple of a copy of items.
func (p *pickleReader) tuple(items []any) (*pyTuple, error) {
	if len(items) == 0 {
		return emptyTuple, nil
	}
	if err := p.spend(len(items)); err != nil {
		return nil, err
	}
	return &pyTuple{items: append([]any(nil), items...)}, nil
}

// extend adds items to the list or dict container (a no-op for other
// objects, whose append or setitem the reader does not model).
func (p *pickleReader) extend(container any, items []any) error {
	if !p.keepContainers {
		return nil
	}
	switch c := container.(type) {
	case *pyList:
		if err := p.spend(len(items)); err != nil {
			return err
		}
		c.items = appendDoubling(c.items, items...)
	case *pyDict:
		if err := p.spend(len(items)); err != nil {
			return err
		}
		c.items = appendDoubling(c.items, items...)
	}
	return nil
}

// run interprets the pickle up to STOP and returns the value it builds.
func (p *pickleReader) run() (any, error) {
	for {
		p.op = p.pos
		if p.pos >= len(p.data) {
			return nil, p.fail("no STOP opcode")
		}
		code := p.data[p.pos]
		p.pos++
		if code == pkStop {
			return p.pop()
		}
		if err := p.step(code); err != nil {
			return nil, err
		}
	}
}

// step interprets one opcode other than STOP.
func (p *pickleReader) step(code byte) error {
	switch code {
	case pkProto:
		version, err := p.uint(1)
		if err != nil {
			return err
		}
		if version > 5 {
			return p.fail("unsupported protocol %d", version)
		}
	case pkFrame:
		_, err := p.uint(8) // framing only groups opcodes
		return err
	case pkMark:
		return p.push(pickleMark{})
	case pkPop:
		if len(p.stack) > 0 {
			if _, isMark := p.stack[len(p.stack)-1].(pickleMark); isMark {
				p.stack = p.stack[:len(p.stack)-1]
				return nil
			}
		}
		_, err := p.pop()
		return err
	case pkPopMark:
		_, err := p.popMark()
		return err
	case pkDup:
		v, err := p.top()
		if err != nil {
			return err
		}
		return p.push(v)

	case pkNone:
		return p.push(nil)
	case pkNewTrue:
		return p.push(true)
	case pkNewFalse:
		return p.push(false)
	case pkInt:
		s, err := p.line()
		if err != nil {
			return err
		}
		switch s {
		case "01":
			return p.push(true)
		case "00":
			return p.push(false)
		}
		v := parseTextInt(s)
		if v == nil {
			return p.fail("INT argument %q", s)
		}
		return p.push(v)
	case pkLong:
		s, err := p.line()
		if err != nil {
			return err
		}
		v := parseTextInt(s)
		if v == nil {
			return p.fail("LONG argument %q", s)
		}
		return p.push(v)
	case pkBinInt:
		v, err := p.uint(4)
		if err != nil {
			return err
		}
		return p.push(int64(int32(uint32(v))))
	case pkBinInt1:
		v, err := p.uint(1)
		if err != nil {
			return err
		}
		return p.push(int64(v))
	case pkBinInt2:
		v, err := p.uint(2)
		if err != nil {
			return err
		}
		return p.push(int64(v))
	case pkLong1, pkLong4:
		lenBytes := 1
		if code == pkLong4 {
			lenBytes = 4
		}
		b, err := p.sizedArg(lenBytes)
		if err != nil {
			return err
		}
		return p.push(longFromBytes(b))
	case pkFloat:
		s, err := p.line()
		if err != nil {
			return err
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return p.fail("FLOAT argument %q", s)
		}
		return p.push(v)
	case pkBinFloat:
		b, err := p.take(8)
		if err != nil {
			return err
		}
		return p.push(math.Float64frombits(binary.BigEndian.Uint64(b)))

	case pkString, pkUnicode:
		// Protocol 0 text: kept raw (quotes stripped), never unescaped.
		s, err := p.line()
		if err != nil {
			return err
		}
		if code == pkString {
			if len(s) < 2 || (s[0] != '\'' && s[0] != '"') || s[len(s)-1] != s[0] {
				return p.fail("STRING argument is not quoted")
			}
			s = s[1 : len(s)-1]
		}
		return p.push(s)
	case pkBinString, pkBinUnicode, pkBinBytes:
		b, err := p.sizedArg(4)
		if err != nil {
			return err
		}
		if code == pkBinBytes {
			return p.push(pyBytes(b))
		}
		return p.push(string(b))
	case pkShortBinString, pkShortBinUni, pkShortBinBytes:
		b, err := p.sizedArg(1)
		if err != nil {
			return err
		}
		if code == pkShortBinBytes {
			return p.push(pyBytes(b))
		}
		return p.push(string(b))
	case pkBinUnicode8, pkBinBytes8, pkByteArray8:
		b, err := p.sizedArg(8)
		if err != nil {
			return err
		}
		if code == pkBinUnicode8 {
			return p.push(string(b))
		}
		return p.push(pyBytes(b))

	case pkEmptyTuple:
		return p.push(emptyTuple)
	case pkTuple1, pkTuple2, pkTuple3:
		n := int(code-pkTuple1) + 1
		if len(p.stack) < n {
			return p.fail("stack underflow")
		}
		items := p.stack[len(p.stack)-n:]
		for _, item := range items {
			if _, isMark := item.(pickleMark); isMark {
				return p.fail("unexpected mark")
			}
		}
		t, err := p.tuple(items)
		if err != nil {
			return err
		}
		p.stack = p.stack[:len(p.stack)-n]
		return p.push(t)
	case pkTuple:
		items, err := p.popMark()
		if err != nil {
			return err
		}
		t, err := p.tuple(items)
		if err != nil {
			return err
		}
		return p.push(t)
	case pkEmptyList:
		return p.push(p.newList())
	case pkList:
		items, err := p.popMark()
		if err != nil {
			return err
		}
		l := p.newList()
		if err := p.extend(l, items); err != nil {
			return err
		}
		return p.push(l)
	case pkEmptyDict:
		return p.push(p.newDict())
	case pkDict:
		items, err := p.popMark()
		if err != nil {
			return err
		}
		if len(items)%2 != 0 {
			return p.fail("DICT with an odd number of items")
		}
		d := p.newDict()
		if err := p.extend(d, items); err != nil {
			return err
		}
		return p.push(d)
	case pkEmptySet:
		return p.push(sharedSet)
	case pkFrozenSet:
		if _, err := p.popMark(); err != nil {
			return err
		}
		return p.push(sharedSet)
	case pkAppend:
		v, err := p.pop()
		if err != nil {
			return err
		}
		container, err := p.top()
		if err != nil {
			return err
		}
		return p.extend(container, []any{v})
	case pkAppends, pkAddItems:
		items, err := p.popMark()
		if err != nil {
			return err
		}
		container, err := p.top()
		if err != nil {
			return err
		}
		if code == pkAddItems {
			return nil
		}
		return p.extend(container, items)
	case pkSetItem:
		value, err := p.pop()
		if err != nil {
			return err
		}
		key, err := p.pop()
		if err != nil {
			return err
		}
		container, err := p.top()
		if err != nil {
			return err
		}
		return p.extend(container, []any{key, value})
	case pkSetItems:
		items, err := p.popMark()
		if err != nil {
			return err
		}
		if len(items)%2 != 0 {
			return p.fail("SETITEMS with an odd number of items")
		}
		container, err := p.top()
		if err != nil {
			return err
		}
		return p.extend(container, items)

	case pkGlobal, pkInst:
		module, err := p.line()
		if err != nil {
			return err
		}
		name, err := p.line()
		if err != nil {
			return err
		}
		global := &pyGlobal{module: module, name: name}
		if code == pkGlobal {
			return p.push(global)
		}
		items, err := p.popMark()
		if err != nil {
			return err
		}
		args, err := p.tuple(items)
		if err != nil {
			return err
		}
		return p.push(&pyObject{callable: global, args: args})
	case pkStackGlobal:
		name, err := p.pop()
		if err != nil {
			return err
		}
		module, err := p.pop()
		if err != nil {
			return err
		}
		moduleName, ok1 := module.(string)
		globalName, ok2 := name.(string)
		if !ok1 || !ok2 {
			return p.fail("STACK_GLOBAL of non-strings")
		}
		return p.push(&pyGlobal{module: moduleName, name: globalName})
	case pkObj:
		items, err := p.popMark()
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return p.fail("OBJ without a class")
		}
		args, err := p.tuple(items[1:])
		if err != nil {
			return err
		}
		return p.push(&pyObject{callable: items[0], args: args})
	case pkReduce, pkNewObj:
		args, err := p.pop()
		if err != nil {
			return err
		}
		callable, err := p.pop()
		if err != nil {
			return err
		}
		obj := &pyObject{callable: callable, args: args}
		if err := p.push(obj); err != nil {
			return err
		}
		if code == pkReduce && p.onReduce != nil {
			p.onReduce(obj)
		}
	case pkNewObjEx:
		if _, err := p.pop(); err != nil { // kwargs
			return err
		}
		args, err := p.pop()
		if err != nil {
			return err
		}
		cls, err := p.pop()
		if err != nil {
			return err
		}
		return p.push(&pyObject{callable: cls, args: args})
	case pkBuild:
		state, err := p.pop()
		if err != nil {
			return err
		}
		target, err := p.top()
		if err != nil {
			return err
		}
		if obj, ok := target.(*pyObject); ok {
			obj.state = state
		}
	case pkPersID, pkBinPersID:
		var id any
		if code == pkPersID {
			s, err := p.line()
			if err != nil {
				return err
			}
			id = s
		} else {
			v, err := p.pop()
			if err != nil {
				return err
			}
			id = v
		}
		persistent := &pyPersistent{id: id}
		if err := p.push(persistent); err != nil {
			return err
		}
		if p.onPersistent != nil {
			p.onPersistent(persistent)
		}

	case pkPut:
		index, err := p.textIndex()
		if err != nil {
			return err
		}
		return p.memoPut(index)
	case pkBinPut, pkLongBinPut:
		n := 1
		if code == pkLongBinPut {
			n = 4
		}
		index, err := p.uint(n)
		if err != nil {
			return err
		}
		return p.memoPut(uint32(index))
	case pkMemoize:
		if len(p.memo) > math.MaxUint32 {
			return p.fail("memo full")
		}
		return p.memoPut(uint32(len(p.memo)))
	case pkGet:
		index, err := p.textIndex()
		if err != nil {
			return err
		}
		return p.memoGet(index)
	case pkBinGet, pkLongBinGet:
		n := 1
		if code == pkLongBinGet {
			n = 4
		}
		index, err := p.uint(n)
		if err != nil {
			return err
		}
		return p.memoGet(uint32(index))

	case pkExt1, pkExt2, pkExt4:
		return p.fail("extension registry codes are not supported")
	case pkNextBuffer, pkReadonlyBuffer:
		return p.fail("out-of-band buffers are not supported")
	default:
		return p.fail("unknown opcode 0x%02x", code)
	}
	return nil
}
