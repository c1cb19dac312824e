#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A larger round trip: 2,000 small files of random sizes (0..20000 bytes), a
# 50 MiB file and a file with a partial last chunk just past one 8 MiB work
# segment, protected into two encrypted regions (chunk 4096 and key 256 bits;
# chunk 65536 and key 128 bits), verified, then every file read back with
# `cat` and compared with its source.
# Usage: large.sh [SEED]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

SEED=${1:-${FSHIELD_TEST_SEED:-$RANDOM}}
echo "seed $SEED"
start=$SECONDS

python3 - "$SRC" "$SEED" <<'EOF'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
os.makedirs(root)
dirs = [""]
for i in range(20):
    d = "d%02d" % i
    dirs.append(d)
    if i % 4 == 0:
        dirs.append(d + "/sub")
for d in dirs:
    os.makedirs(os.path.join(root, d), exist_ok=True)
edge = [0, 1, 4095, 4096, 4097, 8192, 12289, 20000]
for i in range(2000):
    size = edge[i] if i < len(edge) else rng.randint(0, 20000)
    path = os.path.join(root, rng.choice(dirs), "f%04d.bin" % i)
    with open(path, "wb") as f:
        f.write(rng.randbytes(size))
with open(os.path.join(root, "big.bin"), "wb") as f:
    for _ in range(50):
        f.write(rng.randbytes(1 << 20))
with open(os.path.join(root, "d01", "seg.bin"), "wb") as f:
    f.write(rng.randbytes((9 << 20) + 4097))
os.symlink("big.bin", os.path.join(root, "big.link"))
EOF

(cd "$SRC" && find . -type f | sed 's/^\.//' | sort) >"$W/files"
[ "$(wc -l <"$W/files")" -eq 2002 ] || fail "expected 2002 source files"
echo "generated in $((SECONDS - start)) s"

mkdir "$ROOT"
fspf create "$FSPF" >/dev/null
fspf addr "$FSPF" / -n --kernel / >/dev/null
fspf addr "$FSPF" /e4k -e --kernel /e4k -c 4096 >/dev/null
fspf addr "$FSPF" /e64k -e --kernel /e64k -c 65536 -k 128 >/dev/null
run fspf addf "$FSPF" /e4k "$SRC" "$ROOT/e4k"
expect_rc 0
run fspf addf "$FSPF" /e64k "$SRC" "$ROOT/e64k"
expect_rc 0
run fspf encrypt "$FSPF" --key-file "$KEY"
expect_rc 0
TAG=$(awk '{print $9}' "$OUT")
echo "protected in $((SECONDS - start)) s"

cmp -s "$SRC/big.bin" "$ROOT/e4k/big.bin" && fail "big.bin is plaintext"
[ "$(stat -c %s "$ROOT/e64k/big.bin")" -eq $((50 << 20)) ] || fail "ciphertext size"

# 2 x 2002 files (the chunk counts are checked through show --json below).
verify_sample --expected-tag "$TAG"
expect_rc 0
expect_out '^Verified .*: 4004 files, .*2 symlinks: OK$'
[ ! -s "$ERR" ] || fail "verify printed on stderr"
echo "verified in $((SECONDS - start)) s"

run fspf show --json "$FSPF" --key-file "$KEY"
expect_rc 0
python3 - "$OUT" <<'EOF' || fail "chunk counts in show --json"
import json, sys
d = json.load(open(sys.argv[1]))
e = {x["path"]: x for x in d["entries"]}
big = 50 << 20
assert e["/e4k/big.bin"]["chunks"] == big // 4096
assert e["/e64k/big.bin"]["chunks"] == big // 65536
seg = (9 << 20) + 4097
assert e["/e4k/d01/seg.bin"]["chunks"] == -(-seg // 4096)
assert e["/e64k/d01/seg.bin"]["chunks"] == -(-seg // 65536)
for p, x in e.items():
    if x["type"] == "file":
        cs = 4096 if p.startswith("/e4k/") else 65536
        assert x["chunks"] == -(-x["size"] // cs), p
EOF

# cat every file of a region into one stream (each must exit 0), then
# compare with the sources in the same order; on a mismatch find the file.
cat_region() { # REGION
	local f
	while IFS= read -r f; do
		"$BIN" cat "$FSPF" "/$1$f" --root "$ROOT" --key-file "$KEY" ||
			{ echo "cat /$1$f failed" >&2; return 1; }
	done <"$W/files" >"$W/cat.$1"
}
cat_region e4k &
p1=$!
cat_region e64k &
p2=$!
wait $p1 || fail "cat in /e4k failed"
wait $p2 || fail "cat in /e64k failed"
while IFS= read -r f; do cat "$SRC$f"; done <"$W/files" >"$W/cat.src"
for r in e4k e64k; do
	if ! cmp -s "$W/cat.$r" "$W/cat.src"; then
		while IFS= read -r f; do
			"$BIN" cat "$FSPF" "/$r$f" --root "$ROOT" --key-file "$KEY" |
				cmp - "$SRC$f" >&2 || fail "cat /$r$f differs from its source"
		done <"$W/files"
		fail "cat output of /$r differs from the sources"
	fi
done
echo "read back in $((SECONDS - start)) s"
echo "ok: large round trip"
