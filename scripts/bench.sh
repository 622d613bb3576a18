#!/usr/bin/env bash
# Benchmarks: print figures (never part of the tests). Builds the release binary first.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sipdesk/target}"
bash "$root/scripts/deps.sh" test
cd "$root"
cargo build --locked --release -p sipdesk-core --bins
export SIPDESK_BIN="$CARGO_TARGET_DIR/release/sipdesk"
cargo bench --locked -p sipdesk-e2e --bench registration
cargo bench --locked -p sipdesk-e2e --bench calls
# Media: a call's CPU and memory against baresip's (about 8 min: 3 rounds of 20 s calls,
# SIPDESK_BENCH_ROUNDS), and the latency of clicks through the media path (about 7 min).
cargo bench --locked -p sipdesk-e2e --bench media_cost
cargo bench --locked -p sipdesk-e2e --bench media_latency
# The AI voice agent handoff: voice-to-voice time, the handoff/takeback switch and the barge-in
# flush on the wire, and a handed-over call's CPU and memory (about 8 min: 20 handoff cycles in
# one call, SIPDESK_BENCH_CYCLES per kind; 3 rounds of two 20 s calls, SIPDESK_BENCH_ROUNDS).
cargo bench --locked -p sipdesk-e2e --bench ai_handoff
