// Package planes is a lossless, dtype-aware byte-plane codec for model
// weights (the technique behind ZipNN).
//
// Plain LZ compressors barely touch floating point weights: zstd stores bf16
// weights drawn from N(0, 0.02) at 1.00 of raw. The exponent bits of such
// weights are highly skewed while the mantissa bits are close to random, and
// they share bytes. Splitting every element into its bytes — plane k holds
// byte k of every element — and entropy-coding each plane on its own stores
// the exponent planes at about a third of their size and the mantissa planes
// raw. Measured on 8 MiB of generated N(0, 0.02) weights (see
// TestCompressionRatios and BenchmarkEncode): bf16 0.662, fp16 0.843, fp32
// 0.831 of raw, against 1.000 for zstd at SpeedFastest.
//
// EncodeDelta and DecodeDelta code a chunk against a reference chunk (the
// same tensor in an earlier checkpoint): the difference, XOR or integer
// subtraction, goes through the same planes with one more block kind for
// mostly-zero planes (see "Delta payloads" below).
//
// Encode and Decode are single-threaded and safe for concurrent use; scratch
// buffers are pooled. Decode never allocates more than maxSize bytes of
// output (plus a pooled scratch of at most 8 × 128 KiB) and checks the whole
// header and block framing before it allocates.
//
// # Encoded format, version 1
//
// All multi-byte integers are unsigned LEB128 varints ("uvarint", as read
// by encoding/binary.Uvarint: 7 bits per byte, least significant group
// first, high bit set on every byte but the last, at most 10 bytes). A
// decoder must reject any violation of the rules below.
//
//	offset  size     field
//	0       1        version: 1
//	1       1        E, the element size in bytes: 1, 2, 4 or 8
//	2       1        transform: 0 none, 1 rot16 (only when E >= 2)
//	3       1        L, log2 of the block length: 10 <= L <= 17; B = 1<<L
//	4       uvarint  N, the decoded length in bytes (at most 2^63-1)
//	.       1        P, the number of planes: E if M > 0, else 0,
//	                 where M = floor(N / E) is the number of elements
//	.       P times  plane entry: 1 byte method, then uvarint length,
//	                 the size in bytes of that plane's payload
//	.       ...      the P plane payloads, in plane order, back to back
//	.       N - M*E  the tail: the last N mod E input bytes, verbatim
//
// The encoding ends exactly after the tail. Version 2 is the same format
// with one more block kind (sparse, below); it occurs only inside delta
// payloads, and Decode refuses it, so that readers of version 1 never meet
// it in a planes object. The first M*E input bytes form
// the body: element i is body[i*E : i*E+E]. The planes are planes of the
// transformed body x: plane k (0 <= k < E) is the M bytes x[i*E+k] for
// i = 0..M-1. With E = 1 there is one plane, the body itself.
//
// # Transform
//
// With transform 0, x is the body. With transform 1 (rot16), for every
// element the 16-bit little-endian value v formed by its two most
// significant bytes (byte E-2 low, byte E-1 high) is replaced by v rotated
// left by one bit, (v<<1 | v>>15) & 0xffff; the other bytes stay. A decoder
// merges the planes and then rotates those 16 bits right by one. For bf16
// and fp32 (sign, 8 exponent bits, mantissa) this moves the sign bit to the
// bottom and puts the whole exponent into byte E-1, which lowers the coded
// size of the two top planes (bf16 0.670 -> 0.662 of raw).
//
// # Plane methods
//
//	0 raw       the payload is the M plane bytes; its length must be M
//	1 constant  the payload is one byte c (length 1); the plane is M times c
//	2 blocked   the plane is cut into ceil(M / B) blocks, block j holding
//	            plane bytes [j*B, min((j+1)*B, M)); the payload is one
//	            record per block, in order, and nothing else
//
// A block record is a kind byte followed by its data; m is the block's
// length:
//
//	0 raw    m bytes: the block verbatim
//	1 rle    1 byte c: the block is m times c
//	2 huff0  uvarint n > 0, then n bytes: a Huffman-coded block in the
//	         format of klauspost/compress/huff0 Compress4X, which is the
//	         Huffman part of a zstd literals section (RFC 8878): a Huffman
//	         tree description (section 4.2.1), then a 6-byte jump table of
//	         three little-endian uint16 sizes of streams 1-3, then the four
//	         bit streams (section 4.2.2); streams 1-3 decode to ceil(m/4)
//	         bytes each and stream 4 to the rest
//	3 zstd   uvarint n > 0, then n bytes: zstd frame(s) (RFC 8878) that
//	         decode to exactly the m bytes of the block; the encoder writes
//	         one single-segment frame with the content size and no checksum
//	4 sparse version 2 only: uvarint n > 0, then n bytes, the sparse
//	         payload below
//
// A sparse payload codes a block that is mostly zero bytes as a bitmap of
// its nonzero bytes and those bytes. It is, with nb = ceil(m/8):
//
//	size     field
//	1        bitmap kind: 0 raw, 2 huff0, 3 zstd
//	...      bitmap data: raw: the nb bitmap bytes; huff0 and zstd: uvarint
//	         k > 0, then k bytes coding exactly nb bytes as a block of that
//	         kind does
//	1        values kind: 0 raw, 1 rle, 2 huff0
//	...      values data, everything up to the end of the sparse payload:
//	         raw: the values; rle: one byte c, every value is c; huff0:
//	         the values as a huff0 block codes them (table, then streams)
//
// Bit j of bitmap byte i (least significant bit first) says whether block
// byte 8i+j is a value; bits for bytes at or past m must be 0. The number
// of values is the number of set bits, V. Block byte 8i+j is the next value
// if its bit is set, else 0. Raw values must be exactly V bytes and huff0
// values must decode to exactly V bytes. The encoder writes only nonzero
// values, but a decoder does not check that.
//
// # Encoder choices (not part of the format)
//
// Encode writes L = 17 (128 KiB blocks, below huff0's 256 KiB limit). For
// at least 256 elements it picks rot16 when an order-0 entropy estimate over
// up to 64 Ki sampled elements says the rotated top planes are at least 0.2%
// smaller: this is the case for bf16 and fp32 weights, not for fp16 (5
// exponent bits). It splits the
// body 128 Ki elements at a time and codes each plane's block as the
// smallest of what it tries:
//
//   - raw for blocks shorter than 64 bytes that are not rle;
//   - rle when the block is one repeated byte;
//   - huff0 (Compress4X, table log 11, no table reuse) unless it saves less
//     than 1/64 of the block. While huff0 keeps failing on a plane it is
//     tried only at blocks 0, 1, 3, 7, 15, 31 and then every 16th block, so
//     near-random mantissa planes cost little more than a copy;
//   - zstd at SpeedFastest, which wins on runs and repeats (sparse tensors,
//     integer ranges, text) that an order-0 coder cannot see. A 16 KiB prefix
//     of the block is compressed first as a probe; the whole block is
//     compressed only if the probe beats the best ratio so far by 10%. Probes
//     follow the same backoff as huff0; after a zstd win the next block is
//     compressed with zstd at once;
//   - raw otherwise.
//
// A plane whose blocks are all raw is written with method raw, one whose
// blocks are all rle of the same byte with method constant, any other with
// method blocked.
//
// # Delta payloads, version 1
//
// A delta payload codes content C of n bytes against a reference: the
// decoded bytes of another chunk, which the payload does not contain (the
// container names it; see "Delta objects in the store" below). It is:
//
//	offset  size  field
//	0       1     delta version: 1
//	1       1     op: 0 xor, 1 sub
//	2       1     reference form: 0 same, 1 f32-to-bf16
//	3       ...   a planes stream of version 2 (the format above, version
//	              byte 2), which decodes to the difference D, n bytes
//
// The stream's E is the element width of the op and its N is n. The
// reference form says what the reference R is:
//
//   - same (0): the reference is n bytes, elements of the same type; R is
//     the reference.
//   - f32-to-bf16 (1): E must be 2 and n even; the reference is 2n bytes,
//     n/2 fp32 values (little-endian), and R is their bf16 roundings:
//     for fp32 bits b, 0x7fc0 if b is a NaN ((b & 0x7fffffff) >
//     0x7f800000), else (b + 0x7fff + ((b >> 16) & 1)) >> 16. This is the
//     cast PyTorch makes (round to nearest even, one quiet NaN), so a
//     bf16 fine-tune's first checkpoint codes against its fp32 base.
//
// With M = floor(n / E) elements, element i of D, C and R being the bytes
// [iE, iE+E) read as little-endian unsigned E-byte integers d, c, r:
//
//   - op xor: d = c XOR r, so c = d XOR r;
//   - op sub: d = zigzag(c - r), so c = r + unzigzag(d), where c - r and
//     r + ... wrap modulo 2^(8E), and zigzag maps the difference s, taken
//     as a signed E-byte integer, to (s << 1) XOR (s >> (8E-1)) with an
//     arithmetic shift (0, -1, 1, -2 become 0, 1, 2, 3), unzigzag(d) =
//     (d >> 1) XOR -(d & 1).
//
// The last n mod E bytes (the stream's tail; none with form 1) are always
// XORed with the reference's bytes at the same offsets. A decoder must
// refuse a delta whose stream declares other than the n its caller
// expects (the container knows n), an unknown version, op or form, form 1
// with E != 2 or n odd, and a reference of the wrong length.
//
// Why subtraction: a small change of a float's value is a small integer
// difference of its bits (for the same sign, bit patterns are ordered by
// magnitude), but XOR flips every bit a carry crosses: an fp32 fine-tune's
// third byte plane has an order-0 entropy of 0.49 of its size after XOR
// and 0.42 after subtraction, its top plane 0.025 and 0.010.
//
// Why sparse blocks: after either op the top planes are mostly zero (a
// pure bf16 fine-tune leaves 95% of its elements unchanged from one
// checkpoint to the next; an fp32 one changes 2-5% of the exponents).
// huff0 spends at least a bit per byte (0.13 of such a plane, however
// skewed), fast zstd about twice the order-0 entropy, FSE (tANS) gets the
// entropy but decodes at a quarter to a third of huff0's speed; a bitmap
// plus the values, both huff0-coded, comes within 5-25% of the entropy on
// planes 92-96% zero and within twice it on planes over 99% zero (where it
// is still under 0.025 of the plane), at huff0's speed. Measured on real
// fine-tune checkpoints (the exponent plane of an fp32 fine-tune step
// after XOR: entropy 0.025, huff0 0.131, zstd 0.051, FSE 0.025, sparse
// 0.031; the low plane of a bf16 step: 0.066, 0.162, 0.106, 0.074, 0.072).
//
// # Delta encoder choices (not part of the format)
//
// EncodeDelta picks sub unless an order-0 entropy estimate over all byte
// planes of up to 64 Ki sampled elements says xor is within 0.5% (sub
// wins on fine-tune steps; xor on sign flips and unrelated data). It then
// codes D as Encode codes content (rot16 by its own estimate, the same
// block choices), and also tries a sparse block for each block with at
// least half zero bytes, taking the smallest; huff0 is skipped for a block
// more than 15/16 zero, which the sparse form always beats. A sparse
// block's bitmap is the smallest of raw, huff0 and zstd; its values rle,
// else the smaller of huff0 and raw. The caller keeps the delta only when
// it is smaller than the standalone encoding.
//
// DecodeDelta decodes a block whose planes are all sparse (or zero) by
// copying the reference (rounding it, for f32-to-bf16) and patching only
// the elements some bitmap marks; it merges any other block as Decode does,
// combining each merged word with the reference in the same pass (element
// sizes 2 and 4, form same) or in a second pass over the block.
//
// # Delta objects in the store
//
// The object envelope (docs/format.md section 4, store/object) carries
// deltas as codec 3, "delta" (param: the element size, as for planes),
// with the payload: r = 1 (one byte), the reference's 32-byte blob ID,
// then a delta payload of form same. The proposal here allowed r = 2 for
// form f32-to-bf16 (a bf16 chunk against two fp32 chunks of the base);
// the store does not write or read that yet. The reference must not itself
// be a delta, so a read decodes at most two objects; gc learns references
// from edge objects (deltas/<ref>/<delta>) and a registry holding deltas
// has format version 2.
//
// # Speed
//
// Measured with BenchmarkEncode/BenchmarkDecode (8 MiB, one core of a
// shared, noisy 2-core AMD EPYC; ranges over runs): encode bf16 520-740 MB/s,
// fp16 570-840 MB/s, fp32 740-1010 MB/s; decode bf16 1.0-1.26 GB/s, fp16
// 1.2-1.3 GB/s, fp32 1.6-1.95 GB/s. Plain zstd (BenchmarkZstdPeer) runs at
// about 3 GB/s encode and 7 GB/s decode but stores 1.000 of raw. Encoding
// bf16 spends about half its time in huff0 on the exponent plane (its
// histogram pass alone a fifth), a quarter in the SWAR byte transpose, and
// the rest in copies and zstd probes; decoding spends about 60% in huff0's
// 4-stream decoder (about 1 GB/s of plane bytes) and 40% in the transpose.
//
// Deltas, measured later on the same machine under other helpers' load,
// in MB/s of content per second of CPU (cpuMB/s; the wall clock was up to
// three times slower than in the quiet runs above, so compare within a
// run). On generated fine-tune steps (BenchmarkDecodeDelta against
// BenchmarkDecode in one run): Decode bf16 650-680, fp32 955; DecodeDelta
// bf16 870-930 (mostly the sparse path, either op), bf16 against an fp32
// reference 390-500 (it reads and rounds twice the bytes), fp32 xor
// 900-940, fp32 sub 625-800. EncodeDelta bf16 170-195 and fp32 355-385
// against Encode 340-480. On real checkpoints (internal/deltabench, all
// chunks of a family): delta decode is 0.96x the standalone decode for a
// pure bf16 fine-tune, 0.55-0.65x for fp32 and for fp32 master weights
// saved as bf16 (two coded planes instead of one, and the op), about 1.0x
// for Adam state. Decoding through a chain of k deltas costs k+1 decodes
// in sequence: 8-9x one standalone decode at depth 5 for fp32 and mixed
// runs, 4.4x for pure bf16.
package planes
