#!/usr/bin/env bash
# Nemesis benchmark (on demand, not in CI; issue 10): N rounds on the lab, each a random
# fault at a random moment under write load, then what an on-call operator does with
# dbfleet, then the checker. Lossless semi-sync (semi_sync_timeout_ms: never); the writer
# inserts sequence numbers through the proxy's writer port and records the server_id that
# acknowledged each; a reader connects through the reader port and records each answer's
# server_id and read_only.
#
# Faults (lab/fault.sh):
#   kill        docker kill of the primary                      → failover, rejoin or rebuild
#   partition   primary cut off from this machine and its replicas, the proxies still
#               reach it (asymmetric)                            → failover, heal, rejoin or rebuild
#   isolate     primary cut off from everyone                   → failover, heal, rejoin or rebuild
#   one-way     primary's packets to its replicas dropped (they still reach it)
#                                                                → failover, heal, rejoin or rebuild
#   pause       primary frozen (docker pause), `failover` typed during the freeze, thawed
#               after it → hung under lossless semi-sync: failed over (issue 29); the
#               thawed old primary is fenced and rejoined or rebuilt
#   stress      proxy's CPUs saturated 20 s (stress-ng, 8 workers) → nothing to do
#
# Checks, per round: every acknowledged insert is on the primary and every replica (lost);
# the acknowledging server changes at most once, from the old primary to the new one, and
# never back (two-writer observations, writer port); no reader answer came from a writable
# server (two-writer observations, reader port); the fleet converges again (re-plan empty).
# Prints per fault kind: rounds, acknowledged writes, lost, two-writer observations, and
# the median time from `failover` starting to the first write acknowledged by the new primary.
#
#   N=20 bench/nemesis.sh          (SEED=… picks the faults and moments reproducibly)
#   SERVER=mysql N=6 bench/nemesis.sh   the same on Debian sid's MySQL (labmy-*, 172.29.79.0/24;
#                                       SERVER=mariadb-11.8: Debian 13's lab13-*, 172.29.78.0/24)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-6}
RANDOM=${SEED:-$$}
KINDS=(kill partition isolate one-way pause stress)
cargo build --release --quiet
bin=$PWD/target/release/dbfleet
SERVER=${SERVER:-mariadb-10.11}
# The lab (lab/lab.sh and lab/fault.sh read these), its address prefix and its server.
case "$SERVER" in
  mariadb-10.11) export LAB_NAME=lab LAB_SUITE=bookworm LAB_SERVER=mariadb; net=172.29.77; version=10.11 ;;
  mariadb-11.8) export LAB_NAME=lab13 LAB_SUITE=trixie LAB_SERVER=mariadb; net=172.29.78; version=11.8 ;;
  mysql) export LAB_NAME=labmy LAB_SUITE=sid LAB_SERVER=mysql; net=172.29.79; version=9.7 ;;
  *) echo "SERVER is mariadb-10.11, mariadb-11.8 or mysql" >&2; exit 2 ;;
esac
export LAB_SUBNET=$net.0/24 LAB_DIR=$PWD/.$LAB_NAME
lab=$LAB_NAME
if [ "$LAB_SERVER" = mysql ]; then
  client=mysql; semi_clients="SELECT VARIABLE_VALUE FROM performance_schema.global_status WHERE VARIABLE_NAME = 'Rpl_semi_sync_source_clients'"
else
  client=mariadb; semi_clients="SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'"
fi
docker ps --format '{{.Names}}' | grep -q "^$lab-db1\$" || bash lab/lab.sh up
work=$(mktemp -d)
trap 'rm -rf "$work"; docker exec $lab-backup1 rm -f /root/writer.run /root/reader.run 2>/dev/null || true' EXIT
[ "$lab" != lab ] || cp -a inventories/.dbfleet "$work/.dbfleet" 2>/dev/null || true
rm -f "$work/.dbfleet/failover.json"
python3 - "$work" "$LAB_DIR/ssh_config" "$net" "$version" "$LAB_SERVER" <<'PY'
import sys
work, ssh, net, version, server = sys.argv[1:]
t = open("inventories/lab.yml").read()
t = (t.replace("config: ../.lab/ssh_config", "config: " + ssh)
      .replace("172.29.77.", net + ".")
      .replace('version: "10.11"', 'version: "%s"' % version))
if server == "mysql":
    # flavor mysql, and no physical backup job (validate refuses it: no tool for MySQL in Debian).
    t = t.replace("flavor: mariadb", "flavor: mysql")
    a, b = t.index("    app-physical:"), t.index("    binlogs:")
    t = t[:a] + t[b:]
# base.yml converges bare hosts (a first apply under semi-sync without fallback would wait
# forever for a replica that is not seeded yet); nemesis.yml adds lossless semi-sync.
open(work + "/base.yml", "w").write(t)
open(work + "/nemesis.yml", "w").write(t.replace(
    "    max_connections: 200\n",
    "    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: never\n", 1))
PY
inv=$work/nemesis.yml
dbf() { "$bin" -i "$inv" "$@"; }
# An apply that fails shows its output (the failing tasks are listed there).
apply_or_show() { "$bin" -i "$1" apply --auto-approve --quiet > "$work/apply.log" 2>&1 || { cat "$work/apply.log" >&2; exit 1; }; }
apply_or_show "$work/base.yml"
apply_or_show "$inv"

app_password=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["app_password"])' "$work/.dbfleet/secrets.json")
printf '[client]\nuser=app\npassword=%s\n' "$app_password" | docker exec -i $lab-backup1 sh -c 'umask 077; cat > /root/app.cnf'
docker exec -i $lab-backup1 sh -c 'cat > /root/writer.sh; chmod +x /root/writer.sh' < lab/writer.sh
docker exec -i $lab-backup1 sh -c 'cat > /root/reader.sh; chmod +x /root/reader.sh' <<'READER'
#!/bin/sh
# Reads through the proxy's reader port ($1) while /root/reader.run exists: "EPOCH SERVER_ID READ_ONLY".
client=$(command -v mariadb || command -v mysql)
while [ -e /root/reader.run ]; do
  r=$("$client" --defaults-extra-file=/root/app.cnf -h "$1" -P 3307 -N --connect-timeout=2 \
      -e 'SELECT @@server_id, @@read_only' 2>/dev/null) && echo "$(date +%s.%N) $r"
  sleep 0.2
done
READER

primary() { grep -B2 'roles: \[primary\]' "$inv" | head -1 | tr -d ' :'; }
replicas() { for h in db1 db2 db3; do [ "$h" = "$(primary)" ] || echo "$h"; done; }
sid() { echo "${1#db}"; }
sql() { docker exec "$lab-$1" $client -N -B -e "$2"; }
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END{if (NR==0) print "-"; else print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
base=$(( $(date +%s) * 1000 ))

wait_semi() { # the primary has two semi-sync replicas connected
  for _ in $(seq 1 240); do
    [ "$(sql "$(primary)" "$semi_clients")" = 2 ] && return
    sleep 0.5
  done
  echo "nemesis: the semi-sync replicas did not connect" >&2; exit 1
}
loads_start() {
  sql "$(primary)" 'CREATE TABLE IF NOT EXISTS app.seq (n BIGINT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))'
  base=$((base + 1000000))
  docker exec $lab-backup1 sh -c 'touch /root/writer.run /root/reader.run; : > /root/writer.log; : > /root/reader.log'
  docker exec -d $lab-backup1 sh -c "/root/writer.sh $base $net.31 > /root/writer.log 2>/dev/null"
  docker exec -d $lab-backup1 sh -c "/root/reader.sh $net.31 > /root/reader.log 2>/dev/null"
  sleep 2
}
loads_stop() {
  docker exec $lab-backup1 sh -c 'rm -f /root/writer.run /root/reader.run; sleep 2'
  docker exec $lab-backup1 cat /root/writer.log > "$work/acked"
  docker exec $lab-backup1 cat /root/reader.log > "$work/read"
}
lost_on() { # acknowledged numbers missing on host $1, once it has the last one
  local last; last=$(cut -d' ' -f2 "$work/acked" | sort -n | tail -1)
  for _ in $(seq 1 120); do
    [ -z "$last" ] || [ "$(sql "$1" "SELECT COUNT(*) FROM app.seq WHERE n = $last")" = 1 ] && break
    sleep 0.5
  done
  sql "$1" "SELECT n FROM app.seq WHERE n > $base" | sort -n > "$work/have"
  cut -d' ' -f2 "$work/acked" | sort -n | comm -23 - "$work/have" | wc -l
}
# The old primary back in the fleet: rejoin, or (when it holds transactions nobody else has,
# which rejoin names) a fresh host provisioned and seeded by apply.
bring_back() {
  local old=$1
  docker start "$lab-$old" >/dev/null 2>&1 || true
  bash lab/fault.sh heal "$old" 2>/dev/null || true
  sleep 2
  if dbf rejoin "$old" --auto-approve >"$work/rejoin.log" 2>&1; then echo rejoined
  else bash lab/lab.sh reset "$old" >/dev/null 2>&1; echo rebuilt; fi
  dbf apply --auto-approve --quiet >/dev/null
}

declare -A rounds acked lost writers readers firsts
for k in "${KINDS[@]}"; do rounds[$k]=0; acked[$k]=0; lost[$k]=0; writers[$k]=0; readers[$k]=0; firsts[$k]=""; done
printf '%-3s %-10s %-5s %6s %5s %8s %8s %10s  %s\n' "#" fault old acked lost "2w:write" "2w:read" "first-ack" "operator"
for i in $(seq "$N"); do
  kind=${KINDS[$((RANDOM % ${#KINDS[@]}))]}
  old=$(primary)
  wait_semi
  loads_start
  sleep "$((1 + RANDOM % 3)).$((RANDOM % 10))"
  t0=""; what="-"
  case "$kind" in
    kill) bash lab/fault.sh kill "$old" ;;
    partition) bash lab/fault.sh partition "$old" operator $(replicas) ;;
    isolate) bash lab/fault.sh partition "$old" operator $(replicas) proxy1 proxy2 backup1 ;;
    one-way) bash lab/fault.sh partition "$old" --out $(replicas) ;;
    pause) bash lab/fault.sh pause "$old" ;;
    stress) bash lab/fault.sh stress proxy1 20 8 ;;
  esac
  sleep "$((1 + RANDOM % 3)).$((RANDOM % 10))"
  case "$kind" in
    stress) sleep 18; what="none" ;;
    pause)
      t0=$(now)
      if dbf failover --force --auto-approve >"$work/failover.log" 2>&1; then
        bash lab/fault.sh unpause "$old"; sleep 3
        what="failover of a hung primary; $(bring_back "$old" | tail -1)"
      else
        what="failover refused: $(grep -m1 -oE 'hung[^;]*|answers [a-z0-9]+|no replica[^;]*' "$work/failover.log" | cut -c1-60 || true)"
        bash lab/fault.sh unpause "$old"
      fi ;;
    *)
      t0=$(now)
      if dbf failover --force --auto-approve >"$work/failover.log" 2>&1; then
        sleep 3
        what="failover; $(bring_back "$old" | tail -1)"
      else
        what="failover refused: $(grep -m1 -oE 'is alive[^;]*|answers from [a-z0-9]+|no replica[^;]*' "$work/failover.log" | cut -c1-60 || true)"
        bash lab/fault.sh heal "$old" 2>/dev/null || true
      fi ;;
  esac
  loads_stop
  new=$(primary)
  l=0; for h in db1 db2 db3; do l=$((l + $(lost_on "$h"))); done
  # Writer port: the acknowledging server_id changes at most once, from old to new.
  w=$(awk -v o="$(sid "$old")" -v n="$(sid "$new")" '
        { s=$3 } s!=o && s!=n { bad++ } o!=n && seen_new && s==o { bad++ } s==n { seen_new=1 } END { print bad+0 }' "$work/acked")
  r=$(awk '$3 != 1 { bad++ } END { print bad+0 }' "$work/read")
  first="-"
  if [ -n "$t0" ] && [ "$new" != "$old" ]; then
    first=$(awk -v t0="$t0" -v n="$(sid "$new")" '$1 > t0 && $3 == n { printf "%.0f", ($1 - t0) * 1000; exit }' "$work/acked")
    [ -n "$first" ] && firsts[$kind]+="$first "
  fi
  a=$(wc -l < "$work/acked")
  rounds[$kind]=$((rounds[$kind] + 1)); acked[$kind]=$((acked[$kind] + a)); lost[$kind]=$((lost[$kind] + l))
  writers[$kind]=$((writers[$kind] + w)); readers[$kind]=$((readers[$kind] + r))
  printf '%-3s %-10s %-5s %6s %5s %8s %8s %10s  %s\n' "$i" "$kind" "$old" "$a" "$l" "$w" "$r" "${first:--}" "$what"
  # Every round ends on a converged fleet.
  dbf apply --auto-approve --quiet >/dev/null
  dbf plan --detailed-exitcode >/dev/null || { echo "nemesis: the fleet does not converge after round $i" >&2; exit 1; }
done

echo
printf '%-10s %6s %8s %5s %14s %19s\n' fault rounds acked lost "two writers" "first ack (median)"
for k in "${KINDS[@]}"; do
  [ "${rounds[$k]}" -gt 0 ] || continue
  m=$(echo "${firsts[$k]}" | tr ' ' '\n' | { grep . || true; } | median)
  printf '%-10s %6s %8s %5s %14s %19s\n' "$k" "${rounds[$k]}" "${acked[$k]}" "${lost[$k]}" \
    "$((writers[$k] + readers[$k]))" "$([ "$m" = - ] && echo - || echo "$m ms")"
done
