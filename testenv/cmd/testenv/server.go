package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// server is one child process, started and stopped with the same arguments.
type server struct {
	name  string
	bin   string
	args  []string
	log   string // stdout and stderr, appended across restarts
	ready func() error
	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd has exited
}

// start runs the server and waits until ready succeeds, or fails if it exits first.
func (s *server) start(timeout time.Duration) error {
	log, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = childAttr()
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)

	exited := func() error {
		select {
		case <-s.done:
			return fmt.Errorf("%s exited (%s); the end of %s:\n%s", s.name, s.cmd.ProcessState, s.log, tail(s.log, 20))
		default:
			return nil
		}
	}
	return waitFor(func() error {
		if err := exited(); err != nil {
			return &permanent{err}
		}
		return s.ready()
	}, timeout, s.name)
}

// stop sends SIGTERM, then SIGKILL after ten seconds, and waits for the exit.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// permanent marks an error waitFor must not retry.
type permanent struct{ error }
