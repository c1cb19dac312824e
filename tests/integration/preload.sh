#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# libfshield-preload.so with real, unmodified Debian programs (cat,
# sha256sum, cp, grep, tar, ls, find, python3) reading a protected tree.
# For each program: the plaintext comes out right; a flipped byte in a
# stored chunk makes it fail with EIO (and never shows that chunk's
# plaintext); a file added on the host does not exist for it; and the
# fspf rolled back to an older state is refused at start (exit 1, one
# line naming the fspf and the reason). With SCONE_FSPF_MUTABLE=1, sqlite3,
# the shell, coreutils and python3 change the tree; each run commits a new
# tag into the tag file, which scone-fspf verify checks and a read-only run
# at that tag reads back; the tags before are refused. commit-syncs and
# commit-kills check the commit protocol under strace (the syncs before
# each commit point; SIGKILL at each exact point of it). Usage: preload.sh
# CASE | --list
#
# In a sanitizer build the library needs the ASan runtime loaded first:
# FSHIELD_PRELOAD_ASAN names it (meson sets it), and it is preloaded
# ahead of the library with leak detection off (the programs are not ours).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${FSHIELD_PRELOAD:?set FSHIELD_PRELOAD to libfshield-preload.so}"
[ -f "$FSHIELD_PRELOAD" ] || fail "no preload library at $FSHIELD_PRELOAD"
PYTHON=/usr/bin/python3 # Debian's, whatever PATH says
[ -x "$PYTHON" ] || PYTHON=$(command -v python3) || fail "no python3"
# Its C extension modules (mmap, _ctypes, ...): protected as an
# authenticated region of the sample, and loaded from there under
# SCONE_ALLOW_DLOPEN=1 (without it, no library loads after start).
DYNLOAD=$("$PYTHON" -c 'import os, _ctypes; print(os.path.dirname(_ctypes.__file__))')
[[ $DYNLOAD == /* ]] || fail "cannot find the extension modules of $PYTHON"

PRELOAD_LIBS=$FSHIELD_PRELOAD
SAN_ENV=()
if [ -n "${FSHIELD_PRELOAD_ASAN:-}" ]; then
	[ -f "$FSHIELD_PRELOAD_ASAN" ] ||
		fail "sanitizer build, but no ASan runtime at '$FSHIELD_PRELOAD_ASAN'"
	PRELOAD_LIBS="$FSHIELD_PRELOAD_ASAN $FSHIELD_PRELOAD"
	SAN_ENV=(ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0)
fi

# The sample of this script (make_preload_sample), chunk size 4096:
#   region /      not-protected, kernel /
#   region /app   encrypted, kernel /app (in $ROOT): data.bin, other.bin
#                 (BIG_SIZE, a marker per chunk: marker data IDX),
#                 empty, conf/config.yaml,
#                 current -> data.bin, py/main.py importing py/helper.py
#                 and reading py/data.txt
#                 lib/libanswer.so (a shared library whose fshield_answer()
#                 returns 4242), lib/answer.so (the same, for python's import),
#                 js/main.js requiring js/helper.js and reading js/data.txt
#   region /conf  authenticated, kernel /conf: settings.ini, big.bin,
#                 lib/libauth.so (fshield_answer() returns 4343)
#   region $DYNLOAD  authenticated, kernel $DYNLOAD: python's C extension
#                 modules, a plain copy of them in $ROOT$DYNLOAD
# and outside the regions $W/host/libhost.so (fshield_answer(): 4444).
# $FSPF is at its second state ($TAG): a file was added (py/late.txt)
# after $FSPF.v1 ($TAG1) was sealed; copying $FSPF.v1 back is a rollback.
make_preload_sample() {
	make_sample_source
	mkdir -p "$SRC/app/py" "$SRC/conf" "$ROOT$DYNLOAD" "$W/late"
	cat >"$SRC/app/py/main.py" <<'EOF'
import sys
sys.dont_write_bytecode = True
import helper
with open("/app/py/data.txt") as f:
    print(helper.greet(f.read().strip()))
EOF
	printf 'def greet(who):\n    return "hello, " + who\n' >"$SRC/app/py/helper.py"
	echo "protected world" >"$SRC/app/py/data.txt"
	echo "level=debug" >"$SRC/conf/settings.ini"
	make_chunked "$SRC/conf/big.bin" big "$BIG_SIZE"
	echo "added later" >"$W/late/late.txt"
	make_libraries
	{
		fspf create "$FSPF"
		fspf addr "$FSPF" / --kernel / --not-protected
		fspf addr "$FSPF" /app --encrypted --kernel /app
		fspf addf "$FSPF" /app "$SRC/app" "$ROOT/app"
		fspf addr "$FSPF" /conf --authenticated --kernel /conf
		fspf addf "$FSPF" /conf "$SRC/conf" "$ROOT/conf"
		fspf addr "$FSPF" "$DYNLOAD" --authenticated --kernel "$DYNLOAD"
		fspf addf "$FSPF" "$DYNLOAD" "$DYNLOAD" "$ROOT$DYNLOAD"
		fspf encrypt "$FSPF" --key-file "$KEY"
	} >"$W/build.log" 2>"$W/build.err" || {
		cat "$W/build.log" "$W/build.err" >&2
		fail "building the sample failed"
	}
	TAG1=$(awk '/^Encrypted/ {print $9}' "$W/build.log")
	cp "$FSPF" "$FSPF.v1"
	fspf addf "$FSPF" /app/py "$W/late" "$ROOT/app/py" --key-file "$KEY" \
		>"$W/build2.log" 2>>"$W/build.err" || fail "the second addf failed"
	check_sanitizers "$W/build.err"
	TAG=$(awk '{print $NF}' "$W/build2.log")
	[[ $TAG =~ ^[0-9a-f]{32}$ && $TAG1 =~ ^[0-9a-f]{32}$ && $TAG != "$TAG1" ]] ||
		fail "no tags from building the sample"
	cp "$SRC/conf/big.bin" "$W/big.plain"
	cmp -s "$SRC/app/data.bin" "$ROOT/app/data.bin" &&
		fail "the encrypted region holds plaintext"
	return 0
}

# The shared libraries and node scripts of the sample.
make_libraries() {
	mkdir -p "$SRC/app/lib" "$SRC/conf/lib" "$SRC/app/js" "$W/host"
	printf 'int fshield_answer(void) { return ANSWER; }\n' >"$W/answer.c"
	cc -shared -fPIC -DANSWER=4242 -o "$SRC/app/lib/libanswer.so" "$W/answer.c" &&
		cc -shared -fPIC -DANSWER=4343 -o "$SRC/conf/lib/libauth.so" "$W/answer.c" &&
		cc -shared -fPIC -DANSWER=4444 -o "$W/host/libhost.so" "$W/answer.c" ||
		fail "cannot build the test libraries (cc; scripts/deps.sh installs gcc)"
	cp "$SRC/app/lib/libanswer.so" "$SRC/app/lib/answer.so"
	cat >"$SRC/app/js/main.js" <<'EOF'
const fs = require("fs");
const helper = require("./helper");
console.log(helper.greet(fs.readFileSync("/app/js/data.txt", "utf8").trim()));
console.log("size " + fs.statSync("/app/js/data.txt").size);
fs.readFile("/app/js/data.txt", "utf8", (err, d) => {
  if (err) { console.error("async: " + err.message); process.exit(3); }
  console.log("async: " + d.trim());
  fs.promises.readFile("/app/data.bin").then(
    (b) => console.log("promise: " + b.length),
    (e) => { console.error("promise: " + e.message); process.exit(4); });
});
EOF
	printf 'exports.greet = (who) => "hello, " + who;\n' >"$SRC/app/js/helper.js"
	echo "protected world" >"$SRC/app/js/data.txt"
}

# shielded [VAR=VALUE...] CMD...: run CMD under the shield of the sample
# (key from the key file), in $W.
shielded() {
	local vars=()
	while [[ $# -gt 0 && $1 == [A-Z_]*=* ]]; do
		vars+=("$1")
		shift
	done
	run env "${SAN_ENV[@]}" LD_PRELOAD="$PRELOAD_LIBS" SCONE_FSPF="$FSPF" \
		SCONE_FSPF_KEY_FILE="$KEY" SCONE_FSPF_TAG="$TAG" \
		FSHIELD_ROOT="$ROOT" "${vars[@]}" "$@"
}

# expect_refused WHY_RE [FSPF]
expect_refused() {
	[ "$RC" -eq 1 ] || fail "expected the start to be refused (exit 1), got $RC"
	expect_err "^fshield-preload: refusing to start [^:]+: fspf '$(re "${2:-$FSPF}")': $1"
	[ "$(wc -l <"$ERR")" -eq 1 ] || fail "more than one line on stderr"
}

# The three negative variants for a program run as CMD... (reading
# /app/data.bin among others): a flipped byte of chunk 1 of the stored
# data.bin (EIO, nothing of that chunk shown), and the fspf rolled back
# to its first state (refused at start).
expect_tamper_and_rollback_caught() {
	flip_byte "$ROOT/app/data.bin" $((CHUNK + 11))
	shielded "$@"
	[ "$RC" -ne 0 ] || fail "$1 read a tampered chunk and succeeded"
	expect_any 'Input/output error|Errno 5|EIO: i/o error'
	expect_absent "$(marker data 1)"
	flip_byte "$ROOT/app/data.bin" $((CHUNK + 11))
	cp "$FSPF" "$FSPF.v2"
	cp "$FSPF.v1" "$FSPF"
	shielded "$@"
	expect_refused "its tag is not the expected one: suspected rollback or tampering"
	cp "$FSPF.v2" "$FSPF"
	shielded "$@"
	[ "$RC" -eq 0 ] || fail "$1 failed again on the restored sample"
}

# A file put into a protected host directory does not exist for CMD.
expect_intruder_absent() {
	echo "INTRUDER" >"$ROOT/app/intruder.bin"
	shielded "$@"
	expect_not_any 'INTRUDER'
	rm -f "$ROOT/app/intruder.bin"
}

case_cat() {
	make_preload_sample
	local f
	for f in data.bin other.bin empty conf/config.yaml current py/data.txt; do
		shielded cat "/app/$f"
		expect_rc 0
		cmp -s "$OUT" "$SRC/app/$f" || fail "cat /app/$f differs from its plaintext"
	done
	shielded cat /conf/big.bin
	expect_rc 0
	cmp -s "$OUT" "$W/big.plain" || fail "cat /conf/big.bin differs"
	# through ".." and a protected symlink
	shielded cat /app/conf/../current
	expect_rc 0
	cmp -s "$OUT" "$SRC/app/data.bin" || fail "cat via .. differs"
	echo "INTRUDER" >"$ROOT/app/intruder.bin"
	shielded cat /app/intruder.bin
	expect_rc 1
	expect_err 'No such file or directory'
	rm "$ROOT/app/intruder.bin"
	# the file added after the first state is in the second
	shielded cat /app/py/late.txt
	expect_rc 0
	expect_out '^added later$'
	expect_tamper_and_rollback_caught cat /app/data.bin
	# an authenticated chunk is plain on disk, and still checked
	flip_byte "$ROOT/conf/big.bin" 5
	shielded cat /conf/big.bin
	[ "$RC" -ne 0 ] || fail "cat of a tampered authenticated file succeeded"
	expect_err 'Input/output error'
	expect_absent "$(marker big 0)"
}

case_sha256sum() {
	make_preload_sample
	shielded sha256sum /app/data.bin /app/other.bin /conf/big.bin
	expect_rc 0
	(cd "$SRC" && sha256sum app/data.bin app/other.bin conf/big.bin) |
		sed 's|  |  /|' >"$W/want"
	diff -u "$W/want" "$OUT" >&2 || fail "sha256sum differs"
	expect_intruder_absent sha256sum /app/data.bin
	expect_tamper_and_rollback_caught sha256sum /app/data.bin
}

case_cp() {
	make_preload_sample
	mkdir "$W/out"
	shielded cp /app/data.bin "$W/out/data.bin" # copy_file_range
	expect_rc 0
	cmp -s "$W/out/data.bin" "$SRC/app/data.bin" || fail "cp copied wrong bytes"
	echo "INTRUDER" >"$ROOT/app/intruder.bin"
	shielded cp -a /app "$W/out/app"
	expect_rc 0
	rm "$ROOT/app/intruder.bin"
	[ ! -e "$W/out/app/intruder.bin" ] || fail "cp -a copied a host-added file"
	rm "$W/out/app/py/late.txt"
	diff -r "$SRC/app" "$W/out/app" >&2 || fail "cp -a tree differs"
	[ "$(readlink "$W/out/app/current")" = data.bin ] || fail "symlink not copied"
	rm -rf "$W/out"
	mkdir "$W/out"
	expect_tamper_and_rollback_caught cp /app/data.bin "$W/out/x"
}

case_grep() {
	make_preload_sample
	shielded grep -r -c "$(marker data 2)" /app
	expect_rc 0
	expect_out '^/app/data\.bin:1$'
	shielded grep -r 'level=' /conf /app
	expect_rc 0
	expect_out '^/conf/settings\.ini:level=debug$'
	expect_intruder_absent grep -r -l . /app
	expect_tamper_and_rollback_caught grep -c "$(marker data 3)" /app/data.bin
}

case_tar() {
	make_preload_sample
	shielded tar -cf "$W/app.tar" /app /conf
	expect_rc 0
	mkdir "$W/x"
	tar -xf "$W/app.tar" -C "$W/x"
	rm "$W/x/app/py/late.txt"
	diff -r "$SRC/app" "$W/x/app" >&2 || fail "tar of /app differs"
	diff -r "$SRC/conf" "$W/x/conf" >&2 || fail "tar of /conf differs"
	# (tar reads no file into an archive that is /dev/null)
	expect_intruder_absent tar -cvf "$W/t.tar" /app
	expect_tamper_and_rollback_caught tar -cf "$W/t.tar" /app
}

case_ls() {
	make_preload_sample
	shielded ls -l /app
	expect_rc 0
	expect_out "^-rw-r--r-- .* $BIG_SIZE .* data\\.bin$"
	expect_out '^l.* current -> data\.bin$'
	expect_out '^d.* conf$'
	shielded ls -la /app/conf
	expect_rc 0
	expect_out '^-rw-r----- .* 500 .* secret\.txt$'
	expect_not_any 'No such file|cannot'
	expect_intruder_absent ls -la /app
	# ls reads no file data: only the rollback is for it
	cp "$FSPF.v1" "$FSPF"
	shielded ls /app
	expect_refused "its tag is not the expected one"
}

# scandir(3), scandirat(3) and glob(3) walk directories with libc's own
# calls: the shield answers them from the fspf too (a file planted on the
# host is not listed, every recorded one is), and so node's fs.readdir,
# which is scandir; so do ftw(3) and nftw(3), compared flag by flag with
# libc's own walk of the plaintext tree; utime(3) sets a protected file's
# time.
case_libc_walkers() {
	make_preload_sample
	local probe=${LIBC_PROBE_BIN:?LIBC_PROBE_BIN is not set (meson sets it)}
	ls "$SRC/app/js" >"$W/want"
	echo "INTRUDER" >"$ROOT/app/js/intruder.js"
	shielded "$probe" scandir /app/js
	expect_rc 0
	diff -u "$W/want" "$OUT" >&2 || fail "scandir listed other names"
	shielded "$probe" scandirat /app js
	expect_rc 0
	diff -u "$W/want" "$OUT" >&2 || fail "scandirat listed other names"
	sed 's|^|/app/js/|' "$W/want" >"$W/want.glob"
	shielded "$probe" glob '/app/js/*'
	expect_rc 0
	diff -u "$W/want.glob" "$OUT" >&2 || fail "glob matched other names"
	shielded "$probe" glob '/app/*/*.js'
	expect_rc 0
	grep -v data.txt "$W/want.glob" | diff -u - "$OUT" >&2 ||
		fail "glob across directories matched other names"
	shielded "$probe" glob '/app/c*'
	expect_out '^/app/current$'
	expect_out '^/app/conf/$'
	# not recorded: no such directory, whatever the host has
	mkdir -p "$ROOT/app/planted"
	shielded "$probe" scandir /app/planted
	[ "$RC" -ne 0 ] || fail "scandir listed a directory the fspf does not record"
	expect_err 'No such file'
	rmdir "$ROOT/app/planted"
	# outside the regions: the host's, through libc
	shielded "$probe" scandir "$W/late"
	expect_rc 0
	[ -s "$OUT" ] || fail "scandir of a host directory listed nothing"
	if command -v node >/dev/null; then
		shielded node -e 'const fs = require("fs");
console.log(fs.readdirSync("/app/js").join(","));
fs.readdir("/app/js", (e, l) => console.log(e ? e.code : l.join(",")));'
		expect_rc 0
		[ "$(cat "$OUT")" = "$(printf '%s\n%s' "$(paste -sd, "$W/want")" "$(paste -sd, "$W/want")")" ] ||
			fail "node's fs.readdir listed other names: $(cat "$OUT")"
	fi
	expect_not_any INTRUDER
	expect_not_any intruder
	rm "$ROOT/app/js/intruder.js"
	# ftw and nftw, with each flag: what libc's own walk of the plaintext
	# tree shows (in some order), and nothing planted on the host
	echo "INTRUDER" >"$ROOT/conf/lib/intruder.so"
	local how
	for how in ftw "nftw ." "nftw phys" "nftw depth" "nftw phys,depth,chdir" \
		"nftw chdir" "nftw mount" "nftw skip" "nftw skip,chdir"; do
		local args=()
		read -ra args <<<"$how"
		[ "${args[1]:-}" != . ] || args=(nftw)
		(cd "$SRC" && "$probe" "${args[0]}" conf "${args[@]:1}" &&
			"$probe" "${args[0]}" app/js "${args[@]:1}") >"$W/walk" ||
			fail "libc's own $how failed"
		sort "$W/walk" >"$W/want.walk"
		shielded sh -c "cd / && $probe ${args[*]:0:1} conf ${args[*]:1} &&
			$probe ${args[*]:0:1} app/js ${args[*]:1}"
		expect_rc 0
		sort "$OUT" | diff -u "$W/want.walk" - >&2 ||
			fail "$how walked another tree than libc's walk of the plaintext"
	done
	# a symbolic link back up (on the host: the walk is the shield's too)
	# is entered once, as libc does, with every flag
	mkdir -p "$W/loop/a/b"
	ln -s .. "$W/loop/a/b/up"
	echo x >"$W/loop/a/f"
	for how in "" phys chdir depth,chdir; do
		(cd "$W" && "$probe" nftw loop $how) | sort >"$W/want.loop" ||
			fail "libc's nftw of a loop failed"
		shielded sh -c "cd '$W' && $probe nftw loop $how"
		expect_rc 0
		sort "$OUT" | diff -u "$W/want.loop" - >&2 ||
			fail "nftw $how of a tree with a loop differs from libc's"
	done
	shielded "$probe" nftw /app/js/
	expect_out '^F 1 main\.js '
	shielded "$probe" nftw /app/nothing
	[ "$RC" -ne 0 ] || fail "nftw of a path the fspf does not record succeeded"
	rm "$ROOT/conf/lib/intruder.so"
	mutable "$probe" utime /app/js/data.txt 1500000000
	expect_rc 0
	shielded SCONE_FSPF_TAG="$(new_tag)" stat -c %Y /app/js/data.txt
	expect_out '^1500000000$'
	cp "$FSPF.v1" "$FSPF"
	shielded "$probe" scandir /app/js
	expect_refused "its tag is not the expected one"
}

case_find() {
	make_preload_sample
	shielded find /app /conf -type f -size +1k
	expect_rc 0
	sort "$OUT" >"$W/got"
	printf '%s\n' /app/data.bin /app/lib/answer.so /app/lib/libanswer.so \
		/app/other.bin /conf/big.bin /conf/lib/libauth.so >"$W/want"
	diff -u "$W/want" "$W/got" >&2 || fail "find listed other files"
	shielded find /app -type l -name current
	expect_out '^/app/current$'
	expect_intruder_absent find /app
	expect_tamper_and_rollback_caught find /app/data.bin -exec cat {} +
}

case_python() {
	make_preload_sample
	shielded "$PYTHON" /app/py/main.py
	expect_rc 0
	expect_out '^hello, protected world$'
	# a module added on the host is not importable
	printf 'print("INTRUDER")\n' >"$ROOT/app/py/evil.py"
	shielded "$PYTHON" -c 'import sys; sys.path.insert(0, "/app/py"); import evil'
	[ "$RC" -ne 0 ] || fail "a host-added module was imported"
	expect_err 'ModuleNotFoundError'
	expect_not_any INTRUDER
	rm "$ROOT/app/py/evil.py"
	# the tampered module, and the rollback
	flip_byte "$ROOT/app/py/helper.py" 3
	shielded "$PYTHON" /app/py/main.py
	[ "$RC" -ne 0 ] || fail "python imported a tampered module"
	expect_any 'Input/output error|Errno 5'
	flip_byte "$ROOT/app/py/helper.py" 3
	expect_tamper_and_rollback_caught "$PYTHON" -c \
		'import sys; sys.stdout.write(open("/app/data.bin").read())'
}

# SCONE_ALLOW_DLOPEN with python's ctypes: 1 loads a library of the
# encrypted and of the authenticated region (from a sealed memfd, never the
# stored file) and refuses one outside; unset loads nothing after start,
# not even a protected extension module; 2 loads anything, logged. A
# flipped byte of a stored library is an I/O error, a rolled-back fspf is
# refused at start.
DL_PY='import ctypes, sys
for p in sys.argv[1:]:
    lib = ctypes.CDLL(p)
    print(p, lib.fshield_answer())
maps = open("/proc/self/maps").read()
print("memfd" if "memfd:libanswer.so" in maps else "no memfd")
if "/app/lib/" in maps or "/conf/lib/" in maps:
    sys.exit("a stored library is mapped")'
case_dlopen() {
	make_preload_sample
	shielded SCONE_ALLOW_DLOPEN=1 "$PYTHON" -c "$DL_PY" /app/lib/libanswer.so \
		/conf/lib/libauth.so /app/lib/../lib/libanswer.so
	expect_rc 0
	expect_out '^/app/lib/libanswer\.so 4242$'
	expect_out '^/conf/lib/libauth\.so 4343$'
	expect_out '^/app/lib/\.\./lib/libanswer\.so 4242$'
	expect_out '^memfd$'
	# one object however often it is opened; a name without a slash is
	# searched in the protected directories of LD_LIBRARY_PATH
	shielded SCONE_ALLOW_DLOPEN=1 LD_LIBRARY_PATH=/app/lib "$PYTHON" -c 'import ctypes
a = ctypes.CDLL("/app/lib/libanswer.so")
b = ctypes.CDLL("libanswer.so")
c = ctypes.CDLL("/app/lib/libanswer.so")
assert a._handle == b._handle == c._handle, (a, b, c)
print(b.fshield_answer())'
	expect_rc 0
	expect_out '^4242$'
	# outside the regions: refused under 1, with a message
	shielded SCONE_ALLOW_DLOPEN=1 "$PYTHON" -c "$DL_PY" "$W/host/libhost.so"
	[ "$RC" -ne 0 ] || fail "a library outside the regions was loaded under 1"
	expect_err "$(re "$W/host/libhost.so") lies outside the protected regions \(SCONE_ALLOW_DLOPEN=1\)"
	expect_not_any 4444
	shielded SCONE_ALLOW_DLOPEN=1 LD_LIBRARY_PATH="$W/host" "$PYTHON" -c "$DL_PY" libhost.so
	[ "$RC" -ne 0 ] || fail "a library found outside the regions was loaded under 1"
	expect_err 'libhost\.so is .*libhost\.so, which lies outside the protected regions'
	# unset: nothing loads after start, protected or not
	shielded "$PYTHON" -c "$DL_PY" /app/lib/libanswer.so
	[ "$RC" -ne 0 ] || fail "ctypes loaded without SCONE_ALLOW_DLOPEN"
	expect_err '_ctypes.* is protected, but SCONE_ALLOW_DLOPEN is not set'
	shielded "$PYTHON" -c 'import sys; sys.path.insert(0, "/app/lib"); import answer'
	[ "$RC" -ne 0 ] || fail "an extension module loaded without SCONE_ALLOW_DLOPEN"
	expect_err 'ImportError: .*/app/lib/answer\.so is protected, but SCONE_ALLOW_DLOPEN is not set'
	# 2: anything, with a warning in the log
	shielded SCONE_ALLOW_DLOPEN=2 SCONE_LOG=4 "$PYTHON" -c "$DL_PY" "$W/host/libhost.so" /app/lib/libanswer.so
	expect_rc 0
	expect_out '^.*libhost\.so 4444$'
	expect_out '^/app/lib/libanswer\.so 4242$'
	expect_err "fshield-preload\[[0-9]+\]: dlopen $(re "$W/host/libhost.so"): not protected \(SCONE_ALLOW_DLOPEN=2: debug only\)"
	shielded SCONE_ALLOW_DLOPEN=yes "$PYTHON" -c 'print(1)'
	expect_refused 'SCONE_ALLOW_DLOPEN must be 0, 1 or 2'
	# a flipped byte of each stored library
	flip_byte "$ROOT/app/lib/libanswer.so" 100
	shielded SCONE_ALLOW_DLOPEN=1 "$PYTHON" -c "$DL_PY" /app/lib/libanswer.so
	[ "$RC" -ne 0 ] || fail "a tampered encrypted library was loaded"
	expect_err '/app/lib/libanswer\.so cannot be loaded: Input/output error'
	expect_not_any 4242
	flip_byte "$ROOT/app/lib/libanswer.so" 100
	flip_byte "$ROOT/conf/lib/libauth.so" 5000
	shielded SCONE_ALLOW_DLOPEN=1 "$PYTHON" -c "$DL_PY" /conf/lib/libauth.so
	[ "$RC" -ne 0 ] || fail "a tampered authenticated library was loaded"
	expect_err '/conf/lib/libauth\.so cannot be loaded: Input/output error'
	flip_byte "$ROOT/conf/lib/libauth.so" 5000
	# the rollback
	cp "$FSPF" "$FSPF.v2"
	cp "$FSPF.v1" "$FSPF"
	shielded SCONE_ALLOW_DLOPEN=1 "$PYTHON" -c "$DL_PY" /app/lib/libanswer.so
	expect_refused "its tag is not the expected one: suspected rollback or tampering"
	cp "$FSPF.v2" "$FSPF"
	shielded SCONE_ALLOW_DLOPEN=1 "$PYTHON" -c "$DL_PY" /app/lib/libanswer.so
	expect_rc 0
}

# node runs a script of the encrypted region that requires a module of it
# and reads files with the synchronous, asynchronous and promise calls (the
# latter two on libuv's thread pool; with UV_USE_IO_URING=1 libuv would
# have the kernel read the stored bytes: the shield refuses io_uring).
# A library the program has from its start (here LD_PRELOAD'ed, in an
# authenticated region whose stored form lies at its own path) is, for
# dlopen of its path, that object: not a second copy from a memfd.
case_dlopen_loaded() {
	make_preload_sample
	local dir=$W/dlr fspf2=$W/dl.pb tag2
	mkdir -p "$dir"
	cp "$SRC/conf/lib/libauth.so" "$dir/libauth2.so"
	fspf create "$fspf2" >/dev/null &&
		fspf addr "$fspf2" / --kernel / --not-protected >/dev/null &&
		fspf addr "$fspf2" "$dir" --authenticated --kernel "$dir" >/dev/null &&
		fspf addf "$fspf2" "$dir" "$dir" "$dir" >/dev/null &&
		fspf encrypt "$fspf2" --key-file "$KEY" >"$W/dl.log" ||
		fail "building the library's fspf failed"
	tag2=$(awk '/^Encrypted/ {print $9}' "$W/dl.log")
	run env "${SAN_ENV[@]}" LD_PRELOAD="$PRELOAD_LIBS $dir/libauth2.so" \
		SCONE_FSPF="$fspf2" SCONE_FSPF_KEY_FILE="$KEY" SCONE_FSPF_TAG="$tag2" \
		SCONE_ALLOW_DLOPEN=2 "$PYTHON" -c 'import ctypes, sys
start = ctypes.cast(ctypes.CDLL(None).fshield_answer, ctypes.c_void_p).value
again = ctypes.CDLL(sys.argv[1])
print(again.fshield_answer(), start == ctypes.cast(again.fshield_answer, ctypes.c_void_p).value)
print(sum("libauth2" in l or "memfd" in l for l in open("/proc/self/maps")) and
      not any("memfd:libauth2" in l for l in open("/proc/self/maps")))' "$dir/libauth2.so"
	expect_rc 0
	[ "$(cat "$OUT")" = "$(printf '4343 True\nTrue')" ] ||
		fail "dlopen of a library loaded at start made another copy: $(cat "$OUT")"
}

case_node() {
	if ! command -v node >/dev/null; then
		echo "SKIP: node is not installed"
		exit 77
	fi
	make_preload_sample
	local uring
	for uring in "" 1; do
		shielded UV_USE_IO_URING=$uring node /app/js/main.js
		expect_rc 0
		[ "$(cat "$OUT")" = "$(printf 'hello, protected world\nsize 16\nasync: protected world\npromise: %s' "$BIG_SIZE")" ] ||
			fail "node (UV_USE_IO_URING=$uring) printed other lines"
	done
	# a module added on the host does not exist for it
	printf 'console.log("INTRUDER")\n' >"$ROOT/app/js/evil.js"
	shielded node -e 'require("/app/js/evil.js")'
	[ "$RC" -ne 0 ] || fail "node required a host-added module"
	expect_err 'Cannot find module'
	expect_not_any INTRUDER
	rm "$ROOT/app/js/evil.js"
	# a tampered module
	flip_byte "$ROOT/app/js/helper.js" 3
	shielded node /app/js/main.js
	[ "$RC" -ne 0 ] || fail "node required a tampered module"
	expect_err 'EIO|i/o error'
	flip_byte "$ROOT/app/js/helper.js" 3
	expect_tamper_and_rollback_caught node /app/js/main.js
}

# Descriptors: dup'ed ones share the offset, fork keeps them, pread and
# lseek, mmap copies; threads read one file at once.
case_python_descriptors() {
	make_preload_sample
	cat >"$W/fds.py" <<'EOF'
import mmap, os, sys, threading
want = open(sys.argv[1], "rb").read()
fd = os.open("/app/data.bin", os.O_RDONLY | os.O_CLOEXEC)
assert os.fstat(fd).st_size == len(want) == 13288
assert os.read(fd, 100) == want[:100]
fd2 = os.dup(fd)
assert os.read(fd2, 50) == want[100:150]          # shared offset
assert os.lseek(fd, 0, os.SEEK_CUR) == 150
assert os.pread(fd, 10, 5000) == want[5000:5010]
assert os.lseek(fd, -10, os.SEEK_END) == len(want) - 10
assert os.get_inheritable(fd) is False
os.lseek(fd, 0, os.SEEK_SET)
pid = os.fork()
if pid == 0:
    os._exit(0 if os.read(fd2, 4096) == want[:4096] else 3)
assert os.waitpid(pid, 0)[1] == 0                 # (its own offset: LIMITS)
m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
assert m[:] == want
m.close()
m = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
assert m[4096:8192] == want[4096:8192]
try:
    mmap.mmap(fd, 0)                               # shared writable
    sys.exit("a shared writable mapping was allowed")
except OSError as e:
    assert e.errno in (13, 1), e
bad = []
def reader(i):
    with open("/app/other.bin", "rb") as f:
        for k in range(200):
            f.seek((i * 997 + k * 131) % 13000)
            if len(f.read(300)) == 0:
                bad.append(i)
ts = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
assert not bad
os.close(fd)
os.close(fd2)
os.chdir("/app/conf")                             # kept by the shield
assert os.getcwd() == "/app/conf"
assert open("../data.bin", "rb").read() == want
assert sorted(os.listdir(".")) == ["config.yaml", "secret.txt"]
print("descriptors ok")
EOF
	shielded SCONE_ALLOW_DLOPEN=1 "$PYTHON" "$W/fds.py" "$SRC/app/data.bin"
	expect_rc 0
	expect_out '^descriptors ok$'
}

# A child started by exec with the same environment is shielded too.
case_exec_child() {
	make_preload_sample
	shielded sh -c 'cat /app/conf/config.yaml | sha256sum'
	expect_rc 0
	[ "$(awk '{print $1}' "$OUT")" = "$(sha256sum <"$SRC/app/conf/config.yaml" | awk '{print $1}')" ] ||
		fail "the exec'ed cat read other bytes"
	shielded "$PYTHON" -c 'import subprocess; print(subprocess.run(["cat", "/app/py/data.txt"], capture_output=True, check=True).stdout.decode().strip())'
	expect_rc 0
	expect_out '^protected world$'
}

# Without SCONE_FSPF_MUTABLE nothing under protected paths changes: EROFS.
case_writes_refused() {
	make_preload_sample
	local before
	before=$(find "$ROOT" -printf '%p %s %T@\n' | sort | sha256sum)
	shielded sh -c 'echo x > /app/new.txt'
	[ "$RC" -ne 0 ] || fail "a protected file was created"
	expect_err 'Read-only file system'
	shielded sh -c 'echo x >> /app/data.bin'
	expect_err 'Read-only file system'
	for cmd in "mkdir /app/d" "rm -f /app/data.bin" "mv /app/data.bin /app/x" \
		"touch /app/data.bin" "chmod 600 /app/data.bin" "ln -s x /app/l" \
		"truncate -s 0 /app/data.bin" "cp /etc/hostname /app/" \
		"sed -i s/a/b/ /app/conf/config.yaml"; do
		# shellcheck disable=SC2086
		shielded $cmd
		[ "$RC" -ne 0 ] || fail "'$cmd' succeeded"
		expect_err 'Read-only file system'
	done
	[ "$before" = "$(find "$ROOT" -printf '%p %s %T@\n' | sort | sha256sum)" ] ||
		fail "the host tree changed"
	# the rest of the file system stays writable
	shielded sh -c "echo ok > '$W/outside.txt'"
	expect_rc 0
	[ "$(cat "$W/outside.txt")" = ok ] || fail "a write outside was lost"
}

# mutable [VAR=VALUE...] CMD...: CMD under the shield, writable, its new
# tags into $TAGF; the expected tag from $TAGF once it exists.
TAGF=$W/fspf.tag
mutable() {
	if [ -e "$TAGF" ]; then
		shielded SCONE_FSPF_TAG= SCONE_FSPF_TAG_FILE="$TAGF" SCONE_FSPF_MUTABLE=1 "$@"
	else
		shielded SCONE_FSPF_TAG_FILE="$TAGF" SCONE_FSPF_MUTABLE=1 "$@"
	fi
}

# The tag in $TAGF, after scone-fspf verify checked the tree at it.
new_tag() {
	[ -s "$TAGF" ] || fail "no tag file after a writable run"
	fspf verify "$FSPF" --root "$ROOT" --tag-file "$TAGF" --key-file "$KEY" \
		>"$W/verify.out" 2>&1 || {
		cat "$W/verify.out" >&2
		fail "verify at the new tag failed"
	}
	cat "$TAGF"
}

need_sqlite3() {
	command -v sqlite3 >/dev/null ||
		fail "sqlite3 is missing (scripts/deps.sh installs it)"
}

# sqlite3 creates a database in the encrypted region: 10,000 rows in 100
# transactions of 100; reopened at the new tag (from the tag file) it
# passes integrity_check; the tags before are refused; a flipped stored
# byte is an I/O error.
case_sqlite() {
	need_sqlite3
	make_preload_sample
	local i j tag2 tag3 q
	{
		echo 'CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, s TEXT);'
		for ((i = 0; i < 100; i++)); do
			echo 'BEGIN;'
			for ((j = 0; j < 100; j++)); do
				echo "INSERT INTO t (v, s) VALUES ($((i * 100 + j)), 'row $i $j');"
			done
			echo 'COMMIT;'
		done
	} >"$W/insert.sql"
	mutable sqlite3 -bail /app/test.db ".read $W/insert.sql"
	expect_rc 0
	tag2=$(new_tag)
	[ "$tag2" != "$TAG" ] || fail "the tag did not change"
	[ -s "$ROOT/app/test.db" ] || fail "no stored database"
	grep -q 'SQLite format 3' "$ROOT/app/test.db" &&
		fail "the stored database is plaintext"
	[ ! -e "$ROOT/app/test.db-journal" ] || fail "a journal was left"
	q='PRAGMA integrity_check; SELECT count(*), sum(v), max(s) FROM t;'
	shielded SCONE_FSPF_TAG="$tag2" sqlite3 -readonly /app/test.db "$q"
	expect_rc 0
	[ "$(cat "$OUT")" = "$(printf 'ok\n10000|49995000|row 99 99')" ] ||
		fail "the reopened database differs: $(cat "$OUT")"
	# writable again, the expected tag from the tag file
	mutable sqlite3 -bail /app/test.db "BEGIN; DELETE FROM t WHERE v < 5000; COMMIT; $q"
	expect_rc 0
	expect_out '^5000\|37497500\|row 99 99$'
	tag3=$(new_tag)
	[ "$tag3" != "$tag2" ] || fail "the tag did not change"
	shielded SCONE_FSPF_TAG="$tag2" sqlite3 -readonly /app/test.db "$q"
	expect_refused "its tag is not the expected one"
	shielded SCONE_FSPF_TAG="$TAG" sqlite3 /app/test.db "$q"
	expect_refused "its tag is not the expected one"
	# a flipped byte of a stored page
	flip_byte "$ROOT/app/test.db" $((3 * CHUNK + 100))
	shielded SCONE_LOG=3 SCONE_FSPF_TAG="$tag3" sqlite3 -readonly /app/test.db 'SELECT sum(v) FROM t;'
	[ "$RC" -ne 0 ] || fail "sqlite3 read a tampered database and succeeded"
	expect_err 'Verification of file chunk 3 .* of file /app/test\.db failed'
	expect_err 'disk I/O error|malformed'
	# integrity_check names the unreadable page: SQLITE_IOERR_READ (8458)
	shielded SCONE_FSPF_TAG="$tag3" sqlite3 -readonly /app/test.db "$q"
	[ "$RC" -ne 0 ] || fail "integrity_check of a tampered database succeeded"
	expect_out 'error code=8458'
	flip_byte "$ROOT/app/test.db" $((3 * CHUNK + 100))
	shielded SCONE_FSPF_TAG="$tag3" sqlite3 -readonly /app/test.db "$q"
	expect_rc 0
}

# Changes by shell commands and python, one writable run each (each
# commits at its exit and names the next tag); a read-only run at the last
# tag sees exactly them, and scone-fspf verify agrees.
case_shell_writes() {
	make_preload_sample
	local tag2 cmd
	# (each a program of its own, as a shell runs it)
	for cmd in 'sh -c echo_first_>_/app/new.txt' \
		'sh -c echo_second_>>_/app/new.txt;_echo_third_>>_/app/new.txt' \
		"cp $W/big.plain /app/copied.bin" 'mkdir -p /app/dir/sub' \
		'mv /app/new.txt /app/dir/moved.txt' 'rm /app/other.bin' \
		'rmdir /app/dir/sub' 'mkdir /app/gone' 'rmdir /app/gone' \
		'ln -s dir/moved.txt /app/link' 'chmod 600 /app/dir/moved.txt' \
		'touch -d @1700000000 /app/copied.bin' 'truncate -s 100 /app/data.bin'; do
		local args=()
		read -ra args <<<"$cmd"
		[ "${args[0]}" != sh ] || args=(sh -c "${args[2]//_/ }")
		mutable "${args[@]}"
		[ "$RC" -eq 0 ] || fail "'$cmd' failed: $(cat "$ERR")"
	done
	mutable "$PYTHON" -c '
import os
with open("/app/py.txt", "w") as f:
    f.write("from python\n")
with open("/app/py.txt", "a") as f:
    f.write("appended\n")
with open("/app/py.txt", "r+") as f:
    f.seek(5); f.write("P")
fd = os.open("/app/raw.bin", os.O_CREAT | os.O_RDWR, 0o640)
os.pwrite(fd, b"x" * 10000, 5000)
os.ftruncate(fd, 12000)
os.fsync(fd)
os.close(fd)
os.rename("/app/raw.bin", "/app/dir/raw.bin")
print("python ok")'
	expect_rc 0
	expect_out '^python ok$'
	tag2=$(new_tag)
	# what a read-only run at the new tag sees
	shielded SCONE_FSPF_TAG="$tag2" sh -c 'find /app | sort &&
		cat /app/dir/moved.txt /app/link /app/py.txt &&
		stat -c "%n %s %a" /app/dir/moved.txt /app/copied.bin /app/data.bin /app/dir/raw.bin &&
		stat -c "%n %Y" /app/copied.bin && sha256sum /app/copied.bin &&
		head -c 100 /app/data.bin | sha256sum &&
		tail -c 2000 /app/dir/raw.bin | tr -d x | wc -c'
	expect_rc 0
	{
		printf '%s\n' /app /app/conf /app/conf/config.yaml \
			/app/conf/secret.txt /app/copied.bin /app/current \
			/app/data.bin /app/dir /app/dir/moved.txt /app/dir/raw.bin \
			/app/empty /app/js /app/js/data.txt /app/js/helper.js \
			/app/js/main.js /app/lib /app/lib/answer.so \
			/app/lib/libanswer.so /app/link /app/py /app/py.txt /app/py/data.txt \
			/app/py/helper.py /app/py/late.txt /app/py/main.py \
			first second third first second third 'from Python' appended
		echo "/app/dir/moved.txt 19 600"
		echo "/app/copied.bin $BIG_SIZE 644"
		echo "/app/data.bin 100 644"
		echo "/app/dir/raw.bin 12000 $(printf '%o' $((0640 & ~$(umask))))"
		echo "/app/copied.bin 1700000000"
		echo "$(sha256sum <"$W/big.plain" | awk '{print $1}')  /app/copied.bin"
		head -c 100 "$SRC/app/data.bin" | sha256sum
		echo 0
	} >"$W/want"
	diff -u "$W/want" "$OUT" >&2 || fail "the read-only run sees other changes"
	grep -rq 'first' "$ROOT/app" && fail "plaintext in the encrypted region"
	shielded SCONE_FSPF_TAG="$TAG" cat /app/dir/moved.txt
	expect_refused "its tag is not the expected one"
	# a change in the middle of the file, written in place
	mutable "$PYTHON" -c 'import os
os.pwrite(os.open("/app/copied.bin", os.O_WRONLY), b"ZZ", 5000)'
	expect_rc 0
	shielded SCONE_FSPF_TAG="$(new_tag)" sh -c 'head -c 5002 /app/copied.bin | tail -c 2'
	expect_out '^ZZ$'
	# sed -i: a temporary file (mkstemp) beside the file, renamed over it
	mutable sed -i 's/second/2nd/' /app/dir/moved.txt
	expect_rc 0
	shielded SCONE_FSPF_TAG="$(new_tag)" sh -c 'cat /app/dir/moved.txt; ls /app/dir'
	expect_rc 0
	[ "$(cat "$OUT")" = "$(printf 'first\n2nd\nthird\nmoved.txt\nraw.bin')" ] ||
		fail "sed -i: $(cat "$OUT")"
}

# A writable program's children write too: before it blocks waiting for
# one (wait*, system), a program with no protected file open commits and
# lets go of the volume; the child, which waits for it at start, writes
# and commits; the parent takes the volume back at the tag the tag file
# then names. A parent holding a protected file open keeps the volume: its
# writable child is refused after SCONE_FSPF_LOCK_WAIT seconds. A parent
# whose tag came from SCONE_FSPF_TAG cannot trust the tag a child left:
# its children are refused (their tag is stale).
case_writable_children() {
	make_preload_sample
	echo "$TAG" >"$TAGF" # the expected tag through the tag file alone
	mutable sh -c 'echo one > /app/kid.txt
		cat /app/kid.txt
		sh -c "echo two >> /app/kid.txt"
		mkdir /app/kids && mv /app/kid.txt /app/kids/
		cp /app/data.bin /app/kids/copy.bin
		echo three >> /app/kids/kid.txt
		cat /app/kids/kid.txt
		ls /app/kids'
	expect_rc 0
	[ "$(cat "$OUT")" = "$(printf 'one\none\ntwo\nthree\ncopy.bin\nkid.txt')" ] ||
		fail "a shell and its children saw other files: $(cat "$OUT")"
	shielded SCONE_FSPF_TAG="$(new_tag)" sh -c 'cat /app/kids/kid.txt; cmp /app/data.bin /app/kids/copy.bin && echo same'
	expect_rc 0
	[ "$(cat "$OUT")" = "$(printf 'one\ntwo\nthree\nsame')" ] ||
		fail "the committed tree differs: $(cat "$OUT")"
	# python: subprocess.run and os.system, the parent reading what the
	# children wrote
	mutable "$PYTHON" -c '
import os, subprocess
with open("/app/p.txt", "w") as f:
    f.write("parent\n")
subprocess.run(["sh", "-c", "cat /app/p.txt >&2; echo child >> /app/p.txt"], check=True)
with open("/app/p.txt", "a") as f:
    f.write("parent again\n")
assert os.system("echo system >> /app/p.txt") == 0
print(open("/app/p.txt").read(), end="")'
	expect_rc 0
	[ "$(cat "$OUT")" = "$(printf 'parent\nchild\nparent again\nsystem')" ] ||
		fail "python and its children: $(cat "$OUT")"
	# sqlite3 in a child, the parent reading the database after it
	if command -v sqlite3 >/dev/null; then
		mutable sh -c 'sqlite3 /app/kids/db "create table t(x); insert into t values(42);" &&
			sqlite3 /app/kids/db "select x from t"'
		expect_rc 0
		expect_out '^42$'
	fi
	new_tag >/dev/null
	# a parent that changes the tree between starting a child and waiting
	# for it: the child, which waited, opens at the tag the parent then
	# committed (read from the tag file once the lock is its own)
	mutable "$PYTHON" -c '
import os, subprocess
for i in range(3):
    p = subprocess.Popen(["sh", "-c", "cat /app/kids/kid.txt; echo more >> /app/kids/kid.txt"])
    os.mkdir("/app/kids/d%d" % i)
    assert p.wait() == 0
print(sorted(os.listdir("/app/kids")))'
	expect_rc 0
	expect_out "^\\['copy.bin', 'd0', 'd1', 'd2', 'db', 'kid.txt'\\]$"
	# a parent that comes back while a child holds the volume: it waits,
	# then opens at what the child committed (the tag file read once the
	# lock is its own: read before, it named the state the child replaced,
	# whose newer slot the parent then removed)
	mutable "$PYTHON" -c '
import os, subprocess, sys, time
subprocess.run(["true"])
child = "import time\nwith open(\"/app/kids/kid.txt\", \"a\") as f:\n    f.write(\"late\\n\"); f.flush(); time.sleep(1); f.write(\"later\\n\")\n"
p = subprocess.Popen([sys.executable, "-c", child])
time.sleep(0.5)
os.mkdir("/app/kids/waited")
assert p.wait() == 0
print(open("/app/kids/kid.txt").read().split()[-2:])'
	expect_rc 0
	expect_out "^\\['late', 'later'\\]$"
	# a blocking wait in a SIGCHLD handler, while the main loop reads a
	# protected file and forks: never a deadlock (the shield lets go of the
	# volume only when no call is in it)
	mutable "${LIBC_PROBE_BIN:?LIBC_PROBE_BIN is not set (meson sets it)}" sigchld /app/data.bin
	expect_rc 0
	expect_out '^reads 40000$'
	# a parent holding a protected file open: the child waits, then is refused
	# (on fd 3, where the shield's lock was before it moved up: the
	# shell closed it and the lock with it)
	mutable SCONE_FSPF_LOCK_WAIT=1 sh -c 'exec 3>>/app/kids/kid.txt; cat /app/kids/kid.txt; echo "cat: $?"'
	expect_rc 0
	expect_out '^cat: 1$'
	expect_err "refusing to start cat: .*in use|refusing to start cat: .*writer"
	# the shield's descriptors are not the program's to close: after
	# closerange (close_range) the open file still reads and the lock
	# still keeps another writer out
	mutable SCONE_FSPF_LOCK_WAIT=0 "$PYTHON" -c '
import os, subprocess
fd = os.open("/app/kids/kid.txt", os.O_RDONLY)
os.closerange(fd + 1, 1 << 16)
for n in range(fd + 1, 1100):
    try:
        os.close(n)
    except OSError:
        pass
print(os.pread(fd, 4, 0).decode())
r = subprocess.run(["cat", "/app/kids/kid.txt"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
print("cat", r.returncode, b"in use" in r.stderr)'
	expect_rc 0
	[ "$(cat "$OUT")" = "$(printf 'one\n\ncat 1 True')" ] ||
		fail "closing the shield's descriptors: $(cat "$OUT") $(cat "$ERR")"
	# a tag from SCONE_FSPF_TAG: a child after a commit is refused (stale)
	local t
	t=$(new_tag)
	shielded SCONE_FSPF_TAG="$t" SCONE_FSPF_TAG_FILE="$TAGF" SCONE_FSPF_MUTABLE=1 \
		sh -c 'echo x > /app/stale.txt; cat /app/stale.txt; echo "cat: $?"'
	expect_rc 0
	expect_out '^cat: 1$'
	expect_err "refusing to start cat: .*its tag is not the expected one"
	new_tag >/dev/null
}

# Writes through one descriptor are seen through another; locks are the
# kernel's (flock between descriptions, in a forked child too); a forked
# child reads but neither writes nor commits; exit commits a stdio stream
# left open.
# What each commit names is durable before its commit point: under strace,
# sqlite3, mkdir, a shell write, mv of a directory, rm, ln -s and python3
# (write, rename of a directory, truncate, fsync) change /app, each run
# committing at its fsyncs and closes; sync_order.py checks that every host
# file written and every host directory changed was synced before the next
# rename of the tag file. (Kills cannot test this: the page cache outlives
# a killed process, not a lost machine.)
case_commit_syncs() {
	need_sqlite3
	if ! command -v strace >/dev/null; then
		echo "SKIP: no strace (scripts/deps.sh installs it)"
		exit 77
	fi
	make_preload_sample
	local i
	cat >"$W/mutable.sh" <<-EOF
		#!/usr/bin/env bash
		exec env ${SAN_ENV[*]} LD_PRELOAD="$PRELOAD_LIBS" SCONE_FSPF="$FSPF" \\
			SCONE_FSPF_KEY_FILE="$KEY" SCONE_FSPF_TAG_FILE="$TAGF" \\
			SCONE_FSPF_MUTABLE=1 FSHIELD_ROOT="$ROOT" "\$@"
	EOF
	chmod +x "$W/mutable.sh"
	[ -e "$TAGF" ] || echo "$TAG" >"$TAGF"
	{
		echo "CREATE TABLE t (v);"
		# three commits each: past the 15 a tag file may lag
		for ((i = 0; i < 8; i++)); do
			echo "BEGIN; INSERT INTO t VALUES ($i); COMMIT;"
		done
	} >"$W/txn.sql"
	strace -f -y -o "$W/strace.log" bash -c '
		m() { "$@" >/dev/null; }
		m "$1" sqlite3 -bail /app/s.db ".read $2" &&
		m "$1" mkdir -p /app/d/e && m "$1" sh -c "echo hi > /app/d/e/f" &&
		m "$1" mv /app/d /app/g && m "$1" rm /app/s.db &&
		m "$1" ln -s f /app/g/e/l && m "$1" "$3" -c "
import os
f = open(\"/app/g/e/n\", \"w\"); f.write(\"x\" * 10000); f.close()
os.rename(\"/app/g\", \"/app/h\")
fd = os.open(\"/app/h/e/n\", os.O_RDWR); os.ftruncate(fd, 5); os.fsync(fd)
os.close(fd)"' bash "$W/mutable.sh" "$W/txn.sql" "$PYTHON" ||
		fail "the workload under strace failed"
	# the writer's policy: the tag file synced at every eighth commit
	"$PYTHON" "$(dirname "${BASH_SOURCE[0]}")/sync_order.py" --max-lag 7 \
		"$W/strace.log" "$ROOT" "$TAGF" "$FSPF" >"$W/order.out" ||
		{ cat "$W/order.out"; fail "a commit named what was not synced"; }
	new_tag >/dev/null
	# SCONE_FSPF_TAG_EXACT: at every commit
	strace -f -y -o "$W/strace-exact.log" env SCONE_FSPF_TAG_EXACT=1 \
		"$W/mutable.sh" sqlite3 -bail /app/x.db ".read $W/txn.sql" >/dev/null ||
		fail "the exact-tag workload under strace failed"
	"$PYTHON" "$(dirname "${BASH_SOURCE[0]}")/sync_order.py" --max-lag 0 \
		"$W/strace-exact.log" "$ROOT" "$TAGF" "$FSPF" >"$W/order.out" ||
		{ cat "$W/order.out"; fail "an exact tag file was not synced at every commit"; }
	new_tag >/dev/null
}

# Kills at exact points of the commit protocol (strace's fault injection:
# SIGKILL on entering the Nth call of a syscall, which then never runs): a
# python3 writer with a tag file goes through four states, each committed
# by an fsync (a new file of 3000, 9000, 5000, 100 bytes each; only
# creates: a change in place reaches the host before its commit point, so
# a kill before it leaves that file unreadable, which crash.sh covers),
# then exits (the newest slot renamed over the fspf). One run under
# strace finds the calls (kill_points.py): the first write and the sync of
# each slot, the fsyncs of directories, the tag file's in-place pwrite and
# its fdatasync at close, the rename of a new tag file over it (the first
# commit), the rename of the slot over the fspf; and the state each kill
# must leave: that of the newest slot written in full (the commit point is
# the slot's sync, and a SIGKILL leaves the page cache). For each, on a
# copy of the state before the run: the writer is killed there (the log
# must show that call killed), then scone-fspf verify with the tag file
# must pass, a read-only run with the tag file must see exactly that state
# (before the interrupted commit, or after it: never a third; the tag file
# may lag, and the newest state that descends from its tag is taken), and
# a writable run must see it too, commit a new file on top, and leave a
# tree that verify passes and a read-only run reads back.
# FSHIELD_KILL_POINTS=N takes at most N points of each kind.
case_commit_kills() {
	if ! command -v strace >/dev/null; then
		echo "SKIP: no strace (scripts/deps.sh installs it)"
		exit 77
	fi
	make_preload_sample
	local kind call n path state i=0 got want t0=$SECONDS
	cat >"$W/kw.py" <<-'EOF'
		import hashlib, os, sys
		NAMES = ("f1.txt", "f2.txt", "f3.txt", "f4.txt", "after.txt")
		SIZES = (0, 3000, 9000, 5000, 100)
		def version(i):
		    return (b"version %d " % i * SIZES[i])[:SIZES[i]]
		def model(i, after):
		    s = {"f%d.txt" % j: version(j) for j in range(1, i + 1)}
		    if after:
		        s["after.txt"] = b"after\n"
		    return s
		def show(s):
		    for n in NAMES:
		        d = s.get(n)
		        print(n, hashlib.sha256(d).hexdigest()[:16] if d is not None else "-")
		def actual():
		    s = {}
		    for n in NAMES:
		        try:
		            with open("/app/" + n, "rb") as f:
		                s[n] = f.read()
		        except FileNotFoundError:
		            pass
		    return s
		def step(i):
		    os.write(1, b"step %d\n" % i)
		mode = sys.argv[1]
		if mode == "expect":
		    show(model(int(sys.argv[2]), len(sys.argv) > 3))
		elif mode == "state":
		    show(actual())
		elif mode == "after":
		    show(actual())
		    sys.stdout.flush()
		    fd = os.open("/app/after.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
		    os.write(fd, b"after\n")
		    os.fsync(fd)
		    os.close(fd)
		elif mode == "write":
		    for i in range(1, 5):
		        fd = os.open("/app/f%d.txt" % i, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
		        os.write(fd, version(i))
		        step(i)
		        os.fsync(fd)
		        os.close(fd)
	EOF
	# The state before the run, to start each kill from.
	echo "$TAG" >"$TAGF"
	mkdir "$W/before"
	cp -a "$ROOT/app" "$FSPF" "$TAGF" "$W/before/"
	restore() {
		rm -rf "$ROOT/app" "$FSPF" "$FSPF".tmp.* "$TAGF" "$TAGF".*
		cp -a "$W/before/app" "$ROOT/app"
		cp -a "$W/before/$(basename "$FSPF")" "$FSPF"
		cp -a "$W/before/$(basename "$TAGF")" "$TAGF"
	}
	local calls=write,pwrite64,fsync,fdatasync,rename,renameat,renameat2
	run strace -f -y -o "$W/kill.ref" -e trace="$calls" \
		env "${SAN_ENV[@]}" LD_PRELOAD="$PRELOAD_LIBS" SCONE_FSPF="$FSPF" \
		SCONE_FSPF_KEY_FILE="$KEY" SCONE_FSPF_TAG_FILE="$TAGF" \
		SCONE_FSPF_MUTABLE=1 FSHIELD_ROOT="$ROOT" "$PYTHON" "$W/kw.py" write
	expect_rc 0
	run "$PYTHON" "$(dirname "${BASH_SOURCE[0]}")/kill_points.py" \
		"$W/kill.ref" "$TAGF" "$FSPF" ${FSHIELD_KILL_POINTS:+"$FSHIELD_KILL_POINTS"}
	expect_rc 0
	cp "$OUT" "$W/kill.points"
	# The run itself ends at the last state.
	shielded SCONE_FSPF_TAG="$(new_tag)" "$PYTHON" "$W/kw.py" state
	expect_rc 0
	"$PYTHON" "$W/kw.py" expect 4 >"$W/want"
	cmp -s "$OUT" "$W/want" || fail "the run without a kill did not end at its last state"
	while read -r kind call n path state; do
		i=$((i + 1))
		restore
		# (In a shell of its own, which reports the kill to $ERR.)
		run sh -c '"$@"; exit $?' sh strace -f -y -o "$W/kill.$i.log" -e trace="$call" \
			-e inject="$call:signal=KILL:when=$n" \
			env "${SAN_ENV[@]}" LD_PRELOAD="$PRELOAD_LIBS" SCONE_FSPF="$FSPF" \
			SCONE_FSPF_KEY_FILE="$KEY" SCONE_FSPF_TAG_FILE="$TAGF" \
			SCONE_FSPF_MUTABLE=1 FSHIELD_ROOT="$ROOT" "$PYTHON" "$W/kw.py" write
		local what="kill $i ($kind: $call #$n on $path, expecting state $state)"
		# The Nth call is the one meant, and it was killed on entering it.
		tail -n 2 "$W/kill.$i.log" | grep -q '+++ killed by SIGKILL' ||
			fail "$what: the writer was not killed"
		[ "$(grep -Ec "^[0-9]+ +$call\(" "$W/kill.$i.log")" = "$n" ] &&
			grep -E "^[0-9]+ +$call\(" "$W/kill.$i.log" | tail -n 1 | grep -qF "$path" ||
			{ tail -n 5 "$W/kill.$i.log" >&2; fail "$what: another call was killed (the writer's calls changed)"; }
		[ -s "$TAGF" ] || fail "$what: no tag file"
		# It opens; it may name a file created since the last commit point,
		# left on the host (the writable open removes it), nothing else.
		run fspf verify "$FSPF" --root "$ROOT" --tag-file "$TAGF" --key-file "$KEY"
		[ "$RC" = 0 ] || { [ "$RC" = 1 ] && [ -s "$OUT" ] &&
			! grep -qv '^/app/f[1-4]\.txt: not in the fspf: ' "$OUT"; } ||
			fail "$what: verify at the tag file's tag failed"
		"$PYTHON" "$W/kw.py" expect "$state" >"$W/want"
		# The tag file may lag: a read-only run with it takes the newest
		# state that descends from its tag, as the writable run does.
		shielded SCONE_FSPF_TAG= SCONE_FSPF_TAG_FILE="$TAGF" "$PYTHON" "$W/kw.py" state
		[ "$RC" = 0 ] || fail "$what: the read-only run with the tag file failed"
		diff -u "$W/want" "$OUT" >&2 || fail "$what: the read-only run saw another state"
		mutable "$PYTHON" "$W/kw.py" after
		[ "$RC" = 0 ] || fail "$what: the writable run after the kill failed"
		diff -u "$W/want" "$OUT" >&2 || fail "$what: the writable run saw another state"
		"$PYTHON" "$W/kw.py" expect "$state" after >"$W/want"
		shielded SCONE_FSPF_TAG="$(new_tag)" "$PYTHON" "$W/kw.py" state
		[ "$RC" = 0 ] || fail "$what: the read-only run after the writable one failed"
		diff -u "$W/want" "$OUT" >&2 || fail "$what: the commit after the kill was not read back"
		echo "$what: ok"
	done <"$W/kill.points"
	[ "$i" -gt 0 ] || fail "no kill points"
	echo "$i kill points in $((SECONDS - t0)) s"
}

case_write_descriptors() {
	make_preload_sample
	local tag2
	cat >"$W/wfds.py" <<'PY'
import errno, fcntl, os, struct, sys
fd = os.open("/app/w.bin", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
assert os.write(fd, b"a" * 5000) == 5000
assert os.lseek(fd, 0, os.SEEK_CUR) == 5000
fd2 = os.open("/app/w.bin", os.O_RDONLY)
assert os.pread(fd2, 10, 4995) == b"aaaaa"
assert os.pwritev(fd, [b"xy", b"z"], 4090) == 3
assert os.pread(fd2, 5, 4089) == b"axyza"
ap = os.open("/app/w.bin", os.O_WRONLY | os.O_APPEND)
os.write(ap, b"END")
assert os.fstat(fd).st_size == 5003
try:
    os.write(fd2, b"no")
    sys.exit("a read-only descriptor wrote")
except OSError as e:
    assert e.errno == errno.EBADF, e
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
pid = os.fork()
if pid == 0:
    # a forked child: it reads, its writes are refused, and the parent's
    # POSIX lock holds against it
    try:
        os.pwrite(fd, b"child", 0)
        os._exit(3)
    except OSError as e:
        if e.errno != errno.EROFS:
            os._exit(4)
    try:
        fcntl.lockf(fd2, fcntl.LOCK_SH | fcntl.LOCK_NB, 10, 0)
        os._exit(5)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES):
            os._exit(6)
    os.close(fd)
    os._exit(0 if os.pread(fd2, 3, 0) == b"aaa" else 7)
_, st = os.waitpid(pid, 0)
assert st == 0, st
# flock: per open file description, so two of one process conflict
fcntl.flock(ap, fcntl.LOCK_EX)
try:
    fcntl.flock(fd2, fcntl.LOCK_SH | fcntl.LOCK_NB)
    sys.exit("two descriptions both locked")
except OSError as e:
    assert e.errno in (errno.EAGAIN, errno.EWOULDBLOCK), e
# OFD locks: per open file description too; F_OFD_GETLK names the holder
wr = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 100, 10, 0)
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, wr)
rd = struct.pack("hhqqi", fcntl.F_RDLCK, 0, 100, 10, 0)
got = struct.unpack("hhqqi", fcntl.fcntl(fd2, fcntl.F_OFD_GETLK, rd))
assert got[0] == fcntl.F_WRLCK and got[4] == -1, got
try:
    fcntl.fcntl(fd2, fcntl.F_OFD_SETLK, rd)
    sys.exit("two descriptions both took OFD locks")
except OSError as e:
    assert e.errno in (errno.EAGAIN, errno.EACCES), e
os.close(ap)
os.close(fd2)
os.close(fd)
f = open("/app/left-open.txt", "w")
f.write("left open\n")
print("write descriptors ok")
PY
	mutable "$PYTHON" "$W/wfds.py"
	expect_rc 0
	expect_out '^write descriptors ok$'
	tag2=$(new_tag)
	shielded SCONE_FSPF_TAG="$tag2" sh -c 'cat /app/left-open.txt; wc -c /app/w.bin; head -c 3 /app/w.bin'
	expect_rc 0
	[ "$(cat "$OUT")" = "$(printf 'left open\n5003 /app/w.bin\naaa')" ] ||
		fail "other contents: $(cat "$OUT")"
	# the shared writable mapping stays refused
	mutable SCONE_ALLOW_DLOPEN=1 "$PYTHON" -c 'import mmap, os
fd = os.open("/app/w.bin", os.O_RDWR)
mmap.mmap(fd, 0)'
	[ "$RC" -ne 0 ] || fail "a shared writable mapping was allowed"
	expect_err 'Permission denied'
	# one writer at a time: a program a writable one starts and waits for
	# takes its turn (case writable-children)
	mutable sh -c 'cat /app/py/data.txt'
	expect_rc 0
	expect_out '^protected world$'
	# the lock placeholders' directory is never taken through a symlink
	rm -rf "$FSPF.locks"
	mkdir "$W/elsewhere"
	touch "$W/elsewhere/keep"
	ln -s "$W/elsewhere" "$FSPF.locks"
	mutable cat /app/py/data.txt
	expect_refused '.*lock placeholders'
	[ -e "$W/elsewhere/keep" ] || fail "a file of the symlinked directory was removed"
	rm "$FSPF.locks"
	# a program that ends with _exit (dash) leaves no placeholder behind
	mutable sh -c 'echo y > /app/y.txt'
	expect_rc 0
	mutable cat /app/y.txt
	expect_out '^y$'
	[ -z "$(ls "$FSPF.locks")" ] || fail "placeholders were left in $FSPF.locks"
}

# Strict mode: only protected paths are reachable (EACCES elsewhere).
case_strict() {
	make_preload_sample
	echo "host file" >"$W/host.txt"
	shielded SCONE_FSPF_STRICT=1 cat /app/py/data.txt /conf/settings.ini
	expect_rc 0
	expect_out '^protected world$'
	expect_out '^level=debug$'
	shielded SCONE_FSPF_STRICT=1 cat "$W/host.txt"
	expect_rc 1
	expect_err 'Permission denied'
	expect_not_any 'host file'
	shielded SCONE_FSPF_STRICT=1 cat /etc/hostname
	expect_rc 1
	expect_err 'Permission denied'
	shielded SCONE_FSPF_STRICT=0 cat "$W/host.txt"
	expect_rc 0
	expect_out '^host file$'
}

# Start-up: every way of giving key and tag, and every refusal.
case_startup() {
	make_preload_sample
	local hex
	hex=$(cat "$KEY")
	shielded SCONE_FSPF_KEY_FILE= SCONE_FSPF_KEY="$hex" cat /app/py/data.txt
	expect_rc 0
	expect_out '^protected world$'
	exec 7<"$KEY"
	shielded SCONE_FSPF_KEY_FILE= SCONE_FSPF_KEY_FD=7 cat /app/py/data.txt
	exec 7<&-
	expect_rc 0
	expect_out '^protected world$'
	shielded SCONE_FSPF_TAG= SCONE_FSPF_NO_ROLLBACK_PROTECTION=1 cat /app/py/data.txt
	expect_rc 0
	shielded SCONE_FSPF_TAG= cat /app/py/data.txt
	expect_refused 'no expected tag: set SCONE_FSPF_TAG'
	shielded SCONE_FSPF_KEY_FILE= cat /app/py/data.txt
	expect_refused 'no key'
	shielded SCONE_FSPF_KEY="$hex" cat /app/py/data.txt
	expect_refused 'give the key one way only'
	shielded SCONE_FSPF_TAG="$TAG1" cat /app/py/data.txt
	expect_refused 'its tag is not the expected one'
	shielded SCONE_FSPF_TAG=xyz cat /app/py/data.txt
	expect_refused 'SCONE_FSPF_TAG is not 32 hex digits'
	# Another last digit (a fixed one was the key itself 1 time in 16).
	local other=0
	[ "${hex:63:1}" != 0 ] || other=1
	shielded SCONE_FSPF_KEY_FILE= SCONE_FSPF_KEY="${hex:0:63}$other" cat /app/py/data.txt
	expect_refused 'wrong key|tampered|authentic'
	shielded SCONE_FSPF_KEY_FILE="$W/none" cat /app/py/data.txt
	expect_refused 'cannot read the key file'
	shielded SCONE_FSPF_TAG= SCONE_FSPF_TAG_FILE="$W/none.tag" cat /app/py/data.txt
	expect_refused 'no expected tag'
	echo "$TAG" >"$W/t.tag"
	shielded SCONE_FSPF_TAG= SCONE_FSPF_TAG_FILE="$W/t.tag" cat /app/py/data.txt
	expect_rc 0
	expect_out '^protected world$'
	echo "$TAG1" >"$W/t.tag"
	shielded SCONE_FSPF_TAG= SCONE_FSPF_TAG_FILE="$W/t.tag" cat /app/py/data.txt
	expect_refused 'its tag is not the expected one'
	echo xyz >"$W/t.tag"
	shielded SCONE_FSPF_TAG= SCONE_FSPF_TAG_FILE="$W/t.tag" cat /app/py/data.txt
	expect_refused 'the tag file .SCONE_FSPF_TAG_FILE. does not hold 32 hex digits'
	shielded SCONE_FSPF="$W/none.fspf" cat /app/py/data.txt
	expect_refused 'No such file or directory' "$W/none.fspf"
	# logging only when asked
	flip_byte "$ROOT/app/data.bin" 7
	shielded cat /app/data.bin
	expect_err '^cat: /app/data\.bin: Input/output error$'
	[ "$(wc -l <"$ERR")" -eq 1 ] || fail "the library printed without SCONE_LOG"
	shielded SCONE_LOG=3 cat /app/data.bin
	expect_err '^fshield-preload\[[0-9]+\]: Verification of file chunk 0 \(bytes 0 to 4095\) of file /app/data\.bin failed\.$'
	shielded SCONE_LOG=7 SCONE_LOG_FILE="$W/log" cat /app/other.bin
	expect_rc 0
	grep -q 'open /app/other.bin' "$W/log" || fail "no debug line in SCONE_LOG_FILE"
	# without SCONE_FSPF: nothing at all is shielded
	run env "${SAN_ENV[@]}" LD_PRELOAD="$PRELOAD_LIBS" cat "$ROOT/app/data.bin"
	expect_rc 0
	expect_absent "$(marker data 1)"
}

# Paths outside protected regions go to the host unchanged, FSHIELD_ROOT
# notwithstanding.
case_passthrough() {
	make_preload_sample
	echo "host copy" >"$W/host.txt"
	shielded cat "$W/host.txt" /etc/hostname
	expect_rc 0
	expect_out '^host copy$'
	shielded ls "$ROOT/app"
	expect_rc 0
	expect_out '^data\.bin$' # the stored form, as the host has it
}

# The library exports exactly what preload.map lists, which is exactly
# what the sources mark EXPORT.
case_exports() {
	local dir
	dir=$(dirname "$0")/../../fshield
	nm -D --defined-only "$FSHIELD_PRELOAD" | awk '$2 ~ /^[TWiV]$/ {print $3}' |
		grep -v '^_\(init\|fini\)$' | sort -u >"$W/exported"
	sed -n 's/^\t\([A-Za-z_0-9]*\);$/\1/p' "$dir/preload.map" | sort -u >"$W/map"
	grep -ho '^EXPORT [^(]*(' "$dir"/preload*.c |
		sed -E 's/.*[ *]([A-Za-z_0-9]+)\($/\1/' | sort -u >"$W/src"
	diff -u "$W/map" "$W/src" >&2 || fail "preload.map and the sources' EXPORTs differ"
	diff -u "$W/map" "$W/exported" >&2 || fail "the library exports other names than preload.map"
}

# A tag file that lags behind the last commits (a writer killed before it
# synced it: it is synced only at every eighth commit and at exit): a run
# with it takes the newest state, which descends from its tag (fspf(5),
# lineage), and a writable run names that state there again. With
# SCONE_FSPF_TAG_EXACT=1 (a tag file the host cannot write) it is an exact
# tag, as SCONE_FSPF_TAG is.
case_tag_file_lag() {
	local new newer
	make_preload_sample
	echo "$TAG" >"$TAGF"
	cat >"$W/lag.py" <<-'EOF'
		import os
		fd = os.open("/app/lag.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
		for i in range(3):
		    os.pwrite(fd, b"v%d\n" % i, 0)
		    os.fsync(fd)
		os.kill(os.getpid(), 9)
	EOF
	mutable "$PYTHON" "$W/lag.py"
	[ "$RC" = 137 ] || fail "the writer was not killed (exit $RC)"
	ls "$FSPF".tmp.* >/dev/null 2>&1 || fail "no slot left by the killed writer"
	# The tag file as a power loss may leave it: three commits behind.
	echo "$TAG" >"$TAGF"
	shielded SCONE_FSPF_TAG= SCONE_FSPF_TAG_FILE="$TAGF" SCONE_FSPF_TAG_EXACT=1 \
		cat /app/lag.txt
	[ "$RC" -ne 0 ] || fail "an exact tag file read a newer state"
	expect_err 'No such file'
	shielded SCONE_FSPF_TAG= SCONE_FSPF_TAG_FILE="$TAGF" SCONE_LOG=4 cat /app/lag.txt
	expect_rc 0
	expect_out '^v2$'
	expect_err '3 commits after the one its tag file names'
	[ "$(cat "$TAGF")" = "$TAG" ] || fail "a read-only run changed the tag file"
	mutable cat /app/lag.txt
	expect_rc 0
	expect_out '^v2$'
	new=$(new_tag)
	[ "$new" != "$TAG" ] || fail "the writable run did not catch the tag file up"
	# One commit more, closed cleanly (nothing left beside the fspf),
	# then the tag file one behind.
	mutable "$PYTHON" -c 'open("/app/lag.txt", "w").write("v3\n")'
	expect_rc 0
	newer=$(new_tag)
	! ls "$FSPF".tmp.* >/dev/null 2>&1 || fail "a slot left after a clean exit"
	# What the runtime commits names its lineage: format 1.1.
	run fspf show "$FSPF" --json --key-file "$KEY" --tag-file "$TAGF"
	expect_rc 0
	expect_out '"version":"1\.1"'
	echo "$new" >"$TAGF"
	shielded SCONE_FSPF_TAG= SCONE_FSPF_TAG_FILE="$TAGF" SCONE_FSPF_TAG_EXACT=1 \
		cat /app/lag.txt
	expect_refused 'its tag is not the expected one'
	shielded SCONE_FSPF_TAG= SCONE_FSPF_TAG_FILE="$TAGF" cat /app/lag.txt
	expect_rc 0
	expect_out '^v3$'
	mutable true
	expect_rc 0
	[ "$(cat "$TAGF")" = "$newer" ] || fail "the tag file was not caught up"
	shielded SCONE_FSPF_TAG_EXACT=1 true
	expect_refused 'SCONE_FSPF_TAG_EXACT is about a tag file'
}

run_case preload "$@"
