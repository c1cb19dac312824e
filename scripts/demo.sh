#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job on the bundled sample: install what is missing, build, protect
# scripts/sample/ as an image root (not-protected /, authenticated /usr/lib,
# encrypted /app), verify it, read a file back, then tamper and watch it fail.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
if [ ! -f "$top/build/build.ninja" ]; then
  meson setup "$top/build" "$top" -Dwerror=true >/dev/null
fi
meson compile -C "$top/build" >/dev/null
fspf="$top/build/tools/scone-fspf"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir rootfs
cp -a "$top/scripts/sample/." rootfs/
mv rootfs/app rootfs/app-plain
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step "$fspf" create fspf.pb
step "$fspf" addr fspf.pb / --kernel / --not-protected
step "$fspf" addr fspf.pb /usr/lib --authenticated --kernel /usr/lib
step "$fspf" addf fspf.pb /usr/lib rootfs/usr/lib
step "$fspf" addr fspf.pb /app --encrypted --kernel /app
step "$fspf" addf fspf.pb /app rootfs/app-plain rootfs/app
rm -rf rootfs/app-plain
printf '\n\033[1m$ %s\033[0m\n' "$fspf encrypt fspf.pb --key-file fspf.key > keytag"
"$fspf" encrypt fspf.pb --key-file fspf.key > keytag
cat keytag
tag=$(awk '{print $9}' keytag)
step "$fspf" show --tag fspf.pb
step "$fspf" show fspf.pb --key-file fspf.key
echo
echo "On disk, /app/config.yaml is ciphertext:"
od -A d -t x1 rootfs/app/config.yaml | head -n 3
step "$fspf" verify fspf.pb --root rootfs --key-file fspf.key --expected-tag "$tag"
step "$fspf" cat fspf.pb /app/config.yaml --root rootfs --key-file fspf.key

echo
echo "Now tamper: flip one byte of the encrypted config and one of the authenticated library."
printf 'X' | dd of=rootfs/app/config.yaml bs=1 seek=10 conv=notrunc status=none
printf 'X' | dd of=rootfs/usr/lib/demo/libdemo.so.1 bs=1 seek=5000 conv=notrunc status=none
printf '\n\033[1m$ %s\033[0m\n' "$fspf verify fspf.pb --root rootfs --key-file fspf.key --expected-tag $tag"
if "$fspf" verify fspf.pb --root rootfs --key-file fspf.key --expected-tag "$tag"; then
  echo "demo: FAILED: tampering was not detected" >&2
  exit 1
fi
printf '\n\033[1m$ %s\033[0m\n' "$fspf cat fspf.pb /app/config.yaml --root rootfs --key-file fspf.key"
if "$fspf" cat fspf.pb /app/config.yaml --root rootfs --key-file fspf.key; then
  echo "demo: FAILED: a tampered file was released" >&2
  exit 1
fi
echo
echo "demo: OK: the sample was protected, verified and read back, and tampering was caught."
