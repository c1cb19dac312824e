#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# sqlite_bench.sh: sqlite3 inserts into a new database, measured in the
# same run in two places:
#   plain     a directory of the host file system
#   preload   an encrypted region through libfshield-preload.so with
#             SCONE_FSPF_MUTABLE=1 (every sqlite fsync and the close of
#             every journal commit the volume: a new fspf and tag)
# Two workloads, each a fresh database and one sqlite3 process:
#   txn       BENCH_ROWS rows in transactions of BENCH_TXN_ROWS
#   bulk      BENCH_BULK_ROWS rows in one transaction
# Each is done BENCH_REPEAT times, the median kept; it prints seconds,
# rows per second and the ratios preload / plain (of throughput: 1.00 is
# as fast as plain files), never judges them. Each shielded database is
# checked (integrity_check and the row count, reopened at the new tag)
# and removed again, untimed, so that every run starts from the same
# volume, as the plain one starts from the same directory. Exit 1 only
# when something fails. Default rollback journal mode and
# synchronous=FULL, as sqlite3 ships.
#
# Every commit re-seals the whole fspf, whose size grows with the chunks
# of every file in the volume (28 bytes per chunk): BENCH_BESIDE_MB puts
# a file of that many MiB in the region first, to show what that costs.
#
# Environment:
#   SCONE_FSPF_BIN        scone-fspf (default ./build/tools/scone-fspf)
#   FSHIELD_PRELOAD       libfshield-preload.so (default: ../fshield/ next
#                         to the tool's directory)
#   FSHIELD_PRELOAD_ASAN  the ASan runtime to preload first (sanitizer
#                         builds; meson sets it)
#   BENCH_ROWS            rows of the txn workload (default 10000)
#   BENCH_TXN_ROWS        rows per transaction (default 100)
#   BENCH_BULK_ROWS       rows of the bulk workload (default 100000)
#   BENCH_REPEAT          runs per column, median kept (default 3)
#   BENCH_BESIDE_MB       MiB of another file in the region (default 0)
#   BENCH_DIR             where to make the temporary directory (default
#                         $TMPDIR or /tmp)
set -euo pipefail

BENCH_ROWS=${BENCH_ROWS:-10000}
BENCH_TXN_ROWS=${BENCH_TXN_ROWS:-100}
BENCH_BULK_ROWS=${BENCH_BULK_ROWS:-100000}
BENCH_REPEAT=${BENCH_REPEAT:-3}
BENCH_BESIDE_MB=${BENCH_BESIDE_MB:-0}
BIN=${SCONE_FSPF_BIN:-./build/tools/scone-fspf}
PRELOAD=${FSHIELD_PRELOAD:-$(dirname "$BIN")/../fshield/libfshield-preload.so}

die() { echo "sqlite_bench: error: $*" >&2; exit 1; }

case $BENCH_ROWS$BENCH_TXN_ROWS$BENCH_BULK_ROWS$BENCH_REPEAT$BENCH_BESIDE_MB in
*[!0-9]*) die "BENCH_ROWS, BENCH_TXN_ROWS, BENCH_BULK_ROWS, BENCH_REPEAT and BENCH_BESIDE_MB must be integers" ;;
esac
[ "$BENCH_TXN_ROWS" -ge 1 ] || die "BENCH_TXN_ROWS must be at least 1"
[ "$BENCH_REPEAT" -ge 1 ] || BENCH_REPEAT=1
[ -x "$BIN" ] || die "no scone-fspf at '$BIN' (set SCONE_FSPF_BIN)"
[ -f "$PRELOAD" ] || die "no preload library at '$PRELOAD' (set FSHIELD_PRELOAD)"
command -v sqlite3 >/dev/null || die "no sqlite3 (scripts/deps.sh installs it)"
PRELOAD_LIBS=$PRELOAD
SAN_ENV=()
if [ -n "${FSHIELD_PRELOAD_ASAN:-}" ]; then
	PRELOAD_LIBS="$FSHIELD_PRELOAD_ASAN $PRELOAD"
	SAN_ENV=(ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0)
fi

T=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/sqlite-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT

# The tree: /bench encrypted (empty), stored in $T/root/bench.
mkdir -p "$T/src" "$T/root/bench" "$T/plain"
{
	"$BIN" create "$T/fspf"
	"$BIN" addr "$T/fspf" / --kernel / --not-protected
	"$BIN" addr "$T/fspf" /bench --encrypted --kernel /bench
	"$BIN" addf "$T/fspf" /bench "$T/src" "$T/root/bench"
	"$BIN" encrypt "$T/fspf" --key-file "$T/key"
} >"$T/build.log" 2>&1 || { cat "$T/build.log" >&2; die "protecting the region failed"; }
awk '/^Encrypted/ {print $9}' "$T/build.log" >"$T/tag"

# CMD... writable under the shield; the expected tag from the tag file,
# which receives the new one.
shielded() {
	env "${SAN_ENV[@]}" LD_PRELOAD="$PRELOAD_LIBS" SCONE_FSPF="$T/fspf" \
		SCONE_FSPF_KEY_FILE="$T/key" SCONE_FSPF_TAG_FILE="$T/tag" \
		SCONE_FSPF_MUTABLE=1 FSHIELD_ROOT="$T/root" "$@"
}

# The SQL of the workloads.
{
	echo 'CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, s TEXT);'
	for ((i = 0; i < BENCH_ROWS; i++)); do
		((i % BENCH_TXN_ROWS)) || echo 'BEGIN;'
		echo "INSERT INTO t (v, s) VALUES ($i, 'row $i of the transactions workload');"
		(((i + 1) % BENCH_TXN_ROWS && i + 1 < BENCH_ROWS)) || echo 'COMMIT;'
	done
} >"$T/txn.sql"
{
	echo 'CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, s TEXT);'
	echo 'BEGIN;'
	for ((i = 0; i < BENCH_BULK_ROWS; i++)); do
		echo "INSERT INTO t (v, s) VALUES ($i, 'row $i of the bulk workload');"
	done
	echo 'COMMIT;'
} >"$T/bulk.sql"

# Microseconds that CMD... takes.
timed() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null 2>"$T/err" || { cat "$T/err" >&2; die "'$*' failed"; }
	[ ! -s "$T/err" ] || { cat "$T/err" >&2; die "'$*' printed errors"; }
	t1=$(date +%s%N)
	echo "$(( (t1 - t0) / 1000 ))"
}

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# check DB ROWS: integrity and count of the shielded database DB.
check() {
	local got
	got=$(shielded sqlite3 -readonly "$1" 'PRAGMA integrity_check; SELECT count(*) FROM t;') ||
		die "reopening $1 failed"
	[ "$got" = "$(printf 'ok\n%s' "$2")" ] || die "$1 differs: $got"
}

rows() { [ "$1" = txn ] && echo "$BENCH_ROWS" || echo "$BENCH_BULK_ROWS"; }

if [ "$BENCH_BESIDE_MB" -gt 0 ]; then
	shielded dd if=/dev/zero of=/bench/beside.bin bs=1M count="$BENCH_BESIDE_MB" \
		status=none || die "writing /bench/beside.bin failed"
fi

declare -A US MED
for ((r = 1; r <= BENCH_REPEAT; r++)); do
	for w in txn bulk; do
		rm -f "$T/plain/$w.db"
		US[$w-plain]+="$(timed sqlite3 -bail "$T/plain/$w.db" ".read $T/$w.sql") "
		US[$w-preload]+="$(timed shielded sqlite3 -bail "/bench/$w.db" ".read $T/$w.sql") "
		check "/bench/$w.db" "$(rows $w)"
		shielded rm "/bench/$w.db" || die "removing /bench/$w.db failed"
	done
done
"$BIN" verify "$T/fspf" --root "$T/root" --tag-file "$T/tag" --key-file "$T/key" \
	>"$T/verify.log" 2>&1 || { cat "$T/verify.log" >&2; die "verify at the last tag failed"; }

echo "sqlite3 inserts, median of $BENCH_REPEAT (seconds, rows/s)$([ "$BENCH_BESIDE_MB" = 0 ] ||
	echo ", beside a file of $BENCH_BESIDE_MB MiB in the region"):"
for w in txn bulk; do
	case $w in
	txn) echo "  txn: $BENCH_ROWS rows in transactions of $BENCH_TXN_ROWS" ;;
	bulk) echo "  bulk: $BENCH_BULK_ROWS rows in one transaction" ;;
	esac
	for cfg in plain preload; do
		MED[$w-$cfg]=$(echo "${US[$w-$cfg]}" | tr ' ' '\n' | grep . | median)
		awk -v us="${MED[$w-$cfg]}" -v n="$(rows $w)" -v c="$cfg" -v runs="${US[$w-$cfg]% }" \
			'BEGIN {printf "    %-8s %8.3f s %10.0f rows/s   (runs, us: %s)\n", c, us / 1e6, n / (us / 1e6), runs}'
	done
	awk -v a="${MED[$w-preload]}" -v b="${MED[$w-plain]}" \
		'BEGIN {printf "    preload / plain (throughput): %.2f\n", b / a}'
done
