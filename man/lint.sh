#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# lint.sh PAGE... - fail when a man page makes groff or man warn.
#
# Runs every page through groff with all warnings (-ww) and through man(1)
# the way a reader sees it (UTF-8, 80 columns). groff exits 0 even when it
# warns, so any output on stderr counts as a failure.
# Exit: 0 clean, 1 warnings, 77 (skip) when groff is not installed.
set -u

# meson passes the programs it found; by hand, take them from PATH.
GROFF=${GROFF:-$(command -v groff)}
MAN=${MAN:-$(command -v man)}

if [ -z "$GROFF" ]; then
	echo "lint.sh: groff not found, skipping" >&2
	exit 77
fi

status=0
for page in "$@"; do
	err=$("$GROFF" -man -ww -z "$page" 2>&1 >/dev/null)
	if [ -n "$err" ]; then
		printf '%s: groff -man -ww warns:\n%s\n' "$page" "$err" >&2
		status=1
	fi
	if [ -n "$MAN" ]; then
		err=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 \
			"$MAN" --warnings -E UTF-8 -l -Tutf8 -Z "$page" 2>&1 >/dev/null)
		if [ -n "$err" ]; then
			printf '%s: man --warnings warns:\n%s\n' "$page" "$err" >&2
			status=1
		fi
	fi
done
exit $status
