#!/usr/bin/env bash
# Backup and recovery benchmark (on demand, not in CI; issue 26, must-show 1): throughput
# of dbfleet's backups, restores, rebuild and seeding on a dataset of SIZE_MB (default
# 1024) generated in the lab, each as a share of the floor, a raw copy of the same table
# file on the same host measured in the same run.
#   SIZE_MB=4096 DATASET=random bench/backup.sh
#   SIZE_MB=4096 DATASET=mixed  bench/backup.sh
# DATASET: `random`, rows of 1000 random bytes (incompressible); `mixed`, a realistic,
# compressible table mix (orders: timestamps, small integers, statuses, e-mail addresses,
# and a text note of repeated words; about 1 KiB a row).
# Prints one row per step: seconds, dataset MB/s, and that rate as a share of the floor:
#   floor:        the table file copied with O_DIRECT (dd) on db2, the job host: the disk;
#   physical:     `backup run app-physical --mode full` (mariadb-backup → restic → backup1);
#   incremental:  5 % of the rows changed, then `backup run app-physical --mode incremental`;
#   logical:      `backup run app-logical` (mariadb-dump → restic → backup1);
#   verify:       `backup verify app-physical` (restore + prepare + start + read, on backup1);
#   pitr:         `restore db1` to a time after 1 % of the rows changed: the newest dump,
#                 then the archived binary logs (those changes) up to that time;
#   rebuild:      `rebuild db3` on a bare host: provision + restore + replicate (the RTO);
#   seed:         `apply` of a bare db3 with no backups: seeded host to host from db1.
# Rates are the dataset's size (the table file on db2) over the step's whole time, so the
# rows compare directly; provisioning a bare host is inside rebuild and seed.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
DATASET=${DATASET:-random}
case "$DATASET" in random | mixed) ;; *) echo "DATASET is random or mixed" >&2; exit 2 ;; esac
# STEPS: the steps to run after the floor (default all), e.g. STEPS="rebuild seed".
STEPS=${STEPS:-"physical incremental logical verify pitr rebuild seed"}
want() { [[ " $STEPS " == *" $1 "* ]]; }
cargo build --release --quiet
bin=$PWD/target/release/dbfleet
D() { "$bin" -i inventories/lab.yml "$@"; }
docker ps --format '{{.Names}}' | grep -q '^lab-db1$' || bash lab/lab.sh up
D apply --auto-approve --quiet > /dev/null
on() { docker exec "lab-$1" sh -c "$2"; }
q() { on "$1" "mariadb -N -B -e \"$2\""; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# SIZE_MB of rows of about 1 KiB each, in batches of 64 Ki rows.
rows=$((SIZE_MB * 1024))
echo "generating ${SIZE_MB} MB ($DATASET) on db1 ..."
if [ "$DATASET" = random ]; then
  q db1 "DROP TABLE IF EXISTS app.bench; CREATE TABLE app.bench (id INT PRIMARY KEY, pad VARBINARY(1000)) ENGINE=InnoDB"
  row="seq, RANDOM_BYTES(1000)"
else
  q db1 "DROP TABLE IF EXISTS app.bench; CREATE TABLE app.bench (id INT PRIMARY KEY, created DATETIME NOT NULL, customer INT NOT NULL, status VARCHAR(16) NOT NULL, email VARCHAR(64) NOT NULL, amount DECIMAL(10,2) NOT NULL, note TEXT NOT NULL, KEY (customer), KEY (created)) ENGINE=InnoDB"
  row="seq, '2026-01-01' + INTERVAL (seq * 37) SECOND, seq % 50000, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'returned'), CONCAT('customer', seq % 50000, '@example.com'), (seq % 100000) / 100, CONCAT('Order ', seq, ' of customer ', seq % 50000, ': ', REPEAT(ELT(1 + seq % 5, 'please deliver to the back door ', 'gift wrap requested, no invoice ', 'call before delivery, fragile ', 'customer asked for an update ', 'address changed after payment '), 26))"
fi
for ((from = 1; from <= rows; from += 65536)); do
  to=$((from + 65535 > rows ? rows : from + 65535))
  q db1 "USE app; INSERT INTO app.bench SELECT $row FROM seq_${from}_to_${to}"
done
until [ "$(q db2 "SELECT COUNT(*) FROM app.bench" 2>/dev/null)" = "$rows" ]; do sleep 2; done
mb=$(on db2 "du -sm /var/lib/mysql/app/bench.ibd | cut -f1")
echo "dataset: app.bench ($DATASET), ${mb} MB on db2 (db2's whole data folder: $(on db2 "du -sm /var/lib/mysql | cut -f1") MB with logs)"
sum=$(q db1 "CHECKSUM TABLE app.bench")

# Changes the rows matching WHERE on db1 (random: new random bytes; mixed: the status
# STATUS and the amount up by one) and records the table's new checksum in `sum`.
change_rows() { # WHERE STATUS
  if [ "$DATASET" = random ]; then
    q db1 "UPDATE app.bench SET pad = RANDOM_BYTES(1000) WHERE $1"
  else
    q db1 "UPDATE app.bench SET status = '$2', amount = amount + 1 WHERE $1"
  fi
  sum=$(q db1 "CHECKSUM TABLE app.bench")
}

floor_rate=
report() { # name start end [notes]
  local s r; s=$(secs "$2" "$3"); r=$(awk -v m="$mb" -v s="$s" 'BEGIN { printf "%.1f", m / s }')
  [ -n "$floor_rate" ] || floor_rate=$r
  printf '%-12s %8.1f s  %8.1f MB/s  %5.0f %% of the floor%s\n' "$1" "$s" "$r" \
    "$(awk -v r="$r" -v f="$floor_rate" 'BEGIN { print 100 * r / f }')" "${4:+   ($4)}"
}
# The bytes a job's last run streamed into restic, from its node_exporter metrics.
job_mb() { on db2 "sed -n 's/^dbfleet_backup_size_bytes{job=\"$1\"} //p' /var/lib/node_exporter/textfile_collector/dbfleet_backup_$1.prom" | awk '{ printf "%d MB streamed into restic", $1 / 1048576 }'; }
same_on() { [ "$(q "$1" "CHECKSUM TABLE app.bench")" = "$sum" ] && echo "CHECKSUM TABLE equal to db1's" || echo "CHECKSUM TABLE DIFFERS"; }

# The floor is the disk: the table file copied with O_DIRECT on both sides (dd), so
# neither the read nor the write is the page cache's. `cp` + `sync` is shown beside it:
# just after the rows were written it reads from memory, and measured 340 to 1,300 MB/s
# on the same machine from run to run.
on db2 "sync; rm -f /var/tmp/rawcopy"
t0=$(now); on db2 "dd if=/var/lib/mysql/app/bench.ibd of=/var/tmp/rawcopy bs=4M iflag=direct oflag=direct status=none"; t1=$(now)
on db2 "rm -f /var/tmp/rawcopy"
report floor "$t0" "$t1" "dd with O_DIRECT on db2: the disk"
t0=$(now); on db2 "cp /var/lib/mysql/app/bench.ibd /var/tmp/rawcopy && sync"; t1=$(now)
on db2 "rm -f /var/tmp/rawcopy"
report "cp+sync" "$t0" "$t1" "page cache: not the floor"

if want physical; then
  t0=$(now); D backup run app-physical --mode full > /dev/null; t1=$(now)
  report physical "$t0" "$t1" "$(job_mb app-physical)"
fi
if want incremental; then
  # 5 % of the rows changed (every 20th), replicated to db2, then the incremental.
  change_rows "id % 20 = 0" refunded
  until [ "$(q db2 "CHECKSUM TABLE app.bench")" = "$sum" ]; do sleep 1; done
  t0=$(now); D backup run app-physical --mode incremental > /dev/null; t1=$(now)
  report incremental "$t0" "$t1" "$(job_mb app-physical)"
fi
if want logical; then
  t0=$(now); D backup run app-logical > /dev/null; t1=$(now)
  report logical "$t0" "$t1" "$(job_mb app-logical)"
fi
if want verify; then
  t0=$(now); D backup verify app-physical > /dev/null; t1=$(now)
  report verify "$t0" "$t1"
fi
if want pitr; then
  # Point in time: the newest dump, then the binary logs archived after it (1 % of the
  # rows changed after the dump), to a time before the binlog job's run (the archive
  # holds what was logged before its run began).
  change_rows "id % 100 = 1" disputed
  sleep 1
  to=$(date -u '+%Y-%m-%d %H:%M:%S')
  sleep 2
  D backup run binlogs > /dev/null
  t0=$(now)
  if D restore db1 --to "$to" --auto-approve > /tmp/bench-pitr.log 2>&1; then
    t1=$(now); report pitr "$t0" "$t1" "$(same_on db1)"
  else
    echo "pitr         FAILED: $(grep -m1 -o 'ERROR[^│]*' /tmp/bench-pitr.log || tail -n 1 /tmp/bench-pitr.log)"
    D apply --auto-approve > /dev/null  # read_only OFF again: the restore left db1 read-only
  fi
fi
if want rebuild; then
  bash lab/lab.sh reset db3 > /dev/null 2>&1
  t0=$(now); rto=$(D rebuild db3 --auto-approve | grep -o 'measured RTO [^;,]*' || true); t1=$(now)
  until [ "$(q db3 "SELECT COUNT(*) FROM app.bench" 2>/dev/null)" = "$rows" ]; do sleep 1; done
  report rebuild "$t0" "$t1" "${rto:-no RTO printed}; $(same_on db3)"
fi
if want seed; then
  bash lab/lab.sh reset db3 > /dev/null 2>&1
  t0=$(now); D apply --auto-approve > /dev/null; t1=$(now)
  until [ "$(q db3 "SELECT COUNT(*) FROM app.bench" 2>/dev/null)" = "$rows" ]; do sleep 1; done
  report seed "$t0" "$t1" "from db1, host to host; $(same_on db3)"
fi

q db1 "DROP TABLE app.bench"
