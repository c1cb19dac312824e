#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# bench-smoke: run both benchmarks on tiny inputs and check that they finish
# and print their figures. No timing is judged here.
#   smoke.sh CRYPTO_BENCH ADDF_BENCH_SH   (SCONE_FSPF_BIN in the environment)
set -eu

crypto_bench=$1
addf_bench=$2
out=$(mktemp "${TMPDIR:-/tmp}/bench-smoke.XXXXXX")
trap 'rm -f "$out"' EXIT

fail() {
	echo "bench-smoke: $*" >&2
	cat "$out" >&2
	exit 1
}

"$crypto_bench" --seconds 0.03 >"$out" 2>&1 || fail "crypto_bench failed"
for want in 'fsh_aead_seal' 'fsh_aead_open' 'fsh_aead_mac (GMAC)' \
	'crypto_generichash keyed' 'fsh_nonce (OpenSSL RAND_bytes)' \
	'randombytes_buf' 'fspf_chunk_seal, encrypted, all threads' '^summary:'; do
	grep -q -- "$want" "$out" || fail "crypto_bench did not print '$want'"
done
grep -q 'MB/s' "$out" || fail "crypto_bench printed no MB/s figure"
echo "crypto_bench: ok"

BENCH_MB=${BENCH_MB:-8} BENCH_FILES=${BENCH_FILES:-200} BENCH_REPEAT=1 \
	"$addf_bench" >"$out" 2>&1 || fail "addf_bench.sh failed"
for want in '^  cp -r ' 'addf, encrypted' 'addf, authenticated' \
	'verify, encrypted' 'verify, authenticated' 'addf encrypted / cp -r' \
	'peak RSS of addf' 'small files (0..4 KiB)' '^addf_bench: done'; do
	grep -q -- "$want" "$out" || fail "addf_bench.sh did not print '$want'"
done
grep -q 'GB/s' "$out" || fail "addf_bench.sh printed no GB/s figure"
cat "$out"
echo "addf_bench.sh: ok"
