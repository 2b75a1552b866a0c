package layout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ShardIndex is a sharded-weights index such as model.safetensors.index.json
// or pytorch_model.bin.index.json.
type ShardIndex struct {
	// Metadata is the index's "metadata" object (total_size, ...), nil if
	// absent. Numbers are float64, as encoding/json decodes them.
	Metadata map[string]any
	// WeightMap maps each tensor name to the shard file holding it, a plain
	// file name relative to the folder of the index.
	WeightMap map[string]string
}

// ParseShardIndex parses a sharded-weights index. weight_map is required
// and must not be empty, and every shard it names must be a plain file name:
// no "/" or "\", not "." or "..", not empty, no NUL.
func ParseShardIndex(data []byte) (*ShardIndex, error) {
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("shard index: not a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("shard index: not valid JSON: %w", err)
	}
	index := &ShardIndex{}
	if raw := fields["metadata"]; raw != nil && string(raw) != "null" {
		if raw[0] != '{' {
			return nil, fmt.Errorf("shard index: metadata is %s, want an object", abbreviate(raw))
		}
		if err := json.Unmarshal(raw, &index.Metadata); err != nil {
			return nil, fmt.Errorf("shard index: metadata: %w", err)
		}
	}
	raw := fields["weight_map"]
	if raw == nil || string(raw) == "null" {
		return nil, fmt.Errorf("shard index: no weight_map")
	}
	if raw[0] != '{' {
		return nil, fmt.Errorf("shard index: weight_map is %s, want an object", abbreviate(raw))
	}
	if err := json.Unmarshal(raw, &index.WeightMap); err != nil {
		return nil, fmt.Errorf("shard index: weight_map must map tensor names to file names: %w", err)
	}
	if len(index.WeightMap) == 0 {
		return nil, fmt.Errorf("shard index: weight_map is empty")
	}
	for tensor, shard := range index.WeightMap {
		if err := checkShardName(shard); err != nil {
			return nil, fmt.Errorf("shard index: tensor %q: %w", tensor, err)
		}
	}
	return index, nil
}

func checkShardName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty shard file name")
	case name == "." || name == "..":
		return fmt.Errorf("shard %q is not a file name", name)
	case strings.ContainsAny(name, "/\\"):
		return fmt.Errorf("shard %q is a path, want a plain file name", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("shard %q contains a NUL byte", name)
	}
	return nil
}

// Shards returns the shard file names the index refers to, sorted and
// without duplicates.
func (ix *ShardIndex) Shards() []string {
	shards := make([]string, 0, len(ix.WeightMap))
	for _, shard := range ix.WeightMap {
		shards = append(shards, shard)
	}
	slices.Sort(shards)
	return slices.Compact(shards)
}
