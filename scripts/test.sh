#!/usr/bin/env bash
# The README's test command: installs what is missing, builds everything, runs every test
# (unit, CLI contract, and the UI in its real WebKit view under Xvfb).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sipdesk/target}"
bash "$root/scripts/deps.sh" test
bash "$root/scripts/build-app.sh"
export SIPDESK_BIN="$CARGO_TARGET_DIR/debug/sipdesk"
export SIPDESK_APP_BIN="$CARGO_TARGET_DIR/debug/sipdesk-app"
cd "$root"
# The benches are not run here, but they must keep compiling against the core.
cargo check --locked --profile dev -p sipdesk-e2e --benches
log="$CARGO_TARGET_DIR/test-output.log"
set +e
cargo test --locked --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One plain closing line over every test binary (cargo's own last line is a doc-test count).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log" | tee "$CARGO_TARGET_DIR/test-summary.txt"
exit "$status"
