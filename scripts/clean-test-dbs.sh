#!/usr/bin/env bash
# Drops the per-test databases and Redis keys (named t_...) that earlier test runs left in the local stack.
# Run before tests, never during them.
#
# Names are matched by their first two characters, not with LIKE: ClickHouse 18.16 reads the escape in
# LIKE 't\_%' as a plain `_` (any character), which also matched `tidemark`, the database `just up` fills. Every
# name is checked again here before it is dropped, whatever the store answered.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/store-addresses.sh"

is_test_name() { [[ "$1" == t_* ]]; }

for db in $(psql -q -tA "$pg_admin" -c "SELECT datname FROM pg_database WHERE left(datname, 2) = 't_'"); do
  is_test_name "$db" || continue
  psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null
done
for db in $(curl -fsS "$ch" --data-binary "SELECT name FROM system.databases WHERE substring(name, 1, 2) = 't_'"); do
  is_test_name "$db" || continue
  curl -fsS "$ch" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null
done
redis-cli -p "$redis_port" --scan --pattern 't_*' | xargs -r -n 500 redis-cli -p "$redis_port" DEL >/dev/null
