#!/bin/sh
# Lab writer (tests/lab.rs, bench/drill.sh), run on backup1 as an application host: inserts
# increasing sequence numbers from $1 into app.seq through the proxy's writer port and
# prints "EPOCH.NANOS N" for each acknowledged insert, while /root/writer.run exists.
# Credentials come from /root/app.cnf (0600).
i=$1
while [ -e /root/writer.run ]; do
  i=$((i+1))
  if mariadb --defaults-extra-file=/root/app.cnf -h 172.29.77.31 -P 3306 -N -e "INSERT INTO app.seq(n) VALUES ($i)" 2>/dev/null; then
    echo "$(date +%s.%N) $i"
  fi
done
