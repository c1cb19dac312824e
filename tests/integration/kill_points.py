# SPDX-License-Identifier: Apache-2.0
"""kill_points.py: the exact points of the commit protocol at which
preload.sh's commit-kills case kills its writer, and the state each kill
must leave.

Usage: kill_points.py STRACE_LOG TAG_FILE FSPF [MAX_PER_KIND]

The log is of `strace -f -y -o LOG -e trace=write,pwrite64,fsync,fdatasync,
rename,renameat,renameat2` of one single-threaded writer under the preload
layer (SCONE_FSPF_MUTABLE=1, with a tag file) that writes a line "step I"
to its stdout after it changed the tree to the state of step I and before
it syncs. Prints one line per kill point:

    KIND SYSCALL N PATH STATE

N counts the calls of SYSCALL in the writer (what strace's
`inject=SYSCALL:signal=KILL:when=N` counts), PATH is the file (the
descriptor's, or a rename's target) the call names, STATE the step whose
state the volume must open at after a SIGKILL on entering that call: that
of the newest slot whose writes are all done (0: the state before the
run). The commit point is the sync of the slot, and the page cache
survives a SIGKILL, so a slot written in full opens even when the writer
is killed on entering that sync; the tag file then names that state or
(unsynced, a few commits behind) one it descends from (fspf(5),
lineage), and an open with the tag file takes the newest. The killed call
itself never happens, so a kill on the slot's first write leaves the
state before it.

The kinds (at most MAX_PER_KIND of each, default all):
  slot-write   the first write of the new fspf into a slot FSPF.tmp.K
  slot-sync    the fdatasync (fsync, for a new slot) of that slot
  dir-sync     an fsync of a directory: the slot's, after a new slot, and
               the host directories a commit syncs first
  tag-write    the in-place pwrite of the tag file (unsynced)
  tag-sync     an fdatasync of the tag file (at close, and at every
               eighth commit)
  tag-rename   the rename of a new tag file over TAG_FILE
  fspf-rename  the rename of the newest slot over FSPF (at close, or every
               64 commits)
"""
import os
import re
import sys

LINE = re.compile(r'^(\d+)\s+(\w+)\((.*)$')
FD = re.compile(r'^\d+<([^>]*)>')
STR = re.compile(r'"((?:[^"\\]|\\.)*)"')


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    log, tagf, fspf = sys.argv[1:4]
    most = int(sys.argv[4]) if len(sys.argv) == 5 else None
    slot = re.compile(re.escape(fspf) + r'\.tmp\.[01]$')
    counts = {}
    step = 0       # the writer's state now
    committed = 0  # the state of the newest slot written in full
    in_slot = None  # the slot written since its last sync
    points = []
    writer = None
    with open(log, errors='replace') as f:
        for raw in f:
            m = LINE.match(raw)
            if not m:
                continue
            pid, call, args = m.groups()
            if writer is None:
                writer = pid
            if pid != writer:
                sys.exit('kill_points.py: a second process or thread (%s) '
                         'made a traced call: counts would not be exact' % pid)
            if 'resumed>' in args:
                continue
            counts[call] = n = counts.get(call, 0) + 1
            fd = FD.match(args)
            path = fd.group(1) if fd else None
            kind = None
            if call == 'write' and args.startswith('1<'):
                s = STR.search(args)
                if s and s.group(1).startswith('step '):
                    step = int(s.group(1).split()[1].rstrip('\\n'))
            elif call == 'pwrite64' and path == tagf:
                kind = 'tag-write'
            elif call == 'pwrite64' and path and slot.search(path):
                if in_slot != path:
                    kind = 'slot-write'
                in_slot = path
            elif call in ('fsync', 'fdatasync') and path == tagf:
                kind = 'tag-sync'
            elif call in ('fsync', 'fdatasync') and path and slot.search(path):
                kind = 'slot-sync'
                in_slot = None
                committed = step  # written in full: it opens
            elif call == 'fsync' and path and os.path.isdir(path):
                kind = 'dir-sync'
            elif call.startswith('rename'):
                names = STR.findall(args)
                if len(names) == 2 and names[1] == tagf:
                    kind, path = 'tag-rename', tagf
                elif len(names) == 2 and names[1] == fspf:
                    kind, path = 'fspf-rename', fspf
            if kind:
                points.append((kind, call, n, path, committed))
    taken = {}
    for kind, call, n, path, state in points:
        taken[kind] = taken.get(kind, 0) + 1
        if most is None or taken[kind] <= most:
            print(kind, call, n, path, state)
    missing = {'slot-write', 'slot-sync', 'dir-sync', 'tag-write', 'tag-sync',
               'tag-rename', 'fspf-rename'} - set(taken)
    if missing:
        sys.exit('kill_points.py: no %s in %s' % (', '.join(sorted(missing)),
                                                   log))


if __name__ == '__main__':
    main()
