#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Behaviour of the scone-fspf command line: printed lines, options, exit
# statuses, error messages, keys and tags, file modes, volumes, show --json,
# verify, cat and extract.
# Usage: cli.sh CASE   (the cases are the case_* functions below)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

HEX32='[0-9a-f]{32}'
HEX64='[0-9a-f]{64}'

# stdout must be exactly @1 lines.
expect_lines() {
	local n
	n=$(wc -l <"$OUT")
	[ "$n" -eq "$1" ] || fail "expected $1 line(s) on stdout, got $n"
}

expect_usage_error() {
	expect_rc 2
	expect_err '^scone-fspf: error: '
	expect_err "^Try 'scone-fspf --help'"
	[ ! -s "$OUT" ] || fail "a usage error printed on stdout"
}

# A small unencrypted fspf F=$W/f.pb with regions / and /app (encrypted).
small_fspf() {
	F=$W/f.pb
	fspf create "$F" >/dev/null
	fspf addr "$F" / -n --kernel / >/dev/null
	fspf addr "$F" /app -e --kernel /app >/dev/null
}

# Snapshot of the fspf and of the file names below $W, to check that a failed
# command changed nothing.
snapshot() {
	cp -p "$1" "$W/snap.fspf"
	(cd "$W" && find . \( -path ./snap.fspf -o -path ./.run \) -prune -o -print | sort) >"$W/snap.files"
}

expect_unchanged() {
	cmp -s "$1" "$W/snap.fspf" || fail "the failed command changed the fspf '$1'"
	(cd "$W" && find . \( -path ./snap.fspf -o -path ./.run \) -prune -o -print | sort) >"$W/snap.now"
	grep -v -e '^\./snap\.' "$W/snap.now" >"$W/snap.now2" || true
	grep -v -e '^\./snap\.' "$W/snap.files" >"$W/snap.files2" || true
	diff "$W/snap.files2" "$W/snap.now2" >&2 ||
		fail "the failed command added or removed files"
	[ -z "$(leftover_temps "$W")" ] || fail "temporary files left: $(leftover_temps "$W")"
}

json_check() { # PYTHON-EXPRESSION over d (the parsed stdout)
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2])
if not ok:
    print("json check failed: " + sys.argv[2], file=sys.stderr)
    sys.exit(1)
' "$OUT" "$1" || fail "json check: $1"
}

# --- printed lines -------------------------------------------------------------

case_output_lines() {
	local tags=() t key
	mkdir -p rootfs/usr/lib plain/app
	make_chunked rootfs/usr/lib/a.so a 5000
	make_chunked plain/app/b b 9000
	run fspf create fspf.pb
	expect_rc 0
	expect_lines 1
	expect_out "^Created empty file system protection file in fspf\\.pb\\. AES-GCM tag: $HEX32\$"
	tags+=("$(awk '{print $NF}' "$OUT")")
	run fspf addr fspf.pb / --kernel / --not-protected
	expect_rc 0
	expect_lines 1
	expect_out "^Added region / to file system protection file fspf\\.pb new AES-GCM tag: $HEX32\$"
	tags+=("$(awk '{print $NF}' "$OUT")")
	run fspf addr fspf.pb /usr/lib --authenticated --kernel /usr/lib
	expect_out "^Added region /usr/lib to file system protection file fspf\\.pb new AES-GCM tag: $HEX32\$"
	tags+=("$(awk '{print $NF}' "$OUT")")
	run fspf addf fspf.pb /usr/lib rootfs/usr/lib
	expect_rc 0
	expect_lines 1
	expect_out "^Added files to file system protection file fspf\\.pb new AES-GCM tag: $HEX32\$"
	tags+=("$(awk '{print $NF}' "$OUT")")
	run fspf addr fspf.pb /app --encrypted --kernel /app
	tags+=("$(awk '{print $NF}' "$OUT")")
	run fspf addf fspf.pb /app plain/app rootfs/app
	expect_rc 0
	expect_out "^Added files to file system protection file fspf\\.pb new AES-GCM tag: $HEX32\$"
	tags+=("$(awk '{print $NF}' "$OUT")")
	# The tag printed last is the tag of the file.
	run fspf show --tag fspf.pb
	[ "$(cat "$OUT")" = "${tags[-1]}" ] || fail "addf printed a tag that show --tag does not"
	run fspf encrypt fspf.pb
	expect_rc 0
	expect_lines 1
	expect_out "^Encrypted file system protection file fspf\\.pb AES-GCM tag: $HEX32 key: $HEX64\$"
	t=$(awk '{print $9}' "$OUT")
	key=$(awk '{print $11}' "$OUT")
	[[ $t =~ ^$HEX32$ ]] || fail "field 9 is not the tag: '$t'"
	[[ $key =~ ^$HEX64$ ]] || fail "field 11 is not the key: '$key'"
	tags+=("$t")
	# Every command changed the tag.
	[ "$(printf '%s\n' "${tags[@]}" | sort -u | wc -l)" -eq "${#tags[@]}" ] ||
		fail "some command left the tag unchanged: ${tags[*]}"
	run fspf show --tag fspf.pb
	[ "$(cat "$OUT")" = "$t" ] || fail "show --tag differs from the encrypt line's tag"
	# The printed key opens it; the printed tag is the expected one.
	run env SCONE_FSPF_KEY="$key" "$BIN" verify fspf.pb --root rootfs --expected-tag "$t"
	expect_rc 0
	expect_out '^Verified .*: OK$'
}

case_show_tag() {
	make_sample
	run fspf show --tag "$FSPF"
	expect_rc 0
	[[ $(cat "$OUT") =~ ^$HEX32$ ]] || fail "show --tag printed more than 32 hex digits"
	[ "$(stat -c %s "$OUT")" -eq 33 ] || fail "show --tag printed more than the tag and a newline"
	[ "$(cat "$OUT")" = "$TAG" ] || fail "show --tag is not the encrypt line's tag"
	[ ! -s "$ERR" ] || fail "show --tag printed on stderr"
	run fspf show -t "$FSPF"
	[ "$(cat "$OUT")" = "$TAG" ] || fail "show -t"
	run fspf show "$FSPF" --tag
	[ "$(cat "$OUT")" = "$TAG" ] || fail "show FSPF --tag"
	# An unencrypted fspf too.
	small_fspf
	run fspf show --tag "$F"
	expect_rc 0
	[[ $(cat "$OUT") =~ ^$HEX32$ ]] || fail "show --tag of an unencrypted fspf"
	# Not an fspf.
	run fspf show --tag "$SRC/etc/hostname"
	expect_rc 1
	expect_error_naming "$SRC/etc/hostname"
	run fspf show --tag "$W/does-not-exist"
	expect_rc 1
	expect_error_naming "$W/does-not-exist"
}

# --- options ---------------------------------------------------------------------

case_option_order() {
	make_sample_source
	mkdir -p rootfs/usr
	# options first
	run fspf create -f fspf.pb
	expect_rc 0
	run fspf addr --not-protected --kernel / fspf.pb /
	expect_rc 0
	run fspf addr -a --kernel /usr/lib -c 8192 fspf.pb /usr/lib
	expect_rc 0
	# options after the positionals (as in SCONE's examples)
	run fspf addr fspf.pb /app --encrypted --kernel /app -k 128
	expect_rc 0
	# mixed
	run fspf addf fspf.pb /usr/lib "$SRC/usr/lib" rootfs/usr/lib
	expect_rc 0
	run fspf addf fspf.pb /app "$SRC/app" rootfs/app
	expect_rc 0
	run fspf encrypt --key-file k1 fspf.pb
	expect_rc 0
	run fspf verify --root rootfs --key-file k1 fspf.pb
	expect_rc 0
	run fspf verify fspf.pb --key-file k1 --root rootfs
	expect_rc 0
	run fspf verify --key-file k1 fspf.pb --root rootfs
	expect_rc 0
	run fspf cat --root rootfs --key-file k1 fspf.pb /app/data.bin
	expect_rc 0
	cmp -s "$OUT" "$SRC/app/data.bin" || fail "cat with options first"
	run fspf cat fspf.pb --root rootfs /app/data.bin --key-file k1
	expect_rc 0
	cmp -s "$OUT" "$SRC/app/data.bin" || fail "cat with options between"
	run fspf show --json --key-file k1 fspf.pb
	expect_rc 0
	json_check '[r["chunk_length"] for r in d["regions"] if r["path"] == "/usr/lib"] == [8192]'
	json_check '[r["key_bits"] for r in d["regions"] if r["path"] == "/app"] == [128]'
	# "--" ends the options
	run fspf show --key-file k1 -- fspf.pb
	expect_rc 0
}

case_short_forms() {
	local p
	run fspf create fspf.pb
	run fspf addr fspf.pb / -n --kernel /
	expect_rc 0
	run fspf addr fspf.pb /a -a --kernel /a
	expect_rc 0
	run fspf addr fspf.pb /e -e --kernel /e
	expect_rc 0
	run fspf addr fspf.pb /c -e --kernel /c -c 512 -k 192
	expect_rc 0
	run fspf addr fspf.pb /l --encrypted --kernel /l --chunk-length 16777216 --key-length 128
	expect_rc 0
	run fspf addr fspf.pb /x --authenticated --ephemeral -c65536 -k256
	expect_rc 0
	run fspf show --json fspf.pb
	expect_rc 0
	json_check '{r["path"]: r["protection"] for r in d["regions"]} == {"/": "not-protected", "/a": "authenticated", "/e": "encrypted", "/c": "encrypted", "/l": "encrypted", "/x": "authenticated"}'
	json_check '[(r["chunk_length"], r["key_bits"]) for r in d["regions"] if r["path"] == "/e"] == [(4096, 256)]'
	json_check '[(r["chunk_length"], r["key_bits"]) for r in d["regions"] if r["path"] == "/c"] == [(512, 192)]'
	json_check '[(r["chunk_length"], r["key_bits"]) for r in d["regions"] if r["path"] == "/l"] == [(16777216, 128)]'
	json_check '[(r["storage"], r["chunk_length"]) for r in d["regions"] if r["path"] == "/x"] == [("ephemeral", 65536)]'
	json_check 'all("chunk_length" not in r for r in d["regions"] if r["path"] == "/")'
	# the text form shows the same
	run fspf show fspf.pb
	expect_rc 0
	for p in /a /e /c /l /x; do
		expect_out "^  $(re "$p") +(authenticated|encrypted) "
	done
	expect_out 'chunk 512 +key 192 bits'
}

case_usage_errors() {
	local args
	small_fspf
	snapshot "$F"
	run fspf
	expect_usage_error
	while IFS= read -r args; do
		[ -n "$args" ] || continue
		# shellcheck disable=SC2086
		eval "run fspf $args"
		[ "$RC" -eq 2 ] || fail "'scone-fspf $args': exit $RC, expected 2"
		expect_usage_error
		expect_unchanged "$F"
	done <<EOF

bogus-command
addr $F /x -e --kernel /x --bogus
addr $F /x -e --kernel /x -z
addr $F /x -e --kernel
addr $F /x -e --kernel /x -c
addr $F /x -e -a --kernel /x
addr $F /x -n -e --kernel /x
addr $F /x -e
addr $F /x -e --kernel /x --ephemeral
addr $F /x --kernel /x
addr $F /x -e --kernel /x -k 100
addr $F /x -e --kernel /x -k 512
addr $F /x -e --kernel /x -k abc
addr $F /x -e --kernel /x -c 10
addr $F /x -e --kernel /x -c 511
addr $F /x -e --kernel /x -c 16777217
addr $F /x -e --kernel /x -c -4096
addr $F /x -e --kernel /x -c 4k
addr $F /x -n --kernel /x -c 4096
addr $F /x -n --kernel /x -k 128
addr $F /x -e --kernel /x --key-fd abc
addr $F -e --kernel /x
addr $F /x /y -e --kernel /x
addf $F /app
addf $F /app a b c
addf $F /app a b --bogus
create
create a b c
create $F --bogus
encrypt
encrypt $F extra
encrypt $F --bogus
show
show $F a b
show --bogus $F
verify
verify $F extra
verify $F --bogus
verify $F --root
cat $F
cat $F /a /b
cat $F /app/x --bogus
create-volume
create-volume vol
create-volume -e -a vol
create-volume -e vol -k 100
create-volume -e vol -c 10
create-volume -e vol --bogus
create-volume -e a b c
EOF
}

# --- errors (exit 1) that leave everything as it was ------------------------------

expect_error_unchanged() { # NAMED-PATH
	expect_rc 1
	expect_error_naming "$1"
	[ ! -s "$OUT" ] || fail "a failed command printed on stdout"
	expect_unchanged "$F"
}

case_err_duplicate_region() {
	small_fspf
	snapshot "$F"
	run fspf addr "$F" /app -a --kernel /other
	expect_error_unchanged /app
	expect_err 'exists already'
	run fspf addr "$F" /app/ -a --kernel /other
	expect_error_unchanged /app
}

case_err_no_root_region() {
	F=$W/f.pb
	fspf create "$F" >/dev/null
	fspf addr "$F" /data -e --kernel /data >/dev/null
	snapshot "$F"
	run fspf addr "$F" /other -a --kernel /other
	expect_error_unchanged /other
	expect_err "'/'"
}

case_err_overlapping_kernel() {
	small_fspf
	snapshot "$F"
	run fspf addr "$F" /data -a --kernel /app
	expect_error_unchanged /data
	expect_err 'kernel'
	run fspf addr "$F" /data -a --kernel /app/sub
	expect_error_unchanged /data
}

case_err_bad_embed_point() {
	small_fspf
	snapshot "$F"
	run fspf addr "$F" data -a --kernel /data
	expect_error_unchanged data
	run fspf addr "$F" /a/../b -a --kernel /data
	expect_error_unchanged /a/../b
}

case_err_region_over_entries() {
	make_sample
	F=$FSPF
	snapshot "$F"
	run fspf addr "$F" /app/conf -a --kernel /app/conf --key-file "$KEY"
	expect_error_unchanged /app/conf
}

case_err_addf_encrypted_no_output() {
	small_fspf
	make_sample_source
	snapshot "$F"
	run fspf addf "$F" /app "$SRC/app"
	expect_error_unchanged /app
	expect_err 'OUTPUT_DIR'
}

case_err_addf_not_protected() {
	small_fspf
	make_sample_source
	snapshot "$F"
	run fspf addf "$F" /etc "$SRC/etc" "$W/out-etc"
	expect_error_unchanged /etc
	expect_err 'not protected'
	[ ! -e "$W/out-etc" ] || fail "a failed addf created its output directory"
}

case_err_addf_ephemeral() {
	small_fspf
	make_sample_source
	fspf addr "$F" /tmp -e --ephemeral >/dev/null
	snapshot "$F"
	run fspf addf "$F" /tmp "$SRC/app" "$W/out-tmp"
	expect_error_unchanged /tmp
	expect_err 'ephemeral'
}

case_err_addf_no_such_dir() {
	small_fspf
	snapshot "$F"
	run fspf addf "$F" /app "$W/no-such-dir" "$W/out-app"
	expect_error_unchanged "$W/no-such-dir"
	[ ! -e "$W/out-app" ] || fail "a failed addf created its output directory"
	# an embed point below the region that is not a recorded directory
	mkdir "$W/s"
	snapshot "$F"
	run fspf addf "$F" /app/sub "$W/s" "$W/out-app"
	expect_error_unchanged /app/sub
}

case_err_addf_wrong_region() {
	F=$W/f.pb
	fspf create "$F" >/dev/null
	fspf addr "$F" / -n --kernel / >/dev/null
	fspf addr "$F" /app -e --kernel /app >/dev/null
	fspf addr "$F" /app/nested -a --kernel /app/nested >/dev/null
	mkdir -p src/nested src/other
	echo top >src/top.txt
	echo nested >src/nested/file.txt
	echo other >src/other/file.txt
	snapshot "$F"
	run fspf addf "$F" /app src out
	expect_error_unchanged src/nested
	expect_err "region '/app/nested'"
	[ ! -e out ] || fail "a failed addf left its output directory"
}

# OUTPUT_DIR is a regular file.
case_err_addf_output_is_file() {
	small_fspf
	make_sample_source
	echo "not a dir" >"$W/out-file"
	snapshot "$F"
	run fspf addf "$F" /app "$SRC/app" "$W/out-file"
	expect_error_unchanged "$W/out-file"
	[ "$(cat "$W/out-file")" = "not a dir" ] || fail "the output file was changed"
}

# The message says why: the output is not a directory (not a stale errno).
case_err_addf_output_is_file_message() {
	small_fspf
	make_sample_source
	echo "not a dir" >"$W/out-file"
	run fspf addf "$F" /app "$SRC/app" "$W/out-file"
	expect_rc 1
	expect_err "^scone-fspf: error: .*'$(re "$W/out-file")': (N|n)ot a directory\$"
}

# A directory of the output tree is taken by a regular file.
case_err_addf_output_subdir_is_file() {
	small_fspf
	make_sample_source
	mkdir "$W/out-app"
	echo "in the way" >"$W/out-app/conf"
	snapshot "$F"
	run fspf addf "$F" /app "$SRC/app" "$W/out-app"
	expect_error_unchanged "$W/out-app/conf"
	[ "$(cat "$W/out-app/conf")" = "in the way" ] || fail "the file in the way was changed"
}

# The last step of addf (putting outputs in place) fails: a symlink's place
# in an existing output tree is taken by a non-empty directory. addf must
# leave the fspf and the output tree as they were, so the tree protected
# before still verifies once the obstacle is gone.
case_err_addf_fails_late_keeps_old_tree() {
	make_sample
	F=$FSPF
	rm "$ROOT/app/current"
	mkdir "$ROOT/app/current"
	echo obstacle >"$ROOT/app/current/x"
	# the new version of one file, to see whether it leaked into the tree
	make_chunked "$SRC/app/other.bin" othervtwo "$BIG_SIZE"
	snapshot "$F"
	run fspf addf "$F" /app "$SRC/app" "$ROOT/app" --key-file "$KEY"
	expect_error_unchanged "$ROOT/app/current"
	rm -r "$ROOT/app/current"
	ln -s data.bin "$ROOT/app/current"
	verify_sample
	[ "$RC" -eq 0 ] || fail "after a failed addf the previously protected tree no longer verifies (outputs were replaced although the fspf was not)"
	cat_sample /app/data.bin
	expect_rc 0
	cmp -s "$OUT" "$SRC/app/data.bin" || fail "cat after a failed addf"
}

case_err_create_exists() {
	make_sample_source
	F=$W/f.pb
	fspf create "$F" >/dev/null
	snapshot "$F"
	run fspf create "$F"
	expect_error_unchanged "$F"
	expect_err 'exists'
	run fspf create "$F" 1
	expect_error_unchanged "$F"
	# not an fspf: not overwritten either
	cp "$SRC/etc/hostname" "$W/precious"
	run fspf create "$W/precious"
	expect_rc 1
	expect_error_naming "$W/precious"
	cmp -s "$W/precious" "$SRC/etc/hostname" || fail "create overwrote a file"
	# a dangling symlink is not followed either
	ln -s "$W/target-of-link" "$W/link.pb"
	run fspf create "$W/link.pb"
	expect_rc 1
	[ ! -e "$W/target-of-link" ] || fail "create wrote through a symlink"
	# -f / --force replace
	fspf addr "$F" /x -a --kernel /x >/dev/null
	run fspf create -f "$F"
	expect_rc 0
	run fspf show --json "$F"
	json_check 'd["regions"] == [] and d["entries"] == []'
	run fspf create "$F" --force 1
	expect_rc 0
	run fspf create "$W/v2.pb" 2
	expect_rc 2
	expect_err "version"
	[ ! -e "$W/v2.pb" ] || fail "create wrote an fspf of an unsupported version"
}

case_err_encrypt_needs_current_key() {
	make_sample
	F=$FSPF
	wrong=$W/wrong.key
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$wrong"
	chmod 600 "$wrong"
	snapshot "$F"
	run fspf encrypt "$F"
	expect_error_unchanged "$F"
	expect_err 'key'
	run fspf encrypt "$F" --current-key-file "$wrong"
	expect_error_unchanged "$F"
	expect_err 'wrong key'
}

# encrypt re-seals under a fresh key that exists nowhere else: when the key
# cannot be handed out (--key-file cannot be written, stdout fails), the
# command must fail AND leave the fspf as it was, else the fspf is lost.
encrypt_key_lost_case() { # how: key-file | stdout
	make_sample_source
	mkdir rootfs
	F=$W/f.pb
	fspf create "$F" >/dev/null
	fspf addr "$F" / -n --kernel / >/dev/null
	fspf addr "$F" /app -e --kernel /app >/dev/null
	fspf addf "$F" /app "$SRC/app" rootfs/app >/dev/null
	snapshot "$F"
	if [ "$1" = key-file ]; then
		run fspf encrypt "$F" --key-file "$W/no-such-dir/key"
		expect_rc 1
		expect_error_naming "$W/no-such-dir/key"
	else
		set +e
		"$BIN" encrypt "$F" >/dev/full 2>"$ERR"
		RC=$?
		set -e
		[ "$RC" -ne 0 ] || fail "encrypt exited 0 although its key line could not be written (the key is lost)"
	fi
	cmp -s "$F" "$W/snap.fspf" ||
		fail "encrypt failed to hand out the new key but re-sealed the fspf under it: the fspf can no longer be opened"
	[ -z "$(leftover_temps "$W")" ] || fail "temporary files left"
}
case_err_encrypt_key_file_unwritable() { encrypt_key_lost_case key-file; }
case_err_encrypt_stdout_full() { encrypt_key_lost_case stdout; }

# create-volume -e encrypts the volume in place under a fresh key: when the
# key cannot be handed out, the volume must stay as it was (plaintext).
volume_key_lost_case() {
	make_sample_source
	cp -a "$SRC/app" vol
	if [ "$1" = key-file ]; then
		run fspf create-volume -e vol --key-file "$W/no-such-dir/key"
		expect_rc 1
		expect_error_naming "$W/no-such-dir/key"
	else
		set +e
		"$BIN" create-volume -e vol --envar-output >/dev/full 2>"$ERR"
		RC=$?
		set -e
		[ "$RC" -ne 0 ] || fail "create-volume exited 0 although its key could not be written (the key is lost)"
	fi
	cmp -s vol/data.bin "$SRC/app/data.bin" ||
		fail "create-volume failed to hand out the key but encrypted the volume under it: its data is lost"
	[ ! -e vol/volume.fspf ] || fail "a failed create-volume left vol/volume.fspf"
}
case_err_create_volume_key_file_unwritable() { volume_key_lost_case key-file; }
case_err_create_volume_stdout_full() { volume_key_lost_case stdout; }

# show --tag feeds scripts (TAG=$(scone-fspf show --tag F)): a tag that could
# not be written must not look like success.
case_err_show_tag_stdout_full() {
	small_fspf
	set +e
	"$BIN" show --tag "$F" >/dev/full 2>"$ERR"
	RC=$?
	set -e
	[ "$RC" -eq 1 ] || fail "show --tag >/dev/full exited $RC, expected 1"
}

# --- keys, tags and file modes ----------------------------------------------------------

case_file_modes() {
	umask 022
	make_sample_source
	mkdir -p rootfs/usr
	fspf create fspf.pb >/dev/null
	[ "$(stat -c %a fspf.pb)" = 600 ] || fail "create: fspf mode $(stat -c %a fspf.pb)"
	fspf addr fspf.pb / -n --kernel / >/dev/null
	fspf addr fspf.pb /app -e --kernel /app >/dev/null
	fspf addf fspf.pb /app "$SRC/app" rootfs/app >/dev/null
	[ "$(stat -c %a fspf.pb)" = 600 ] || fail "addf: fspf mode $(stat -c %a fspf.pb)"
	echo "old" >key.txt
	chmod 644 key.txt
	fspf encrypt fspf.pb --key-file key.txt >/dev/null
	[ "$(stat -c %a key.txt)" = 600 ] || fail "encrypt --key-file: key file mode $(stat -c %a key.txt)"
	[ "$(stat -c %a fspf.pb)" = 600 ] || fail "encrypt: fspf mode $(stat -c %a fspf.pb)"
	grep -Eq "^$HEX64\$" key.txt || fail "the key file is not 64 hex digits and a newline"
	[ "$(stat -c %s key.txt)" -eq 65 ] || fail "the key file is not 65 bytes"
	# outputs keep the sources' modes
	[ "$(stat -c %a rootfs/app/conf/secret.txt)" = 640 ] || fail "output mode of secret.txt"
	[ "$(stat -c %a rootfs/app/data.bin)" = "$(stat -c %a "$SRC/app/data.bin")" ] || fail "output mode of data.bin"
	# volumes
	cp -a "$SRC/app" vol
	fspf create-volume -e vol --key-file vol.key >/dev/null
	[ "$(stat -c %a vol/volume.fspf)" = 600 ] || fail "volume.fspf mode"
	[ "$(stat -c %a vol.key)" = 600 ] || fail "create-volume --key-file mode"
	[ -z "$(leftover_temps "$W")" ] || fail "temporary files left: $(leftover_temps "$W")"
}

case_key_positional() {
	make_sample
	run fspf show "$FSPF" "$(cat "$KEY")"
	expect_rc 0
	expect_err '^scone-fspf: warning: .*visible to other users'
	expect_out "^tag: +$TAG\$"
	expect_out '/app/data\.bin'
	# without it (key file, 0600): no warning
	run fspf show "$FSPF" --key-file "$KEY"
	expect_rc 0
	[ ! -s "$ERR" ] || fail "show with a key file printed on stderr"
	# a wrong positional key
	run fspf show "$FSPF" "$(printf '%063d1' 0)"
	expect_rc 1
	expect_err 'wrong key'
	# the all-zero key is public: refused as a key
	run fspf show "$FSPF" "$(printf '%064d' 0)"
	expect_rc 1
	expect_err 'all-zero key'
	# a key given two ways: a usage error
	run fspf show "$FSPF" "$(cat "$KEY")" --key-file "$KEY"
	expect_rc 2
	expect_err 'one way'
}

case_key_file_readable_warning() {
	make_sample
	chmod 644 "$KEY"
	verify_sample
	expect_rc 0
	expect_err "^scone-fspf: warning: key file '$(re "$KEY")' is readable by others"
	chmod 640 "$KEY"
	verify_sample
	expect_rc 0
	expect_err 'readable by others'
	chmod 600 "$KEY"
	verify_sample
	expect_rc 0
	expect_not_any 'readable by others'
	# an unreadable or missing key file is an error naming it
	run fspf verify "$FSPF" --root "$ROOT" --key-file "$W/no-such.key"
	expect_rc 1
	expect_error_naming "$W/no-such.key"
}

case_key_fd() {
	make_sample
	run fspf verify "$FSPF" --root "$ROOT" --key-fd 3 3<"$KEY"
	expect_rc 0
	expect_out '^Verified .*: OK$'
	run fspf cat "$FSPF" /app/data.bin --root "$ROOT" --key-fd 4 4<"$KEY"
	expect_rc 0
	cmp -s "$OUT" "$SRC/app/data.bin" || fail "cat --key-fd"
	# from a pipe, on stdin
	set +e
	head -c 64 "$KEY" | "$BIN" verify "$FSPF" --root "$ROOT" --key-fd 0 >"$OUT" 2>"$ERR"
	RC=$?
	set -e
	expect_rc 0
	# a closed descriptor
	run fspf verify "$FSPF" --root "$ROOT" --key-fd 9
	expect_rc 1
	expect_err '^scone-fspf: error: .*file descriptor 9'
	run fspf verify "$FSPF" --root "$ROOT" --key-fd -1
	expect_rc 2
}

case_key_env() {
	make_sample
	run env SCONE_FSPF_KEY="$(cat "$KEY")" "$BIN" verify "$FSPF" --root "$ROOT"
	expect_rc 0
	expect_out '^Verified .*: OK$'
	run env SCONE_FSPF_KEY="$(cat "$KEY")" "$BIN" cat "$FSPF" /app/conf/secret.txt --root "$ROOT"
	expect_rc 0
	cmp -s "$OUT" "$SRC/app/conf/secret.txt" || fail "cat with SCONE_FSPF_KEY"
	run env SCONE_FSPF_KEY="$(cat "$KEY")" SCONE_FSPF_TAG="$TAG" "$BIN" verify "$FSPF" --root "$ROOT"
	expect_rc 0
	expect_not_any 'no expected tag'
	run env SCONE_FSPF_KEY=xyz "$BIN" verify "$FSPF" --root "$ROOT"
	expect_rc 1
	expect_err 'SCONE_FSPF_KEY'
	run env SCONE_FSPF_KEY="$(cat "$KEY")" SCONE_FSPF_TAG=123 "$BIN" verify "$FSPF" --root "$ROOT"
	expect_rc 1
	expect_err 'SCONE_FSPF_TAG'
}

case_expected_tag_forms() {
	make_sample
	verify_sample --expected-tag "$TAG"
	expect_rc 0
	expect_not_any 'no expected tag'
	printf '%s' "$TAG" >tag.nonl
	verify_sample --tag-file tag.nonl
	expect_rc 0
	echo "$TAG" >tag.nl
	verify_sample --tag-file tag.nl
	expect_rc 0
	verify_sample --expected-tag "${TAG^^}"
	expect_rc 0
	# a malformed --expected-tag or two tag sources: usage errors
	verify_sample --expected-tag "${TAG:0:31}"
	expect_rc 2
	expect_err 'expected-tag'
	verify_sample --expected-tag "$TAG" --tag-file tag.nl
	expect_rc 2
	verify_sample --tag-file "$W/no-such-tag"
	expect_rc 1
	expect_error_naming "$W/no-such-tag"
	# a mismatch names both tags
	verify_sample --expected-tag "$(printf '%032d' 0)"
	expect_rc 1
	expect_err "rollback"
	expect_err "$TAG"
}

case_encrypt_twice() {
	local k1 k2 t1 t2
	make_sample
	k1=$(cat "$KEY")
	t1=$TAG
	cp -p "$KEY" "$W/key1"
	run env SCONE_FSPF_KEY="$k1" "$BIN" encrypt "$FSPF" --key-file "$W/key2"
	expect_rc 0
	k2=$(awk '{print $11}' "$OUT")
	t2=$(awk '{print $9}' "$OUT")
	[[ $k2 =~ ^$HEX64$ ]] || fail "no key in the second encrypt line"
	[ "$k2" != "$k1" ] || fail "encrypt twice gave the same key"
	[ "$t2" != "$t1" ] || fail "encrypt twice gave the same tag"
	[ "$(cat "$W/key2")" = "$k2" ] || fail "--key-file holds another key than the printed one"
	run fspf verify "$FSPF" --root "$ROOT" --key-file "$W/key1"
	expect_rc 1
	expect_err 'wrong key'
	run fspf verify "$FSPF" --root "$ROOT" --key-file "$W/key2" --expected-tag "$t2"
	expect_rc 0
	# --current-key-file names the current key, --key-file the new one
	run fspf encrypt "$FSPF" --current-key-file "$W/key2" --key-file "$W/key3"
	expect_rc 0
	[ "$(awk '{print $11}' "$OUT")" = "$(cat "$W/key3")" ] || fail "third key"
	run fspf verify "$FSPF" --root "$ROOT" --key-file "$W/key3"
	expect_rc 0
	# The per-file keys did not change: the files were not re-encrypted.
	run fspf cat "$FSPF" /app/data.bin --root "$ROOT" --key-file "$W/key3"
	expect_rc 0
	cmp -s "$OUT" "$SRC/app/data.bin" || fail "cat after re-encrypting"
}

# Before encrypt: the fspf is sealed under the all-zero key; it verifies with
# a note and needs no key.
case_unencrypted_fspf() {
	make_sample_source
	mkdir -p rootfs
	fspf create fspf.pb >/dev/null
	fspf addr fspf.pb / -n --kernel / >/dev/null
	fspf addr fspf.pb /app -e --kernel /app >/dev/null
	fspf addf fspf.pb /app "$SRC/app" rootfs/app >/dev/null
	# anyone can write an unencrypted fspf: checking it needs an explicit choice
	for c in "verify fspf.pb" "cat fspf.pb /app/data.bin" "extract fspf.pb -o x"; do
		# shellcheck disable=SC2086
		run fspf $c --root rootfs
		expect_rc 1
		expect_err 'not encrypted yet.*--allow-unencrypted'
	done
	# ... and a key or an expected tag makes it an error even with that choice
	printf '%063d1\n' 0 >any.key
	chmod 600 any.key
	run fspf verify fspf.pb --root rootfs --allow-unencrypted --key-file any.key
	expect_rc 1
	expect_err 'a key was given but the fspf is not encrypted'
	run fspf verify fspf.pb --root rootfs --allow-unencrypted \
		--expected-tag "$(fspf show --tag fspf.pb)"
	expect_rc 1
	expect_err 'expected tag proves nothing'
	run fspf verify fspf.pb --root rootfs --allow-unencrypted
	expect_rc 0
	expect_out '^Verified .*: OK$'
	expect_err 'not encrypted'
	run fspf cat fspf.pb /app/data.bin --root rootfs --allow-unencrypted
	expect_rc 0
	cmp -s "$OUT" "$SRC/app/data.bin" || fail "cat of an unencrypted fspf"
	run fspf show fspf.pb
	expect_rc 0
	expect_out '^sealed: +not encrypted'
	# a body flip is tampering, not a wrong key
	flip_byte fspf.pb 200
	run fspf verify fspf.pb --root rootfs --allow-unencrypted
	expect_rc 1
	expect_err 'tamper|corrupt'
	expect_not_any 'wrong key'
}

# --- volumes ---------------------------------------------------------------------

volume_case() { # -e|-a
	local mode=$1 f
	make_sample_source
	cp -a "$SRC/app" vol
	run fspf create-volume "$mode" vol --envar-output
	expect_rc 0
	expect_lines 2
	expect_out "^export VOLUME_KEY=$HEX64\$"
	expect_out "^export VOLUME_TAG=$HEX32\$"
	eval "$(cat "$OUT")"
	[ -f vol/volume.fspf ] || fail "no vol/volume.fspf"
	run env SCONE_FSPF_KEY="$VOLUME_KEY" SCONE_FSPF_TAG="$VOLUME_TAG" "$BIN" verify vol/volume.fspf
	expect_rc 0
	expect_out '^Verified vol/volume\.fspf .*5 files.*: OK$'
	# from another directory, by absolute path
	(cd / && env SCONE_FSPF_KEY="$VOLUME_KEY" "$BIN" verify "$W/vol/volume.fspf" --expected-tag "$VOLUME_TAG") >"$OUT" 2>"$ERR" ||
		fail "verify of a volume from another directory"
	# from inside it
	(cd vol && env SCONE_FSPF_KEY="$VOLUME_KEY" "$BIN" verify volume.fspf --expected-tag "$VOLUME_TAG") >"$OUT" 2>"$ERR" ||
		fail "verify of a volume from inside it"
	run fspf show --json vol/volume.fspf --key-fd 3 3< <(echo "$VOLUME_KEY")
	expect_rc 0
	json_check 'len(d["regions"]) == 1 and d["regions"][0]["path"] == "/" and d["regions"][0]["kernel"] == "."'
	json_check '"/volume.fspf" not in [e["path"] for e in d["entries"]]'
	for f in data.bin other.bin empty conf/config.yaml conf/secret.txt; do
		run env SCONE_FSPF_KEY="$VOLUME_KEY" "$BIN" cat vol/volume.fspf "/$f"
		expect_rc 0
		cmp -s "$OUT" "$SRC/app/$f" || fail "cat /$f from the volume"
		if [ "$mode" = -e ] && [ -s "$SRC/app/$f" ]; then
			cmp -s "vol/$f" "$SRC/app/$f" && fail "$f is plaintext in an encrypted volume"
		elif [ "$mode" = -a ]; then
			cmp -s "vol/$f" "$SRC/app/$f" || fail "$f changed in an authenticated volume"
		fi
	done
	[ "$(readlink vol/current)" = data.bin ] || fail "the symlink in the volume"
	# no overwrite without -f
	cp -p vol/volume.fspf "$W/volume.before"
	run fspf create-volume "$mode" vol --envar-output
	expect_rc 1
	expect_error_naming vol
	cmp -s vol/volume.fspf "$W/volume.before" || fail "create-volume overwrote without -f"
	# tamper: caught
	flip_byte vol/data.bin 5000
	run env SCONE_FSPF_KEY="$VOLUME_KEY" "$BIN" verify vol/volume.fspf
	expect_rc 1
	expect_out '^/data\.bin: chunk 1 \(bytes 4096 to 8191\): verification failed$'
}
case_create_volume_encrypted() { volume_case -e; }
case_create_volume_authenticated() { volume_case -a; }

case_create_volume_output_path() {
	make_sample_source
	cp -a "$SRC/app" vol
	run fspf create-volume vol out -e -c 8192 -k 128 --key-file vol.key
	expect_rc 0
	expect_out "^Created volume in out AES-GCM tag: $HEX32 key: $HEX64\$"
	[ "$(awk '{print $NF}' "$OUT")" = "$(cat vol.key)" ] || fail "--key-file holds another key"
	[ ! -e vol/volume.fspf ] || fail "volume.fspf written to the source"
	cmp -s vol/data.bin "$SRC/app/data.bin" || fail "the source was changed"
	run fspf verify out/volume.fspf --key-file vol.key
	expect_rc 0
	run fspf show --json out/volume.fspf --key-file vol.key
	json_check 'd["regions"][0]["chunk_length"] == 8192 and d["regions"][0]["key_bits"] == 128'
	# -f replaces an existing volume
	run fspf create-volume -a -f vol out --envar-output
	expect_rc 0
}

# --- show --json, verify, cat, extract ----------------------------------------------

case_show_json() {
	make_sample
	run fspf show --json "$FSPF" --key-file "$KEY"
	expect_rc 0
	python3 -m json.tool "$OUT" >/dev/null || fail "show --json is not JSON"
	json_check 'd["tag"] == "'"$TAG"'" and d["encrypted"] is True'
	json_check '[r["path"] for r in d["regions"]] == ["/", "/app", "/usr/lib"]'
	json_check '[r["protection"] for r in d["regions"]] == ["not-protected", "encrypted", "authenticated"]'
	json_check 'sorted(e["path"] for e in d["entries"]) == sorted(["/app", "/app/conf", "/app/conf/config.yaml", "/app/conf/secret.txt", "/app/current", "/app/data.bin", "/app/empty", "/app/other.bin", "/usr/lib", "/usr/lib/empty.so", "/usr/lib/liba.so", "/usr/lib/liba.so.1", "/usr/lib/libb.so", "/usr/lib/sub", "/usr/lib/sub/notes.txt"])'
	json_check '{e["path"]: (e["type"], e["size"], e["chunks"]) for e in d["entries"]}["/app/data.bin"] == ("file", 13288, 4)'
	json_check '{e["path"]: (e["type"], e["size"], e["chunks"]) for e in d["entries"]}["/app/empty"] == ("file", 0, 0)'
	json_check '{e["path"]: e["type"] for e in d["entries"]}["/usr/lib/sub"] == "dir"'
	json_check '{e["path"]: e.get("target") for e in d["entries"]}["/app/current"] == "data.bin"'
	json_check '{e["path"]: e["mode"] for e in d["entries"]}["/app/conf/secret.txt"] == "0640"'
	# no key in the output
	expect_absent "$(cat "$KEY")"
	# odd file names are escaped
	mkdir -p odd
	printf 'x' >'odd/quote"back\slash'
	printf 'y' >"$(printf 'odd/tab\tname')"
	fspf addr "$FSPF" /odd -a --kernel /odd --key-file "$KEY" >/dev/null
	fspf addf "$FSPF" /odd odd --key-file "$KEY" >/dev/null
	run fspf show --json "$FSPF" --key-file "$KEY"
	expect_rc 0
	json_check '"/odd/quote\"back\\slash" in [e["path"] for e in d["entries"]]'
	json_check '"/odd/tab\tname" in [e["path"] for e in d["entries"]]'
}

case_verify_success() {
	make_sample
	verify_sample --expected-tag "$TAG"
	expect_rc 0
	expect_lines 1
	expect_out "^Verified $(re "$FSPF") \\(tag $TAG\\): 9 files, 54452 bytes in 19 chunks, 4 directories, 2 symlinks: OK\$"
	[ ! -s "$ERR" ] || fail "verify with key and tag printed on stderr"
	# files in the not-protected region are not checked
	echo "changed" >"$ROOT/etc/hostname"
	echo "new" >"$ROOT/etc/new"
	verify_sample --expected-tag "$TAG"
	expect_rc 0
}

case_cat_roundtrip() {
	local f
	make_sample
	for f in /usr/lib/liba.so /usr/lib/libb.so /usr/lib/empty.so /usr/lib/sub/notes.txt \
		/app/data.bin /app/other.bin /app/empty /app/conf/config.yaml /app/conf/secret.txt; do
		cat_sample "$f" --expected-tag "$TAG"
		expect_rc 0
		cmp "$OUT" "$SRC$f" || fail "cat $f differs from its plaintext"
	done
	[ "$(stat -c %s "$OUT")" -eq 500 ] || fail "size"
	cat_sample /app/conf
	expect_rc 1
	expect_error_naming /app/conf
	cat_sample /app/current
	expect_rc 1
	expect_error_naming /app/current
	cat_sample /etc/hostname
	expect_rc 1
	expect_error_naming /etc/hostname
	expect_err 'not-protected'
	cat_sample /app/nothing
	expect_rc 1
	expect_error_naming /app/nothing
	cat_sample app/data.bin
	expect_rc 1
	expect_error_naming app/data.bin
}

case_extract_roundtrip() {
	make_sample
	run fspf extract "$FSPF" -o "$W/x" --root "$ROOT" --key-file "$KEY"
	expect_rc 0
	diff -r --no-dereference "$SRC/app" "$W/x/app" >&2 || fail "extract /app"
	diff -r --no-dereference "$SRC/usr/lib" "$W/x/usr/lib" >&2 || fail "extract /usr/lib"
	[ "$(stat -c %a "$W/x/app/conf/secret.txt")" = 640 ] || fail "extract mode"
	run fspf extract "$FSPF" /app/conf -o "$W/y" --root "$ROOT" --key-file "$KEY"
	expect_rc 0
	diff -r "$SRC/app/conf" "$W/y/app/conf" >&2 || fail "extract /app/conf"
	[ ! -e "$W/y/app/data.bin" ] || fail "extract of /app/conf extracted more"
	# a tampered file is left out, with an error
	flip_byte "$ROOT/app/data.bin" 9000
	run fspf extract "$FSPF" /app -o "$W/z" --root "$ROOT" --key-file "$KEY"
	expect_rc 1
	expect_error_naming /app/data.bin
	[ ! -e "$W/z/app/data.bin" ] || fail "extract wrote a file that failed verification"
	[ -z "$(leftover_temps "$W/z")" ] || fail "extract left temporary files"
	cmp -s "$W/z/app/other.bin" "$SRC/app/other.bin" || fail "extract skipped a good file"
}

# Odd and extreme chunk lengths: every file reads back, a flip is caught in
# the right chunk.
case_chunk_sizes() {
	local c f size
	mkdir -p src rootfs
	for size in 0 1 511 512 513 999 1000 1001 4096 65537; do
		make_chunked "src/f$size" "f$size" "$size" 1000
	done
	truncate -s $((17 << 20)) src/sparse # 16 MiB + 1 MiB of zeros, sparse
	fspf create fspf.pb >/dev/null
	fspf addr fspf.pb / -n --kernel / >/dev/null
	for c in 512 1000 16777216; do
		fspf addr fspf.pb "/c$c" -e --kernel "/c$c" -c "$c" -k 128 >/dev/null
		fspf addf fspf.pb "/c$c" src "rootfs/c$c" >/dev/null
	done
	fspf encrypt fspf.pb --key-file k >/dev/null
	run fspf verify fspf.pb --root rootfs --key-file k
	expect_rc 0
	expect_out ' 33 files, '
	for c in 512 1000 16777216; do
		for f in src/*; do
			run fspf cat fspf.pb "/c$c/${f#src/}" --root rootfs --key-file k
			expect_rc 0
			cmp -s "$OUT" "$f" || fail "cat /c$c/${f#src/} differs"
		done
	done
	cmp -s rootfs/c1000/sparse src/sparse && fail "zeros stored in plain"
	flip_byte rootfs/c1000/f65537 65536
	flip_byte rootfs/c16777216/sparse $((16 << 20))
	run fspf verify fspf.pb --root rootfs --key-file k
	expect_rc 1
	expect_out '^/c1000/f65537: chunk 65 \(bytes 65000 to 65536\): verification failed$'
	expect_out '^/c16777216/sparse: chunk 1 \(bytes 16777216 to 17825791\): verification failed$'
	expect_problem_lines 2
}

expect_problem_lines() {
	local n
	n=$(grep -ac '^/' "$OUT" || true)
	[ "$n" -eq "$1" ] || fail "expected $1 problem lines, got $n"
}

# OUTPUT_DIR = SOURCE_DIR: the tree is encrypted in place.
case_addf_in_place() {
	make_sample_source
	mkdir rootfs
	cp -a "$SRC/app" rootfs/app
	fspf create fspf.pb >/dev/null
	fspf addr fspf.pb / -n --kernel / >/dev/null
	fspf addr fspf.pb /app -e --kernel /app >/dev/null
	run fspf addf fspf.pb /app rootfs/app rootfs/app
	expect_rc 0
	cmp -s rootfs/app/data.bin "$SRC/app/data.bin" && fail "not encrypted in place"
	run fspf verify fspf.pb --root rootfs --allow-unencrypted
	expect_rc 0
	expect_out ' 5 files, '
	run fspf cat fspf.pb /app/conf/config.yaml --root rootfs --allow-unencrypted
	expect_rc 0
	cmp -s "$OUT" "$SRC/app/conf/config.yaml" || fail "cat after in-place addf"
	[ -z "$(leftover_temps "$W")" ] || fail "temporary files left"
}

# OUTPUT_DIR inside SOURCE_DIR: the output is not recorded as a source.
case_addf_output_inside_source() {
	make_sample_source
	fspf create fspf.pb >/dev/null
	fspf addr fspf.pb / -n --kernel / >/dev/null
	fspf addr fspf.pb /app -e --kernel /enc >/dev/null
	run fspf addf fspf.pb /app "$SRC/app" "$SRC/app/enc"
	expect_rc 0
	run fspf show --json fspf.pb
	json_check 'not any(e["path"].startswith("/app/enc") for e in d["entries"])'
	json_check 'len([e for e in d["entries"] if e["type"] == "file"]) == 5'
	run fspf verify fspf.pb --root "$SRC/app" --allow-unencrypted
	expect_rc 0
}

# Rotating the key into the same key file, with stdout full: the old key
# file must survive, and the fspf must still open with it.
case_err_encrypt_rotate_same_key_file() {
	make_sample
	cp -p "$KEY" key.old
	run fspf encrypt "$FSPF" --current-key-file "$KEY" --key-file "$KEY"
	# that worked: rotate once more, now with nowhere to print the key
	expect_rc 0
	cp -p "$KEY" key.old
	cp -p "$FSPF" fspf.old
	set +e
	"$BIN" encrypt "$FSPF" --current-key-file "$KEY" --key-file "$KEY" \
		>/dev/full 2>"$ERR"
	RC=$?
	set -e
	expect_rc 1
	cmp -s "$KEY" key.old || fail "the current key file was replaced or lost"
	cmp -s "$FSPF" fspf.old || fail "the fspf changed"
	verify_sample
	expect_rc 0
	[ -z "$(leftover_temps "$W")" ] || fail "temporary files left"
}

# addf that fails at its very last step (the fspf cannot be replaced):
# every output it had already renamed into place must be put back.
case_err_addf_commit_fails_restores_outputs() {
	make_sample
	local before
	before=$(cd "$ROOT/app" && find . -type f -exec sha256sum {} + | sort)
	cp -p "$FSPF" fspf.old
	echo "new content" >"$SRC/app/conf/config.yaml"
	if ! chattr +i "$FSPF" 2>/dev/null; then
		echo "SKIP: chattr +i is not supported on this file system" >&2
		exit 77
	fi
	run fspf addf "$FSPF" /app "$SRC/app" "$ROOT/app" --key-file "$KEY"
	chattr -i "$FSPF"
	expect_rc 1
	cmp -s "$FSPF" fspf.old || fail "the fspf changed"
	[ "$(cd "$ROOT/app" && find . -type f -exec sha256sum {} + | sort)" = "$before" ] ||
		fail "outputs were not restored"
	verify_sample
	expect_rc 0
	[ -z "$(leftover_temps "$W")" ] || fail "temporary files left"
}

# A symlink already in the output tree is not followed by extract.
case_extract_no_symlink_escape() {
	make_sample
	mkdir -p out elsewhere
	ln -s "$W/elsewhere" out/app
	run fspf extract "$FSPF" -o out --root "$ROOT" --key-file "$KEY"
	expect_rc 1
	expect_err 'not a directory'
	[ -z "$(ls -A elsewhere)" ] || fail "extract wrote through a symlink"
	# no region below a recorded symlink
	run fspf addr "$FSPF" /usr/lib/liba.so.1/x -a --kernel /usr/lib/liba.so.1/x --key-file "$KEY"
	expect_rc 1
	expect_err 'stands above its embed point'
}

# More files than open descriptors allowed: addf and verify keep no file
# open longer than its work (verify used to keep every one open).
case_many_files_low_fd_limit() {
	mkdir src
	for i in $(seq 300); do echo "$i" >"src/f$i"; done
	fspf create fspf.pb >/dev/null
	fspf addr fspf.pb / -e --kernel /out >/dev/null
	(
		ulimit -n 48
		"$BIN" addf fspf.pb / src out >/dev/null &&
			"$BIN" encrypt fspf.pb --key-file k >/dev/null &&
			"$BIN" verify fspf.pb --root . --key-file k
	) >"$OUT" 2>"$ERR" && RC=0 || RC=$?
	expect_rc 0
	expect_out ' 300 files, .*: OK$'
}

# show --tag with a key verifies; a key-looking argument is not echoed.
case_show_tag_with_key_verifies() {
	make_sample
	run fspf show --tag "$FSPF" --key-file "$KEY"
	expect_rc 0
	expect_out "^$TAG\$"
	flip_byte "$FSPF" 300
	run fspf show --tag "$FSPF"
	expect_rc 0 # no key: the tag as stored, nothing proven
	run fspf show --tag "$FSPF" --key-file "$KEY"
	expect_rc 1
	expect_err 'failed verification'
	run fspf verify "$FSPF" "$(cat "$KEY")"
	expect_rc 2
	expect_err 'looks like a key'
	expect_absent "$(cat "$KEY")"
}

case_help_version() {
	run fspf --help
	expect_rc 0
	expect_out '^Usage: scone-fspf'
	run fspf --version
	expect_rc 0
	expect_out 'fspf format 1\.1'
	run fspf addr --help
	expect_rc 0
}

# -------------------------------------------------------------------------------

run_case cli "$@"
