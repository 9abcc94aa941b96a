#!/usr/bin/env bash
# Fault injection for the lab (issue 10): the faults HA tools are judged by, on the lab's
# real hosts. Used by tests/lab.rs and bench/.
#
#   lab/fault.sh partition HOST [--in|--out] PEER...  drop HOST's traffic with each PEER
#                      (a lab host name, an address, or `operator`: this machine, the lab
#                      network's gateway). Both ways by default; --in drops only what PEER
#                      sends to HOST, --out only what HOST sends to PEER (one-way partitions).
#                      nft inside HOST's container, in its own table: dbfleet's firewall
#                      table is not touched.
#   lab/fault.sh heal HOST             remove every partition of HOST
#   lab/fault.sh pause|unpause HOST    freeze / thaw every process of HOST (docker pause:
#                                      a long GC pause or a stalled VM)
#   lab/fault.sh kill HOST             SIGKILL the container (a crash or power loss)
#   lab/fault.sh stress HOST SECONDS [WORKERS]  saturate the CPUs from inside HOST with
#                                      stress-ng (default 8 workers), in the background
set -euo pipefail

PREFIX=${LAB_SUBNET:-172.29.77.0/24}; PREFIX=${PREFIX%.*}
# The lab's container prefix (lab/lab.sh's LAB_NAME: lab, lab13, labmy).
L=${LAB_NAME:-lab}
TABLE=dbfleet_fault

addr() {
  case "$1" in
    operator) echo "$PREFIX.1" ;;
    db1) echo "$PREFIX.11" ;; db2) echo "$PREFIX.12" ;; db3) echo "$PREFIX.13" ;;
    backup1) echo "$PREFIX.21" ;; proxy1) echo "$PREFIX.31" ;; proxy2) echo "$PREFIX.32" ;;
    offsite1) echo "$PREFIX.41" ;;
    *.*.*.*) echo "$1" ;;
    *) echo "fault: unknown peer $1" >&2; exit 2 ;;
  esac
}

in_host() { docker exec -i "$L-$1" sh -c "$2"; }

# nft comes from the image's apt cache when dbfleet's firewall has not installed it yet.
need_nft() {
  in_host "$1" 'command -v nft >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-download nftables >/dev/null'
}

case "${1:-}" in
  partition)
    host=$2; shift 2; dir=both
    case "${1:-}" in --in) dir=in; shift ;; --out) dir=out; shift ;; esac
    [ $# -gt 0 ] || { echo "fault: partition $host from whom?" >&2; exit 2; }
    need_nft "$host"
    rules="add table inet $TABLE
add chain inet $TABLE input { type filter hook input priority -10; policy accept; }
add chain inet $TABLE output { type filter hook output priority -10; policy accept; }
"
    for peer in "$@"; do
      a=$(addr "$peer")
      [ "$dir" = out ] || rules+="add rule inet $TABLE input ip saddr $a drop
"
      [ "$dir" = in ] || rules+="add rule inet $TABLE output ip daddr $a drop
"
    done
    printf '%s' "$rules" | in_host "$host" 'nft -f -'
    ;;
  heal)
    in_host "$2" "nft delete table inet $TABLE 2>/dev/null || true"
    ;;
  pause) docker pause "$L-$2" >/dev/null ;;
  unpause) docker unpause "$L-$2" >/dev/null ;;
  kill) docker kill "$L-$2" >/dev/null ;;
  stress)
    host=$2 secs=$3 workers=${4:-8}
    in_host "$host" 'command -v stress-ng >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-download stress-ng >/dev/null'
    docker exec -d "$L-$host" stress-ng --cpu "$workers" --timeout "${secs}s" --quiet
    ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
