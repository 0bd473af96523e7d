#!/usr/bin/env bash
# dialerd against graphile_worker's own perf_test bench (a 200,000 job
# drain), alternating A B A B on the same PostgreSQL, PAIRS times (3).
# graphile_worker is fetched from the crates.io registry at run time into
# target/peer (its code is not part of this repository) and built with the
# machine's toolchain.
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres bash benches/peer.sh
# LOAD_ARGS adds arguments to dialerd's throughput run (say
# "--contacts 1200000" on a machine where 3,000,000 take long to seed);
# not DIALERD_*, which the daemon's settings would read as a key.
# For each pair it prints dialerd's contacts/s, the peer's jobs/s, and the ratio.
# A=floor (or A=write_path, or any script of benches/sql) puts
# benches/pgbench.sh with that SQL script in dialerd's turn: bare SQL, no
# engine (BATCH 2000 and CONTACTS 2500000 unless set; BENCHMARKS.md, tenth
# round).
set -euo pipefail
cd "$(dirname "$0")/.."
url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
pairs=${PAIRS:-3}
turn=${A:-dialerd}
[ "$turn" = dialerd ] || [ -f "benches/sql/$turn.sql" ] ||
  { echo "A is dialerd or a script of benches/sql (floor, write_path), not $turn" >&2; exit 1; }
version=${PEER_VERSION:-0.14.1}
work="$PWD/target/peer"

if [ ! -d "$work/graphile_worker-$version" ]; then
  mkdir -p "$work/fetch/src"
  cat > "$work/fetch/Cargo.toml" <<TOML
[package]
name = "fetch-peer"
version = "0.0.0"
edition = "2021"
[dependencies]
graphile_worker = "=$version"
TOML
  echo "fn main() {}" > "$work/fetch/src/main.rs"
  (cd "$work/fetch" && cargo fetch -q)
  src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "graphile_worker-$version" | head -n1)
  cp -r "$src" "$work/graphile_worker-$version"
  # The crate pins a toolchain this machine cannot fetch; use the installed one.
  rm -f "$work/graphile_worker-$version/rust-toolchain.toml"
fi
peer="$work/graphile_worker-$version"
(cd "$peer" && cargo bench -q --bench perf_test --no-run)
cargo bench -q --bench load --no-run

peer_run() {
  # The bench's first 200,000-job drain (criterion's warm-up iteration) is
  # one complete, timed drain; stop the bench there rather than sit through
  # its samples, so nothing of it runs during dialerd's turn.
  local log
  log=$(mktemp)
  (cd "$peer" && DATABASE_URL="$url" exec cargo bench -q --bench perf_test) >"$log" 2>&1 &
  local pid=$!
  until grep -q 'jobs/sec' "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "perf_test ended without a figure:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.5
  done
  # SIGKILL: the bench catches SIGTERM to shut its worker down gracefully
  # and would go on with its next sample.
  pkill -KILL -f 'deps/perf_test-' || true
  wait "$pid" || true
  grep -m1 -o '([0-9]* jobs/sec)' "$log" | tr -dc '0-9'
  rm -f "$log"
  # Drop the bench database the stopped bench left behind.
  psql -Atq "$url" -c "SELECT datname FROM pg_database WHERE datname LIKE '__bench_graphile_worker_%'" |
    while read -r db; do psql -q "$url" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"; done
}

# Dialerd's turn: its throughput run, or the SQL script A names; either
# prints JSON last, whose contacts_per_second is the turn's figure.
a_run() {
  if [ "$turn" = dialerd ]; then
    # shellcheck disable=SC2086 # LOAD_ARGS is a list of arguments
    cargo bench -q --bench load -- throughput --url "$url" ${LOAD_ARGS:-}
  else
    SQL=$turn BATCH=${BATCH:-2000} CONTACTS=${CONTACTS:-2500000} DATABASE_URL="$url" bash benches/pgbench.sh
  fi | tail -n1 | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["contacts_per_second"]))'
}

for i in $(seq 1 "$pairs"); do
  a=$(a_run)
  b=$(peer_run)
  python3 -c "import sys; a, b = float(sys.argv[3]), float(sys.argv[4]); print(f'pair {sys.argv[1]}: {sys.argv[2]} {a:.0f} contacts/s, graphile_worker {b:.0f} jobs/s, ratio {a / b:.2f}')" "$i" "$turn" "$a" "$b"
done
