package synth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// pyObject is a JSON object; pyJSON writes its keys sorted.
type pyObject map[string]any

// pyJSON formats v the way Python's json.dumps(v, indent=2, sort_keys=True)
// does, which is how transformers writes config.json, trainer_state.json
// and index files (they append the final "\n" themselves). v is built from
// pyObject, []any, string, bool, nil, int, int64, float64, float32 (widened
// like torch's .item()) and json.Number.
func pyJSON(v any) []byte {
	var buf bytes.Buffer
	writePyJSON(&buf, v, 0)
	return buf.Bytes()
}

func writePyJSON(buf *bytes.Buffer, v any, depth int) {
	newline := func(depth int) {
		buf.WriteByte('\n')
		buf.WriteString(strings.Repeat("  ", depth))
	}
	switch v := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(v))
	case int:
		buf.WriteString(strconv.Itoa(v))
	case int64:
		buf.WriteString(strconv.FormatInt(v, 10))
	case float64:
		buf.WriteString(pyFloat(v))
	case float32:
		buf.WriteString(pyFloat(float64(v)))
	case json.Number:
		writePyNumber(buf, v)
	case string:
		writePyString(buf, v)
	case []any:
		if len(v) == 0 {
			buf.WriteString("[]")
			return
		}
		buf.WriteByte('[')
		for i, element := range v {
			if i > 0 {
				buf.WriteByte(',')
			}
			newline(depth + 1)
			writePyJSON(buf, element, depth+1)
		}
		newline(depth)
		buf.WriteByte(']')
	case pyObject:
		if len(v) == 0 {
			buf.WriteString("{}")
			return
		}
		keys := make([]string, 0, len(v))
		for key := range v {
			keys = append(keys, key)
		}
		slices.Sort(keys) // Python sorts by code point; equal to byte order in UTF-8
		buf.WriteByte('{')
		for i, key := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			newline(depth + 1)
			writePyString(buf, key)
			buf.WriteString(": ")
			writePyJSON(buf, v[key], depth+1)
		}
		newline(depth)
		buf.WriteByte('}')
	case map[string]any:
		writePyJSON(buf, pyObject(v), depth)
	default:
		panic(fmt.Sprintf("synth: pyJSON cannot encode %T", v))
	}
}

// writePyNumber re-encodes a number read from JSON as Python would after
// loading it: integers as they are, anything else as a float.
func writePyNumber(buf *bytes.Buffer, n json.Number) {
	if !strings.ContainsAny(string(n), ".eE") {
		buf.WriteString(string(n))
		return
	}
	f, err := n.Float64()
	if err != nil { // out of range: Python reads it as inf
		f = math.Inf(1)
		if strings.HasPrefix(string(n), "-") {
			f = math.Inf(-1)
		}
	}
	buf.WriteString(pyFloat(f))
}

// pyFloat formats f as Python's repr(float) (and so json.dumps) does: the
// shortest round-tripping digits, positional notation with at least one
// fractional digit for 1e-4 <= |f| < 1e16, else d.ddde±XX; NaN and
// infinities as json.dumps spells them.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	// Shortest digits as d.ddddde±x.
	s := strconv.FormatFloat(f, 'e', -1, 64)
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mantissa, expText, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expText)
	digits := strings.Replace(mantissa, ".", "", 1)
	if exp < -4 || exp >= 16 {
		out := digits[:1]
		if len(digits) > 1 {
			out += "." + digits[1:]
		}
		expSign := "+"
		if exp < 0 {
			expSign, exp = "-", -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, out, expSign, exp)
	}
	point := exp + 1 // digits before the decimal point
	switch {
	case point <= 0:
		return sign + "0." + strings.Repeat("0", -point) + digits
	case point >= len(digits):
		return sign + digits + strings.Repeat("0", point-len(digits)) + ".0"
	default:
		return sign + digits[:point] + "." + digits[point:]
	}
}

// writePyString writes s as json.dumps does with ensure_ascii=True.
func writePyString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			buf.WriteString(`\"`)
		case r == '\\':
			buf.WriteString(`\\`)
		case r == '\n':
			buf.WriteString(`\n`)
		case r == '\r':
			buf.WriteString(`\r`)
		case r == '\t':
			buf.WriteString(`\t`)
		case r == '\b':
			buf.WriteString(`\b`)
		case r == '\f':
			buf.WriteString(`\f`)
		case r < 0x20 || r > 0x7e:
			if r > 0xffff { // UTF-16 surrogate pair
				r -= 0x10000
				fmt.Fprintf(buf, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			} else {
				fmt.Fprintf(buf, `\u%04x`, r)
			}
		default:
			buf.WriteRune(r)
		}
	}
	buf.WriteByte('"')
}

// pyRound returns the float Python's round(f, places) returns: the double
// nearest to f rounded to that many decimal places.
func pyRound(f float64, places int) float64 {
	rounded, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', places, 64), 64)
	return rounded
}
