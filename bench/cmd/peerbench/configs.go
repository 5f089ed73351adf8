package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/portico-dev/portico/bench"
)

// ports are the loopback ports of one run, counted from a base port.
type ports struct {
	host                               string
	backend, portico, porticoAdmin     int
	policies, policiesAdmin            int
	nginx, nginxLogged, haproxy, caddy int
}

func newPorts(host string, base int) ports {
	return ports{host: host, backend: base + 1, portico: base + 10, porticoAdmin: base + 11,
		policies: base + 12, policiesAdmin: base + 13, nginx: base + 20, nginxLogged: base + 21,
		haproxy: base + 30, caddy: base + 40}
}

func (p ports) addr(port int) string { return p.host + ":" + strconv.Itoa(port) }

// templateData is what bench/configs/*.tmpl see.
type templateData struct {
	Dir, Host, Backend, Listen, ListenLogged string
}

// render executes bench/configs/NAME.tmpl into DIR/out.
func render(benchDir, name, dir, out string, data templateData) (string, error) {
	t, err := template.ParseFiles(filepath.Join(benchDir, "configs", name+".tmpl"))
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	path := filepath.Join(dir, out)
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}

// jwtSetup is the token of the policies scenario and the environment the
// Portico configuration reads its key from.
type jwtSetup struct {
	token string
	env   []string
}

func newJWT(dir string) (jwtSetup, error) {
	// The secret is text (64 hex digits), so the configuration can carry
	// it in an environment variable and the gateway uses the same bytes.
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return jwtSetup{}, err
	}
	secret := []byte(hex.EncodeToString(raw))
	const issuer, audience = "https://issuer.portico-bench.invalid", "portico-bench"
	tok, err := bench.BenchToken(secret, issuer, audience, time.Now(), 24*time.Hour)
	if err != nil {
		return jwtSetup{}, err
	}
	secretFile := filepath.Join(dir, "jwt-secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		return jwtSetup{}, err
	}
	return jwtSetup{token: tok, env: []string{
		"PORTICO_BENCH_JWT_SECRET=" + string(secret),
		"PORTICO_BENCH_JWT_SECRET_FILE=" + secretFile,
		"PORTICO_BENCH_JWT_ISSUER=" + issuer,
		"PORTICO_BENCH_JWT_AUDIENCE=" + audience,
	}}, nil
}

// porticoEnv is the environment of one Portico instance.
func porticoEnv(p ports, listen, admin int, accessLog string, extra []string) []string {
	env := []string{
		"GOMAXPROCS=1",
		"PORTICO_BENCH_LISTEN=" + p.addr(listen),
		"PORTICO_BENCH_ADMIN=" + p.addr(admin),
		"PORTICO_BENCH_BACKEND=" + p.addr(p.backend),
		"PORTICO_BENCH_ACCESS_LOG=" + accessLog,
	}
	return append(env, extra...)
}

// validate runs `portico validate` on config with env and returns its
// complaint when the gateway does not accept the file.
func validate(ctx context.Context, portico, config string, env []string) (ok bool, reason string, err error) {
	cmd := exec.CommandContext(ctx, portico, "validate", "--config", config)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return true, "", nil
	}
	if _, exit := err.(*exec.ExitError); !exit {
		return false, "", err
	}
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "error:") && len(lines) < 3 {
			lines = append(lines, strings.TrimSpace(strings.TrimPrefix(l, "error:")))
		}
	}
	if len(lines) == 0 {
		lines = append(lines, strings.TrimSpace(string(out)))
	}
	return false, strings.Join(lines, "; "), nil
}
