package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ckptdev/ckpt/store"
	"github.com/ckptdev/ckpt/store/backend"
)

// undeletableLocks refuses to delete lock objects.
type undeletableLocks struct{ backend.Backend }

func (u undeletableLocks) Delete(ctx context.Context, key string) error {
	if strings.HasPrefix(key, "locks/") {
		return errors.New("permission denied")
	}
	return u.Backend.Delete(ctx, key)
}

// TestUnreleasedLockIsReported: a lock the backend will not delete does not
// fail a push or gc that has done its work, but it is reported through
// Options.Warn, naming the lock, rather than dropped in silence.
func TestUnreleasedLockIsReported(t *testing.T) {
	for name, nb := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nb)
			_, ckpts := tinyRun(t, 21, nil)
			var mu sync.Mutex
			var warnings []string
			r, err := store.Open(e.ctx, undeletableLocks{e.b}, store.Options{Warn: func(err error) {
				mu.Lock()
				defer mu.Unlock()
				warnings = append(warnings, err.Error())
			}})
			require.NoError(t, err)
			_, err = r.Push(e.ctx, ckpts[0], store.PushOptions{Name: "run"})
			require.NoError(t, err)
			require.NotEmpty(t, warnings, "the publish lock that stayed behind is reported")
			assert.Contains(t, warnings[0], "locks/publish-")
			assert.Contains(t, warnings[0], "permission denied")
		})
	}
}
