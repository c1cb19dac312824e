# SPDX-License-Identifier: Apache-2.0
# Shared helpers of the scone-fspf integration tests. Source it from a test
# script (bash, set -euo pipefail); it makes a private workspace $W that is
# removed on exit, and defines:
#   run CMD...             run CMD, keep stdout in $OUT, stderr in $ERR,
#                          exit status in $RC (never aborts the test)
#   fspf ARGS...           the scone-fspf under test
#   fail MSG               print MSG and the last outputs, exit 1
#   expect_rc N            $RC must be N
#   expect_out/err/any RE  extended regex RE must match a line of stdout /
#                          stderr / either
#   expect_not_any RE      RE must match no line of stdout or stderr
#   expect_absent STR      fixed string STR must appear in neither output
#   make_sample            build and protect the sample tree (see below)
#   verify_sample [ARGS]   run verify on the sample (with its key)
#   cat_sample PATH [ARGS] run cat of PATH on the sample (with its key)
#   flip_byte FILE OFF     flip the lowest bit of byte OFF of FILE
#   marker NAME IDX        the marker string that fills chunk IDX of NAME
#   re STR                 STR escaped for use in an extended regex
#   on_exit FN             run FN at exit, before the workspace is removed
#
# The sample (make_sample), chunk size 4096 everywhere:
#   region /          not-protected, kernel /
#   region /usr/lib   authenticated, kernel /usr/lib, addf'ed with a plain
#                     copy into $ROOT/usr/lib
#   region /app       encrypted, kernel /app, ciphertext in $ROOT/app
#   files: liba.so, libb.so, data.bin, other.bin: 13288 bytes each (chunks
#   0..2 full, chunk 3 partial: 1000 bytes); an empty file in each region;
#   small files in a subdirectory (/usr/lib/sub, /app/conf); a symlink in
#   each region. Every chunk of every file is filled with its own marker
#   string (marker NAME IDX), so a test can grep that a chunk's plaintext did
#   not leak. The plaintext stays in $SRC (same layout as $ROOT).
#   The fspf ($FSPF) is encrypted, its key in $KEY (0600), its tag in $TAG.

: "${SCONE_FSPF_BIN:?set SCONE_FSPF_BIN to the scone-fspf binary}"
BIN=$SCONE_FSPF_BIN
[ -x "$BIN" ] || { echo "not executable: $BIN" >&2; exit 1; }
export SCONE_FSPF_NO_PROGRESS=1
unset SCONE_FSPF_KEY SCONE_FSPF_TAG SCONE_FSPF
export LC_ALL=C

W=$(mktemp -d "${TMPDIR:-/tmp}/fshield-integ.XXXXXX")
# on_exit FN: run FN at exit, before $W goes (a script unmounts there).
EXIT_HOOKS=()
on_exit() { EXIT_HOOKS+=("$1"); }
lib_exit() {
	local h
	for h in "${EXIT_HOOKS[@]}"; do
		"$h" || true
	done
	chmod -R u+rwX "$W" 2>/dev/null || true
	rm -rf "$W"
}
trap lib_exit EXIT
cd "$W"

CHUNK=4096
BIG_SIZE=13288 # 3 full chunks and a partial one of 1000 bytes
SRC=$W/src
ROOT=$W/rootfs
FSPF=$W/fspf.pb
KEY=$W/fspf.key
TAG=

# The outputs of the last run, kept apart from the files a test makes.
mkdir "$W/.run"
OUT=$W/.run/stdout
ERR=$W/.run/stderr
RC=0
run() {
	set +e
	"$@" >"$OUT" 2>"$ERR"
	RC=$?
	set -e
	check_sanitizers "$ERR"
}

# In a sanitizer build, a report fails the test even when the exit status
# happens to be the expected one.
check_sanitizers() {
	grep -aEq 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: ' "$1" ||
		return 0
	if ! grep -aEq 'ERROR: (Address|Memory|Thread)Sanitizer|runtime error: ' "$1" &&
		only_libfuse_leaks "$1"; then
		echo "note: LeakSanitizer reported only libfuse's own allocations (a directory handle whose release the kernel dropped at the unmount)" >&2
		return 0
	fi
	cat "$1" >&2
	echo "FAIL: sanitizer report" >&2
	exit 1
}

# True when every leak in LeakSanitizer report $1 was allocated by libfuse
# itself (frame #1, the caller of malloc, in libfuse3.so): never ours.
only_libfuse_leaks() {
	awk '/leak of .* allocated from:/ { want = 1; next }
		want && /^ *#1 / { n++; if ($0 ~ /libfuse3\.so/) ok++; want = 0 }
		END { exit !(n > 0 && ok == n) }' "$1"
}

fspf() { "$BIN" "$@"; }

fail() {
	{
		echo "FAIL: $*"
		if [ -f "$OUT" ]; then
			echo "--- last stdout (exit $RC):"
			head -c 4000 "$OUT" | cat -v
		fi
		if [ -f "$ERR" ]; then
			echo "--- last stderr:"
			head -c 4000 "$ERR" | cat -v
		fi
	} >&2
	exit 1
}

expect_rc() {
	[ "$RC" -eq "$1" ] || fail "expected exit status $1, got $RC"
}

expect_out() {
	grep -aEq -- "$1" "$OUT" || fail "stdout does not match /$1/"
}

expect_err() {
	grep -aEq -- "$1" "$ERR" || fail "stderr does not match /$1/"
}

expect_any() {
	grep -aEq -- "$1" "$OUT" "$ERR" || fail "no output matches /$1/"
}

expect_not_any() {
	if grep -aEq -- "$1" "$OUT" "$ERR"; then
		fail "output matches /$1/ but must not"
	fi
}

expect_absent() {
	if grep -aFq -- "$1" "$OUT" "$ERR"; then
		fail "plaintext '$1' leaked into the output"
	fi
}

# An error line in the CLI's format that names @1 (a fixed string).
expect_error_naming() {
	grep -aq '^scone-fspf: error: ' "$ERR" ||
		fail "no 'scone-fspf: error:' line on stderr"
	grep -aF -- "$1" "$ERR" | grep -aq '^scone-fspf: error: ' ||
		fail "the error line does not name '$1'"
}

# FUSE tests: skip (77) only when the machine has no /dev/fuse.
need_fuse() {
	if [ ! -c /dev/fuse ]; then
		echo "SKIP: /dev/fuse is missing on this machine"
		exit 77
	fi
}

# Whether process @1 still runs (a zombie has ended).
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $st != Z* ]]
}

# Wait (at most 20 s) until $MNT is mounted; fail at once if the daemon
# $DPID (when set) ends first, showing its log $DLOG.
wait_mounted() {
	local i
	for ((i = 0; i < 200; i++)); do
		mountpoint -q "$MNT" && return 0
		if [ -n "$DPID" ] && ! alive "$DPID"; then
			cat "$DLOG" >&2
			fail "the daemon ended before the mount was ready ($DLOG)"
		fi
		sleep 0.1
	done
	fail "$MNT not mounted after 20 s"
}

# fusermount3 -u @1, retried for a while when the mount is busy: on a
# shared machine another process (an indexer, a find) may be passing by.
unmount_busy_retry() {
	local i
	for ((i = 0; i < 50; i++)); do
		fusermount3 -u "$1" 2>"$W/unmount.err" && return 0
		grep -q 'busy' "$W/unmount.err" || break
		sleep 0.1
	done
	cat "$W/unmount.err" >&2
	return 1
}

marker() { printf 'MK_%s_c%d_' "$1" "$2"; }

# make_chunked FILE NAME SIZE [CHUNK]: each chunk filled with its own marker.
make_chunked() {
	local file=$1 name=$2 size=$3 cs=${4:-$CHUNK}
	local idx=0 off=0 len m s
	: >"$file"
	while [ "$off" -lt "$size" ]; do
		len=$((size - off < cs ? size - off : cs))
		m=$(marker "$name" "$idx")
		s=$(printf '%*s' $((len / ${#m} + 1)) '')
		s=${s// /$m}
		printf '%s' "${s:0:len}" >>"$file"
		off=$((off + len))
		idx=$((idx + 1))
	done
	[ "$(stat -c %s "$file")" -eq "$size" ] || fail "make_chunked $file"
}

# The plaintext sample tree in $SRC.
make_sample_source() {
	mkdir -p "$SRC/etc" "$SRC/usr/lib/sub" "$SRC/app/conf"
	echo "sample-host" >"$SRC/etc/hostname"
	make_chunked "$SRC/usr/lib/liba.so" liba "$BIG_SIZE"
	make_chunked "$SRC/usr/lib/libb.so" libb "$BIG_SIZE"
	: >"$SRC/usr/lib/empty.so"
	make_chunked "$SRC/usr/lib/sub/notes.txt" notes 300
	ln -s liba.so "$SRC/usr/lib/liba.so.1"
	make_chunked "$SRC/app/data.bin" data "$BIG_SIZE"
	make_chunked "$SRC/app/other.bin" other "$BIG_SIZE"
	: >"$SRC/app/empty"
	make_chunked "$SRC/app/conf/config.yaml" config 500
	make_chunked "$SRC/app/conf/secret.txt" secret 500
	ln -s data.bin "$SRC/app/current"
	chmod 0640 "$SRC/app/conf/secret.txt"
}

# The protected sample: $ROOT, $FSPF, $KEY, $TAG (see the header).
make_sample() {
	make_sample_source
	mkdir -p "$ROOT/usr"
	cp -a "$SRC/etc" "$ROOT/"
	{
		fspf create "$FSPF"
		fspf addr "$FSPF" / --kernel / --not-protected
		fspf addr "$FSPF" /usr/lib --authenticated --kernel /usr/lib
		fspf addf "$FSPF" /usr/lib "$SRC/usr/lib" "$ROOT/usr/lib"
		fspf addr "$FSPF" /app --encrypted --kernel /app
		fspf addf "$FSPF" /app "$SRC/app" "$ROOT/app"
		fspf encrypt "$FSPF" --key-file "$KEY"
	} >"$W/build.log" 2>"$W/build.err" || {
		cat "$W/build.log" "$W/build.err" >&2
		fail "building the sample failed"
	}
	check_sanitizers "$W/build.err"
	TAG=$(awk '/^Encrypted/ {print $9}' "$W/build.log")
	[[ $TAG =~ ^[0-9a-f]{32}$ ]] || fail "no tag in the encrypt line"
	cmp -s "$SRC/app/data.bin" "$ROOT/app/data.bin" &&
		fail "the encrypted region holds plaintext"
	return 0
}

# @1 as an extended regex matching itself literally.
re() {
	# shellcheck disable=SC2016
	printf '%s' "$1" | sed 's/[][\.*^$()+?{}|/]/\\&/g'
}

# shellcheck disable=SC2120
verify_sample() {
	run fspf verify "$FSPF" --root "$ROOT" --key-file "$KEY" "$@"
}

cat_sample() {
	local path=$1
	shift
	run fspf cat "$FSPF" "$path" --root "$ROOT" --key-file "$KEY" "$@"
}

# The untampered sample must verify; call before tampering.
expect_sample_ok() {
	verify_sample
	expect_rc 0
	expect_out '^Verified .*: OK$'
}

flip_byte() {
	local file=$1 off=$2 b
	b=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')
	[ -n "$b" ] || fail "flip_byte: no byte $off in $file"
	# shellcheck disable=SC2059
	printf "\\$(printf %03o $((b ^ 1)))" |
		dd of="$file" bs=1 seek="$off" conv=notrunc status=none
}

# Temporary files a failed command might leave behind below @1.
leftover_temps() {
	find "$1" \( -name '*.tmp' -o -name '*.tmp.*' -o -name '.fshield-*' \) -print
}

# The end of a test script: run case_ARG (or --list the cases).
run_case() {
	local script=$1 fn
	shift
	[ $# -eq 1 ] || { echo "usage: $script.sh CASE | --list" >&2; exit 2; }
	if [ "$1" = --list ]; then
		declare -F | awk '$3 ~ /^case_/ {sub(/^case_/, "", $3); gsub(/_/, "-", $3); print $3}'
		exit 0
	fi
	fn=case_${1//-/_}
	declare -F "$fn" >/dev/null || { echo "unknown case '$1'" >&2; exit 2; }
	"$fn"
	echo "ok: $script $1"
}
