#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The crash test of the read-write mount: SIGKILL the daemon in the middle of
# writes, over and over, and check after every kill that
#   - the volume still opens at the last committed tag (the tag file's);
#   - every file not changed since the last commit reads back exactly as it
#     was committed, and nothing that was absent then appears;
#   - every file changed since is absent, unreadable (EIO), or reads back as
#     a version the writer wrote there: never inconsistent content;
#   - `scone-fspf verify` of the same state names every unreadable file (and
#     exits 1), names nothing that reads back fine, and exits 0 when it names
#     nothing. It may name a file created after the last commit that is
#     absent in the mount but left on the host ("not in the fspf").
# Each iteration: mount --rw at the tag file's tag (which recovers), verify,
# check the tree
# against the writer's log, start a writer (crash_model.py: self-checking
# files; creates, in-place overwrites, appends, shrinks, renames, unlinks,
# read-backs, and fsync/fdatasync at random points, each logged on the host
# once it returned), kill -9 the daemon after a random delay, detach the dead
# mount; or stop the writer, unmount and kill -9 the daemon during the
# unmount's commit. The next iteration continues from the tree as found. At
# the end, the unreadable files are removed, a clean unmount commits, a
# read-only mount must show exactly the model, and verify must pass: by then
# nothing, not even a leftover of an uncommitted create, may be named.
# FSHIELD_TEST_SEED fixes the writers' choices (not the moments of the
# kills); FSHIELD_CRASH_SECONDS and FSHIELD_CRASH_ITERATIONS bound the loop;
# FSHIELD_KEEP=DIR keeps the workspace of a failed run there.
# Usage: crash.sh CASE | --list   (skips with 77 only without /dev/fuse)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=lib_rw.sh
. "$here/lib_rw.sh"

MODEL=$here/crash_model.py
STATE=$W/state.json # the tree as last found (crash_model.py's model)
CLOG=$W/crash.log   # the writers' log, on the host
SEED=
ITER=0
KILLED_DLOG= # the log of the daemon killed last

# A failure: say where, show what led to it, keep the workspace if asked.
crash_fail() {
	set +e # show all there is
	{
		echo "FAIL in iteration $ITER (seed $SEED): $*"
		echo "--- the check:"
		cat "$W/check.out" 2>/dev/null
		if [ -f "$W/verify.$ITER.rc" ]; then
			echo "--- verify of the state after the kill (exit $(cat "$W/verify.$ITER.rc")):"
			head -n 40 "$W/verify.$ITER.out" "$W/verify.$ITER.err"
		fi
		if [ -s "$W/writer.$ITER.out" ]; then
			echo "--- the writer's output:"
			tail -n 20 "$W/writer.$ITER.out"
		fi
		echo "--- the writer's log of iteration $ITER (last 30 lines):"
		awk -v n="$ITER" '$1 == "I" {f = ($2 == n)} f' "$CLOG" | tail -n 30
		if [ -n "$KILLED_DLOG" ]; then
			echo "--- the killed daemon's log $KILLED_DLOG (last 30 lines):"
			tail -n 30 "$KILLED_DLOG" | cat -v
		fi
		daemon_log_tail
		if [ -n "${FSHIELD_KEEP:-}" ]; then
			mkdir -p "$FSHIELD_KEEP"
			cp -a "$W/." "$FSHIELD_KEEP/" 2>/dev/null || true
			echo "--- workspace kept in $FSHIELD_KEEP"
		fi
	} >&2
	fail "crash test, iteration $ITER"
}

# Mount the state the last kill left (the writable open recovers: it
# completes an interrupted commit and undoes on the host the creates and
# renames that were never committed), verify that state, and check the
# tree against the log.
check_after_crash() {
	local vrc rc
	mount_rw
	verify_volume
	vrc=$RC
	cp "$OUT" "$W/verify.$ITER.out"
	cp "$ERR" "$W/verify.$ITER.err"
	echo "$vrc" >"$W/verify.$ITER.rc"
	if grep -aqi 'rollback\|wrong key' "$ERR"; then
		crash_fail "verify refuses the volume at the tag file's tag"
	fi
	set +e
	python3 "$MODEL" check "$MNT" "$STATE" "$CLOG" "$TAGF" "$ITER" \
		"$W/verify.$ITER.out" "$vrc" >"$W/check.out" 2>&1
	rc=$?
	set -e
	sed -n '1,3p' "$W/check.out"
	[ "$rc" -eq 0 ] || crash_fail "the tree after the kill is not as it must be"
}

# One writer, and after a random delay, one of two kills:
#  - (3 in 4) SIGKILL the daemon in the middle of the writes;
#  - (1 in 4) stop the writer between two operations, start a clean unmount
#    (which commits) and SIGKILL the daemon a moment later, so that the kill
#    may land in the unmount's commit. If the daemon reported that commit
#    before it died, the log says so: then every change must be there.
write_and_kill() {
	local wpid wrc delay i mode=write umpid tag
	echo "I $ITER $(cat "$TAGF")" >>"$CLOG"
	python3 "$MODEL" write "$MNT" "$STATE" "$CLOG" "$TAGF" $((SEED * 1000 + ITER)) \
		"$ITER" >"$W/writer.$ITER.out" 2>&1 &
	wpid=$!
	bg_track "$wpid"
	delay=$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", 0.02 + (r % 1000) / 1000 }')
	sleep "$delay"
	if ! alive "$wpid"; then
		set +e
		wait "$wpid"
		wrc=$?
		set -e
		crash_fail "the writer ended (exit $wrc) before the daemon was killed"
	fi
	KILLED_DLOG=$DLOG
	if ((RANDOM % 4 == 0)); then
		mode=unmount
		kill -TERM "$wpid"
		for ((i = 0; i < 100; i++)); do
			alive "$wpid" || break
			sleep 0.1
		done
		fusermount3 -u "$MNT" 2>/dev/null &
		umpid=$!
		sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", (r % 60) / 1000 }')"
	fi
	kill_daemon
	for ((i = 0; i < 100; i++)); do
		alive "$wpid" || break
		sleep 0.1
	done
	alive "$wpid" && crash_fail "the writer still runs 10 s after the daemon died"
	set +e
	wait "$wpid"
	wrc=$?
	[ "$mode" = unmount ] && wait "$umpid"
	set -e
	case $mode:$wrc in
	write:3 | unmount:5) ;;
	unmount:143) ;; # SIGTERM came before the writer's handler, and any write
	*:4) crash_fail "a read-back through the live mount differed: $(grep '^R ' "$CLOG" | tail -n 1)" ;;
	*)
		crash_fail "the writer exited $wrc ($mode)"
		;;
	esac
	if [ "$mode" = unmount ]; then
		tag=$(cat "${DLOG%.err}.out" "$DLOG" |
			awk '/^Committed file system protection file .* AES-GCM tag: / {print $NF}')
		if [ -n "$tag" ] && [ "$tag" = "$(cat "$TAGF")" ]; then
			echo "C u $tag" >>"$CLOG"
		fi
		echo "  (killed during the unmount${tag:+, after its commit})"
	fi
	detach_dead
}

# @1: -e|-a, @2: seconds, @3: at most that many kills.
crash_run() {
	local kind=$1 budget=${FSHIELD_CRASH_SECONDS:-$2} max=${FSHIELD_CRASH_ITERATIONS:-$3}
	local start=$SECONDS p vrc n
	SEED=${FSHIELD_TEST_SEED:-$RANDOM}
	echo "seed $SEED"
	python3 "$MODEL" seed "$W/seed" "$STATE" "$CLOG"
	make_volume "$kind" "$W/seed"
	ITER=0
	while :; do
		check_after_crash
		if ((ITER >= max || SECONDS - start >= budget)); then
			break
		fi
		ITER=$((ITER + 1))
		write_and_kill
	done
	echo "$ITER kills in $((SECONDS - start)) s"
	[ "$ITER" -ge 3 ] || fail "only $ITER kills in the time given"

	# Whole again: remove what is unreadable, commit by unmounting.
	while IFS= read -r p; do
		rm -f "$MNT/$p" || crash_fail "cannot remove the unreadable $p"
	done < <(python3 "$MODEL" drop-eio "$STATE")
	unmount_rw
	ITER=$((ITER + 1))
	verify_volume
	vrc=$RC
	cp "$OUT" "$W/verify.$ITER.out"
	echo "$vrc" >"$W/verify.$ITER.rc"
	# Exactly the model, read-only: no W line in this iteration, so every
	# file must read back as the last check found it.
	echo "I $ITER $(cat "$TAGF")" >>"$CLOG"
	mount_ro
	python3 "$MODEL" check "$MNT" "$STATE" "$CLOG" "$TAGF" "$ITER" \
		"$W/verify.$ITER.out" "$vrc" >"$W/check.out" 2>&1 ||
		crash_fail "the committed tree does not read back as the model"
	sed -n 1p "$W/check.out"
	unmount_busy_retry "$MNT" || fail "fusermount3 -u failed"
	expect_daemon_exit 0
	if [ "$vrc" -ne 0 ]; then
		n=$(python3 "$MODEL" leftovers "$STATE" | wc -l)
		crash_fail "verify fails after the clean unmount; $n of its complaints are host files of creates that were never committed"
	fi
	grep -q ': OK$' "$W/verify.$ITER.out" || crash_fail "verify did not say OK"
}

# --- cases -----------------------------------------------------------------

case_kill_encrypted() { crash_run -e 60 30; }
case_kill_authenticated() { crash_run -a 30 15; }

# The names of the volume's own files (its fspf, lock and commit temporary
# file, all in the volume's directory) written through the mount, then a
# kill, first before any commit, then after one: the volume still opens at
# the tag file's tag, whatever the mount made of those names (refused them,
# or stored them as ordinary files), and the committed state verifies.
FSPF_NAMES=(volume.fspf volume.fspf.lock volume.fspf.tmp.Abc123)

# Write the names (and /kept), commit if @1 is commit, kill the daemon; the
# volume must open again.
fspf_names_kill() {
	local n
	STORED=()
	mount_rw
	for n in "${FSPF_NAMES[@]}"; do
		if printf 'data of %s\n' "$n" 2>/dev/null >"$MNT/$n"; then
			STORED+=("$n")
		fi
	done
	echo "stored through the mount: ${STORED[*]:-none}"
	printf 'kept\n' >"$MNT/kept"
	if [ "$1" = commit ]; then
		sync "$MNT/kept" || fail "fsync of /kept failed"
	fi
	kill_daemon
	detach_dead
	verify_volume
	if grep -aqiE 'rollback|malformed|cannot open' "$ERR"; then
		fail "the volume no longer opens after the kill ($1)"
	fi
	mount_rw
}

case_kill_after_fspf_names() {
	local n
	make_volume -e
	fspf_names_kill no-commit
	for n in "${FSPF_NAMES[@]}" kept; do
		[ ! -e "$MNT/$n" ] || fail "/$n was never committed but exists"
	done
	unmount_rw
	fspf_names_kill commit
	[ "$(cat "$MNT/kept")" = kept ] || fail "/kept does not read back"
	for n in "${STORED[@]}"; do
		[ "$(cat "$MNT/$n")" = "data of $n" ] || fail "/$n does not read back"
	done
	unmount_rw
	verify_volume
	[ "$RC" -eq 0 ] || fail "the committed volume does not verify"
	expect_out ': OK$'
}

if [ "${1:-}" != --list ]; then
	need_fuse
fi
run_case crash "$@"
