#!/usr/bin/env bash
# Automatic failover benchmark (on demand, not in CI; issue 14): N rounds on the lab with the
# failover monitor on both proxies (`monitor` role) and nobody typing during a round. Lossless
# semi-sync (semi_sync_timeout_ms: never), failover_anti_flap_seconds 0; the writer inserts
# sequence numbers through the proxies' virtual IP and records the server_id that
# acknowledged each; a reader does the same through the reader port.
#
# Faults (lab/fault.sh), a random one at a random moment of each round:
#   kill        docker kill of the primary                         → the monitor fails over
#   isolate     primary cut off from everyone                      → the monitor fails over
#   monitors    primary cut off from the monitor hosts only (the proxies: the application
#               loses it too; the replicas still reach it)          → must not fail over
#   asymmetric  primary cut off from this machine and its replicas; the proxies (and so the
#               monitors) still reach it                            → must not fail over
#   one-way     primary's packets to its replicas dropped           → must not fail over
#   pause       primary frozen 6 s (docker pause), then thawed      → must not fail over
#               (a stall shorter than monitor_hang_seconds, 7 s, is waited out)
#   hang        primary frozen 30 s (docker pause), then thawed     → the monitor fails over
#               (hung: port open, nobody answered, lossless semi-sync: issue 29); the
#               thawed old primary is fenced and rejoined, or rebuilt
#   proxy       the proxy holding the virtual IP killed             → the VIP moves; the other
#                                                                     monitor takes the lock
# Between rounds (not measured): the fault healed; after a failover, `dbfleet adopt`, the old
# primary rejoined (or reset and provisioned by apply when it holds transactions nobody else
# has), apply and an empty re-plan.
#
# Checks, per round: every acknowledged insert is on every server (lost); the acknowledging
# server changes at most once, from the old primary to the new one, and never back, and no
# reader answer came from a writable server (two-writer observations); how many monitors
# failed over (at most one; none for the must-not faults: "alive" counts a failover of a
# primary the proxies or replicas still reached). Prints per fault: rounds, acknowledged,
# lost, two-writer observations, wrong failovers, and the median time from the fault to the
# first write acknowledged by the new primary (detection included).
#
#   N=20 bench/autofailover.sh          (SEED=… picks the faults and moments reproducibly)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10}
RANDOM=${SEED:-$$}
KINDS=(kill isolate monitors asymmetric one-way pause hang proxy)
[ -z "${KINDS_ONLY:-}" ] || read -r -a KINDS <<< "$KINDS_ONLY"
cargo build --release --quiet
bin=$PWD/target/release/dbfleet
export LAB_NAME=lab LAB_SUITE=bookworm LAB_SERVER=mariadb LAB_SUBNET=172.29.77.0/24 LAB_DIR=$PWD/.lab
net=172.29.77 vip=172.29.77.30
docker ps --format '{{.Names}}' | grep -q '^lab-db1$' || bash lab/lab.sh up
work=$(mktemp -d)
stop_monitors() {
  for p in proxy1 proxy2; do
    docker exec lab-$p sh -c '[ -x /etc/init.d/dbfleet-monitor ] && /etc/init.d/dbfleet-monitor stop; rm -rf /etc/init.d/dbfleet-monitor /etc/dbfleet/monitor /usr/local/bin/dbfleet /var/lib/dbfleet/monitor.json' >/dev/null 2>&1 || true
  done
}
trap 'stop_monitors; rm -rf "$work"; docker exec lab-backup1 rm -f /root/writer.run /root/reader.run 2>/dev/null || true' EXIT
cp -a inventories/.dbfleet "$work/.dbfleet" 2>/dev/null || true
rm -f "$work/.dbfleet/failover.json"
python3 - "$work" "$LAB_DIR/ssh_config" <<'PY'
import sys
work, ssh = sys.argv[1:]
t = open("inventories/lab.yml").read().replace("config: ../.lab/ssh_config", "config: " + ssh)
open(work + "/base.yml", "w").write(t)
t = t.replace("    max_connections: 200\n",
              "    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: never\n    failover_anti_flap_seconds: 0\n", 1)
for a in ("31", "32"):
    t = t.replace("    address: 172.29.77.%s\n    roles: [proxy]" % a, "    address: 172.29.77.%s\n    roles: [proxy, monitor]" % a)
open(work + "/auto.yml", "w").write(t)
PY
inv=$work/auto.yml
dbf() { "$bin" -i "$inv" "$@"; }
apply_or_show() { "$bin" -i "$1" apply --auto-approve --quiet > "$work/apply.log" 2>&1 || { cat "$work/apply.log" >&2; exit 1; }; }
apply_or_show "$work/base.yml"
apply_or_show "$inv"

app_password=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["app_password"])' "$work/.dbfleet/secrets.json")
printf '[client]\nuser=app\npassword=%s\n' "$app_password" | docker exec -i lab-backup1 sh -c 'umask 077; cat > /root/app.cnf'
docker exec -i lab-backup1 sh -c 'cat > /root/writer.sh; chmod +x /root/writer.sh' < lab/writer.sh
docker exec -i lab-backup1 sh -c 'cat > /root/reader.sh; chmod +x /root/reader.sh' <<'READER'
#!/bin/sh
# Reads through the proxy's reader port ($1) while /root/reader.run exists: "EPOCH SERVER_ID READ_ONLY".
while [ -e /root/reader.run ]; do
  r=$(mariadb --defaults-extra-file=/root/app.cnf -h "$1" -P 3307 -N --connect-timeout=2 \
      -e 'SELECT @@server_id, @@read_only' 2>/dev/null) && echo "$(date +%s.%N) $r"
  sleep 0.2
done
READER

primary() { grep -B2 'roles: \[primary\]' "$inv" | head -1 | tr -d ' :'; }
replicas() { for h in db1 db2 db3; do [ "$h" = "$(primary)" ] || echo "$h"; done; }
sid() { echo "${1#db}"; }
sql() { docker exec "lab-$1" mariadb -N -B -e "$2"; }
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END{if (NR==0) print "-"; else print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
# Both read every proxy, a killed one too (it has no answer): never a failing pipeline.
failovers() { for p in proxy1 proxy2; do docker exec lab-$p sh -c 'grep -c "failed over:" /var/log/dbfleet-monitor.log 2>/dev/null || true' 2>/dev/null || true; done | awk '{s+=$1} END {print s+0}'; }
vip_holder() { for p in proxy1 proxy2; do if docker exec lab-$p ip -o -4 addr show dev eth0 2>/dev/null | grep -q " $vip/"; then echo "$p"; fi; done | head -1; }
base=$(( $(date +%s) * 1000 ))

wait_semi() {
  for _ in $(seq 1 240); do
    [ "$(sql "$(primary)" "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'")" = 2 ] && return
    sleep 0.5
  done
  echo "autofailover: the semi-sync replicas did not connect" >&2; exit 1
}
loads_start() {
  sql "$(primary)" 'CREATE TABLE IF NOT EXISTS app.seq (n BIGINT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))'
  base=$((base + 1000000))
  docker exec lab-backup1 sh -c 'touch /root/writer.run /root/reader.run; : > /root/writer.log; : > /root/reader.log'
  docker exec -d lab-backup1 sh -c "/root/writer.sh $base $vip > /root/writer.log 2>/dev/null"
  docker exec -d lab-backup1 sh -c "/root/reader.sh $vip > /root/reader.log 2>/dev/null"
  sleep 2
}
loads_stop() {
  docker exec lab-backup1 sh -c 'rm -f /root/writer.run /root/reader.run; sleep 2'
  docker exec lab-backup1 cat /root/writer.log > "$work/acked"
  docker exec lab-backup1 cat /root/reader.log > "$work/read"
}
lost_on() {
  local last; last=$(cut -d' ' -f2 "$work/acked" | sort -n | tail -1)
  for _ in $(seq 1 120); do
    [ -z "$last" ] || [ "$(sql "$1" "SELECT COUNT(*) FROM app.seq WHERE n = $last")" = 1 ] && break
    sleep 0.5
  done
  sql "$1" "SELECT n FROM app.seq WHERE n > $base" | sort -n > "$work/have"
  cut -d' ' -f2 "$work/acked" | sort -n | comm -23 - "$work/have" | wc -l
}
# After a failover by a monitor: the record adopted, the old primary back as a replica.
bring_back() {
  local old=$1
  docker start "lab-$old" >/dev/null 2>&1 || true
  bash lab/fault.sh heal "$old" 2>/dev/null || true
  for _ in $(seq 1 60); do docker exec "lab-$old" pidof sshd >/dev/null 2>&1 && break; sleep 0.5; done
  sleep 2
  dbf adopt >"$work/adopt.log" 2>&1 || { cat "$work/adopt.log" >&2; exit 1; }
  # The active monitor rejoins it by itself when its history allows (auto_rejoin);
  # otherwise it stays fenced and is rebuilt: a fresh host, provisioned and seeded by apply.
  for _ in $(seq 1 40); do
    [ "$(sql "$old" 'SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE "Slave_IO"' 2>/dev/null)" = 1 ] && { echo "rejoined by the monitor"; apply_or_show "$inv"; return; }
    sleep 0.5
  done
  if dbf rejoin "$old" --auto-approve >"$work/rejoin.log" 2>&1; then echo rejoined
  else bash lab/lab.sh reset "$old" >/dev/null 2>&1; echo rebuilt; fi
  apply_or_show "$inv"
}

declare -A rounds acked lost writers readers wrong firsts
for k in "${KINDS[@]}"; do rounds[$k]=0; acked[$k]=0; lost[$k]=0; writers[$k]=0; readers[$k]=0; wrong[$k]=0; firsts[$k]=""; done
printf '%-3s %-10s %-5s %6s %5s %8s %8s %6s %10s  %s\n' "#" fault old acked lost "2w:write" "2w:read" "acted" "first-ack" "outcome"
for i in $(seq "$N"); do
  kind=${KINDS[$((RANDOM % ${#KINDS[@]}))]}
  old=$(primary)
  wait_semi
  before=$(failovers)
  loads_start
  sleep "$((1 + RANDOM % 3)).$((RANDOM % 10))"
  t0=$(now)
  victim=""
  case "$kind" in
    kill) bash lab/fault.sh kill "$old" ;;
    isolate) bash lab/fault.sh partition "$old" operator $(replicas) proxy1 proxy2 backup1 ;;
    monitors) bash lab/fault.sh partition "$old" proxy1 proxy2 ;;
    asymmetric) bash lab/fault.sh partition "$old" operator $(replicas) ;;
    one-way) bash lab/fault.sh partition "$old" --out $(replicas) ;;
    pause|hang) bash lab/fault.sh pause "$old" ;;
    proxy) victim=$(vip_holder); bash lab/fault.sh kill "$victim" ;;
  esac
  # Nobody types: the round lasts 20 s (a paused primary thaws after 6), a hang 40 s
  # (it thaws after 30).
  case "$kind" in
    pause) sleep 6; bash lab/fault.sh unpause "$old"; sleep 14 ;;
    hang) sleep 30; bash lab/fault.sh unpause "$old"; sleep 10 ;;
    *) sleep 20 ;;
  esac
  loads_stop
  # A killed proxy's log is read once it runs again (its files outlive the kill).
  if [ -n "$victim" ]; then
    docker start "lab-$victim" >/dev/null
    for _ in $(seq 1 60); do docker exec "lab-$victim" pidof sshd >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  acted=$(( $(failovers) - before ))
  outcome="-"
  case "$kind" in
    kill|isolate|hang)
      if [ "$acted" -ge 1 ]; then outcome="failed over; $(bring_back "$old")"; else outcome="NO FAILOVER"; bash lab/fault.sh heal "$old" 2>/dev/null || true; docker start "lab-$old" >/dev/null 2>&1 || true; fi ;;
    proxy)
      outcome="VIP on $(vip_holder)"
      [ "$acted" -eq 0 ] || { wrong[$kind]=$((wrong[$kind] + acted)); outcome="FAILED OVER; $(bring_back "$old")"; } ;;
    *)
      bash lab/fault.sh heal "$old" 2>/dev/null || true
      if [ "$acted" -eq 0 ]; then outcome="no failover (alive)"
      else wrong[$kind]=$((wrong[$kind] + acted)); outcome="FAILED OVER an alive primary; $(bring_back "$old")"; fi ;;
  esac
  new=$(primary)
  [ "$acted" -le 1 ] || wrong[$kind]=$((wrong[$kind] + acted - 1))
  l=0; for h in db1 db2 db3; do l=$((l + $(lost_on "$h"))); done
  w=$(awk -v o="$(sid "$old")" -v n="$(sid "$new")" '
        { s=$3 } s!=o && s!=n { bad++ } o!=n && seen_new && s==o { bad++ } s==n { seen_new=1 } END { print bad+0 }' "$work/acked")
  r=$(awk '$3 != 1 { bad++ } END { print bad+0 }' "$work/read")
  first="-"
  if [ "$new" != "$old" ]; then
    first=$(awk -v t0="$t0" -v n="$(sid "$new")" '$1 > t0 && $3 == n { printf "%.0f", ($1 - t0) * 1000; exit }' "$work/acked")
    [ -n "$first" ] && firsts[$kind]+="$first "
  fi
  a=$(wc -l < "$work/acked")
  rounds[$kind]=$((rounds[$kind] + 1)); acked[$kind]=$((acked[$kind] + a)); lost[$kind]=$((lost[$kind] + l))
  writers[$kind]=$((writers[$kind] + w)); readers[$kind]=$((readers[$kind] + r))
  printf '%-3s %-10s %-5s %6s %5s %8s %8s %6s %10s  %s\n' "$i" "$kind" "$old" "$a" "$l" "$w" "$r" "$acted" "${first:--}" "$outcome"
  dbf apply --auto-approve --quiet >/dev/null
  dbf plan --detailed-exitcode >/dev/null || { echo "autofailover: the fleet does not converge after round $i" >&2; dbf plan >&2 || true; exit 1; }
done

echo
printf '%-10s %6s %8s %5s %12s %15s %19s\n' fault rounds acked lost "two writers" "wrong failovers" "first ack (median)"
for k in "${KINDS[@]}"; do
  [ "${rounds[$k]}" -gt 0 ] || continue
  m=$(echo "${firsts[$k]}" | tr ' ' '\n' | { grep . || true; } | median)
  printf '%-10s %6s %8s %5s %12s %15s %19s\n' "$k" "${rounds[$k]}" "${acked[$k]}" "${lost[$k]}" \
    "$((writers[$k] + readers[$k]))" "${wrong[$k]}" "$([ "$m" = - ] && echo - || echo "$m ms")"
done
