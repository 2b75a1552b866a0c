package chaos

import (
	"fmt"
	"os"
	"testing"

	"github.com/ckptdev/ckpt/internal/miniotest"
)

// ckptBin is the ckpt binary every test of the package runs, built once.
var ckptBin string

// minioServer is one real MinIO for the package; each test takes a bucket.
// It is nil when there is no MinIO binary and MinIO is not required.
var minioServer *miniotest.Server

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ckpt-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if ckptBin, err = buildCkpt(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv, err := miniotest.StartServer()
	switch {
	case miniotest.Skippable(err):
		// The MinIO halves skip (minioRegistry); the local ones run.
		fmt.Fprintln(os.Stderr, "internal/chaos:", miniotest.SkipMessage)
		return m.Run()
	case err != nil:
		fmt.Fprintln(os.Stderr, "the chaos tests need MinIO:", err)
		return 1
	}
	defer srv.Close()
	minioServer = srv
	return m.Run()
}
