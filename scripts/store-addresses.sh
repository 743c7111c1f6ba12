# Sourced by the scripts that talk to the local stack's stores directly: reads .data/tidemark.env and sets
# pg_admin (PostgreSQL's maintenance database URL), ch (ClickHouse's HTTP root) and redis_port.
set -a; source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.data/tidemark.env"; set +a
pg_admin="${TIDEMARK_POSTGRES_URL%/*}/postgres"
ch="${TIDEMARK_CLICKHOUSE_URL%/*}/"
redis_port="$(printf '%s' "$TIDEMARK_REDIS_URL" | sed -E 's#.*:([0-9]+)/.*#\1#')"
