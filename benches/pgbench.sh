#!/usr/bin/env bash
# The raw SQL ceiling: pgbench claiming 50 due contacts per round trip on
# dialerd's own schema (benches/sql/claim50.sql), against a backlog seeded by
# the load harness. Prints contacts per second (pgbench's tps x 50). BATCH
# (50) claims that many per round trip instead. SQL names another script of
# benches/sql to run the same way: SQL=floor (the fewest writes of any engine
# that claims before the call and records after it) or SQL=write_path
# (dialerd's own statements, cut down); each round trip of those claims and
# completes BATCH contacts.
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres bash benches/pgbench.sh
# CONTACTS (1500000: 600,000 ran out inside 20 s at 34,000/s), CLIENTS (4),
# DURATION (20 s) tune it.
set -euo pipefail
cd "$(dirname "$0")/.."
url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
contacts=${CONTACTS:-1500000}
batch=${BATCH:-50}
sql=${SQL:-claim50}
[ -f "benches/sql/$sql.sql" ] || { echo "no script benches/sql/$sql.sql" >&2; exit 1; }
clients=${CLIENTS:-4}
seconds=${DURATION:-20}
seeded=$(cargo bench -q --bench load -- seed --contacts "$contacts" --url "$url" | tail -n1)
org=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["organization_id"])' "$seeded")
bench_url="${url%/*}/dialerd_bench"
out=$(pgbench -n -f "benches/sql/$sql.sql" -D "org='$org'" -D "batch=$batch" -c "$clients" -j 2 -T "$seconds" "$bench_url")
echo "$out" | grep -E "number of transactions actually processed|tps"
tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
left=$(psql -Atq "$bench_url" -c "SELECT count(*) FROM contacts WHERE status = 'pending'")
[ "$left" -gt 0 ] || { echo "the backlog ran out: raise CONTACTS" >&2; exit 1; }
python3 -c "import json,sys; print(json.dumps({'run': 'pgbench', 'script': sys.argv[5], 'contacts_per_second': float(sys.argv[1]) * int(sys.argv[4]), 'batch': int(sys.argv[4]), 'clients': int(sys.argv[2]), 'seconds': int(sys.argv[3])}))" "$tps" "$clients" "$seconds" "$batch" "$sql"
