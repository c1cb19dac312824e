#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Build the libFuzzer targets with clang and fuzz the fspf parser, the
# runtime's journal parser and the tag/key text parser for a bounded time, on scratch copies of the
# checked-in seed corpora (new inputs never land in the source tree). Exit status: 0 no crash, 1 crash or
# build failure, 2 usage.
#
#   tests/fuzz/run.sh BUILD_DIR [SECONDS] [-- LIBFUZZER_ARGS...]
#
# SECONDS defaults to 60. Crash reproducers are kept in BUILD_DIR/fuzz-artifacts/.
# (Do not point the fuzzer binary at tests/fuzz/corpus/ itself: libFuzzer
# writes every new input into the corpus directory it is given.)
set -eu

usage() {
	echo "usage: $0 BUILD_DIR [SECONDS] [-- LIBFUZZER_ARGS...]" >&2
	exit 2
}

[ $# -ge 1 ] || usage
build=$1
shift
secs=60
if [ $# -ge 1 ] && [ "$1" != "--" ]; then
	secs=$1
	shift
fi
case $secs in
'' | *[!0-9]*) usage ;;
esac
if [ $# -ge 1 ]; then
	[ "$1" = "--" ] || usage
	shift
fi

src=$(cd "$(dirname "$0")/../.." && pwd)

if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" "$src" -Dfuzz=enabled \
		-Db_sanitize=address,undefined -Db_lundef=false
else
	meson configure "$build" -Dfuzz=enabled
fi
ninja -C "$build" tests/fuzz/fuzz_fspf_decode tests/fuzz/fuzz_journal tests/fuzz/fuzz_hex

artifacts=$(cd "$build" && pwd)/fuzz-artifacts
mkdir -p "$artifacts"

# fuzz TARGET SECONDS MAX_LEN [LIBFUZZER_ARGS...]: on a scratch copy of its
# seeds. libFuzzer exits non-zero on a crash, a leak, a timeout or an OOM.
fuzz() {
	target=$1 t=$2 max_len=$3 status=0
	shift 3
	work=$(mktemp -d "${TMPDIR:-/tmp}/fshield-fuzz.XXXXXX")
	cp "$src/tests/fuzz/corpus/$target"/* "$work"/
	"$build/tests/fuzz/fuzz_$target" \
		-max_total_time="$t" \
		-timeout=10 \
		-rss_limit_mb=2048 \
		-max_len="$max_len" \
		-print_final_stats=1 \
		-artifact_prefix="$artifacts/$target-" \
		"$@" "$work" || status=$?
	rm -rf "$work"
	if [ "$status" -ne 0 ]; then
		echo "$0: fuzzing $target failed (status $status); reproducers in $artifacts" >&2
		exit 1
	fi
}

# Most of the time to the fspf parser, a quarter to the journal's, a
# tenth to the tag and key text's (small: it is one function).
journal_secs=$((secs / 4 > 0 ? secs / 4 : 1))
hex_secs=$((secs / 10 > 0 ? secs / 10 : 1))
fspf_secs=$((secs - journal_secs - hex_secs > 0 ? secs - journal_secs - hex_secs : 1))
fuzz fspf_decode "$fspf_secs" 8192 "$@"
fuzz journal "$journal_secs" 4096 "$@"
fuzz hex "$hex_secs" 256 "$@"
echo "$0: no crash in ${secs}s"
