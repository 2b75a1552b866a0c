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
// The encoding ends exactly after the tail. The first M*E input bytes form
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
package planes
