#!/usr/bin/env bash
# Drops the per-test databases (named t_...) that earlier test runs left in the local stack. Run before tests,
# never during them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
set -a; source "$ROOT/.data/tidemark.env"; set +a
pg_admin="${TIDEMARK_POSTGRES_URL%/*}/postgres"
for db in $(psql -q -tA "$pg_admin" -c "SELECT datname FROM pg_database WHERE datname LIKE 't\_%'"); do
  psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null
done
ch="${TIDEMARK_CLICKHOUSE_URL%/*}/"
for db in $(curl -fsS "$ch" --data-binary "SELECT name FROM system.databases WHERE name LIKE 't\\_%'"); do
  curl -fsS "$ch" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null
done
