#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build and run the whole test suite: install what is missing, then
#   1. a -Dwerror=true build with gcc: every test;
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build: every test;
#   3. the libFuzzer targets built with clang, each run for a bounded time
#      (FUZZ_SECONDS, default 60) on the checked-in seed corpus.
# Prints one closing line: "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" || exit 1
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
passed=0 failed=0 skipped=0

count() { # build dir: add its meson test results to the totals
  local log="$1/meson-logs/testlog.json"
  [ -f "$log" ] || return 0
  read -r p f s < <(python3 - "$log" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
)
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

suite() { # name, build dir, meson setup args...
  local name=$1 dir=$2; shift 2
  echo "== $name" >&2
  rm -rf "$dir"
  if ! meson setup "$dir" "$top" "$@" >"$dir.setup.log" 2>&1 ||
     ! meson compile -C "$dir" >"$dir.compile.log" 2>&1; then
    cat "$dir.setup.log" "$dir.compile.log" 2>/dev/null | tail -n 40 >&2
    echo "$name: build FAILED" >&2
    failed=$((failed + 1))
    return
  fi
  meson test -C "$dir" --print-errorlogs --num-processes 2 --timeout-multiplier 3 >&2
  count "$dir"
}

suite "gcc -Dwerror=true" "$top/build-test" -Dwerror=true
suite "ASan+UBSan" "$top/build-asan" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false

if [ -x "$top/tests/fuzz/run.sh" ]; then
  echo "== fuzz (${FUZZ_SECONDS}s over the targets)" >&2
  if "$top/tests/fuzz/run.sh" "$top/build-fuzz" "$FUZZ_SECONDS" >&2; then
    passed=$((passed + 1))
  else
    echo "fuzz: FAILED" >&2
    failed=$((failed + 1))
  fi
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
