#!/usr/bin/env bash
# Installs what SipDesk needs on Debian 12, only what is missing: apt packages, then the UI's
# npm packages. Sourced by run.sh and test.sh; `deps.sh app` or `deps.sh test` picks the set.
set -euo pipefail

APP_PACKAGES=(build-essential pkg-config libssl-dev libdbus-1-dev libwebkit2gtk-4.1-dev libgtk-3-dev
  librsvg2-dev libasound2-dev libopus-dev fonts-noto-cjk
  libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us flite1-dev)
TEST_PACKAGES=(xvfb x11-utils webkit2gtk-driver dbus-daemon gnome-keyring kamailio sip-tester baresip
  pipewire pipewire-bin pipewire-pulse wireplumber dbus dbus-bin pulseaudio-utils libasound2-plugins linphone-cli)

want=("${APP_PACKAGES[@]}")
[ "${1:-app}" = test ] && want+=("${TEST_PACKAGES[@]}")
command -v npm >/dev/null 2>&1 || want+=(nodejs npm)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "deps: cargo not found. Install Rust 1.90 or newer (https://rustup.rs), then run this again." >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
  echo "deps: Node $node_major is too old; the UI build needs Node 18 or newer." >&2
  exit 1
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Reinstall the UI's packages when the lock file changed since the last install.
if [ ! -f "$root/ui/node_modules/.package-lock.json" ] || [ "$root/ui/package-lock.json" -nt "$root/ui/node_modules/.package-lock.json" ]; then
  echo "deps: npm ci (ui)"
  npm ci --prefix "$root/ui" --no-audit --no-fund
fi
