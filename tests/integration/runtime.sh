#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# libfshield (read-only) through fshield_probe: verified reads, listings
# from the fspf, refusals at open. Usage: runtime.sh CASE | --list
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${FSHIELD_PROBE_BIN:?set FSHIELD_PROBE_BIN}"

probe() { # OP PATH, with the sample's key and tag
	run env FSHIELD_PROBE_KEY="$(cat "$KEY")" FSHIELD_PROBE_TAG="$TAG" \
		"$FSHIELD_PROBE_BIN" "$FSPF" "$ROOT" "$@"
}

# Every protected file reads back as its plaintext, whole and in odd reads.
case_reads_plaintext() {
	make_sample
	local f rel
	while IFS= read -r f; do
		rel=${f#"$SRC"}
		probe cat "$rel"
		expect_rc 0
		cmp -s "$OUT" "$f" || fail "cat $rel differs from its plaintext"
		probe preads "$rel"
		expect_rc 0
		cmp -s "$OUT" "$f" || fail "odd-sized reads of $rel differ"
	done < <(find "$SRC/app" "$SRC/usr/lib" -type f)
}

# Several threads reading one open file at once see the same bytes.
case_threads_share_a_file() {
	make_sample
	probe mtcheck /app/data.bin
	expect_rc 0
	probe mtcheck /usr/lib/liba.so
	expect_rc 0
}

# A protected directory lists what the fspf records, not what is on disk.
case_listing_from_fspf() {
	make_sample
	echo intruder >"$ROOT/app/intruder"
	probe ls /app
	expect_rc 0
	expect_out ' data\.bin$'
	expect_not_any 'intruder'
	probe stat /app/intruder
	expect_rc 1
	expect_err 'No such file'
	probe readlink /app/current
	expect_rc 0
	expect_out '^data\.bin$'
	# the way to every region is listed, and "/" passes through
	probe ls /
	expect_rc 0
	expect_out '^d [0-7]+ [0-9]+ app$'
	probe stat /etc
	expect_rc 0
}

# A tampered chunk gives EIO, never its bytes; the log names file and chunk.
case_tampered_chunk_eio() {
	make_sample
	local p=/app/data.bin
	flip_byte "$ROOT$p" $((CHUNK + 7))
	probe cat "$p"
	expect_rc 1
	expect_err 'Input/output error'
	expect_err "Verification of file chunk 1 \\(bytes 4096 to 8191\\) of file $(re "$p") failed"
	expect_absent "$(marker data 1)"
	flip_byte "$ROOT/usr/lib/liba.so" 5
	probe cat /usr/lib/liba.so
	expect_rc 1
	expect_absent "$(marker liba 0)"
}

# Truncated or replaced files fail at open.
case_truncated_file_eio() {
	make_sample
	truncate -s $((CHUNK * 2)) "$ROOT/app/data.bin"
	probe cat /app/data.bin
	expect_rc 1
	expect_err 'Input/output error'
}

# Refusals at open: stale tag, wrong key, no tag without saying so.
case_refusals() {
	make_sample
	run env FSHIELD_PROBE_KEY="$(cat "$KEY")" FSHIELD_PROBE_TAG="$(printf '%032d' 0)" \
		"$FSHIELD_PROBE_BIN" "$FSPF" "$ROOT" stat /app
	expect_rc 1
	expect_err 'rollback'
	run env FSHIELD_PROBE_KEY="$(printf '%063d1' 0)" FSHIELD_PROBE_TAG="$TAG" \
		"$FSHIELD_PROBE_BIN" "$FSPF" "$ROOT" stat /app
	expect_rc 1
	expect_err 'wrong key'
	run env FSHIELD_PROBE_KEY="$(cat "$KEY")" \
		"$FSHIELD_PROBE_BIN" "$FSPF" "$ROOT" stat /app
	expect_rc 1
	expect_err 'Invalid argument'
	run env FSHIELD_PROBE_KEY="$(cat "$KEY")" FSHIELD_PROBE_TAG=none \
		"$FSHIELD_PROBE_BIN" "$FSPF" "$ROOT" stat /app
	expect_rc 0
	expect_err 'rollback to an older state cannot be detected'
}

run_case runtime "$@"
