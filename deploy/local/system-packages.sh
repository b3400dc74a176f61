#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Debian's chromium for the
# console's browser test. Installed only where missing and where apt-get can run.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo -E apt-get update -qq
  sudo -E apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
  echo "chromium is not installed and cannot be installed here; the console browser test needs it" >&2
fi
