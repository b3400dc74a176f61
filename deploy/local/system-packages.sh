#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Debian's chromium for the
# console's browser tests, and promtool (Debian's prometheus package) to check the alert
# rules. Installed only where missing and where apt-get can run.
set -euo pipefail
packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
if [ ${#packages[@]} = 0 ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo -E apt-get update -qq
  sudo -E apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
  echo "${packages[*]} not installed and cannot be installed here: the console browser tests and the alert rules check need them" >&2
fi
