#!/usr/bin/env bash
# Proves scripts/clean-test-dbs.sh drops test leftovers (t_...) and nothing else: it creates a leftover and a
# look-alike of the databases `just up` fills (`tidemark...`) in every store, cleans, and checks which survived.
# Part of `just test`, before the test run (cleaning drops every t_ database, so never during one).
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/store-addresses.sh"
keep="tidemark_clean_check"
drop="t_clean_check"
fail() { echo "check-clean-test-dbs: $*" >&2; exit 1; }

for db in "$keep" "$drop"; do
  psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS \"$db\"" -c "CREATE DATABASE \"$db\"" >/dev/null
  curl -fsS "$ch" --data-binary "CREATE DATABASE IF NOT EXISTS $db" >/dev/null
  redis-cli -p "$redis_port" SET "$db:key" 1 >/dev/null
done
"$ROOT/scripts/clean-test-dbs.sh"

pg_has() { [ "$(psql -q -tA "$pg_admin" -c "SELECT count(*) FROM pg_database WHERE datname = '$1'")" = 1 ]; }
ch_has() { [ "$(curl -fsS "$ch" --data-binary "SELECT count() FROM system.databases WHERE name = '$1'")" = 1 ]; }
redis_has() { [ "$(redis-cli -p "$redis_port" EXISTS "$1:key")" = 1 ]; }
for store in pg ch redis; do
  "${store}_has" "$keep" || fail "$store lost $keep: the cleaner drops more than test databases"
  if "${store}_has" "$drop"; then fail "$store kept $drop: the cleaner misses test databases"; fi
done

psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS \"$keep\"" >/dev/null
curl -fsS "$ch" --data-binary "DROP DATABASE IF EXISTS $keep" >/dev/null
redis-cli -p "$redis_port" DEL "$keep:key" >/dev/null
echo "clean-test-dbs: drops t_ leftovers only (PostgreSQL, ClickHouse, Redis)"
