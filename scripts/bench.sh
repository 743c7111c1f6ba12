#!/usr/bin/env bash
# `just bench [hub|pipeline|app]`: builds in release mode, starts the stores, runs the benchmark and prints its numbers.
# Benchmarks are measurements, not tests: they never fail on a slow figure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
what="${1:-all}"
shift || true

scripts/stack.sh up
# Leftovers of test runs and earlier benchmarks (t_ databases and keys): a Redis holding a gigabyte of old streams
# spends the run forking and rewriting them into its append-only file, and that is what the bench would measure.
scripts/clean-test-dbs.sh
if ! command -v wrk >/dev/null; then
  echo "[bench] apt-get install wrk" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  else sudo apt-get install -y -qq wrk >/dev/null; fi
fi
cargo build --release -q -p tidemark-hub -p tidemark-worker -p tidemark-bench

case "$what" in
  hub) target/release/bench-hub "$@" ;;
  pipeline) target/release/pipeline "$@" ;;
  app)
    # The history is generated once and kept (bench_app_10m, about 1.5 GB): generating it takes minutes, measuring
    # it again does not need a new one. BENCH_APP_REGENERATE=1 writes it again; BENCH_APP_EVENTS and
    # BENCH_APP_DATABASE size and name another one (e.g. 100000000 and bench_app_100m).
    db="${BENCH_APP_DATABASE:-bench_app_10m}"
    if [ "${BENCH_APP_REGENERATE:-0}" = 1 ] || ! target/release/bench-app exists --database "$db"; then
      target/release/bench-app generate --database "$db" --events "${BENCH_APP_EVENTS:-10000000}"
    fi
    target/release/bench-app measure --database "$db" "$@" ;;
  all) target/release/bench-hub && target/release/pipeline ;;
  *) echo "usage: just bench [hub|pipeline|app] [options]" >&2; exit 2 ;;
esac
