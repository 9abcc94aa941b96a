#!/bin/sh
# Lab writer (tests/lab.rs, bench/drill.sh), run on backup1 as an application host: inserts
# increasing sequence numbers from $1 into app.seq through the proxy's writer port and
# prints "EPOCH.NANOS N SERVER_ID" for each acknowledged insert (the @@server_id of the
# server that acknowledged it, read in the same session), while /root/writer.run exists.
# A client that hangs (a primary blocked on semi-sync) is cut by HAProxy's fencing or by
# the read timeout; neither is acknowledged. Credentials come from /root/app.cnf (0600).
i=$1
# The proxy's address (the main lab's by default; another lab of the server matrix passes its own).
proxy=${2:-172.29.77.31}
# MariaDB's client, or MySQL's on a MySQL lab.
client=$(command -v mariadb || command -v mysql)
while [ -e /root/writer.run ]; do
  i=$((i+1))
  if sid=$("$client" --defaults-extra-file=/root/app.cnf -h "$proxy" -P 3306 -N --connect-timeout=2 \
      -e "INSERT INTO app.seq(n) VALUES ($i); SELECT @@server_id" 2>/dev/null) && [ -n "$sid" ]; then
    echo "$(date +%s.%N) $i $sid"
  fi
done
