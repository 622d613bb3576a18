#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, and opens SipDesk.
# Without a display (a server, CI) it opens the window on a private Xvfb display instead.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sipdesk/target}"
bash "$root/scripts/deps.sh" app
bash "$root/scripts/build-app.sh"
app="$CARGO_TARGET_DIR/debug/sipdesk-app"
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  command -v xvfb-run >/dev/null || bash "$root/scripts/deps.sh" test
  echo "run: no display found; opening SipDesk on a virtual X display (xvfb-run)"
  exec xvfb-run -a -s "-screen 0 1280x800x24" "$app" "$@"
fi
exec "$app" "$@"
