package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// process is one long-lived process the harness started.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
	log  *os.File
}

// Pid is the process's id; taskset execs its command, so it is the id of
// the proxy itself.
func (p *process) Pid() int { return p.cmd.Process.Pid }

// processes starts long-lived processes, records each PID in a file that
// bench/run.sh reads if the harness itself dies, and stops them all by PID.
type processes struct {
	dir     string
	pidFile string
	mu      sync.Mutex
	list    []*process
}

// start runs argv (through taskset when cores is not empty) with env added
// to the harness's environment; its output goes to DIR/NAME.log.
func (ps *processes) start(name, cores string, env []string, argv ...string) (*process, error) {
	if cores != "" {
		argv = append([]string{"taskset", "-c", cores}, argv...)
	}
	logf, err := os.Create(filepath.Join(ps.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = ps.dir
	// A process group of its own, so a Ctrl-C in the terminal reaches the
	// harness only and the harness stops each process in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), log: logf}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	err = ps.writePIDs()
	ps.mu.Unlock()
	return p, err
}

func (ps *processes) writePIDs() error {
	var b []byte
	for _, p := range ps.list {
		b = strconv.AppendInt(b, int64(p.Pid()), 10)
		b = append(b, '\n')
	}
	return os.WriteFile(ps.pidFile, b, 0o644)
}

// stopAll sends SIGTERM to every process, in reverse start order, waits up
// to five seconds for each and then kills it.
func (ps *processes) stopAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i := len(ps.list) - 1; i >= 0; i-- {
		p := ps.list[i]
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		p.log.Close()
	}
	ps.list = nil
	_ = os.Remove(ps.pidFile)
}

// waitHTTP waits until url answers with any HTTP status, or the process
// exits, or timeout passes.
func waitHTTP(ctx context.Context, p *process, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			client.CloseIdleConnections()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v; its output:\n%s", p.name, p.err, tail(p.log.Name()))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer on %s in %s; its output:\n%s", p.name, url, timeout, tail(p.log.Name()))
		}
	}
}

// tail is the last 2 KiB of a process's log, for error messages (the work
// directory is removed when the run ends).
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return string(b)
}
