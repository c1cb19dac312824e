# SPDX-License-Identifier: Apache-2.0
"""sync_order.py: check in an strace log that every commit made durable
what its new fspf names, before its commit point.

Usage: sync_order.py STRACE_LOG HOST_ROOT TAG_FILE

The log is of `strace -f -y -o LOG` of a single-threaded program under the
preload layer (SCONE_FSPF_MUTABLE=1, with a tag file). Between two commit
points (the rename of a temporary file over TAG_FILE), every host file
under HOST_ROOT that was written or truncated must be fdatasync'ed (or
fsync'ed) before the next commit point, and every host directory under
HOST_ROOT whose entries changed (create, mkdir, symlink, unlink, rmdir,
rename) must be fsync'ed; a syncfs() covers everything. A renamed
directory takes what it still owed to its new path. Prints what was left
unsynced at each commit point that missed something and exits 1; exits 0
with the count of commit points checked.
"""
import os
import re
import sys

FD = r'\d+<([^>]*)>'


def parent(p):
    return os.path.dirname(p.rstrip('/')) or '/'


def main():
    log, root, tagf = sys.argv[1], sys.argv[2].rstrip('/'), sys.argv[3]
    under = lambda p: p == root or p.startswith(root + '/')
    files, dirs = set(), set()
    commits, bad = 0, 0
    for line in open(log, errors='replace'):
        line = re.sub(r'^\d+\s+', '', line.rstrip('\n'))
        m = re.match(r'(\w+)\((.*)\)\s+=\s+(-?\d+)', line)
        if not m or m.group(3).startswith('-'):
            continue  # unfinished, resumed or failed: no change made
        call, args = m.group(1), m.group(2)
        strs = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
        fd = re.match(FD, args)
        fdp = fd.group(1) if fd else None
        if call in ('write', 'pwrite64', 'pwritev', 'pwritev2', 'writev',
                    'ftruncate', 'fallocate') and fdp and under(fdp):
            files.add(fdp)
        elif call == 'truncate' and strs and under(strs[0]):
            files.add(strs[0])
        elif call in ('fsync', 'fdatasync') and fdp:
            files.discard(fdp)
            dirs.discard(fdp)
        elif call == 'syncfs':
            files.clear()
            dirs.clear()
        elif call in ('openat', 'open') and 'O_CREAT' in args:
            p = strs[0] if strs else ''
            if p.startswith('/') and under(p):
                dirs.add(parent(p))
        elif call in ('mkdir', 'unlink', 'rmdir') and strs and \
                under(strs[0]):
            dirs.add(parent(strs[0]))
            files.discard(strs[0])
        elif call == 'symlink' and len(strs) > 1 and under(strs[1]):
            dirs.add(parent(strs[1]))
        elif call in ('rename', 'renameat', 'renameat2') and len(strs) > 1:
            a, b = strs[0], strs[1]
            if b == tagf:
                commits += 1
                if files or dirs:
                    bad += 1
                    print('commit point %d (%s): not synced: %s' %
                          (commits, line[:60],
                           ' '.join(sorted(files | dirs))))
                continue
            if not (under(a) or under(b)):
                continue
            dirs.update({parent(a), parent(b)})
            moved = lambda p: b + p[len(a):] \
                if p == a or p.startswith(a + '/') else p
            files = {moved(p) for p in files}
            dirs = {moved(p) for p in dirs}
    if not commits:
        print('no commit point in the log')
        return 1
    print('%d commit points, %d missed something' % (commits, bad))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
