#!/usr/bin/env bash
# bench/run.sh measures Portico beside nginx, HAProxy and Caddy on this
# machine: it installs what is missing from Debian's packages, builds Portico,
# the benchmark backend and the harness, then runs the harness, which starts
# every process, measures the scenarios round-robin and stops what it started.
#
#   bench/run.sh              pinned layout, 5 rounds (the default)
#   bench/run.sh --quick      1 round of short runs, to check the set-up
#   bench/run.sh --unpinned   let the kernel schedule every process
#   bench/run.sh --help       every flag of the harness
#   PORTICO_REF=HEAD bench/run.sh
#                             measure Portico as committed at a git ref (built
#                             in a temporary worktree) instead of the work tree
#
# Results are printed as a table and written as JSON under bench/results/.
# Only loopback addresses are used; every wrk run is bounded by -d.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

log() { printf 'bench: %s\n' "$*" >&2; }

# install_missing installs the Debian packages whose commands are missing.
# apt-get update runs only when something has to be installed.
install_missing() {
  local -a pkgs=()
  command -v wrk >/dev/null || pkgs+=(wrk)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || pkgs+=(nginx)
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || pkgs+=(haproxy)
  command -v caddy >/dev/null || pkgs+=(caddy)
  command -v taskset >/dev/null || pkgs+=(util-linux)
  [ ${#pkgs[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  log "installing ${pkgs[*]}"
  "${sudo[@]}" apt-get update -qq
  # The packages' own services must not start on standard ports: policy-rc.d
  # tells invoke-rc.d not to start anything while they install.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    created=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 || {
    [ $created -eq 1 ] && "${sudo[@]}" rm -f "$policy"
    return 1
  }
  [ $created -eq 1 ] && "${sudo[@]}" rm -f "$policy"
  return 0
}

PATH=$PATH:/usr/sbin:/sbin
install_missing

work=$(mktemp -d "${TMPDIR:-/tmp}/portico-bench.XXXXXX")
harness_pid=""

# cleanup stops the harness and, by the PIDs it recorded, anything it
# started that is still running (for example after the harness was killed).
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$harness_pid" ] && kill -0 "$harness_pid" 2>/dev/null; then
    kill -TERM "$harness_pid" 2>/dev/null || true
    wait "$harness_pid" 2>/dev/null || true
  fi
  if [ -d "$work/src" ]; then
    git -C "$repo" worktree remove --force "$work/src" 2>/dev/null || true
  fi
  if [ -f "$work/pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
    done <"$work/pids"
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${PORTICO_REF:-}" ]; then
  commit=$(git -C "$repo" rev-parse --short "$PORTICO_REF^{commit}")
  log "building portico at $PORTICO_REF ($commit) in a temporary worktree"
  git -C "$repo" worktree add --detach -q "$work/src" "$commit"
  (cd "$work/src" && go build -o "$work/bin/portico" ./cmd/portico)
  git -C "$repo" worktree remove --force "$work/src"
else
  commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$repo" diff --quiet HEAD 2>/dev/null || commit="$commit-dirty"
  log "building portico from the work tree ($commit)"
  go build -o "$work/bin/portico" ./cmd/portico
fi
log "building the backend and the harness"
go build -o "$work/bin/bench-backend" ./bench/cmd/backend
go build -o "$work/bin/peerbench" ./bench/cmd/peerbench

mkdir -p "$repo/bench/results"
"$work/bin/peerbench" \
  -work "$work" \
  -portico "$work/bin/portico" \
  -backend "$work/bin/bench-backend" \
  -bench-dir "$repo/bench" \
  -results "$repo/bench/results" \
  -commit "$commit" \
  "$@" &
harness_pid=$!
wait "$harness_pid"
