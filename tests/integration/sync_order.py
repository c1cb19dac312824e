# SPDX-License-Identifier: Apache-2.0
"""sync_order.py: check in an strace log that every commit made durable
what its new fspf names, and the new fspf itself, before its commit point.

Usage: sync_order.py STRACE_LOG HOST_ROOT TAG_FILE FSPF

The log is of `strace -f -y -o LOG` of single-threaded programs under the
preload layer (SCONE_FSPF_MUTABLE=1, with a tag file). A commit point is
a write of the tag file: the rename of a temporary file over TAG_FILE, or
a write to a descriptor of TAG_FILE itself (in place). Between two commit
points:
  - every host file under HOST_ROOT that was written or truncated must be
    fdatasync'ed (or fsync'ed) before the next commit point, and every
    host directory under HOST_ROOT whose entries changed (create, mkdir,
    symlink, rmdir, rename; not unlink, see remove_path() in
    fshield/fshield.c) must be fsync'ed; a syncfs() covers
    everything. A renamed directory takes what it still owed to its new
    path;
  - the new fspf (a pending file FSPF.tmp.*, new or a slot rewritten in
    place) must be synced too, and a pending file created since must have
    its directory synced; so must a new tag file before its rename;
  - a pending file the last commit point named (the last one written
    before it) must not be written again: a crash would tear the state
    the tag file names.
An in-place write of the tag file must be synced before anything else is
written (the commit returns only then). Prints what each commit point
missed and exits 1; exits 0 with the count of commit points checked.
"""
import os
import re
import sys

FD = r'\d+<([^>]*)>'
WRITES = ('write', 'pwrite64', 'pwritev', 'pwritev2', 'writev', 'ftruncate',
          'fallocate')


def parent(p):
    return os.path.dirname(p.rstrip('/')) or '/'


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    log, root, tagf, fspf = sys.argv[1], sys.argv[2].rstrip('/'), \
        sys.argv[3], sys.argv[4]
    under = lambda p: p == root or p.startswith(root + '/')
    pend = lambda p: p.startswith(fspf + '.tmp.')
    files, dirs = set(), set()
    named = None      # the pending file the last commit point named
    last_pend = None  # the pending file written last
    tag_unsynced = None
    commits, bad = 0, 0
    problems = []

    def commit_point(line):
        nonlocal commits, bad, named
        commits += 1
        missed = sorted(files | dirs)
        if missed:
            bad += 1
            print('commit point %d (%s): not synced: %s' %
                  (commits, line[:70], ' '.join(missed)))
        named = last_pend

    unfinished = {}  # pid: the start of a call another thread interrupted
    for line in open(log, errors='replace'):
        line = line.rstrip('\n')
        pid = re.match(r'^(\d+)\s+', line)
        pid = pid.group(1) if pid else ''
        line = re.sub(r'^\d+\s+', '', line)
        # a call of one thread interrupted by another's: joined again (a
        # commit syncs on the runtime's threads too); it counts when done
        if line.endswith('<unfinished ...>'):
            unfinished[pid] = line[:-len('<unfinished ...>')].rstrip()
            continue
        r = re.match(r'<\.\.\. (\w+) resumed>(.*)', line)
        if r:
            line = unfinished.pop(pid, r.group(1) + '(') + r.group(2)
        m = re.match(r'(\w+)\((.*)\)\s+=\s+(-?\d+)', line)
        if not m or m.group(3).startswith('-'):
            continue  # unfinished, resumed or failed: no change made
        call, args = m.group(1), m.group(2)
        strs = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
        fd = re.match(FD, args)
        fdp = fd.group(1) if fd else None
        if tag_unsynced and call in WRITES and fdp != tagf:
            bad += 1
            print('commit point %d (%s): the tag file was not synced before '
                  '%s' % (commits, tag_unsynced[:70], line[:70]))
            tag_unsynced = None
        if call in WRITES and fdp == tagf:
            commit_point(line)
            tag_unsynced = line
        elif call in WRITES and fdp and pend(fdp):
            if fdp == named:
                bad += 1
                print('after commit point %d: %s rewritten, which the tag '
                      'file names' % (commits, fdp))
            files.add(fdp)
            last_pend = fdp
        elif call in WRITES and fdp and (under(fdp) or
                                         fdp.startswith(tagf + '.')):
            files.add(fdp)
        elif call == 'truncate' and strs and under(strs[0]):
            files.add(strs[0])
        elif call in ('fsync', 'fdatasync') and fdp:
            files.discard(fdp)
            dirs.discard(fdp)
            if fdp == tagf:
                tag_unsynced = None
        elif call == 'syncfs':
            files.clear()
            dirs.clear()
        elif call in ('openat', 'open') and 'O_CREAT' in args:
            p = strs[0] if strs else ''
            if p.startswith('/') and (under(p) or pend(p)):
                dirs.add(parent(p))
        elif call in ('mkdir', 'rmdir') and strs and under(strs[0]):
            dirs.add(parent(strs[0]))
            files.discard(strs[0])
        elif call == 'unlink' and strs and under(strs[0]):
            # Not named by the new fspf: a file a crash brings back is a
            # stray host file, never read (see remove_path()).
            files.discard(strs[0])
        elif call == 'symlink' and len(strs) > 1 and under(strs[1]):
            dirs.add(parent(strs[1]))
        elif call in ('rename', 'renameat', 'renameat2') and len(strs) > 1:
            a, b = strs[0], strs[1]
            if b == tagf:
                commit_point(line)
                files.discard(a)  # reported if unsynced; the tag file now
                continue
            if pend(a) and b == fspf:
                # Unsynced by design: the tag file names its state, which
                # the next open finds under either name.
                files.discard(a)
                if named == a:
                    named = b
                if last_pend == a:
                    last_pend = b
                continue
            if not (under(a) or under(b)):
                continue
            dirs.update({parent(a), parent(b)})
            moved = lambda p: b + p[len(a):] \
                if p == a or p.startswith(a + '/') else p
            files = {moved(p) for p in files}
            dirs = {moved(p) for p in dirs}
    if tag_unsynced:
        bad += 1
        print('commit point %d (%s): the tag file was never synced' %
              (commits, tag_unsynced[:70]))
    if not commits:
        print('no commit point in the log')
        return 1
    print('%d commit points, %d problems' % (commits, bad))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
