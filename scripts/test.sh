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
cargo test --locked --workspace --no-fail-fast "$@"
