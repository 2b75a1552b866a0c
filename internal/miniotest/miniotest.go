// Package miniotest runs a real MinIO server for tests. It owns finding the
// binary (CKPT_MINIO_BIN, else <module root>/bin/minio, which "make test"
// installs), starting it on free loopback ports with fresh random
// credentials, a temporary data folder and a clean environment (no ambient
// AWS_* or MINIO_* variable reaches it), waiting until it is healthy,
// making a fresh bucket per test, stopping and restarting it for fault
// tests, and killing its whole process group at the end.
//
// Without a MinIO binary (CKPT_MINIO_BIN unset and no bin/minio), the
// MinIO tests skip with SkipMessage, one line saying how to get one; but
// where MinIO is required (Required: the CI environment variable is set,
// or CKPT_REQUIRE_MINIO=1, which make test sets) a missing binary fails
// them. A binary that CKPT_MINIO_BIN names but is not there, or a server
// that does not come up, always fails.
package miniotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// InstallHint is what to do when the MinIO binary is missing.
const InstallHint = `run "make test" (it installs MinIO into ./bin)`

// SkipMessage is the line a MinIO test skips with when there is no binary.
const SkipMessage = "MinIO tests skipped: no MinIO binary; set CKPT_MINIO_BIN to one, or run `make minio` to install it into ./bin"

// ErrNoBinary is returned (wrapped) by Binary, StartServer and Start when
// CKPT_MINIO_BIN is unset and the module has no bin/minio.
var ErrNoBinary = errors.New("no MinIO binary")

// Required reports whether a missing MinIO binary must fail the tests
// instead of skipping them: in CI (the CI environment variable is set) and
// under make test (CKPT_REQUIRE_MINIO=1).
func Required() bool {
	return os.Getenv("CI") != "" || os.Getenv("CKPT_REQUIRE_MINIO") == "1"
}

// Skippable reports whether err, from StartServer, lets the MinIO tests
// skip: there is no binary, and MinIO is not Required.
func Skippable(err error) bool { return errors.Is(err, ErrNoBinary) && !Required() }

// Region is the region of the test server.
const Region = "us-east-1"

// StartTimeout bounds the wait for a (re)started server to become healthy.
var StartTimeout = 60 * time.Second

// Server is a running MinIO. Its fields are fixed for its whole life,
// restarts included.
type Server struct {
	// Endpoint is the S3 API's URL, "http://127.0.0.1:PORT".
	Endpoint string
	// AccessKey and SecretKey are the root credentials, random per server.
	AccessKey, SecretKey string
	// Dir is the data folder; LogFile collects the server's output.
	Dir, LogFile string

	bin         string
	root        string // temporary folder holding everything, removed by Close
	addr        string
	consoleAddr string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// Binary returns the path of the MinIO binary: $CKPT_MINIO_BIN, else
// bin/minio under the module root. It fails if there is none.
func Binary() (string, error) {
	if p := os.Getenv("CKPT_MINIO_BIN"); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("MinIO binary from CKPT_MINIO_BIN: %w; %s", err, InstallHint)
		}
		return p, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("MinIO binary: %w; %s", err, InstallHint)
	}
	p := filepath.Join(root, "bin", "minio")
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w (CKPT_MINIO_BIN is unset and %s does not exist); %s", ErrNoBinary, p, InstallHint)
	}
	if err := checkExecutable(p); err != nil {
		return "", fmt.Errorf("MinIO binary: %w; %s", err, InstallHint)
	}
	return p, nil
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// ModuleRoot returns the nearest folder at or above the working directory
// that holds a go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// Start starts a server for tb and stops it (and removes its data) when tb
// ends. It skips tb (SkipMessage) when there is no binary and MinIO is not
// Required, and fails tb if the server cannot start.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := StartServer()
	if Skippable(err) {
		tb.Skip(SkipMessage)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// StartServer starts a server, for TestMain; the caller must Close it.
func StartServer() (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "miniotest-")
	if err != nil {
		return nil, err
	}
	s := &Server{
		bin:       bin,
		root:      root,
		Dir:       filepath.Join(root, "data"),
		LogFile:   filepath.Join(root, "minio.log"),
		AccessKey: "ckpt" + randomHex(8),
		SecretKey: randomHex(20),
	}
	for _, d := range []string{s.Dir, filepath.Join(root, "home"), filepath.Join(root, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			os.RemoveAll(root)
			return nil, err
		}
	}
	// The ports are free when chosen but may be taken before MinIO binds
	// them (other tests run on this machine): try again with new ones.
	for try := 1; ; try++ {
		if s.addr, err = freeAddr(); err == nil {
			s.consoleAddr, err = freeAddr()
		}
		if err != nil {
			os.RemoveAll(root)
			return nil, fmt.Errorf("MinIO: choosing ports: %w", err)
		}
		s.Endpoint = "http://" + s.addr
		err = s.start()
		if err == nil {
			return s, nil
		}
		if try == 3 || !strings.Contains(s.logTail(4096), "address already in use") {
			os.RemoveAll(root)
			return nil, err
		}
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// start launches the process and waits until it is healthy.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("MinIO is already running")
	}
	logf, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "=== miniotest: starting MinIO at %s (%s)\n", s.Endpoint, time.Now().Format(time.RFC3339Nano))

	cmd := exec.Command(s.bin, "server", "--address", s.addr, "--console-address", s.consoleAddr, s.Dir)
	// A clean environment: nothing ambient (AWS_*, MINIO_*, proxies...).
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + filepath.Join(s.root, "home"),
		"TMPDIR=" + filepath.Join(s.root, "tmp"),
		"MINIO_ROOT_USER=" + s.AccessKey,
		"MINIO_ROOT_PASSWORD=" + s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting MinIO %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { // ends when the process does; Stop kills it
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	if err := s.waitHealthy(exited); err != nil {
		s.stopLocked()
		return fmt.Errorf("MinIO at %s did not start: %w; %s\n--- last lines of %s:\n%s",
			s.Endpoint, err, InstallHint, s.LogFile, s.logTail(3000))
	}
	return nil
}

// waitHealthy polls the cluster health endpoint until it answers 200.
func (s *Server) waitHealthy(exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/minio/health/cluster", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health check answered %s", resp.Status)
		}
		last = err
		select {
		case <-exited:
			return fmt.Errorf("the process exited (%v)", s.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("not healthy after %s: %v", StartTimeout, last)
		case <-tick.C:
		}
	}
}

// Stop kills the server's process group and waits for it to exit. The
// data stays for Restart. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	killGroup(s.cmd.Process)
	<-s.exited
	s.cmd, s.exited = nil, nil
}

// Restart stops the server if it runs and starts it again on the same
// address, credentials and data.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
}

// Launch starts a stopped server again (same address, credentials and
// data) and waits until it is healthy; for goroutines that cannot call
// tb.Fatal. Launching a running server is an error.
func (s *Server) Launch() error { return s.start() }

// Close stops the server and removes its data and log.
func (s *Server) Close() {
	s.Stop()
	os.RemoveAll(s.root)
}

// Creds returns static credentials for the server.
func (s *Server) Creds() *credentials.Credentials {
	return credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")
}

// Client returns a minio-go client for the server, for test set-up.
func (s *Server) Client() (*minio.Client, error) {
	return minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds:        s.Creds(),
		Region:       Region,
		BucketLookup: minio.BucketLookupPath,
		Transport:    &http.Transport{Proxy: nil},
	})
}

// NewBucket makes a fresh, empty bucket and returns its name.
func (s *Server) NewBucket(tb testing.TB) string {
	tb.Helper()
	client, err := s.Client()
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "ckpt-test-" + randomHex(6)
	if err := client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: Region}); err != nil {
		tb.Fatalf("MinIO at %s: make bucket %s: %v\n--- last lines of %s:\n%s", s.Endpoint, name, err, s.LogFile, s.logTail(3000))
	}
	return name
}

// LogTail returns about the last n bytes of the server's log.
func (s *Server) LogTail(n int) string { return s.logTail(n) }

func (s *Server) logTail(n int) string {
	data, err := os.ReadFile(s.LogFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(data) > n {
		data = data[len(data)-n:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return string(data)
}

// Main is a TestMain for a package whose tests run against one real MinIO:
// it starts the server, calls started with it (nil is never passed), runs
// the tests and stops the server, printing the tail of its log when a test
// failed. Without a MinIO binary, and MinIO not Required, the tests run
// with no server (their MinIO cases skip), saying so once. pkg names the
// package in those messages. It returns the exit code for os.Exit.
func Main(m *testing.M, pkg string, started func(*Server)) int {
	srv, err := StartServer()
	switch {
	case Skippable(err):
		fmt.Fprintln(os.Stderr, pkg+":", SkipMessage)
		return m.Run()
	case err != nil:
		fmt.Fprintln(os.Stderr, pkg, "tests need MinIO:", err)
		return 1
	}
	defer srv.Close()
	started(srv)
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- last lines of the MinIO log %s:\n%s\n", srv.LogFile, srv.LogTail(4000))
	}
	return code
}
