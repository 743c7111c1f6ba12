#!/usr/bin/env python3
"""Proves Tidemark's ClickHouse SQL on the current engine (chdb, ClickHouse 26.x, in process).

Runs every migration in migrations/clickhouse/ exactly as the Rust runner splits it, then again (re-runs must be
harmless), then every query of the catalog printed by `app sql-catalog` (JSON lines on the file given, or stdin).
Any error fails the run. Tests prove the same SQL on the 18.16 server; together they prove the common subset.
"""
import json
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATABASE = "tidemark_compat"


def split_statements(sql):
    """Same rule as shared/src/ch_migrations.rs: a statement ends at a line ending in ';'."""
    statements, current = [], []

    def push():
        code = [l for l in current if l.strip() and not l.strip().startswith("--")]
        if code:
            statements.append("\n".join(current).strip().rstrip(";").rstrip())

    for line in sql.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            push()
            current = []
    push()
    return statements


def column_already_added(statement, error):
    """Same rule as shared/src/ch_migrations.rs: 18.16 has no ADD COLUMN IF NOT EXISTS, so an ADD COLUMN that finds
    its column already there (a re-run) has done its work."""
    code = " ".join(l.strip() for l in statement.splitlines() if not l.strip().startswith("--")).upper()
    return (code.startswith("ALTER TABLE") and " ADD COLUMN " in code
            and "column with this name already exists" in error)


def main():
    try:
        from chdb import session
    except ImportError:
        sys.exit("chdb is not installed: run `scripts/stack.sh install` (pip install chdb)")
    catalog_src = open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin
    catalog = [json.loads(line) for line in catalog_src if line.strip()]

    with tempfile.TemporaryDirectory() as tmp:
        db = session.Session(tmp)
        version = str(db.query("SELECT version()")).strip().strip('"')
        db.query(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        db.query(f"USE {DATABASE}")
        failures = 0
        checked = 0

        def run(label, sql):
            nonlocal failures, checked
            checked += 1
            try:
                db.query(sql)
            except Exception as err:  # chdb raises its own error type; any error is a failure
                if column_already_added(sql, str(err)):
                    return
                failures += 1
                print(f"FAIL {label}: {str(err).strip().splitlines()[0]}\n---\n{sql}\n---", file=sys.stderr)

        migrations = sorted((ROOT / "migrations" / "clickhouse").glob("*.sql"))
        for attempt in ("first run", "re-run"):
            for path in migrations:
                for i, statement in enumerate(split_statements(path.read_text()), 1):
                    run(f"{path.name} statement {i} ({attempt})", statement)
        for query in catalog:
            run(f"query {query['name']}", query["sql"])

    print(f"ClickHouse {version} (chdb): {checked - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
