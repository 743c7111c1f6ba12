#!/usr/bin/env bash
# `just bench [hub|pipeline]`: builds in release mode, starts the stores, runs the benchmark and prints its numbers.
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
  all) target/release/bench-hub && target/release/pipeline ;;
  *) echo "usage: just bench [hub|pipeline] [options]" >&2; exit 2 ;;
esac
