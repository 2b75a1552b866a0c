package store_test

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

func putLE64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
