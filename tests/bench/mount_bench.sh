#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# mount_bench.sh: the FUSE mount (`scone-fspf mount`) against the same
# workload, in the same run, on
#   plain        a directory of the host file system (no FUSE),
#   passthrough  our trivial FUSE passthrough (passthrough.c, run with the
#                mount's FUSE settings): what FUSE alone costs,
#   gocryptfs    an encrypted FUSE file system (-scryptn 10, password file),
#   fshield-ro   `scone-fspf mount` of an encrypted region, read-only: the
#                same bytes and tree, protected with addf and encrypt
#                beforehand (so it has no write, copy-in or delete figures),
#   fshield-rw   `scone-fspf mount --rw` of an encrypted region, when the
#                binary has --rw ("n/a (no --rw)" otherwise).
#
# All five are mounted at once and every step runs on each in turn, run
# after run, so that a change of load on a shared machine falls on every
# column alike. Steps, each timed BENCH_REPEAT times (the median is kept):
#   seq write    BENCH_MB MiB in 1 MiB write()s, then fsync (in the time)
#   seq read     that file with 1 MiB read()s, caches dropped before
#   random read  BENCH_RANDOM pread()s of 4 KiB at 4 KiB-aligned offsets
#                (same offsets everywhere), caches dropped before
#   small files  BENCH_FILES files of 0..64 KiB in 100-file directories:
#                cp -r in, ls -lR, read all (find | xargs cat), rm -rf,
#                caches dropped before ls -lR and before read all
#
# Caches are dropped with `echo 3 > /proc/sys/vm/drop_caches` (root only);
# without that right, the mount is made afresh and the host files under it
# are evicted with posix_fadvise(DONTNEED) instead, which the output says.
# To keep ext4 from skipping recently deleted inodes (see README.md) every
# tree is copied in before any is deleted: the rm -rf runs come last.
# Every result is checked (same bytes, same listing, the committed fspf
# verifies), untimed.
#
# It prints figures and speed ratios, never judges them: it exits 1 only
# when a command fails or a result is wrong (a bug, not a slow run), and 77
# when /dev/fuse is missing.
#
# Environment:
#   SCONE_FSPF_BIN   scone-fspf to run (default ./build-bench/tools/scone-fspf)
#   PASSTHROUGH_BIN  the passthrough (default: passthrough next to it in
#                    ../tests/bench/)
#   GOCRYPTFS        gocryptfs to run (default: gocryptfs from PATH)
#   BENCH_MB         size of the sequential file in MiB (default 1024)
#   BENCH_RANDOM     number of random 4 KiB reads (default 20000)
#   BENCH_FILES      number of small files (default 5000; 0 skips)
#   BENCH_REPEAT     runs per timed step, median kept (default 3)
#   BENCH_DIR        where to make the temporary directory (default $TMPDIR
#                    or /tmp); needs about 6x BENCH_MB free
#   BENCH_KEEP=1     keep the temporary directory
#   BENCH_NO_DROP=1  do not drop the caches even when allowed (the fallback
#                    above; for testing it)
set -euo pipefail

BENCH_MB=${BENCH_MB:-1024}
BENCH_RANDOM=${BENCH_RANDOM:-20000}
BENCH_FILES=${BENCH_FILES:-5000}
BENCH_REPEAT=${BENCH_REPEAT:-3}
BIN=${SCONE_FSPF_BIN:-./build-bench/tools/scone-fspf}
PT_BIN=${PASSTHROUGH_BIN:-$(dirname "$BIN")/../tests/bench/passthrough}
GOCRYPTFS=${GOCRYPTFS:-gocryptfs}
CONFIGS=(plain passthrough gocryptfs fshield-ro fshield-rw)

die() { echo "mount_bench: error: $*" >&2; exit 1; }

if [ ! -c /dev/fuse ]; then
	echo "SKIP: /dev/fuse is missing on this machine"
	exit 77
fi
case $BENCH_MB$BENCH_RANDOM$BENCH_FILES$BENCH_REPEAT in
*[!0-9]*) die "BENCH_MB, BENCH_RANDOM, BENCH_FILES and BENCH_REPEAT must be integers" ;;
esac
[ "$BENCH_MB" -ge 1 ] || die "BENCH_MB must be at least 1"
[ "$BENCH_REPEAT" -ge 1 ] || BENCH_REPEAT=1
[ -x "$BIN" ] || die "no scone-fspf at '$BIN' (set SCONE_FSPF_BIN)"
[ -x "$PT_BIN" ] || die "no passthrough at '$PT_BIN' (set PASSTHROUGH_BIN)"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
PT_BIN=$(cd "$(dirname "$PT_BIN")" && pwd)/$(basename "$PT_BIN")
command -v python3 >/dev/null || die "python3 is needed for the I/O loops"
command -v fusermount3 >/dev/null || die "fusermount3 is needed (Debian: fuse3)"
HAVE_GOCRYPTFS=1
command -v "$GOCRYPTFS" >/dev/null || HAVE_GOCRYPTFS=0
HAVE_RW=0
"$BIN" mount --help 2>/dev/null | grep -q -- '--rw' && HAVE_RW=1

T=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/mount-bench.XXXXXX")
export SCONE_FSPF_NO_PROGRESS=1 LC_ALL=C
unset SCONE_FSPF_KEY SCONE_FSPF_TAG SCONE_FSPF
FAILED=0

declare -A MNT BACK PID RES CPU NOTE

# --- mounts -----------------------------------------------------------------

alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $st != Z* ]]
}

# Wait (at most 20 s) until mount point @2 of daemon @1 is up.
wait_mounted() {
	local i
	for ((i = 0; i < 200; i++)); do
		mountpoint -q "$2" && return 0
		alive "$1" || return 1
		sleep 0.1
	done
	return 1
}

# start_daemon CFG CMD...: CMD is a FUSE daemon staying in the foreground
# and mounting MNT[CFG]; its output goes to $T/CFG.log.
start_daemon() {
	local cfg=$1
	shift
	# A background job of a script ignores SIGINT: give it back.
	env --default-signal=INT "$@" >>"$T/$cfg.log" 2>&1 &
	PID[$cfg]=$!
	if ! wait_mounted "${PID[$cfg]}" "${MNT[$cfg]}"; then
		cat "$T/$cfg.log" >&2
		die "$cfg: the mount did not come up"
	fi
}

mount_cfg() {
	local cfg=$1
	case $cfg in
	plain) ;;
	passthrough)
		start_daemon "$cfg" "$PT_BIN" "${BACK[$cfg]}" "${MNT[$cfg]}" ;;
	gocryptfs)
		start_daemon "$cfg" "$GOCRYPTFS" -fg -q -nosyslog \
			-passfile "$T/gocryptfs.pw" "${BACK[$cfg]}" "${MNT[$cfg]}" ;;
	fshield-ro)
		start_daemon "$cfg" "$BIN" mount "$T/$cfg.fspf" "${MNT[$cfg]}" \
			--root "${BACK[$cfg]}" -f --key-file "$T/$cfg.key" \
			--expected-tag "$(cat "$T/$cfg.tag")" ;;
	fshield-rw)
		# The tag file holds the expected tag and receives each new one.
		start_daemon "$cfg" "$BIN" mount "$T/$cfg.fspf" "${MNT[$cfg]}" \
			--root "${BACK[$cfg]}" -f --rw --key-file "$T/$cfg.key" \
			--tag-file "$T/$cfg.tag" ;;
	esac
}

# Unmount CFG and wait (at most 120 s: the read-write mount commits at
# unmount) for its daemon to end; its exit status must be 0.
unmount_cfg() {
	local cfg=$1 pid=${PID[$1]:-} i rc=0
	[ -n "$pid" ] || return 0
	fusermount3 -u "${MNT[$cfg]}" || die "$cfg: fusermount3 -u failed"
	for ((i = 0; i < 1200; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	alive "$pid" && die "$cfg: the daemon did not end within 120 s of the unmount"
	wait "$pid" || rc=$?
	PID[$cfg]=
	if [ "$rc" -ne 0 ]; then
		cat "$T/$cfg.log" >&2
		die "$cfg: the daemon exited with status $rc"
	fi
	# In a sanitizer build, a report is a failure even with status 0.
	if grep -aEq 'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: ' "$T/$cfg.log"; then
		cat "$T/$cfg.log" >&2
		die "$cfg: the daemon's sanitizer spoke"
	fi
}

# At exit, whatever happened: nothing of ours stays mounted or running.
cleanup() {
	local cfg pid
	for cfg in "${CONFIGS[@]}"; do
		[ -n "${MNT[$cfg]:-}" ] || continue
		if mountpoint -q "${MNT[$cfg]}" 2>/dev/null; then
			fusermount3 -u "${MNT[$cfg]}" 2>/dev/null ||
				umount -l "${MNT[$cfg]}" 2>/dev/null || true
		fi
		pid=${PID[$cfg]:-}
		if [ -n "$pid" ] && alive "$pid"; then
			kill -TERM "$pid" 2>/dev/null || true
		fi
		[ -z "$pid" ] || wait "$pid" 2>/dev/null || true
	done
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf --one-file-system "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers ------------------------------------------------------------------

now_ns() { date +%s%N; }

# The I/O loops, in one python3 process each, timed inside (without the
# interpreter's start). Every writer writes the same bytes.
#   write FILE MIB | read FILE | random FILE COUNT | evict PATH...
# print "BYTES NANOSECONDS" (evict: nothing).
# shellcheck disable=SC2016
IO_PY='
import os, random, sys, time
mode, args = sys.argv[1], sys.argv[2:]
MIB = 1 << 20
if mode == "write":
	buf = memoryview(random.Random(1).randbytes(MIB))
	t0 = time.perf_counter_ns()
	fd = os.open(args[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
	for _ in range(int(args[1])):
		done = 0
		while done < MIB:
			done += os.write(fd, buf[done:])
	os.fsync(fd)
	os.close(fd)
	print(int(args[1]) * MIB, time.perf_counter_ns() - t0)
elif mode == "read":
	buf = bytearray(MIB)
	total = 0
	t0 = time.perf_counter_ns()
	fd = os.open(args[0], os.O_RDONLY)
	while True:
		n = os.readv(fd, [buf])
		if n == 0:
			break
		total += n
	os.close(fd)
	print(total, time.perf_counter_ns() - t0)
elif mode == "random":
	fd = os.open(args[0], os.O_RDONLY)
	blocks = os.fstat(fd).st_size // 4096
	rng = random.Random(2)
	offs = [rng.randrange(blocks) * 4096 for _ in range(int(args[1]))]
	buf = bytearray(4096)
	t0 = time.perf_counter_ns()
	for off in offs:
		if os.preadv(fd, [buf], off) != 4096:
			sys.exit("short read at %d" % off)
	dt = time.perf_counter_ns() - t0
	os.close(fd)
	print(len(offs) * 4096, dt)
elif mode == "evict":
	for top in args:
		for d, _, files in os.walk(top):
			for f in files:
				try:
					fd = os.open(os.path.join(d, f), os.O_RDONLY)
				except OSError:
					continue
				os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
				os.close(fd)
'
io() { python3 -c "$IO_PY" "$@"; }

# The small-file tree: BENCH_FILES files of 0..64 KiB (most below 4 KiB),
# 100 per directory, every tenth directory with a subdirectory; random data.
#   mksmall DIR COUNT   prints the byte count
# shellcheck disable=SC2016
SMALL_PY='
import os, random, sys
root, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(3)
pool = rng.randbytes(1 << 20)
total = 0
os.makedirs(root)
for i in range(count):
	d = os.path.join(root, "d%03d" % (i // 100))
	if i % 100 == 0:
		os.makedirs(d)
		if i % 1000 == 0:
			os.makedirs(os.path.join(d, "sub"))
	if (i // 100) % 10 == 0 and i % 3 == 0:
		d = os.path.join(d, "sub")
	r = rng.random()
	size = rng.randint(0, 4096) if r < 0.6 else rng.randint(4097, 16384) if r < 0.9 else rng.randint(16385, 65536)
	start = rng.randrange(len(pool) - size + 1)
	with open(os.path.join(d, "f%05d" % i), "wb") as f:
		f.write(pool[start:start + size])
	total += size
print(total)
'

# Drop the caches, or, without the right to, remount CFG and evict the host
# files under it. Leaves dirty data on the disk first (untimed).
CAN_DROP=1
cold() {
	local cfg=$1
	sync
	if [ "$CAN_DROP" = 1 ] && echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then
		return 0
	fi
	CAN_DROP=0
	[ -z "${PID[$cfg]:-}" ] || unmount_cfg "$cfg"
	io evict "${BACK[$cfg]}"
	mount_cfg "$cfg"
}

# The CPU seconds (user + system) the daemon of CFG has used so far.
CLK_TCK=$(getconf CLK_TCK)
daemon_ticks() {
	local pid=${PID[$1]:-}
	[ -n "$pid" ] || { echo 0; return; }
	awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0
}

# Record figure VALUE of workload W for CFG, run R, and the daemon's CPU.
#   put CFG W VALUE TICKS
put() {
	RES[$1:$2]="${RES[$1:$2]:-} $3"
	CPU[$1:$2]="${CPU[$1:$2]:-} $(awk -v t="$4" -v h="$CLK_TCK" 'BEGIN { printf "%.2f", t / h }')"
}

median() {
	# shellcheck disable=SC2086
	printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) exit
		if (NR % 2) print v[(NR + 1) / 2]
		else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

failed() {
	echo "mount_bench: $1: FAILED: $2" >&2
	[ -z "${3:-}" ] || sed -n '1,5p' "$3" >&2
	NOTE[$1]="${NOTE[$1]:-}FAILED: $2; "
	FAILED=1
}

# timed_io CFG W MODE ARGS...: one run of an I/O loop; records MB/s (seq)
# or reads/s (random).
timed_io() {
	local cfg=$1 w=$2 out c0 c1 bytes ns
	shift 2
	c0=$(daemon_ticks "$cfg")
	if ! out=$(io "$@" 2>"$T/io.err"); then
		failed "$cfg" "$w ($*)" "$T/io.err"
		return 1
	fi
	c1=$(daemon_ticks "$cfg")
	read -r bytes ns <<<"$out"
	if [ "$w" = random ]; then
		put "$cfg" "$w" "$(awk -v b="$bytes" -v n="$ns" 'BEGIN { printf "%.0f", b / 4096 * 1e9 / n }')" $((c1 - c0))
	else
		if [ "$w" = read ] && [ "$bytes" -ne $((BENCH_MB * 1048576)) ]; then
			failed "$cfg" "read $bytes bytes, expected $((BENCH_MB * 1048576))"
			return 1
		fi
		put "$cfg" "$w" "$(awk -v b="$bytes" -v n="$ns" 'BEGIN { printf "%.1f", b * 1e3 / n }')" $((c1 - c0))
	fi
}

# timed_sh CFG W CMD...: one run of a shell command; records seconds.
timed_sh() {
	local cfg=$1 w=$2 t0 t1 c0 c1
	shift 2
	c0=$(daemon_ticks "$cfg")
	t0=$(now_ns)
	if ! "$@" >"$T/sh.out" 2>"$T/sh.err"; then
		failed "$cfg" "$w ($*)" "$T/sh.err"
		return 1
	fi
	t1=$(now_ns)
	c1=$(daemon_ticks "$cfg")
	put "$cfg" "$w" "$(awk -v n=$((t1 - t0)) 'BEGIN { printf "%.3f", n / 1e9 }')" $((c1 - c0))
}

# shellcheck disable=SC2012 # ls -lR is the workload
list_all() { ls -lR "$1" | wc -l; }
read_all() { find "$1" -type f -print0 | xargs -0 -r cat | wc -c; }

# --- the workloads ------------------------------------------------------------

# One run of each step for CFG; run R. The read-only mount writes nothing:
# its runs all use seq-1.bin and small-1, protected beforehand. A step that
# fails is recorded and the run goes on with the next.
writes() { [ "$1" != fshield-ro ]; }
idx() { if writes "$1"; then echo "$2"; else echo 1; fi; }

# Write seq-R.bin (not on the read-only mount), read it back cold; files
# after the first are deleted once read (untimed).
seq_run() {
	local cfg=$1 f
	f=${MNT[$1]}/seq-$(idx "$1" "$2").bin
	if writes "$cfg"; then
		sync
		timed_io "$cfg" write write "$f" "$BENCH_MB" || return 0
	fi
	cold "$cfg"
	timed_io "$cfg" read read "$f" || return 0
	if [ "$2" = 1 ]; then
		# Every writer wrote the same bytes: the file must read back as plain's.
		[ "$cfg" = plain ] || cmp -s "$f" "${MNT[plain]}/seq-1.bin" ||
			failed "$cfg" "seq-1.bin differs from what was written"
	elif writes "$cfg"; then
		rm -f "$f"
	fi
}

random_run() {
	cold "$1"
	timed_io "$1" random random "${MNT[$1]}/seq-1.bin" "$BENCH_RANDOM" || true
}

# cp -r of the small tree (warm) as small-R.
copy_run() {
	local cfg=$1 d=${MNT[$1]}/small-$2
	writes "$cfg" || return 0
	read_all "$SMALL_SRC" >/dev/null
	sync
	timed_sh "$cfg" cp cp -r "$SMALL_SRC" "$d" || return 0
	diff -r "$SMALL_SRC" "$d" >"$T/diff.out" 2>&1 ||
		failed "$cfg" "the copied tree differs from its source" "$T/diff.out"
}

list_run() {
	local cfg=$1 d n
	d=${MNT[$1]}/small-$(idx "$1" "$2")
	[ -d "$d" ] || return 0 # its copy failed
	cold "$cfg"
	timed_sh "$cfg" ls list_all "$d" || return 0
	n=$(cat "$T/sh.out")
	# Same tree, same names: as many lines as plain's listing.
	[ "$cfg" = plain ] && LS_LINES=$n
	[ "$n" = "$LS_LINES" ] || failed "$cfg" "ls -lR printed $n lines, plain $LS_LINES"
}

read_run() {
	local cfg=$1 d n
	d=${MNT[$1]}/small-$(idx "$1" "$2")
	[ -d "$d" ] || return 0
	cold "$cfg"
	timed_sh "$cfg" readall read_all "$d" || return 0
	n=$(cat "$T/sh.out")
	[ "$n" = "$SMALL_BYTES" ] || failed "$cfg" "read all read $n bytes, expected $SMALL_BYTES"
}

rm_run() {
	local cfg=$1 d=${MNT[$1]}/small-$2
	writes "$cfg" && [ -d "$d" ] || return 0
	sync
	timed_sh "$cfg" rm rm -rf "$d" || true
}

# An encrypted fspf for CFG: region / with kernel directory / under --root
# ${BACK[CFG]}, files from @2 (if any) protected into it, then encrypted.
make_fspf() {
	local cfg=$1 src=${2:-} fspf=$T/$1.fspf
	{
		"$BIN" create "$fspf"
		"$BIN" addr "$fspf" / -e --kernel /
		[ -z "$src" ] || "$BIN" addf "$fspf" / "$src" "${BACK[$cfg]}"
		"$BIN" encrypt "$fspf" --key-file "$T/$cfg.key"
	} >"$T/$cfg.make.log" 2>&1 || {
		cat "$T/$cfg.make.log" >&2
		die "$cfg: protecting the files failed"
	}
	awk '/^Encrypted/ { print $9 }' "$T/$cfg.make.log" >"$T/$cfg.tag"
	grep -Eq '^[0-9a-f]{32}$' "$T/$cfg.tag" || die "$cfg: no tag in the encrypt line"
}

# Make CFG's directories (and volume) and mount it; false when CFG cannot
# run here (its column then says why).
setup_cfg() {
	local cfg=$1 t0
	case $cfg in
	gocryptfs)
		if [ "$HAVE_GOCRYPTFS" = 0 ]; then
			NOTE[$cfg]="n/a (no gocryptfs)"
			return 1
		fi ;;
	fshield-rw)
		if [ "$HAVE_RW" = 0 ]; then
			NOTE[$cfg]="n/a (no --rw)"
			return 1
		fi ;;
	esac
	MNT[$cfg]=$T/$cfg/mnt
	BACK[$cfg]=$T/$cfg/back
	mkdir -p "${MNT[$cfg]}" "${BACK[$cfg]}"
	case $cfg in
	plain) BACK[$cfg]=${MNT[$cfg]} ;;
	gocryptfs)
		echo "mount-bench-password" >"$T/gocryptfs.pw"
		"$GOCRYPTFS" -init -q -scryptn 10 -passfile "$T/gocryptfs.pw" \
			"${BACK[$cfg]}" >"$T/$cfg.log" 2>&1 || {
			cat "$T/$cfg.log" >&2
			die "gocryptfs -init failed"
		}
		;;
	fshield-ro)
		# The bytes every writer writes, and the small tree, protected
		# with addf.
		mkdir "$T/ro-stage"
		io write "$T/ro-stage/seq-1.bin" "$BENCH_MB" >/dev/null
		[ "$BENCH_FILES" -eq 0 ] || cp -al "$SMALL_SRC" "$T/ro-stage/small-1"
		sync
		t0=$(now_ns)
		make_fspf "$cfg" "$T/ro-stage"
		sync
		NOTE[$cfg]="protected with addf + encrypt in $(awk -v n=$(($(now_ns) - t0)) 'BEGIN { printf "%.2f", n / 1e9 }') s (synced); "
		rm -rf "$T/ro-stage"
		;;
	fshield-rw) make_fspf "$cfg" ;;
	esac
	mount_cfg "$cfg"
}

# each STEP R: STEP for every configuration in turn, run R.
each() {
	local cfg
	for cfg in "${ACTIVE[@]}"; do
		"$1" "$cfg" "$2"
	done
}

# --- the run --------------------------------------------------------------------

echo "mount_bench: $BIN"
echo "  $(nproc) CPUs, $(awk '/^MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)," \
	"$(df -PT "$T" | awk 'NR == 2 { print $2 }') at $T, kernel $(uname -r)"
echo "  passthrough: $PT_BIN"
if [ "$HAVE_GOCRYPTFS" = 1 ]; then
	echo "  gocryptfs: $("$GOCRYPTFS" -version 2>/dev/null | head -n 1)"
else
	echo "  gocryptfs: not found ('$GOCRYPTFS'): its column is n/a"
fi
[ "$HAVE_RW" = 1 ] || echo "  fshield-rw: this scone-fspf has no 'mount --rw': its column is n/a"
echo "  seq file $BENCH_MB MiB, $BENCH_RANDOM random 4 KiB reads, $BENCH_FILES small files;" \
	"median of $BENCH_REPEAT; MB = 10^6 bytes"

SMALL_SRC=$T/small-src
SMALL_BYTES=0
LS_LINES=
if [ "$BENCH_FILES" -gt 0 ]; then
	SMALL_BYTES=$(python3 -c "$SMALL_PY" "$SMALL_SRC" "$BENCH_FILES")
	echo "  small tree: $BENCH_FILES files, $SMALL_BYTES bytes," \
		"$(find "$SMALL_SRC" -type d | wc -l) directories"
fi
if [ "${BENCH_NO_DROP:-0}" = 1 ] || ! (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
	CAN_DROP=0
	echo "  no drop_caches (not root, or BENCH_NO_DROP=1): cold reads use a fresh mount" \
		"and posix_fadvise(DONTNEED) of the host files instead"
fi

ACTIVE=()
for cfg in "${CONFIGS[@]}"; do
	if setup_cfg "$cfg"; then
		ACTIVE+=("$cfg")
	fi
done
echo "  mounted: ${ACTIVE[*]}"
echo "  load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# Step by step, run by run, every configuration in turn: a change of load
# on a shared machine then falls on all columns alike.
for ((r = 1; r <= BENCH_REPEAT; r++)); do each seq_run "$r"; done
for ((r = 1; r <= BENCH_REPEAT; r++)); do each random_run "$r"; done
if [ "$BENCH_FILES" -gt 0 ]; then
	for ((r = 1; r <= BENCH_REPEAT; r++)); do each copy_run "$r"; done
	for ((r = 1; r <= BENCH_REPEAT; r++)); do each list_run "$r"; done
	for ((r = 1; r <= BENCH_REPEAT; r++)); do each read_run "$r"; done
	# Deletes last, after every tree was created (see the header).
	for ((r = 1; r <= BENCH_REPEAT; r++)); do each rm_run "$r"; done
fi
echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
for cfg in "${ACTIVE[@]}"; do
	unmount_cfg "$cfg"
done
# What the read-write mount committed must verify (untimed).
if [ -n "${MNT[fshield-rw]:-}" ] &&
	! "$BIN" verify "$T/fshield-rw.fspf" --root "${BACK[fshield-rw]}" \
		--key-file "$T/fshield-rw.key" --expected-tag "$(cat "$T/fshield-rw.tag")" \
		>"$T/verify.out" 2>&1; then
	failed fshield-rw "verify of the committed fspf" "$T/verify.out"
fi

# --- the table ------------------------------------------------------------------

ROWS=(write read random cp ls readall rm small)
declare -A LABEL UNIT
LABEL=([write]="seq write + fsync" [read]="seq read, cold" [random]="random 4 KiB reads, cold"
	[cp]="small: cp -r in" [ls]="small: ls -lR, cold" [readall]="small: read all, cold"
	[rm]="small: rm -rf" [small]="small: total of the 4")
UNIT=([write]="MB/s" [read]="MB/s" [random]="reads/s" [cp]=s [ls]=s [readall]=s [rm]=s [small]=s)

# The median of CFG for row W, or "" (not measured).
fig() {
	local cfg=$1 w=$2 s=0 p
	if [ "$w" = small ]; then
		for p in cp ls readall rm; do
			[ -n "${RES[$cfg:$p]:-}" ] || return 0
			s=$(awk -v a="$s" -v b="$(median "${RES[$cfg:$p]}")" 'BEGIN { print a + b }')
		done
		printf '%.3f' "$s"
		return 0
	fi
	[ -n "${RES[$cfg:$w]:-}" ] || return 0
	case ${UNIT[$w]} in
	s) printf '%.3f' "$(median "${RES[$cfg:$w]}")" ;;
	*) printf '%.0f' "$(median "${RES[$cfg:$w]}")" ;;
	esac
}

cell() {
	local cfg=$1 w=$2 v
	v=$(fig "$cfg" "$w")
	if [ -n "$v" ]; then
		printf '%s' "$v"
	elif [ "${NOTE[$cfg]:-}" = "n/a (no --rw)" ] || [ "${NOTE[$cfg]:-}" = "n/a (no gocryptfs)" ]; then
		printf '%s' "${NOTE[$cfg]}"
	else
		printf '%s' "-"
	fi
}

# Speed ratio of A over B for row W (> 1: A is faster), or "-".
speed_ratio() {
	local a b
	a=$(fig "$1" "$3")
	b=$(fig "$2" "$3")
	if [ -z "$a" ] || [ -z "$b" ]; then
		printf '%s' "-"
		return
	fi
	case ${UNIT[$3]} in
	s) awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0) printf "%.2fx", b / a; else print "-" }' ;;
	*) awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }' ;;
	esac
}

echo
echo "== figures (median of $BENCH_REPEAT; MB/s and reads/s: higher is better, s: lower is better)"
printf '%-26s %-7s' workload unit
for cfg in "${CONFIGS[@]}"; do printf ' %14s' "$cfg"; done
printf '\n'
for w in "${ROWS[@]}"; do
	printf '%-26s %-7s' "${LABEL[$w]}" "${UNIT[$w]}"
	for cfg in "${CONFIGS[@]}"; do printf ' %14s' "$(cell "$cfg" "$w")"; done
	printf '\n'
done

echo
echo "== speed ratios (> 1: fshield is faster; for s rows, the inverse ratio of times)"
printf '%-26s' workload
declare -A SHORT=([gocryptfs]=gocr [passthrough]=pass [plain]=plain)
for f in fshield-rw fshield-ro; do
	for b in gocryptfs passthrough plain; do printf ' %9s' "${f#fshield-}/${SHORT[$b]}"; done
done
printf '\n'
for w in "${ROWS[@]}"; do
	printf '%-26s' "${LABEL[$w]}"
	for f in fshield-rw fshield-ro; do
		for b in gocryptfs passthrough plain; do printf ' %9s' "$(speed_ratio "$f" "$b" "$w")"; done
	done
	printf '\n'
done
echo "  targets from the issue, for reference only: seq read >= 1.5x gocryptfs and >= 0.8x" \
	"passthrough; seq write >= 1.2x gocryptfs; small-file total >= 1.0x gocryptfs"

echo
echo "== CPU seconds of the FUSE daemon per run (median; user + system)"
printf '%-26s' workload
for cfg in "${CONFIGS[@]:1}"; do printf ' %14s' "$cfg"; done
printf '\n'
for w in "${ROWS[@]:0:7}"; do
	printf '%-26s' "${LABEL[$w]}"
	for cfg in "${CONFIGS[@]:1}"; do
		if [ -n "${CPU[$cfg:$w]:-}" ]; then
			printf ' %14.2f' "$(median "${CPU[$cfg:$w]}")"
		else
			printf ' %14s' -
		fi
	done
	printf '\n'
done

echo
echo "== every run, in order (for the spread)"
for w in "${ROWS[@]:0:7}"; do
	for cfg in "${CONFIGS[@]}"; do
		[ -z "${RES[$cfg:$w]:-}" ] || printf '  %-26s %-12s%s\n' "${LABEL[$w]}" "$cfg" "${RES[$cfg:$w]}"
	done
done

echo
for cfg in "${CONFIGS[@]}"; do
	[ -z "${NOTE[$cfg]:-}" ] || echo "  $cfg: ${NOTE[$cfg]%; }"
done
[ "$CAN_DROP" = 1 ] || echo "  caches: no drop_caches; cold runs used a fresh mount and posix_fadvise(DONTNEED)"
if [ "$FAILED" != 0 ]; then
	echo "mount_bench: some commands FAILED (see above): figures are incomplete"
	exit 1
fi
echo "mount_bench: done"
