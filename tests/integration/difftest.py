#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Differential random-operation test of the read-write FUSE mount.

A seeded random sequence of file-system operations (create, write at any
offset, within and across chunk boundaries and beyond the end of file,
truncate up and down, rename of files and directories, also over existing
files, unlink, mkdir, rmdir, symlink, chmod, utime, read, fsync and
fdatasync, and remount: unmount, then mount again with the tag from the tag
file) runs against `scone-fspf mount --rw` and, step by step, against a
plain reference directory on the host. After every step the paths the step
touched are compared on both sides (type, mode, owner, size, contents,
symlink targets, the listing of their directories, and mtimes that are
known: the initial files' and those set by utime); every FULL_EVERY steps,
and after every remount, the whole tree is compared, read with the page
cache dropped. An operation that fails must fail with the same errno on
both sides. At every fsync the tag file must hold a new tag when a
protected region changed; at every unmount the daemon must print its
commit line (the tag the tag file holds), `scone-fspf verify` must accept
the committed tree with that tag, and the host files must be what the
regions promise (plain copies in authenticated and not-protected regions,
no plaintext in encrypted ones). After the last remount, mounting with
earlier tags, and mounting an earlier copy of the fspf with the current
tag, must be refused.

Scenarios (one meson test each, suite 'difftest'):
  encrypted       one encrypted region /, 512-byte chunks
  authenticated   one authenticated region /, 1024-byte chunks
  not-protected   one not-protected region /
  mixed           / not-protected, /enc encrypted (4096-byte chunks),
                  /auth authenticated (512), /deep/sec encrypted (512);
                  renames across regions may fail with EXDEV (then the
                  reference is left alone) or succeed

Usage:
  difftest.py SCENARIO [--seed N] [--steps N] [--keep] [--log-dir DIR]
  difftest.py SCENARIO --replay LOG [--minimize]
The seed is, in this order: --seed, $DIFFTEST_SEED (`random` draws one),
--default-seed (what meson passes), 1. $DIFFTEST_STEPS overrides the
number of steps, $DIFFTEST_KEEP=1 keeps the workspace. The binary is
$SCONE_FSPF_BIN (or --bin).

Rerun a failure: the failure message prints the seed, the step and the
command, e.g.
  DIFFTEST_SEED=1234 meson test -C build difftest-mixed --verbose
  SCONE_FSPF_BIN=build/tools/scone-fspf \\
      tests/integration/difftest.py mixed --seed 1234
It also writes every operation with both sides' results to a log file
(JSON lines; the path is printed). `--replay LOG` runs exactly the
operations of that log on a fresh fixture built from the log's seed, and
`--minimize` shrinks them (delta debugging) to a short sequence that still
fails the same way, and prints it.

Exit status: 0 all equal, 1 a difference (or a refused/failed mount), 2
usage, 77 (skip) only when /dev/fuse is missing.

--readonly runs the harness against a read-only mount (no --rw; only
reads, listings and remounts), to check the plumbing itself.
"""

import argparse
import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

FULL_EVERY = 40          # steps between whole-tree comparisons
SHOW_LAST = 30           # operations printed on a failure
HEX32 = re.compile(r'^[0-9a-f]{32}$')
COMMIT_LINE = re.compile(
    r'^Committed file system protection file (.+) AES-GCM tag: ([0-9a-f]{32})$')
SANITIZER = re.compile(
    r'ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: ')

# (embed point, protection, chunk length); the kernel directory of each
# region is its embed point below the root.
SCENARIOS = {
    'encrypted': [('/', 'e', 512)],
    'authenticated': [('/', 'a', 1024)],
    'not-protected': [('/', 'n', None)],
    'mixed': [('/', 'n', None), ('/enc', 'e', 4096), ('/auth', 'a', 512),
              ('/deep/sec', 'e', 512)],
}
# FUSE options per scenario: the mixed tree is mounted without the kernel's
# attribute and name caches, so that every comparison sees the daemon's
# answer; the others with the defaults a user gets (what the kernel caches
# must be right too).
NO_CACHE = 'attr_timeout=0,entry_timeout=0,negative_timeout=0'
FUSE_OPTS = {'mixed': NO_CACHE}
PROT_FLAG = {'e': '--encrypted', 'a': '--authenticated', 'n': '--not-protected'}

NAMES = ['a', 'b', 'c', 'data.bin', 'log', 'x1', 'x2', 'notes.txt',
         'zz', 'k']
DIRNAMES = ['d1', 'd2', 'sub', 'tmp', 'q']


class Mismatch(Exception):
    """A difference between the mount and the reference (or a broken
    promise of the mount). kind is a short category, used by --minimize to
    keep the same failure."""

    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind


def say(*a):
    print(*a, flush=True)


def errname(e):
    return errno.errorcode.get(e, str(e))


# ---------------------------------------------------------------- paths

def join(base, rel):
    return base if rel == '/' else base + rel


def parent(rel):
    p = rel.rsplit('/', 1)[0]
    return p or '/'


def is_below(rel, top):
    """rel is top or below it, by whole components."""
    return top == '/' or rel == top or rel.startswith(top + '/')


# ---------------------------------------------------------------- operations
# Every operation is a plain dict, concrete enough to run again on its own
# (paths, offsets, lengths, a seed for the data): the log can be replayed,
# and any subsequence of it is still a valid differential test. run_op
# applies one to a side (the mount or the reference) by the same code.

def op_data(op):
    n = op.get('len', 0)
    return random.Random(op.get('dseed', 0)).randbytes(n) if n else b''


def _write(base, op):
    flags = os.O_RDWR if op.get('rdwr') else os.O_WRONLY
    if op.get('append'):
        flags |= os.O_APPEND
    fd = os.open(join(base, op['path']), flags)
    try:
        data = op_data(op)
        if op.get('append'):
            return os.write(fd, data)
        return os.pwrite(fd, data, op['off'])
    finally:
        os.close(fd)


def _read(base, op):
    fd = os.open(join(base, op['path']), os.O_RDONLY)
    try:
        return os.pread(fd, op['len'], op['off'])
    finally:
        os.close(fd)


def _create(base, op):
    flags = os.O_WRONLY | os.O_CREAT
    if op.get('excl'):
        flags |= os.O_EXCL
    if op.get('trunc'):
        flags |= os.O_TRUNC
    fd = os.open(join(base, op['path']), flags, op['mode'])
    try:
        data = op_data(op)
        return os.write(fd, data) if data else 0
    finally:
        os.close(fd)


def _copyp(base, op):
    """What cp -p does: create or truncate, write, set the times through the
    descriptor, close."""
    fd = os.open(join(base, op['path']), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                 op['mode'])
    try:
        n = os.write(fd, op_data(op))
        os.utime(fd, ns=(op['atime'] * 10**9, op['mtime'] * 10**9))
        return n
    finally:
        os.close(fd)


def _truncate(base, op):
    p = join(base, op['path'])
    if op.get('via') == 'fd':
        fd = os.open(p, os.O_WRONLY)
        try:
            os.ftruncate(fd, op['size'])
        finally:
            os.close(fd)
    else:
        os.truncate(p, op['size'])


def _fsync(base, op):
    fd = os.open(join(base, op['path']),
                 os.O_RDWR if op.get('len') else os.O_RDONLY)
    try:
        if op.get('len'):
            os.pwrite(fd, op_data(op), op['off'])
        if op.get('datasync'):
            os.fdatasync(fd)
        else:
            os.fsync(fd)
    finally:
        os.close(fd)


def _rename(base, op):
    os.rename(join(base, op['src']), join(base, op['dst']))


def _unlink(base, op):
    os.unlink(join(base, op['path']))


def _mkdir(base, op):
    os.mkdir(join(base, op['path']), op['mode'])


def _rmdir(base, op):
    os.rmdir(join(base, op['path']))


def _symlink(base, op):
    os.symlink(op['target'], join(base, op['path']))


def _chmod(base, op):
    os.chmod(join(base, op['path']), op['mode'])


def _utime(base, op):
    os.utime(join(base, op['path']),
             ns=(op['atime'] * 10**9, op['mtime'] * 10**9))


OPS = {'write': _write, 'read': _read, 'create': _create, 'copyp': _copyp,
       'truncate': _truncate, 'fsync': _fsync, 'rename': _rename,
       'unlink': _unlink, 'mkdir': _mkdir, 'rmdir': _rmdir,
       'symlink': _symlink, 'chmod': _chmod, 'utime': _utime}
# Operations on files held open across steps (one descriptor per side in
# each of HELD_SLOTS slots): writes to a file renamed or unlinked meanwhile.
HELD = {'hopen', 'hwrite', 'hread', 'htrunc', 'hfsync', 'hutime', 'hchmod',
        'hclose'}
HELD_SLOTS = 3
MUTATING = {'write', 'create', 'copyp', 'truncate', 'fsync', 'rename',
            'unlink', 'mkdir', 'rmdir', 'symlink', 'chmod', 'utime'}


def run_op(base, op):
    """('ok', value) or (ERRNO name, None)."""
    try:
        return ('ok', OPS[op['op']](base, op))
    except OSError as e:
        return (errname(e.errno), None)


def op_paths(op):
    return [op[k] for k in ('path', 'src', 'dst') if k in op]


def fmt_val(v):
    if isinstance(v, bytes):
        return '%d bytes sha1 %s' % (len(v), hashlib.sha1(v).hexdigest()[:10])
    return '' if v is None else str(v)


def fmt_res(r):
    if r is None:
        return '-'
    s, v = r
    return s if v is None or v == '' else '%s %s' % (s, fmt_val(v))


def fmt_op(e):
    op = e['op']
    args = ' '.join('%s=%s' % (k, oct(v) if k == 'mode' else v)
                    for k, v in op.items() if k not in ('op', 'step'))
    s = '#%d %s %s' % (op['step'], op['op'], args)
    if 'ref' in e or 'mnt' in e:
        s += '  -> ref: %s | mount: %s' % (fmt_res(e.get('ref')),
                                            fmt_res(e.get('mnt')))
    if e.get('note'):
        s += '  (%s)' % e['note']
    return s


# ---------------------------------------------------------------- the test

class DiffTest:
    def __init__(self, args, scenario, seed):
        self.args = args
        self.bin = args.bin
        self.scenario = scenario
        self.regions = SCENARIOS[scenario]
        self.seed = seed
        self.readonly = args.readonly
        self.selftest = args.self_test       # None, 'dir' or 'gocryptfs'
        # The fspf's promises (tags, commits, host files) are checked only
        # on the read-write mount itself.
        self.fspf_checks = not self.readonly and not self.selftest
        self.fuse_opts = (args.fuse_opts if args.fuse_opts is not None
                          else FUSE_OPTS.get(scenario, ''))
        self.rng = random.Random('ops-%d' % seed)
        self.log = []                 # one entry per operation
        self.step = 0
        self.daemon = None
        self.daemon_n = 0             # mounts so far (names the log files)
        self.tags = []                # every tag the tree had, in order
        self.dirty = False            # a protected region changed since the last commit
        # Regular files whose mtime is known, by inode on the reference: the
        # initial ones and those set by utime. While the reference still
        # shows the time recorded here, the mount must show it too (a write
        # changes it on the reference, and the comparison stops by itself).
        self.mtimes = {}              # (st_dev, st_ino) -> mtime_ns
        self.old_fspf = None          # a copy of an earlier fspf
        self.old_fspf_tag = None
        self.held = {}                # slot -> [ref fd, mount fd, path at open]
        self.conn = None              # the FUSE connection (minor device number)
        self.in_final = False         # in the final checks (after the last step)
        self.w = tempfile.mkdtemp(prefix='fshield-difftest.')
        self.src = self.w + '/src'
        self.root = self.w + '/rootfs'
        self.ref = self.w + '/ref'
        self.mnt = self.w + '/mnt'
        self.fspf = self.w + '/fspf.pb'
        self.key = self.w + '/fspf.key'
        self.tagf = self.w + '/fspf.tag'
        self.cipher = self.w + '/cipher'      # --self-test gocryptfs
        for d in (self.src, self.root, self.ref, self.mnt):
            os.mkdir(d)
        self.chunks = {r[0]: r[2] for r in self.regions}
        self.pinned = set()      # embed points and the directories above them
        for ep, _, _ in self.regions:
            p = ep
            while p != '/':
                self.pinned.add(p)
                p = parent(p)

    # -- regions

    def region_of(self, rel):
        best = None
        for r in self.regions:
            if is_below(rel, r[0]) and (best is None or len(r[0]) > len(best[0])):
                best = r
        return best

    def kind_of(self, rel):
        return self.region_of(rel)[1]

    def chunk_of(self, rel):
        return self.region_of(rel)[2] or 4096

    def max_size(self, rel):
        return 12 * self.chunk_of(rel) if self.chunk_of(rel) < 4096 else 40960

    # -- fixture

    def build(self):
        """The initial tree (from the seed alone), protected with the CLI,
        and its copy as the reference."""
        trng = random.Random('tree-%d' % self.seed)
        for ep, kind, chunk in self.regions:
            base = self.src + ('' if ep == '/' else ep)   # this region's tree
            os.makedirs(base, exist_ok=True)
            cs = chunk or 4096
            dirs = ['']
            for _ in range(trng.randint(2, 3)):
                d = trng.choice(dirs) + '/' + trng.choice(DIRNAMES)
                if not os.path.exists(base + d):
                    os.mkdir(base + d)
                    dirs.append(d)
            for _ in range(trng.randint(4, 7)):
                f = trng.choice(dirs) + '/' + trng.choice(NAMES)
                if os.path.lexists(base + f):
                    continue
                size = trng.choice([0, 1, cs - 1, cs, cs + 1, 2 * cs + 7,
                                    trng.randrange(5 * cs)])
                with open(base + f, 'wb') as fh:
                    fh.write(trng.randbytes(size))
                os.chmod(base + f, trng.choice([0o644, 0o600, 0o755, 0o640]))
            f = trng.choice(dirs) + '/' + 'lnk'
            if not os.path.lexists(base + f):
                os.symlink(trng.choice(NAMES), base + f)
        # Embed points nested in another region's source tree are that
        # region's business: the reference is the union.
        shutil.copytree(self.src, self.ref, symlinks=True, dirs_exist_ok=True)
        # The whole tree: a fixed old time on everything, so that the
        # initial mtimes are known on both sides.
        t0 = 1_600_000_000 + trng.randrange(10**6)
        for side in (self.src, self.ref):
            for dp, dns, fns in os.walk(side):
                for n in fns:
                    os.utime(dp + '/' + n, ns=(t0 * 10**9, t0 * 10**9),
                             follow_symlinks=False)
        for dp, dns, fns in os.walk(self.ref):
            for n in fns:
                st = os.lstat(dp + '/' + n)
                if stat.S_ISREG(st.st_mode):
                    self.mtimes[(st.st_dev, st.st_ino)] = st.st_mtime_ns

        if self.selftest:
            self.build_selftest()
            return

        def cli(*a):
            r = subprocess.run([self.bin] + list(a), capture_output=True,
                               text=True, env=self.env())
            if r.returncode != 0:
                raise Mismatch('fixture', 'fixture: %s failed (%d): %s%s' % (
                    ' '.join(a), r.returncode, r.stdout, r.stderr))
            return r.stdout

        cli('create', self.fspf)
        for ep, kind, chunk in self.regions:
            a = ['addr', self.fspf, ep, PROT_FLAG[kind], '--kernel', ep]
            if chunk:
                a += ['-c', str(chunk)]
            cli(*a)
        for ep, kind, chunk in self.regions:
            srcdir = self.src + ('' if ep == '/' else ep)
            out = self.root + ('' if ep == '/' else ep)
            if kind == 'n':
                # Plain files on the host; the nested regions' trees are
                # theirs (addf writes them).
                for dp, dns, fns in os.walk(srcdir):
                    rel = dp[len(self.src):] or '/'
                    pre = '' if rel == '/' else rel
                    dns[:] = [d for d in dns if self.region_of(pre + '/' + d)[0] == ep]
                    os.makedirs(self.root + dp[len(self.src):], exist_ok=True)
                    for n in fns:
                        shutil.copy2(dp + '/' + n, self.root + dp[len(self.src):] + '/' + n,
                                     follow_symlinks=False)
            else:
                os.makedirs(out, exist_ok=True)
                cli('addf', self.fspf, ep, srcdir, out)
        out = cli('encrypt', self.fspf, '--key-file', self.key)
        tag = out.split()[8]
        if not HEX32.match(tag):
            raise Mismatch('fixture', 'no tag in %r' % out)
        with open(self.tagf, 'w') as fh:
            fh.write(tag + '\n')
        self.tags.append(tag)

    def build_selftest(self):
        """--self-test: the other side is a plain directory, or a gocryptfs
        mount, holding a copy of the reference: any difference found is the
        harness's own (a generator or a comparison that is not
        deterministic), not the mount's."""
        self.tags.append('0' * 32)
        if self.selftest == 'dir':
            shutil.copytree(self.ref, self.mnt, symlinks=True, dirs_exist_ok=True)
            return
        r = subprocess.run(['gocryptfs', '-init', '-q', '-extpass', 'echo difftest',
                            '-scryptn', '10', self.cipher], capture_output=True, text=True)
        if r.returncode != 0:
            os.mkdir(self.cipher)
            r = subprocess.run(['gocryptfs', '-init', '-q', '-extpass', 'echo difftest',
                                '-scryptn', '10', self.cipher], capture_output=True,
                               text=True)
        if r.returncode != 0:
            raise Mismatch('fixture', 'gocryptfs -init: ' + r.stderr)
        self.must_mount()
        shutil.copytree(self.ref, self.mnt, symlinks=True, dirs_exist_ok=True)
        os.chmod(self.mnt, os.lstat(self.ref).st_mode & 0o7777)
        self.unmount()

    def env(self):
        e = dict(os.environ)
        e['SCONE_FSPF_NO_PROGRESS'] = '1'
        for k in ('SCONE_FSPF_KEY', 'SCONE_FSPF_TAG', 'SCONE_FSPF'):
            e.pop(k, None)
        e['LC_ALL'] = 'C'
        return e

    # -- the daemon

    def mounted(self):
        try:
            with open('/proc/self/mountinfo') as fh:
                for line in fh:
                    f = line.split()
                    if f[4].replace('\\040', ' ') == self.mnt:
                        # The FUSE connection, to abort a daemon that hangs.
                        self.conn = f[2].split(':')[1]
                        return True
        except OSError:
            pass
        return False

    def daemon_log(self, n=40):
        if not self.daemon:
            return ''
        try:
            with open(self.daemon[1], errors='replace') as fh:
                lines = fh.read().splitlines()
        except OSError:
            return ''
        return '\n'.join(lines[-n:])

    def mount(self, extra=None):
        if self.selftest == 'dir':
            return None
        self.daemon_n += 1
        out = '%s/daemon%d.out' % (self.w, self.daemon_n)
        err = '%s/daemon%d.err' % (self.w, self.daemon_n)
        argv = [self.bin, 'mount', self.fspf, self.mnt, '--root', self.root,
                '-f', '--key-file', self.key]
        argv += extra if extra is not None else ['--tag-file', self.tagf]
        if self.fuse_opts:
            argv += ['-o', self.fuse_opts]
        if not self.readonly:
            argv.append('--rw')
        if self.selftest == 'gocryptfs':
            argv = ['gocryptfs', '-fg', '-q', '-extpass', 'echo difftest',
                    self.cipher, self.mnt]
        with open(out, 'w') as o, open(err, 'w') as e:
            p = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                 env=self.env())
        self.daemon = (p, err, out)
        deadline = time.monotonic() + 10
        while not self.mounted():
            if p.poll() is not None:
                return p.returncode
            if time.monotonic() > deadline:
                raise Mismatch('mount', 'not mounted after 10 s:\n' + self.daemon_log())
            time.sleep(0.02)
        return None

    def must_mount(self):
        rc = self.mount()
        if rc is not None:
            raise Mismatch('mount', 'the mount was refused (exit %d):\n%s' % (
                rc, self.daemon_log()))

    def unmount(self):
        """Unmount as a user would; the daemon must exit 0, print the commit
        line, and the tag file must hold that tag."""
        if self.selftest == 'dir':
            return
        p, err, out = self.daemon
        for i in range(50):
            r = subprocess.run(['fusermount3', '-u', self.mnt], capture_output=True,
                               text=True)
            if r.returncode == 0 or 'busy' not in r.stderr:
                break
            if i == 0:
                holders = self.holders()
            time.sleep(0.1)
        if r.returncode != 0:
            raise Mismatch('unmount', 'fusermount3 -u failed: %s%s' % (
                r.stderr.strip(), '; holding it: ' + holders if holders else ''))
        if i:
            say('note: step %d: the mount was busy for %.1f s at unmount (holding it '
                'then: %s)' % (self.step, i * 0.1, holders or 'nobody found'))
        try:
            rc = p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise Mismatch('unmount', 'the daemon did not end within 20 s after '
                           'fusermount3 -u:\n' + self.daemon_log())
        log = self.daemon_log(10**6)
        self.daemon = None
        if SANITIZER.search(log):
            raise Mismatch('sanitizer', 'sanitizer report from the daemon:\n' + log)
        if rc != 0:
            raise Mismatch('unmount', 'the daemon exited with %d:\n%s' % (rc, log))
        if self.mounted():
            raise Mismatch('unmount', 'still mounted after the daemon ended')
        with open(out) as fh:
            stdout = fh.read()
        if not self.fspf_checks:
            return
        tags = [m.group(2) for m in map(COMMIT_LINE.match, stdout.splitlines()) if m]
        if len(tags) != 1:
            raise Mismatch('commit', 'expected one line "Committed file system '
                           'protection file FSPF AES-GCM tag: HEX" at unmount, '
                           'stdout was:\n%s\nstderr:\n%s' % (stdout, log))
        self.check_tag_file(tags[0], 'at unmount')
        self.commit(tags[0])

    def holders(self):
        """Processes with a file, directory or memory map in the mount."""
        out = []
        for pid in os.listdir('/proc'):
            if not pid.isdigit():
                continue
            d = '/proc/' + pid
            try:
                links = [d + '/cwd', d + '/root'] + [d + '/fd/' + f for f in os.listdir(d + '/fd')]
                names = [os.readlink(x) for x in links if os.path.islink(x)]
                with open(d + '/maps') as fh:
                    names += [ln.split(None, 5)[-1].strip() for ln in fh]
                with open(d + '/cmdline', 'rb') as fh:
                    cmd = fh.read().replace(b'\0', b' ').decode(errors='replace')[:120]
            except OSError:
                continue
            hits = sorted({n for n in names if n == self.mnt or n.startswith(self.mnt + '/')})
            if hits:
                out.append('pid %s (%s): %s' % (pid, cmd.strip(), ', '.join(hits[:3])))
        return '; '.join(out)

    def check_tag_file(self, want=None, when=''):
        try:
            with open(self.tagf) as fh:
                s = fh.read()
        except OSError as e:
            raise Mismatch('tag', 'tag file %s: %s' % (when, e))
        if not re.fullmatch(r'[0-9a-f]{32}\n', s):
            raise Mismatch('tag', 'tag file %s is not 32 hex digits and a '
                           'newline: %r' % (when, s))
        if want and s.strip() != want:
            raise Mismatch('tag', 'tag file %s holds %s, the daemon printed %s'
                           % (when, s.strip(), want))
        return s.strip()

    def commit(self, tag):
        """A commit happened and gave @tag."""
        if self.dirty and tag == self.tags[-1]:
            raise Mismatch('tag', 'a protected region changed since the last '
                           'commit, yet the tag stayed %s' % tag)
        if tag != self.tags[-1]:
            self.tags.append(tag)
        self.dirty = False

    def kill_daemon(self):
        """Whatever happened: nothing mounted, no daemon of ours left."""
        self.close_held()
        if self.mounted():
            if subprocess.run(['fusermount3', '-u', self.mnt],
                              capture_output=True).returncode != 0:
                subprocess.run(['fusermount3', '-uz', self.mnt], capture_output=True)
        if self.daemon:
            p = self.daemon[0]
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    try:
                        p.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        self.abort_connection(p)
            self.daemon = None
        if self.mounted():
            subprocess.run(['umount', '-l', self.mnt], capture_output=True)

    def abort_connection(self, p):
        """A daemon that SIGKILL does not end is stuck in a request to a FUSE
        connection (its own, unmounted lazily): abort that connection, if
        fusectl is mounted; never wait forever."""
        a = '/sys/fs/fuse/connections/%s/abort' % self.conn
        try:
            with open(a, 'w') as fh:
                fh.write('1')
            p.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            say('warning: daemon %d does not end; its FUSE connection %s could not be '
                'aborted (mount fusectl on /sys/fs/fuse/connections)'
                % (p.pid, self.conn))

    # -- comparing

    def lstat2(self, rel):
        out = []
        for base in (self.ref, self.mnt):
            try:
                out.append(os.lstat(join(base, rel)))
            except OSError as e:
                out.append(e.errno)
        return out

    def read_all(self, path, drop):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            if drop:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            chunks = []
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                chunks.append(b)
            return b''.join(chunks)
        finally:
            os.close(fd)

    def compare_path(self, rel, drop=True):
        r, m = self.lstat2(rel)
        if isinstance(r, int) or isinstance(m, int):
            if r == m:
                return None
            raise Mismatch('exists', '%s: reference %s, mount %s' % (
                rel, 'has it' if not isinstance(r, int) else errname(r),
                'has it' if not isinstance(m, int) else errname(m)))
        if stat.S_IFMT(r.st_mode) != stat.S_IFMT(m.st_mode):
            raise Mismatch('type', '%s: type %o on the reference, %o on the mount'
                           % (rel, stat.S_IFMT(r.st_mode), stat.S_IFMT(m.st_mode)))
        if not stat.S_ISLNK(r.st_mode) and r.st_mode != m.st_mode:
            raise Mismatch('mode', '%s: mode %o on the reference, %o on the mount'
                           % (rel, r.st_mode, m.st_mode))
        if (r.st_uid, r.st_gid) != (m.st_uid, m.st_gid):
            raise Mismatch('owner', '%s: owner %d:%d on the reference, %d:%d on the '
                           'mount' % (rel, r.st_uid, r.st_gid, m.st_uid, m.st_gid))
        if stat.S_ISLNK(r.st_mode):
            a, b = os.readlink(join(self.ref, rel)), os.readlink(join(self.mnt, rel))
            if a != b or r.st_size != m.st_size:
                raise Mismatch('symlink', '%s: link to %r (size %d) on the reference, '
                               'to %r (size %d) on the mount'
                               % (rel, a, r.st_size, b, m.st_size))
        elif stat.S_ISREG(r.st_mode):
            if r.st_size != m.st_size:
                raise Mismatch('size', '%s: size %d on the reference, %d on the mount'
                               % (rel, r.st_size, m.st_size))
            a = self.read_all(join(self.ref, rel), False)
            try:
                b = self.read_all(join(self.mnt, rel), drop)
            except OSError as e:
                raise Mismatch('read', '%s: reading it on the mount: %s'
                               % (rel, errname(e.errno)))
            if a != b:
                raise Mismatch('content', '%s: %s' % (rel, describe_diff(
                    a, b, self.chunk_of(rel))))
        if (stat.S_ISREG(r.st_mode) and self.mtimes.get((r.st_dev, r.st_ino)) == r.st_mtime_ns
                and m.st_mtime_ns != r.st_mtime_ns):
            raise Mismatch('mtime', '%s: mtime %d ns on the mount, expected %d (set by '
                           'utime or at build time; nothing wrote the file since)'
                           % (rel, m.st_mtime_ns, r.st_mtime_ns))
        return r

    def compare_dir(self, rel):
        try:
            a = sorted(os.listdir(join(self.ref, rel)))
        except OSError as e:
            a = errname(e.errno)
        try:
            b = sorted(os.listdir(join(self.mnt, rel)))
        except OSError as e:
            b = errname(e.errno)
        if a != b:
            if isinstance(a, list) and isinstance(b, list):
                raise Mismatch('listing', '%s: listing differs: only on the '
                               'reference %s, only on the mount %s' % (
                                   rel, sorted(set(a) - set(b)), sorted(set(b) - set(a))))
            raise Mismatch('listing', '%s: listing: reference %s, mount %s' % (rel, a, b))
        return a if isinstance(a, list) else []

    def compare_tree(self, rel='/', drop=True):
        st = self.compare_path(rel, drop)
        if st is None or not stat.S_ISDIR(st.st_mode):
            return 1
        n = 1
        for name in self.compare_dir(rel):
            n += self.compare_tree(join(rel, '/' + name) if rel != '/' else '/' + name, drop)
        return n

    def compare_touched(self, op):
        """The paths @op names, what a symlink among them leads to, and the
        listings of their directories; a renamed directory as a whole."""
        todo = []
        for p in op_paths(op):
            todo += [parent(p), p]
            rp = os.path.realpath(join(self.ref, p))
            if rp.startswith(self.ref + '/') and rp != join(self.ref, p):
                todo += [rp[len(self.ref):]]
        seen = set()
        for q in todo:
            if q in seen:
                continue
            seen.add(q)
            st = self.compare_path(q)
            if st is not None and stat.S_ISDIR(st.st_mode):
                if op['op'] == 'rename' and q in (op['src'], op['dst']):
                    self.compare_tree(q)
                else:
                    self.compare_dir(q)

    # -- host-side promises, checked on the committed tree

    def check_host(self):
        for dp, dns, fns in os.walk(self.ref):
            for n in fns:
                rp = dp + '/' + n
                rel = rp[len(self.ref):]
                if os.path.islink(rp):
                    continue
                kind = self.kind_of(rel)
                hp = self.root + rel
                with open(rp, 'rb') as fh:
                    want = fh.read()
                try:
                    with open(hp, 'rb') as fh:
                        got = fh.read()
                except OSError as e:
                    raise Mismatch('host', '%s: the host file %s: %s' % (
                        rel, hp, errname(e.errno)))
                if kind in ('n', 'a') and got != want:
                    raise Mismatch('host', '%s (%s region): the host file is not the '
                                   'plaintext: %s' % (rel, 'not-protected' if kind == 'n'
                                                      else 'authenticated',
                                                      describe_diff(want, got, self.chunk_of(rel))))
                if kind == 'e':
                    if len(got) != len(want):
                        raise Mismatch('host', '%s (encrypted): the host file has %d '
                                       'bytes, the plaintext %d' % (rel, len(got), len(want)))
                    if len(want) >= 16 and got == want:
                        raise Mismatch('host', '%s (encrypted): the host file holds '
                                       'the plaintext' % rel)
        r = subprocess.run([self.bin, 'verify', self.fspf, '--root', self.root,
                            '--key-file', self.key, '--tag-file', self.tagf],
                           capture_output=True, text=True, env=self.env())
        if r.returncode != 0:
            raise Mismatch('verify', 'scone-fspf verify of the committed tree '
                           'failed (%d):\n%s%s' % (r.returncode, r.stdout, r.stderr))

    # -- generating operations

    def entries(self):
        files, dirs, links = [], ['/'], []
        for dp, dns, fns in os.walk(self.ref):
            rel = dp[len(self.ref):] or '/'
            pre = '' if rel == '/' else rel
            for d in dns:
                dirs.append(pre + '/' + d)
            for n in fns:
                (links if os.path.islink(dp + '/' + n) else files).append(pre + '/' + n)
        return sorted(files), sorted(dirs), sorted(links)

    def held_set(self, paths):
        """Those of @paths that a held descriptor has open (on the reference)."""
        ino = set()
        for h in self.held.values():
            st = os.fstat(h[0])
            ino.add((st.st_dev, st.st_ino))
        out = set()
        for p in paths:
            try:
                st = os.lstat(join(self.ref, p))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in ino:
                out.add(p)
        return out

    def gen(self):
        rng = self.rng
        files, dirs, links = self.entries()
        free_dirs = [d for d in dirs if d not in self.pinned and d != '/']
        nodes = files + links + free_dirs
        ops = [('write', 26), ('read', 8), ('create', 10), ('copyp', 2), ('truncate', 10),
               ('rename', 10), ('unlink', 5), ('mkdir', 5), ('rmdir', 4),
               ('symlink', 3), ('chmod', 3), ('utime', 3), ('fsync', 5),
               ('remount', 0.7), ('hopen', 3), ('hwrite', 6), ('hread', 2),
               ('htrunc', 2), ('hfsync', 1.5), ('hutime', 1.5), ('hchmod', 0.5),
               ('hclose', 2)]
        if self.readonly:
            ops = [('read', 30), ('remount', 1)]
        kinds, weights = zip(*ops)
        kind = rng.choices(kinds, weights)[0]
        if 'utime-open' in self.args.avoid and kind in ('copyp', 'hutime'):
            kind = 'write'
        if len(files) > 45 and kind in ('create', 'mkdir', 'symlink'):
            kind = 'unlink'
        if not files and kind in ('write', 'read', 'truncate', 'fsync'):
            kind = 'create'

        def any_path():
            """Mostly existing paths; sometimes a missing one or one below a
            file (ENOENT, ENOTDIR)."""
            x = rng.random()
            if x < 0.05:
                return rng.choice(dirs).rstrip('/') + '/missing'
            if x < 0.08 and files:
                return rng.choice(files) + '/x'
            if x < 0.12 and links:
                return rng.choice(links)
            if x < 0.15:
                return rng.choice(dirs)
            return rng.choice(files) if files else rng.choice(dirs)

        def new_name(names, d=None):
            d = d or rng.choice(dirs)
            return (d.rstrip('/') + '/' + rng.choice(names)), d

        def offset_len(path):
            cs, mx = self.chunk_of(path), self.max_size(path)
            try:
                size = os.lstat(join(self.ref, path)).st_size
            except OSError:
                size = 0
            x = rng.random()
            if x < 0.3:
                off = rng.randint(0, size)
            elif x < 0.6:      # around a chunk boundary
                off = max(0, rng.randint(0, max(1, mx // cs)) * cs + rng.randint(-3, 3))
            elif x < 0.8:      # beyond the end: a hole
                off = size + rng.randint(1, 3 * cs)
            elif x < 0.9:
                off = 0
            else:
                off = max(0, size - rng.randint(0, cs))
            n = rng.choice([1, rng.randint(1, 64), cs - 1, cs, cs + 1,
                            rng.randint(1, 3 * cs), 2 * cs + 1])
            off = min(off, mx)
            n = max(1, min(n, mx - off)) if off < mx else 1
            return off, n

        op = {'op': kind}
        if kind in HELD:
            op['slot'] = slot = rng.randrange(HELD_SLOTS)
            hp = self.held[slot][2] if slot in self.held else any_path()
        if kind == 'hopen':
            op['path'] = any_path()
            op['rw'] = rng.random() < 0.85
        elif kind == 'hwrite':
            op['off'], op['len'] = offset_len(hp)
            op['dseed'] = rng.getrandbits(32)
        elif kind == 'hread':
            op['off'], op['len'] = offset_len(hp)
            op['len'] = rng.choice([op['len'], 65536])
        elif kind == 'htrunc':
            cs = self.chunk_of(hp)
            op['size'] = rng.choice([0, rng.randint(0, self.max_size(hp)),
                                     rng.randint(1, 8) * cs + rng.randint(-2, 2)])
        elif kind == 'hfsync':
            op['datasync'] = rng.random() < 0.3
        elif kind == 'hutime':
            op['atime'] = 1_500_000_000 + rng.randrange(10**8)
            op['mtime'] = 1_500_000_000 + rng.randrange(10**8)
        elif kind == 'hchmod':
            op['mode'] = rng.choice([0o644, 0o600, 0o755, 0o640])
        elif kind == 'write':
            op['path'] = any_path()
            op['off'], op['len'] = offset_len(op['path'])
            op['dseed'] = rng.getrandbits(32)
            if rng.random() < 0.1:
                op['append'] = True
            if rng.random() < 0.3:
                op['rdwr'] = True
        elif kind == 'read':
            op['path'] = any_path()
            op['off'], op['len'] = offset_len(op['path'])
            if rng.random() < 0.7:     # mostly inside the file
                try:
                    size = os.lstat(join(self.ref, op['path'])).st_size
                except OSError:
                    size = 0
                op['off'] = rng.randint(0, size)
            op['len'] = rng.choice([op['len'], 3 * op['len'], 65536])
        elif kind == 'create':
            op['path'], _ = new_name(NAMES)
            if rng.random() < 0.05:
                op['path'] = '/nodir/' + rng.choice(NAMES)
            op['mode'] = rng.choice([0o644, 0o600, 0o640, 0o755, 0o444])
            x = rng.random()
            op['excl'] = x < 0.6
            op['trunc'] = 0.6 <= x < 0.8
            if rng.random() < 0.6:
                op['len'] = rng.randint(1, 3 * self.chunk_of(op['path']))
                op['dseed'] = rng.getrandbits(32)
        elif kind == 'copyp':
            op['path'] = (new_name(NAMES)[0] if rng.random() < 0.5 or not files
                          else rng.choice(files))
            op['mode'] = rng.choice([0o644, 0o600, 0o755])
            op['len'] = rng.choice([1, rng.randint(1, 64), rng.randint(1, 3 * self.chunk_of(op['path']))])
            op['dseed'] = rng.getrandbits(32)
            op['atime'] = 1_500_000_000 + rng.randrange(10**8)
            op['mtime'] = 1_500_000_000 + rng.randrange(10**8)
        elif kind == 'truncate':
            op['path'] = any_path()
            cs, mx = self.chunk_of(op['path']), self.max_size(op['path'])
            try:
                size = os.lstat(join(self.ref, op['path'])).st_size
            except OSError:
                size = 0
            op['size'] = min(mx, max(0, rng.choice([
                0, size - 1, size + 1, size // 2, size + rng.randint(1, 4 * cs),
                rng.randint(0, mx), rng.randint(1, max(1, mx // cs)) * cs + rng.randint(-2, 2),
                (size // cs) * cs])))
            op['via'] = rng.choice(['path', 'fd'])
        elif kind == 'fsync':
            # Files only: whether fsync of a directory commits is not promised.
            op['path'] = (rng.choice(files) if rng.random() < 0.95
                          else rng.choice(dirs).rstrip('/') + '/missing')
            if rng.random() < 0.5:
                op['off'], op['len'] = offset_len(op['path'])
                op['dseed'] = rng.getrandbits(32)
            op['datasync'] = rng.random() < 0.3
        elif kind == 'rename':
            x = rng.random()
            src_pool = files + links if x < 0.6 or not free_dirs else free_dirs
            src = rng.choice(src_pool) if src_pool else '/missing'
            if rng.random() < 0.04:
                src = src + '.missing'
            # The target: mostly in the source's region (cross-region renames
            # may fail with EXDEV).
            same = [d for d in dirs if self.region_of(d) == self.region_of(src)]
            tdirs = same if rng.random() < 0.9 and same else dirs
            y = rng.random()
            if y < 0.35:       # over an existing entry (file, link or empty dir)
                cands = [p for p in nodes if p in files + links or
                         not os.listdir(join(self.ref, p))]
                cands = [p for p in cands if parent(p) in tdirs] or cands
                dst = rng.choice(cands) if cands else new_name(NAMES, rng.choice(tdirs))[0]
            elif y < 0.42 and free_dirs:   # over any directory (ENOTEMPTY, EISDIR, ...)
                dst = rng.choice(free_dirs)
            elif y < 0.45 and src in free_dirs:  # into itself (EINVAL)
                dst = src + '/' + rng.choice(DIRNAMES)
            else:
                dst = new_name(NAMES + DIRNAMES, rng.choice(tdirs))[0]
            if dst in self.pinned:
                dst = new_name(NAMES, rng.choice(tdirs))[0]
            if rng.random() < 0.03 and self.pinned and 'pinned' not in self.args.avoid:
                src = rng.choice(sorted(self.pinned))
                dst = new_name(DIRNAMES, parent(src))[0]
            if 'unlink-open' in self.args.avoid and self.held_set([dst]):
                dst = new_name(NAMES, rng.choice(tdirs))[0] + '.new'
            op['src'], op['dst'] = src, dst
        elif kind == 'unlink':
            x = rng.random()
            victims = files + links
            if 'unlink-open' in self.args.avoid:
                busy = self.held_set(victims)
                victims = [p for p in victims if p not in busy]
            if x < 0.85 and victims:
                op['path'] = rng.choice(victims)
            elif x < 0.93 and free_dirs:
                op['path'] = rng.choice(free_dirs)        # EISDIR
            else:
                op['path'] = rng.choice(dirs).rstrip('/') + '/missing'
        elif kind == 'mkdir':
            ds = [d for d in dirs if d.count('/') < 4] or ['/']
            op['path'], _ = new_name(DIRNAMES + NAMES[:2], rng.choice(ds))
            op['mode'] = rng.choice([0o755, 0o700, 0o750, 0o775])
        elif kind == 'rmdir':
            empty = [d for d in free_dirs if not os.listdir(join(self.ref, d))]
            x = rng.random()
            if x < 0.04 and 'pinned' not in self.args.avoid:
                op['path'] = rng.choice(sorted(self.pinned | {'/'}))
            elif x < 0.6 and empty:
                op['path'] = rng.choice(empty)
            elif x < 0.85 and free_dirs:
                op['path'] = rng.choice(free_dirs)        # ENOTEMPTY, or empty
            elif files:
                op['path'] = rng.choice(files)            # ENOTDIR
            else:
                op['path'] = '/missing'
        elif kind == 'symlink':
            op['path'], d = new_name(NAMES + ['lnk', 'lnk2'])
            # Relative targets only, so that both sides resolve into their own tree.
            op['target'] = rng.choice(NAMES + [rng.choice(DIRNAMES) + '/' + rng.choice(NAMES)])
        elif kind == 'chmod':
            x = rng.random()
            if x < 0.05 and 'pinned' not in self.args.avoid:
                op['path'] = rng.choice(sorted(self.pinned | {'/'}))
                op['mode'] = rng.choice([0o755, 0o700])
            elif x < 0.7 and files:
                op['path'] = rng.choice(files)
                op['mode'] = rng.choice([0o644, 0o600, 0o400, 0o755, 0o640, 0o000, 0o666])
            else:
                op['path'] = rng.choice(free_dirs or dirs)
                op['mode'] = rng.choice([0o755, 0o700, 0o750, 0o777])
        elif kind == 'utime':
            op['path'] = any_path()
            op['atime'] = 1_500_000_000 + rng.randrange(10**8)
            op['mtime'] = 1_500_000_000 + rng.randrange(10**8)
            if 'utime-open' in self.args.avoid and self.held_set([op['path']]):
                op = {'op': 'read', 'path': op['path'], 'off': 0, 'len': 65536}
        return op

    # -- applying one operation to both sides

    def run_held(self, side, op):
        """A held-descriptor operation on one side (0 the reference, 1 the
        mount): ('ok', value), (ERRNO, None), or ('noslot', None) when the
        slot holds nothing (both sides alike, so that a replayed subsequence
        stays valid)."""
        kind, h = op['op'], self.held.get(op['slot'])
        try:
            if kind == 'hopen':
                base = (self.ref, self.mnt)[side]
                flags = os.O_RDWR if op.get('rw') else os.O_RDONLY
                return ('ok', os.open(join(base, op['path']), flags))
            if h is None:
                return ('noslot', None)
            fd = h[side]
            if kind in ('hutime', 'hchmod') and stat.S_ISDIR(os.fstat(h[0]).st_mode):
                return ('dir', None)    # directories: chmod and utime by path
            if kind == 'hwrite':
                return ('ok', os.pwrite(fd, op_data(op), op['off']))
            if kind == 'hread':
                return ('ok', os.pread(fd, op['len'], op['off']))
            if kind == 'htrunc':
                os.ftruncate(fd, op['size'])
            elif kind == 'hfsync':
                (os.fdatasync if op.get('datasync') else os.fsync)(fd)
            elif kind == 'hutime':        # futimens, as cp -p does before close
                os.utime(fd, ns=(op['atime'] * 10**9, op['mtime'] * 10**9))
            elif kind == 'hchmod':
                os.chmod(fd, op['mode'])
            elif kind == 'hclose':
                h[side] = None
                os.close(fd)
            return ('ok', None)
        except OSError as e:
            return (errname(e.errno), None)

    def close_held(self, slot=None):
        for k in ([slot] if slot is not None else list(self.held)):
            h = self.held.pop(k, None)
            for fd in (h or [])[:2]:
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass

    def held_paths(self, slot):
        """Where the file held in @slot is in the reference tree now."""
        h = self.held.get(slot)
        if not h:
            return []
        st = os.fstat(h[0])
        out = []
        for dp, dns, fns in os.walk(self.ref):
            for n in fns:
                p = dp + '/' + n
                q = os.lstat(p)
                if (q.st_dev, q.st_ino) == (st.st_dev, st.st_ino):
                    out.append(p[len(self.ref):])
        return out

    def apply(self, op, entry):
        kind = op['op']
        if kind == 'remount':
            self.remount()
            return
        if kind in HELD:
            return self.apply_held(op, entry)
        if self.pinned_target(op):
            return self.apply_pinned(op, entry)
        before = self.snapshot(self.step_paths(op)) if kind in MUTATING else None
        backup = self.backup_dst(op)
        ref = run_op(self.ref, op)
        if (self.args.fake_bug and kind == 'read' and ref[0] == 'ok' and ref[1]
                and op['off'] % self.chunk_of(op['path']) == 1):
            ref = ('ok', ref[1][:-1] + bytes([ref[1][-1] ^ 1]))
        if kind == 'fsync' and self.fspf_checks:
            self.expect_tag_unchanged()
        mnt = run_op(self.mnt, op)
        entry['ref'], entry['mnt'] = ref, mnt
        if (kind == 'rename' and not self.selftest
                and self.region_of(op['src']) != self.region_of(op['dst'])):
            # A rename must stay in its region: EXDEV (as for a rename
            # across mounts; mv copies then). What the kernel checks before
            # asking the file system fails as on the reference.
            if ref[0] == 'ok' and mnt[0] == 'EXDEV':
                os.rename(join(self.ref, op['dst']), join(self.ref, op['src']))
                self.restore_dst(op, backup)
                backup = None
                entry['note'] = 'across regions: reference undone'
                ref = mnt
            elif ref[0] in ('ENOTEMPTY', 'EEXIST') and mnt[0] == 'EXDEV':
                ref = mnt
            elif mnt[0] == 'ok':
                raise Mismatch('exdev', 'rename %s -> %s across regions (%s to %s) '
                               'succeeded; EXDEV expected' % (
                                   op['src'], op['dst'], self.region_of(op['src'])[0],
                                   self.region_of(op['dst'])[0]))
        if backup and backup[0] == 'link':
            os.unlink(backup[1])
        if ref != mnt:
            if ref[0] == mnt[0] == 'ok' and isinstance(ref[1], bytes):
                raise Mismatch('read', 'read of %s at %d: %s' % (
                    op['path'], op['off'], describe_diff(ref[1], mnt[1],
                                                         self.chunk_of(op['path']), op['off'])))
            raise Mismatch('errno' if 'ok' in (ref[0], mnt[0]) or ref[0] != mnt[0]
                           else 'result', '%s: reference %s, mount %s' % (
                               kind, fmt_res(ref), fmt_res(mnt)))
        if ref[0] == 'ok' and kind in MUTATING:
            self.track(op)
            self.note_changes(before, kind in ('utime', 'copyp'))
        if kind == 'fsync' and self.fspf_checks and mnt[0] == 'ok':
            tag = self.check_tag_file(None, 'after an fsync')
            self.commit(tag)
        self.compare_touched(op)

    def backup_dst(self, op):
        """Before a rename across regions on the reference: how to put back
        what it replaces, should the mount refuse it (EXDEV)."""
        if (op['op'] != 'rename' or self.selftest
                or self.region_of(op['src']) == self.region_of(op['dst'])):
            return None
        d = join(self.ref, op['dst'])
        try:
            st = os.lstat(d)
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode):
            return ('dir', stat.S_IMODE(st.st_mode))
        tmp = self.w + '/rename.bak'
        os.link(d, tmp, follow_symlinks=False)
        return ('link', tmp)

    def restore_dst(self, op, backup):
        d = join(self.ref, op['dst'])
        if backup and backup[0] == 'dir':
            os.mkdir(d)
            os.chmod(d, backup[1])
        elif backup:
            os.rename(backup[1], d)

    def pinned_target(self, op):
        """Whether @op would remove, rename or change an embed point or a
        directory above one (the root included)."""
        if self.selftest:
            return False    # a plain tree has no regions
        kind = op['op']
        if kind == 'rename':
            return op['src'] in self.pinned or op['dst'] in self.pinned
        if kind in ('rmdir', 'chmod', 'utime'):
            p = op['path']
            if kind != 'rmdir':
                rp = os.path.realpath(join(self.ref, p))
                if rp == self.ref or rp.startswith(self.ref + '/'):
                    p = rp[len(self.ref):] or '/'
            return p in self.pinned or p == '/'
        return False

    def apply_pinned(self, op, entry):
        """Embed points and the directories above them cannot be removed or
        renamed: any of the errors below, and the tree stays as it is. A
        change of mode or times may be refused (EBUSY, EPERM) or done (then
        on the reference too, and it must last)."""
        kind = op['op']
        mnt = run_op(self.mnt, op)
        entry['mnt'] = mnt
        if kind in ('chmod', 'utime'):
            if mnt[0] == 'ok':
                before = self.snapshot(self.step_paths(op))
                ref = run_op(self.ref, op)
                entry['ref'] = ref
                if ref != mnt:
                    raise Mismatch('errno', '%s: reference %s, mount %s' % (
                        kind, fmt_res(ref), fmt_res(mnt)))
                self.track(op)
                self.note_changes(before, kind == 'utime')
                self.compare_touched(op)
                return
            ok = {'EBUSY', 'EPERM'}
        elif kind == 'rmdir':
            ok = {'EBUSY', 'EPERM', 'ENOTEMPTY'}
        else:
            ok = {'EBUSY', 'EPERM', 'EXDEV', 'EINVAL', 'ENOTEMPTY', 'EEXIST',
                  'EISDIR', 'ENOTDIR'}
        entry['ref'] = ('pinned', None)
        entry['note'] = 'an embed point or above: the reference left alone'
        if mnt[0] not in ok:
            raise Mismatch('pinned', '%s of %s, an embed point or a directory above '
                           'one: %s on the mount, expected %s' % (
                               kind, op.get('path') or '%s -> %s' % (op['src'], op['dst']),
                               fmt_res(mnt), ' or '.join(sorted(ok))))
        self.compare_touched(op)

    def apply_held(self, op, entry):
        kind, slot = op['op'], op['slot']
        if kind == 'hopen':
            self.close_held(slot)
        if kind == 'hfsync' and self.fspf_checks:
            self.expect_tag_unchanged()
        before = (self.snapshot(self.held_paths(slot))
                  if kind in ('hwrite', 'htrunc', 'hutime', 'hchmod') else {})
        ref = self.run_held(0, op)
        mnt = self.run_held(1, op)
        if kind == 'hopen':
            fds = [r[1] if r[0] == 'ok' else None for r in (ref, mnt)]
            if None not in fds:
                self.held[slot] = fds + [op['path']]
            else:
                self.held[slot] = fds + [op['path']]
                self.close_held(slot)
            ref, mnt = (ref[0], None), (mnt[0], None)
        elif kind == 'hclose':
            self.close_held(slot)
        entry['ref'], entry['mnt'] = ref, mnt
        if ref != mnt:
            if ref[0] == mnt[0] == 'ok' and isinstance(ref[1], bytes):
                raise Mismatch('read', 'read through the descriptor held in slot %d '
                               '(opened as %s) at %d: %s' % (
                                   slot, self.held[slot][2], op['off'],
                                   describe_diff(ref[1], mnt[1], 512, op['off'])))
            raise Mismatch('errno', '%s: reference %s, mount %s' % (
                kind, fmt_res(ref), fmt_res(mnt)))
        if ref[0] != 'ok' or kind not in ('hwrite', 'htrunc', 'hfsync', 'hutime', 'hchmod'):
            return
        if kind == 'hutime':
            st = os.fstat(self.held[slot][0])
            if stat.S_ISREG(st.st_mode):
                self.mtimes[(st.st_dev, st.st_ino)] = st.st_mtime_ns
        paths = self.held_paths(slot)
        if kind != 'hfsync':
            self.note_changes(before, kind == 'hutime')
        if kind == 'hfsync' and self.fspf_checks:
            self.commit(self.check_tag_file(None, 'after an fsync'))
        for p in paths:
            self.compare_path(p)
        if not paths and not stat.S_ISDIR(os.fstat(self.held[slot][0]).st_mode):
            # Unlinked while open: the two descriptors must still agree.
            a = os.pread(self.held[slot][0], 1 << 24, 0)
            try:
                b = os.pread(self.held[slot][1], 1 << 24, 0)
            except OSError as e:
                raise Mismatch('read', 'reading the unlinked file held in slot %d on '
                               'the mount: %s' % (slot, errname(e.errno)))
            if a != b:
                raise Mismatch('content', 'the unlinked file held in slot %d: %s' % (
                    slot, describe_diff(a, b, 512)))

    def expect_tag_unchanged(self):
        tag = self.check_tag_file(None, 'before an fsync')
        if tag != self.tags[-1]:
            raise Mismatch('tag', 'the tag file changed to %s without an fsync or an '
                           'unmount (last commit: %s)' % (tag, self.tags[-1]))

    def snapshot(self, paths):
        """What a commit must record of @paths on the reference (times
        aside): type, mode, size, contents or link target, names in a
        directory. Compared before and after a step to tell whether a
        protected region changed."""
        out = {}
        for rel in paths:
            p = join(self.ref, rel)
            try:
                st = os.lstat(p)
            except OSError as e:
                out[rel] = e.errno
                continue
            sig = (st.st_mode, st.st_size, st.st_uid, st.st_gid)
            if stat.S_ISREG(st.st_mode):
                with open(p, 'rb') as fh:
                    sig += (hashlib.sha1(fh.read()).digest(),)
            elif stat.S_ISLNK(st.st_mode):
                sig += (os.readlink(p),)
            elif stat.S_ISDIR(st.st_mode):
                sig += tuple(sorted(os.listdir(p)))
            out[rel] = sig
        return out

    def step_paths(self, op):
        """The paths a step may change: those it names, their directories,
        what a symlink among them leads to."""
        out = []
        for p in op_paths(op):
            out += [p, parent(p)]
            rp = os.path.realpath(join(self.ref, p))
            if rp.startswith(self.ref + '/'):
                out.append(rp[len(self.ref):])
        return sorted(set(out))

    def note_changes(self, before, explicit=False):
        """A protected path changed since @before (or @explicit: times were
        set on it): the next commit must give a new tag."""
        after = self.snapshot(before)
        for rel in before:
            if (explicit or before[rel] != after[rel]) and self.kind_of(rel) != 'n':
                self.dirty = True

    def track(self, op):
        """Bookkeeping after a successful mutation: the mtimes set by utime
        (see self.mtimes)."""
        if op['op'] in ('utime', 'copyp'):
            st = os.stat(join(self.ref, op['path']))
            if stat.S_ISREG(st.st_mode):
                self.mtimes[(st.st_dev, st.st_ino)] = st.st_mtime_ns

    def remount(self):
        self.close_held()
        self.unmount()
        if self.fspf_checks:
            self.check_host()
            if self.old_fspf is None and len(self.tags) > 1:
                # An earlier state of the fspf, for the rollback check.
                self.old_fspf = self.w + '/fspf.old'
                shutil.copy2(self.fspf, self.old_fspf)
                self.old_fspf_tag = self.tags[-1]
        self.must_mount()
        self.compare_tree()

    # -- the end: stale tags are refused (a tag file's may lag a little)

    def expect_refused(self, what, extra, env=None):
        rc = self.mount(extra)
        if rc is None:
            self.kill_daemon()
            raise Mismatch('stale', 'mounting with %s was not refused' % what)
        log = self.daemon_log()
        self.daemon = None
        if rc == 0:
            raise Mismatch('stale', 'mounting with %s exited 0 without mounting' % what)
        if 'rollback' not in log.lower():
            raise Mismatch('stale', 'mounting with %s was refused (exit %d) without a '
                           'word about rollback:\n%s' % (what, rc, log))

    def final_checks(self):
        self.step += 1
        self.log.append({'op': {'op': 'remount', 'step': self.step},
                         'note': 'final remount'})
        self.remount()
        self.unmount()
        if self.selftest:
            return
        if self.readonly:
            self.check_tag_file()
            fake = '%032x' % random.Random(self.seed).getrandbits(128)
            self.expect_refused('a wrong tag', ['--expected-tag', fake])
            self.must_mount()
            self.compare_tree()
            self.unmount()
            return
        self.check_host()
        cur = self.check_tag_file()
        stale = [t for t in self.tags[:-1] if t != cur]
        if not stale and all(r[1] == 'n' for r in self.regions):
            # Nothing protected, nothing recorded: the tag stays; a tag that
            # is not the current one is still refused.
            fake = '%032x' % random.Random(self.seed).getrandbits(128)
            self.expect_refused('a wrong tag', ['--expected-tag', fake])
            self.must_mount()
            self.compare_tree()
            self.unmount()
            return
        if not stale:
            raise Mismatch('stale', 'the tag never changed (%s): nothing to check a '
                           'rollback with' % cur)
        picks = [stale[0]] + ([random.Random(self.seed).choice(stale[1:])]
                              if len(stale) > 1 else [])
        for t in picks:
            self.expect_refused('the earlier tag %s (--expected-tag)' % t,
                                ['--expected-tag', t])
        # A tag file one commit behind, as a crash may leave it (synced
        # only now and then): the mount takes the newest state, which
        # descends from it (fspf(5), lineage), and names it there again.
        if self.tags[-2] == stale[-1]:
            with open(self.tagf, 'w') as fh:
                fh.write(stale[-1] + '\n')
            self.must_mount()
            self.compare_tree()
            self.unmount()
            if self.check_tag_file() != cur:
                raise Mismatch('stale', 'the lagging tag file was not brought '
                               'up to %s' % cur)
        # One further back than the lineage reaches (16 commits) is refused.
        if len(self.tags) > 17:
            staletf = self.w + '/stale.tag'
            with open(staletf, 'w') as fh:
                fh.write(self.tags[-18] + '\n')
            self.expect_refused('the earlier tag %s, 17 commits back '
                                '(--tag-file)' % self.tags[-18],
                                ['--tag-file', staletf])
        if self.old_fspf and self.old_fspf_tag != cur:
            # The fspf itself rolled back: refused with the current tag.
            cur_copy = self.w + '/fspf.cur'
            shutil.copy2(self.fspf, cur_copy)
            shutil.copy2(self.old_fspf, self.fspf)
            self.expect_refused('an earlier fspf (tag %s) and the current tag'
                                % self.old_fspf_tag, ['--expected-tag', cur])
            os.replace(cur_copy, self.fspf)
        if self.check_tag_file() != cur:
            raise Mismatch('tag', 'a refused mount changed the tag file')
        # Nothing of that harmed the tree.
        self.must_mount()
        self.compare_tree()
        self.unmount()

    # -- running

    def run(self, ops=None, inject=None, final=True):
        """Run the generated sequence (or @ops), then the final checks
        (unless not @final). Returns None or the Mismatch."""
        try:
            self.build()
            self.must_mount()
            self.compare_tree()
            deadline = time.monotonic() + self.args.max_seconds
            n = len(ops) if ops is not None else self.args.steps
            for i in range(n):
                if ops is None and time.monotonic() > deadline:
                    say('note: time budget of %d s used up after %d of %d steps'
                        % (self.args.max_seconds, i, n))
                    break
                self.step += 1
                op = dict(ops[i]) if ops is not None else self.gen()
                op['step'] = self.step
                entry = {'op': op}
                self.log.append(entry)
                if inject == self.step:
                    self.inject()
                self.apply(op, entry)
                if self.step % self.args.full_every == 0:
                    self.compare_tree()
            if ops is not None:
                # A replayed (or shrunk) sequence: what the last full
                # comparison would have seen, however short it got.
                self.compare_tree()
            if final:
                self.in_final = True
                self.final_checks()
            return None
        except Mismatch as e:
            return e
        except OSError as e:
            import traceback
            return Mismatch('oserror', 'unexpected error: %s\n%s' % (
                e, traceback.format_exc()))
        finally:
            self.kill_daemon()

    def inject(self):
        """A deliberate difference (--inject STEP), to see the harness fail."""
        files, _, _ = self.entries()
        if files:
            with open(join(self.ref, files[0]), 'ab') as fh:
                fh.write(b'!')

    def cleanup(self):
        self.kill_daemon()
        if self.args.keep:
            say('workspace kept: %s' % self.w)
            return
        for dp, dns, fns in os.walk(self.w):
            for d in dns:
                try:
                    os.chmod(dp + '/' + d, 0o700)
                except OSError:
                    pass
        shutil.rmtree(self.w, ignore_errors=True)

    def write_log(self, path, err=None):
        with open(path, 'w') as fh:
            fh.write(json.dumps({'scenario': self.scenario, 'seed': self.seed,
                                 'steps': self.step, 'readonly': self.readonly,
                                 'self_test': self.selftest,
                                 'failure': str(err) if err else None,
                                 'kind': err.kind if err else None}) + '\n')
            for e in self.log:
                fh.write(json.dumps({'op': e['op'], 'ref': e.get('ref'),
                                     'mnt': e.get('mnt'), 'note': e.get('note')},
                                    default=fmt_val) + '\n')


def describe_diff(a, b, cs, base=0):
    """Where two byte strings differ, in words (offsets in the file: the
    strings start at @base)."""
    if a == b:
        return 'equal'
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    j = i
    while j < min(len(a), len(b)) and a[j] != b[j]:
        j += 1
    s = ('expected %d bytes, got %d; first difference at file offset %d (chunk '
         '%d, byte %d of it)' % (len(a), len(b), base + i, (base + i) // cs,
                                 (base + i) % cs))
    if j > i:
        s += ', %d bytes differ from there' % (j - i)
    s += '; expected %s, got %s' % (a[i:i + 8].hex() or 'EOF', b[i:i + 8].hex() or 'EOF')
    if b[i:j] and not any(b[i:j]):
        s += ' (zeros on the mount)'
    return s


# ---------------------------------------------------------------- main

def read_log(path):
    with open(path) as fh:
        lines = [json.loads(x) for x in fh if x.strip()]
    head = lines[0]
    ops = []
    for e in lines[1:]:
        op = dict(e['op'])
        op.pop('step', None)
        ops.append(op)
    # The final remount is part of every run; the log has it as a last step.
    if ops and ops[-1] == {'op': 'remount'} and (lines[-1].get('note') == 'final remount'):
        ops.pop()
    return head, ops


def report(t, err, args, started):
    log_dir = args.log_dir or os.environ.get('DIFFTEST_LOG_DIR') or tempfile.gettempdir()
    path = os.path.join(log_dir, 'fshield-difftest-%s-seed%d.log' % (t.scenario, t.seed))
    try:
        t.write_log(path, err)
    except OSError as e:
        path = '(could not write the log: %s)' % e
    say('FAIL: difftest %s, seed %d, step %d: [%s] %s' % (
        t.scenario, t.seed, t.step, err.kind, err))
    last = t.log[-SHOW_LAST:]
    say('--- the last %d of %d operations (the failing one last):' % (len(last), len(t.log)))
    for e in last:
        say('  ' + fmt_op(e))
    dl = t.daemon_log(30)
    if dl:
        say('--- the daemon\'s stderr (last lines):\n' + dl)
    say('--- every operation, with both results: %s' % path)
    say('--- rerun: DIFFTEST_SEED=%d%s meson test -C BUILD difftest-%s --verbose' % (
        t.seed, ' DIFFTEST_AVOID=' + ','.join(sorted(args.avoid)) if args.avoid else '',
        t.scenario))
    say('    or:    SCONE_FSPF_BIN=%s %s %s --seed %d%s%s' % (
        args.bin, sys.argv[0], t.scenario, t.seed,
        ' --steps %d' % args.steps if args.steps != DEFAULT_STEPS else '',
        ' --avoid ' + ','.join(sorted(args.avoid)) if args.avoid else ''))
    say('    shrink: ... %s --replay %s --minimize' % (t.scenario, path))
    say('(%.1f s)' % (time.monotonic() - started))


def minimize(args, scenario, seed, ops, kind, final):
    """Shrink the operations to a short sequence that still fails with the
    same kind of mismatch: remove chunks of halving sizes, each kept out if
    the rest still fails, and cut every failing candidate at its failing
    step. @final: whether the failure came in the final checks (if not, the
    trials skip them)."""
    trials = [0]

    def fails(sub):
        """None, or @sub cut after the step that failed."""
        trials[0] += 1
        t = DiffTest(args, scenario, seed)
        try:
            err = t.run(sub, final=final)
        finally:
            t.cleanup()
        if err is None or err.kind != kind:
            return None
        return sub[:t.step] if not t.in_final else sub

    size = max(1, len(ops) // 2)
    while True:
        i = 0
        while i < len(ops):
            cut = fails(ops[:i] + ops[i + size:])
            if cut is not None:
                ops = cut
            else:
                i += size
        say('  minimize: %d operations (%d trials, chunks of %d)' % (
            len(ops), trials[0], size))
        if size == 1:
            return ops
        size = max(1, size // 2)


DEFAULT_STEPS = 2500


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__[__doc__.index('Scenarios'):])
    ap.add_argument('scenario', choices=sorted(SCENARIOS))
    ap.add_argument('--seed', type=int)
    ap.add_argument('--default-seed', type=int, default=1)
    ap.add_argument('--steps', type=int)
    ap.add_argument('--max-seconds', type=float, default=40,
                    help='stop generating operations after this long (default 40)')
    ap.add_argument('--bin', default=os.environ.get('SCONE_FSPF_BIN'))
    ap.add_argument('--keep', action='store_true',
                    default=os.environ.get('DIFFTEST_KEEP') == '1')
    ap.add_argument('--log-dir')
    ap.add_argument('--readonly', action='store_true')
    ap.add_argument('--fuse-opts', default=os.environ.get('DIFFTEST_FUSE_OPTS'),
                    metavar='OPTS', help='-o for the mount (default: %s for mixed, '
                    'none for the others; "" for none)' % NO_CACHE)
    ap.add_argument('--full-every', type=int, default=FULL_EVERY, metavar='N',
                    help='compare the whole tree every N steps (default %d; 1 to '
                    'find the step that broke it)' % FULL_EVERY)
    ap.add_argument('--avoid', default=os.environ.get('DIFFTEST_AVOID', ''),
                    metavar='WHAT[,WHAT]',
                    help='steer clear of a known failure, to look past it (another '
                    'sequence for the same seed): unlink-open (never unlink or rename '
                    'over a file held open), pinned (never try to remove, rename or '
                    'change an embed point or a directory above one), utime-open '
                    '(never set times of a file held open: through the descriptor, '
                    'as cp -p does, or by its name)')
    ap.add_argument('--replay', metavar='LOG')
    ap.add_argument('--minimize', action='store_true')
    # Self-tests of the harness: a difference in the reference at step STEP;
    # a wrong reference answer to reads at byte 1 of a chunk (for --minimize).
    ap.add_argument('--inject', type=int, metavar='STEP', help=argparse.SUPPRESS)
    ap.add_argument('--fake-bug', action='store_true', help=argparse.SUPPRESS)
    # The other side is a plain directory or a gocryptfs mount instead of
    # scone-fspf's: every difference is then the harness's own.
    ap.add_argument('--self-test', choices=['dir', 'gocryptfs'], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.bin or not os.access(args.bin, os.X_OK):
        print('difftest: set SCONE_FSPF_BIN (or --bin) to the scone-fspf binary',
              file=sys.stderr)
        return 2
    args.bin = os.path.abspath(args.bin)
    args.avoid = {a for a in args.avoid.split(',') if a}
    if args.avoid - {'unlink-open', 'pinned', 'utime-open'}:
        print('difftest: --avoid takes unlink-open, pinned and utime-open',
              file=sys.stderr)
        return 2
    if args.minimize and not args.replay:
        print('difftest: --minimize needs --replay LOG', file=sys.stderr)
        return 2
    env_seed = os.environ.get('DIFFTEST_SEED')
    if args.seed is not None:
        seed = args.seed
    elif env_seed == 'random':
        seed = random.SystemRandom().randrange(1, 10**9)
    elif env_seed:
        seed = int(env_seed)
    else:
        seed = args.default_seed
    if args.steps is None:
        args.steps = int(os.environ.get('DIFFTEST_STEPS') or DEFAULT_STEPS)
    ops = None
    if args.replay:
        head, ops = read_log(args.replay)
        seed, args.readonly = head['seed'], head.get('readonly', False)
        args.self_test = args.self_test or head.get('self_test')
        if head['scenario'] != args.scenario:
            print('difftest: the log is of scenario %s' % head['scenario'], file=sys.stderr)
            return 2
    if not os.path.exists('/dev/fuse'):
        say('SKIP: /dev/fuse is missing on this machine: no FUSE mount to test')
        return 77
    if not args.readonly and not args.self_test:
        h = subprocess.run([args.bin, 'mount', '--help'], capture_output=True, text=True)
        if '--rw' not in h.stdout + h.stderr:
            say('FAIL: %s mount has no --rw option: the read-write mount is not built '
                '(--readonly tests the harness alone)' % args.bin)
            return 1
    os.umask(0o022)

    started = time.monotonic()
    say('difftest %s: seed %d, %s%s' % (
        args.scenario, seed,
        '%d operations from %s' % (len(ops), args.replay) if ops is not None
        else 'up to %d steps' % args.steps, ', read-only' if args.readonly else ''))
    t = DiffTest(args, args.scenario, seed)

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        err = t.run(ops, args.inject)
        if err is None:
            ncmp = sum(1 for e in t.log if e['op']['op'] == 'remount')
            kinds = {}
            for e in t.log:
                kinds[e['op']['op']] = kinds.get(e['op']['op'], 0) + 1
            fails = sum(1 for e in t.log if e.get('ref') and e['ref'][0] != 'ok')
            say('ok: difftest %s, seed %d: %d operations (%s; %d failed alike on both '
                'sides), %d remounts, %d tags, %.1f s' % (
                    args.scenario, seed, len(t.log),
                    ', '.join('%s %d' % kv for kv in sorted(kinds.items())), fails,
                    ncmp, len(t.tags), time.monotonic() - started))
            return 0
        report(t, err, args, started)
        if args.minimize:
            say('--- minimizing (kind %s) ...' % err.kind)
            t.cleanup()
            small = minimize(args, args.scenario, seed, ops[:t.step] if not t.in_final
                             else ops, err.kind, t.in_final)
            t2 = DiffTest(args, args.scenario, seed)
            err2 = t2.run(small)
            path = args.replay + '.min'
            t2.write_log(path, err2)
            say('--- minimal sequence (%d operations), seed %d, %s:' % (
                len(small), seed, path))
            for e in t2.log:
                say('  ' + fmt_op(e))
            say('  => [%s] %s' % (err2.kind if err2 else '-', err2))
            t2.cleanup()
        return 1
    finally:
        t.cleanup()


if __name__ == '__main__':
    sys.exit(main())
