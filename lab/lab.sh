#!/usr/bin/env bash
# The dbfleet lab: six real Debian hosts (db1 db2 db3 backup1 proxy1 proxy2) as Docker containers
# on a private network, built with no container registry:
# debootstrap from Debian's mirror -> `docker import`, cached by a content hash of this
# directory's build inputs. Each host runs sshd only (no systemd); its apt cache already
# holds every package dbfleet installs, so provisioning needs no network inside the lab.
#
#   lab/lab.sh image   build (or reuse) the base image
#   lab/lab.sh up      image + network + hosts + lab key pair + known_hosts
#   lab/lab.sh down    remove hosts and network (the image stays cached)
#   lab/lab.sh reset HOST...  recreate the named hosts fresh (same address)
#   lab/lab.sh status  show the hosts
#   lab/lab.sh offsite start the offsite object storage (Garage, S3-compatible) at .41,
#                      a host outside the inventory; its S3 key goes to $LAB_DIR/offsite.env
#   lab/lab.sh tools   build (or reuse) the Garage binary the offsite host runs
#
# Everything the lab writes on this machine lives in $LAB_DIR (default: .lab/, git-ignored):
# the key pair, known_hosts and an ssh_config that inventories/lab.yml refers to.
#
# Several labs can run side by side, each with its own name, Debian release, subnet and
# folder (issue 13's server matrix), e.g. Debian 13 with MariaDB 11.8:
#   LAB_NAME=lab13 LAB_SUITE=trixie LAB_SUBNET=172.29.78.0/24 LAB_DIR=.lab13 lab/lab.sh up
# Containers are named NAME-HOST (lab-db1), on the network dbfleet-NAME.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
LAB_DIR=${LAB_DIR:-$top/.lab}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
LAB_NAME=${LAB_NAME:-lab}
NET=dbfleet-$LAB_NAME
# The Debian release of the hosts: bookworm (12, MariaDB 10.11), trixie (13, MariaDB 11.8)
# or sid (Debian's MySQL, with LAB_SERVER=mysql).
SUITE=${LAB_SUITE:-bookworm}
# The database server the image carries in its apt cache: mariadb or mysql.
SERVER=${LAB_SERVER:-mariadb}
SUBNET=${LAB_SUBNET:-172.29.77.0/24}
PREFIX=${SUBNET%.*}
# name:last-octet; the addresses are fixed so the inventory can name them.
HOSTS=(db1:11 db2:12 db3:13 backup1:21 proxy1:31 proxy2:32)
# What dbfleet installs on lab hosts: pre-downloaded into the image's apt cache.
# packages.txt names MariaDB's; a MySQL image carries Debian's mysql-server and -client
# instead (no physical backup tool: dbfleet refuses kind: physical for MySQL).
PACKAGES=$(grep -v '^#' "$here/packages.txt" | tr '\n' ' ')
if [ "$SERVER" = mysql ]; then
  PACKAGES="mysql-server mysql-client $(grep -v '^#' "$here/packages.txt" | grep -v '^mariadb' | tr '\n' ' ')"
fi
# What every lab host has from the start (a bare Debian with sshd, as a fresh VM).
BASE_INCLUDE=openssh-server,procps,iproute2,ca-certificates,gnupg

log() { printf 'lab: %s\n' "$*" >&2; }

image_tag() {
  local h
  h=$( (cat "$here/lab.sh" "$here/packages.txt" "$here/init.sh"; echo "$MIRROR $SECURITY_MIRROR $SUITE $SERVER") | sha256sum | cut -c1-12)
  echo "dbfleet-lab:$SUITE-$SERVER-$h"
}

build_image() {
  local tag; tag=$(image_tag)
  if docker image inspect "$tag" >/dev/null 2>&1; then
    log "image $tag is cached"
    echo "$tag"; return
  fi
  command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
  local root; root=$(mktemp -d /tmp/dbfleet-rootfs.XXXXXX)
  trap 'rm -rf "$root"' RETURN
  log "debootstrap $SUITE into $root (this takes a few minutes)"
  debootstrap --variant=minbase --include="$BASE_INCLUDE" "$SUITE" "$root" "$MIRROR" >&2
  # Package installs must not start services while building.
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod 755 "$root/usr/sbin/policy-rc.d"
  echo "deb $MIRROR $SUITE main" > "$root/etc/apt/sources.list"
  # Debian's security updates, as a real host has them (a stable suite's point release of
  # the server arrives there first: issue 16's rolling upgrade). sid has none.
  if [ "$SUITE" != sid ]; then
    echo "deb $SECURITY_MIRROR $SUITE-security main" >> "$root/etc/apt/sources.list"
  fi
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # sid's InRelease on the mirror may be past its Valid-Until (seen: a week and more); the
  # signature is still checked. Hosts never run apt-get update, but keep them consistent.
  echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99dbfleet-lab"
  chroot "$root" apt-get update -qq >&2
  log "pre-downloading: $PACKAGES"
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only $PACKAGES >&2
  # Every version the sources offer of the server's own packages (those built from its
  # source package), beside the newest: a lab can install an older point release and
  # upgrade to the newer one offline (bookworm: 10.11.18, and 10.11.19 from security).
  chroot "$root" sh -ec '
    cd /var/cache/apt/archives
    for f in *.deb; do
      src=$(dpkg-deb -f "$f" Source | cut -d" " -f1); pkg=$(dpkg-deb -f "$f" Package)
      case "${src:-$pkg}" in mariadb*|mysql-[0-9]*) ;; *) continue ;; esac
      for v in $(apt-cache madison "$pkg" | cut -d"|" -f2); do
        apt-get download -qq "$pkg=$v"
      done
    done' >&2
  rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/ssh/ssh_host_"*
  install -m 0755 "$here/init.sh" "$root/usr/local/sbin/lab-init"
  mkdir -p "$root/root/.ssh"; chmod 700 "$root/root/.ssh"
  : > "$root/etc/resolv.conf"
  log "importing as $tag"
  tar -C "$root" -c . | docker import --change 'CMD ["/usr/local/sbin/lab-init"]' - "$tag" >&2
  echo "$tag"
}

ensure_keys() {
  mkdir -p "$LAB_DIR"; chmod 700 "$LAB_DIR"
  [ -f "$LAB_DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C dbfleet-lab -f "$LAB_DIR/id_ed25519"
}

ensure_network() {
  docker network inspect "$NET" >/dev/null 2>&1 || docker network create --subnet "$SUBNET" "$NET" >/dev/null
}

start_host() {
  local name=$1 octet=$2 tag=$3
  docker rm -f "$LAB_NAME-$name" >/dev/null 2>&1 || true
  # SYS_PTRACE: root may read /proc/PID/exe of another user's process, as on a VM. Debian's
  # init scripts stop a daemon that runs as its own user (prometheus's exporters) with
  # `start-stop-daemon --exec`, which reads it; Docker's default capabilities hide it.
  docker run -d --init --name "$LAB_NAME-$name" --hostname "$name" --network "$NET" \
    --ip "$PREFIX.$octet" --label dbfleet-lab="$LAB_NAME" --cap-add NET_ADMIN --cap-add SYS_PTRACE "$tag" >/dev/null
  docker exec -i "$LAB_NAME-$name" sh -c 'umask 077; mkdir -p /root/.ssh; cat > /root/.ssh/authorized_keys' < "$LAB_DIR/id_ed25519.pub"
}

# Host keys are generated when a host first boots; collect them so ssh checks strictly.
write_ssh_config() {
  local kh="$LAB_DIR/known_hosts" tmp; tmp=$(mktemp)
  for entry in "${HOSTS[@]}"; do
    local name=${entry%%:*} octet=${entry##*:} key=""
    docker inspect "$LAB_NAME-$name" >/dev/null 2>&1 || continue
    for _ in $(seq 1 50); do
      key=$(docker exec "$LAB_NAME-$name" cat /etc/ssh/ssh_host_ed25519_key.pub 2>/dev/null) && [ -n "$key" ] && break
      sleep 0.2
    done
    echo "$PREFIX.$octet $key" | cut -d' ' -f1-3 >> "$tmp"
  done
  mv "$tmp" "$kh"
  cat > "$LAB_DIR/ssh_config" <<CFG
Host $PREFIX.*
  User root
  IdentityFile $LAB_DIR/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $kh
  StrictHostKeyChecking yes
  LogLevel ERROR
CFG
}

wait_ssh() {
  for entry in "$@"; do
    local octet=${entry##*:}
    for _ in $(seq 1 100); do
      ssh -F "$LAB_DIR/ssh_config" -o ConnectTimeout=2 -o BatchMode=yes "$PREFIX.$octet" true 2>/dev/null && break
      sleep 0.2
    done
    ssh -F "$LAB_DIR/ssh_config" -o BatchMode=yes "$PREFIX.$octet" true
  done
}

# The offsite object storage of the lab: Garage, a real S3-compatible store (no S3 server is
# packaged in Debian, and nothing can be pulled), built from crates.io once per machine and
# cached outside the checkout like the image.
GARAGE_VERSION=2.5.0
TOOLS=${DBFLEET_LAB_TOOLS:-/var/cache/dbfleet-lab/tools}
OFFSITE_IP=$PREFIX.41
garage_bin() {
  local bin="$TOOLS/garage-$GARAGE_VERSION/bin/garage"
  if [ ! -x "$bin" ]; then
    log "building Garage $GARAGE_VERSION (once per machine; several minutes)"
    cargo install --quiet --locked "garage@$GARAGE_VERSION" --no-default-features --features bundled-libs,lmdb \
      --root "$TOOLS/garage-$GARAGE_VERSION" >&2
  fi
  echo "$bin"
}

start_offsite() {
  local tag=$1 bin; bin=$(garage_bin)
  docker rm -f "$LAB_NAME-offsite1" >/dev/null 2>&1 || true
  docker run -d --init --name "$LAB_NAME-offsite1" --hostname offsite1 --network "$NET" --ip "$OFFSITE_IP" \
    --label dbfleet-lab="$LAB_NAME" --entrypoint /bin/sleep "$tag" infinity >/dev/null
  docker cp "$bin" "$LAB_NAME-offsite1":/usr/local/bin/garage
  docker exec -i "$LAB_NAME-offsite1" sh -c 'umask 077; cat > /etc/garage.toml' <<CONF
metadata_dir = "/var/lib/garage/meta"
data_dir = "/var/lib/garage/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:3901"
rpc_public_addr = "127.0.0.1:3901"
rpc_secret = "$(openssl rand -hex 32 2>/dev/null || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "0.0.0.0:3900"
root_domain = ".s3.offsite1"
CONF
  docker exec -d "$LAB_NAME-offsite1" sh -c 'exec garage -c /etc/garage.toml server > /var/log/garage.log 2>&1'
  g() { docker exec "$LAB_NAME-offsite1" garage -c /etc/garage.toml "$@"; }
  local node=""
  for _ in $(seq 1 100); do node=$(g node id -q 2>/dev/null | cut -d@ -f1) && [ -n "$node" ] && break; sleep 0.2; done
  [ -n "$node" ] || { docker exec "$LAB_NAME-offsite1" cat /var/log/garage.log >&2; log "Garage did not start"; exit 1; }
  g layout assign -z lab -c 2G "$node" >/dev/null
  g layout apply --version 1 >/dev/null
  g bucket create dbfleet-offsite >/dev/null
  # An S3 key of the lab's own making, handed to the tests through a 0600 file.
  local id secret
  id=GK$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  g key import --yes -n dbfleet "$id" "$secret" >/dev/null
  g bucket allow --read --write --owner dbfleet-offsite --key dbfleet >/dev/null
  (umask 077; printf 'LAB_S3_ACCESS_KEY=%s\nLAB_S3_SECRET_KEY=%s\n' "$id" "$secret" > "$LAB_DIR/offsite.env")
  log "offsite: Garage at http://$OFFSITE_IP:3900, bucket dbfleet-offsite; key in $LAB_DIR/offsite.env"
}

find_entry() {
  for entry in "${HOSTS[@]}"; do [ "${entry%%:*}" = "$1" ] && { echo "$entry"; return; }; done
  log "unknown lab host $1"; exit 1
}

cmd=${1:-}
case "$cmd" in
  image) build_image >/dev/null ;;
  up)
    tag=$(build_image); ensure_keys; ensure_network
    for entry in "${HOSTS[@]}"; do start_host "${entry%%:*}" "${entry##*:}" "$tag"; done
    write_ssh_config; wait_ssh "${HOSTS[@]}"
    log "up: ${HOSTS[*]} on $SUBNET; ssh config at $LAB_DIR/ssh_config" ;;
  reset)
    shift; tag=$(build_image); ensure_keys; ensure_network; entries=()
    for n in "$@"; do e=$(find_entry "$n"); entries+=("$e"); start_host "${e%%:*}" "${e##*:}" "$tag"; done
    write_ssh_config; wait_ssh "${entries[@]}" ;;
  down)
    docker ps -aq --filter label=dbfleet-lab="$LAB_NAME" | xargs -r docker rm -f >/dev/null
    docker network rm "$NET" >/dev/null 2>&1 || true
    log "down" ;;
  tools) garage_bin >/dev/null ;;
  offsite) tag=$(build_image); ensure_keys; ensure_network; start_offsite "$tag" ;;
  status) docker ps -a --filter label=dbfleet-lab="$LAB_NAME" --format 'table {{.Names}}\t{{.Status}}\t{{.Image}}' ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
