package store

import (
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// processAlive tells a running process from one that has exited and been
// waited for, on every system that has an implementation (proc_*.go).
func TestProcessAlive(t *testing.T) {
	assert.True(t, processAlive(os.Getpid()), "this process")
	done := exec.Command("true")
	if runtime.GOOS == "windows" {
		done = exec.Command("cmd", "/c", "exit 0")
	}
	require.NoError(t, done.Run())
	assert.False(t, processAlive(done.ProcessState.Pid()), "a child that exited")
}
