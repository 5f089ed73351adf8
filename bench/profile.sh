#!/usr/bin/env bash
# bench/profile.sh profiles Portico under scenario 1 of the peer benchmark
# (plain proxy, 64 connections, pinned layout): the gateway runs in-process
# in bench/cmd/profile with net/http/pprof on 127.0.0.1:29150, wrk drives it
# from core 0, and a CPU profile and an allocation profile of the same
# 20 seconds are written to bench/results/ with their top entries printed.
#
#   bench/profile.sh                  the work tree's gateway
#   PORTICO_REF=HEAD bench/profile.sh the gateway as committed at a git ref
#   PROFILE_SCENARIO=s3 bench/profile.sh
#                                     scenario 3: JWT auth, rate limit, access
#                                     log (bench/configs/portico-policies.yaml)
#
# bench/run.sh must have been run once (it installs wrk).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
base=${PORTICO_BENCH_BASE_PORT:-29100}
seconds=${PROFILE_SECONDS:-20}
host=127.0.0.1
work=$(mktemp -d "${TMPDIR:-/tmp}/portico-profile.XXXXXX")
pids=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -d "$work/src" ]; then git worktree remove --force "$work/src" 2>/dev/null || true; fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in wrk curl taskset; do
  command -v "$tool" >/dev/null || { echo "profile: $tool is missing (bench/run.sh installs wrk; apt-get install curl)" >&2; exit 1; }
done

src=$repo
label=$(git rev-parse --short HEAD)
if [ -n "${PORTICO_REF:-}" ]; then
  label=$(git rev-parse --short "$PORTICO_REF^{commit}")
  git worktree add --detach -q "$work/src" "$label"
  mkdir -p "$work/src/bench/cmd/profile"
  cp bench/cmd/profile/main.go "$work/src/bench/cmd/profile/"
  src=$work/src
fi
(cd "$src" && go build -o "$work/portico-profile" ./bench/cmd/profile)
go build -o "$work/bench-backend" ./bench/cmd/backend

export PORTICO_BENCH_LISTEN=$host:$((base + 10)) PORTICO_BENCH_ADMIN=$host:$((base + 11))
export PORTICO_BENCH_BACKEND=$host:$((base + 1)) PORTICO_BENCH_ACCESS_LOG=/dev/null
config=bench/configs/portico-plain.yaml
auth=()
case "${PROFILE_SCENARIO:-s1}" in
  s1) ;;
  s3)
    config=bench/configs/portico-policies.yaml
    PORTICO_BENCH_JWT_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
    export PORTICO_BENCH_JWT_SECRET PORTICO_BENCH_JWT_ISSUER=https://issuer.portico-bench.invalid PORTICO_BENCH_JWT_AUDIENCE=portico-bench
    # The access log goes to a file, as in the harness.
    export PORTICO_BENCH_ACCESS_LOG=$work/access.log
    auth=(-H "Authorization: Bearer $("$work/portico-profile" -token)")
    ;;
  *) echo "profile: PROFILE_SCENARIO is s1 or s3" >&2; exit 1 ;;
esac
GOMAXPROCS=1 taskset -c 1 "$work/bench-backend" -addr "$PORTICO_BENCH_BACKEND" & pids+=($!)
GOMAXPROCS=1 taskset -c 1 "$work/portico-profile" -config "$config" -pprof "$host:$((base + 50))" & pids+=($!)
for _ in $(seq 100); do
  curl -fsS -o /dev/null "${auth[@]}" "http://$PORTICO_BENCH_LISTEN/" 2>/dev/null && break
  sleep 0.1
done

out=$repo/bench/results
mkdir -p "$out"
stamp=$(date -u +%Y%m%d-%H%M%S)
taskset -c 0 wrk -t1 -c64 -d$((seconds + 8))s "${auth[@]}" "http://$PORTICO_BENCH_LISTEN/" >"$work/wrk.txt" &
wrk_pid=$!; pids+=("$wrk_pid")
sleep 3
curl -fsS -o "$out/profile-cpu-$label-$stamp.pb.gz" "http://$host:$((base + 50))/debug/pprof/profile?seconds=$seconds" &
cpu_pid=$!
curl -fsS -o "$out/profile-allocs-$label-$stamp.pb.gz" "http://$host:$((base + 50))/debug/pprof/allocs?seconds=$seconds"
wait "$cpu_pid"
wait "$wrk_pid"
cat "$work/wrk.txt"
echo "== CPU ($seconds s under scenario 1), top 25 by cumulative time"
go tool pprof -top -cum -nodecount=25 "$work/portico-profile" "$out/profile-cpu-$label-$stamp.pb.gz" 2>/dev/null
echo "== CPU, top 25 by own time"
go tool pprof -top -nodecount=25 "$work/portico-profile" "$out/profile-cpu-$label-$stamp.pb.gz" 2>/dev/null
echo "== allocations (bytes), top 20"
go tool pprof -top -sample_index=alloc_space -nodecount=20 "$work/portico-profile" "$out/profile-allocs-$label-$stamp.pb.gz" 2>/dev/null
echo "== allocations (count), top 20"
go tool pprof -top -sample_index=alloc_objects -nodecount=20 "$work/portico-profile" "$out/profile-allocs-$label-$stamp.pb.gz" 2>/dev/null
echo "profiles: $out/profile-{cpu,allocs}-$label-$stamp.pb.gz"
