#!/usr/bin/env bash
# The code sandbox (filters/sandbox.py) runs programs under bubblewrap, a Debian package, not a
# Python one. Installs it when missing (apt, as root or through sudo) and checks that it can
# create the namespaces the sandbox needs.
set -euo pipefail
if ! command -v bwrap >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq bubblewrap >/dev/null
fi
bwrap --ro-bind / / --unshare-all --die-with-parent true || {
  echo "bubblewrap is installed but cannot create namespaces here (user namespaces off?)" >&2
  exit 1
}
