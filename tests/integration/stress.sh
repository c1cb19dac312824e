#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Stress tests of the read-write mount, each bounded in time:
#   fio-*      fio writes files with verify=crc32c headers in every block:
#              sequential and random writes, 4 KiB and odd block sizes
#              (3000, 5555, 512..20k), two processes per job, four jobs at
#              once, with fsync/fdatasync (commits) in between, and verifies
#              them; then a clean unmount (a commit), a remount at the new
#              tag, and fio --verify_only reads every block again; the files'
#              checksums before the unmount and after the remount must agree
#              and `scone-fspf verify` must pass.
#   stress-ng  19 of stress-ng's file-system stressors at once (writing
#              and reading back with --verify, creating, renaming and
#              removing files and directories, deep and wide trees,
#              symbolic links, chmod, chown, utime, seeking, readahead,
#              copy_file_range, msync of shared mappings, odd file names) for 15 s in a directory of the mount, next to
#              protected files that must not change; every stressor must get
#              work done and clean up after itself; then a clean unmount,
#              `scone-fspf verify`, a remount, and the tree must read back
#              as it was before the unmount.
# Usage: stress.sh CASE | --list   (skips with 77 only without /dev/fuse)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=lib_rw.sh
. "$here/lib_rw.sh"

# --- helpers ---------------------------------------------------------------

# The fio job file: every size a multiple of its block size, so that the
# verify-only pass finds every file as the write pass left it (fio would
# lay a shorter file out again, overwriting it). About 50 MB in all: 3 s
# alone here, 4 s with ASan, 10 s beside the stress-ng case; each job must
# finish within runtime, or the verify-only pass would find blocks missing.
write_fio_job() {
	cat >"$W/job.fio" <<EOF
[global]
directory=$MNT/fio
ioengine=psync
verify=crc32c
verify_fatal=1
runtime=20
fallocate=none
numjobs=2

[seq-4k]
rw=write
bs=4k
size=$((4096 * 2048))
end_fsync=1

[rand-3000]
rw=randwrite
bs=3000
size=$((3000 * 2048))

[rand-512-20k-overwrite]
rw=randwrite
bsrange=512-20k
overwrite=1
fsync=16
size=$((4096 * 1024))

[seq-5555-fdatasync]
rw=write
bs=5555
size=$((5555 * 1000))
fdatasync=8
EOF
}

# fio_check NAME: fio's JSON report $W/NAME.json: every job without error,
# every byte written and read back. (With --verify_only, fio counts the
# writes it skips as written; the caller checks that nothing changed.)
fio_check() {
	python3 - "$W/$1.json" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
report = json.loads(text[text.index("{\n"):])  # fio may print errors first
bad, jobs = [], report["jobs"]
if len(jobs) != 8:
    bad.append("%d jobs reported, expected 8" % len(jobs))
for j in jobs:
    size = int(j["job options"]["size"])
    w, r = j["write"]["io_bytes"], j["read"]["io_bytes"]
    if j["error"]:
        bad.append("%s: error %d" % (j["jobname"], j["error"]))
    if (w, r) != (size, size):
        bad.append("%s: wrote %d and verified %d bytes of %d" % (j["jobname"], w, r, size))
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
EOF
}

# fio_run NAME [ARGS]: run the job file, check its exit status and report.
fio_run() {
	local name=$1 mode=write t0=$SECONDS
	shift
	[ "${1:-}" = --verify_only ] && mode=verify
	run fio --output-format=json --output="$W/$name.json" "$@" "$W/job.fio"
	cat "$OUT" "$ERR" >"$W/$name.log"
	echo "fio $name: exit $RC in $((SECONDS - t0)) s"
	if [ "$RC" -ne 0 ] || grep -aqiE 'verify failed|bad magic|verify type mismatch|bad header' \
		"$W/$name.json" "$W/$name.log"; then
		grep -aiE 'verify|err=|error' "$W/$name.json" "$W/$name.log" | head -n 20 >&2 || true
		daemon_log_tail >&2
		fail "fio $name failed (exit $RC)"
	fi
	if grep -aq 'Laying out' "$W/$name.json" "$W/$name.log" && [ "$mode" = verify ]; then
		fail "fio $name laid files out again instead of verifying them"
	fi
	fio_check "$name" >"$W/$name.check" || {
		cat "$W/$name.check" >&2
		daemon_log_tail >&2
		fail "fio $name: the report shows a failure"
	}
}

# Type, mode, size and content of every entry below @1, sorted.
snapshot() {
	(cd "$1" && find . -mindepth 1 \( -type f -printf '%p f %m %s ' -exec sha256sum {} \; \) -o \
		\( -type l -printf '%p l %l\n' \) -o \( -type d -printf '%p d %m\n' \) |
		awk '$2 == "f" { $6 = "" } { print }' | sort)
}

# The committed state must verify, at the tag file's tag.
expect_volume_ok() {
	verify_volume
	[ "$RC" -eq 0 ] || {
		head -n 20 "$OUT" "$ERR" >&2
		fail "verify of the committed volume failed (exit $RC)"
	}
	expect_out ': OK$'
}

fio_case() {
	local before
	make_volume "$1"
	write_fio_job
	mount_rw
	mkdir "$MNT/fio"
	fio_run fio-write
	before=$(snapshot "$MNT")
	unmount_rw
	expect_volume_ok
	mount_rw
	[ "$(snapshot "$MNT")" = "$before" ] ||
		fail "the files changed across the unmount: $(diff <(echo "$before") <(snapshot "$MNT") | head)"
	fio_run fio-verify --verify_only
	[ "$(snapshot "$MNT")" = "$before" ] ||
		fail "fio --verify_only changed the files: $(diff <(echo "$before") <(snapshot "$MNT") | head)"
	unmount_rw
	expect_volume_ok
}

# A small protected tree that stress-ng must leave alone.
make_seed() {
	local s=$W/seed
	mkdir -p "$s/keep/sub"
	: >"$s/keep/empty"
	make_chunked "$s/keep/one" one 1
	make_chunked "$s/keep/edge" edge 4096
	make_chunked "$s/keep/big" big 100000
	make_chunked "$s/keep/sub/odd" odd 13288
	ln -s big "$s/keep/big.link"
}

# --- cases -----------------------------------------------------------------

case_fio_encrypted() { fio_case -e; }
case_fio_authenticated() { fio_case -a; }

# The file-system stressors that use what the mount supports: no hard
# links, no extended attributes, no fallocate (iomix and sync-file need it,
# and do nothing without it); shared writable mappings work (msync). Each
# runs with --verify where it has one, and each must get some work done
# (fstat and sendfile are left out: on two cores they took the CPU from the
# others, and from the daemon, which then got little done; so is dirdeep,
# which now and then, under load, ends after its first half second with
# "finished prematurely" and no work done, a judgement of its own about the
# inodes it can use; dir and dirmany make and remove directories too).
STRESSORS=(hdd:2 rename dir dirmany dentry symlink chmod chown utime
	touch seek open getdent readahead copy-file msync filename access)
STRESS_OPTS=(--hdd-bytes 8m --hdd-write-size 3001 --seek-size 4m
	--readahead-bytes 4m --msync-bytes 1m)

# Every stressor did some work: its line in the --metrics-brief table of
# $OUT/$ERR counts more than 0 bogo ops.
stressors_worked() {
	local s name ops
	for s in "${STRESSORS[@]}"; do
		name=${s%%:*}
		ops=$(awk -v n="$name" '$2 == "metrc:" && $4 == n && $5 ~ /^[0-9]+$/ {print $5; exit}' \
			"$OUT" "$ERR")
		[ "${ops:-0}" -gt 0 ] || fail "stress-ng's $name stressor got nothing done"
	done
}

case_stress_ng() {
	local before t0 s n args
	make_seed
	make_volume -e "$W/seed"
	mount_rw
	mkdir "$MNT/sng"
	t0=$SECONDS
	args=()
	for s in "${STRESSORS[@]}"; do
		n=${s#*:}
		[ "$n" = "$s" ] && n=1
		args+=("--${s%%:*}" "$n")
	done
	run stress-ng "${args[@]}" "${STRESS_OPTS[@]}" --timeout 15s --verify \
		--temp-path "$MNT/sng" --metrics-brief
	echo "stress-ng: exit $RC in $((SECONDS - t0)) s"
	cp "$OUT" "$W/stress-ng.out"
	cp "$ERR" "$W/stress-ng.err"
	if [ "$RC" -ne 0 ] || grep -aqE 'verif.*(fail|error)|fail(ed)?:' "$OUT" "$ERR"; then
		grep -aiE 'fail|error|verif|not implemented|skipp|invalid|unrecognized' "$OUT" "$ERR" | head -n 30 >&2 || true
		daemon_log_tail >&2
		fail "stress-ng failed (exit $RC)"
	fi
	stressors_worked
	[ -z "$(find "$MNT/sng" -mindepth 1 -print -quit)" ] ||
		fail "stress-ng left files behind: $(find "$MNT/sng" -mindepth 1 | head -n 5)"
	diff -r "$W/seed/keep" "$MNT/keep" || fail "the protected files changed"
	before=$(snapshot "$MNT")
	unmount_rw
	expect_volume_ok
	mount_rw
	[ "$(snapshot "$MNT")" = "$before" ] ||
		fail "the tree changed across the unmount: $(diff <(echo "$before") <(snapshot "$MNT") | head)"
	diff -r "$W/seed/keep" "$MNT/keep" || fail "the protected files changed"
	unmount_rw
	expect_volume_ok
}

if [ "${1:-}" != --list ]; then
	need_fuse
fi
run_case stress "$@"
