#!/usr/bin/env bash
# Builds the headless binary and the desktop app (debug profile, UI embedded) into the shared
# cargo target dir. Prints nothing else on success; used by run.sh and test.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sipdesk/target}"
cd "$root"
cargo build --locked -p sipdesk-core --bins
# The Tauri CLI runs the UI build (beforeBuildCommand) and embeds ui/dist into the binary.
npx --prefix "$root/ui" --no-install tauri build --debug --no-bundle --ci
