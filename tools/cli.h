/* SPDX-License-Identifier: Apache-2.0 */
/* Shared pieces of the scone-fspf subcommands. */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fspf.h"
#include "fsh_crypto.h"

#define EXIT_USAGE 2

extern const char *g_prog;

__attribute__((format(printf, 1, 2))) void cli_error(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void cli_warn(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void cli_note(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) int cli_usage(const char *fmt, ...);

/* Where the key and the expected tag of an fspf come from. */
struct key_opts {
	const char *key_file;
	int key_fd;
	const char *key_arg; /* positional: works, with a warning */
	const char *tag_hex;
	const char *tag_file;
	/*
	 * An fspf that was never encrypted is sealed under the all-zero key:
	 * anyone can write one, with any tag. Every command refuses it when a
	 * key or an expected tag is given; the checking commands (verify, cat,
	 * extract) refuse it always, unless --allow-unencrypted.
	 */
	bool checker;
	bool allow_unencrypted;
	/*
	 * --tag-exact: the tag file names exactly the state (one the host
	 * cannot write): no newer state that descends from it is taken, and
	 * a read-write mount syncs it at every commit.
	 */
	bool tag_exact;
};

#define KEY_OPTS_INIT { NULL, -1, NULL, NULL, NULL, false, false, false }
#define KEY_OPTS_CHECKER { NULL, -1, NULL, NULL, NULL, true, false, false }

/*
 * getopt_long codes of the shared key and tag options; each subcommand that
 * takes them lists KEY_LONG_OPTIONS and passes unknown codes to
 * key_opts_parse().
 */
enum {
	OPT_KEY_FILE = 0x100,
	OPT_KEY_FD,
	OPT_EXPECTED_TAG,
	OPT_TAG_FILE,
	OPT_ALLOW_UNENCRYPTED,
	OPT_TAG_EXACT,
	OPT_FIRST_FREE,
};

#define KEY_LONG_OPTIONS                                               \
	{ "key-file", required_argument, NULL, OPT_KEY_FILE },         \
	{ "key-fd", required_argument, NULL, OPT_KEY_FD },             \
	{ "expected-tag", required_argument, NULL, OPT_EXPECTED_TAG }, \
	{ "tag-file", required_argument, NULL, OPT_TAG_FILE },         \
	{ "tag-exact", no_argument, NULL, OPT_TAG_EXACT }

/* Return: 1 when @c was one of the key options, 0 if not, -1 on bad value. */
int key_opts_parse(struct key_opts *ko, int c, const char *arg);

/*
 * key_opts_option() - the default: branch of a subcommand's getopt loop:
 * take a key option, or report a bad value, a missing value or an unknown
 * option. Return: 0 when taken, else the usage exit status (printed).
 */
int key_opts_option(struct key_opts *ko, int c, const char *cmd, char **argv);

/* Report a surplus positional argument (a key is not echoed). Return: EXIT_USAGE. */
int cli_unexpected(const char *cmd, const char *arg);

/* Report getopt's ':' (missing value) or '?' (unknown). Return: EXIT_USAGE. */
int cli_bad_option(const char *cmd, int c, char **argv);

/*
 * cli_get_key() - the fspf key from --key-fd, --key-file, a positional KEY
 * (warns) or SCONE_FSPF_KEY, in that order; *key_ret = NULL when none given.
 * Return: 0, or the exit status after printing an error (1, or 2 for a
 * usage error).
 */
int cli_get_key(const struct key_opts *ko, struct fsh_key **key_ret);

/*
 * cli_get_expected_tag() - the expected tag from --expected-tag, --tag-file
 * or SCONE_FSPF_TAG, if the user gave one.
 * Return: 0 none, 1 got it in @tag, -1 error, -EXIT_USAGE usage error (both
 * printed).
 */
int cli_get_expected_tag(const struct key_opts *ko,
			 uint8_t tag[FSH_TAG_BYTES]);

/*
 * cli_open_fspf() - load and verify @path with the key from @ko, and check
 * the expected tag from @ko or SCONE_FSPF_TAG if any.
 * @have_expected_ret: whether an expected tag was checked (may be NULL).
 * Return: 0, or the exit status after printing an error (1, or 2 for a
 * usage error such as a key given two ways).
 */
int cli_open_fspf(const char *path, const struct key_opts *ko,
		  struct fspf **fspf_ret, struct fsh_key **key_ret,
		  uint8_t tag_ret[FSH_TAG_BYTES], bool *have_expected_ret);

/* Write @fspf back to @path under @key (NULL: zero key). Return: 0 or 1. */
int cli_store_fspf(struct fspf *fspf, const char *path,
		   const struct fsh_key *key, uint8_t tag_ret[FSH_TAG_BYTES]);

/* write(2) all of @p, retrying short writes. Return: 0 or -errno. */
int cli_write_all(int fd, const void *p, size_t n);

void cli_tag_hex(const uint8_t tag[FSH_TAG_BYTES],
		 char hex[FSH_TAG_HEX_BYTES + 1]);


/* Parse a decimal number within [min, max]. Return: 0 or -EINVAL. */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/*
 * run_parallel() - call @fn(@ctx, i, worker) for i in [0, @count) on
 * @threads threads (0: one per CPU). Items are claimed in order. @fn returns
 * 0, or non-zero to stop handing out further items.
 * Return: the first non-zero value any call returned, else 0.
 */
int run_parallel(size_t count, unsigned threads,
		 int (*fn)(void *ctx, size_t index, unsigned worker),
		 void *ctx);
unsigned cli_cpu_count(void);

/* Progress on a terminal (stderr) for runs longer than a second. */
struct progress;
struct progress *progress_start(const char *what, uint64_t total_items,
				uint64_t total_bytes);
void progress_add(struct progress *p, uint64_t items, uint64_t bytes);
void progress_end(struct progress *p);

/* Subcommands. */
int cmd_create(int argc, char **argv);
int cmd_addr(int argc, char **argv);
int cmd_addf(int argc, char **argv);
int cmd_encrypt(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_create_volume(int argc, char **argv);
int cmd_mount(int argc, char **argv);

/*
 * Hooks around the commit of protect_tree(): before_rename runs once every
 * output is sealed and before any is renamed into place (write the new fspf
 * to a temporary file, hand out a new key); after_rename runs once all are
 * in place and is the commit point (rename the fspf). When either fails,
 * every output is put back as it was. Each returns 0, or 1 after printing.
 */
struct protect_hooks {
	int (*before_rename)(void *arg);
	int (*after_rename)(void *arg);
	void *arg;
};

/*
 * protect_tree() - record SOURCE_DIR under @embed in @fspf and write the
 * protected form to @output (NULL: none, authenticated regions only).
 * Outputs are written to temporary names and renamed only when everything
 * succeeded; what they replace is kept until the commit and restored if it
 * fails. @skip_name, if set, is a top-level name to leave out.
 * Return: 0, or 1 after printing an error (the fspf in memory may then be
 * changed; the caller must not store it).
 */
int protect_tree(struct fspf *fspf, const char *embed, const char *source,
		 const char *output, const char *skip_name,
		 const struct protect_hooks *hooks);

/*
 * Storing the fspf around protect_tree(): begin writes the new fspf to a
 * temporary file (before_rename), commit renames it (after_rename), abort
 * removes it. The tag is the new fspf's.
 */
struct store_hook {
	struct fspf *fspf;
	const char *path;
	const struct fsh_key *key;
	struct fspf_pending *pending;
	uint8_t tag[FSH_TAG_BYTES];
};

int store_hook_begin(void *hook);  /* 0, or 1 after printing an error */
int store_hook_commit(void *hook); /* 0, or 1 after printing an error */
void store_hook_abort(struct store_hook *hook);

/*
 * A secret written to a temporary file (0600, fsynced) beside @path, and
 * renamed over @path only by secret_out_commit(): a new key replaces an old
 * key file only once the fspf sealed under it is committed.
 */
struct secret_out {
	const char *path;
	char *tmp;
};

int secret_out_write(struct secret_out *so, const char *path,
		     const char *text); /* 0 or -errno */
int secret_out_commit(struct secret_out *so); /* 0 or -errno; frees */
void secret_out_discard(struct secret_out *so);

#endif /* CLI_H */
