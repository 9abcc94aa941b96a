#!/usr/bin/env bash
# Backup benchmark (on demand, not in CI): throughput of dbfleet's backups and restores on a
# dataset of SIZE_MB (default 1024) generated in the lab, against the floor of a raw copy
# of the same files on the same host, and the RTO of a lost replica's rebuild.
#   SIZE_MB=1024 bench/backup.sh
# Prints, each as seconds and MB/s of the dataset (app.bench's table file on db2, the job
# host), and the bytes the step itself handled where it reports them:
#   floor:     `cp` of that table file on db2, then sync: the raw copy speed of the same
#              files on the same host;
#   physical:  `dbfleet backup run app-physical --mode full` (mariadb-backup → restic → backup1);
#   logical:   `dbfleet backup run app-logical` (mariadb-dump → restic → backup1);
#   verify:    `dbfleet backup verify app-physical` (restore + prepare + start + read, on backup1);
#   rebuild:   `dbfleet rebuild db3` on a bare host: provision + restore + replicate (the RTO).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
cargo build --release --quiet
bin=$PWD/target/release/dbfleet
D() { "$bin" -i inventories/lab.yml "$@"; }
docker ps --format '{{.Names}}' | grep -q '^lab-db1$' || bash lab/lab.sh up
D apply --auto-approve --quiet > /dev/null
on() { docker exec "lab-$1" sh -c "$2"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# SIZE_MB of rows of ~1 KiB each (RANDOM_BYTES does not compress), in batches of 64 MiB.
rows=$((SIZE_MB * 1024))
echo "generating ${SIZE_MB} MB on db1 ..."
on db1 "mariadb app -e 'DROP TABLE IF EXISTS bench; CREATE TABLE bench (id INT PRIMARY KEY, pad VARBINARY(1000)) ENGINE=InnoDB'"
for ((from = 1; from <= rows; from += 65536)); do
  to=$((from + 65535 > rows ? rows : from + 65535))
  on db1 "mariadb app -e 'INSERT INTO bench SELECT seq, RANDOM_BYTES(1000) FROM seq_${from}_to_${to}'"
done
until [ "$(on db2 "mariadb -N -e 'SELECT COUNT(*) FROM app.bench'" 2>/dev/null)" = "$rows" ]; do sleep 2; done
mb=$(on db2 "du -sm /var/lib/mysql/app/bench.ibd | cut -f1")
echo "dataset: app.bench, ${mb} MB on db2 (db2's whole data folder: $(on db2 "du -sm /var/lib/mysql | cut -f1") MB with logs)"

report() { # name start end [bytes handled]
  local s; s=$(secs "$2" "$3")
  printf '%-10s %8.1f s  %8.1f MB/s%s\n' "$1" "$s" "$(awk -v m="$mb" -v s="$s" 'BEGIN { print m / s }')" \
    "${4:+   ($(( $4 / 1048576 )) MB streamed into restic)}"
}
# The bytes a job's last run streamed into restic, from its node_exporter metrics.
job_bytes() { on db2 "sed -n 's/^dbfleet_backup_size_bytes{job=\"$1\"} //p' /var/lib/node_exporter/textfile_collector/dbfleet_backup_$1.prom"; }

on db2 "sync; rm -f /var/tmp/rawcopy"
t0=$(now); on db2 "cp /var/lib/mysql/app/bench.ibd /var/tmp/rawcopy && sync"; t1=$(now)
on db2 "rm -f /var/tmp/rawcopy"
report floor "$t0" "$t1"

t0=$(now); D backup run app-physical --mode full > /dev/null; t1=$(now)
report physical "$t0" "$t1" "$(job_bytes app-physical)"
t0=$(now); D backup run app-logical > /dev/null; t1=$(now)
report logical "$t0" "$t1" "$(job_bytes app-logical)"
t0=$(now); D backup verify app-physical > /dev/null; t1=$(now)
report verify "$t0" "$t1"

bash lab/lab.sh reset db3 > /dev/null 2>&1
t0=$(now); D rebuild db3 --auto-approve | grep 'measured RTO'; t1=$(now)
report rebuild "$t0" "$t1"
[ "$(on db3 "mariadb -N -e 'CHECKSUM TABLE app.bench'")" = "$(on db1 "mariadb -N -e 'CHECKSUM TABLE app.bench'")" ] \
  && echo "db3's app.bench equals db1's (CHECKSUM TABLE)"
on db1 "mariadb app -e 'DROP TABLE bench'"
