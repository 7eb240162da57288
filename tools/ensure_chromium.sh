#!/usr/bin/env bash
# The browser tests drive Debian's chromium through Playwright (Python); install it if missing.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"; exit 0; fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v apt-get >/dev/null; then
  echo "ensure_chromium: /usr/bin/chromium is missing and apt-get is not available; install Chromium by hand." >&2; exit 1
fi
echo "Installing Debian's chromium for the browser tests..."
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >/dev/null
/usr/bin/chromium --version
