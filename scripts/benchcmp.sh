#!/usr/bin/env bash
# scripts/benchcmp.sh OLD NEW compares the hot path's Go micro-benchmarks at
# two commits: each is checked out into a temporary git worktree, its
# benchmarks run with
#
#   go test -run '^$' -bench . -benchmem -count 6 ./internal/gateway/... ./telemetry/...
#
# and benchstat prints the comparison (a change with p < 0.05 shows its
# delta; "~" means no significant difference).
#
#   scripts/benchcmp.sh main HEAD
#   scripts/benchcmp.sh HEAD~1 HEAD
#   BENCH='GatewayProxy|Lookup' COUNT=10 scripts/benchcmp.sh v0.1.0 HEAD
#
# Environment: BENCH (the -bench pattern, default "."), COUNT (default 6),
# PKGS (default "./internal/gateway/... ./telemetry/..."), CPU (go test -cpu
# list, default unset). benchstat is used from PATH, or else run with
# `go run golang.org/x/perf/cmd/benchstat@latest`. Run on an idle machine:
# both commits are measured one after the other, not interleaved.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 OLD NEW   (two git commits, branches or tags)" >&2
  exit 2
fi

repo=$(git rev-parse --show-toplevel)
bench=${BENCH:-.}
count=${COUNT:-6}
read -r -a pkgs <<<"${PKGS:-./internal/gateway/... ./telemetry/...}"
cpu_flag=()
[ -n "${CPU:-}" ] && cpu_flag=(-cpu "$CPU")

work=$(mktemp -d "${TMPDIR:-/tmp}/portico-benchcmp.XXXXXX")
cleanup() {
  local rc=$?
  for side in old new; do
    if [ -d "$work/$side" ]; then git -C "$repo" worktree remove --force "$work/$side" 2>/dev/null || true; fi
  done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run_side() {
  local side=$1 ref=$2 commit
  commit=$(git -C "$repo" rev-parse --verify --quiet "$ref^{commit}") || {
    echo "benchcmp: $ref is not a commit" >&2
    exit 2
  }
  echo "benchcmp: $side = $ref (${commit:0:12})" >&2
  git -C "$repo" worktree add --detach -q "$work/$side" "$commit"
  (cd "$work/$side" && go test -run '^$' -bench "$bench" -benchmem -count "$count" "${cpu_flag[@]}" "${pkgs[@]}") \
    >"$work/$side.txt"
}

run_side old "$1"
run_side new "$2"

cd "$work"
if command -v benchstat >/dev/null; then
  benchstat old="$work/old.txt" new="$work/new.txt"
else
  GOFLAGS= go run golang.org/x/perf/cmd/benchstat@latest old="$work/old.txt" new="$work/new.txt"
fi
