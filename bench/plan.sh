#!/usr/bin/env bash
# Benchmark (on demand, not in CI): a no-change `dbfleet plan` on the lab against the floor
# of `ssh HOST true` to every host in parallel (fresh connections, as a fresh plan makes),
# and the SSH processes a plan starts per host (counted by an ssh shim on PATH).
#   N=15 bench/plan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10}
inv=inventories/lab.yml
cargo build --release --quiet
bin=$PWD/target/release/dbfleet
docker ps --format '{{.Names}}' | grep -q '^lab-db1$' || bash lab/lab.sh up
"$bin" -i "$inv" apply --auto-approve --quiet >/dev/null
"$bin" -i "$inv" plan --detailed-exitcode >/dev/null || { echo "the lab is not converged" >&2; exit 1; }
hosts=$(grep -E '^\s+address:' "$inv" | awk '{print $2}')

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1e6}'; }

plan_ns=()
for _ in $(seq "$N"); do
  t0=$(now); "$bin" -i "$inv" plan --quiet >/dev/null; t1=$(now)
  plan_ns+=($((t1 - t0)))
done
floor_ns=()
for _ in $(seq "$N"); do
  t0=$(now)
  for h in $hosts; do ssh -F .lab/ssh_config -o ControlMaster=no -o ControlPath=none "$h" true & done
  wait
  t1=$(now)
  floor_ns+=($((t1 - t0)))
done

# Count the ssh processes of one plan, per host.
shim=$(mktemp -d); log=$shim/log
cat > "$shim/ssh" <<SHIM
#!/bin/sh
printf '%s\n' "\$*" >> $log
exec /usr/bin/ssh "\$@"
SHIM
chmod +x "$shim/ssh"
PATH=$shim:$PATH "$bin" -i "$inv" plan --quiet >/dev/null

plan_ms=$(printf '%s\n' "${plan_ns[@]}" | median)
floor_ms=$(printf '%s\n' "${floor_ns[@]}" | median)
echo "no-change plan, 5 hosts:          median ${plan_ms} ms over $N runs"
echo "floor, ssh HOST true x5 parallel: median ${floor_ms} ms over $N runs"
awk -v p="$plan_ms" -v f="$floor_ms" 'BEGIN { printf "ratio plan/floor:                 %.2f (target <= 2)\n", p/f }'
echo "ssh processes per plan, per host (handshakes = -M masters; round trips = 'sh -s' commands):"
for h in $hosts; do
  ctl=$(grep -- " -M " "$log" | grep -- " $h\$" | sed -E 's/.*-S ([^ ]+)\/master.*/\1/' | head -1)
  masters=$(grep -- " -M " "$log" | grep -c -- " $h\$" || true)
  cmds=$(grep -F -- "-S $ctl/master" "$log" | grep -c -- "sh -s" || true)
  ops=$(grep -F -- "-S $ctl/master" "$log" | grep -c -- " -O " || true)
  echo "  $h: handshakes $masters, round trips $cmds, control ops $ops"
done
rm -rf "$shim"
