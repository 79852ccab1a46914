#!/usr/bin/env bash
# The report's browser test (tests/factory/test_report_browser.py) opens the page in Chromium,
# the Debian package, driven by playwright (a dev dependency) through its executable path, so
# no browser is downloaded at test time. Installs it when missing (apt, as root or through
# sudo) and checks that it starts headless.
set -euo pipefail
if ! command -v chromium >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
chromium --headless --no-sandbox --disable-gpu --dump-dom about:blank >/dev/null 2>&1 || {
  echo "chromium is installed but does not start headless here" >&2
  exit 1
}
