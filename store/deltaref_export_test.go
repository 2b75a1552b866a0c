package store

import (
	"os"

	bolt "go.etcd.io/bbolt"
)

// RestampStat makes the stat cache entry of the file at abs vouch for the
// file as it is now (its current stat), keeping the chunks it recorded: a
// stale per-machine cache, as a bit flipped below the file system or an
// old index leaves it.
func RestampStat(ix *Index, abs string) error {
	var v []byte
	_ = ix.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketFiles); b != nil {
			v = append([]byte(nil), b.Get([]byte(abs))...)
		}
		return nil
	})
	e, ok := openStat(abs, v)
	if !ok {
		return os.ErrNotExist
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return err
	}
	st := statKey(fi)
	st.File = e.File
	ix.storeFiles(map[string]statEntry{abs: st})
	return nil
}
