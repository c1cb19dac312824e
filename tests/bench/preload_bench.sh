#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# preload_bench.sh: a sequential read of one encrypted file of BENCH_MB MiB
# by an unmodified program (dd, 1 MiB reads), measured in the same run as
#   plain     the plaintext on the host file system
#   preload   the file through libfshield-preload.so (LD_PRELOAD)
#   fuse      the file through `scone-fspf mount` (read-only), mounted
#             afresh for every run so that no plaintext stays cached
# Every stored file is in the page cache (read before every run), so the
# figures are what the shield costs, not the disk. Each run is done BENCH_REPEAT
# times, the median kept; it prints GB/s (10^9 bytes per second) and the
# ratios, never judges them. What was read is checked (cmp through the
# preload layer and the mount), untimed. Exit 1 only when something fails.
#
# Environment:
#   SCONE_FSPF_BIN        scone-fspf (default ./build/tools/scone-fspf)
#   FSHIELD_PRELOAD       libfshield-preload.so (default: ../fshield/ next
#                         to the tool's directory)
#   FSHIELD_PRELOAD_ASAN  the ASan runtime to preload first (sanitizer
#                         builds; meson sets it)
#   BENCH_MB              file size in MiB (default 1024)
#   BENCH_REPEAT          runs per column, median kept (default 3)
#   BENCH_DIR             where to make the temporary directory (default
#                         $TMPDIR or /tmp); needs 2 x BENCH_MB free
set -euo pipefail

BENCH_MB=${BENCH_MB:-1024}
BENCH_REPEAT=${BENCH_REPEAT:-3}
BIN=${SCONE_FSPF_BIN:-./build/tools/scone-fspf}
PRELOAD=${FSHIELD_PRELOAD:-$(dirname "$BIN")/../fshield/libfshield-preload.so}

die() { echo "preload_bench: error: $*" >&2; exit 1; }

case $BENCH_MB$BENCH_REPEAT in
*[!0-9]*) die "BENCH_MB and BENCH_REPEAT must be integers" ;;
esac
[ "$BENCH_MB" -ge 1 ] || die "BENCH_MB must be at least 1"
[ "$BENCH_REPEAT" -ge 1 ] || BENCH_REPEAT=1
[ -x "$BIN" ] || die "no scone-fspf at '$BIN' (set SCONE_FSPF_BIN)"
[ -f "$PRELOAD" ] || die "no preload library at '$PRELOAD' (set FSHIELD_PRELOAD)"
PRELOAD_LIBS=$PRELOAD
SAN_ENV=()
if [ -n "${FSHIELD_PRELOAD_ASAN:-}" ]; then
	PRELOAD_LIBS="$FSHIELD_PRELOAD_ASAN $PRELOAD"
	SAN_ENV=(ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0)
fi
HAVE_FUSE=0
[ -c /dev/fuse ] && command -v fusermount3 >/dev/null && HAVE_FUSE=1

T=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/preload-bench.XXXXXX")
DAEMON=
cleanup() {
	if [ -n "$DAEMON" ]; then
		fusermount3 -u "$T/mnt" 2>/dev/null || umount -l "$T/mnt" 2>/dev/null || true
		wait "$DAEMON" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT

# The tree: /bench encrypted, stored in $T/root/bench.
mkdir -p "$T/src" "$T/root" "$T/mnt"
head -c $((BENCH_MB << 20)) /dev/urandom >"$T/src/big.bin"
{
	"$BIN" create "$T/fspf"
	"$BIN" addr "$T/fspf" / --kernel / --not-protected
	"$BIN" addr "$T/fspf" /bench --encrypted --kernel /bench
	"$BIN" addf "$T/fspf" /bench "$T/src" "$T/root/bench"
	"$BIN" encrypt "$T/fspf" --key-file "$T/key"
} >"$T/build.log" 2>&1 || { cat "$T/build.log" >&2; die "protecting the file failed"; }
TAG=$(awk '/^Encrypted/ {print $9}' "$T/build.log")

shielded() {
	env "${SAN_ENV[@]}" LD_PRELOAD="$PRELOAD_LIBS" SCONE_FSPF="$T/fspf" \
		SCONE_FSPF_KEY_FILE="$T/key" SCONE_FSPF_TAG="$TAG" \
		FSHIELD_ROOT="$T/root" "$@"
}

mount_fuse() {
	"$BIN" mount "$T/fspf" "$T/mnt" --root "$T/root" -f \
		--key-file "$T/key" --expected-tag "$TAG" >>"$T/mount.log" 2>&1 &
	DAEMON=$!
	for _ in $(seq 200); do
		mountpoint -q "$T/mnt" && return 0
		kill -0 "$DAEMON" 2>/dev/null || break
		sleep 0.1
	done
	cat "$T/mount.log" >&2
	die "the mount did not come up"
}

unmount_fuse() {
	fusermount3 -u "$T/mnt" || die "fusermount3 -u failed"
	wait "$DAEMON" || die "the mount daemon failed"
	DAEMON=
}

# Seconds (with nanoseconds) that CMD... takes.
timed() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null 2>"$T/err" || { cat "$T/err" >&2; die "'$*' failed"; }
	t1=$(date +%s%N)
	echo "$(( (t1 - t0) / 1000 ))"
}

read_file() { dd if="$1" of=/dev/null bs=1M status=none; }

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# Untimed checks, and the page cache filled with every stored form.
cat "$T/src/big.bin" "$T/root/bench/big.bin" >/dev/null
shielded cmp /bench/big.bin "$T/src/big.bin" ||
	die "the preload layer read other bytes"
if [ "$HAVE_FUSE" -eq 1 ]; then
	mount_fuse
	cmp "$T/mnt/bench/big.bin" "$T/src/big.bin" || die "the mount read other bytes"
	unmount_fuse
fi

declare -A US MED
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)
for ((r = 1; r <= BENCH_REPEAT; r++)); do
	# Again before every run (untimed): on a shared machine another job
	# may drop the caches (mount_bench.sh does, as root).
	cat "$T/src/big.bin" "$T/root/bench/big.bin" >/dev/null
	US[plain]+="$(timed read_file "$T/src/big.bin") "
	US[preload]+="$(timed shielded dd if=/bench/big.bin of=/dev/null bs=1M status=none) "
	if [ "$HAVE_FUSE" -eq 1 ]; then
		mount_fuse
		US[fuse]+="$(timed read_file "$T/mnt/bench/big.bin") "
		unmount_fuse
	fi
done

bytes=$((BENCH_MB << 20))
gbps() { awk -v b="$bytes" -v us="$1" 'BEGIN {printf "%.2f", b / us / 1000}'; }
echo "sequential read of ${BENCH_MB} MiB (dd bs=1M), page cache warm, median of $BENCH_REPEAT:"
echo "  load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
for cfg in plain preload fuse; do
	if [ -z "${US[$cfg]:-}" ]; then
		printf '  %-8s n/a (no /dev/fuse)\n' "$cfg"
		continue
	fi
	MED[$cfg]=$(echo "${US[$cfg]}" | tr ' ' '\n' | grep . | median)
	printf '  %-8s %6s GB/s   (runs, us: %s)\n' "$cfg" "$(gbps "${MED[$cfg]}")" "${US[$cfg]% }"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b / a}'; }
echo "preload / plain: $(ratio "${MED[preload]}" "${MED[plain]}")"
if [ -n "${MED[fuse]:-}" ]; then
	echo "preload / fuse:  $(ratio "${MED[preload]}" "${MED[fuse]}")"
fi
