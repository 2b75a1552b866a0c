package planes

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEncodeBelow checks that the limited codings are the unlimited ones
// whenever those are shorter than the limit, and refuse (leaving dst as it
// was) otherwise, at every limit around the coding's length and far below
// it, where they stop early.
func TestEncodeBelow(t *testing.T) {
	for _, blockLog := range []uint{defaultBlockLog, minBlockLog} {
		for _, es := range elemSizes {
			for _, c := range roundTripCases(es) {
				t.Run(fmt.Sprintf("L%d/es%d/%s", blockLog, es, c.name), func(t *testing.T) {
					want, err := encodeStream([]byte("pre"), c.data, es, blockLog, Version)
					require.NoError(t, err)
					n := len(want) - 3
					for _, limit := range []int{-1, 0, 1, n / 2, n - 1, n, n + 1, 2 * n} {
						got, err := encodeStreamBelow([]byte("pre"), c.data, es, blockLog, Version, limit)
						if limit < 0 || n < limit {
							require.NoError(t, err, "limit %d", limit)
							assert.True(t, bytes.Equal(want, got), "limit %d: coding differs from the unlimited one", limit)
							continue
						}
						require.ErrorIs(t, err, ErrNotBelow, "limit %d, coding of %d bytes", limit, n)
						assert.Equal(t, "pre", string(got), "limit %d: dst changed", limit)
					}
				})
			}
		}
	}
}

func TestEncodeDeltaBelow(t *testing.T) {
	for _, es := range elemSizes {
		content := genF32(3*blockLen*es + 4)[:3*blockLen*es]
		for _, ref := range deltaRefs(content) {
			t.Run(fmt.Sprintf("es%d/%s", es, ref.name), func(t *testing.T) {
				want, err := EncodeDelta([]byte("pre"), content, ref.data, es)
				require.NoError(t, err)
				n := len(want) - 3
				for _, limit := range []int{0, 1, 3, 4, n / 2, n - 1, n, n + 1} {
					got, err := EncodeDeltaBelow([]byte("pre"), content, ref.data, es, limit)
					if n < limit {
						require.NoError(t, err, "limit %d", limit)
						assert.True(t, bytes.Equal(want, got), "limit %d: coding differs from the unlimited one", limit)
						dec, err := DecodeDelta(nil, got[3:], ref.data, len(content))
						require.NoError(t, err)
						assert.True(t, bytes.Equal(content, dec))
						continue
					}
					require.ErrorIs(t, err, ErrNotBelow, "limit %d, coding of %d bytes", limit, n)
					assert.Equal(t, "pre", string(got), "limit %d: dst changed", limit)
				}
			})
		}
	}
}

// TestEncodeBelowStopsEarly: a limit far below what random bytes code to
// is refused after the first blocks, not after coding them all.
func TestEncodeBelowStopsEarly(t *testing.T) {
	data := randBytes(7, 64*blockLen*4)
	st := getEncState()
	defer putEncState(st)
	st.sparseOK = true
	require.False(t, st.encodePlanes(data, 4, false, defaultBlockLog, 1000))
	assert.Equal(t, 1, st.planes[0].blocks, "the limit was passed in the first block")
}
