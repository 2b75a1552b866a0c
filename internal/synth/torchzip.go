package synth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// torchArchiveName is the folder every record of a torch.save zip sits in.
// torch.save names it after the file when given a path ("optimizer/...")
// and "archive" when given a buffer, as transformers' Trainer often does;
// loaders accept any name.
const torchArchiveName = "archive"

// torchAlignment is the alignment of every record's data in a torch.save
// zip (PyTorchStreamWriter's kFieldAlignment), padded with an "FB" extra
// field.
const torchAlignment = 64

// torchStorage is one tensor storage of a torch.save file: the zip record
// data/<key>, written by a deterministic function (it is called twice: once
// to compute the CRC-32, once to write).
type torchStorage struct {
	key   string
	size  int64
	write func(io.Writer) error
}

// writeTorchSave writes path the way torch.save does since torch 2.1:
// an uncompressed (STORE) zip whose records, in order, are
// archive/data.pkl, archive/byteorder, archive/data/<key> for every storage
// in lexicographic key order, archive/version and
// archive/.data/serialization_id, each record's data 64-byte aligned.
func writeTorchSave(path string, pickled []byte, storages []torchStorage) (err error) {
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
	z := &torchZipWriter{zw: zip.NewWriter(w)}
	fail := func(err error) error { return fmt.Errorf("synth: writing %s: %w", path, err) }

	if err := z.writeBytes("data.pkl", pickled); err != nil {
		return fail(err)
	}
	if err := z.writeBytes("byteorder", []byte("little")); err != nil {
		return fail(err)
	}
	storages = slices.Clone(storages)
	slices.SortFunc(storages, func(a, b torchStorage) int { return strings.Compare(a.key, b.key) })
	for _, storage := range storages {
		if err := z.write("data/"+storage.key, storage.size, storage.write); err != nil {
			return fail(err)
		}
	}
	if err := z.writeBytes("version", []byte("3\n")); err != nil {
		return fail(err)
	}
	if err := z.writeBytes(".data/serialization_id", z.serializationID()); err != nil {
		return fail(err)
	}
	if err := z.close(); err != nil {
		return fail(err)
	}
	return nil
}

// torchZipWriter writes aligned STORE records. It tracks the file offset
// itself (zip.Writer buffers): no record has a data descriptor, so the
// offset is the sum of header, name, extra and data sizes.
type torchZipWriter struct {
	zw       *zip.Writer
	offset   int64
	nameHash uint64
	crcHash  uint64
}

func (z *torchZipWriter) writeBytes(name string, data []byte) error {
	return z.write(name, int64(len(data)), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

func (z *torchZipWriter) write(name string, size int64, write func(io.Writer) error) error {
	if size >= math.MaxUint32 {
		return fmt.Errorf("record %s of %d bytes needs zip64, which this writer does not produce", name, size)
	}
	crc := crc32.NewIEEE()
	if err := write(crc); err != nil {
		return err
	}
	fullName := torchArchiveName + "/" + name
	const localHeaderLen = 30
	start := z.offset + localHeaderLen + int64(len(fullName)) + 4
	padding := (torchAlignment - start%torchAlignment) % torchAlignment
	extra := make([]byte, 4+padding)
	copy(extra, "FB")
	binary.LittleEndian.PutUint16(extra[2:], uint16(padding))
	for i := 4; i < len(extra); i++ {
		extra[i] = 'Z'
	}
	header := &zip.FileHeader{
		Name:               fullName,
		Method:             zip.Store,
		ReaderVersion:      20,
		CRC32:              crc.Sum32(),
		CompressedSize64:   uint64(size),
		UncompressedSize64: uint64(size),
		Extra:              extra,
	}
	w, err := z.zw.CreateRaw(header)
	if err != nil {
		return err
	}
	counter := &countingWriter{w: w}
	if err := write(counter); err != nil {
		return err
	}
	if counter.n != size {
		return fmt.Errorf("record %s: wrote %d bytes, want %d", name, counter.n, size)
	}
	z.offset = start + padding + size

	h := fnv.New64a()
	h.Write([]byte(name))
	z.nameHash = z.nameHash*31 + h.Sum64()
	z.crcHash = z.crcHash*31 + uint64(crc.Sum32())
	return nil
}

// serializationID is 40 decimal digits derived from the record names and
// CRCs, like PyTorchStreamWriter's (whose exact hash is C++'s).
func (z *torchZipWriter) serializationID() []byte {
	return fmt.Appendf(nil, "%020d%020d", z.nameHash, z.crcHash)
}

func (z *torchZipWriter) close() error {
	return z.zw.Close() // writes the central directory and flushes
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// bytesStorage is a storage holding data.
func bytesStorage(key string, data []byte) torchStorage {
	return torchStorage{key: key, size: int64(len(data)), write: func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	}}
}
