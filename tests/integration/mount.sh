#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The FUSE mount, read-only: mount the sample tree with `scone-fspf mount`
# and look at it with ordinary programs (cat, cmp, ls, find, dd): verified
# plaintext, listings from the fspf, EIO on tampered chunks with no
# plaintext of them, refusals before mounting, clean unmounts.
# Usage: mount.sh CASE | --list   (skips with 77 only without /dev/fuse)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

MNT=$W/mnt
DLOG=$W/daemon.err # the foreground daemon's stderr
DPID=              # the foreground daemon we started
mkdir "$MNT"

# --- helpers ---------------------------------------------------------------


unmount_now() {
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
}

# At exit, whatever happened: nothing left mounted, no daemon of ours left.
cleanup_mount() {
	if mountpoint -q "$MNT" 2>/dev/null; then
		unmount_now || true
	fi
	if [ -n "$DPID" ] && alive "$DPID"; then
		kill -TERM "$DPID" 2>/dev/null || true
	fi
	if [ -n "$DPID" ]; then
		wait "$DPID" 2>/dev/null || true
	fi
}
on_exit cleanup_mount

# mount_fg ARGS: the daemon in the foreground (-f), in the background here,
# stderr in $DLOG. ARGS replace the sample's key and tag options.
mount_fg() {
	# A background job of a script ignores SIGINT: give it back.
	env --default-signal=INT "$BIN" mount "$FSPF" "$MNT" --root "$ROOT" -f "$@" \
		>"$W/daemon.out" 2>"$DLOG" &
	DPID=$!
	wait_mounted
}

# The sample mounted with its key and tag.
mount_sample() {
	mount_fg --key-file "$KEY" --expected-tag "$TAG"
}

# Wait (at most 10 s) for the foreground daemon to end; its exit status must
# be @1, nothing must stay mounted, and no sanitizer may have spoken.
expect_daemon_exit() {
	local i rc
	for ((i = 0; i < 100; i++)); do
		alive "$DPID" || break
		sleep 0.1
	done
	alive "$DPID" && fail "the daemon did not end within 10 s"
	set +e
	wait "$DPID"
	rc=$?
	set -e
	DPID=
	check_sanitizers "$DLOG"
	[ "$rc" -eq "$1" ] || {
		cat "$DLOG" >&2
		fail "the daemon exited with $rc, expected $1"
	}
	if mountpoint -q "$MNT"; then
		fail "$MNT is still mounted after the daemon ended"
	fi
	return 0
}

# Unmount as a user would and check that the daemon ended cleanly.
unmount_sample() {
	unmount_busy_retry "$MNT" || fail "fusermount3 -u failed"
	expect_daemon_exit 0
}

expect_not_mounted() {
	if mountpoint -q "$MNT"; then
		fail "$MNT is mounted but must not be"
	fi
	return 0
}

# A refused mount: exit 1 at once, an error naming the fspf, nothing mounted.
# ARGS: the key and tag options (and more).
expect_refused() {
	run timeout 20 "$BIN" mount "$FSPF" "$MNT" --root "$ROOT" "$@"
	expect_rc 1
	expect_error_naming "$FSPF"
	expect_not_mounted
}

# The pid of the background daemon started by this test as
# `$BIN mount @1 @2 ...` (the arguments name this test's workspace).
daemon_pid() {
	pgrep -f -- "^$(re "$BIN") mount $(re "$1") $(re "$2")( |$)" || true
}

# Chunk @2 of file @1 (4096 bytes, or the rest).
chunk_of() {
	dd if="$1" bs="$CHUNK" skip="$2" count=1 status=none
}

# A listing of directory @1 that both the mount and the plaintext must give:
# type, mode, owner, size (not for directories) and mtime of every entry.
listing() {
	(cd "$1" && find . -mindepth 1 -printf '%p %y %m %U:%G %s %T@\n' |
		awk '$2 == "d" { $5 = "-" } { print }' | sort)
}

# --- cases -----------------------------------------------------------------

# Every protected file reads back byte-identical to its plaintext.
case_read_plaintext() {
	local f rel n=0
	make_sample
	mount_sample
	while IFS= read -r f; do
		rel=${f#"$SRC"}
		cmp "$f" "$MNT$rel" || fail "$rel differs from its plaintext"
		n=$((n + 1))
	done < <(find "$SRC/app" "$SRC/usr/lib" -type f)
	[ "$n" -eq 9 ] || fail "expected 9 files, compared $n"
	# Odd offsets and lengths across chunk boundaries.
	cmp <(dd if="$MNT/app/data.bin" bs=1000 skip=3 count=7 status=none) \
		<(dd if="$SRC/app/data.bin" bs=1000 skip=3 count=7 status=none) ||
		fail "a read across chunks differs"
	unmount_sample
	[ ! -s "$DLOG" ] || fail "the daemon logged: $(cat "$DLOG")"
}

# A protected directory lists exactly what the fspf records: a file put on
# the host afterwards does not exist in the mount.
case_listing_from_fspf() {
	make_sample
	echo intruder >"$ROOT/app/intruder"
	echo intruder >"$ROOT/usr/lib/sub/intruder.so"
	mkdir "$ROOT/app/conf/intruder.d"
	mount_sample
	[ "$(listing "$MNT/app")" = "$(listing "$SRC/app")" ] ||
		fail "$(diff <(listing "$SRC/app") <(listing "$MNT/app"))"
	[ "$(listing "$MNT/usr/lib")" = "$(listing "$SRC/usr/lib")" ] ||
		fail "$(diff <(listing "$SRC/usr/lib") <(listing "$MNT/usr/lib"))"
	run ls -la "$MNT/app" "$MNT/usr/lib/sub" "$MNT/app/conf"
	expect_rc 0
	expect_out ' data\.bin$'
	expect_out ' secret\.txt$'
	expect_not_any intruder
	run find "$MNT"
	expect_rc 0
	expect_out '/app/conf/config\.yaml$'
	expect_not_any intruder
	run stat "$MNT/app/intruder"
	expect_rc 1
	expect_err 'No such file'
	run cat "$MNT/usr/lib/sub/intruder.so"
	expect_rc 1
	expect_err 'No such file'
	unmount_sample
}

# Symbolic links read back and lead to their verified targets.
case_symlinks() {
	make_sample
	mount_sample
	[ "$(readlink "$MNT/app/current")" = data.bin ] || fail "readlink /app/current"
	[ "$(readlink "$MNT/usr/lib/liba.so.1")" = liba.so ] ||
		fail "readlink /usr/lib/liba.so.1"
	[ -L "$MNT/app/current" ] || fail "/app/current is not a symlink"
	cmp "$MNT/app/current" "$SRC/app/data.bin" || fail "reading through /app/current"
	cmp "$MNT/usr/lib/liba.so.1" "$SRC/usr/lib/liba.so" ||
		fail "reading through /usr/lib/liba.so.1"
	unmount_sample
}

# The not-protected region passes through to the host, changes included.
case_not_protected_passthrough() {
	make_sample
	mount_sample
	[ "$(cat "$MNT/etc/hostname")" = sample-host ] || fail "/etc/hostname"
	echo later >"$ROOT/etc/added-later"
	[ "$(cat "$MNT/etc/added-later")" = later ] || fail "a host change does not show"
	run ls "$MNT"
	expect_rc 0
	expect_out '^app$'
	expect_out '^etc$'
	expect_out '^usr$'
	run df -P "$MNT"
	expect_rc 0
	expect_out '^fshield '
	unmount_sample
}

# Nothing can be written, in any region.
case_writes_refused() {
	local p
	make_sample
	mount_sample
	for p in /app/data.bin /usr/lib/liba.so /etc/hostname; do
		run sh -c 'echo x >>"$1"' sh "$MNT$p"
		[ "$RC" -ne 0 ] || fail "appending to $p succeeded"
		expect_err 'Read-only file system'
		run truncate -s 0 "$MNT$p"
		[ "$RC" -ne 0 ] || fail "truncate of $p succeeded"
		run rm -f "$MNT$p"
		[ "$RC" -ne 0 ] || fail "rm of $p succeeded"
	done
	for p in /app/new /usr/lib/new /etc/new; do
		run sh -c 'echo x >"$1"' sh "$MNT$p"
		[ "$RC" -ne 0 ] || fail "creating $p succeeded"
		expect_err 'Read-only file system'
		run mkdir "$MNT$p.d"
		[ "$RC" -ne 0 ] || fail "mkdir $p.d succeeded"
	done
	run mv "$MNT/app/data.bin" "$MNT/app/moved"
	[ "$RC" -ne 0 ] || fail "rename succeeded"
	run chmod 777 "$MNT/etc/hostname"
	[ "$RC" -ne 0 ] || fail "chmod succeeded"
	if [ -e "$ROOT/etc/new" ] || [ -e "$ROOT/app/new" ]; then
		fail "a file appeared on the host"
	fi
	cmp "$SRC/app/data.bin" "$MNT/app/data.bin" || fail "data.bin changed"
	unmount_sample
}

# A flipped byte in chunk 1 of @1 (auth|enc): cat fails with EIO and prints
# nothing of chunk 1 or after; the other chunks still read; the daemon logs
# the file and the chunk.
tamper_case() {
	local p name k
	case $1 in
	enc) p=/app/data.bin name=data ;;
	auth) p=/usr/lib/liba.so name=liba ;;
	esac
	make_sample
	flip_byte "$ROOT$p" $((CHUNK + 77))
	mount_sample
	run cat "$MNT$p"
	[ "$RC" -ne 0 ] || fail "cat of a tampered file succeeded"
	expect_err 'Input/output error'
	expect_absent "$(marker "$name" 1)"
	expect_absent "$(marker "$name" 2)"
	[ "$(stat -c %s "$OUT")" -le "$CHUNK" ] || fail "cat released more than chunk 0"
	cmp -s -n "$(stat -c %s "$OUT")" "$OUT" "$SRC$p" ||
		fail "cat released bytes that are not the plaintext"
	run dd if="$MNT$p" bs="$CHUNK" skip=1 count=1 status=none
	[ "$RC" -ne 0 ] || fail "dd of the tampered chunk succeeded"
	expect_err 'Input/output error'
	expect_absent "$(marker "$name" 1)"
	for k in 0 2 3; do
		cmp <(chunk_of "$MNT$p" "$k") <(chunk_of "$SRC$p" "$k") ||
			fail "chunk $k of $p does not read back"
	done
	[ "$(stat -c %s "$MNT$p")" -eq "$BIG_SIZE" ] || fail "size of $p"
	cmp "$MNT/app/other.bin" "$SRC/app/other.bin" || fail "other.bin"
	cmp "$MNT/usr/lib/libb.so" "$SRC/usr/lib/libb.so" || fail "libb.so"
	unmount_sample
	grep -aF -- "$p" "$DLOG" | grep -aEq 'chunk 1\b' ||
		fail "no log line names $p and chunk 1: $(cat "$DLOG")"
	if grep -aFq -- "$(marker "$name" 1)" "$DLOG" "$W/daemon.out"; then
		fail "the daemon printed plaintext of the bad chunk"
	fi
}

case_tamper_encrypted() { tamper_case enc; }
case_tamper_authenticated() { tamper_case auth; }

# A wrong key is refused before anything is mounted.
case_refuse_wrong_key() {
	make_sample
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$W/other.key"
	chmod 600 "$W/other.key"
	expect_refused --key-file "$W/other.key" --expected-tag "$TAG"
	expect_err 'wrong key'
	expect_refused --expected-tag "$TAG" # no key at all
	expect_err 'give its key'
}

# A rollback: the fspf of an older state, offered with the newer tag.
case_refuse_stale_tag() {
	local old_tag new_tag
	make_sample
	old_tag=$TAG
	cp "$FSPF" "$W/old.pb"
	run fspf addr "$FSPF" /srv --authenticated --kernel /srv --key-file "$KEY"
	expect_rc 0
	new_tag=$(awk '{print $NF}' "$OUT")
	[[ $new_tag =~ ^[0-9a-f]{32}$ ]] || fail "no new tag"
	[ "$new_tag" != "$old_tag" ] || fail "the tag did not change"
	cp "$W/old.pb" "$FSPF"
	expect_refused --key-file "$KEY" --expected-tag "$new_tag"
	expect_err 'its tag is not the expected one: suspected rollback or tampering'
	echo "$new_tag" >"$W/new.tag"
	expect_refused --key-file "$KEY" --tag-file "$W/new.tag"
	expect_err 'suspected rollback'
	run env SCONE_FSPF_TAG="$new_tag" "$BIN" mount "$FSPF" "$MNT" \
		--root "$ROOT" --key-file "$KEY"
	expect_rc 1
	expect_err 'suspected rollback'
	expect_not_mounted
}

# No expected tag: refused, unless --no-rollback-protection (with a warning).
case_refuse_no_tag() {
	make_sample
	expect_refused --key-file "$KEY"
	expect_err 'no expected tag'
	expect_err 'no-rollback-protection'
	mount_fg --key-file "$KEY" --no-rollback-protection
	grep -aq 'rollback' "$DLOG" || fail "no warning about rollback: $(cat "$DLOG")"
	cmp "$MNT/app/data.bin" "$SRC/app/data.bin" || fail "data.bin"
	unmount_sample
	# Both at once is a usage error.
	run "$BIN" mount "$FSPF" "$MNT" --root "$ROOT" --key-file "$KEY" \
		--expected-tag "$TAG" --no-rollback-protection
	expect_rc 2
	expect_not_mounted
}

# An fspf that was never encrypted: refused, even with a key or a tag;
# mounted only with --allow-unencrypted and no rollback protection.
case_refuse_unencrypted() {
	make_sample_source
	mkdir -p "$ROOT/app"
	{
		fspf create "$FSPF"
		fspf addr "$FSPF" / --kernel / --not-protected
		fspf addr "$FSPF" /app --encrypted --kernel /app
		fspf addf "$FSPF" /app "$SRC/app" "$ROOT/app"
	} >/dev/null
	expect_refused --no-rollback-protection
	expect_err 'not encrypted'
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$KEY"
	chmod 600 "$KEY"
	expect_refused --no-rollback-protection --allow-unencrypted --key-file "$KEY"
	expect_err 'not encrypted'
	expect_refused --allow-unencrypted --expected-tag "$(fspf show --tag "$FSPF")"
	expect_err 'proves nothing'
	mount_fg --allow-unencrypted --no-rollback-protection
	grep -aqi 'not encrypted' "$DLOG" || fail "no loud warning: $(cat "$DLOG")"
	cmp "$MNT/app/data.bin" "$SRC/app/data.bin" || fail "data.bin"
	unmount_sample
}

# SIGTERM and SIGINT of the daemon unmount cleanly, also with a file open.
case_signals_unmount() {
	local sig
	make_sample
	for sig in TERM INT; do
		mount_sample
		cmp "$MNT/app/data.bin" "$SRC/app/data.bin" || fail "data.bin"
		exec 3<"$MNT/app/other.bin"
		kill -"$sig" "$DPID"
		expect_daemon_exit 0
		exec 3<&-
	done
}

# `fusermount3 -u` (and, as root, umount) ends the foreground daemon.
case_fusermount_ends_daemon() {
	make_sample
	mount_sample
	# stat, not ls: a directory handle whose release the kernel drops at
	# the unmount is a libfuse allocation LeakSanitizer then reports
	stat "$MNT/app/data.bin" >/dev/null
	fusermount3 -u "$MNT"
	expect_daemon_exit 0
	if [ "$(id -u)" -eq 0 ]; then
		mount_sample
		cmp "$MNT/app/data.bin" "$SRC/app/data.bin" || fail "data.bin"
		umount "$MNT"
		expect_daemon_exit 0
	fi
}

# Protected files damaged as wholes on the host (removed, truncated,
# extended, replaced by a directory) cannot be opened; the rest still read.
case_host_files_damaged() {
	make_sample
	rm "$ROOT/app/other.bin"
	truncate -s $((2 * CHUNK)) "$ROOT/usr/lib/libb.so"
	printf 'more' >>"$ROOT/app/data.bin"
	rm "$ROOT/app/conf/config.yaml"
	mkdir "$ROOT/app/conf/config.yaml"
	mount_sample
	run cat "$MNT/app/other.bin"
	[ "$RC" -ne 0 ] || fail "a file missing on the host reads"
	expect_absent "$(marker other 0)"
	run cat "$MNT/usr/lib/libb.so"
	expect_rc 1
	expect_err 'Input/output error'
	expect_absent "$(marker libb 0)"
	run cat "$MNT/app/data.bin"
	expect_rc 1
	expect_err 'Input/output error'
	expect_absent "$(marker data 0)"
	run cat "$MNT/app/conf/config.yaml"
	expect_rc 1
	expect_err 'Input/output error'
	# The listing and the sizes are still the fspf's.
	[ "$(stat -c %s "$MNT/usr/lib/libb.so")" -eq "$BIG_SIZE" ] || fail "size"
	[ -f "$MNT/app/conf/config.yaml" ] || fail "type"
	cmp "$MNT/usr/lib/liba.so" "$SRC/usr/lib/liba.so" || fail "liba.so"
	cmp "$MNT/app/conf/secret.txt" "$SRC/app/conf/secret.txt" || fail "secret.txt"
	unmount_sample
	grep -aFq /usr/lib/libb.so "$DLOG" || fail "no log line names libb.so"
}

# Background mode with relative paths, the key from a file descriptor and
# the tag from the environment: the command returns once mounted; the
# daemon ends on `fusermount3 -u`, and on SIGTERM.
case_daemon_mode() {
	local pid i rel
	make_sample
	rel=${W##*/}
	cd "$W/.."
	run env SCONE_FSPF_TAG="$TAG" "$BIN" mount "$rel/fspf.pb" "$rel/mnt" \
		--root "$rel/rootfs" --key-fd 3 3<"$KEY"
	expect_rc 0
	mountpoint -q "$MNT" || fail "not mounted when mount returned"
	cmp "$MNT/app/data.bin" "$SRC/app/data.bin" || fail "data.bin"
	pid=$(daemon_pid "$rel/fspf.pb" "$rel/mnt")
	[[ $pid =~ ^[0-9]+$ ]] || fail "not one daemon process: '$pid'"
	fusermount3 -u "$MNT"
	for ((i = 0; i < 100; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	alive "$pid" && fail "the daemon survived fusermount3 -u"

	run env SCONE_FSPF_KEY="$(cat "$KEY")" SCONE_FSPF_TAG="$TAG" \
		"$BIN" mount "$rel/fspf.pb" "$rel/mnt" --root "$rel/rootfs"
	expect_rc 0
	mountpoint -q "$MNT" || fail "not mounted the second time"
	pid=$(daemon_pid "$rel/fspf.pb" "$rel/mnt")
	[[ $pid =~ ^[0-9]+$ ]] || fail "not one daemon process: '$pid'"
	kill -TERM "$pid"
	for ((i = 0; i < 100; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	alive "$pid" && fail "the daemon survived SIGTERM"
	expect_not_mounted
}

# Many readers at once (the daemon is multithreaded).
case_parallel_reads() {
	local i f pids=()
	make_sample
	mount_sample
	for i in 1 2 3 4 5 6 7 8; do
		for f in app/data.bin app/other.bin usr/lib/liba.so; do
			cmp -s "$MNT/$f" "$SRC/$f" &
			pids+=($!)
		done
	done
	for i in "${pids[@]}"; do
		wait "$i" || fail "a parallel read differed"
	done
	unmount_sample
}

# Usage errors and bad places exit before mounting.
case_bad_arguments() {
	make_sample
	run "$BIN" mount "$FSPF"
	expect_rc 2
	run "$BIN" mount "$FSPF" "$MNT" extra --key-file "$KEY"
	expect_rc 2
	run "$BIN" mount "$FSPF" "$MNT" -o rw --key-file "$KEY" --expected-tag "$TAG"
	expect_rc 2
	expect_err 'pass --rw'
	run "$BIN" mount "$FSPF" "$MNT" --rw -o ro --key-file "$KEY" --expected-tag "$TAG"
	expect_rc 2
	expect_err 'contradicts --rw'
	run "$BIN" mount "$FSPF" "$W/nowhere" --key-file "$KEY" --expected-tag "$TAG"
	expect_rc 1
	expect_err 'nowhere'
	# The daemon must not read the tree through its own mount.
	run "$BIN" mount "$FSPF" "$W" --root "$ROOT" --key-file "$KEY" \
		--expected-tag "$TAG"
	expect_rc 1
	expect_err 'would hide'
	run "$BIN" mount "$FSPF" "$MNT" --root "$ROOT" --key-file "$KEY" \
		--expected-tag "$TAG" -o no_such_option
	expect_rc 1
	expect_not_mounted
	run "$BIN" mount --help
	expect_rc 0
	expect_out '^Usage: scone-fspf mount FSPF MOUNTPOINT'
}

# --- read-write ------------------------------------------------------------

# The sample mounted read-write; new tags go to $W/new.tag.
mount_rw() {
	mount_fg --rw --key-file "$KEY" --expected-tag "$TAG" \
		--tag-file "$W/new.tag" "$@"
}

# The tag the foreground daemon printed at unmount, checked against the tag
# file: SCONE's line, the tag in field 9.
committed_tag() {
	local t
	t=$(awk '/^Committed file system protection file / {print $9}' "$W/daemon.out")
	[[ $t =~ ^[0-9a-f]{32}$ ]] || fail "no 'Committed ...' line: $(cat "$W/daemon.out")"
	[ "$(cat "$W/new.tag")" = "$t" ] || fail "the tag file is not the printed tag"
	echo "$t"
}

# Change every region as a user would: copy in, untar, edit, rename, delete.
# The same changes go to the plaintext copy $SRC, the reference.
rw_changes() {
	local d
	for d in "$1" "$SRC"; do
		cp -r "$here" "$d/app/scripts"
		tar -C "$d/usr/lib" -xf "$W/in.tar"
		printf 'appended\n' >>"$d/app/conf/config.yaml"
		sed -i 's/MK_/mk_/g' "$d/app/conf/secret.txt" # writes a temp, renames it
		mv "$d/app/other.bin" "$d/app/renamed.bin"
		rm "$d/usr/lib/libb.so" "$d/app/current"
		ln -s renamed.bin "$d/app/current"
		rm -r "$d/usr/lib/sub"
		mkdir -p "$d/app/new/deeper"
		dd if=/dev/urandom of="$d/app/new/deeper/rand" bs=1000 count=37 status=none
		truncate -s 5000 "$d/app/data.bin"
		echo host-side >"$d/etc/written"
	done
	# The same random bytes on both sides.
	cp "$1/app/new/deeper/rand" "$SRC/app/new/deeper/rand"
}

# Read-write: what a user changes is what a remount at the new tag shows;
# the old tag is refused; verify passes at the new tag.
case_rw_roundtrip() {
	local new
	make_sample
	tar -C "$here" -cf "$W/in.tar" .
	mount_rw
	rw_changes "$MNT"
	diff -r "$SRC/app" "$MNT/app" >&2 || fail "the rw mount differs from the reference"
	unmount_sample
	new=$(committed_tag)
	[ "$new" != "$TAG" ] || fail "the tag did not change"
	[ "$(cat "$ROOT/etc/written")" = host-side ] || fail "not-protected write"
	run "$BIN" verify "$FSPF" --root "$ROOT" --key-file "$KEY" --tag-file "$W/new.tag"
	expect_rc 0
	expect_out 'OK$'
	# The plaintext never reached the host in the encrypted region.
	if grep -rq 'appended' "$ROOT/app"; then
		fail "plaintext of an encrypted file on the host"
	fi
	mount_fg --key-file "$KEY" --tag-file "$W/new.tag"
	diff -r "$SRC/app" "$MNT/app" >&2 || fail "remount: /app differs"
	diff -r "$SRC/usr/lib" "$MNT/usr/lib" >&2 || fail "remount: /usr/lib differs"
	[ "$(readlink "$MNT/app/current")" = renamed.bin ] || fail "symlink"
	unmount_sample
	expect_refused --key-file "$KEY" --expected-tag "$TAG"
	expect_err 'rollback'
}

# fsync commits at once: the tag file moves while mounted, and that state
# verifies.
case_rw_fsync_commits() {
	make_sample
	mount_rw
	[ ! -e "$W/new.tag" ] || fail "a tag file before any commit"
	python3 - "$MNT/app/synced" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, b"durable\n" * 1000)
os.fsync(fd)
os.close(fd)
PY
	[ -s "$W/new.tag" ] || fail "fsync did not write the tag file"
	run "$BIN" cat "$FSPF" /app/synced --root "$ROOT" --key-file "$KEY" \
		--tag-file "$W/new.tag"
	expect_rc 0
	expect_out '^durable$'
	echo more >"$MNT/app/later"
	unmount_sample
	committed_tag >/dev/null
	run "$BIN" cat "$FSPF" /app/later --root "$ROOT" --key-file "$KEY" \
		--tag-file "$W/new.tag"
	expect_rc 0
	expect_out '^more$'
}

# --rw --tag-file on an existing tag file: it is the expected tag, and the
# next commit replaces it.
case_rw_tag_file_in_out() {
	local first second
	make_sample
	echo "$TAG" >"$W/new.tag"
	mount_fg --rw --key-file "$KEY" --tag-file "$W/new.tag"
	echo one >"$MNT/app/one"
	unmount_sample
	first=$(committed_tag)
	cp "$FSPF" "$W/fspf.first"
	mount_fg --rw --key-file "$KEY" --tag-file "$W/new.tag"
	[ "$(cat "$MNT/app/one")" = one ] || fail "/app/one"
	echo two >"$MNT/app/two"
	unmount_sample
	second=$(committed_tag)
	[ "$second" != "$first" ] || fail "the second session kept the tag"
	# A tag file that names an earlier state of the same history (a
	# writer's tag file lags after a crash) opens at the newest state,
	# which descends from it (fspf(5), lineage), and is brought up to it.
	echo "$first" >"$W/old.tag"
	mount_fg --rw --key-file "$KEY" --tag-file "$W/old.tag"
	[ "$(cat "$MNT/app/two")" = two ] || fail "not the newest state"
	grep -q 'after the one its tag file names' "$DLOG" ||
		fail "no warning that the tag file lagged: $(cat "$DLOG")"
	[ "$(cat "$W/old.tag")" = "$second" ] || fail "the tag file was not caught up"
	unmount_sample
	# The same tag given as the tag, not a tag file, opens exactly that
	# state or nothing: the fspf holds a newer one.
	expect_refused --key-file "$KEY" --expected-tag "$first"
	expect_err 'rollback'
	# So does a tag file said to be exact (one the host cannot write).
	echo "$first" >"$W/old.tag"
	expect_refused --rw --key-file "$KEY" --tag-file "$W/old.tag" --tag-exact
	expect_err 'rollback'
	run "$BIN" mount "$FSPF" "$MNT" --root "$ROOT" --key-file "$KEY" --tag-exact
	expect_rc 2
	expect_err 'give one with --tag-file'
	expect_not_mounted
	echo "$second" >"$W/old.tag"
	# The fspf rolled back under a tag file naming the newest state.
	cp "$W/fspf.first" "$FSPF"
	echo "$second" >"$W/old.tag"
	expect_refused --rw --key-file "$KEY" --tag-file "$W/old.tag"
	expect_err 'rollback'
}

# One writer at a time; no reader while it writes.
case_rw_single_writer() {
	make_sample
	mount_rw
	mkdir "$W/mnt2"
	run timeout 20 "$BIN" mount "$FSPF" "$W/mnt2" --root "$ROOT" --rw \
		--key-file "$KEY" --expected-tag "$TAG"
	expect_rc 1
	expect_err 'one writer at a time'
	run timeout 20 "$BIN" mount "$FSPF" "$W/mnt2" --root "$ROOT" \
		--key-file "$KEY" --expected-tag "$TAG"
	expect_rc 1
	expect_err 'writing it'
	mountpoint -q "$W/mnt2" && fail "a second mount came up"
	unmount_sample
}

# What the rw mount wrote is protected like the rest: a flipped byte on the
# host gives EIO through a later mount, and no plaintext of that chunk.
case_rw_tamper_after_write() {
	local new
	make_sample
	mount_rw
	make_chunked "$MNT/app/written.bin" written $((3 * CHUNK + 100))
	unmount_sample
	new=$(committed_tag)
	printf '\001' | dd of="$ROOT/app/written.bin" bs=1 seek=$((CHUNK + 10)) \
		conv=notrunc status=none
	mount_fg --key-file "$KEY" --expected-tag "$new"
	run cat "$MNT/app/written.bin"
	[ "$RC" -ne 0 ] || fail "reading a tampered file succeeded"
	expect_err 'Input/output error'
	expect_absent "$(marker written 1)"
	expect_absent "$(marker written 2)"
	make_chunked "$W/ref" written $((3 * CHUNK + 100))
	cmp <(chunk_of "$MNT/app/written.bin" 0) <(chunk_of "$W/ref" 0) ||
		fail "chunk 0 does not read back"
	unmount_sample
	grep -q 'chunk 1 (bytes' "$DLOG" || fail "no log line naming the chunk: $(cat "$DLOG")"
}

# A background rw daemon commits at unmount and writes the tag file.
case_rw_background() {
	local pid i
	make_sample
	run "$BIN" mount "$FSPF" "$MNT" --root "$ROOT" --rw --key-file "$KEY" \
		--expected-tag "$TAG" --tag-file "$W/new.tag"
	expect_rc 0
	mountpoint -q "$MNT" || fail "not mounted"
	pid=$(daemon_pid "$FSPF" "$MNT")
	[ -n "$pid" ] || fail "no daemon"
	echo bg >"$MNT/app/bg"
	fusermount3 -u "$MNT"
	# The daemon commits once the kernel let go: wait for it to end.
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && fail "the daemon did not end"
	run "$BIN" cat "$FSPF" /app/bg --root "$ROOT" --key-file "$KEY" \
		--tag-file "$W/new.tag"
	expect_rc 0
	expect_out '^bg$'
}

# Every case mounts (or must be refused a mount): without FUSE, skip.
if [ "${1:-}" != --list ]; then
	need_fuse
fi
run_case mount "$@"
