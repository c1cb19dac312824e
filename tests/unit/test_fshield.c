// SPDX-License-Identifier: Apache-2.0
/*
 * libfshield's writes, through its API: a seeded random sequence of writes,
 * truncates and reopens checked against a model after every step, commits
 * and tags (rollback refused, tag file), the writer lock, read-only
 * refusals, unlink and rename of open files, namespace errors, tampering
 * after a write, attributes, pass-through, and threads.
 * FSHIELD_TEST_SEED=N reruns the random sequence with another seed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fshield.h"
#include "fspf.h"
#include "tap.h"

static char g_dir[] = "/tmp/fshield-test-XXXXXX";
static char g_fspf[256], g_root[256], g_tagfile[256];
static uint8_t g_key[FSHIELD_KEY_BYTES];
static uint8_t g_tag[FSHIELD_TAG_BYTES]; /* the last committed tag */

static uint64_t g_rng = 88172645463325252ull;

static uint64_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

/* rm -rf @dir and, with @mk, mkdir -p @dir/@mk. */
static void fresh_dir(const char *dir, const char *mk)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'%s%s%s%s", dir,
		 mk ? " && mkdir -p '" : "", mk ? dir : "", mk ? "'/" : "",
		 mk ? mk : "");
	if (system(cmd) != 0)
		tap_diag("command failed: %s", cmd);
}

/* A fresh tree: "/" not protected, /enc encrypted (512-byte chunks),
 * /auth authenticated (4 KiB chunks), sealed under a random key. */
static int make_tree(void)
{
	struct fspf_region rs[] = {
		{ (char *)"/", (char *)"/", FSPF_NOT_PROTECTED, FSPF_KERNEL, 0, 0 },
		{ (char *)"/enc", (char *)"/enc", FSPF_ENCRYPTED, FSPF_KERNEL, 32, 512 },
		{ (char *)"/auth", (char *)"/auth", FSPF_AUTHENTICATED, FSPF_KERNEL, 16, 4096 },
		{ (char *)"/tmp", NULL, FSPF_NOT_PROTECTED, FSPF_EPHEMERAL, 0, 0 },
		{ (char *)"/x/y", (char *)"/x/y", FSPF_AUTHENTICATED, FSPF_KERNEL, 16, 4096 },
	};
	struct fsh_key *key;
	struct fspf *f;
	const char *why;
	int err;

	snprintf(g_root, sizeof(g_root), "%s/root", g_dir);
	fresh_dir(g_root, "enc");
	{
		char auth[300];

		snprintf(auth, sizeof(auth), "%s/auth", g_root);
		mkdir(auth, 0755);
	}
	unlink(g_tagfile);
	if (fspf_new(&f))
		return -1;
	for (size_t i = 0; i < sizeof(rs) / sizeof(*rs); i++)
		if ((err = fspf_region_add(f, &rs[i], &why)))
			return err;
	fsh_random(g_key, sizeof(g_key));
	if (fsh_key_new(32, &key))
		return -1;
	memcpy(fsh_key_bytes_mut(key), g_key, 32);
	err = fspf_store(f, g_fspf, key, g_tag);
	fsh_key_free(key);
	fspf_free(f);
	return err;
}

static char g_eph_dir[256]; /* from the log: where memory lives */

static void log_line(void *ctx, int level, const char *msg)
{
	if (!strncmp(msg, "ephemeral regions in ", 21))
		snprintf(g_eph_dir, sizeof(g_eph_dir), "%s", msg + 21);
}

static int open_vol(unsigned flags, const uint8_t *tag,
		    struct fshield_volume **vol)
{
	struct fshield_config cfg = {
		.fspf_path = g_fspf,
		.root = g_root,
		.key = g_key,
		.expected_tag = tag,
		.flags = flags | (tag ? 0 : FSHIELD_NO_ROLLBACK_PROTECTION),
		.tag_path = (flags & FSHIELD_WRITABLE) ? g_tagfile : NULL,
		.log = log_line,
	};

	return fshield_volume_open(&cfg, vol);
}

static int rw(struct fshield_volume **vol)
{
	return open_vol(FSHIELD_WRITABLE | FSHIELD_COMMIT_EXPLICIT, g_tag, vol);
}

static int close_commit(struct fshield_volume *vol)
{
	int err = fshield_commit(vol, g_tag);

	fshield_volume_close(vol);
	return err;
}

/* The whole content of @path, compared with @want. */
static bool same_content(struct fshield_volume *vol, const char *path,
			 const uint8_t *want, size_t size)
{
	struct fshield_file *f;
	struct stat st;
	uint8_t *buf = malloc(size + 1);
	ssize_t n;
	bool ok;

	if (fshield_open(vol, path, O_RDONLY, 0, &f)) {
		free(buf);
		return false;
	}
	n = fshield_pread(f, buf, size + 1, 0);
	ok = n == (ssize_t)size && !memcmp(buf, want, size) &&
	     !fshield_fstat(f, &st) && (size_t)st.st_size == size;
	if (!ok)
		tap_diag("%s: read %zd bytes, want %zu", path, n, size);
	fshield_close(f);
	free(buf);
	return ok;
}

#define MODEL_MAX (64u << 10)

static void random_ops(const char *path)
{
	static uint8_t model[MODEL_MAX], data[8192];
	struct fshield_volume *vol;
	struct fshield_file *f;
	size_t size = 0;

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&vol), 0);
	REQUIRE_INT(fshield_open(vol, path, O_RDWR | O_CREAT | O_EXCL, 0600, &f),
		    0);
	for (int step = 0; step < 1500 && !g_tap.bad; step++) {
		unsigned op = rnd() % 10;

		if (op < 6) { /* write, often across chunks, sometimes past EOF */
			/* One rnd() per statement: a seed means one sequence. */
			size_t big = rnd() % 4 == 0;
			size_t len = 1 + rnd() % (big ? sizeof(data) : 700);
			size_t off = rnd() % (size + 2000 < MODEL_MAX - len
						      ? size + 2000
						      : MODEL_MAX - len);

			for (size_t i = 0; i < len; i++)
				data[i] = (uint8_t)rnd();
			if (!CHECK_INT(fshield_pwrite(f, data, len, off), len))
				tap_diag("step %d: write %zu at %zu", step, len, off);
			if (off > size)
				memset(model + size, 0, off - size);
			memcpy(model + off, data, len);
			if (off + len > size)
				size = off + len;
		} else if (op < 8) { /* truncate down or up */
			size_t to = rnd() % (size + 3000 < MODEL_MAX ? size + 3000
								    : MODEL_MAX);

			CHECK_INT(fshield_ftruncate(f, to), 0);
			if (to > size)
				memset(model + size, 0, to - size);
			size = to;
		} else if (op == 8) { /* a read at a random place */
			size_t off = size ? rnd() % size : 0;
			size_t len = 1 + rnd() % 3000;
			ssize_t want = off + len > size ? (ssize_t)(size - off)
							: (ssize_t)len;

			if (CHECK_INT(fshield_pread(f, data, len, off), want))
				CHECK_MEM(data, model + off, (size_t)want);
		} else { /* commit, close the volume, open it at the new tag */
			CHECK_INT(fshield_close(f), 0);
			CHECK_INT(close_commit(vol), 0);
			REQUIRE_INT(rw(&vol), 0);
			REQUIRE_INT(fshield_open(vol, path, O_RDWR, 0, &f), 0);
		}
		if (!CHECK(same_content(vol, path, model, size)))
			tap_diag("step %d (op %u), seed via FSHIELD_TEST_SEED",
				 step, op);
	}
	fshield_close(f);
	CHECK_INT(close_commit(vol), 0);
	/* And once more from the stored state, read-only. */
	REQUIRE_INT(open_vol(0, g_tag, &vol), 0);
	CHECK(same_content(vol, path, model, size));
	fshield_volume_close(vol);
}

static void test_random_encrypted(void)
{
	random_ops("/enc/f");
}

static void test_random_authenticated(void)
{
	random_ops("/auth/f");
}

static void test_random_not_protected(void)
{
	random_ops("/plain");
}

static void test_commit_and_rollback(void)
{
	uint8_t old[FSHIELD_TAG_BYTES], tag[FSHIELD_TAG_BYTES];
	struct fshield_volume *vol;
	struct fshield_file *f;
	char hex[64] = "";
	FILE *fp;

	REQUIRE_INT(make_tree(), 0);
	memcpy(old, g_tag, sizeof(old));
	REQUIRE_INT(rw(&vol), 0);
	/* Nothing changed: the same tag, nothing written. */
	CHECK_INT(fshield_commit(vol, tag), 0);
	CHECK_MEM(tag, old, sizeof(tag));
	REQUIRE_INT(fshield_open(vol, "/enc/a", O_WRONLY | O_CREAT, 0644, &f), 0);
	CHECK_INT(fshield_pwrite(f, "abc", 3, 0), 3);
	CHECK_INT(fshield_fsync(f, 0), 0); /* fsync commits */
	fshield_volume_tag(vol, tag);
	CHECK(memcmp(tag, old, sizeof(tag)) != 0);
	fp = fopen(g_tagfile, "r");
	REQUIRE(fp);
	CHECK(fgets(hex, sizeof(hex), fp) != NULL);
	fclose(fp);
	{
		char want[2 * FSHIELD_TAG_BYTES + 2];

		fsh_hex_encode(tag, sizeof(tag), want);
		strcat(want, "\n");
		CHECK_STR(hex, want);
	}
	fshield_close(f);
	CHECK_INT(close_commit(vol), 0);
	CHECK_MEM(g_tag, tag, sizeof(tag));
	/* The old state is refused, the new one opens. */
	CHECK_INT(open_vol(0, old, &vol), -ESTALE);
	REQUIRE_INT(open_vol(0, tag, &vol), 0);
	CHECK(same_content(vol, "/enc/a", (const uint8_t *)"abc", 3));
	fshield_volume_close(vol);
}

/* The tag in the tag file. */
static void read_tagfile(uint8_t tag[FSHIELD_TAG_BYTES])
{
	char hex[80] = "";
	FILE *fp = fopen(g_tagfile, "r");

	if (fp) {
		if (!fgets(hex, sizeof(hex), fp))
			hex[0] = '\0';
		fclose(fp);
	}
	if (fsh_hex_decode(hex, 2 * FSHIELD_TAG_BYTES, tag, FSHIELD_TAG_BYTES))
		memset(tag, 0, FSHIELD_TAG_BYTES);
}

static void write_tagfile(const uint8_t tag[FSHIELD_TAG_BYTES])
{
	char hex[2 * FSHIELD_TAG_BYTES + 1];
	FILE *fp = fopen(g_tagfile, "w");

	fsh_hex_encode(tag, FSHIELD_TAG_BYTES, hex);
	if (fp) {
		fprintf(fp, "%s\n", hex);
		fclose(fp);
	}
}

/* The tag of the fspf file at @path, or zeros. */
static void file_tag(const char *path, uint8_t tag[FSHIELD_TAG_BYTES])
{
	struct fsh_key *key;
	struct fspf *f;

	memset(tag, 0, FSHIELD_TAG_BYTES);
	if (fsh_key_new(32, &key))
		return;
	memcpy(fsh_key_bytes_mut(key), g_key, 32);
	if (fspf_load(path, key, &f, tag) == 0)
		fspf_free(f);
	fsh_key_free(key);
}

/* Write "v<i>" to /enc/a and commit, @n times from @first. */
static int commits(struct fshield_volume *vol, int first, int n)
{
	struct fshield_file *f;
	char buf[16];
	int err = fshield_open(vol, "/enc/a", O_WRONLY | O_CREAT | O_TRUNC,
			       0644, &f);

	for (int i = first; !err && i < first + n; i++) {
		int len = snprintf(buf, sizeof(buf), "v%d", i);

		if (fshield_pwrite(f, buf, (size_t)len, 0) != len ||
		    fshield_ftruncate(f, (uint64_t)len) ||
		    fshield_fsync(f, 0))
			err = -EIO;
	}
	if (!err)
		fshield_close(f);
	return err;
}

/* A child writer (g_tag, the tag file) commits "v1".."v3" and dies: no close. */
static bool writer_dies_after_three_commits(void)
{
	struct fshield_volume *vol;
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		if (rw(&vol) || commits(vol, 1, 3))
			_exit(1);
		_exit(0);
	}
	return pid > 0 && waitpid(pid, &status, 0) == pid &&
	       WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The descriptor of this process open on @path, or -1. */
static int fd_of(const char *path)
{
	char link[300], target[512];
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	int fd = -1;
	ssize_t n;

	while (d && fd < 0 && (de = readdir(d))) {
		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n > 0 && (target[n] = '\0', !strcmp(target, path)))
			fd = atoi(de->d_name);
	}
	if (d)
		closedir(d);
	return fd;
}

/*
 * Commits with a tag file rewrite a slot file and the tag file in place:
 * a writer that dies leaves the fspf behind and the tag file naming a
 * slot, which every open with that tag takes (never the older slot, not
 * even when the named one is torn); a writable open puts it in place.
 */
/*
 * The tag file is synced only at every few commits and at close: after a
 * crash it may name a state some commits older than the newest. An open
 * with its tag (FSHIELD_TAG_OR_NEWER, or FSHIELD_TAG_FROM_FILE) takes the
 * newest state that descends from it, in a slot or in place; one given
 * the tag itself takes exactly that state; nothing else opens.
 */
static void test_lagging_tag_file(void)
{
	uint8_t t0[FSHIELD_TAG_BYTES], t[FSHIELD_TAG_BYTES],
		got[FSHIELD_TAG_BYTES], hist[20][FSHIELD_TAG_BYTES];
	const unsigned wr = FSHIELD_WRITABLE | FSHIELD_COMMIT_EXPLICIT;
	struct fshield_volume *vol;

	REQUIRE_INT(make_tree(), 0);
	memcpy(t0, g_tag, sizeof(t0));
	/* A writer that commits three times and dies: the newest in a slot. */
	REQUIRE(writer_dies_after_three_commits());
	read_tagfile(t);
	CHECK(memcmp(t, t0, sizeof(t)) != 0);
	/* Its tag file as a crash may leave it: three commits behind. */
	write_tagfile(t0);
	/* The tag itself: exactly that state (the fspf still holds it). */
	REQUIRE_INT(open_vol(0, t0, &vol), 0);
	fshield_volume_tag(vol, got);
	CHECK_MEM(got, t0, sizeof(got));
	fshield_volume_close(vol);
	/* As a tag file's: the newest, in the slot. */
	REQUIRE_INT(open_vol(FSHIELD_TAG_OR_NEWER, t0, &vol), 0);
	fshield_volume_tag(vol, got);
	CHECK_MEM(got, t, sizeof(got));
	CHECK(same_content(vol, "/enc/a", (const uint8_t *)"v3", 2));
	fshield_volume_close(vol);
	read_tagfile(got);
	CHECK_MEM(got, t0, sizeof(got)); /* a reader leaves it */
	/*
	 * A writer that cannot put the slot in place (here: the fspf is a
	 * mount point, EBUSY) is refused; it never goes on at the older
	 * state in place, removing the slot of the newer one.
	 */
	if (mount(g_fspf, g_fspf, NULL, MS_BIND, NULL) == 0) {
		char slot[320];
		struct stat st;
		int ret = open_vol(wr | FSHIELD_TAG_FROM_FILE, t0, &vol);

		CHECK_INT(ret, -EBUSY);
		if (!ret)
			fshield_volume_close(vol);
		CHECK_INT(umount2(g_fspf, MNT_DETACH), 0);
		snprintf(slot, sizeof(slot), "%s.tmp.0", g_fspf);
		CHECK_INT(stat(slot, &st), 0);
	} else {
		tap_diag("no bind mount (%s): the failed roll-forward is not tried",
			 strerror(errno));
	}
	/* A writer reading the tag file: the same, and names it there. */
	REQUIRE_INT(open_vol(wr | FSHIELD_TAG_FROM_FILE, t0, &vol), 0);
	fshield_volume_tag(vol, got);
	CHECK_MEM(got, t, sizeof(got));
	read_tagfile(got);
	CHECK_MEM(got, t, sizeof(got));
	/* Twenty commits more, each tag kept; closed: all in place. */
	for (int i = 0; i < 20; i++) {
		REQUIRE_INT(commits(vol, 4 + i, 1), 0);
		fshield_volume_tag(vol, hist[i]);
	}
	fshield_volume_close(vol);
	read_tagfile(got);
	CHECK_MEM(got, hist[19], sizeof(got));
	/* Sixteen behind is the lineage's reach; seventeen is not. */
	REQUIRE_INT(open_vol(FSHIELD_TAG_OR_NEWER, hist[3], &vol), 0);
	fshield_volume_tag(vol, got);
	CHECK_MEM(got, hist[19], sizeof(got));
	CHECK(same_content(vol, "/enc/a", (const uint8_t *)"v23", 3));
	fshield_volume_close(vol);
	CHECK_INT(open_vol(FSHIELD_TAG_OR_NEWER, hist[2], &vol), -ESTALE);
	/* A trusted tag file is exact: one behind is refused. */
	CHECK_INT(open_vol(FSHIELD_TAG_OR_NEWER | FSHIELD_TAG_EXACT, hist[18],
			   &vol),
		  -EINVAL);
	write_tagfile(hist[18]);
	CHECK_INT(open_vol(wr | FSHIELD_TAG_FROM_FILE | FSHIELD_TAG_EXACT,
			   hist[18], &vol),
		  -ESTALE);
	write_tagfile(hist[19]);
	REQUIRE_INT(open_vol(wr | FSHIELD_TAG_FROM_FILE | FSHIELD_TAG_EXACT,
			     hist[18], &vol),
		    0);
	fshield_volume_tag(vol, got);
	CHECK_MEM(got, hist[19], sizeof(got));
	fshield_volume_close(vol);
	CHECK_INT(open_vol(FSHIELD_TAG_OR_NEWER, t, &vol), -ESTALE);
	/* A tag no state here descends from. */
	memset(got, 0x5a, sizeof(got));
	CHECK_INT(open_vol(FSHIELD_TAG_OR_NEWER, got, &vol), -ESTALE);
	/* An older fspf put back under a tag file naming the newest. */
	{
		char old[320];
		uint8_t ft[FSHIELD_TAG_BYTES];

		snprintf(old, sizeof(old), "%s.old", g_dir);
		memcpy(g_tag, hist[19], sizeof(g_tag));
		REQUIRE_INT(rw(&vol), 0);
		fshield_volume_close(vol);
		REQUIRE_INT(link(g_fspf, old), 0);
		REQUIRE_INT(rw(&vol), 0);
		REQUIRE_INT(commits(vol, 30, 2), 0);
		fshield_volume_tag(vol, t);
		fshield_volume_close(vol);
		file_tag(old, ft);
		CHECK_MEM(ft, hist[19], sizeof(ft));
		REQUIRE_INT(rename(old, g_fspf), 0);
		write_tagfile(t);
		CHECK_INT(open_vol(FSHIELD_TAG_OR_NEWER, t, &vol), -ESTALE);
		CHECK_INT(open_vol(wr | FSHIELD_TAG_FROM_FILE, t, &vol),
			  -ESTALE);
	}
}

static void test_commit_slots(void)
{
	uint8_t t[FSHIELD_TAG_BYTES], t0[FSHIELD_TAG_BYTES],
		ft[FSHIELD_TAG_BYTES];
	char slot0[300], slot1[300], named[300], other[300];
	struct fshield_volume *vol;
	struct stat st;

	REQUIRE_INT(make_tree(), 0);
	memcpy(t0, g_tag, sizeof(t0));
	snprintf(slot0, sizeof(slot0), "%s.tmp.0", g_fspf);
	snprintf(slot1, sizeof(slot1), "%s.tmp.1", g_fspf);
	REQUIRE(writer_dies_after_three_commits());
	read_tagfile(t);
	CHECK(memcmp(t, t0, sizeof(t)) != 0);
	file_tag(g_fspf, ft);
	CHECK_MEM(ft, t0, sizeof(ft)); /* the fspf itself is behind */
	CHECK_INT(stat(slot0, &st), 0);
	CHECK_INT(stat(slot1, &st), 0);
	/* Commit 3 went to slot 0 (1, 2, 1... after 0: 0 1 0). */
	file_tag(slot0, ft);
	CHECK_MEM(ft, t, sizeof(ft));
	snprintf(named, sizeof(named), "%s", slot0);
	snprintf(other, sizeof(other), "%s", slot1);
	/* A reader at the tag file's tag takes the slot. */
	REQUIRE_INT(open_vol(0, t, &vol), 0);
	CHECK(same_content(vol, "/enc/a", (const uint8_t *)"v3", 2));
	fshield_volume_close(vol);
	/* The other slot torn: no matter. */
	CHECK_INT(truncate(other, 100), 0);
	REQUIRE_INT(open_vol(0, t, &vol), 0);
	fshield_volume_close(vol);
	/* The named one torn: refused, although an older state is there. */
	{
		char keep[320];

		char half[100];
		int fd;

		snprintf(keep, sizeof(keep), "%s.keep", g_dir);
		REQUIRE_INT(rename(named, keep), 0);
		fd = open(keep, O_RDONLY);
		REQUIRE(fd >= 0);
		CHECK_INT(read(fd, half, sizeof(half)), (int)sizeof(half));
		close(fd);
		fd = open(named, O_WRONLY | O_CREAT | O_EXCL, 0600);
		REQUIRE(fd >= 0);
		CHECK_INT(write(fd, half, sizeof(half)), (int)sizeof(half));
		close(fd);
		CHECK_INT(open_vol(0, t, &vol), -ESTALE);
		REQUIRE_INT(rename(keep, named), 0);
	}
	/* A writable open completes the commit; the slots go. */
	memcpy(g_tag, t, sizeof(t));
	REQUIRE_INT(rw(&vol), 0);
	file_tag(g_fspf, ft);
	CHECK_MEM(ft, t, sizeof(ft));
	CHECK_INT(stat(slot0, &st), -1);
	CHECK_INT(stat(slot1, &st), -1);
	/* A program closed or replaced the volume's descriptors: a file of
	 * that number is never written, the commit still counts. */
	REQUIRE_INT(commits(vol, 4, 2), 0);
	{
		char scratch[320];
		int sfd, s0 = fd_of(slot0), tf = fd_of(g_tagfile);

		CHECK(s0 >= 0);
		CHECK(tf >= 0);
		snprintf(scratch, sizeof(scratch), "%s/scratch", g_dir);
		sfd = open(scratch, O_RDWR | O_CREAT | O_TRUNC, 0600);
		REQUIRE(sfd >= 0);
		if (s0 >= 0)
			dup2(sfd, s0);
		if (tf >= 0)
			dup2(sfd, tf);
		REQUIRE_INT(commits(vol, 6, 3), 0);
		CHECK_INT(fstat(sfd, &st), 0);
		CHECK_INT(st.st_size, 0);
		close(sfd);
		unlink(scratch);
	}
	/* The tag file replaced by another file: rewritten by rename, the
	 * old one left alone. */
	{
		char repl[320], old[320];
		uint8_t before[FSHIELD_TAG_BYTES];

		snprintf(repl, sizeof(repl), "%s.new", g_tagfile);
		snprintf(old, sizeof(old), "%s.old", g_tagfile);
		read_tagfile(before);
		REQUIRE_INT(link(g_tagfile, old), 0);
		{
			FILE *fp = fopen(repl, "w");

			REQUIRE(fp);
			fputs("not a tag, not 33 bytes\n", fp);
			fclose(fp);
		}
		REQUIRE_INT(rename(repl, g_tagfile), 0);
		REQUIRE_INT(commits(vol, 9, 2), 0);
		fshield_volume_tag(vol, t);
		read_tagfile(ft);
		CHECK_MEM(ft, t, sizeof(ft));
		snprintf(repl, sizeof(repl), "%s", g_tagfile);
		memcpy(g_tagfile + strlen(g_tagfile), ".old", 5);
		read_tagfile(ft);
		g_tagfile[strlen(repl)] = '\0';
		CHECK_MEM(ft, before, sizeof(ft));
		unlink(old);
	}
	/* Every 64 commits the fspf itself catches up. */
	REQUIRE_INT(commits(vol, 11, 64), 0);
	fshield_volume_tag(vol, t);
	file_tag(g_fspf, ft);
	CHECK(memcmp(ft, t0, sizeof(ft)) != 0);
	CHECK_INT(fshield_volume_close(vol), 0);
	/* Closed: the fspf is the newest state, no slot left. */
	read_tagfile(t);
	file_tag(g_fspf, ft);
	CHECK_MEM(ft, t, sizeof(ft));
	CHECK_INT(stat(slot0, &st), -1);
	CHECK_INT(stat(slot1, &st), -1);
	memcpy(g_tag, t, sizeof(t));
	REQUIRE_INT(open_vol(0, t, &vol), 0);
	CHECK(same_content(vol, "/enc/a", (const uint8_t *)"v74", 3));
	fshield_volume_close(vol);
}

static void test_lock(void)
{
	struct fshield_volume *a, *b;

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&a), 0);
	CHECK_INT(rw(&b), -EBUSY);
	CHECK_INT(open_vol(0, g_tag, &b), -EBUSY);
	fshield_volume_close(a);
	REQUIRE_INT(open_vol(0, g_tag, &a), 0);
	REQUIRE_INT(open_vol(0, g_tag, &b), 0); /* readers share */
	CHECK_INT(rw(&b), -EBUSY);
	fshield_volume_close(a);
	fshield_volume_close(b);
}

static int read_tag_file(uint8_t tag[FSHIELD_TAG_BYTES])
{
	char hex[2 * FSHIELD_TAG_BYTES + 2] = { 0 };
	FILE *f = fopen(g_tagfile, "r");
	size_t n = f ? fread(hex, 1, sizeof(hex) - 1, f) : 0;

	if (f)
		fclose(f);
	return n >= 2 * FSHIELD_TAG_BYTES
		       ? fsh_hex_decode(hex, 2 * FSHIELD_TAG_BYTES, tag,
					FSHIELD_TAG_BYTES)
		       : -EINVAL;
}

struct suspender {
	struct fshield_volume *vol;
	int err;
};

static void *suspend_later(void *arg)
{
	struct suspender *s = arg;

	usleep(200 * 1000);
	s->err = fshield_volume_suspend(s->vol);
	return NULL;
}

/*
 * A writer lets go (suspend) for another to write, then resumes at the
 * tag the other left; only at that tag, and never while a file is open.
 */
static void test_suspend_resume(void)
{
	struct fshield_config cfg = {
		.fspf_path = g_fspf, .root = g_root, .key = g_key,
		.flags = FSHIELD_WRITABLE | FSHIELD_COMMIT_EXPLICIT,
		.tag_path = g_tagfile, .log = log_line, .lock_wait_ms = 5000,
	};
	struct fshield_volume *a, *b;
	struct fshield_file *f;
	struct suspender sp;
	uint8_t tag[FSHIELD_TAG_BYTES];
	struct stat st;
	pthread_t t;

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&a), 0);
	REQUIRE_INT(fshield_open(a, "/enc/a", O_RDWR | O_CREAT, 0600, &f), 0);
	CHECK_INT(fshield_pwrite(f, "from a", 6, 0), 6);
	CHECK_INT(fshield_volume_suspend(a), -EBUSY); /* a file is open */
	CHECK_INT(fshield_close(f), 0);
	CHECK_INT(fshield_is_protected(a, "/enc/a"), 1);
	/* b waits for a, which lets go 200 ms later (and commits) */
	sp.vol = a;
	REQUIRE_INT(pthread_create(&t, NULL, suspend_later, &sp), 0);
	CHECK_INT(read_tag_file(tag), -EINVAL); /* nothing committed yet */
	cfg.expected_tag = NULL;
	cfg.flags |= FSHIELD_NO_ROLLBACK_PROTECTION;
	REQUIRE_INT(fshield_volume_open(&cfg, &b), 0);
	pthread_join(t, NULL);
	CHECK_INT(sp.err, 0);
	/* suspended: its regions answer, nothing else does */
	CHECK_INT(fshield_is_protected(a, "/auth/x"), 1);
	CHECK_INT(fshield_stat(a, "/enc/a", &st), -EBUSY);
	CHECK_INT(fshield_open(a, "/enc/b", O_RDWR | O_CREAT, 0600, &f),
		  -EBUSY);
	CHECK_INT(fshield_mkdir(a, "/enc/d", 0700), -EBUSY);
	CHECK_INT(fshield_commit(a, NULL), 0);
	CHECK(same_content(b, "/enc/a", (const uint8_t *)"from a", 6));
	REQUIRE_INT(fshield_open(b, "/enc/b", O_RDWR | O_CREAT, 0600, &f), 0);
	CHECK_INT(fshield_pwrite(f, "from b", 6, 0), 6);
	CHECK_INT(fshield_close(f), 0);
	CHECK_INT(fshield_unlink(b, "/enc/a"), 0);
	/* a cannot take it back while b holds it */
	CHECK_INT(fshield_volume_resume(a, NULL), -EBUSY);
	CHECK_INT(fshield_volume_close(b), 0);
	/* b committed: a's own tag is refused, the tag file's is taken */
	CHECK_INT(fshield_volume_resume(a, NULL), -ESTALE);
	CHECK_INT(fshield_stat(a, "/enc/b", &st), -EBUSY);
	REQUIRE_INT(read_tag_file(tag), 0);
	CHECK_INT(fshield_volume_resume(a, tag), 0);
	CHECK(same_content(a, "/enc/b", (const uint8_t *)"from b", 6));
	CHECK_INT(fshield_stat(a, "/enc/a", &st), -ENOENT);
	CHECK_INT(fshield_volume_resume(a, NULL), 0); /* not suspended */
	REQUIRE_INT(fshield_open(a, "/enc/c", O_RDWR | O_CREAT, 0600, &f), 0);
	CHECK_INT(fshield_close(f), 0);
	/* the other writer is refused again while a holds it */
	cfg.lock_wait_ms = 0;
	CHECK_INT(fshield_volume_open(&cfg, &b), -EBUSY);
	CHECK_INT(fshield_commit(a, g_tag), 0);
	fshield_volume_close(a);
	REQUIRE_INT(open_vol(0, g_tag, &a), 0);
	CHECK_INT(fshield_stat(a, "/enc/c", &st), 0);
	CHECK_INT(fshield_stat(a, "/enc/b", &st), 0);
	fshield_volume_close(a);
}

static void test_read_only(void)
{
	struct fshield_volume *vol;
	struct fshield_file *f;

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&vol), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/a", O_WRONLY | O_CREAT, 0644, &f), 0);
	fshield_close(f);
	CHECK_INT(close_commit(vol), 0);
	REQUIRE_INT(open_vol(0, g_tag, &vol), 0);
	CHECK_INT(fshield_open(vol, "/enc/a", O_RDWR, 0, &f), -EROFS);
	CHECK_INT(fshield_open(vol, "/enc/b", O_WRONLY | O_CREAT, 0644, &f),
		  -EROFS);
	CHECK_INT(fshield_mkdir(vol, "/enc/d", 0755), -EROFS);
	CHECK_INT(fshield_unlink(vol, "/enc/a"), -EROFS);
	CHECK_INT(fshield_rename(vol, "/enc/a", "/enc/b", 0), -EROFS);
	CHECK_INT(fshield_truncate(vol, "/enc/a", 0), -EROFS);
	CHECK_INT(fshield_chmod(vol, "/enc/a", 0600), -EROFS);
	CHECK_INT(fshield_mkdir(vol, "/newdir", 0755), -EROFS);
	REQUIRE_INT(fshield_open(vol, "/enc/a", O_RDONLY, 0, &f), 0);
	CHECK_INT(fshield_pwrite(f, "x", 1, 0), -EBADF);
	fshield_close(f);
	fshield_volume_close(vol);
}

static void test_open_files_follow(void)
{
	struct fshield_volume *vol;
	struct fshield_file *f, *g;
	struct stat st;
	char buf[16];

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&vol), 0);
	CHECK_INT(fshield_mkdir(vol, "/enc/d", 0755), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/d/f", O_RDWR | O_CREAT, 0600, &f), 0);
	CHECK_INT(fshield_pwrite(f, "12345", 5, 0), 5);
	/* A second handle shares the file: it sees the first one's writes. */
	REQUIRE_INT(fshield_open(vol, "/enc/d/f", O_RDWR, 0, &g), 0);
	CHECK_INT(fshield_pread(g, buf, sizeof(buf), 0), 5);
	/* The directory moves under the open file. */
	CHECK_INT(fshield_rename(vol, "/enc/d", "/enc/e", 0), 0);
	CHECK_INT(fshield_pwrite(f, "67", 2, 5), 2);
	CHECK(same_content(vol, "/enc/e/f", (const uint8_t *)"1234567", 7));
	CHECK_INT(fshield_stat(vol, "/enc/d/f", &st), -ENOENT);
	/* Unlinked, it lives on for its handles, and is not committed. */
	CHECK_INT(fshield_unlink(vol, "/enc/e/f"), 0);
	CHECK_INT(fshield_stat(vol, "/enc/e/f", &st), -ENOENT);
	CHECK_INT(fshield_pwrite(g, "89", 2, 7), 2);
	CHECK_INT(fshield_pread(f, buf, sizeof(buf), 0), 9);
	CHECK(!memcmp(buf, "123456789", 9));
	CHECK_INT(fshield_fstat(f, &st), 0);
	CHECK_INT(st.st_size, 9);
	/* A new file at the old name is another file. */
	{
		struct fshield_file *h;

		REQUIRE_INT(fshield_open(vol, "/enc/e/f", O_RDWR | O_CREAT, 0600,
					 &h), 0);
		CHECK_INT(fshield_pread(h, buf, sizeof(buf), 0), 0);
		fshield_close(h);
	}
	fshield_close(f);
	fshield_close(g);
	CHECK_INT(close_commit(vol), 0);
	REQUIRE_INT(open_vol(0, g_tag, &vol), 0);
	CHECK(same_content(vol, "/enc/e/f", (const uint8_t *)"", 0));
	fshield_volume_close(vol);
}

static void test_namespace_errors(void)
{
	struct fshield_volume *vol;
	struct fshield_file *f;
	struct stat st;
	char buf[64];

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&vol), 0);
	CHECK_INT(fshield_mkdir(vol, "/enc/d", 0750), 0);
	CHECK_INT(fshield_mkdir(vol, "/enc/d", 0750), -EEXIST);
	CHECK_INT(fshield_mkdir(vol, "/enc/x/y", 0750), -ENOENT);
	REQUIRE_INT(fshield_open(vol, "/enc/d/f", O_WRONLY | O_CREAT, 0640, &f),
		    0);
	fshield_close(f);
	CHECK_INT(fshield_open(vol, "/enc/d/f", O_WRONLY | O_CREAT | O_EXCL,
			       0640, &f), -EEXIST);
	CHECK_INT(fshield_open(vol, "/enc/d/f/g", O_WRONLY | O_CREAT, 0640, &f),
		  -ENOTDIR);
	CHECK_INT(fshield_open(vol, "/enc/none", O_RDONLY, 0, &f), -ENOENT);
	CHECK_INT(fshield_open(vol, "/enc/d", O_RDONLY, 0, &f), -EISDIR);
	CHECK_INT(fshield_rmdir(vol, "/enc/d"), -ENOTEMPTY);
	CHECK_INT(fshield_rmdir(vol, "/enc"), -EBUSY);
	CHECK_INT(fshield_rmdir(vol, "/enc/d/f"), -ENOTDIR);
	CHECK_INT(fshield_unlink(vol, "/enc/d"), -EISDIR);
	CHECK_INT(fshield_unlink(vol, "/enc/none"), -ENOENT);
	CHECK_INT(fshield_rename(vol, "/enc/d/f", "/auth/f", 0), -EXDEV);
	CHECK_INT(fshield_rename(vol, "/enc/d/f", "/f", 0), -EXDEV);
	CHECK_INT(fshield_rename(vol, "/enc/d", "/enc/d/e", 0), -EINVAL);
	CHECK_INT(fshield_rename(vol, "/enc", "/enc2", 0), -EBUSY);
	CHECK_INT(fshield_mkdir(vol, "/enc/e", 0700), 0);
	CHECK_INT(fshield_rename(vol, "/enc/d/f", "/enc/e", 0), -EISDIR);
	CHECK_INT(fshield_rename(vol, "/enc/e", "/enc/d/f", 0), -ENOTDIR);
	CHECK_INT(fshield_rename(vol, "/enc/e", "/enc/d", 0), -ENOTEMPTY);
	CHECK_INT(fshield_rename(vol, "/enc/d", "/enc/e", 0), 0); /* over empty */
	CHECK_INT(fshield_stat(vol, "/enc/e/f", &st), 0);
	CHECK_INT(fshield_symlink(vol, "e/f", "/enc/l"), 0);
	CHECK_INT(fshield_symlink(vol, "x", "/enc/l"), -EEXIST);
	CHECK_INT(fshield_readlink(vol, "/enc/l", buf, sizeof(buf)), 3);
	CHECK_STR(buf, "e/f");
	CHECK_INT(fshield_open(vol, "/enc/g", O_WRONLY | O_CREAT, 0600, &f), 0);
	fshield_close(f);
	CHECK_INT(fshield_rename(vol, "/enc/g", "/enc/e/f",
				 FSHIELD_RENAME_NOREPLACE), -EEXIST);
	CHECK_INT(fshield_rename(vol, "/enc/g", "/enc/e/f", 0), 0);
	CHECK_INT(fshield_stat(vol, "/enc/g", &st), -ENOENT);
	CHECK_INT(fshield_unlink(vol, "/enc/e/f"), 0);
	CHECK_INT(fshield_rmdir(vol, "/enc/e"), 0);
	CHECK_INT(fshield_stat(vol, "/enc/e", &st), -ENOENT);
	CHECK_INT(close_commit(vol), 0);
}

static void test_attributes(void)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 1234567890, 5 } };
	struct fshield_volume *vol;
	struct fshield_file *f;
	struct stat st;

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&vol), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/a", O_WRONLY | O_CREAT, 0600, &f), 0);
	fshield_close(f);
	CHECK_INT(fshield_chmod(vol, "/enc/a", 04751), 0);
	CHECK_INT(fshield_chown(vol, "/enc/a", 1234, (gid_t)-1), 0);
	CHECK_INT(fshield_utimens(vol, "/enc/a", ts), 0);
	CHECK_INT(fshield_chmod(vol, "/enc", 0700), -EPERM);
	CHECK_INT(close_commit(vol), 0);
	REQUIRE_INT(open_vol(0, g_tag, &vol), 0);
	CHECK_INT(fshield_stat(vol, "/enc/a", &st), 0);
	CHECK_INT(st.st_mode, S_IFREG | 04751);
	CHECK_INT(st.st_uid, 1234);
	CHECK_INT(st.st_gid, getegid());
	CHECK_INT(st.st_mtim.tv_sec, 1234567890);
	CHECK_INT(st.st_mtim.tv_nsec, 5);
	fshield_volume_close(vol);
}

/*
 * Attributes of open files: a time set after a small write (still in the
 * write-back cache) stands when the chunk is flushed (cp -p), and
 * fchmod/fchown/futimens reach a file renamed or unlinked while open.
 */
static void test_attributes_of_open_files(void)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 1000000000, 7 } };
	struct timespec omit[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
	struct fshield_volume *vol;
	struct fshield_file *f, *g;
	struct stat st;

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&vol), 0);
	REQUIRE_INT(fshield_open(vol, "/auth/p", O_WRONLY | O_CREAT, 0600, &f),
		    0);
	CHECK_INT(fshield_pwrite(f, "small", 5, 0), 5);
	CHECK_INT(fshield_futimens(f, ts), 0);
	CHECK_INT(fshield_fstat(f, &st), 0);
	CHECK_INT(st.st_mtim.tv_sec, 1000000000);
	CHECK_INT(fshield_close(f), 0);
	CHECK_INT(fshield_stat(vol, "/auth/p", &st), 0);
	CHECK_INT(st.st_mtim.tv_sec, 1000000000);
	CHECK_INT(st.st_mtim.tv_nsec, 7);
	/* A write's own time shows before its flush; OMIT keeps it. */
	REQUIRE_INT(fshield_open(vol, "/auth/p", O_WRONLY, 0, &f), 0);
	CHECK_INT(fshield_pwrite(f, "S", 1, 0), 1);
	CHECK_INT(fshield_futimens(f, omit), 0);
	CHECK_INT(fshield_stat(vol, "/auth/p", &st), 0);
	CHECK(st.st_mtim.tv_sec > 1000000000);
	CHECK_INT(fshield_close(f), 0);
	CHECK_INT(fshield_stat(vol, "/auth/p", &st), 0);
	CHECK(st.st_mtim.tv_sec > 1000000000);
	/* By path, with the write still cached in another open file. */
	REQUIRE_INT(fshield_open(vol, "/auth/p", O_WRONLY, 0, &f), 0);
	CHECK_INT(fshield_pwrite(f, "s", 1, 0), 1);
	CHECK_INT(fshield_utimens(vol, "/auth/p", ts), 0);
	CHECK_INT(fshield_close(f), 0);
	CHECK_INT(fshield_stat(vol, "/auth/p", &st), 0);
	CHECK_INT(st.st_mtim.tv_sec, 1000000000);
	/* Renamed, then a new file at the old name: fchmod finds the first. */
	REQUIRE_INT(fshield_open(vol, "/enc/q", O_RDWR | O_CREAT, 0600, &f), 0);
	CHECK_INT(fshield_rename(vol, "/enc/q", "/enc/r", 0), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/q", O_RDWR | O_CREAT, 0600, &g), 0);
	CHECK_INT(fshield_fchmod(f, 0640), 0);
	CHECK_INT(fshield_fchown(f, 4321, (gid_t)-1), 0);
	CHECK_INT(fshield_stat(vol, "/enc/r", &st), 0);
	CHECK_INT(st.st_mode, S_IFREG | 0640);
	CHECK_INT(st.st_uid, 4321);
	CHECK_INT(fshield_stat(vol, "/enc/q", &st), 0);
	CHECK_INT(st.st_mode, S_IFREG | 0600);
	/* Unlinked: the open file sees its change, nothing else does. */
	CHECK_INT(fshield_unlink(vol, "/enc/r"), 0);
	CHECK_INT(fshield_fchmod(f, 0604), 0);
	CHECK_INT(fshield_futimens(f, ts), 0);
	CHECK_INT(fshield_fstat(f, &st), 0);
	CHECK_INT(st.st_mode, S_IFREG | 0604);
	CHECK_INT(st.st_mtim.tv_sec, 1000000000);
	CHECK_INT(fshield_stat(vol, "/enc/r", &st), -ENOENT);
	CHECK_INT(fshield_fstat(g, &st), 0);
	CHECK_INT(st.st_mode, S_IFREG | 0600);
	CHECK_INT(fshield_close(f), 0);
	CHECK_INT(fshield_close(g), 0);
	CHECK_INT(close_commit(vol), 0);
	/* A read-only volume refuses, by path or not. */
	REQUIRE_INT(open_vol(0, g_tag, &vol), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/q", O_RDONLY, 0, &f), 0);
	CHECK_INT(fshield_fchmod(f, 0666), -EROFS);
	CHECK_INT(fshield_close(f), 0);
	fshield_volume_close(vol);
}

static void test_tamper_after_write(void)
{
	struct fshield_volume *vol;
	struct fshield_file *f;
	uint8_t buf[2048], got[2048];
	char host[512];
	int fd;

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&vol), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)i;
	REQUIRE_INT(fshield_open(vol, "/enc/t", O_WRONLY | O_CREAT, 0600, &f), 0);
	CHECK_INT(fshield_pwrite(f, buf, sizeof(buf), 0), sizeof(buf));
	fshield_close(f);
	CHECK_INT(close_commit(vol), 0);
	/* The host holds ciphertext; flip a byte of chunk 2 (bytes 1024-1535). */
	snprintf(host, sizeof(host), "%s/enc/t", g_root);
	fd = open(host, O_RDWR);
	REQUIRE(fd >= 0);
	CHECK_INT(pread(fd, got, sizeof(got), 0), sizeof(got));
	CHECK(memcmp(got, buf, 512) != 0);
	got[1100] ^= 1;
	CHECK_INT(pwrite(fd, got + 1100, 1, 1100), 1);
	close(fd);
	REQUIRE_INT(open_vol(0, g_tag, &vol), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/t", O_RDONLY, 0, &f), 0);
	CHECK_INT(fshield_pread(f, got, sizeof(got), 0), 1024); /* up to it */
	CHECK_INT(fshield_pread(f, got, 10, 1030), -EIO);
	CHECK_INT(fshield_pread(f, got, 10, 1536), 10);
	fshield_close(f);
	fshield_volume_close(vol);
	/* A writer cannot write over the bad chunk either. */
	REQUIRE_INT(rw(&vol), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/t", O_RDWR, 0, &f), 0);
	CHECK_INT(fshield_pwrite(f, "x", 1, 1100), -EIO);
	fshield_close(f);
	fshield_volume_close(vol);
}

/* Small writes within a chunk are sealed once, when the chunk is left. */
static void test_write_back(void)
{
	struct fshield_volume *vol;
	struct fshield_file *f;
	char host[512], line[100], want[4000];
	struct stat st;

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&vol), 0);
	snprintf(host, sizeof(host), "%s/auth/log", g_root);
	REQUIRE_INT(fshield_open(vol, "/auth/log", O_WRONLY | O_CREAT | O_APPEND,
				 0600, &f), 0);
	for (int i = 0; i < 40; i++) {
		memset(line, 'a' + i % 26, sizeof(line));
		memcpy(want + i * 100, line, sizeof(line));
		CHECK_INT(fshield_pwrite(f, line, sizeof(line), 0), sizeof(line));
	}
	/* Nothing sealed or written to the host yet; the size is already seen. */
	CHECK_INT(stat(host, &st), 0);
	CHECK_INT(st.st_size, 0);
	CHECK_INT(fshield_stat(vol, "/auth/log", &st), 0);
	CHECK_INT(st.st_size, 4000);
	CHECK_INT(fshield_fstat(f, &st), 0);
	CHECK_INT(st.st_size, 4000);
	CHECK(same_content(vol, "/auth/log", (const uint8_t *)want, 4000));
	CHECK_INT(fshield_fsync(f, 1), 0);
	CHECK_INT(stat(host, &st), 0);
	CHECK_INT(st.st_size, 4000);
	/* Past the chunk: the first is sealed as the second is begun. */
	CHECK_INT(fshield_pwrite(f, line, 96, 0), 96);
	CHECK_INT(stat(host, &st), 0);
	CHECK_INT(st.st_size, 4000);
	CHECK_INT(fshield_pwrite(f, line, 8, 0), 8);
	CHECK_INT(stat(host, &st), 0);
	CHECK_INT(st.st_size, 4096);
	fshield_close(f);
	CHECK_INT(stat(host, &st), 0);
	CHECK_INT(st.st_size, 4104);
	CHECK_INT(close_commit(vol), 0);
	REQUIRE_INT(open_vol(0, g_tag, &vol), 0);
	CHECK_INT(fshield_stat(vol, "/auth/log", &st), 0);
	CHECK_INT(st.st_size, 4104);
	fshield_volume_close(vol);
}

struct found {
	int count;
	char names[8][32];
};

static int collect(void *ctx, const char *name, const struct stat *st)
{
	struct found *fd = ctx;

	if (fd->count < 8)
		snprintf(fd->names[fd->count++], 32, "%s", name);
	return 0;
}

/* Ephemeral regions: in memory, writable even on a read-only volume,
 * never committed, empty at every open; what the host holds is sealed. */
static void test_ephemeral(void)
{
	uint8_t tag[FSHIELD_TAG_BYTES];
	struct fshield_volume *vol;
	struct fshield_file *f;
	struct found fd = { 0 };
	struct stat st;
	char buf[64], cmd[700];

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(open_vol(0, g_tag, &vol), 0); /* read-only */
	CHECK_INT(fshield_mkdir(vol, "/enc/d", 0755), -EROFS);
	CHECK_INT(fshield_mkdir(vol, "/tmp/d", 0700), 0);
	REQUIRE_INT(fshield_open(vol, "/tmp/d/secret", O_RDWR | O_CREAT, 0600,
				 &f), 0);
	CHECK_INT(fshield_pwrite(f, "EPHEMERAL-PLAINTEXT", 19, 5000), 19);
	CHECK_INT(fshield_fsync(f, 0), 0);
	CHECK_INT(fshield_pread(f, buf, sizeof(buf), 5000), 19);
	CHECK(!memcmp(buf, "EPHEMERAL-PLAINTEXT", 19));
	fshield_close(f);
	CHECK_INT(fshield_rename(vol, "/tmp/d/secret", "/tmp/s", 0), 0);
	CHECK_INT(fshield_rename(vol, "/tmp/s", "/enc/s", 0), -EXDEV);
	CHECK_INT(fshield_symlink(vol, "s", "/tmp/l"), 0);
	CHECK_INT(fshield_readdir(vol, "/tmp", collect, &fd), 0);
	CHECK_INT(fd.count, 3);
	CHECK_STR(fd.names[0], "d");
	CHECK_STR(fd.names[1], "l");
	CHECK_STR(fd.names[2], "s");
	CHECK_INT(fshield_stat(vol, "/tmp/s", &st), 0);
	CHECK_INT(st.st_size, 5019);
	/* Nothing readable lies in the memory's host files. */
	REQUIRE(g_eph_dir[0] == '/');
	snprintf(cmd, sizeof(cmd),
		 "test -s %s/r3/s && ! grep -rqs EPHEMERAL-PLAINTEXT %s",
		 g_eph_dir, g_eph_dir);
	CHECK_INT(system(cmd), 0);
	fshield_volume_tag(vol, tag);
	CHECK_MEM(tag, g_tag, sizeof(tag));
	fshield_volume_close(vol);
	/* Gone at close; empty at the next open. */
	CHECK(access(g_eph_dir, F_OK) < 0 && errno == ENOENT);
	REQUIRE_INT(rw(&vol), 0);
	CHECK_INT(fshield_stat(vol, "/tmp/s", &st), -ENOENT);
	CHECK_INT(fshield_stat(vol, "/tmp", &st), 0);
	CHECK(S_ISDIR(st.st_mode));
	REQUIRE_INT(fshield_open(vol, "/tmp/x", O_WRONLY | O_CREAT, 0600, &f), 0);
	CHECK_INT(fshield_pwrite(f, "x", 1, 0), 1);
	fshield_close(f);
	/* Writing memory changes no tag. */
	CHECK_INT(fshield_commit(vol, tag), 0);
	CHECK_MEM(tag, g_tag, sizeof(tag));
	fshield_volume_close(vol);
}

/* The way to an embed point through a not-protected region stays put. */
static void test_above_embed_point(void)
{
	struct fshield_volume *vol;
	struct stat st;

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&vol), 0);
	CHECK_INT(fshield_stat(vol, "/x", &st), 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_INT(fshield_rename(vol, "/x", "/z", 0), -EBUSY);
	CHECK_INT(fshield_rmdir(vol, "/x"), -EBUSY);
	CHECK_INT(fshield_mkdir(vol, "/w", 0755), 0);
	CHECK_INT(fshield_rename(vol, "/w", "/x", 0), -EBUSY);
	CHECK_INT(fshield_rmdir(vol, "/w"), 0);
	CHECK_INT(fshield_stat(vol, "/x/y", &st), 0);
	CHECK_INT(close_commit(vol), 0);
}

/* Write @len bytes of journal records straight into the lock file. */
static void plant_journal(const char *rec, size_t len)
{
	char lock[300];
	int fd;

	snprintf(lock, sizeof(lock), "%s.lock", g_fspf);
	fd = open(lock, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, rec, len) != (ssize_t)len)
		tap_diag("cannot plant the journal");
	if (fd >= 0)
		close(fd);
}

/*
 * The journal in the lock file lies on the host. Replayed at a writable
 * open, it removes what the fspf does not record inside a protected
 * region, and nothing else: not through a symlink planted in the region's
 * host directory, not a recorded file, not the fspf.
 */
static void test_journal_replay(void)
{
	static const char rec[] = "C/enc/stray\0C/enc/out/victim\0"
				  "C/enc/kept\0C/enc/../fs.pb\0R/enc/a\0/enc/b\0"
				  "C/enc/cut";
	char path[700], outside[300];
	struct fshield_volume *vol;
	struct fshield_file *f;
	struct stat st;

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&vol), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/kept", O_WRONLY | O_CREAT, 0600, &f),
		    0);
	fshield_close(f);
	CHECK_INT(close_commit(vol), 0);
	/* A stray host file, a planted symlink to a victim outside the tree. */
	snprintf(path, sizeof(path), "%s/enc/stray", g_root);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	snprintf(outside, sizeof(outside), "%s/outside", g_dir);
	mkdir(outside, 0700);
	snprintf(path, sizeof(path), "%s/victim", outside);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	snprintf(path, sizeof(path), "%s/enc/out", g_root);
	CHECK_INT(symlink(outside, path), 0);
	plant_journal(rec, sizeof(rec) - 1);
	REQUIRE_INT(rw(&vol), 0);
	snprintf(path, sizeof(path), "%s/enc/stray", g_root);
	CHECK(lstat(path, &st) < 0 && errno == ENOENT); /* undone */
	snprintf(path, sizeof(path), "%s/victim", outside);
	CHECK_INT(lstat(path, &st), 0); /* not through the symlink */
	snprintf(path, sizeof(path), "%s/enc/kept", g_root);
	CHECK_INT(lstat(path, &st), 0); /* recorded: kept */
	CHECK_INT(fshield_stat(vol, "/enc/kept", &st), 0);
	CHECK_INT(lstat(g_fspf, &st), 0);
	fshield_volume_close(vol);
	/* Emptied: the next open finds nothing to do. */
	snprintf(path, sizeof(path), "%s.lock", g_fspf);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_size, 0);
}

struct worker {
	struct fshield_file *f;
	uint64_t base;
	unsigned seed;
	int bad;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	uint8_t buf[1000], got[1000];

	for (int i = 0; i < 200; i++) {
		uint64_t off = w->base + (uint64_t)(i % 50) * sizeof(buf);

		memset(buf, (int)(w->seed + (unsigned)i), sizeof(buf));
		if (fshield_pwrite(w->f, buf, sizeof(buf), off) != sizeof(buf) ||
		    fshield_pread(w->f, got, sizeof(got), off) != sizeof(got) ||
		    memcmp(buf, got, sizeof(buf)))
			w->bad++;
	}
	return NULL;
}

static void test_threads(void)
{
	struct fshield_volume *vol;
	struct fshield_file *f, *g;
	struct worker w[4];
	pthread_t t[4];

	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&vol), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/shared", O_RDWR | O_CREAT, 0600, &f),
		    0);
	REQUIRE_INT(fshield_open(vol, "/auth/other", O_RDWR | O_CREAT, 0600, &g),
		    0);
	/* Two threads on disjoint ranges of one file, two on another file. */
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ i < 2 ? f : g, (uint64_t)(i % 2) * 50000,
					(unsigned)i * 16, 0 };
		pthread_create(&t[i], NULL, work, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(w[i].bad, 0);
	}
	fshield_close(f);
	fshield_close(g);
	CHECK_INT(close_commit(vol), 0);
	REQUIRE_INT(open_vol(0, g_tag, &vol), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/shared", O_RDONLY, 0, &f), 0);
	{
		uint8_t got[1000], want[1000];

		/* Each range ends with its thread's last write of each slot. */
		for (int i = 150; i < 200; i++) {
			memset(want, (int)(16u + (unsigned)i), sizeof(want));
			CHECK_INT(fshield_pread(f, got, sizeof(got),
						50000 + (uint64_t)(i % 50) * 1000),
				  1000);
			CHECK_MEM(got, want, sizeof(want));
		}
	}
	fshield_close(f);
	fshield_volume_close(vol);
}

struct reader {
	struct fshield_file *f;
	const uint8_t *want;
	size_t size;
	int bad;
	size_t step;	/* bytes per read; 0: 64 KiB */
};

static void *read_all(void *arg)
{
	struct reader *r = arg;
	size_t step = r->step ? r->step : 64 << 10;
	uint8_t *buf = malloc(step);

	if (!buf) {
		r->bad++;
		return NULL;
	}
	for (int pass = 0; pass < 20; pass++)
		for (size_t off = 0; off < r->size; off += step)
			if (fshield_pread(r->f, buf, step, off) != (ssize_t)step ||
			    memcmp(buf, r->want + off, step))
				r->bad++;
	free(buf);
	return NULL;
}

/*
 * Readers of whole chunks share the file; a writer rewriting the same
 * bytes (new nonces, new records) at the same time must never make them
 * see an error or other bytes.
 */
static void test_shared_readers_and_a_writer(void)
{
	enum { SIZE = 1 << 20 };
	static uint8_t data[SIZE];
	struct fshield_volume *vol;
	struct fshield_file *f, *w;
	struct reader r[3];
	pthread_t t[3];

	for (size_t i = 0; i < SIZE; i++)
		data[i] = (uint8_t)(i * 7 + i / 4096);
	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&vol), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/big", O_RDWR | O_CREAT, 0600, &w), 0);
	REQUIRE_INT(fshield_pwrite(w, data, SIZE, 0), SIZE);
	REQUIRE_INT(fshield_open(vol, "/enc/big", O_RDONLY, 0, &f), 0);
	for (int i = 0; i < 3; i++) {
		r[i] = (struct reader){ f, data, SIZE, 0, 0 };
		pthread_create(&t[i], NULL, read_all, &r[i]);
	}
	for (int k = 0; k < 300; k++) { /* odd sizes: the exclusive path */
		size_t off = rnd() % (SIZE - 5000), len = 1 + rnd() % 5000;

		CHECK_INT(fshield_pwrite(w, data + off, len, off), len);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(r[i].bad, 0);
	}
	fshield_close(f);
	fshield_close(w);
	CHECK_INT(close_commit(vol), 0);
}

/* Threads of this process, from /proc (0 where it cannot tell). */
static int thread_count(void)
{
	char line[256];
	int n = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

/*
 * The threads of this process once it has @want: a joined thread leaves
 * the count a moment after pthread_join() returns (the kernel wakes the
 * joiner before it reaps the thread), so look again for up to a second.
 */
static int thread_count_settled(int want)
{
	int n = thread_count();

	for (int i = 0; i < 1000 && n != want; i++) {
		usleep(1000);
		n = thread_count();
	}
	return n;
}

/*
 * Large reads run on the runtime's threads (several pieces at once). A
 * tampered chunk in the middle of one: the read returns exactly the
 * verified bytes before it, and nothing after it is plaintext (no byte of
 * the file is 0x00 or 0xAA, the buffer's fill: every byte after the cut
 * must be one of these); reading at the chunk fails. Concurrent large
 * reads, a forked child's and volume close (no thread left) too.
 */
static void test_parallel_read_tamper(void)
{
	enum { SIZE = (2 << 20) + 700, C = 512, BAD = (1 << 20) + 3 * C + 100 };
	static uint8_t data[SIZE], got[SIZE];
	struct fshield_volume *vol;
	struct fshield_file *f;
	struct reader r[3];
	pthread_t t[3];
	char host[512];
	int threads0 = thread_count(), fd, status;
	size_t cut = BAD / C * C, plain = 0;
	uint8_t byte;
	pid_t pid;

	for (size_t i = 0; i < SIZE; i++) {
		data[i] = (uint8_t)(1 + rnd() % 255);
		if (data[i] == 0xAA)
			data[i] = 0x55;
	}
	REQUIRE_INT(make_tree(), 0);
	REQUIRE_INT(rw(&vol), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/par", O_WRONLY | O_CREAT, 0600, &f),
		    0);
	REQUIRE_INT(fshield_pwrite(f, data, SIZE, 0), SIZE);
	fshield_close(f);
	CHECK_INT(close_commit(vol), 0);

	/* Untampered: whole, at odd sizes, and from 3 threads at once. */
	REQUIRE_INT(open_vol(0, g_tag, &vol), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/par", O_RDONLY, 0, &f), 0);
	CHECK_INT(fshield_pread(f, got, SIZE, 0), SIZE);
	CHECK_MEM(got, data, SIZE);
	CHECK_INT(fshield_pread(f, got, SIZE - 5 * C - 1, 5 * C),
		  SIZE - 5 * C - 1);
	CHECK_MEM(got, data + 5 * C, SIZE - 5 * C - 1);
	for (int i = 0; i < 3; i++) {
		r[i] = (struct reader){ f, data, SIZE / (512 << 10) * (512 << 10),
					0, 512 << 10 };
		pthread_create(&t[i], NULL, read_all, &r[i]);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(r[i].bad, 0);
	}
	/* A child of fork() (the parent's threads are gone) reads too. */
	pid = fork();
	REQUIRE(pid >= 0);
	if (!pid)
		_exit(fshield_pread(f, got, SIZE, 0) == SIZE &&
				      !memcmp(got, data, SIZE)
			      ? 0
			      : 1);
	REQUIRE_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	fshield_close(f);
	fshield_volume_close(vol);
	/* The runtime's threads were joined at close. */
	if (threads0)
		CHECK_INT(thread_count_settled(threads0), threads0);

	snprintf(host, sizeof(host), "%s/enc/par", g_root);
	fd = open(host, O_RDWR);
	REQUIRE(fd >= 0);
	REQUIRE_INT(pread(fd, &byte, 1, BAD), 1);
	byte ^= 0x10;
	REQUIRE_INT(pwrite(fd, &byte, 1, BAD), 1);
	close(fd);
	REQUIRE_INT(open_vol(0, g_tag, &vol), 0);
	REQUIRE_INT(fshield_open(vol, "/enc/par", O_RDONLY, 0, &f), 0);
	memset(got, 0xAA, SIZE);
	CHECK_INT(fshield_pread(f, got, SIZE, 0), cut);
	CHECK_MEM(got, data, cut);
	for (size_t i = cut; i < SIZE; i++)
		plain += got[i] != 0 && got[i] != 0xAA;
	CHECK_INT(plain, 0);
	memset(got, 0xAA, SIZE);
	CHECK_INT(fshield_pread(f, got, SIZE - cut, cut), -EIO);
	plain = 0;
	for (size_t i = 0; i < SIZE - cut; i++)
		plain += got[i] != 0 && got[i] != 0xAA;
	CHECK_INT(plain, 0);
	/*
	 * The bad chunk last of the first piece (128 KiB): the other threads
	 * may read pieces after it meanwhile, which must then be wiped. How
	 * often they get there first is up to the scheduler: hence the runs.
	 */
	for (int k = 0; k < 50; k++) {
		size_t start = cut - 255 * C;

		memset(got, 0xAA, SIZE);
		CHECK_INT(fshield_pread(f, got, SIZE - start, start), cut - start);
		CHECK_MEM(got, data + start, cut - start);
		plain = 0;
		for (size_t i = cut - start; i < SIZE - start; i++)
			plain += got[i] != 0 && got[i] != 0xAA;
		CHECK_INT(plain, 0);
	}
	/* What lies after the bad chunk still reads. */
	CHECK_INT(fshield_pread(f, got, SIZE - cut - C, cut + C), SIZE - cut - C);
	CHECK_MEM(got, data + cut + C, SIZE - cut - C);
	fshield_close(f);
	fshield_volume_close(vol);
	if (threads0)
		CHECK_INT(thread_count_settled(threads0), threads0);
}

int main(void)
{
	const char *seed = getenv("FSHIELD_TEST_SEED");

	if (seed)
		g_rng = strtoull(seed, NULL, 0) | 1;
	tap_diag("seed %llu", (unsigned long long)g_rng);
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(g_fspf, sizeof(g_fspf), "%s/fs.pb", g_dir);
	snprintf(g_tagfile, sizeof(g_tagfile), "%s/tag", g_dir);
	TAP_RUN(test_random_encrypted);
	TAP_RUN(test_random_authenticated);
	TAP_RUN(test_random_not_protected);
	TAP_RUN(test_commit_and_rollback);
	TAP_RUN(test_commit_slots);
	TAP_RUN(test_lagging_tag_file);
	TAP_RUN(test_lock);
	TAP_RUN(test_suspend_resume);
	TAP_RUN(test_read_only);
	TAP_RUN(test_open_files_follow);
	TAP_RUN(test_namespace_errors);
	TAP_RUN(test_attributes);
	TAP_RUN(test_attributes_of_open_files);
	TAP_RUN(test_tamper_after_write);
	TAP_RUN(test_write_back);
	TAP_RUN(test_ephemeral);
	TAP_RUN(test_above_embed_point);
	TAP_RUN(test_journal_replay);
	TAP_RUN(test_threads);
	TAP_RUN(test_shared_readers_and_a_writer);
	TAP_RUN(test_parallel_read_tamper);
	fresh_dir(g_dir, NULL);
	return tap_done();
}
