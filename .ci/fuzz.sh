#!/usr/bin/env bash
# The API under a property-based fuzzer: schemathesis, driven by dialerd's
# own /openapi.json, against the real binary on a fresh database. Fails on
# any 5xx or any answer the document does not describe.
#   bash .ci/fuzz.sh [SECONDS]     (default 120; needs target/debug/dialerd)
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${1:-120}"
shift || true
venv="target/ci-venv"
version="4.32.5"
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
  echo "--- installing schemathesis $version from PyPI into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi
bin="target/debug/dialerd"
[ -x "$bin" ] || cargo build --quiet
admin="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="dialerd_fuzz_$$"
url="${admin%/*}/$db"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export DATABASE_URL="$url" DIALERD_HTTP__LISTEN="127.0.0.1:$port" DIALERD_METRICS__ENABLED=false RUST_LOG=error
log=$(mktemp)
events=$(mktemp)
cleanup() {
  [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
org=$("$bin" org create "fuzz" --concurrency-limit 10)
token=$("$bin" token create --org "$org" --scopes campaigns:manage,concurrency:manage)
other=$("$bin" org create "fuzz other")
"$bin" token create --org "$other" --scopes campaigns:manage >/dev/null
"$bin" serve 2>"$log" &
daemon=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
echo "--- schemathesis against dialerd on 127.0.0.1:$port for ${budget}s"
started=$(date +%s)
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-time "$budget" --workers 2 --seed 42 --warnings off --no-color --generation-database none \
  --report ndjson --report-ndjson-path "$events" "$@" 2>&1 | tail -n 40
status=${PIPESTATUS[0]}
echo "--- fuzzing took $(( $(date +%s) - started ))s; requests per operation:"
curl -sf "http://127.0.0.1:$port/openapi.json" > "$events.doc"
python3 - "$events" "$events.doc" <<'PY'
import collections, json, re, sys, urllib.parse
doc = json.load(open(sys.argv[2]))
ops = [(m.upper(), t, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", t) + "$"))
       for t, methods in doc["paths"].items() for m in methods]
counts = collections.Counter()
for line in open(sys.argv[1]):
    event = json.loads(line).get("ScenarioFinished")
    for i in (event or {}).get("recorder", {}).get("interactions", {}).values():
        method, path = i["request"]["method"], urllib.parse.urlsplit(i["request"]["uri"]).path
        name = next((f"{m} {t}" for m, t, rx in ops if m == method and rx.match(path)), "other")
        counts[name] += 1
for name, n in sorted(counts.items()):
    print(f"{n:7d}  {name}")
print(f"{sum(counts.values()):7d}  in all")
PY
if grep -q "panicked" "$log"; then echo "the daemon panicked:"; cat "$log"; exit 1; fi
exit "$status"
