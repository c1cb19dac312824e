#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Tamper suite: protect the sample tree, damage it one way, and check that
# `scone-fspf verify` (or `cat`) fails with exit status 1, names the file (and
# the chunk with its byte range when the damage is in a chunk), and releases
# no plaintext of the damaged chunk. With TAMPER_THROUGH_MOUNT=1, each case
# then also looks at the damage through a FUSE mount (see through_mount).
# Usage: tamper.sh CASE   (the cases are the case_* functions below)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

# --- helpers ---------------------------------------------------------------

# With TAMPER_THROUGH_MOUNT=1 every case ends by looking at the damaged tree
# through a read-only FUSE mount (with the right key and tag), with this
# oracle: if verify refuses the fspf itself, the mount is refused too;
# otherwise every protected file of the sample either reads back exactly its
# plaintext (verify names no problem with it) or fails with EIO/ENOENT
# after a strict prefix of its plaintext (verify names it), files that are
# not in the fspf do not exist, and every protected directory lists what
# the plaintext tree holds.
tm_unmount() {
	if mountpoint -q "$TM_MNT" 2>/dev/null; then
		fusermount3 -u "$TM_MNT" 2>/dev/null || umount -l "$TM_MNT" || true
	fi
}

through_mount() {
	local tag mnt=$W/tm.mnt dpid out=$W/tm.out err=$W/tm.err damaged=$W/tm.damaged
	local f rel n i rc
	mkdir -p "$mnt"
	# The tag the case left as current (a case may re-addf), or the newer
	# one a rolled-back tree must be checked against.
	tag=${NEWTAG:-$("$BIN" show --tag "$FSPF" 2>/dev/null || echo "$TAG")}
	set +e
	"$BIN" verify "$FSPF" --root "$ROOT" --key-file "$KEY" --expected-tag "$tag" \
		>"$out" 2>"$err"
	rc=$?
	set -e
	grep -a '^/' "$out" | sed 's/: .*//' | sort -u >"$damaged" || true
	env --default-signal=INT "$BIN" mount "$FSPF" "$mnt" --root "$ROOT" -f \
		--key-file "$KEY" --expected-tag "$tag" >"$W/tm.dout" 2>"$W/tm.dlog" &
	dpid=$!
	for ((i = 0; i < 100; i++)); do
		mountpoint -q "$mnt" && break
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.1
	done
	if ! mountpoint -q "$mnt"; then
		wait "$dpid" && fail "mount: the daemon ended with 0 but did not mount"
		# Refused: only right when verify refused the fspf as a whole.
		[ "$rc" -ne 0 ] && [ ! -s "$damaged" ] ||
			fail "mount refused, but verify did not refuse the fspf: $(cat "$W/tm.dlog")"
		echo "through the mount: refused, as verify refused the fspf"
		return 0
	fi
	TM_MNT=$mnt
	on_exit tm_unmount
	[ "$rc" -eq 0 ] || [ -s "$damaged" ] ||
		{ fusermount3 -u "$mnt"; fail "mounted though verify refused the fspf"; }
	n=0
	while IFS= read -r f; do
		rel=${f#"$SRC"}
		set +e
		cat "$mnt$rel" >"$W/tm.read" 2>"$W/tm.readerr"
		rc=$?
		set -e
		if grep -qxF -- "$rel" "$damaged"; then
			[ "$rc" -ne 0 ] || fail "through the mount, damaged $rel read without error"
			grep -Eq 'Input/output error|No such file' "$W/tm.readerr" ||
				fail "$rel: not EIO/ENOENT: $(cat "$W/tm.readerr")"
			cmp -s "$W/tm.read" <(head -c "$(stat -c %s "$W/tm.read")" "$f") ||
				fail "through the mount, $rel gave bytes that are not its plaintext"
			[ "$(stat -c %s "$W/tm.read")" -lt "$(stat -c %s "$f")" ] ||
				[ "$(stat -c %s "$f")" -eq 0 ] ||
				fail "$rel: the whole plaintext came through a damaged file"
		else
			[ "$rc" -eq 0 ] || fail "through the mount, intact $rel failed: $(cat "$W/tm.readerr")"
			cmp -s "$W/tm.read" "$f" || fail "through the mount, $rel differs"
		fi
		n=$((n + 1))
	done < <(find "$SRC/app" "$SRC/usr/lib" -type f)
	[ "$n" -gt 0 ] || fail "no file compared"
	while IFS= read -r rel; do # verify's "not in the fspf": not there
		grep -aq "^$(re "$rel"): not in the fspf" "$out" || continue
		[ ! -e "$mnt$rel" ] && [ ! -L "$mnt$rel" ] ||
			fail "$rel is not in the fspf but exists in the mount"
	done <"$damaged"
	for d in /app /usr/lib; do
		[ "$(cd "$mnt$d" && find . | sort)" = "$(cd "$SRC$d" && find . | sort)" ] ||
			fail "the mount lists $d other than the plaintext tree"
	done
	unmount_busy_retry "$mnt" || fail "fusermount3 -u failed"
	wait "$dpid" || fail "the daemon exited with $?"
	check_sanitizers "$W/tm.dlog"
	echo "through the mount: $n files as verify says"
}

# region -> file in the sample: sets F (host), P (fspf path), N (marker name),
# O (the other file of equal size), ON (its marker name).
pick() {
	case $1 in
	auth)
		F=$ROOT/usr/lib/liba.so P=/usr/lib/liba.so N=liba
		O=$ROOT/usr/lib/libb.so OP=/usr/lib/libb.so ON=libb
		;;
	enc)
		F=$ROOT/app/data.bin P=/app/data.bin N=data
		O=$ROOT/app/other.bin OP=/app/other.bin ON=other
		;;
	*) fail "pick: $1" ;;
	esac
}

# chunk index and the offset to flip for first / middle / last
pos_index() {
	case $1 in
	first) echo 0 ;;
	middle) echo 1 ;;
	last) echo 3 ;;
	*) fail "pos: $1" ;;
	esac
}

chunk_line() { # PATH IDX [SIZE]
	local p=$1 i=$2 size=${3:-$BIG_SIZE} a b
	a=$((i * CHUNK))
	b=$(((i + 1) * CHUNK - 1))
	[ "$b" -lt "$size" ] || b=$((size - 1))
	printf '^%s: chunk %d \\(bytes %d to %d\\): verification failed$' \
		"$(re "$p")" "$i" "$a" "$b"
}

# No marker of chunks [FROM, 4) of NAME in any output.
expect_no_plaintext() { # NAME [FROM] [COUNT]
	local i
	for ((i = ${2:-0}; i < ${3:-4}; i++)); do
		expect_absent "$(marker "$1" "$i")"
	done
}

expect_verify_failed() {
	expect_rc 1
	expect_err "^scone-fspf: error: verification of '$(re "$FSPF")' failed"
}

# How many problem lines verify printed.
expect_problem_count() {
	local n
	n=$(grep -ac '^/' "$OUT" || true)
	[ "$n" -eq "$1" ] || fail "expected $1 problem lines, got $n"
}

# cat of a damaged chunk IDX: exit 1, error naming file and chunk, stdout a
# prefix of the plaintext that stops before the chunk, no marker from it on.
expect_cat_stops_at() { # PATH SRCFILE NAME IDX [SIZE]
	local p=$1 src=$2 name=$3 i=$4 size=${5:-$BIG_SIZE} a b n
	a=$((i * CHUNK))
	b=$(((i + 1) * CHUNK - 1))
	[ "$b" -lt "$size" ] || b=$((size - 1))
	expect_rc 1
	expect_err "^scone-fspf: error: '$(re "$p")': chunk $i \\(bytes $a to $b\\)"
	n=$(stat -c %s "$OUT")
	[ "$n" -le "$a" ] || fail "cat wrote $n bytes, beyond the start $a of the bad chunk"
	cmp -s -n "$n" "$OUT" "$src" || fail "cat released bytes that are not the plaintext"
	expect_no_plaintext "$name" "$i"
}

swap_chunks() { # FILE I J (full chunks)
	local f=$1 i=$2 j=$3
	dd if="$f" of="$W/ci" bs=$CHUNK skip="$i" count=1 status=none
	dd if="$f" of="$W/cj" bs=$CHUNK skip="$j" count=1 status=none
	dd if="$W/cj" of="$f" bs=$CHUNK seek="$i" conv=notrunc status=none
	dd if="$W/ci" of="$f" bs=$CHUNK seek="$j" conv=notrunc status=none
}

copy_chunk() { # FROM TO IDX
	dd if="$1" of="$W/c" bs=$CHUNK skip="$3" count=1 status=none
	dd if="$W/c" of="$2" bs=$CHUNK seek="$3" conv=notrunc status=none
}

setup() {
	make_sample
	expect_sample_ok
}

# --- chunk damage ----------------------------------------------------------

flip_case() { # auth|enc first|middle|last
	local i
	setup
	pick "$1"
	i=$(pos_index "$2")
	flip_byte "$F" $((i * CHUNK + 77))
	verify_sample
	expect_verify_failed
	expect_out "$(chunk_line "$P" "$i")"
	expect_problem_count 1
	expect_no_plaintext "$N"
}

cat_flip_case() {
	local i
	setup
	pick "$1"
	i=$(pos_index "$2")
	flip_byte "$F" $((i * CHUNK + 77))
	cat_sample "$P"
	expect_cat_stops_at "$P" "$SRC${P}" "$N" "$i"
}

case_flip_auth_first() { flip_case auth first; }
case_flip_auth_middle() { flip_case auth middle; }
case_flip_auth_last() { flip_case auth last; }
case_flip_enc_first() { flip_case enc first; }
case_flip_enc_middle() { flip_case enc middle; }
case_flip_enc_last() { flip_case enc last; }
case_cat_flip_auth_first() { cat_flip_case auth first; }
case_cat_flip_auth_middle() { cat_flip_case auth middle; }
case_cat_flip_auth_last() { cat_flip_case auth last; }
case_cat_flip_enc_first() { cat_flip_case enc first; }
case_cat_flip_enc_middle() { cat_flip_case enc middle; }
case_cat_flip_enc_last() { cat_flip_case enc last; }

# A byte flip in a small file (one partial chunk) in a subdirectory.
case_flip_enc_small() {
	setup
	flip_byte "$ROOT/app/conf/config.yaml" 499
	verify_sample
	expect_verify_failed
	expect_out "$(chunk_line /app/conf/config.yaml 0 500)"
	expect_problem_count 1
	expect_no_plaintext config 0 1
}

# The bytes at chunk boundaries belong to the right chunk.
case_flip_enc_chunk_end() {
	setup
	flip_byte "$ROOT/app/data.bin" 8191
	verify_sample
	expect_verify_failed
	expect_out "$(chunk_line /app/data.bin 1)"
	expect_problem_count 1
}

case_flip_auth_chunk_start() {
	setup
	flip_byte "$ROOT/usr/lib/liba.so" 8192
	verify_sample
	expect_verify_failed
	expect_out "$(chunk_line /usr/lib/liba.so 2)"
	expect_problem_count 1
	cat_sample /usr/lib/liba.so
	expect_cat_stops_at /usr/lib/liba.so "$SRC/usr/lib/liba.so" liba 2
}

# A chunk overwritten with zeros (no holes are inferred from zeros).
zero_case() {
	setup
	pick "$1"
	dd if=/dev/zero of="$F" bs=$CHUNK seek=2 count=1 conv=notrunc status=none
	verify_sample
	expect_verify_failed
	expect_out "$(chunk_line "$P" 2)"
	expect_problem_count 1
	expect_no_plaintext "$N"
}
case_zero_chunk_auth() { zero_case auth; }
case_zero_chunk_enc() { zero_case enc; }

# Damage to many chunks: the first ones are listed, the rest counted.
case_many_bad_chunks() {
	local CHUNK=512 listed more
	mkdir -p "$SRC/app" "$ROOT"
	make_chunked "$SRC/app/long.bin" long $((40 * 512 + 100)) 512
	fspf create "$FSPF" >/dev/null
	fspf addr "$FSPF" /app -e --kernel /app -c 512 >/dev/null
	fspf addf "$FSPF" /app "$SRC/app" "$ROOT/app" >/dev/null
	fspf encrypt "$FSPF" --key-file "$KEY" >/dev/null
	verify_sample
	expect_rc 0
	dd if=/dev/zero of="$ROOT/app/long.bin" bs=$((40 * 512 + 100)) count=1 conv=notrunc status=none
	verify_sample
	expect_verify_failed
	expect_out "$(chunk_line /app/long.bin 0)"
	expect_out '^/app/long\.bin: chunk 40 \(bytes 20480 to 20579\): verification failed$|^/app/long\.bin: \.\.\. and [0-9]+ more chunks'
	# all 41 chunks failed: each either listed or counted
	listed=$(grep -ac '^/app/long\.bin: chunk ' "$OUT" || true)
	more=$(sed -n 's/^\/app\/long\.bin: \.\.\. and \([0-9]*\) more chunks.*/\1/p' "$OUT")
	[ $((listed + ${more:-0})) -eq 41 ] || fail "41 bad chunks, listed $listed, counted ${more:-0} more"
	expect_absent "MK_long_"
}

swap_case() {
	setup
	pick "$1"
	swap_chunks "$F" 1 2
	verify_sample
	expect_verify_failed
	expect_out "$(chunk_line "$P" 1)"
	expect_out "$(chunk_line "$P" 2)"
	expect_problem_count 2
	expect_no_plaintext "$N"
}
case_swap_chunks_auth() { swap_case auth; }
case_swap_chunks_enc() { swap_case enc; }

case_cat_swap_chunks_enc() {
	setup
	pick enc
	swap_chunks "$F" 1 2
	cat_sample "$P"
	expect_cat_stops_at "$P" "$SRC$P" "$N" 1
}

copy_case() {
	setup
	pick "$1"
	copy_chunk "$O" "$F" 1
	verify_sample
	expect_verify_failed
	expect_out "$(chunk_line "$P" 1)"
	expect_problem_count 1
	expect_no_plaintext "$N"
	expect_no_plaintext "$ON"
}
case_copy_chunk_auth() { copy_case auth; }
case_copy_chunk_enc() { copy_case enc; }

case_cat_copy_chunk_enc() {
	setup
	pick enc
	copy_chunk "$O" "$F" 2
	cat_sample "$P"
	expect_cat_stops_at "$P" "$SRC$P" "$N" 2
	expect_no_plaintext "$ON"
}

# --- length ----------------------------------------------------------------

size_case() { # auth|enc NEWSIZE-or-append-spec expected-regex
	setup
	pick "$1"
	case $2 in
	+bytes) printf 'XXXXXXXXXX' >>"$F" ;;
	+zerochunk) head -c "$CHUNK" /dev/zero >>"$F" ;;
	*) truncate -s "$2" "$F" ;;
	esac
	verify_sample
	expect_verify_failed
	expect_out "^$(re "$P"): size $3$"
	expect_problem_count 1
	expect_no_plaintext "$N"
}
case_truncate_boundary_auth() { size_case auth 12288 '12288, expected 13288 \(truncated\)'; }
case_truncate_boundary_enc() { size_case enc 12288 '12288, expected 13288 \(truncated\)'; }
case_truncate_mid_auth() { size_case auth 10000 '10000, expected 13288 \(truncated\)'; }
case_truncate_mid_enc() { size_case enc 10000 '10000, expected 13288 \(truncated\)'; }
case_truncate_empty_enc() { size_case enc 0 '0, expected 13288 \(truncated\)'; }
case_extend_bytes_auth() { size_case auth +bytes '13298, expected 13288 \(extended\)'; }
case_extend_bytes_enc() { size_case enc +bytes '13298, expected 13288 \(extended\)'; }
case_extend_zero_chunk_auth() { size_case auth +zerochunk '17384, expected 13288 \(extended\)'; }
case_extend_zero_chunk_enc() { size_case enc +zerochunk '17384, expected 13288 \(extended\)'; }

# An empty file that grows by a whole zero chunk (no chunk record at all).
case_extend_empty_zero_chunk() {
	setup
	head -c "$CHUNK" /dev/zero >>"$ROOT/app/empty"
	verify_sample
	expect_verify_failed
	expect_out "^/app/empty: size 4096, expected 0 \\(extended\\)$"
	expect_problem_count 1
}

case_cat_truncated_enc() {
	setup
	pick enc
	truncate -s 12288 "$F"
	cat_sample "$P"
	expect_rc 1
	expect_error_naming "$P"
	[ ! -s "$OUT" ] || fail "cat of a truncated file wrote output"
	expect_no_plaintext "$N"
}

# --- files and directories -------------------------------------------------

case_delete_file_auth() {
	setup
	rm "$ROOT/usr/lib/libb.so"
	verify_sample
	expect_verify_failed
	expect_out '^/usr/lib/libb\.so: missing'
	expect_problem_count 1
}

case_delete_file_enc() {
	setup
	rm "$ROOT/app/conf/config.yaml"
	verify_sample
	expect_verify_failed
	expect_out '^/app/conf/config\.yaml: missing'
	expect_problem_count 1
}

case_delete_empty_file() {
	setup
	rm "$ROOT/app/empty"
	verify_sample
	expect_verify_failed
	expect_out '^/app/empty: missing'
}

case_delete_dir() {
	setup
	rm -r "$ROOT/usr/lib/sub"
	verify_sample
	expect_verify_failed
	expect_out '^/usr/lib/sub: missing'
	expect_out '^/usr/lib/sub/notes\.txt: missing'
}

case_add_file_auth() {
	setup
	echo "evil" >"$ROOT/usr/lib/libevil.so"
	verify_sample
	expect_verify_failed
	expect_out '^/usr/lib/libevil\.so: not in the fspf'
	expect_problem_count 1
}

case_add_file_enc() {
	setup
	echo "evil" >"$ROOT/app/conf/extra.yaml"
	verify_sample
	expect_verify_failed
	expect_out '^/app/conf/extra\.yaml: not in the fspf'
	expect_problem_count 1
}

case_add_hidden_file() {
	setup
	echo "evil" >"$ROOT/app/conf/.hidden"
	verify_sample
	expect_verify_failed
	expect_out '^/app/conf/\.hidden: not in the fspf'
	expect_problem_count 1
}

case_add_dir() {
	setup
	mkdir "$ROOT/app/newdir"
	verify_sample
	expect_verify_failed
	expect_out '^/app/newdir: not in the fspf'
	expect_problem_count 1
}

case_add_symlink() {
	setup
	ln -s /etc/hostname "$ROOT/usr/lib/sub/link"
	verify_sample
	expect_verify_failed
	expect_out '^/usr/lib/sub/link: not in the fspf'
	expect_problem_count 1
}

swap_files_case() {
	setup
	pick "$1"
	mv "$F" "$W/tmpfile"
	mv "$O" "$F"
	mv "$W/tmpfile" "$O"
	verify_sample
	expect_verify_failed
	for i in 0 1 2 3; do
		expect_out "$(chunk_line "$P" "$i")"
		expect_out "$(chunk_line "$OP" "$i")"
	done
	expect_no_plaintext "$N"
	expect_no_plaintext "$ON"
}
case_swap_files_auth() { swap_files_case auth; }
case_swap_files_enc() { swap_files_case enc; }

case_cat_swap_files_enc() {
	setup
	pick enc
	mv "$F" "$W/tmpfile"
	mv "$O" "$F"
	mv "$W/tmpfile" "$O"
	cat_sample "$P"
	expect_cat_stops_at "$P" "$SRC$P" "$N" 0
	expect_no_plaintext "$ON"
}

rename_case() {
	setup
	pick "$1"
	mv "$F" "$F.renamed"
	verify_sample
	expect_verify_failed
	expect_out "^$(re "$P"): missing"
	expect_out "^$(re "$P.renamed"): not in the fspf"
	expect_problem_count 2
	expect_no_plaintext "$N"
}
case_rename_file_auth() { rename_case auth; }
case_rename_file_enc() { rename_case enc; }

case_file_replaced_by_symlink() {
	setup
	rm "$ROOT/app/data.bin"
	ln -s other.bin "$ROOT/app/data.bin"
	verify_sample
	expect_verify_failed
	expect_out '^/app/data\.bin: is a symlink, expected a file$'
	expect_problem_count 1
	expect_no_plaintext other
}

# A FIFO in place of a protected file: reported, and never opened in a way
# that blocks (a FIFO without a writer blocks open() forever).
case_file_replaced_by_fifo() {
	setup
	rm "$ROOT/app/data.bin"
	mkfifo "$ROOT/app/data.bin"
	run timeout 10 "$BIN" verify "$FSPF" --root "$ROOT" --key-file "$KEY"
	[ "$RC" -ne 124 ] || fail "verify hangs on a FIFO in place of a file"
	expect_verify_failed
	expect_out '^/app/data\.bin: is a special file, expected a file$'
}

case_cat_file_replaced_by_fifo() {
	setup
	rm "$ROOT/app/data.bin"
	mkfifo "$ROOT/app/data.bin"
	run timeout 10 "$BIN" cat "$FSPF" /app/data.bin --root "$ROOT" --key-file "$KEY"
	[ "$RC" -ne 124 ] || fail "cat hangs on a FIFO in place of a file (open() without O_NONBLOCK before checking the type)"
	expect_rc 1
	expect_error_naming /app/data.bin
}

case_file_replaced_by_dir() {
	setup
	rm "$ROOT/usr/lib/liba.so"
	mkdir "$ROOT/usr/lib/liba.so"
	verify_sample
	expect_verify_failed
	expect_out '^/usr/lib/liba\.so: is a directory, expected a file$'
}

case_symlink_target_changed_enc() {
	setup
	ln -sfn other.bin "$ROOT/app/current"
	verify_sample
	expect_verify_failed
	expect_out "^/app/current: symlink points to 'other\\.bin', expected 'data\\.bin'$"
	expect_problem_count 1
}

case_symlink_target_changed_auth() {
	setup
	ln -sfn libb.so "$ROOT/usr/lib/liba.so.1"
	verify_sample
	expect_verify_failed
	expect_out "^/usr/lib/liba\\.so\\.1: symlink points to 'libb\\.so', expected 'liba\\.so'$"
	expect_problem_count 1
}

case_symlink_replaced_by_file() {
	setup
	rm "$ROOT/app/current"
	cp "$ROOT/app/data.bin" "$ROOT/app/current"
	verify_sample
	expect_verify_failed
	expect_out '^/app/current: is a file, expected a symlink$'
}

# --- rollback --------------------------------------------------------------

# One file rolled back: protect v1, keep its protected form, re-addf v2,
# put the v1 file back.
case_rollback_file_enc() {
	setup
	cp -p "$ROOT/app/conf/config.yaml" "$W/config.v1"
	make_chunked "$SRC/app/conf/config.yaml" configvtwo 500
	run fspf addf "$FSPF" /app/conf "$SRC/app/conf" "$ROOT/app/conf" --key-file "$KEY"
	expect_rc 0
	expect_sample_ok
	cp -p "$W/config.v1" "$ROOT/app/conf/config.yaml"
	verify_sample
	expect_verify_failed
	expect_out "$(chunk_line /app/conf/config.yaml 0 500)"
	expect_problem_count 1
	expect_no_plaintext config 0 1
	expect_no_plaintext configvtwo 0 1
	cat_sample /app/conf/config.yaml
	expect_cat_stops_at /app/conf/config.yaml "$SRC/app/conf/config.yaml" config 0 500
}

case_rollback_file_auth() {
	setup
	cp -p "$ROOT/usr/lib/liba.so" "$W/liba.v1"
	make_chunked "$SRC/usr/lib/liba.so" libavtwo "$BIG_SIZE"
	run fspf addf "$FSPF" /usr/lib "$SRC/usr/lib" "$ROOT/usr/lib" --key-file "$KEY"
	expect_rc 0
	expect_sample_ok
	cp -p "$W/liba.v1" "$ROOT/usr/lib/liba.so"
	verify_sample
	expect_verify_failed
	for i in 0 1 2 3; do
		expect_out "$(chunk_line /usr/lib/liba.so "$i")"
	done
	expect_problem_count 4
	expect_no_plaintext liba
	expect_no_plaintext libavtwo
}

# The whole tree and its fspf rolled back to an older, valid state: only an
# expected tag can tell. Sets NEWTAG; leaves the old state in place.
rollback_tree() {
	setup
	cp -a "$ROOT" "$W/root.old"
	cp -p "$FSPF" "$W/fspf.old"
	make_chunked "$SRC/app/conf/config.yaml" configvtwo 500
	run fspf addf "$FSPF" /app/conf "$SRC/app/conf" "$ROOT/app/conf" --key-file "$KEY"
	expect_rc 0
	NEWTAG=$(awk '/^Added files/ {print $NF}' "$OUT")
	[[ $NEWTAG =~ ^[0-9a-f]{32}$ ]] || fail "no tag in the addf line"
	[ "$NEWTAG" != "$TAG" ] || fail "addf did not change the tag"
	verify_sample --expected-tag "$NEWTAG"
	expect_rc 0
	rm -rf "$ROOT"
	mv "$W/root.old" "$ROOT"
	cp -p "$W/fspf.old" "$FSPF"
	# Without an expected tag the old state is consistent and verifies.
	verify_sample
	expect_rc 0
	expect_out '^Verified .*: OK$'
	expect_err 'no expected tag'
	# With the old tag as the expected one, too.
	verify_sample --expected-tag "$TAG"
	expect_rc 0
}

expect_rollback_refused() {
	expect_rc 1
	expect_error_naming "$FSPF"
	expect_err 'rollback'
	expect_not_any '^Verified'
	expect_no_plaintext config 0 1
}

case_rollback_tree_expected_tag() {
	rollback_tree
	verify_sample --expected-tag "$NEWTAG"
	expect_rollback_refused
}

case_rollback_tree_env() {
	rollback_tree
	run env SCONE_FSPF_TAG="$NEWTAG" "$BIN" verify "$FSPF" --root "$ROOT" --key-file "$KEY"
	expect_rollback_refused
}

case_rollback_tree_tag_file() {
	rollback_tree
	echo "$NEWTAG" >"$W/tag"
	verify_sample --tag-file "$W/tag"
	expect_rollback_refused
}

case_rollback_tree_cat() {
	rollback_tree
	cat_sample /app/conf/config.yaml --expected-tag "$NEWTAG"
	expect_rollback_refused
	[ ! -s "$OUT" ] || fail "cat wrote output for a rolled-back fspf"
}

# --- the fspf itself --------------------------------------------------------

# A damaged fspf: exit 1, an error naming it that says what is wrong, no
# "wrong key" (that is for a wrong key), nothing on stdout.
expect_bad_fspf() {
	expect_rc 1
	expect_error_naming "$FSPF"
	expect_err 'tamper|corrupt|not an fspf|unsupported'
	expect_not_any 'wrong key'
	[ ! -s "$OUT" ] || fail "output on stdout for a damaged fspf"
}

fspf_flip_case() { # OFFSET (negative: from the end)
	local off=$1 size
	setup
	size=$(stat -c %s "$FSPF")
	[ "$off" -ge 0 ] || off=$((size + off))
	flip_byte "$FSPF" "$off"
	verify_sample
	expect_bad_fspf
	cat_sample /app/data.bin
	expect_bad_fspf
	expect_no_plaintext data
}
case_fspf_flip_magic() { fspf_flip_case 0; }
case_fspf_flip_version() { fspf_flip_case 8; }
case_fspf_flip_flags() { fspf_flip_case 12; }
case_fspf_flip_region_count() { fspf_flip_case 16; }
case_fspf_flip_entry_count() { fspf_flip_case 20; }
case_fspf_flip_chunk_count() { fspf_flip_case 24; }
case_fspf_flip_strings_size() { fspf_flip_case 32; }
case_fspf_flip_nonce() { fspf_flip_case 50; }
case_fspf_flip_reserved() { fspf_flip_case 90; }
case_fspf_flip_body_first() { fspf_flip_case 96; }
case_fspf_flip_body_middle() { fspf_flip_case 600; }
case_fspf_flip_body_last() { fspf_flip_case -17; }
case_fspf_flip_tag_first() { fspf_flip_case -16; }
case_fspf_flip_tag_last() { fspf_flip_case -1; }

# The key check value (header bytes 60..75) cannot tell a tampered check from
# a wrong key: any clear error is fine here, "wrong key" included.
case_fspf_flip_key_check() {
	setup
	flip_byte "$FSPF" 65
	verify_sample
	expect_rc 1
	expect_error_naming "$FSPF"
	[ ! -s "$OUT" ] || fail "output on stdout for a damaged fspf"
}

fspf_truncate_case() { # NEWSIZE (negative: bytes to cut)
	local n=$1 size
	setup
	size=$(stat -c %s "$FSPF")
	[ "$n" -ge 0 ] || n=$((size + n))
	truncate -s "$n" "$FSPF"
	verify_sample
	expect_bad_fspf
	cat_sample /app/data.bin
	expect_bad_fspf
}
case_fspf_truncate_tag() { fspf_truncate_case -1; }
case_fspf_truncate_body() { fspf_truncate_case -300; }
case_fspf_truncate_header() { fspf_truncate_case 40; }
case_fspf_truncate_empty() { fspf_truncate_case 0; }

case_fspf_extended() {
	setup
	printf '\0' >>"$FSPF"
	verify_sample
	expect_bad_fspf
}

# An fspf of another tree put in place of the right one: its own key opens
# it, but the expected tag tells.
case_fspf_replaced() {
	setup
	fspf create "$W/other.pb" >/dev/null
	fspf addr "$W/other.pb" /app -a --kernel /app >/dev/null
	fspf encrypt "$W/other.pb" --key-file "$W/other.key" >/dev/null
	cp "$W/other.pb" "$FSPF"
	verify_sample
	expect_rc 1
	expect_err 'wrong key'
	run fspf verify "$FSPF" --root "$ROOT" --key-file "$W/other.key" --expected-tag "$TAG"
	expect_rollback_refused
}

# Downgrade: the attacker puts an fspf of their own in place, sealed under the
# all-zero key (never `encrypt`ed), describing their own files. Whoever gives
# a key expects an fspf sealed under that key: a zero-key fspf must be
# refused, not verified with a note, and none of its files released.
case_fspf_replaced_unencrypted() {
	setup
	mkdir -p "$W/evil/app"
	make_chunked "$W/evil/app/data.bin" evil 5000
	fspf create "$W/evil.pb" >/dev/null
	fspf addr "$W/evil.pb" / -n --kernel / >/dev/null
	fspf addr "$W/evil.pb" /app -a --kernel /app >/dev/null
	fspf addf "$W/evil.pb" /app "$W/evil/app" >/dev/null
	rm -rf "$ROOT/app"
	cp -a "$W/evil/app" "$ROOT/app"
	cp "$W/evil.pb" "$FSPF"
	verify_sample
	[ "$RC" -ne 0 ] || fail "verify with a key accepted an unencrypted fspf put in place of the encrypted one"
	expect_rc 1
	expect_error_naming "$FSPF"
	cat_sample /app/data.bin
	[ "$RC" -ne 0 ] || fail "cat with a key released a file of an unencrypted fspf put in place of the encrypted one"
	expect_rc 1
	expect_absent "$(marker evil 0)"
}

# --- keys --------------------------------------------------------------------

wrong_key_file() {
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$W/wrong.key"
	echo >>"$W/wrong.key"
	chmod 600 "$W/wrong.key"
}

expect_wrong_key() {
	expect_rc 1
	expect_error_naming "$FSPF"
	expect_err 'wrong key'
	expect_not_any 'tamper|corrupt'
	[ ! -s "$OUT" ] || fail "output on stdout with a wrong key"
	expect_no_plaintext data
}

case_wrong_key() {
	setup
	wrong_key_file
	run fspf verify "$FSPF" --root "$ROOT" --key-file "$W/wrong.key"
	expect_wrong_key
	run env SCONE_FSPF_KEY="$(cat "$W/wrong.key")" "$BIN" verify "$FSPF" --root "$ROOT"
	expect_wrong_key
	# The message differs from the one for a tampered fspf.
	cp -p "$FSPF" "$W/fspf.good"
	flip_byte "$FSPF" 600
	verify_sample
	expect_rc 1
	expect_not_any 'wrong key'
	grep -a '^scone-fspf: error:' "$ERR" >"$W/tampered.msg"
	cp -p "$W/fspf.good" "$FSPF"
	run fspf verify "$FSPF" --root "$ROOT" --key-file "$W/wrong.key"
	grep -a '^scone-fspf: error:' "$ERR" >"$W/wrong.msg"
	cmp -s "$W/tampered.msg" "$W/wrong.msg" && fail "same message for a wrong key and a tampered fspf"
	return 0
}

case_cat_wrong_key() {
	setup
	wrong_key_file
	run fspf cat "$FSPF" /app/data.bin --root "$ROOT" --key-file "$W/wrong.key"
	expect_wrong_key
	run fspf cat "$FSPF" /usr/lib/liba.so --root "$ROOT" --key-file "$W/wrong.key"
	expect_wrong_key
}

case_no_key() {
	setup
	run fspf verify "$FSPF" --root "$ROOT"
	expect_rc 1
	expect_error_naming "$FSPF"
	expect_err 'key'
	[ ! -s "$OUT" ] || fail "output on stdout without a key"
}

case_malformed_key() {
	setup
	echo "not-a-key" >"$W/bad.key"
	chmod 600 "$W/bad.key"
	run fspf verify "$FSPF" --root "$ROOT" --key-file "$W/bad.key"
	expect_rc 1
	expect_error_naming "$W/bad.key"
	expect_err 'bad key'
	# 63 hex digits
	head -c 64 "$KEY" | head -c 63 >"$W/bad.key"
	run fspf verify "$FSPF" --root "$ROOT" --key-file "$W/bad.key"
	expect_rc 1
	expect_err 'bad key'
}

# --- all at once --------------------------------------------------------------

# Several kinds of damage at once: each is reported, sorted by path.
case_many_problems() {
	setup
	flip_byte "$ROOT/usr/lib/liba.so" 5000
	truncate -s 100 "$ROOT/app/other.bin"
	rm "$ROOT/usr/lib/sub/notes.txt"
	echo x >"$ROOT/app/zz-extra"
	verify_sample
	expect_verify_failed
	expect_out "$(chunk_line /usr/lib/liba.so 1)"
	expect_out '^/app/other\.bin: size 100, expected 13288 \(truncated\)$'
	expect_out '^/usr/lib/sub/notes\.txt: missing'
	expect_out '^/app/zz-extra: not in the fspf'
	expect_problem_count 4
	grep -a '^/' "$OUT" | cut -d: -f1 >"$W/paths"
	sort -c "$W/paths" || fail "problems are not sorted by path"
	expect_no_plaintext liba
	expect_no_plaintext other
	expect_no_plaintext notes 0 1
}

# -----------------------------------------------------------------------------

if [ "${TAMPER_THROUGH_MOUNT:-0}" = 1 ] && [ "${1:-}" != --list ]; then
	need_fuse
	run_case tamper "$@"
	through_mount
else
	run_case tamper "$@"
fi
