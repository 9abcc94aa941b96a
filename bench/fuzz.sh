#!/usr/bin/env bash
# Fuzzing (on demand, not in CI; issue 11): each cargo-fuzz target for SECONDS (default
# 600), seeded with the repository's inventories and fixtures (inventory target) or its
# templates (template target). libFuzzer stops at the first panic, hang over 10 s or
# allocation over 2 GiB and saves the input under fuzz/artifacts/TARGET/: make each one a
# fixture in tests/fixtures/bad/ with a snapshot test (tests/cli_errors.rs), then fix it.
# Prints per target: runs, seconds, and what ended it.
#
#   bench/fuzz.sh 600
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
mkdir -p corpus/inventory corpus/template
cp ../inventories/lab.yml ../tests/fixtures/good/*.yml ../tests/fixtures/bad/*.yml corpus/inventory/
cp ../templates/*.j2 corpus/template/
cargo +nightly fuzz build -O >/dev/null
printf '%-10s %12s %9s  %s\n' target runs seconds result
status=0
for t in inventory template; do
  log=$(mktemp)
  if cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -timeout=10 \
       -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 >"$log" 2>&1; then
    result="0 panics, 0 timeouts, 0 out-of-memory"
  else
    status=1
    result="FOUND: $(grep -m1 -oE 'deadly signal|panicked at [^,]*|ERROR: libFuzzer: [a-z-]+' "$log" || echo 'see log') → $(grep -m1 -oE 'artifacts/[^ ]+' "$log" || true)"
    cp "$log" "artifacts-$t.log"
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  took=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE 'in [0-9]+' | grep -oE '[0-9]+' | tail -1)
  printf '%-10s %12s %9s  %s\n' "$t" "${runs:-?}" "${took:-$secs}" "$result"
  rm -f "$log"
done
exit "$status"
