#!/usr/bin/env bash
# Proxy under CPU saturation (on demand, not in CI; issue 10, case 4): the lab converged,
# a writer inserting through proxy1's writer port (from backup1), then proxy1's CPUs
# saturated by `stress-ng --cpu WORKERS` for SECONDS. Prints the writes acknowledged
# during the stress, the longest gap between two, the writer's failed attempts, and how
# often HAProxy marked each server down (`show stat` chkdown, before → after).
#
#   SECONDS_=120 WORKERS=8 bench/proxy-stress.sh
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_:-120}
workers=${WORKERS:-8}
cargo build --release --quiet
bin=$PWD/target/release/dbfleet
docker ps --format '{{.Names}}' | grep -q '^lab-db1$' || bash lab/lab.sh up
"$bin" -i inventories/lab.yml apply --auto-approve --quiet >/dev/null
"$bin" -i inventories/lab.yml plan --detailed-exitcode >/dev/null

app_password=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["app_password"])' inventories/.dbfleet/secrets.json)
printf '[client]\nuser=app\npassword=%s\n' "$app_password" | docker exec -i lab-backup1 sh -c 'umask 077; cat > /root/app.cnf'
# This writer also counts the attempts that failed (an error is a write the application lost).
docker exec -i lab-backup1 sh -c 'cat > /root/stress-writer.sh; chmod +x /root/stress-writer.sh' <<'W'
#!/bin/sh
i=$1
while [ -e /root/writer.run ]; do
  i=$((i+1))
  if mariadb --defaults-extra-file=/root/app.cnf -h 172.29.77.31 -P 3306 -N --connect-timeout=2 \
      -e "INSERT INTO app.seq(n) VALUES ($i)" 2>/dev/null; then echo "$(date +%s.%N) ok"
  else echo "$(date +%s.%N) failed"; fi
done
W
docker exec lab-db1 mariadb -e 'CREATE TABLE IF NOT EXISTS app.seq (n BIGINT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))'
downs() {
  docker exec lab-proxy1 sh -c "echo 'show stat' | socat stdio unix-connect:/run/haproxy/admin.sock" |
    awk -F, 'NR==1 { for (i=1;i<=NF;i++) if ($i=="chkdown") c=i; next }
             $2!="FRONTEND" && $2!="BACKEND" && $1!="" { printf "%s/%s=%s ", $1, $2, $c }'
}
base=$(( $(date +%s) * 1000 + 7000000 ))
docker exec lab-backup1 sh -c 'touch /root/writer.run; : > /root/stress.log'
docker exec -d lab-backup1 sh -c "/root/stress-writer.sh $base > /root/stress.log 2>/dev/null"
sleep 3
before=$(downs)
t0=$(date +%s.%N)
bash lab/fault.sh stress proxy1 "$secs" "$workers"
sleep "$secs"
t1=$(date +%s.%N)
after=$(downs)
docker exec lab-backup1 sh -c 'rm -f /root/writer.run; sleep 2'
docker exec lab-backup1 cat /root/stress.log > /tmp/proxy-stress.$$
awk -v t0="$t0" -v t1="$t1" -v secs="$secs" -v w="$workers" '
  $1 >= t0 && $1 <= t1 { if ($2 == "ok") { ok++; if (p) { d=$1-p; if (d>m) m=d } p=$1 } else failed++ }
  END { printf "proxy1 saturated by stress-ng --cpu %d for %d s: %d writes acknowledged (%.1f/s), %d failed, longest gap %.0f ms\n",
        w, secs, ok, ok/secs, failed+0, m*1000 }' /tmp/proxy-stress.$$
rm -f /tmp/proxy-stress.$$
echo "HAProxy chkdown before: $before"
echo "HAProxy chkdown after:  $after"
