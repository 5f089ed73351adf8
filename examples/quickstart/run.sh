#!/usr/bin/env bash
# Runs the quick start: builds portico, starts two echo backends and the
# gateway in front of them. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/../.."

mkdir -p bin
go build -o bin/portico ./cmd/portico

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

bin/portico echo --listen 127.0.0.1:9001 --name echo-1 & pids+=($!)
bin/portico echo --listen 127.0.0.1:9002 --name echo-2 & pids+=($!)

cat <<'MSG'

Portico is starting on http://127.0.0.1:8080 (admin on http://127.0.0.1:9901).
In another terminal try:

  curl -i 'http://127.0.0.1:8080/echo/hello?name=portico'
  curl -i http://127.0.0.1:8080/users/42
  curl -s http://127.0.0.1:9901/admin/routes
  curl -s http://127.0.0.1:9901/metrics | grep portico_requests_total

Each request prints one JSON access-log line below. Ctrl-C stops everything.

MSG
bin/portico gateway --config examples/quickstart/portico.yaml &
pids+=($!)
wait "${pids[2]}"
