#!/usr/bin/env bash
# HA drill (on demand, not in CI): N planned switchovers and N unplanned failovers on the
# lab, each under a writer inserting sequence numbers through the proxy (from backup1),
# with semi-sync on. Prints, per run and as medians:
#   switchover: writes blocked (dbfleet's own measure: read_only ON → proxy writer moved)
#               and the longest gap between two acknowledged writes seen by the client;
#   failover:   time from `dbfleet failover` starting to the first acknowledged write on
#               the new primary (the primary is `docker kill`ed just before);
#   both:       acknowledged writes missing on the new primary afterwards (target 0).
#   N=5 bench/drill.sh
#   SERVER=mariadb-11.8 N=5 bench/drill.sh   the same on Debian 13's MariaDB 11.8 (its own
#                                            lab, lab13-*, started fresh on 172.29.78.0/24)
#   SERVER=mysql N=5 bench/drill.sh          the same on Debian sid's MySQL (labmy-*,
#                                            172.29.79.0/24)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3}
SERVER=${SERVER:-mariadb-10.11}
cargo build --release --quiet
bin=$PWD/target/release/dbfleet
work=$(mktemp -d)
case "$SERVER" in
  mariadb-10.11)
    lab=lab; net=172.29.77
    docker ps --format '{{.Names}}' | grep -q '^lab-db1$' || bash lab/lab.sh up
    cp -a inventories/.dbfleet "$work/.dbfleet" 2>/dev/null || true
    version=10.11; labdir=$PWD/.lab ;;
  mariadb-11.8)
    lab=lab13; net=172.29.78; version=11.8; labdir=$PWD/.lab13
    LAB_NAME=lab13 LAB_SUITE=trixie LAB_SUBNET=$net.0/24 LAB_DIR=$labdir bash lab/lab.sh up ;;
  mysql)
    lab=labmy; net=172.29.79; version=9.7; labdir=$PWD/.labmy
    LAB_NAME=labmy LAB_SUITE=sid LAB_SERVER=mysql LAB_SUBNET=$net.0/24 LAB_DIR=$labdir bash lab/lab.sh up ;;
  *) echo "SERVER is mariadb-10.11, mariadb-11.8 or mysql" >&2; exit 2 ;;
esac
# The server's client and replica status names.
if [ "$SERVER" = mysql ]; then
  client=mysql; replica_status='SHOW REPLICA STATUS'; io_yes='Replica_IO_Running: Yes'; sql_yes='Replica_SQL_Running: Yes'
else
  client=mariadb; replica_status='SHOW SLAVE STATUS'; io_yes='Slave_IO_Running: Yes'; sql_yes='Slave_SQL_Running: Yes'
fi
trap 'rm -rf "$work"; docker exec $lab-backup1 rm -f /root/writer.run 2>/dev/null || true' EXIT
sed -e "s#config: ../.lab/ssh_config#config: $labdir/ssh_config#" \
    -e "s/172\.29\.77\./$net./g" -e "s/version: \"10.11\"/version: \"$version\"/" \
    -e 's/^    max_connections: 200$/    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: 5000/' \
    inventories/lab.yml > "$work/drill.yml"
if [ "$SERVER" = mysql ]; then
  # flavor mysql, and no physical backup job (validate refuses it: no tool for MySQL in Debian).
  python3 - "$work/drill.yml" <<'PY'
import sys
p = sys.argv[1]
t = open(p).read().replace("flavor: mariadb", "flavor: mysql")
a, b = t.index("    app-physical:"), t.index("    binlogs:")
open(p, "w").write(t[:a] + t[b:])
PY
fi
inv=$work/drill.yml
"$bin" -i "$inv" apply --auto-approve --quiet >/dev/null

app_password=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["app_password"])' "$work/.dbfleet/secrets.json")
printf '[client]\nuser=app\npassword=%s\n' "$app_password" | docker exec -i $lab-backup1 sh -c 'umask 077; cat > /root/app.cnf'
docker exec -i $lab-backup1 sh -c 'cat > /root/writer.sh; chmod +x /root/writer.sh' < lab/writer.sh

primary() { grep -B2 'roles: \[primary\]' "$inv" | head -1 | tr -d ' :'; }
sql() { docker exec "$lab-$1" $client -N -B -e "$2"; }
base=$(( $(date +%s) * 1000 ))
writer_start() {
  sql "$(primary)" 'CREATE TABLE IF NOT EXISTS app.seq (n BIGINT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))'
  base=$((base + 1000000))
  docker exec $lab-backup1 sh -c 'touch /root/writer.run; : > /root/writer.log'
  docker exec -d $lab-backup1 sh -c "/root/writer.sh $base $net.31 > /root/writer.log 2>/dev/null"
  sleep 2
}
writer_stop() { docker exec $lab-backup1 sh -c 'rm -f /root/writer.run; sleep 1'; docker exec $lab-backup1 cat /root/writer.log > "$work/acked"; }
lost_on() { # acknowledged numbers missing on host $1
  sql "$1" "SELECT n FROM app.seq WHERE n > $base" | sort -n > "$work/have"
  cut -d' ' -f2 "$work/acked" | sort -n | comm -23 - "$work/have" | wc -l
}
max_gap() { awk 'NR>1{d=$1-p; if(d>m)m=d} {p=$1} END{printf "%.0f", m*1000}' "$work/acked"; }
# Where the longest gap falls, from t0 ($1): "+START ms → +END ms, server_id A → B".
gap_at() { awk -v t0="$1" 'NR>1{d=$1-p; if(d>m){m=d; a=p; b=$1; sa=ps; sb=$3}} {p=$1; ps=$3}
  END{printf "+%.0f → +%.0f ms, server_id %s → %s", (a-t0)*1000, (b-t0)*1000, sa, sb}' "$work/acked"; }
wait_healthy() { # every replica's threads run (an IO thread retries every 10 s after a restart)
  local h t=0
  for h in db1 db2 db3; do
    [ "$h" = "$(primary)" ] && continue
    until st=$(docker exec "$lab-$h" $client -E -e "$replica_status") \
      && grep -q "$io_yes" <<<"$st" && grep -q "$sql_yes" <<<"$st"; do
      t=$((t + 1)); [ $t -lt 120 ] || { echo "$h does not replicate" >&2; exit 1; }; sleep 0.5
    done
  done
}
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }

echo "switchover (N=$N)"
: > "$work/sw_blocked"; : > "$work/sw_gap"; sw_lost=0
for i in $(seq "$N"); do
  old=$(primary); to=$([ "$old" = db1 ] && echo db2 || echo db1)
  wait_healthy
  writer_start
  t0=$(date +%s.%N)
  out=$("$bin" -i "$inv" switchover --to "$to" --auto-approve)
  [ -z "${VERBOSE:-}" ] || printf '%s\n' "$out" | sed 's/^/    | /'
  writer_stop
  blocked=$(printf '%s\n' "$out" | sed -n 's/.*writes were blocked for \([0-9]*\) ms.*/\1/p')
  gap=$(max_gap); lost=$(lost_on "$to"); sw_lost=$((sw_lost + lost))
  echo "$blocked" >> "$work/sw_blocked"; echo "$gap" >> "$work/sw_gap"
  printf '  %d: %s → %s  writes blocked %s ms, longest client gap %s ms (%s), %s acknowledged, %s lost\n' \
    "$i" "$old" "$to" "$blocked" "$gap" "$(gap_at "$t0")" "$(wc -l < "$work/acked")" "$lost"
done

echo "failover (N=$N)"
: > "$work/fo_first"; fo_lost=0
for i in $(seq "$N"); do
  old=$(primary)
  wait_healthy
  writer_start
  docker kill "$lab-$old" >/dev/null
  t0=$(date +%s.%N)
  "$bin" -i "$inv" failover --force --auto-approve > "$work/fo.out"
  sleep 1
  writer_stop
  new=$(primary)
  first=$(awk -v t0="$t0" '$1 > t0 {printf "%.0f", ($1 - t0) * 1000; exit}' "$work/acked")
  lost=$(lost_on "$new"); fo_lost=$((fo_lost + lost))
  echo "$first" >> "$work/fo_first"
  printf '  %d: %s killed → %s  first acknowledged write on %s after %s ms, %s acknowledged, %s lost\n' \
    "$i" "$old" "$new" "$new" "$first" "$(wc -l < "$work/acked")" "$lost"
  docker start "$lab-$old" >/dev/null; sleep 2
  "$bin" -i "$inv" rejoin "$old" --auto-approve >/dev/null
  "$bin" -i "$inv" apply --auto-approve --quiet >/dev/null
done

printf 'median: switchover writes blocked %s ms (client gap %s ms), failover to first write %s ms; acknowledged writes lost: %d (switchover) + %d (failover)\n' \
  "$(median < "$work/sw_blocked")" "$(median < "$work/sw_gap")" "$(median < "$work/fo_first")" "$sw_lost" "$fo_lost"
# Back to lab.yml's topology (the main lab); another server's lab is left as it is.
if [ "$lab" = lab ]; then
  p=$(primary); [ "$p" = db1 ] || "$bin" -i "$inv" switchover --to db1 --auto-approve >/dev/null
  "$bin" -i inventories/lab.yml apply --auto-approve --quiet >/dev/null
fi
