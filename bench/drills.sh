#!/usr/bin/env bash
# The long lab drills (on demand and before a release, not in CI): the lab tests marked
# `#[ignore = "long drill, …"]` in tests/lab/, run with the same harness, labs and checks
# as `cargo test`; they pass or fail like any test. CI runs every other lab test: these
# five held the machine about 3,000 s of its 90 minutes (docs/src/tests.md says which and
# why), and each proves a feature another CI test covers in a shorter form.
#   bench/drills.sh                 all of them
#   bench/drills.sh offsite_copy    the ones whose name contains a filter
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --locked --test lab -- --ignored --nocapture "$@"
