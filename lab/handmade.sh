#!/usr/bin/env bash
# A fleet set up by hand the way seed 000 describes it, on a lab's bare hosts (issue 28's
# `dbfleet import` test): MariaDB from Debian's packages (or MySQL, LAB_SERVER=mysql, on
# the MySQL image), db1 the primary with a binary log, db2 and db3 replicating from it by
# binary-log file and position as `repl` (no GTID: MySQL's gtid_mode stays OFF; no TLS), an
# application database and account with rows, a setting edited in /etc/mysql/*.conf.d/,
# HAProxy on proxy1 in front of db1, and the client on backup1 (the application's host).
# Nothing of dbfleet is on the hosts after it.
#
#   LAB_NAME=labim LAB_SUBNET=172.29.82.0/24 lab/handmade.sh
#   LAB_NAME=labimy LAB_SUBNET=172.29.83.0/24 LAB_SERVER=mysql lab/handmade.sh
#
# The hosts must be up (lab/lab.sh up with the same LAB_NAME and LAB_SUBNET). Passwords
# come from the environment (HANDMADE_REPL_PASSWORD, HANDMADE_APP_PASSWORD) and go to the
# servers on stdin, never on a command line.
set -euo pipefail
L=${LAB_NAME:-lab}
SUBNET=${LAB_SUBNET:-172.29.77.0/24}
PREFIX=${SUBNET%.*}
: "${HANDMADE_REPL_PASSWORD:?set HANDMADE_REPL_PASSWORD}" "${HANDMADE_APP_PASSWORD:?set HANDMADE_APP_PASSWORD}"

on() { docker exec -i "$L-$1" sh -c "$2"; }

if [ "${LAB_SERVER:-mariadb}" = mysql ]; then
  # Debian's MySQL: its own package names, folder, service and client. A `repl` account
  # of caching_sha2_password needs the source's RSA key over a connection without TLS.
  server_pkgs="mysql-server mysql-client" client_pkg=mysql-client confd=/etc/mysql/mysql.conf.d
  client=mysql
  replica_stmt() {
    printf "CHANGE REPLICATION SOURCE TO SOURCE_HOST='%s', SOURCE_USER='repl', SOURCE_PASSWORD='%s', SOURCE_LOG_FILE='%s', SOURCE_LOG_POS=4, GET_SOURCE_PUBLIC_KEY=1;\nSTART REPLICA;\n" "$1" "$2" "$3"
  }
  status_stmt='SHOW REPLICA STATUS'
  # expire_logs_days is gone from MySQL 8.4. GTIDs off, as a fleet set up before MySQL 9
  # (where gtid_mode became ON by default) runs: its option files say so.
  expire=$'binlog_expire_logs_seconds = 604800'
  gtid=$'gtid_mode = OFF\nenforce_gtid_consistency = OFF'
  # After Debian's mysqld.cnf (bind-address = 127.0.0.1), which the folder's name order
  # would otherwise let win.
  rep_cnf=replication.cnf tune_cnf=tuning.cnf
  # Debian's MySQL ships a systemd unit only, and these hosts run no systemd: started as
  # an operator would there, under mysqld_safe, waited for until it answers.
  start_server="install -d -m 0755 -o mysql -g mysql /run/mysqld
    (setsid mysqld_safe --pid-file=/run/mysqld/mysqld.pid </dev/null >/dev/null 2>&1 &)
    for i in \$(seq 1 120); do mysqladmin ping >/dev/null 2>&1 && exit 0; sleep 0.5; done
    tail -20 /var/log/mysql/error.log; exit 1"
else
  server_pkgs="mariadb-server mariadb-client" client_pkg=mariadb-client confd=/etc/mysql/mariadb.conf.d
  client=mariadb
  replica_stmt() {
    printf "CHANGE MASTER TO MASTER_HOST='%s', MASTER_USER='repl', MASTER_PASSWORD='%s', MASTER_LOG_FILE='%s', MASTER_LOG_POS=4;\nSTART SLAVE;\n" "$1" "$2" "$3"
  }
  status_stmt='SHOW SLAVE STATUS'
  expire='expire_logs_days = 7'
  gtid=''
  rep_cnf=60-replication.cnf tune_cnf=70-tuning.cnf
  start_server="service mariadb restart > /dev/null"
fi

for h in db1 db2 db3; do
  id=${h#db}
  # From the image's apt cache, as a host without network would.
  on "$h" "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-download $server_pkgs > /tmp/handmade-apt.log 2>&1 || { cat /tmp/handmade-apt.log; exit 1; }"
  # Seed 000, "Master Configuration" / "Slave Configuration": server-id, the binary log
  # on the primary, relay log and read_only on the replicas; bind to every address.
  if [ "$h" = db1 ]; then
    role=$'log_bin = /var/log/mysql/mysql-bin.log\nbinlog_format = mixed\n'"$expire"
  else
    role=$'relay_log = /var/log/mysql/mysql-relay-bin\nread_only = 1'
  fi
  on "$h" "cat > $confd/$rep_cnf" <<CNF
[mysqld]
server_id = $id
bind_address = 0.0.0.0
$role
$gtid
CNF
  # The operator's own tuning, in a file of their own.
  on "$h" "cat > $confd/$tune_cnf" <<'CNF'
[mysqld]
max_connections = 300
table_open_cache = 3000
CNF
  # Debian 12's MariaDB logs to the journal and makes no /var/log/mysql: the binary and
  # relay logs' folder is the operator's to make. Started (again, if the package started
  # it) on these files.
  on "$h" "install -d -o mysql -g adm -m 2750 /var/log/mysql && $start_server"
done

# HAProxy on proxy1 in front of the primary, configured by hand (seed 000's load balancing,
# its simplest form): the application writes through it.
on proxy1 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-download haproxy > /tmp/handmade-apt.log 2>&1 || { cat /tmp/handmade-apt.log; exit 1; }'
on proxy1 "cat > /etc/haproxy/haproxy.cfg" <<CFG
global
    daemon
defaults
    mode tcp
    timeout connect 2s
    timeout client 1m
    timeout server 1m
listen mysql-writer
    bind *:3306
    server db1 $PREFIX.11:3306 check
CFG
on proxy1 'service haproxy restart > /dev/null'

# The application's host (backup1 here) has the client it writes with.
on backup1 "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-download $client_pkg > /tmp/handmade-apt.log 2>&1 || { cat /tmp/handmade-apt.log; exit 1; }"

# The primary: the replication account, the application's database and account, rows.
on db1 "$client" <<SQL
CREATE USER 'repl'@'%' IDENTIFIED BY '$HANDMADE_REPL_PASSWORD';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
CREATE DATABASE app;
CREATE USER 'app'@'%' IDENTIFIED BY '$HANDMADE_APP_PASSWORD';
GRANT SELECT, INSERT, UPDATE, DELETE ON app.* TO 'app'@'%';
CREATE TABLE app.seq (n BIGINT PRIMARY KEY, at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
INSERT INTO app.seq (n) VALUES (1), (2), (3);
SQL

# The replicas from the primary's first binary log, at its start (seed 000, "Setting up
# replication": CHANGE MASTER TO with MASTER_LOG_FILE and MASTER_LOG_POS).
first=$(on db1 "$client -N -e 'SHOW BINARY LOGS' | head -1 | cut -f1")
for h in db2 db3; do
  replica_stmt "$PREFIX.11" "$HANDMADE_REPL_PASSWORD" "$first" | on "$h" "$client"
done
for h in db2 db3; do
  for _ in $(seq 1 60); do
    [ "$(on "$h" "$client -N -e 'SELECT COUNT(*) FROM app.seq'" 2>/dev/null)" = 3 ] && break
    sleep 1
  done
  [ "$(on "$h" "$client -N -e 'SELECT COUNT(*) FROM app.seq'")" = 3 ] || { on "$h" "$client -E -e '$status_stmt'"; exit 1; }
done
echo "handmade: db1 -> db2, db3 by file and position; app.seq has 3 rows on each" >&2
