# SPDX-License-Identifier: Apache-2.0
"""sync_order.py: check in an strace log that every commit made durable
what its new fspf names before the new fspf could become durable, and
that the tag file never lagged further behind than the lineage reaches.

Usage: sync_order.py [--max-lag N] STRACE_LOG HOST_ROOT TAG_FILE FSPF

The log is of `strace -f -y -o LOG` of single-threaded programs under the
preload layer (SCONE_FSPF_MUTABLE=1, with a tag file). A new fspf is
written into a pending file FSPF.tmp.* (a slot rewritten in place, or a
new temporary file); once written in full it is a state the next open
takes (it descends from the tag file's tag, fspf(5)), even before its
sync, since the page cache may write it back at any time. So:
  - when a new fspf starts to be written (the first write of a pending
    file since its last sync), every host file under HOST_ROOT that was
    written or truncated must already be fdatasync'ed (or fsync'ed), and
    every host directory under HOST_ROOT whose entries changed (create,
    mkdir, symlink, rmdir, rename; not unlink, see remove_path() in
    fshield/fshield.c) fsync'ed; a syncfs() covers everything. A renamed
    directory takes what it still owed to its new path;
  - the sync of the pending file is the commit point; a pending file
    created since must have its directory synced before the tag file is
    written (the commit returns only then);
  - the pending file the last commit point made durable must not be
    written again: a crash would tear the newest state;
  - the tag file is written in place without a sync at most N times in a
    row before a new fspf is written (default 15, FSPF_LINEAGE_MAX - 1:
    the tag a crash may leave there must be in the new state's lineage;
    the writer's policy is 7, a sync at every eighth commit; 0 with
    SCONE_FSPF_TAG_EXACT, a sync at every commit), a new tag file is
    synced before its rename over TAG_FILE, and at the end the tag file
    is synced (the writer's close).
Prints what each commit missed and exits 1; exits 0 with the count of
commit points checked.
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
    args = sys.argv[1:]
    max_lag = 15
    if len(args) == 6 and args[0] == '--max-lag':
        max_lag = int(args[1])
        args = args[2:]
    if len(args) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    log, root, tagf, fspf = args[0], args[1].rstrip('/'), args[2], args[3]
    under = lambda p: p == root or p.startswith(root + '/')
    pend = lambda p: p.startswith(fspf + '.tmp.')
    files, dirs = set(), set()
    pend_dirs = set()  # directories of pending files created, unsynced
    named = None       # the pending file the last commit point made durable
    writing = set()    # pending files written since their last sync
    tag_unsynced = 0   # in-place tag writes since the tag file's last sync
    commits, bad = 0, 0

    def problem(msg):
        nonlocal bad
        bad += 1
        print('commit %d: %s' % (commits + 1, msg))

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
        if call in WRITES and fdp == tagf:
            if pend_dirs:
                problem('the tag file written (%s) before the new name of '
                        'a pending file was durable: %s' %
                        (line[:60], ' '.join(sorted(pend_dirs))))
                pend_dirs.clear()
            tag_unsynced += 1
        elif call in WRITES and fdp and pend(fdp):
            if fdp not in writing:
                if files | dirs:
                    problem('the new fspf (%s) written before these were '
                            'synced: %s' % (fdp, ' '.join(sorted(files |
                                                                dirs))))
                    files.clear()
                    dirs.clear()
                if fdp == named:
                    problem('%s rewritten, which holds the newest durable '
                            'state' % fdp)
                if tag_unsynced > max_lag:
                    problem('the tag file was left unsynced over %d commits'
                            % tag_unsynced)
                writing.add(fdp)
        elif call in WRITES and fdp and (under(fdp) or
                                         fdp.startswith(tagf + '.')):
            files.add(fdp)
        elif call == 'truncate' and strs and under(strs[0]):
            files.add(strs[0])
        elif call in ('fsync', 'fdatasync') and fdp:
            files.discard(fdp)
            dirs.discard(fdp)
            pend_dirs.discard(fdp)
            if fdp == tagf:
                tag_unsynced = 0
            if fdp in writing:
                writing.discard(fdp)
                commits += 1
                named = fdp
        elif call == 'syncfs':
            files.clear()
            dirs.clear()
            pend_dirs.clear()
        elif call in ('openat', 'open') and 'O_CREAT' in args:
            p = strs[0] if strs else ''
            if p.startswith('/') and pend(p):
                pend_dirs.add(parent(p))
            elif p.startswith('/') and under(p):
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
                if a in files:
                    problem('the new tag file %s renamed unsynced' % a)
                files.discard(a)
                tag_unsynced = 0
                continue
            if pend(a) and b == fspf:
                # Unsynced by design: the next open finds its state under
                # either name.
                if named == a:
                    named = b
                continue
            if not (under(a) or under(b)):
                continue
            dirs.update({parent(a), parent(b)})
            moved = lambda p: b + p[len(a):] \
                if p == a or p.startswith(a + '/') else p
            files = {moved(p) for p in files}
            dirs = {moved(p) for p in dirs}
    if tag_unsynced:
        problem('the tag file was never synced after its last %d writes'
                % tag_unsynced)
    if not commits:
        print('no commit point in the log')
        return 1
    print('%d commit points, %d problems' % (commits, bad))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
