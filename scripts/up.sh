#!/usr/bin/env bash
# `just up`: everything Tidemark needs, in the foreground. Ctrl-C stops the services it started and the stores
# it started (stores that were already running are left running).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA="$ROOT/.data"
LOGS="$DATA/logs"
mkdir -p "$LOGS"

was_running="$(scripts/stack.sh status 2>/dev/null | grep -c ' up ' || true)"
scripts/stack.sh up
set -a; source "$DATA/tidemark.env"; set +a

echo "[up] building (release)..." >&2
cargo build --release -q -p tidemark-hub -p tidemark-worker -p tidemark-app
BIN="$ROOT/target/release"

"$BIN/app" migrate
demo="$("$BIN/app" project demo)"
# Prints how to create the first admin while none exists, nothing after.
first_run="$("$BIN/app" user first-run)"
token="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$demo")"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo >&2
  echo "[up] stopping hub, workers and app..." >&2
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  if [ "$was_running" = 0 ]; then scripts/stack.sh down; fi
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

start() {
  local name="$1"; shift
  "$@" >>"$LOGS/$name.log" 2>&1 &
  pids+=("$!")
}
start hub "$BIN/hub"
start worker-events "$BIN/worker-events"
start worker-sessions "$BIN/worker-sessions"
start worker-devices "$BIN/worker-devices"
start worker-users "$BIN/worker-users"
start app "$BIN/app" serve

wait_ready() {
  local url="$1" name="$2"
  for _ in $(seq 1 100); do curl -fsS "$url" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "[up] $name did not become ready; see $LOGS/$name.log" >&2
  exit 1
}
wait_ready "$TIDEMARK_HUB_URL/readyz" hub
wait_ready "$TIDEMARK_APP_URL/healthz" app

# The hub drops curl's own user agent as a bot (202, not stored): the example sends a browser's.
EXAMPLE_UA='Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'
cat <<EOF2

Tidemark is up.
  hub        $TIDEMARK_HUB_URL   (ingest API, /readyz; Prometheus /metrics on http://$TIDEMARK_HUB_METRICS_LISTEN)
  app        $TIDEMARK_APP_URL
  settings   $DATA/tidemark.env
  logs       $LOGS/   (just logs)
  demo       $demo

Send a pageview (with a browser's User-Agent: curl's own is filtered out as a bot, answered 202 and not stored):
  curl -i -X POST $TIDEMARK_HUB_URL/v1/event -H 'Authorization: Bearer $token' -H 'Content-Type: application/json' -A '$EXAMPLE_UA' -d '{"type":"pageview","url":"http://localhost/hello","referrer":"https://news.ycombinator.com/"}'

See it in ClickHouse (about a second later):
  curl -s '${TIDEMARK_CLICKHOUSE_URL%/*}/?database=$TIDEMARK_CLICKHOUSE_DATABASE' --data-binary 'SELECT ts, type, host, path, referrer_host FROM events ORDER BY ts DESC LIMIT 5 FORMAT PrettyCompact'

Ctrl-C stops everything started here.
EOF2
if [ -n "$first_run" ]; then printf '\n%s\n' "$first_run"; fi

# Stay in the foreground until Ctrl-C or a service dies.
wait -n "${pids[@]}" || true
echo "[up] a service exited; see $LOGS/" >&2
