// SPDX-License-Identifier: Apache-2.0
/*
 * scone-fspf: protect a tree at image build time. Subcommands and printed
 * lines follow SCONE's `scone fspf`; see scone-fspf(1).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char USAGE[] =
	"Usage: scone-fspf COMMAND [ARGS...]\n"
	"\n"
	"Build-time commands (as SCONE's `scone fspf`):\n"
	"  create FSPF [VERSION] [-f]         create an empty fspf\n"
	"  addr FSPF EMBEDPOINT (-n|-a|-e) (--kernel DIR|--ephemeral)\n"
	"       [-c CHUNK_LENGTH] [-k KEY_BITS] add a region\n"
	"  addf FSPF EMBEDPOINT SOURCE_DIR [OUTPUT_DIR]\n"
	"                                     protect and record a tree\n"
	"  encrypt FSPF [--key-file FILE]     seal the fspf under a fresh key\n"
	"  show [-t|--tag] [--json] FSPF [KEY] print the tag, regions and files\n"
	"  create-volume (-e|-a) VOLUME_PATH [OUTPUT_PATH] [-c] [-k] [-f]\n"
	"       [--envar-output] [--key-file FILE]\n"
	"                                     protect a directory as a volume\n"
	"Checking:\n"
	"  verify FSPF [--root DIR]           check every chunk of every file\n"
	"  cat FSPF PATH [--root DIR]         print one file's verified plaintext\n"
	"  extract FSPF [PATH] -o DIR [--root DIR]\n"
	"                                     write a subtree's verified plaintext\n"
	"Mounting (FUSE):\n"
	"  mount FSPF MOUNTPOINT [--root DIR] [--rw] [-f] [-o FUSE_OPTIONS]\n"
	"       [--no-rollback-protection]    show the verified tree at MOUNTPOINT\n"
	"                                     (--rw: read-write, --tag-file FILE\n"
	"                                     receives each new tag)\n"
	"\n"
	"Keys come from --key-file FILE, --key-fd N or SCONE_FSPF_KEY; the\n"
	"expected tag from --expected-tag HEX, --tag-file FILE (a newer state that\n"
	"descends from its tag too, unless --tag-exact) or SCONE_FSPF_TAG.\n"
	"See scone-fspf(1).\n";

static void print_tag_line(const char *prefix, const char *fspf_path,
			   const char *middle, const uint8_t tag[FSH_TAG_BYTES])
{
	char hex[FSH_TAG_HEX_BYTES + 1];

	cli_tag_hex(tag, hex);
	printf("%s%s%s AES-GCM tag: %s\n", prefix, fspf_path, middle, hex);
}

/* The common positional check: exactly @min..@max positionals remain. */
static int positionals(int argc, char **argv, int min, int max,
		       const char *cmd)
{
	int n = argc - optind;

	if (n < min)
		return cli_usage("%s: missing argument", cmd);
	if (n > max)
		return cli_unexpected(cmd, argv[optind + max]);
	return 0;
}


/* -c BYTES and -k BITS of addr and create-volume. Return: 0 or a usage exit. */
static int parse_size_opt(int c, const char *arg, const char *cmd,
			  uint64_t *chunk, uint64_t *bits)
{
	if (c == 'c' && cli_parse_u64(arg, FSPF_MIN_CHUNK_BYTES,
				      FSPF_MAX_CHUNK_BYTES, chunk))
		return cli_usage("%s: chunk length '%s' must be a number of bytes from %u to %u",
				 cmd, arg, FSPF_MIN_CHUNK_BYTES,
				 FSPF_MAX_CHUNK_BYTES);
	if (c == 'k' && (cli_parse_u64(arg, 128, 256, bits) ||
			 (*bits != 128 && *bits != 192 && *bits != 256)))
		return cli_usage("%s: key length '%s' must be 128, 192 or 256 (bits)",
				 cmd, arg);
	return 0;
}

int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint8_t tag[FSH_TAG_BYTES];
	struct fspf *fspf = NULL;
	bool force = false;
	struct stat st;
	const char *path;
	int c, ret = 1;

	while ((c = getopt_long(argc, argv, ":fh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			force = true;
			break;
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		default:
			return cli_bad_option("create", c, argv);
		}
	}
	if ((ret = positionals(argc, argv, 1, 2, "create")))
		return ret;
	path = argv[optind];
	if (argc - optind == 2 && strcmp(argv[optind + 1], "1") != 0)
		return cli_usage("create: unsupported fspf version '%s': this fshield writes version 1",
				 argv[optind + 1]);
	if (!force && lstat(path, &st) == 0) {
		cli_error("cannot create '%s': it exists already (use --force to replace it)",
			  path);
		return 1;
	}
	if (fspf_new(&fspf)) {
		cli_error("out of memory");
		return 1;
	}
	ret = cli_store_fspf(fspf, path, NULL, tag);
	if (!ret)
		print_tag_line("Created empty file system protection file in ",
			       path, ".", tag);
	fspf_free(fspf);
	return ret;
}

int cmd_addr(int argc, char **argv)
{
	enum { OPT_KERNEL = OPT_FIRST_FREE, OPT_EPHEMERAL };
	static const struct option opts[] = {
		{ "not-protected", no_argument, NULL, 'n' },
		{ "authenticated", no_argument, NULL, 'a' },
		{ "encrypted", no_argument, NULL, 'e' },
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "ephemeral", no_argument, NULL, OPT_EPHEMERAL },
		{ "chunk-length", required_argument, NULL, 'c' },
		{ "key-length", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		KEY_LONG_OPTIONS,
		{ 0 },
	};
	struct key_opts ko = KEY_OPTS_INIT;
	struct fspf_region r = { 0 };
	uint8_t tag[FSH_TAG_BYTES];
	struct fsh_key *key = NULL;
	struct fspf *fspf = NULL;
	int protections = 0, storages = 0, c, ret;
	uint64_t chunk = 0, bits = 0;
	const char *why, *path, *embed;
	bool set_chunk = false, set_bits = false;

	while ((c = getopt_long(argc, argv, ":naec:k:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
		case 'a':
		case 'e':
			protections++;
			r.protection = c == 'n'   ? FSPF_NOT_PROTECTED :
				       c == 'a'   ? FSPF_AUTHENTICATED :
						    FSPF_ENCRYPTED;
			break;
		case OPT_KERNEL:
			storages++;
			r.storage = FSPF_KERNEL;
			r.kernel = optarg;
			break;
		case OPT_EPHEMERAL:
			storages++;
			r.storage = FSPF_EPHEMERAL;
			r.kernel = NULL;
			break;
		case 'c':
		case 'k':
			if ((ret = parse_size_opt(c, optarg, "addr", &chunk, &bits)))
				return ret;
			set_chunk |= c == 'c';
			set_bits |= c == 'k';
			break;
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		default:
			if ((ret = key_opts_option(&ko, c, "addr", argv)))
				return ret;
		}
	}
	if ((ret = positionals(argc, argv, 2, 2, "addr")))
		return ret;
	path = argv[optind];
	embed = argv[optind + 1];
	if (protections != 1)
		return cli_usage("addr: give exactly one of --not-protected, --authenticated, --encrypted");
	if (storages != 1)
		return cli_usage("addr: give exactly one of --kernel DIR, --ephemeral");
	if (r.protection == FSPF_NOT_PROTECTED && (set_chunk || set_bits))
		return cli_usage("addr: --chunk-length and --key-length apply to protected regions only");
	if (r.protection != FSPF_NOT_PROTECTED) {
		r.chunk_size = set_chunk ? (uint32_t)chunk : FSPF_DEFAULT_CHUNK_BYTES;
		r.key_size = set_bits ? (uint32_t)bits / 8 : FSPF_DEFAULT_FILE_KEY_BYTES;
	}
	r.path = (char *)embed;
	if ((ret = cli_open_fspf(path, &ko, &fspf, &key, tag, NULL)))
		return ret;
	ret = fspf_region_add(fspf, &r, &why);
	if (ret) {
		cli_error("cannot add region '%s' to '%s': %s", embed, path,
			  why ? why : strerror(-ret));
		ret = 1;
		goto out;
	}
	ret = cli_store_fspf(fspf, path, key, tag);
	if (!ret) {
		char hex[FSH_TAG_HEX_BYTES + 1];

		cli_tag_hex(tag, hex);
		printf("Added region %s to file system protection file %s new AES-GCM tag: %s\n",
		       embed, path, hex);
	}
out:
	fspf_free(fspf);
	fsh_key_free(key);
	return ret;
}

int cmd_addf(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		KEY_LONG_OPTIONS,
		{ 0 },
	};
	struct key_opts ko = KEY_OPTS_INIT;
	uint8_t tag[FSH_TAG_BYTES];
	struct fsh_key *key = NULL;
	struct fspf *fspf = NULL;
	const char *path;
	int c, ret;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(USAGE, stdout);
			return 0;
		}
		if ((ret = key_opts_option(&ko, c, "addf", argv)))
			return ret;
	}
	if ((ret = positionals(argc, argv, 3, 4, "addf")))
		return ret;
	path = argv[optind];
	if ((ret = cli_open_fspf(path, &ko, &fspf, &key, tag, NULL)))
		return ret;
	{
		struct store_hook hook = { fspf, path, key, NULL, { 0 } };
		struct protect_hooks hooks = { store_hook_begin,
					       store_hook_commit, &hook };

		ret = protect_tree(fspf, argv[optind + 1], argv[optind + 2],
				   argc - optind == 4 ? argv[optind + 3] : NULL,
				   NULL, &hooks);
		store_hook_abort(&hook); /* nothing left if it committed */
		if (!ret)
			print_tag_line("Added files to file system protection file ",
				       path, " new", hook.tag);
	}
	fspf_free(fspf);
	fsh_key_free(key);
	return ret;
}

/*
 * Hand out a new key: write --key-file to a temporary file, then print the
 * encrypt line (or the volume's export lines). Both happen before the fspf
 * sealed under that key is committed, so a key that cannot be handed out is
 * never the only way into the tree; the key file replaces an older one
 * (perhaps the current key) only after the commit, by secret_out_commit(). The line is formatted in locked memory and written without
 * stdio buffering. Return: 0, or 1 after printing an error (and removing a
 * key file it wrote).
 */
static int report_new_key(const char *line_prefix, const char *path,
			  const uint8_t tag[FSH_TAG_BYTES],
			  const struct fsh_key *key, const char *key_file,
			  bool envar, struct secret_out *so)
{
	enum { LINE_BYTES = 8192 };
	char tag_hex[FSH_TAG_HEX_BYTES + 1];
	char *key_hex = fsh_secure_alloc(FSH_FSPF_KEY_HEX_BYTES + 2);
	char *line = fsh_secure_alloc(LINE_BYTES);
	int n, err, ret = 1;

	if (!key_hex || !line) {
		cli_error("out of memory");
		goto out;
	}
	cli_tag_hex(tag, tag_hex);
	fsh_hex_encode(fsh_key_bytes(key), fsh_key_size(key), key_hex);
	if (envar)
		n = snprintf(line, LINE_BYTES,
			     "export VOLUME_KEY=%s\nexport VOLUME_TAG=%s\n",
			     key_hex, tag_hex);
	else
		n = snprintf(line, LINE_BYTES, "%s%s AES-GCM tag: %s key: %s\n",
			     line_prefix, path, tag_hex, key_hex);
	if (n < 0 || n >= LINE_BYTES) {
		cli_error("path too long: '%s'", path);
		goto out;
	}
	so->tmp = NULL;
	if (key_file) {
		strcat(key_hex, "\n");
		err = secret_out_write(so, key_file, key_hex);
		if (err) {
			cli_error("cannot write key file '%s': %s; nothing was changed",
				  key_file, strerror(-err));
			goto out;
		}
	}
	fflush(stdout);
	err = cli_write_all(STDOUT_FILENO, line, (size_t)n);
	if (err) {
		cli_error("cannot print the new key to standard output: %s; nothing was changed",
			  strerror(-err));
		secret_out_discard(so);
		goto out;
	}
	ret = 0;
out:
	fsh_secure_free(line);
	fsh_secure_free(key_hex);
	return ret;
}

/* create-volume's hooks: write the fspf and hand out its key before any
 * output replaces a plaintext file; commit the fspf once all are in place. */
struct volume_hook {
	struct store_hook store;
	struct secret_out key_out;
	const char *output;
	const char *key_file;
	bool envar;
};

static int volume_hook_begin(void *arg)
{
	struct volume_hook *h = arg;

	if (store_hook_begin(&h->store))
		return 1;
	if (report_new_key("Created volume in ", h->output, h->store.tag,
			   h->store.key, h->key_file, h->envar, &h->key_out)) {
		store_hook_abort(&h->store);
		return 1;
	}
	return 0;
}

static int volume_hook_commit(void *arg)
{
	struct volume_hook *h = arg;

	return store_hook_commit(&h->store);
}

/* After the fspf sealed under a new key is committed: its key file. */
static int commit_key_file(struct secret_out *so)
{
	int err = secret_out_commit(so);

	if (err) {
		cli_error("cannot rename the new key file '%s' to '%s': %s; the new key is in '%s' and was printed above",
			  so->tmp, so->path, strerror(-err), so->tmp);
		return 1;
	}
	return 0;
}

int cmd_encrypt(int argc, char **argv)
{
	enum { OPT_CURRENT_KEY_FILE = OPT_FIRST_FREE };
	static const struct option opts[] = {
		{ "key-file", required_argument, NULL, OPT_KEY_FILE },
		{ "current-key-file", required_argument, NULL,
		  OPT_CURRENT_KEY_FILE },
		{ "key-fd", required_argument, NULL, OPT_KEY_FD },
		{ "expected-tag", required_argument, NULL, OPT_EXPECTED_TAG },
		{ "tag-file", required_argument, NULL, OPT_TAG_FILE },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct key_opts ko = KEY_OPTS_INIT;
	const char *out_key_file = NULL, *path;
	uint8_t tag[FSH_TAG_BYTES];
	struct fsh_key *key = NULL, *fresh = NULL;
	struct fspf *fspf = NULL;
	int c, ret;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		case OPT_KEY_FILE:
			out_key_file = optarg;
			break;
		case OPT_CURRENT_KEY_FILE:
			ko.key_file = optarg;
			break;
		default:
			if ((ret = key_opts_option(&ko, c, "encrypt", argv)))
				return ret;
		}
	}
	if ((ret = positionals(argc, argv, 1, 1, "encrypt")))
		return ret;
	path = argv[optind];
	if ((ret = cli_open_fspf(path, &ko, &fspf, &key, tag, NULL)))
		return ret;
	ret = 1;
	if (fsh_key_generate(FSH_FSPF_KEY_BYTES, &fresh)) {
		cli_error("out of memory");
		goto out;
	}
	{
		struct store_hook hook = { fspf, path, fresh, NULL, { 0 } };
		struct secret_out so = { 0 };

		if (store_hook_begin(&hook))
			goto out;
		if (report_new_key("Encrypted file system protection file ",
				   path, hook.tag, fresh, out_key_file, false,
				   &so)) {
			store_hook_abort(&hook);
			goto out;
		}
		if (store_hook_commit(&hook)) {
			secret_out_discard(&so);
			cli_error("the key printed above was not put to use: '%s' is unchanged",
				  path);
			goto out;
		}
		ret = commit_key_file(&so);
	}
out:
	fspf_free(fspf);
	fsh_key_free(key);
	fsh_key_free(fresh);
	return ret;
}

static const char *protection_name(uint8_t p)
{
	return p == FSPF_ENCRYPTED     ? "encrypted" :
	       p == FSPF_AUTHENTICATED ? "authenticated" :
					 "not-protected";
}

static const char *type_name(uint8_t t)
{
	return t == FSPF_FILE ? "file" : t == FSPF_DIR ? "dir" : "symlink";
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void show_json(const struct fspf *f, const char *path,
		      const uint8_t tag[FSH_TAG_BYTES])
{
	char hex[FSH_TAG_HEX_BYTES + 1];
	const uint8_t *lineage;

	cli_tag_hex(tag, hex);
	printf("{\"fspf\":");
	json_string(path);
	/* the version it was read in: 1.1 only with a lineage */
	printf(",\"version\":\"%d.%d\",\"encrypted\":%s,\"tag\":\"%s\",\"regions\":[",
	       FSPF_VERSION_MAJOR, fspf_lineage(f, &lineage) ? 1 : 0,
	       fspf_is_encrypted(f) ? "true" : "false", hex);
	for (size_t i = 0; i < fspf_region_count(f); i++) {
		const struct fspf_region *r = fspf_region(f, i);

		printf("%s{\"path\":", i ? "," : "");
		json_string(r->path);
		printf(",\"protection\":\"%s\",\"storage\":\"%s\"",
		       protection_name(r->protection),
		       r->storage == FSPF_KERNEL ? "kernel" : "ephemeral");
		if (r->kernel) {
			printf(",\"kernel\":");
			json_string(r->kernel);
		}
		if (r->protection != FSPF_NOT_PROTECTED)
			printf(",\"chunk_length\":%u,\"key_bits\":%u",
			       r->chunk_size, r->key_size * 8);
		putchar('}');
	}
	printf("],\"entries\":[");
	for (size_t i = 0; i < fspf_entry_count(f); i++) {
		const struct fspf_entry *e = fspf_entry(f, i);

		printf("%s{\"path\":", i ? "," : "");
		json_string(e->path);
		printf(",\"type\":\"%s\",\"mode\":\"%04o\",\"uid\":%u,\"gid\":%u,\"size\":%llu,\"chunks\":%llu,\"mtime_ns\":%lld",
		       type_name(e->type), e->mode, e->uid, e->gid,
		       (unsigned long long)e->size,
		       (unsigned long long)e->chunk_count,
		       (long long)e->mtime_ns);
		if (e->target) {
			printf(",\"target\":");
			json_string(e->target);
		}
		putchar('}');
	}
	printf("]}\n");
}

static void show_text(const struct fspf *f, const char *path,
		      const uint8_t tag[FSH_TAG_BYTES])
{
	char hex[FSH_TAG_HEX_BYTES + 1];
	uint64_t files = 0, bytes = 0, chunks = 0;

	cli_tag_hex(tag, hex);
	printf("file system protection file %s\n", path);
	printf("format:  %d.%d\n", FSPF_VERSION_MAJOR, FSPF_VERSION_MINOR);
	printf("sealed:  %s\n",
	       fspf_is_encrypted(f)
		       ? "encrypted (AES-256-GCM)"
		       : "not encrypted (all-zero key; the tag is a checksum: run 'scone-fspf encrypt')");
	printf("tag:     %s\n", hex);
	printf("regions: %zu\n", fspf_region_count(f));
	for (size_t i = 0; i < fspf_region_count(f); i++) {
		const struct fspf_region *r = fspf_region(f, i);

		printf("  %-20s %-13s %s%s", r->path,
		       protection_name(r->protection),
		       r->storage == FSPF_KERNEL ? "kernel " : "ephemeral",
		       r->kernel ? r->kernel : "");
		if (r->protection != FSPF_NOT_PROTECTED)
			printf("  chunk %u  key %u bits", r->chunk_size,
			       r->key_size * 8);
		putchar('\n');
	}
	printf("entries: %zu\n", fspf_entry_count(f));
	if (fspf_entry_count(f))
		printf("  t mode   uid:gid           size   chunks  path\n");
	for (size_t i = 0; i < fspf_entry_count(f); i++) {
		const struct fspf_entry *e = fspf_entry(f, i);

		printf("  %c %04o %5u:%-5u %12llu %8llu  %s%s%s\n",
		       e->type == FSPF_FILE ? 'f' : e->type == FSPF_DIR ? 'd' : 'l',
		       e->mode, e->uid, e->gid, (unsigned long long)e->size,
		       (unsigned long long)e->chunk_count, e->path,
		       e->target ? " -> " : "", e->target ? e->target : "");
		if (e->type == FSPF_FILE) {
			files++;
			bytes += e->size;
			chunks += e->chunk_count;
		}
	}
	printf("total:   %llu files, %llu bytes, %llu chunks\n",
	       (unsigned long long)files, (unsigned long long)bytes,
	       (unsigned long long)chunks);
}

int cmd_show(int argc, char **argv)
{
	enum { OPT_JSON = OPT_FIRST_FREE };
	static const struct option opts[] = {
		{ "tag", no_argument, NULL, 't' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		KEY_LONG_OPTIONS,
		{ 0 },
	};
	struct key_opts ko = KEY_OPTS_INIT;
	uint8_t tag[FSH_TAG_BYTES];
	struct fsh_key *key = NULL;
	struct fspf *fspf = NULL;
	bool tag_only = false, json = false;
	const char *path;
	int c, ret;

	while ((c = getopt_long(argc, argv, ":th", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			tag_only = true;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		default:
			if ((ret = key_opts_option(&ko, c, "show", argv)))
				return ret;
		}
	}
	if ((ret = positionals(argc, argv, 1, 2, "show")))
		return ret;
	path = argv[optind];
	if (argc - optind == 2) {
		ko.key_arg = argv[optind + 1];
	}
	if (tag_only && !ko.key_file && ko.key_fd < 0 && !ko.key_arg &&
	    !ko.tag_hex && !ko.tag_file) {
		/*
		 * The tag needs no key: check the header and print the trailer.
		 * Only the root tag's owner can tell whether it is intact.
		 */
		struct fspf_info info;
		uint8_t *buf = NULL;
		FILE *fp = fopen(path, "rb");
		long size;
		int err;

		if (!fp) {
			cli_error("cannot open '%s': %s", path, strerror(errno));
			return 1;
		}
		if (fseek(fp, 0, SEEK_END) || (size = ftell(fp)) < 0 ||
		    fseek(fp, 0, SEEK_SET) || !(buf = malloc(size ? size : 1)) ||
		    fread(buf, 1, size, fp) != (size_t)size) {
			cli_error("cannot read '%s': %s", path, strerror(errno ? errno : EIO));
			free(buf);
			fclose(fp);
			return 1;
		}
		fclose(fp);
		err = fspf_peek(buf, (size_t)size, &info);
		free(buf);
		if (err) {
			cli_error("cannot read '%s': %s", path, fspf_strerror(err));
			return 1;
		}
		{
			char hex[FSH_TAG_HEX_BYTES + 1];

			cli_tag_hex(info.tag, hex);
			printf("%s\n", hex);
		}
		return 0;
	}
	ret = cli_open_fspf(path, &ko, &fspf, &key, tag, NULL);
	if (ko.key_arg) /* shorten its life in /proc/PID/cmdline */
		fsh_wipe(argv[optind + 1], strlen(argv[optind + 1]));
	if (ret)
		return ret;
	if (tag_only) {
		/* With a key or an expected tag: a verified tag. */
		char hex[FSH_TAG_HEX_BYTES + 1];

		cli_tag_hex(tag, hex);
		printf("%s\n", hex);
	} else if (json) {
		show_json(fspf, path, tag);
	} else {
		show_text(fspf, path, tag);
	}
	fspf_free(fspf);
	fsh_key_free(key);
	return 0;
}

int cmd_create_volume(int argc, char **argv)
{
	enum { OPT_ENVAR = OPT_FIRST_FREE };
	static const struct option opts[] = {
		{ "encrypted", no_argument, NULL, 'e' },
		{ "authenticated", no_argument, NULL, 'a' },
		{ "chunk-length", required_argument, NULL, 'c' },
		{ "key-length", required_argument, NULL, 'k' },
		{ "version", required_argument, NULL, 'v' },
		{ "force", no_argument, NULL, 'f' },
		{ "envar-output", no_argument, NULL, OPT_ENVAR },
		{ "key-file", required_argument, NULL, OPT_KEY_FILE },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct fspf_region r = { .path = "/", .kernel = ".",
				 .storage = FSPF_KERNEL };
	const char *source, *output, *key_file = NULL, *why;
	uint64_t chunk = FSPF_DEFAULT_CHUNK_BYTES, bits = 256;
	struct fsh_key *key = NULL;
	struct fspf *fspf = NULL;
	bool force = false, envar = false;
	int protections = 0, c, ret;
	char *fspf_path = NULL;
	struct stat st;

	while ((c = getopt_long(argc, argv, ":eac:k:v:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
		case 'a':
			protections++;
			r.protection = c == 'e' ? FSPF_ENCRYPTED : FSPF_AUTHENTICATED;
			break;
		case 'c':
		case 'k':
			if ((ret = parse_size_opt(c, optarg, "create-volume",
						  &chunk, &bits)))
				return ret;
			break;
		case 'v':
			if (strcmp(optarg, "1") != 0)
				return cli_usage("create-volume: unsupported fspf version '%s': this fshield writes version 1",
						 optarg);
			break;
		case 'f':
			force = true;
			break;
		case OPT_ENVAR:
			envar = true;
			break;
		case OPT_KEY_FILE:
			key_file = optarg;
			break;
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		default:
			return cli_bad_option("create-volume", c, argv);
		}
	}
	if ((ret = positionals(argc, argv, 1, 2, "create-volume")))
		return ret;
	if (protections != 1)
		return cli_usage("create-volume: give exactly one of --encrypted, --authenticated");
	source = argv[optind];
	output = argc - optind == 2 ? argv[optind + 1] : source;
	r.chunk_size = (uint32_t)chunk;
	r.key_size = (uint32_t)bits / 8;
	if (asprintf(&fspf_path, "%s/volume.fspf", output) < 0) {
		cli_error("out of memory");
		return 1;
	}
	ret = 1;
	if (lstat(fspf_path, &st) == 0) {
		struct stat a, b;

		/*
		 * In place, the files of an existing volume are ciphertext:
		 * protecting them again would lose the plaintext for good.
		 */
		if (stat(source, &a) == 0 && stat(output, &b) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
			cli_error("cannot create volume '%s': it is a volume already ('%s' exists); extract it first, or protect a plain copy into another OUTPUT_PATH",
				  output, fspf_path);
			goto out;
		}
		if (!force) {
			cli_error("cannot create volume '%s': '%s' exists already (use --force to replace it)",
				  output, fspf_path);
			goto out;
		}
	}
	if (fspf_new(&fspf) || fsh_key_generate(FSH_FSPF_KEY_BYTES, &key)) {
		cli_error("out of memory");
		goto out;
	}
	if (fspf_region_add(fspf, &r, &why)) {
		cli_error("cannot create volume '%s': %s", output, why);
		goto out;
	}
	{
		struct volume_hook hook = { { fspf, fspf_path, key, NULL, { 0 } },
					    { 0 }, output, key_file, envar };
		struct protect_hooks hooks = { volume_hook_begin,
					       volume_hook_commit, &hook };

		ret = protect_tree(fspf, "/", source, output, "volume.fspf",
				   &hooks);
		store_hook_abort(&hook.store);
		if (ret)
			secret_out_discard(&hook.key_out);
		else
			ret = commit_key_file(&hook.key_out);
	}
out:
	free(fspf_path);
	fspf_free(fspf);
	fsh_key_free(key);
	return ret;
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} COMMANDS[] = {
	{ "create", cmd_create },
	{ "addr", cmd_addr },
	{ "addf", cmd_addf },
	{ "encrypt", cmd_encrypt },
	{ "show", cmd_show },
	{ "verify", cmd_verify },
	{ "cat", cmd_cat },
	{ "extract", cmd_extract },
	{ "create-volume", cmd_create_volume },
	{ "mount", cmd_mount },
};

int main(int argc, char **argv)
{
	struct rlimit no_core = { 0, 0 };

	/* Keys pass through this process: no core dumps. */
	setrlimit(RLIMIT_CORE, &no_core);
	if (fsh_crypto_init()) {
		cli_error("cannot initialise the crypto libraries");
		return 1;
	}
	if (argc < 2)
		return cli_usage("missing command");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		fputs(USAGE, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("scone-fspf (fshield) %s, fspf format %d.%d\n",
		       FSHIELD_VERSION, FSPF_VERSION_MAJOR, FSPF_VERSION_MINOR);
		return 0;
	}
	for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++) {
		if (!strcmp(argv[1], COMMANDS[i].name)) {
			int ret;

			opterr = 0;
			optind = 1;
			ret = COMMANDS[i].fn(argc - 1, argv + 1);
			/* A tag or listing that did not reach stdout is a failure. */
			if (fflush(stdout) != 0 || ferror(stdout)) {
				cli_error("cannot write to standard output: %s",
					  strerror(errno ? errno : EIO));
				return ret ? ret : 1;
			}
			return ret;
		}
	}
	return cli_usage("unknown command '%s'", argv[1]);
}
