#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Build the libFuzzer targets with clang and fuzz the fspf parser for a
# bounded time, on a scratch copy of the checked-in seed corpus (new inputs
# never land in the source tree). Exit status: 0 no crash, 1 crash or
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
corpus=$src/tests/fuzz/corpus/fspf_decode

if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" "$src" -Dfuzz=enabled \
		-Db_sanitize=address,undefined -Db_lundef=false
else
	meson configure "$build" -Dfuzz=enabled
fi
meson compile -C "$build" tests/fuzz/fuzz_fspf_decode

work=$(mktemp -d "${TMPDIR:-/tmp}/fspf-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cp "$corpus"/* "$work"/
artifacts=$(cd "$build" && pwd)/fuzz-artifacts
mkdir -p "$artifacts"

# libFuzzer exits non-zero on a crash, a leak, a timeout or an OOM.
status=0
"$build/tests/fuzz/fuzz_fspf_decode" \
	-max_total_time="$secs" \
	-timeout=10 \
	-rss_limit_mb=2048 \
	-max_len=8192 \
	-print_final_stats=1 \
	-artifact_prefix="$artifacts/" \
	"$@" "$work" || status=$?
if [ "$status" -ne 0 ]; then
	echo "$0: the fuzzer failed (status $status); reproducers in $artifacts" >&2
	exit 1
fi
echo "$0: no crash in ${secs}s"
