package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ckptdev/ckpt/internal/miniotest"
)

// cmdTimeout bounds every ckpt process: one still running after it is hung.
const cmdTimeout = 90 * time.Second

// buildCkpt compiles cmd/ckpt from the module root into dir.
func buildCkpt(dir string) (string, error) {
	root, err := miniotest.ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(dir, "ckpt")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/ckpt")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/ckpt: %w\n%s", err, out)
	}
	return bin, nil
}

// proc is one ckpt process, possibly doomed to a SIGKILL.
type proc struct {
	args    []string
	cmd     *exec.Cmd
	stdout  bytes.Buffer
	stderr  bytes.Buffer
	started time.Time
	done    chan struct{} // closed once the process has exited and been reaped
	timer   *time.Timer   // the pending SIGKILL, if any

	// Set once done is closed.
	exit    int // exit code; -1 if killed by a signal
	killed  bool
	elapsed time.Duration
	waitErr error
}

// startProc starts bin with args and env. With killAfter > 0 the process
// gets SIGKILL that long after it started, unless it has exited by then.
func startProc(bin string, env, args []string, killAfter time.Duration) (*proc, error) {
	p := &proc{args: args, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ckpt %s: %w", strings.Join(args, " "), err)
	}
	if killAfter > 0 {
		// os.Process is safe for a Signal racing Wait: once the process is
		// reaped, Signal returns os.ErrProcessDone and signals nothing.
		p.timer = time.AfterFunc(killAfter, func() { _ = p.cmd.Process.Signal(syscall.SIGKILL) })
	}
	go func() { // owned by p; ends when the process does
		err := p.cmd.Wait()
		p.elapsed = time.Since(p.started)
		if p.timer != nil {
			p.timer.Stop()
		}
		st := p.cmd.ProcessState
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.killed = ws.Signal() == syscall.SIGKILL
			p.exit = -1
		} else {
			p.exit = st.ExitCode()
		}
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			p.waitErr = err
		}
		close(p.done)
	}()
	return p, nil
}

// wait waits for the process until deadline; a process still running then
// is killed, reaped and reported as hung.
func (p *proc) wait(deadline time.Time) error {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-p.done:
		if p.waitErr != nil {
			return fmt.Errorf("ckpt %s: %w", strings.Join(p.args, " "), p.waitErr)
		}
		return nil
	case <-t.C:
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("ckpt %s hung: still running after %s\nstdout:\n%s\nstderr:\n%s",
			strings.Join(p.args, " "), cmdTimeout, p.stdout.String(), p.stderr.String())
	}
}

// outcome is a one-word summary for the round log.
func (p *proc) outcome() string {
	switch {
	case p.killed:
		return fmt.Sprintf("KILLED@%s", p.elapsed.Round(time.Millisecond))
	case p.exit == 0:
		return fmt.Sprintf("ok(%s)", p.elapsed.Round(time.Millisecond))
	}
	return fmt.Sprintf("exit%d(%s): %s", p.exit, p.elapsed.Round(time.Millisecond), firstLine(p.stderr.String()))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// runOnce runs one ckpt process to completion (no kill) under cmdTimeout.
func runOnce(bin string, env, args []string) (*proc, error) {
	p, err := startProc(bin, env, args, 0)
	if err != nil {
		return nil, err
	}
	if err := p.wait(time.Now().Add(cmdTimeout)); err != nil {
		return p, err
	}
	return p, nil
}
