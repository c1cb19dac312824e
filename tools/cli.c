// SPDX-License-Identifier: Apache-2.0
/* Shared pieces of scone-fspf: messages, keys and tags, parallel work, progress. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define KEY_TEXT_MAX_BYTES 256
#define TAG_TEXT_MAX_BYTES 256

const char *g_prog = "scone-fspf";

static void vmsg(const char *kind, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: %s", g_prog, kind);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void cli_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("error: ", fmt, ap);
	va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("warning: ", fmt, ap);
	va_end(ap);
}

void cli_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("note: ", fmt, ap);
	va_end(ap);
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("error: ", fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help' for more information.\n", g_prog);
	return EXIT_USAGE;
}

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int key_opts_parse(struct key_opts *ko, int c, const char *arg)
{
	uint64_t fd;

	switch (c) {
	case OPT_KEY_FILE:
		ko->key_file = arg;
		return 1;
	case OPT_KEY_FD:
		if (cli_parse_u64(arg, 0, INT_MAX, &fd))
			return -1;
		ko->key_fd = (int)fd;
		return 1;
	case OPT_EXPECTED_TAG:
		ko->tag_hex = arg;
		return 1;
	case OPT_TAG_FILE:
		ko->tag_file = arg;
		return 1;
	case OPT_ALLOW_UNENCRYPTED:
		ko->allow_unencrypted = true;
		return 1;
	case OPT_TAG_EXACT:
		ko->tag_exact = true;
		return 1;
	default:
		return 0;
	}
}

int cli_unexpected(const char *cmd, const char *arg)
{
	size_t n = strlen(arg), hex = strspn(arg, "0123456789abcdefABCDEF");

	/* Do not echo what looks like a key to a terminal or a log. */
	if (n == hex && n == FSH_FSPF_KEY_HEX_BYTES)
		return cli_usage("%s: unexpected argument (it looks like a key: give keys with --key-file, --key-fd or SCONE_FSPF_KEY)",
				 cmd);
	return cli_usage("%s: unexpected argument '%s'", cmd, arg);
}

int cli_bad_option(const char *cmd, int c, char **argv)
{
	if (c == ':')
		return cli_usage("%s: option '%s' needs a value", cmd,
				 argv[optind - 1]);
	return cli_usage("%s: unknown option '%s'", cmd, argv[optind - 1]);
}

int key_opts_option(struct key_opts *ko, int c, const char *cmd, char **argv)
{
	int ret = key_opts_parse(ko, c, optarg);

	if (ret < 0)
		return cli_usage("%s: bad value '%s' for '%s'", cmd, optarg,
				 argv[optind - 1]);
	return ret ? 0 : cli_bad_option(cmd, c, argv);
}

/* Read at most @max - 1 bytes of @fd into the secret buffer @buf. */
static int read_small(int fd, char *buf, size_t max, size_t *len)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, buf + got, max - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == max - 1)
			return -EFBIG;
	}
	buf[got] = '\0';
	*len = got;
	return 0;
}

static int key_from_text(const char *text, size_t len, const char *what,
			 struct fsh_key **key_ret)
{
	int err = fsh_key_from_hex(text, len, FSH_FSPF_KEY_BYTES, key_ret);

	if (!err && fsh_key_is_zero(*key_ret)) {
		fsh_key_free(*key_ret);
		*key_ret = NULL;
		cli_error("bad key %s: the all-zero key is public, not a key", what);
		return 1;
	}
	if (err == -EINVAL) {
		cli_error("bad key %s: expected %d hex digits", what,
			  FSH_FSPF_KEY_HEX_BYTES);
		return 1;
	}
	if (err) {
		cli_error("cannot keep the key %s: %s", what, strerror(-err));
		return 1;
	}
	return 0;
}

static int key_from_fd(int fd, const char *what, struct fsh_key **key_ret)
{
	char *buf = fsh_secure_alloc(KEY_TEXT_MAX_BYTES);
	size_t len = 0;
	int err, ret = 1;

	if (!buf) {
		cli_error("out of memory");
		return 1;
	}
	err = read_small(fd, buf, KEY_TEXT_MAX_BYTES, &len);
	if (err)
		cli_error("cannot read the key %s: %s", what,
			  err == -EFBIG ? "too long to be a key" : strerror(-err));
	else
		ret = key_from_text(buf, len, what, key_ret);
	fsh_secure_free(buf);
	return ret;
}

int cli_get_key(const struct key_opts *ko, struct fsh_key **key_ret)
{
	const char *env = getenv("SCONE_FSPF_KEY");
	char what[PATH_MAX + 32];
	int given = (ko->key_fd >= 0) + !!ko->key_file + !!ko->key_arg;

	*key_ret = NULL;
	if (ko->tag_exact && !ko->tag_file)
		return cli_usage("--tag-exact is about a tag file: give one with --tag-file");
	if (given > 1)
		return cli_usage("give the key one way only (--key-fd, --key-file or KEY)");
	if (ko->key_fd >= 0) {
		snprintf(what, sizeof(what), "from file descriptor %d",
			 ko->key_fd);
		return key_from_fd(ko->key_fd, what, key_ret);
	}
	if (ko->key_file) {
		struct stat st;
		int fd = open(ko->key_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		int ret;

		if (fd < 0) {
			cli_error("cannot open key file '%s': %s", ko->key_file,
				  strerror(errno));
			return 1;
		}
		if (fstat(fd, &st) == 0 && (st.st_mode & 077))
			cli_warn("key file '%s' is readable by others (mode %04o): chmod 600 it",
				 ko->key_file, (unsigned)(st.st_mode & 07777));
		snprintf(what, sizeof(what), "in '%s'", ko->key_file);
		ret = key_from_fd(fd, what, key_ret);
		close(fd);
		return ret;
	}
	if (ko->key_arg) {
		cli_warn("a key on the command line is visible to other users; use --key-file, --key-fd or SCONE_FSPF_KEY");
		return key_from_text(ko->key_arg, strlen(ko->key_arg),
				     "given on the command line", key_ret);
	}
	if (env && *env) {
		int ret = key_from_text(env, strlen(env), "in SCONE_FSPF_KEY",
					key_ret);

		/* Our copy of the environment need not hold it any longer. */
		fsh_wipe((char *)env, strlen(env));
		return ret;
	}
	return 0;
}

int cli_get_expected_tag(const struct key_opts *ko,
			 uint8_t tag[FSH_TAG_BYTES])
{
	const char *env = getenv("SCONE_FSPF_TAG");
	char buf[TAG_TEXT_MAX_BYTES];
	const char *text = NULL, *what = NULL;
	size_t len = 0;

	if (ko->tag_hex && ko->tag_file) {
		cli_usage("give the expected tag one way only (--expected-tag or --tag-file)");
		return -EXIT_USAGE;
	}
	if (ko->tag_file) {
		int fd = open(ko->tag_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		int err;

		if (fd < 0) {
			cli_error("cannot open tag file '%s': %s", ko->tag_file,
				  strerror(errno));
			return -1;
		}
		err = read_small(fd, buf, sizeof(buf), &len);
		close(fd);
		if (err) {
			cli_error("cannot read tag file '%s': %s", ko->tag_file,
				  err == -EFBIG ? "too long to be a tag"
						: strerror(-err));
			return -1;
		}
		text = buf;
		what = ko->tag_file;
	} else if (ko->tag_hex) {
		text = ko->tag_hex;
		len = strlen(text);
		what = "--expected-tag";
	} else if (env && *env) {
		text = env;
		len = strlen(env);
		what = "SCONE_FSPF_TAG";
	} else {
		return 0;
	}
	if (fsh_hex_decode(text, len, tag, FSH_TAG_BYTES)) {
		if (text == ko->tag_hex) {
			cli_usage("bad value for --expected-tag: expected %d hex digits",
				  FSH_TAG_HEX_BYTES);
			return -EXIT_USAGE;
		}
		cli_error("bad expected tag in '%s': expected %d hex digits",
			  what, FSH_TAG_HEX_BYTES);
		return -1;
	}
	return 1;
}

int cli_open_fspf(const char *path, const struct key_opts *ko,
		  struct fspf **fspf_ret, struct fsh_key **key_ret,
		  uint8_t tag_ret[FSH_TAG_BYTES], bool *have_expected_ret)
{
	uint8_t expected[FSH_TAG_BYTES];
	struct fsh_key *key = NULL;
	struct fspf *fspf = NULL;
	unsigned int max_depth;
	int have, err, ret, depth = -1;

	ret = cli_get_key(ko, &key);
	if (ret)
		return ret;
	ret = 1;
	have = cli_get_expected_tag(ko, expected);
	if (have < 0) {
		ret = -have;
		goto fail;
	}
	/* A tag file may lag behind its writer's last commits (fspf(5)). */
	max_depth = have > 0 && ko->tag_file && !ko->tag_exact
			    ? FSPF_LINEAGE_MAX
			    : 0;
	err = fspf_load(path, key, &fspf, tag_ret);
	if (!err && have > 0) {
		depth = fspf_descent(fspf, tag_ret, expected);
		if (depth > (int)max_depth)
			depth = -1;
	}
	if (have > 0 && key && (depth != 0 || max_depth)) {
		/* A writer that died mid-commit left the state beside. */
		uint8_t ptag[FSH_TAG_BYTES];
		unsigned int pdepth;
		struct fspf *pend;
		char *pend_path;

		if (fspf_load_pending(path, key, expected, max_depth, &pend,
				      ptag, &pdepth, &pend_path) == 0) {
			if ((int)pdepth > depth) {
				cli_note("'%s': a commit was interrupted; using its new fspf %s, which %s",
					 path, pend_path,
					 pdepth ? "descends from the tag file's state"
						: "has the expected tag");
				fspf_free(fspf);
				fspf = pend;
				pend = NULL;
				memcpy(tag_ret, ptag, FSH_TAG_BYTES);
				depth = (int)pdepth;
				err = 0;
			}
			fspf_free(pend);
			free(pend_path);
		}
	}
	if (!err && depth > 0) {
		cli_note("'%s': its state is %d commit%s newer than the one the tag file '%s' names, and descends from it (the last writer stopped before it synced the tag file)",
			 path, depth, depth == 1 ? "" : "s", ko->tag_file);
		memcpy(expected, tag_ret, FSH_TAG_BYTES);
	}
	if (err == -ENOKEY) {
		cli_error("cannot open '%s': the fspf is encrypted: give its key with --key-file, --key-fd or SCONE_FSPF_KEY",
			  path);
		goto fail;
	}
	if (err) {
		cli_error("cannot open '%s': %s", path, fspf_strerror(err));
		goto fail;
	}
	if (!fspf_is_encrypted(fspf)) {
		if (key) {
			cli_error("cannot open '%s': a key was given but the fspf is not encrypted: anyone could have written it (it is sealed under the all-zero key)",
				  path);
			goto fail;
		}
		if (have) {
			cli_error("cannot open '%s': the fspf is not encrypted, so an expected tag proves nothing (anyone can seal one with any tag)",
				  path);
			goto fail;
		}
		if (ko->checker && !ko->allow_unencrypted) {
			cli_error("cannot check '%s': it is not encrypted yet, so anyone could have written it; run 'scone-fspf encrypt' first, or pass --allow-unencrypted to check it anyway on the build machine",
				  path);
			goto fail;
		}
	}
	if (have && !fsh_memeq(expected, tag_ret, FSH_TAG_BYTES)) {
		char want[FSH_TAG_HEX_BYTES + 1], got[FSH_TAG_HEX_BYTES + 1];

		cli_tag_hex(expected, want);
		cli_tag_hex(tag_ret, got);
		cli_error("'%s': its tag is not the expected one, so it is not fresh - suspected rollback or tampering (expected %s, found %s)",
			  path, want, got);
		goto fail;
	}
	if (have_expected_ret)
		*have_expected_ret = have > 0;
	*fspf_ret = fspf;
	*key_ret = key;
	return 0;
fail:
	fspf_free(fspf);
	fsh_key_free(key);
	return ret;
}

int cli_store_fspf(struct fspf *fspf, const char *path,
		   const struct fsh_key *key, uint8_t tag_ret[FSH_TAG_BYTES])
{
	int err;

	/* What this tool writes names no lineage: it is not a commit. */
	fspf_lineage_set(fspf, NULL, 0);
	err = fspf_store(fspf, path, key, tag_ret);

	if (err) {
		cli_error("cannot write '%s': %s", path, fspf_strerror(err));
		return 1;
	}
	return 0;
}

int store_hook_begin(void *arg)
{
	struct store_hook *h = arg;
	int err;

	fspf_lineage_set(h->fspf, NULL, 0); /* see cli_store_fspf() */
	err = fspf_store_begin(h->fspf, h->path, h->key, &h->pending, h->tag);

	if (err) {
		h->pending = NULL;
		cli_error("cannot write '%s': %s", h->path, fspf_strerror(err));
		return 1;
	}
	return 0;
}

int store_hook_commit(void *arg)
{
	struct store_hook *h = arg;
	int err = fspf_store_finish(h->pending);

	h->pending = NULL;
	if (err) {
		cli_error("cannot write '%s': %s", h->path, fspf_strerror(err));
		return 1;
	}
	return 0;
}

void store_hook_abort(struct store_hook *h)
{
	fspf_store_abort(h->pending);
	h->pending = NULL;
}

int cli_write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int secret_out_write(struct secret_out *so, const char *path,
		     const char *text)
{
	int fd, err;

	so->path = path;
	so->tmp = NULL;
	if (asprintf(&so->tmp, "%s.tmp.XXXXXX", path) < 0) {
		so->tmp = NULL;
		return -ENOMEM;
	}
	fd = mkostemp(so->tmp, O_CLOEXEC); /* 0600 */
	if (fd < 0) {
		err = -errno;
		free(so->tmp);
		so->tmp = NULL;
		return err;
	}
	err = cli_write_all(fd, text, strlen(text));
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (err)
		secret_out_discard(so);
	return err;
}

int secret_out_commit(struct secret_out *so)
{
	int err = 0;

	if (!so->tmp)
		return 0;
	if (rename(so->tmp, so->path) < 0)
		err = -errno;
	else {
		free(so->tmp);
		so->tmp = NULL;
	}
	return err;
}

void secret_out_discard(struct secret_out *so)
{
	if (so->tmp) {
		unlink(so->tmp);
		free(so->tmp);
		so->tmp = NULL;
	}
}

void cli_tag_hex(const uint8_t tag[FSH_TAG_BYTES],
		 char hex[FSH_TAG_HEX_BYTES + 1])
{
	fsh_hex_encode(tag, FSH_TAG_BYTES, hex);
}

unsigned cli_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)n : 1;
}

struct pool {
	size_t count;
	atomic_size_t next;
	atomic_int status;
	int (*fn)(void *ctx, size_t index, unsigned worker);
	void *ctx;
};

struct pool_thread {
	struct pool *pool;
	unsigned id;
	pthread_t thread;
};

static void *pool_main(void *arg)
{
	struct pool_thread *t = arg;
	struct pool *p = t->pool;

	while (!atomic_load(&p->status)) {
		size_t i = atomic_fetch_add(&p->next, 1);
		int st;

		if (i >= p->count)
			break;
		st = p->fn(p->ctx, i, t->id);
		if (st) {
			int zero = 0;

			atomic_compare_exchange_strong(&p->status, &zero, st);
		}
	}
	return NULL;
}

int run_parallel(size_t count, unsigned threads,
		 int (*fn)(void *ctx, size_t index, unsigned worker), void *ctx)
{
	struct pool p = { .count = count, .fn = fn, .ctx = ctx };
	struct pool_thread *t;
	unsigned started = 0;

	atomic_init(&p.next, 0);
	atomic_init(&p.status, 0);
	if (!threads)
		threads = cli_cpu_count();
	if (threads > count)
		threads = count ? (unsigned)count : 1;
	t = calloc(threads, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (unsigned i = 1; i < threads; i++) {
		t[i] = (struct pool_thread){ &p, i, 0 };
		if (pthread_create(&t[i].thread, NULL, pool_main, &t[i]))
			break;
		started = i;
	}
	t[0] = (struct pool_thread){ &p, 0, 0 };
	pool_main(&t[0]);
	for (unsigned i = 1; i <= started; i++)
		pthread_join(t[i].thread, NULL);
	free(t);
	return atomic_load(&p.status);
}

struct progress {
	const char *what;
	uint64_t total_items, total_bytes;
	atomic_uint_least64_t items, bytes;
	atomic_bool done;
	bool shown;
	pthread_t thread;
	bool running;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void progress_print(struct progress *p, double elapsed)
{
	uint64_t b = atomic_load(&p->bytes);

	fprintf(stderr, "\r%s: %llu/%llu files, %.1f/%.1f MiB, %.0f MiB/s   ",
		p->what, (unsigned long long)atomic_load(&p->items),
		(unsigned long long)p->total_items, b / 1048576.0,
		p->total_bytes / 1048576.0,
		elapsed > 0 ? b / 1048576.0 / elapsed : 0.0);
	p->shown = true;
}

static void *progress_main(void *arg)
{
	struct progress *p = arg;
	double start = now_s();
	struct timespec tick = { 0, 200 * 1000 * 1000 };

	while (!atomic_load(&p->done)) {
		nanosleep(&tick, NULL);
		if (now_s() - start >= 1.0 && !atomic_load(&p->done))
			progress_print(p, now_s() - start);
	}
	if (p->shown) {
		progress_print(p, now_s() - start);
		fputc('\n', stderr);
	}
	return NULL;
}

struct progress *progress_start(const char *what, uint64_t total_items,
				uint64_t total_bytes)
{
	struct progress *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->what = what;
	p->total_items = total_items;
	p->total_bytes = total_bytes;
	if (isatty(STDERR_FILENO) && !getenv("SCONE_FSPF_NO_PROGRESS"))
		p->running = pthread_create(&p->thread, NULL, progress_main, p) == 0;
	return p;
}

void progress_add(struct progress *p, uint64_t items, uint64_t bytes)
{
	if (!p)
		return;
	atomic_fetch_add(&p->items, items);
	atomic_fetch_add(&p->bytes, bytes);
}

void progress_end(struct progress *p)
{
	if (!p)
		return;
	atomic_store(&p->done, true);
	if (p->running)
		pthread_join(p->thread, NULL);
	free(p);
}
