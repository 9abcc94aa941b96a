#!/usr/bin/env bash
# The main job end to end on the lab: lab up -> apply -> the servers' live state -> re-plan.
# Recreates the lab hosts (fresh Debian bookworm, sshd only), so the apply starts from zero.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin=target/debug/dbfleet
inv=inventories/lab.yml

bash lab/lab.sh up
"$bin" -i "$inv" apply --auto-approve
echo
echo "== database servers, live"
for ip in 172.29.77.11 172.29.77.12 172.29.77.13; do
  ssh -F .lab/ssh_config "$ip" "mariadb -N -B -e \"SELECT CONCAT_WS('  ', @@hostname, CONCAT('server_id=', @@server_id), CONCAT('read_only=', @@read_only), CONCAT('log_bin=', @@log_bin), CONCAT('gtid_strict_mode=', @@gtid_strict_mode), CONCAT('bind=', @@bind_address), @@version)\""
done
echo
echo "== plan after apply (expects no changes)"
"$bin" -i "$inv" plan --detailed-exitcode
