# Tidemark: `just up` runs everything locally, `just test` proves it. `just --list` shows every recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Show the recipes.
default:
    @just --list

# Install what is missing, start the stores, migrate, create a demo project, run hub + workers + app (Ctrl-C stops).
up:
    scripts/up.sh

# Stop the stores started from this checkout (Redis, PostgreSQL, ClickHouse).
down:
    scripts/stack.sh down

# Start only the stores (installing what is missing) and write .data/tidemark.env.
services:
    scripts/stack.sh up

# Apply PostgreSQL and ClickHouse migrations to the local stack.
migrate: services
    set -a && source .data/tidemark.env && set +a && cargo run -q -p tidemark-app --bin app -- migrate

# Every test against the real stores, the compatibility proof on current ClickHouse, and the compose check.
test: services
    scripts/check-clean-test-dbs.sh
    cargo test --workspace --all-targets
    if [ -n "$(ls .data/geo/*.mmdb 2>/dev/null)" ] && scripts/fetch-ua-corpora.sh; then cargo test -p tidemark-hub --test geo --test ua_corpus -- --ignored --skip timing; else echo "SKIPPED: the real-geo and public user-agent corpus tests (they need .data/geo from just up, and npm for scripts/fetch-ua-corpora.sh)"; fi
    just test-compat
    python3 scripts/check_compose.py docker-compose.yml

# Run every ClickHouse migration and every query the services issue on ClickHouse 26.x through chdb.
test-compat:
    scripts/stack.sh install
    mkdir -p .data
    cargo run -q -p tidemark-app --bin app -- sql-catalog > .data/sql-catalog.jsonl
    python3 scripts/ch_compat.py .data/sql-catalog.jsonl

# Formatting and clippy, warnings as errors.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks: `just bench hub`, `just bench pipeline`, `just bench app` (options after the name, e.g. `--seconds 30`); prints numbers.
bench *args:
    scripts/bench.sh {{args}}

# Follow the logs of the services `just up` started.
logs:
    tail -n 50 -F .data/logs/*.log
