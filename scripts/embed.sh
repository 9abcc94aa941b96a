#!/usr/bin/env bash
# Regenerates src/playbook/embedded.rs from playbooks/ and templates/ (run after adding a
# file to either folder; tests/offline.rs checks that none is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo '//! The repository'"'"'s `playbooks/` and `templates/`, compiled in. A test checks that every'
  echo '//! file of those folders is listed here (regenerate with `scripts/embed.sh`).'
  echo
  for dir in playbooks templates; do
    upper=$(echo "$dir" | tr a-z A-Z)
    echo "pub const $upper: &[(&str, &str)] = &["
    for f in $(ls "$dir" | sort); do
      echo "    (\"$f\", include_str!(\"../../$dir/$f\")),"
    done
    echo "];"
    [ "$dir" = playbooks ] && echo
  done
} > src/playbook/embedded.rs
rustfmt --edition 2024 src/playbook/embedded.rs
