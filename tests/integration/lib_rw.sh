# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Helpers of the tests of the read-write FUSE mount (stress.sh, crash.sh).
# Source it after lib.sh. It defines:
#   need_fuse              exit 77 (skip) when /dev/fuse is missing
#   make_volume -e|-a [D]  a volume $VOL (files of D, if given, protected
#                          in place) with its fspf $VFSPF, key $KEY, and its
#                          tag in the tag file $TAGF
#   mount_rw [ARGS]        `scone-fspf mount $VFSPF $MNT --rw -f` in the
#                          background with the key and the tag file; $DPID is
#                          the daemon, $DLOG its stderr (one file per mount:
#                          $W/daemon.N.err, all kept for the failure report)
#   unmount_rw             fusermount3 -u, the daemon must exit 0 having
#                          printed the committed tag, which the tag file holds
#   mount_ro [ARGS]        the same without --rw
#   kill_daemon            SIGKILL the daemon and reap it
#   detach_dead            detach the mount the killed daemon left behind
#   verify_volume [ARGS]   run `scone-fspf verify` on the volume (key, tag file)
#   daemon_log_tail        the last lines of the current daemon's stderr
#   bg_track PID           kill PID (and its group) at exit if still running
# At exit, whatever happened, nothing stays mounted and no daemon or helper
# of ours is left running.

MNT=$W/mnt
VOL=$W/vol
VFSPF=$VOL/volume.fspf
TAGF=$W/volume.tag
DLOG=$W/daemon.0.err
DPID=
NMOUNT=0
BG_PIDS=()
mkdir -p "$MNT"


bg_track() { BG_PIDS+=("$1"); }

# Whether something is mounted on $MNT; unlike mountpoint(1), also true for
# the mount of a dead daemon, which fails stat(2) with ENOTCONN.
is_mounted() {
	awk -v m="$MNT" '$5 == m {f = 1} END {exit !f}' /proc/self/mountinfo
}

detach_mount() {
	fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null ||
		umount -l "$MNT" 2>/dev/null
}

cleanup_rw() {
	local p
	for p in "${BG_PIDS[@]}"; do
		if alive "$p"; then
			kill -KILL "$p" 2>/dev/null || true
		fi
		wait "$p" 2>/dev/null || true
	done
	if is_mounted; then
		detach_mount || true
	fi
	if [ -n "$DPID" ] && alive "$DPID"; then
		kill -TERM "$DPID" 2>/dev/null || true
		sleep 0.5
		alive "$DPID" && kill -KILL "$DPID" 2>/dev/null
	fi
	if [ -n "$DPID" ]; then
		wait "$DPID" 2>/dev/null || true
	fi
	if is_mounted; then
		umount -l "$MNT" 2>/dev/null || true
	fi
}
on_exit cleanup_rw
# A timeout (meson sends SIGTERM) or ^C must also unmount and end the daemons:
# turn them into an exit, which runs the exit hooks.
trap 'exit 143' TERM
trap 'exit 130' INT

# make_volume -e|-a [DIR]: the volume, protected in place from a copy of DIR.
make_volume() {
	local kind=$1 src=${2:-}
	mkdir -p "$VOL"
	if [ -n "$src" ]; then
		cp -a "$src/." "$VOL/"
	fi
	run fspf create-volume "$kind" "$VOL" --key-file "$KEY"
	expect_rc 0
	awk '/^Created volume/ {print $7}' "$OUT" >"$TAGF"
	grep -Eqx '[0-9a-f]{32}' "$TAGF" || fail "no tag in the create-volume line"
	chmod 600 "$KEY"
}

# shellcheck disable=SC2120
mount_rw() {
	NMOUNT=$((NMOUNT + 1))
	DLOG=$W/daemon.$NMOUNT.err
	# A background job of a script ignores SIGINT: give it back.
	env --default-signal=INT "$BIN" mount "$VFSPF" "$MNT" --rw -f \
		--key-file "$KEY" --tag-file "$TAGF" "$@" \
		>"$W/daemon.$NMOUNT.out" 2>"$DLOG" &
	DPID=$!
	wait_mounted
}

daemon_log_tail() {
	echo "--- daemon log $DLOG (last 40 lines):"
	tail -n 40 "$DLOG" 2>/dev/null | cat -v
	tail -n 5 "${DLOG%.err}.out" 2>/dev/null | cat -v
}

# Wait (at most @2 s, default 60) for the foreground daemon to end; its exit
# status must be @1 and nothing may stay mounted.
expect_daemon_exit() {
	local want=$1 secs=${2:-60} i rc
	for ((i = 0; i < secs * 10; i++)); do
		alive "$DPID" || break
		sleep 0.1
	done
	alive "$DPID" && fail "the daemon did not end within $secs s"
	set +e
	wait "$DPID"
	rc=$?
	set -e
	DPID=
	check_sanitizers "$DLOG"
	[ "$rc" -eq "$want" ] || {
		daemon_log_tail >&2
		fail "the daemon exited with $rc, expected $want"
	}
	if is_mounted; then
		fail "$MNT is still mounted after the daemon ended"
	fi
	return 0
}

# A clean unmount commits: the daemon prints the new tag and the tag file
# holds it.
unmount_rw() {
	local tag
	unmount_busy_retry "$MNT" || {
		daemon_log_tail >&2
		fail "fusermount3 -u $MNT failed"
	}
	expect_daemon_exit 0
	tag=$(cat "${DLOG%.err}.out" "$DLOG" |
		awk '/^Committed file system protection file .* AES-GCM tag: / {t = $NF} END {print t}')
	[[ $tag =~ ^[0-9a-f]{32}$ ]] || {
		daemon_log_tail >&2
		fail "no 'Committed ... tag:' line at unmount"
	}
	[ "$(cat "$TAGF")" = "$tag" ] ||
		fail "the tag file holds $(cat "$TAGF"), the daemon committed $tag"
}

# SIGKILL the daemon in the middle of whatever it does. Its mount stays in
# place, failing every access with ENOTCONN, until detach_dead.
kill_daemon() {
	kill -KILL "$DPID" 2>/dev/null || true
	set +e
	wait "$DPID" 2>/dev/null
	set -e
	DPID=
	check_sanitizers "$DLOG"
}

# Detach the mount of a dead daemon (lazily if a process still holds it).
detach_dead() {
	local i
	for ((i = 0; i < 50; i++)); do
		is_mounted || return 0
		detach_mount && return 0
		sleep 0.1
	done
	fail "cannot detach the dead mount $MNT"
}

# The mount without --rw, at the tag in the tag file.
# shellcheck disable=SC2120
mount_ro() {
	NMOUNT=$((NMOUNT + 1))
	DLOG=$W/daemon.$NMOUNT.err
	env --default-signal=INT "$BIN" mount "$VFSPF" "$MNT" -f \
		--key-file "$KEY" --tag-file "$TAGF" "$@" \
		>"$W/daemon.$NMOUNT.out" 2>"$DLOG" &
	DPID=$!
	wait_mounted
}

# shellcheck disable=SC2120
verify_volume() {
	run fspf verify "$VFSPF" --key-file "$KEY" --tag-file "$TAGF" "$@"
}
