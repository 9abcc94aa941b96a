#!/usr/bin/env bash
# Builds dbfleet's Debian package with cargo-deb (issue 28): the binary in /usr/bin, its
# manual page and its bash, zsh and fish completions in Debian's places, rendered by the
# binary itself (`dbfleet man`, `dbfleet completions SHELL`) so they always match it.
#
#   scripts/deb.sh                  a release build (what ships), then the package
#   DEB_BIN=PATH scripts/deb.sh     the package of an already built binary, no build: the
#                                   lab test packages the debug binary `cargo test` built
#                                   (the same layout, without a release build's minutes)
#
# Prints the package's path. Needs cargo-deb (`cargo install --locked cargo-deb`).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || { echo "cargo-deb is missing: cargo install --locked cargo-deb" >&2; exit 1; }
if [ -z "${DEB_BIN:-}" ]; then
  cargo build --locked --release >&2
  target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  bin="$target/release/dbfleet"
else
  # cargo-deb takes the binary from <target>/release: a scratch target folder holds the
  # given one there, so the real target/release never holds a binary cargo did not build
  # (cargo would take it as up to date and a later release package would ship it).
  target=$(mktemp -d)
  trap 'rm -rf "$target"' EXIT
  mkdir -p "$target/release"
  cp "$DEB_BIN" "$target/release/dbfleet"
  bin="$target/release/dbfleet"
fi

# Where Cargo.toml's assets name them (relative to this folder).
assets=target/deb-assets
rm -rf "$assets"; mkdir -p "$assets"
"$bin" man | gzip -9n > "$assets/dbfleet.1.gz"
"$bin" completions bash > "$assets/dbfleet.bash"
"$bin" completions zsh > "$assets/_dbfleet"
"$bin" completions fish > "$assets/dbfleet.fish"
mkdir -p target/debian
CARGO_TARGET_DIR="$target" cargo deb --no-build --locked --output target/debian >&2
ls -t target/debian/dbfleet_*.deb | head -1
