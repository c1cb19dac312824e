#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install the Debian packages fshield needs to build and test, if missing.
set -euo pipefail

PACKAGES=(
  meson ninja-build pkg-config gcc libc6-dev clang libclang-rt-14-dev
  libssl-dev libsodium-dev libfuse3-dev fuse3 libb64-dev
  man-db groff-base python3
  fio stress-ng gocryptfs g++ sqlite3 strace
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing: ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >&2
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
