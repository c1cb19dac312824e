#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The writer and the checker of crash.sh.

Every file the writer makes holds self-checking content: lines of 32 bytes
"I<id> V<ver> O<offset>\n" (id and version 7 digits, offset 12), cut at the
file's length, so a file of id I, version V and length L is exactly
gen(I, V, L), and any readable file can be checked on its own: its first
line names I and V, and the rest must follow. Files are never shorter than
one line. An append keeps the version (the longer file is still gen(I, V,
L')), an overwrite rewrites the file in place with version V+1, a shrink
truncates (still gen(I, V, L')).

The log (on the host, outside the mount) has one line per event:
  I N TAG               iteration N begins (written by the caller before
                        it starts the writer); TAG is the tag file's tag
  W PATH ID VER LEN     PATH is about to become gen(ID, VER, LEN)
  W PATH - - -          PATH is about to be removed
  C N TAG               fsync/fdatasync returned: commit N of the iteration;
                        TAG is the tag file's tag then (C u TAG: the
                        daemon reported a commit at unmount, then died)
  S stopped             the writer stopped between operations (SIGTERM)
  N PATH NOTE           a note (an unreadable file refused O_TRUNC)
  X OP PATH ERR         an operation failed (the daemon was killed); the end
  R PATH WHAT           a read-back through the live mount gave wrong bytes
A W line is written before its operation starts, a C line after the fsync
returned (then the log itself is fsynced). The state at a C line is the
replay of every W line before it: a commit covers the whole volume.

Subcommands:
  seed DIR STATE LOG            the first tree (into DIR, to be protected)
  write MNT STATE LOG TAGFILE SEED N
                                iteration N's writer: runs until an
                                operation fails (exit 3), a read-back
                                differs (exit 4) or SIGTERM (exit 5)
  check MNT STATE LOG TAGFILE N VOUT VRC
                                check the tree mounted at MNT after the crash
                                of iteration N against the log and the tag
                                file; VOUT and VRC are the output and exit
                                status of `scone-fspf verify` on the same
                                state; write the tree as found to STATE;
                                exit 1 on failure
  drop-eio STATE                print the paths that read back EIO and drop
                                them from STATE (the caller removes them)
  leftovers STATE               print the paths verify named last as host
                                files of creates never committed
"""
import errno
import json
import os
import random
import re
import signal
import sys

LINE = 32
DIRS = ["", "a", "b", "a/c"]
MAX_FILES = 24
MAX_LEN = 200000


def gen(fid, ver, length):
    n = (length + LINE - 1) // LINE
    b = b"".join(b"I%07d V%07d O%012d\n" % (fid, ver, i * LINE) for i in range(n))
    return b[:length]


HEADER = re.compile(rb"I(\d{7}) V(\d{7}) O000000000000\n")


def parse(data):
    """(id, ver) if data is gen(id, ver, len(data)) for some id and ver."""
    m = HEADER.match(data)
    if not m:
        return None
    fid, ver = int(m.group(1)), int(m.group(2))
    if data != gen(fid, ver, len(data)):
        return None
    return fid, ver


def describe(data):
    """A short account of what was read, for failure messages."""
    if data is None:
        return "absent"
    if data == "EIO":
        return "EIO"
    m = HEADER.match(data)
    head = "header I%s V%s" % (m.group(1).decode(), m.group(2).decode()) if m \
        else "no header (starts %r)" % data[:32]
    p = parse(data)
    if p:
        return "%d bytes, consistent, %s" % (len(data), head)
    # The first line that is not what the header promises.
    if m:
        good = gen(int(m.group(1)), int(m.group(2)), len(data))
        off = next(i for i in range(len(data)) if data[i] != good[i])
        return "%d bytes, %s, first wrong byte at %d (chunk %d): %r" % (
            len(data), head, off, off // 4096, data[off - off % LINE:][:LINE])
    return "%d bytes, %s" % (len(data), head)


def load(path):
    with open(path) as f:
        st = json.load(f)
    files = {}
    for p, v in st["files"].items():
        files[p] = v if v == "EIO" else tuple(v)
    return files, st["next_id"], set(st.get("leftovers", []))


def save(path, files, next_id, leftovers=()):
    """The tree as found: path -> [id, ver, len] or "EIO"; the next free id;
    the paths verify names as "not in the fspf" that are absent in the mount
    (host files of creates that were never committed)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"files": {p: (v if v == "EIO" else list(v))
                             for p, v in sorted(files.items())},
                   "next_id": next_id, "leftovers": sorted(leftovers)}, f, indent=1)
    os.replace(tmp, path)


class Log:
    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def put(self, line, sync=False):
        os.write(self.fd, (line + "\n").encode())
        if sync:
            os.fsync(self.fd)


def pick_len(rng):
    if rng.random() < 0.4:
        return rng.choice([32, 33, 4095, 4096, 4097, 8191, 8192, 8193, 13288])
    return rng.randint(32, 65536)


def pieces(rng, length):
    """Cut [0, length) into writes of assorted sizes."""
    out, off = [], 0
    while off < length:
        n = rng.choice([1, 7, 100, 511, 4096, 4097, 8191, rng.randint(1, 20000)])
        n = min(n, length - off)
        out.append((off, n))
        off += n
    return out


def pwrite_all(fd, data, off):
    while data:
        n = os.pwrite(fd, data, off)
        data, off = data[n:], off + n


def write_all(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


def read_all(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        out = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                return b"".join(out)
            out.append(b)
    finally:
        os.close(fd)


def cmd_seed(root, state, log):
    rng = random.Random(1)
    lg = Log(log)
    lg.put("I 0")
    files = {}
    for d in DIRS:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    lens = [32, 4096, 4097, 13288, 65536, 100]
    for i, n in enumerate(lens):
        fid = i + 1
        path = os.path.join(DIRS[i % len(DIRS)], "f%04d.dat" % fid)
        lg.put("W %s %d 1 %d" % (path, fid, n))
        with open(os.path.join(root, path), "wb") as f:
            f.write(gen(fid, 1, n))
        files[path] = (fid, 1, n)
    lg.put("C 0", sync=True)  # create-volume commits the seed
    save(state, {}, len(lens) + 1)
    del rng


def read_tag(path):
    with open(path) as f:
        return f.read().strip()


def cmd_write(mnt, state, log, tagfile, seed, iteration):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    files, next_id, _ = load(state)
    rng = random.Random(seed)
    lg = Log(log)  # its "I N TAG" line is the caller's
    ncommit = 0
    ops = ["create", "overwrite", "append", "shrink", "unlink", "rename",
           "fsync", "readback"]
    # How often this iteration commits: rarely, sometimes or all the time,
    # so that kills land both between and inside commits.
    fsync_weight, p_commit = rng.choice([(0.2, 0.02), (1, 0.1), (4, 0.5)])
    weights = [3, 3, 2, 1, 1, 1, fsync_weight, 1]

    def commit(fd, path):
        nonlocal ncommit
        if rng.random() < 0.5:
            os.fsync(fd)
        else:
            os.fdatasync(fd)
        ncommit += 1
        lg.put("C %d %s" % (ncommit, read_tag(tagfile)), sync=True)

    def new_path(fid):
        return os.path.join(rng.choice(DIRS), "f%04d.dat" % fid)

    while True:
        if stop:  # SIGTERM: stop between two operations
            lg.put("S stopped", sync=True)
            sys.exit(5)
        op = rng.choices(ops, weights)[0]
        good = sorted(p for p, v in files.items() if v != "EIO")
        anyf = sorted(files)
        path = "-"
        try:
            if op == "create" or not anyf:
                if len(files) >= MAX_FILES:
                    continue
                op = "create"
                fid, next_id = next_id, next_id + 1
                path = new_path(fid)
                if path in files:
                    continue
                n = pick_len(rng)
                data = gen(fid, 1, n)
                lg.put("W %s %d 1 %d" % (path, fid, n))
                fd = os.open(os.path.join(mnt, path),
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    for off, k in pieces(rng, n):
                        write_all(fd, data[off:off + k])
                    files[path] = (fid, 1, n)
                    if rng.random() < p_commit:
                        commit(fd, path)
                finally:
                    os.close(fd)
            elif op == "overwrite":
                path = rng.choice(anyf)
                old = files[path]
                if old == "EIO":
                    fid, next_id = next_id, next_id + 1
                    ver, oldlen, flags = 1, 0, os.O_TRUNC
                else:
                    fid, ver, oldlen = old[0], old[1] + 1, old[2]
                    flags = os.O_TRUNC if rng.random() < 0.15 else 0
                n = pick_len(rng)
                data = gen(fid, ver, n)
                lg.put("W %s %d %d %d" % (path, fid, ver, n))
                host = os.path.join(mnt, path)
                try:
                    fd = os.open(host, os.O_WRONLY | flags, 0o644)
                except OSError as e:
                    if old != "EIO" or e.errno != errno.EIO:
                        raise
                    # A file the crash left unreadable may refuse even
                    # O_TRUNC: remove it and create it anew.
                    lg.put("N %s: open with O_TRUNC gives EIO; unlink and create" % path)
                    os.unlink(host)
                    fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    ps = pieces(rng, n)
                    if rng.random() < 0.3:
                        rng.shuffle(ps)  # out of order: holes for a while
                    for off, k in ps:
                        pwrite_all(fd, data[off:off + k], off)
                    if n < oldlen and not flags:
                        os.ftruncate(fd, n)
                    files[path] = (fid, ver, n)
                    if rng.random() < p_commit:
                        commit(fd, path)
                finally:
                    os.close(fd)
            elif op == "append" and good:
                path = rng.choice(good)
                fid, ver, oldlen = files[path]
                n = min(MAX_LEN, oldlen + rng.randint(1, 20000))
                if n == oldlen:
                    continue
                data = gen(fid, ver, n)
                lg.put("W %s %d %d %d" % (path, fid, ver, n))
                fd = os.open(os.path.join(mnt, path), os.O_WRONLY | os.O_APPEND)
                try:
                    for off, k in pieces(rng, n - oldlen):
                        write_all(fd, data[oldlen + off:oldlen + off + k])
                    files[path] = (fid, ver, n)
                    if rng.random() < p_commit:
                        commit(fd, path)
                finally:
                    os.close(fd)
            elif op == "shrink" and good:
                path = rng.choice(good)
                fid, ver, oldlen = files[path]
                if oldlen <= LINE:
                    continue
                n = rng.randint(LINE, oldlen - 1)
                lg.put("W %s %d %d %d" % (path, fid, ver, n))
                os.truncate(os.path.join(mnt, path), n)
                files[path] = (fid, ver, n)
            elif op == "unlink":
                path = rng.choice(anyf)
                lg.put("W %s - - -" % path)
                os.unlink(os.path.join(mnt, path))
                del files[path]
            elif op == "rename" and good:
                path = rng.choice(good)
                v = files[path]
                if rng.random() < 0.5 and len(anyf) > 1:
                    dst = rng.choice([p for p in anyf if p != path])  # replace
                else:
                    dst = new_path(next_id)
                    next_id += 1
                    if dst in files:
                        continue
                lg.put("W %s %d %d %d" % ((dst,) + v))
                lg.put("W %s - - -" % path)
                os.rename(os.path.join(mnt, path), os.path.join(mnt, dst))
                del files[path]
                files[dst] = v
                path = path + "->" + dst
            elif op == "fsync" and good:
                path = rng.choice(good)
                mode = os.O_RDONLY if rng.random() < 0.5 else os.O_WRONLY
                fd = os.open(os.path.join(mnt, path), mode)
                try:
                    commit(fd, path)
                finally:
                    os.close(fd)
            elif op == "readback" and good:
                path = rng.choice(good)
                want = gen(*files[path])
                got = read_all(os.path.join(mnt, path))
                if got != want:
                    again = read_all(os.path.join(mnt, path))
                    lg.put("R %s expected %d bytes I%d V%d, read %s; again: %s" % (
                        path, files[path][2], files[path][0], files[path][1],
                        describe(got), describe(again)), sync=True)
                    sys.exit(4)
        except OSError as e:
            lg.put("X %s %s %s" % (op, path, errno.errorcode.get(e.errno, e.errno)),
                   sync=True)
            sys.exit(3)


def replay(log, iteration, files, tag):
    """Replay the log of iteration N over the tree it began with. Returns the
    committed state the tag file's tag @tag stands for, the paths changed
    since, every (path, id, ver, len) ever written, the number of commits,
    the iteration's X/R/S lines, and what is wrong with the commits.

    The points are the iteration's start and every returned commit, each with
    the tag file's tag read then. The volume must be at the last point
    (its tag is the tag file's), or at a commit that had not returned when
    the daemon died (a tag in no point: then it is taken to be at the last
    point, with the changes since allowed either way). Being at an earlier
    point means a commit that returned was lost."""
    written = set()
    cur = dict(files)
    points = []  # (tag, state, paths changed before the next point)
    tail, inside, problems = [], False, []
    with open(log) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] == "I":
                inside = int(w[1]) == iteration
                if inside:
                    points = [(w[2] if len(w) > 2 else None, dict(cur), set())]
                continue
            if w[0] == "W" and w[2] != "-":
                written.add((w[1], int(w[2]), int(w[3]), int(w[4])))
            if not inside:
                continue
            if w[0] == "W":
                if w[2] == "-":
                    cur.pop(w[1], None)
                else:
                    cur[w[1]] = (int(w[2]), int(w[3]), int(w[4]))
                points[-1][2].add(w[1])
            elif w[0] == "C":
                t = w[2] if len(w) > 2 else None
                prev = points[-1]
                if t is not None and t == prev[0] and prev[2]:
                    problems.append(
                        "commit %s returned with the tag of the commit before, "
                        "after changes to %s" % (w[1], " ".join(sorted(prev[2]))))
                points.append((t, dict(cur), set()))
            else:
                tail.append(line.rstrip("\n"))
    if not points:
        return dict(files), set(), written, 0, tail, [
            "no line 'I %d' in the log" % iteration]
    at = len(points) - 1
    if tag is not None and points[-1][0] is not None:
        hits = [i for i, p in enumerate(points) if p[0] == tag]
        if hits and hits[-1] != at:
            problems.append(
                "the tag file holds the tag of %s, but %d commits returned after it: "
                "a commit that returned was lost" % (
                    "the iteration's start" if hits[-1] == 0 else
                    "commit %d" % hits[-1], at - hits[-1]))
        if not hits:
            tail.append("the tag file's tag is of a commit that had not returned")
    mods = points[at][2]
    return points[at][1], mods, written, len(points) - 1, tail, problems


def read_outcome(root, rel):
    """The file's bytes, None if it does not exist, "EIO" if it cannot be
    read (EIO, or a listed file that cannot be opened: see the caller)."""
    try:
        return read_all(os.path.join(root, rel))
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        if e.errno == errno.EIO:
            return "EIO"
        raise


def show(v):
    if v is None:
        return "absent"
    if v == "EIO":
        return "EIO"
    return "%d bytes I%d V%d" % (v[2], v[0], v[1])


def cmd_check(mnt, state, log, tagfile, iteration, vout, vrc):
    files, next_id, old_leftovers = load(state)
    committed, mods, written, commits, tail, bad = replay(
        log, iteration, files, read_tag(tagfile))
    notes = []
    present, dirs = set(), set()
    for top, dnames, fnames in os.walk(mnt, onerror=lambda e: bad.append(
            "listing: %s" % e)):
        rel = os.path.relpath(top, mnt)
        dirs.add("" if rel == "." else rel)
        for n in fnames:
            present.add(os.path.normpath(os.path.join(rel, n)))
    if dirs != set(DIRS):
        bad.append("directories %s, expected %s" % (sorted(dirs), sorted(DIRS)))
    found = {}  # path -> (id, ver, len) | "EIO"
    outcome = {}  # path -> what reading it gave
    for p in sorted(set(committed) | mods | present):
        try:
            got = read_outcome(mnt, p)
        except OSError as e:
            bad.append("%s: reading fails with %s" % (p, errno.errorcode.get(e.errno)))
            continue
        if p in present and got is None:
            # Listed, but its host file is gone: as unreadable as EIO.
            notes.append("%s: listed but open gives ENOENT" % p)
            got = "EIO"
        outcome[p] = got
        if p not in present and got is not None:
            bad.append("%s: not listed but opens (%s)" % (p, describe(got)))
        if isinstance(got, bytes):
            size = os.stat(os.path.join(mnt, p)).st_size
            if size != len(got):
                bad.append("%s: stat size %d, read %d bytes" % (p, size, len(got)))
        exp = committed.get(p)
        if p not in mods:
            want = None if exp is None else ("EIO" if exp == "EIO" else gen(*exp))
            if got != want:
                bad.append("%s: not changed since the last commit, expected %s, "
                           "read %s" % (p, show(exp), describe(got)))
        elif isinstance(got, bytes):
            id_ver = parse(got)
            if id_ver is None:
                bad.append("%s: changed after the last commit (which had it %s) "
                           "and reads back inconsistent: %s" % (
                               p, show(exp), describe(got)))
            elif (p,) + id_ver + (len(got),) not in written:
                bad.append("%s: reads back I%d V%d of %d bytes, which was never "
                           "written there" % ((p,) + id_ver + (len(got),)))
        if got == "EIO":
            found[p] = "EIO"
        elif got is not None:
            id_ver = parse(got)
            if id_ver:
                found[p] = id_ver + (len(got),)
                next_id = max(next_id, id_ver[0] + 1)
    eio = {p for p, v in found.items() if v == "EIO"}
    # What verify named, by path in the volume.
    named = {}
    with open(vout) as f:
        for line in f:
            m = re.match(r"^/(\S*): (.*)$", line.rstrip("\n"))
            if m:
                named.setdefault(m.group(1), []).append(m.group(2))
    strays = []
    if vrc not in (0, 1):
        bad.append("verify exited %d" % vrc)
    if (vrc == 1) != bool(named):
        bad.append("verify exited %d but named %d paths" % (vrc, len(named)))
    for p in sorted(eio - set(named)):
        bad.append("%s: reads EIO but verify does not name it" % p)
    for p in sorted(set(named) - eio):
        if (p in mods or p in old_leftovers) and p not in found:
            strays.append(p)  # absent in the mount, left on the host
            if not all(m.startswith("not in the fspf") for m in named[p]):
                bad.append("%s: absent in the mount, verify says '%s'" % (
                    p, "; ".join(named[p])))
        else:
            bad.append("%s: verify says '%s' but it reads back %s" % (
                p, "; ".join(named[p]), describe(outcome.get(p))))
    gone = sorted(p for p in mods if p in committed and p not in found)
    print("iteration %d: %d commits, %d files, %d changed after the last commit, "
          "%d unreadable, %d committed but gone; verify names %d leftovers of "
          "uncommitted creates (%d new)" % (
              iteration, commits, len(found), len(mods), len(eio), len(gone),
              len(strays), len(set(strays) - old_leftovers)))
    refused = [t for t in tail if t.startswith("N ")]
    if refused:
        print("  %d unreadable files refused O_TRUNC (EIO), e.g. %s" % (
            len(refused), refused[0].split()[1]))
    for t in [t for t in tail if not t.startswith("N ")][-3:]:
        print("  " + t)
    for n in notes:
        print("  note: " + n)
    if set(strays) - old_leftovers:
        print("  new leftovers: %s" % " ".join(sorted(set(strays) - old_leftovers)))
    if bad:
        for b in bad:
            print("FAIL: " + b)
        return 1
    save(state, found, next_id, strays)
    return 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "seed" and len(argv) == 5:
        cmd_seed(*argv[2:5])
        return 0
    if cmd == "write" and len(argv) == 8:
        cmd_write(argv[2], argv[3], argv[4], argv[5], int(argv[6]), int(argv[7]))
        return 0
    if cmd == "check" and len(argv) == 9:
        return cmd_check(argv[2], argv[3], argv[4], argv[5], int(argv[6]), argv[7],
                         int(argv[8]))
    if cmd == "drop-eio" and len(argv) == 3:
        files, next_id, leftovers = load(argv[2])
        for p, v in sorted(files.items()):
            if v == "EIO":
                print(p)
                del files[p]
        save(argv[2], files, next_id, leftovers)
        return 0
    if cmd == "leftovers" and len(argv) == 3:
        for p in sorted(load(argv[2])[2]):
            print(p)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
