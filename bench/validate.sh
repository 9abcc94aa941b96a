#!/usr/bin/env bash
# Validation and offline rendering cost by fleet size (on demand, not in CI; issue 11).
# Generates inventories of 100 → 10,000 database hosts (clusters of one primary and two
# replicas, and a proxy for every 16th cluster), then times `validate` and `plan --offline --out-dir` with
# the release build, median of N runs each. Prints the curve and the cost per host, so a
# quadratic step shows as a growing per-host figure.
#
#   N=3 bench/validate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3}
SIZES=${SIZES:-"100 300 1000 3000 10000"}
cargo build --release --quiet
bin=$PWD/target/release/dbfleet
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
gen() {
  python3 - "$1" > "$work/inv$1.yml" <<'PY'
import sys
n = int(sys.argv[1])
print('fleet:\n  name: big\n  flavor: mariadb\n  version: "10.11"')
print('secrets:\n  monitor_password: { generate: 32 }\n  replication_password: { generate: 32 }\n  backup_password: { generate: 32 }')
print('hosts:')
for i in range(n):
    a = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    role = "primary" if i % 3 == 0 else "replica"
    print(f"  db{i}:\n    address: {a}\n    roles: [{role}]\n    server_id: {i + 1}\n    cluster: c{i // 3}")
for c in range(0, n // 3, 16):
    print(f"  lb{c}:\n    address: 10.255.{(c >> 8) & 255}.{c & 255}\n    roles: [proxy]\n    cluster: c{c}")
PY
}
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
timeit() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f\n", d / 1e9 }'; }
printf '%8s %14s %14s %18s %18s\n' hosts "validate (s)" "µs per host" "plan --offline (s)" "µs per host"
for n in $SIZES; do
  gen "$n"
  "$bin" -i "$work/inv$n.yml" validate >/dev/null
  v=$(for _ in $(seq "$N"); do timeit "$bin" -i "$work/inv$n.yml" validate; done | median)
  o=$(for _ in $(seq "$N"); do rm -rf "$work/out"; timeit "$bin" -i "$work/inv$n.yml" plan --offline --out-dir "$work/out"; done | median)
  awk -v n="$n" -v v="$v" -v o="$o" 'BEGIN { printf "%8d %14.3f %14.0f %18.3f %18.0f\n", n, v, v * 1e6 / n, o, o * 1e6 / n }'
done
