package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/portico-dev/portico/internal/gateway/config"
)

// ErrNoConfigFile is returned by Reload when the gateway was not started from
// a file.
var ErrNoConfigFile = errors.New("gateway has no configuration file to reload")

// reloadDebounce is how long the watcher waits after the last file event
// before reloading, so an editor's write-rename-chmod sequence is one reload.
const reloadDebounce = 250 * time.Millisecond

// Reload reads the configuration file again and applies it. If the file is
// invalid, the serving snapshot is kept and the error lists every problem.
func (s *Server) Reload() (int64, error) {
	if s.configPath == "" {
		return 0, ErrNoConfigFile
	}
	// The file is read under the reload lock so that of two overlapping
	// reloads the one that read the file last is applied last.
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cfg, err := config.Load(s.configPath)
	if err != nil {
		s.lastErr = err
		s.metrics.Reloaded(false, s.version)
		s.logger.Error("configuration rejected; the previous one keeps serving", "file", s.configPath, "err", err)
		return 0, err
	}
	return s.apply(cfg)
}

// Apply compiles cfg into a new snapshot and swaps it in. Parts of cfg that
// need a restart (listeners, admin, shutdown, logging, access log, trusted
// proxies, request id header) are compared with the running ones and a
// warning is logged if they differ; everything else takes effect at once.
func (s *Server) Apply(cfg *config.Config) (int64, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.apply(cfg)
}

// apply is Apply with reloadMu held.
func (s *Server) apply(cfg *config.Config) (int64, error) {
	prev := s.snap.Load()
	snap, err := s.build(cfg, prev, s.version+1)
	if err != nil {
		s.lastErr = err
		s.metrics.Reloaded(false, s.version)
		s.logger.Error("configuration rejected; the previous one keeps serving", "file", cfg.File, "err", err)
		return 0, err
	}
	s.version++
	s.lastErr = nil
	s.snap.Store(snap)
	if s.ready.Load() {
		startPools(snap)
		startSources(snap)
	}
	s.metrics.Reloaded(true, s.version)
	s.retire(prev, snap)
	if fields := staticChanges(s.static, cfg); len(fields) > 0 {
		s.logger.Warn("configuration changes that take effect only after a restart", "fields", fields)
	}
	s.logger.Info("configuration applied", "version", s.version, "routes", len(snap.routes), "services", len(snap.services))
	return s.version, nil
}

// retire releases what the new snapshot no longer uses: replaced pools are
// closed (their health checks stop) and idle connections of replaced
// transports are closed (requests in flight on them finish), and metric
// series of removed routes are dropped.
func (s *Server) retire(prev, next *snapshot) {
	for name, svc := range prev.services {
		if cur, ok := next.services[name]; ok && cur == svc {
			continue
		}
		retireService(svc, next, name)
	}
	kept := make(map[*routeMetrics]bool, len(next.routes))
	names := make(map[string]bool, len(next.routes))
	for i := range next.routes {
		kept[next.routes[i].metrics] = true
		names[next.routes[i].name] = true
	}
	for i := range prev.routes {
		// A route that left, or whose service changed, has new series.
		if r := &prev.routes[i]; !kept[r.metrics] {
			s.metrics.forgetRoute(r.name, r.service, !names[r.name])
		}
	}
}

func staticChanges(running, next *config.Config) []string {
	var out []string
	check := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, name)
		}
	}
	check("listeners", running.Listeners, next.Listeners)
	check("admin", running.Admin, next.Admin)
	check("shutdown", running.Shutdown, next.Shutdown)
	check("logging", running.Logging, next.Logging)
	check("access_log", running.AccessLog, next.AccessLog)
	check("trusted_proxies", running.TrustedProxies, next.TrustedProxies)
	check("request_id", running.RequestID, next.RequestID)
	check("rate_limits", running.RateLimits, next.RateLimits)
	check("registry", running.Registry, next.Registry)
	return out
}

// watch reloads the configuration when its file changes. It watches the
// file's directory rather than the file, so editors that replace the file
// and Kubernetes ConfigMap symlink swaps are seen, and it reloads only when
// the content really changed.
func (s *Server) watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch configuration: %w", err)
	}
	defer w.Close()
	dir := filepath.Dir(s.configPath)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	last, _ := fileHash(s.configPath)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
				continue
			}
			timer.Reset(reloadDebounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.logger.Warn("configuration watch error", "err", err)
		case <-timer.C:
			h, err := fileHash(s.configPath)
			if err != nil || h == last {
				continue
			}
			last = h
			s.logger.Info("configuration file changed; reloading", "file", s.configPath)
			_, _ = s.Reload()
		}
	}
}

func fileHash(path string) ([32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, err
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}

// openOutput opens a log destination: "stdout", "stderr" or a file path
// (appended to). The returned closer is nil for the standard streams.
func openOutput(name string) (io.Writer, io.Closer, error) {
	switch name {
	case "", "stdout":
		return os.Stdout, nil, nil
	case "stderr":
		return os.Stderr, nil, nil
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, err
	}
	return f, f, nil
}
