#!/usr/bin/env bash
# Fetches two public user-agent corpora with npm into .data/ua-corpora/, once, for the bot detector's recall and
# false-positive measurement (hub/tests/ua_corpus.rs, `public_corpora_recall_and_false_positives`):
#   crawlers.txt  every `instances` string of the crawler-user-agents package (MIT): crawlers, monitors, previewers
#   browsers.txt  the distinct user agents of the user-agents package (BSD-2-Clause): real browsers, as sampled
#                 from a site's visitors
# The rules in hub/src/bots.rs and hub/data/bot_patterns.txt are never tuned on these files: they are the held-out
# measure. Versions are pinned so a figure in docs/API.md can be reproduced; bump them together with the figures.
# Nothing is fetched when both files exist; delete .data/ua-corpora/ to fetch again. Exits non-zero when npm or the
# registry is unavailable, so the caller sees that the measurement could not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/.data/ua-corpora"
CRAWLERS_PACKAGE="crawler-user-agents@1.60.0"
BROWSERS_PACKAGE="user-agents@2.1.198"

[ -s "$OUT/crawlers.txt" ] && [ -s "$OUT/browsers.txt" ] && exit 0
command -v npm >/dev/null || { echo "fetch-ua-corpora: npm is not installed" >&2; exit 1; }
mkdir -p "$OUT"
# Unpacked beside the destination, so a finished file moves in by rename and a half-written one never counts.
tmp="$(mktemp -d "$OUT/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

for package in "$CRAWLERS_PACKAGE" "$BROWSERS_PACKAGE"; do
  mkdir -p "$tmp/${package%@*}"
  (cd "$tmp/${package%@*}" && timeout 300 npm pack --silent "$package" >/dev/null && tar -xzf ./*.tgz)
done

python3 - "$tmp" "$CRAWLERS_PACKAGE" "$BROWSERS_PACKAGE" <<'EOF'
import json, sys
tmp, crawlers_package, browsers_package = sys.argv[1:4]

def write(path, header, lines):
    # One user agent a line: drop the few with a line break or tab inside, which no request header can carry.
    seen = sorted({l for l in lines if l and "\n" not in l and "\r" not in l and "\t" not in l})
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"# {header}\n")
        f.writelines(l + "\n" for l in seen)
    return len(seen)

crawlers = json.load(open(f"{tmp}/crawler-user-agents/package/crawler-user-agents.json", encoding="utf-8"))
n = write(f"{tmp}/crawlers.txt", f"{crawlers_package}: the instances of crawler-user-agents.json (MIT)",
          (i for entry in crawlers for i in entry.get("instances", [])))
print(f"fetch-ua-corpora: {n} crawler user agents from {crawlers_package}")
browsers = json.load(open(f"{tmp}/user-agents/package/dist/user-agents.json", encoding="utf-8"))
n = write(f"{tmp}/browsers.txt", f"{browsers_package}: the distinct userAgent values of user-agents.json (BSD-2-Clause)",
          (b["userAgent"] for b in browsers))
print(f"fetch-ua-corpora: {n} browser user agents from {browsers_package}")
EOF
mv "$tmp/crawlers.txt" "$tmp/browsers.txt" "$OUT/"
