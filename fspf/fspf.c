// SPDX-License-Identifier: Apache-2.0
/*
 * The fspf model and its sealed encoding (see fspf(5)).
 *
 * Paths are ordered with '/' ranking below every other byte, so that a
 * directory's subtree is one contiguous run of the sorted entry table.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fspf.h"
#include "fspf_i.h"

static const uint8_t FSPF_MAGIC[FSPF_MAGIC_BYTES] = { 'F', 'S', 'H', 'F',
						      'S', 'P', 'F', 0 };

#define KEY_SLOT_BYTES FSH_KEY_MAX_BYTES
#define DOMAIN_ENCRYPTED 1u
#define DOMAIN_AUTHENTICATED 2u

struct fspf {
	bool encrypted;
	struct fspf_region *regions;
	size_t region_count;
	struct fspf_entry *entries;
	size_t entry_count;
	/* Per-file keys: fixed slots in one secret allocation. */
	uint8_t *keys;
	uint32_t key_cap;
	uint32_t key_used; /* slots ever handed out, [0, key_used) */
	uint32_t *free_slots;
	uint32_t free_count;
	uint32_t free_cap;
	/* Tags of the states this one was committed over, newest first. */
	uint8_t lineage[FSPF_LINEAGE_MAX][FSH_TAG_BYTES];
	uint32_t lineage_count;
};

const char *fspf_strerror(int err)
{
	switch (err) {
	case -EMEDIUMTYPE:
		return "not an fspf file (bad magic)";
	case -EPROTONOSUPPORT:
		return "unsupported fspf format version";
	case -EUCLEAN:
		return "malformed fspf (corrupt or tampered)";
	case -EKEYREJECTED:
		return "wrong key for this fspf";
	case -ENOKEY:
		return "the fspf is encrypted and no key was given";
	case -EBADMSG:
		return "the fspf failed verification (tampered or corrupt)";
	default:
		return strerror(-err);
	}
}

/* ---- paths ---- */

static int path_byte(int c)
{
	return c == '/' ? 0 : c + 1;
}

static int path_cmp(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a;
	const unsigned char *y = (const unsigned char *)b;

	for (;; x++, y++) {
		if (*x != *y || !*x) {
			if (!*x || !*y)
				return (int)*x - (int)*y;
			return path_byte(*x) - path_byte(*y);
		}
	}
}

bool fspf_path_valid(const char *path, size_t len)
{
	size_t i, start;

	if (len == 0 || len >= FSPF_PATH_MAX_BYTES || path[0] != '/')
		return false;
	if (len == 1)
		return true;
	if (path[len - 1] == '/')
		return false;
	for (start = 1, i = 1; i <= len; i++) {
		if (i < len && path[i] == '\0')
			return false;
		if (i == len || path[i] == '/') {
			size_t n = i - start;

			if (n == 0 || (n == 1 && path[start] == '.') ||
			    (n == 2 && path[start] == '.' &&
			     path[start + 1] == '.'))
				return false;
			start = i + 1;
		}
	}
	return true;
}

/*
 * The one component walker: drop empty components, refuse "..", and refuse
 * "." (@drop_dot false) or drop it (true). An absolute result starts with
 * '/' and is "/" when empty; a relative one is "." when empty.
 */
static int normalize(const char *in, char *out, bool absolute, bool drop_dot)
{
	size_t o = 0;
	const char *p = in;

	while (*p) {
		const char *c;
		size_t n;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		c = p;
		while (*p && *p != '/')
			p++;
		n = (size_t)(p - c);
		if (n == 1 && c[0] == '.') {
			if (drop_dot)
				continue;
			return -EINVAL;
		}
		if (n == 2 && c[0] == '.' && c[1] == '.')
			return -EINVAL;
		if (o + 1 + n >= FSPF_PATH_MAX_BYTES)
			return -EINVAL;
		if (absolute || o)
			out[o++] = '/';
		memcpy(out + o, c, n);
		o += n;
	}
	if (o == 0)
		out[o++] = absolute ? '/' : '.';
	out[o] = '\0';
	return 0;
}

int fspf_path_normalize(const char *path, char *out)
{
	if (!path || path[0] != '/')
		return -EINVAL;
	return normalize(path, out, true, false);
}

/*
 * A kernel directory in normal form: an absolute one as fspf_path_normalize();
 * a relative one (a volume's ".") without empty or "." components, "." when
 * nothing is left. ".." is refused in both.
 */
static int kernel_normalize(const char *in, char *out)
{
	if (!in || !*in || strlen(in) >= FSPF_PATH_MAX_BYTES)
		return -EINVAL;
	if (in[0] == '/')
		return fspf_path_normalize(in, out);
	return normalize(in, out, false, true);
}

static bool kernel_valid(const char *k)
{
	char norm[FSPF_PATH_MAX_BYTES];

	return kernel_normalize(k, norm) == 0 && strcmp(norm, k) == 0;
}

bool fspf_path_contains(const char *prefix, const char *path)
{
	size_t n = strlen(prefix);

	if (n == 1 && prefix[0] == '/')
		return path[0] == '/';
	return strncmp(prefix, path, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/');
}

/* ---- model ---- */

int fspf_new(struct fspf **fspf_ret)
{
	struct fspf *f;

	if (fsh_crypto_init() < 0)
		return -EIO;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	*fspf_ret = f;
	return 0;
}

static void entry_clear(struct fspf_entry *e)
{
	free(e->path);
	free(e->target);
	free(e->chunks);
	memset(e, 0, sizeof(*e));
}

static void region_clear(struct fspf_region *r)
{
	free(r->path);
	free(r->kernel);
	memset(r, 0, sizeof(*r));
}

void fspf_free(struct fspf *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->region_count; i++)
		region_clear(&f->regions[i]);
	for (size_t i = 0; i < f->entry_count; i++)
		entry_clear(&f->entries[i]);
	free(f->regions);
	free(f->entries);
	fsh_secure_free(f->keys);
	free(f->free_slots);
	free(f);
}

bool fspf_is_encrypted(const struct fspf *f)
{
	return f->encrypted;
}

size_t fspf_region_count(const struct fspf *f)
{
	return f->region_count;
}

const struct fspf_region *fspf_region(const struct fspf *f, size_t index)
{
	return index < f->region_count ? &f->regions[index] : NULL;
}

size_t fspf_entry_count(const struct fspf *f)
{
	return f->entry_count;
}

struct fspf_entry *fspf_entry(const struct fspf *f, size_t index)
{
	return index < f->entry_count ? &f->entries[index] : NULL;
}

uint64_t fspf_chunk_count(uint64_t size, uint32_t chunk_size)
{
	if (!chunk_size)
		return 0;
	return size / chunk_size + (size % chunk_size != 0);
}

/* ---- key table ---- */

static int keys_reserve(struct fspf *f, size_t extra)
{
	size_t need, cap;
	uint8_t *keys;

	if (extra <= f->free_count)
		return 0;
	need = (size_t)f->key_used + (extra - f->free_count);
	if (need > UINT32_MAX)
		return -ENOMEM;
	if (need <= f->key_cap)
		return 0;
	cap = f->key_cap ? 2 * (size_t)f->key_cap : 64;
	if (cap < need)
		cap = need;
	if (cap > UINT32_MAX)
		cap = UINT32_MAX;
	keys = fsh_secure_alloc(cap * KEY_SLOT_BYTES);
	if (!keys)
		return -ENOMEM;
	if (f->keys)
		memcpy(keys, f->keys, (size_t)f->key_used * KEY_SLOT_BYTES);
	fsh_secure_free(f->keys);
	f->keys = keys;
	f->key_cap = (uint32_t)cap;
	return 0;
}

/* Only after keys_reserve() succeeded for this slot. */
static uint32_t key_slot_take(struct fspf *f)
{
	if (f->free_count)
		return f->free_slots[--f->free_count];
	return f->key_used++;
}

static void key_slot_release(struct fspf *f, uint32_t slot)
{
	uint32_t *fs;

	fsh_wipe(f->keys + (size_t)slot * KEY_SLOT_BYTES, KEY_SLOT_BYTES);
	if (f->free_count == f->free_cap) {
		uint32_t cap = f->free_cap ? 2 * f->free_cap : 64;

		/* Best effort: a slot we cannot remember stays unused. */
		fs = realloc(f->free_slots, (size_t)cap * sizeof(*fs));
		if (!fs)
			return;
		f->free_slots = fs;
		f->free_cap = cap;
	}
	f->free_slots[f->free_count++] = slot;
}

const uint8_t *fspf_entry_key(const struct fspf *f,
			      const struct fspf_entry *e)
{
	return f->keys + (size_t)e->key_slot * KEY_SLOT_BYTES;
}

/* ---- regions ---- */

int fspf_region_lookup(const struct fspf *f, const char *path,
		       size_t *index_ret)
{
	size_t best = SIZE_MAX, best_len = 0;

	for (size_t i = 0; i < f->region_count; i++) {
		size_t n = strlen(f->regions[i].path);

		if ((best == SIZE_MAX || n > best_len) &&
		    fspf_path_contains(f->regions[i].path, path)) {
			best = i;
			best_len = n;
		}
	}
	if (best == SIZE_MAX)
		return -ENOENT;
	*index_ret = best;
	return 0;
}

const struct fspf_region *fspf_entry_region(const struct fspf *f,
					    const struct fspf_entry *e)
{
	size_t i;

	if (fspf_region_lookup(f, e->path, &i))
		return NULL;
	return &f->regions[i];
}

static bool region_params_ok(const struct fspf_region *r)
{
	if (r->protection > FSPF_ENCRYPTED || r->storage > FSPF_EPHEMERAL)
		return false;
	if ((r->storage == FSPF_KERNEL) != (r->kernel != NULL))
		return false;
	if (r->protection == FSPF_NOT_PROTECTED)
		return r->key_size == 0 && r->chunk_size == 0;
	return (r->key_size == 16 || r->key_size == 24 || r->key_size == 32) &&
	       r->chunk_size >= FSPF_MIN_CHUNK_BYTES &&
	       r->chunk_size <= FSPF_MAX_CHUNK_BYTES;
}

/* "a/b" relative to "a" -> "/b"; NULL when @path is not below @prefix. */
static const char *path_below(const char *prefix, const char *path)
{
	size_t n = strlen(prefix);

	if (strncmp(prefix, path, n) != 0)
		return NULL;
	if (path[n] == '\0')
		return "";
	if (path[n] == '/')
		return path + n;
	if (n && prefix[n - 1] == '/')
		return path + n - 1;
	return NULL;
}

/*
 * Two kernel regions whose host directories nest must map the same host
 * files to the same paths: kernel(B) = kernel(A) + X implies path(B) =
 * path(A) + X. Otherwise one host file would have two protections.
 */
static bool kernels_consistent(const struct fspf_region *a,
			       const struct fspf_region *b)
{
	const char *xa, *xb;
	char joined[2 * FSPF_PATH_MAX_BYTES];

	if (!a->kernel || !b->kernel || a->protection == FSPF_NOT_PROTECTED ||
	    b->protection == FSPF_NOT_PROTECTED)
		return true;
	xb = path_below(a->kernel, b->kernel);
	if (!xb) {
		xa = path_below(b->kernel, a->kernel);
		if (!xa)
			return true;
		return kernels_consistent(b, a);
	}
	snprintf(joined, sizeof(joined), "%s%s",
		 strcmp(a->path, "/") == 0 && *xb ? "" : a->path, xb);
	return strcmp(joined, b->path) == 0;
}

int fspf_region_add(struct fspf *f, const struct fspf_region *in,
		    const char **why_ret)
{
	char path[FSPF_PATH_MAX_BYTES], kernel[FSPF_PATH_MAX_BYTES];
	struct fspf_region r = *in, *regions;
	size_t pos, cur;
	bool has_root = false;

	*why_ret = NULL;
	if (fspf_path_normalize(in->path, path)) {
		*why_ret = "the embed point must be an absolute path without '.' or '..'";
		return -EINVAL;
	}
	r.path = path;
	if (!region_params_ok(&r)) {
		*why_ret = "invalid protection, storage, key length or chunk length";
		return -EINVAL;
	}
	if (r.kernel) {
		if (kernel_normalize(in->kernel, kernel)) {
			*why_ret = "invalid kernel directory: no '..' allowed";
			return -EINVAL;
		}
		r.kernel = kernel;
	}
	for (size_t i = 0; i < f->region_count; i++) {
		if (strcmp(f->regions[i].path, path) == 0) {
			*why_ret = "a region with this embed point exists already";
			return -EEXIST;
		}
		if (strcmp(f->regions[i].path, "/") == 0)
			has_root = true;
		if (!kernels_consistent(&f->regions[i], &r)) {
			*why_ret = "its kernel directory overlaps another region's kernel directory";
			return -EINVAL;
		}
	}
	if (f->region_count >= 1 && !has_root && strcmp(path, "/") != 0) {
		*why_ret = "with more than one region, '/' must be a region: add '/' first";
		return -EINVAL;
	}
	if (f->region_count >= FSPF_MAX_REGIONS) {
		*why_ret = "too many regions";
		return -EINVAL;
	}
	{
		char up[FSPF_PATH_MAX_BYTES];

		snprintf(up, sizeof(up), "%s", path);
		for (char *slash = strrchr(up, '/'); slash && slash != up;
		     slash = strrchr(up, '/')) {
			const struct fspf_entry *e;

			*slash = '\0';
			e = fspf_entry_find(f, up);
			if (e && e->type != FSPF_DIR) {
				*why_ret = "a recorded file or symlink stands above its embed point";
				return -EINVAL;
			}
		}
	}
	/* Recorded entries must keep their region. */
	if (fspf_region_lookup(f, path, &cur) == 0) {
		size_t first, end;

		fspf_entry_range(f, path, &first, &end);
		for (size_t i = first; i < end; i++) {
			size_t er;

			if (fspf_region_lookup(f, f->entries[i].path, &er) ==
				    0 &&
			    er == cur) {
				*why_ret = "files recorded in an existing region lie below it";
				return -EINVAL;
			}
		}
	}
	regions = realloc(f->regions, (f->region_count + 1) * sizeof(*regions));
	if (!regions)
		return -ENOMEM;
	f->regions = regions;
	r.path = strdup(path);
	r.kernel = in->kernel ? strdup(kernel) : NULL;
	if (!r.path || (in->kernel && !r.kernel)) {
		region_clear(&r);
		return -ENOMEM;
	}
	for (pos = 0; pos < f->region_count; pos++)
		if (path_cmp(path, f->regions[pos].path) < 0)
			break;
	memmove(&f->regions[pos + 1], &f->regions[pos],
		(f->region_count - pos) * sizeof(*regions));
	f->regions[pos] = r;
	f->region_count++;
	return 0;
}

/* ---- entries ---- */

static size_t lower_bound(const struct fspf_entry *v, size_t n,
			  const char *path)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (path_cmp(v[mid].path, path) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct fspf_entry *fspf_entry_find(const struct fspf *f, const char *path)
{
	size_t i = lower_bound(f->entries, f->entry_count, path);

	if (i < f->entry_count && strcmp(f->entries[i].path, path) == 0)
		return &f->entries[i];
	return NULL;
}

void fspf_entry_range(const struct fspf *f, const char *dir, size_t *first,
		      size_t *end)
{
	size_t lo, hi;

	*first = lower_bound(f->entries, f->entry_count, dir);
	lo = *first;
	hi = f->entry_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (fspf_path_contains(dir, f->entries[mid].path))
			lo = mid + 1;
		else
			hi = mid;
	}
	*end = lo;
}

/* Every entry sits in a protected kernel region, below a recorded directory. */
static int check_tree(const struct fspf *f, const struct fspf_entry *v,
		      size_t n, const char **why_ret, const char **path_ret)
{
	char parent[FSPF_PATH_MAX_BYTES];

	for (size_t i = 0; i < n; i++) {
		const struct fspf_region *r;
		const char *why = NULL;
		size_t ri, pi;
		char *slash;

		if (fspf_region_lookup(f, v[i].path, &ri)) {
			why = "no region contains it";
			goto bad;
		}
		r = &f->regions[ri];
		if (r->protection == FSPF_NOT_PROTECTED ||
		    r->storage != FSPF_KERNEL) {
			why = "its region is not a protected kernel region";
			goto bad;
		}
		if (strcmp(v[i].path, r->path) == 0) {
			if (v[i].type != FSPF_DIR) {
				why = "the embed point of a region must be a directory";
				goto bad;
			}
			continue;
		}
		snprintf(parent, sizeof(parent), "%s", v[i].path);
		slash = strrchr(parent, '/');
		if (slash == parent)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (strcmp(parent, r->path) == 0)
			continue;
		pi = lower_bound(v, n, parent);
		if (pi < n && strcmp(v[pi].path, parent) == 0 &&
		    v[pi].type == FSPF_DIR)
			continue;
		why = "its parent directory is not recorded";
bad:
		*why_ret = why;
		*path_ret = v[i].path;
		return -EINVAL;
	}
	/*
	 * Nothing but a directory may stand above an embed point: a symlink
	 * there would lead every path of the region somewhere else.
	 */
	for (size_t ri = 0; ri < f->region_count; ri++) {
		const char *rp = f->regions[ri].path;

		snprintf(parent, sizeof(parent), "%s", rp);
		for (char *slash = strrchr(parent, '/'); slash && slash != parent;
		     slash = strrchr(parent, '/')) {
			size_t pi;

			*slash = '\0';
			pi = lower_bound(v, n, parent);
			if (pi < n && strcmp(v[pi].path, parent) == 0 &&
			    v[pi].type != FSPF_DIR) {
				*why_ret = "it is not a directory but lies above the embed point of a region";
				*path_ret = v[pi].path;
				return -EINVAL;
			}
		}
	}
	return 0;
}

static bool entry_fields_ok(const struct fspf_entry *e, const char **why_ret)
{
	if (!e->path || !fspf_path_valid(e->path, strlen(e->path))) {
		*why_ret = "not an absolute normal path";
		return false;
	}
	if (e->mode & ~07777u) {
		*why_ret = "mode has bits beyond 07777";
		return false;
	}
	switch (e->type) {
	case FSPF_FILE:
	case FSPF_DIR:
		return !e->target || (*why_ret = "only a symlink has a target", false);
	case FSPF_SYMLINK:
		if (!e->target || !*e->target ||
		    strlen(e->target) >= FSPF_PATH_MAX_BYTES) {
			*why_ret = "a symlink needs a target";
			return false;
		}
		return true;
	default:
		*why_ret = "unknown entry type";
		return false;
	}
}

struct put_item {
	struct fspf_entry *e;
	size_t order;
};

static int put_cmp(const void *a, const void *b)
{
	const struct put_item *x = a, *y = b;
	int c = path_cmp(x->e->path, y->e->path);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

#define RANDOM_PER_FILE (KEY_SLOT_BYTES + FSPF_ID_BYTES)

int fspf_entries_put(struct fspf *f, struct fspf_entry *in, size_t count,
		     const char **why_ret, const char **path_ret)
{
	uint8_t *rnd = NULL;
	size_t r_used = 0;
	struct put_item *items = NULL;
	struct fspf_entry *merged = NULL;
	bool *from_new = NULL;
	size_t n_new = 0, files = 0, m = 0, i, j;
	int err;

	*why_ret = NULL;
	*path_ret = NULL;
	for (i = 0; i < count; i++) {
		size_t ri;

		if (!entry_fields_ok(&in[i], why_ret)) {
			*path_ret = in[i].path;
			return -EINVAL;
		}
		if (fspf_region_lookup(f, in[i].path, &ri) ||
		    f->regions[ri].protection == FSPF_NOT_PROTECTED ||
		    f->regions[ri].storage != FSPF_KERNEL) {
			*why_ret = "not in a protected kernel region";
			*path_ret = in[i].path;
			return -EINVAL;
		}
	}
	items = calloc(count ? count : 1, sizeof(*items));
	if (!items)
		return -ENOMEM;
	for (i = 0; i < count; i++)
		items[i] = (struct put_item){ &in[i], i };
	qsort(items, count, sizeof(*items), put_cmp);
	/* Keep the last of equal paths. */
	for (i = 0; i < count; i++) {
		if (i + 1 < count &&
		    strcmp(items[i].e->path, items[i + 1].e->path) == 0)
			continue;
		items[n_new++] = items[i];
		files += items[i].e->type == FSPF_FILE;
	}
	merged = calloc(f->entry_count + n_new + 1, sizeof(*merged));
	from_new = calloc(f->entry_count + n_new + 1, sizeof(*from_new));
	if (!merged || !from_new) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0, j = 0; i < f->entry_count || j < n_new;) {
		int c;

		if (i == f->entry_count)
			c = 1;
		else if (j == n_new)
			c = -1;
		else
			c = path_cmp(f->entries[i].path, items[j].e->path);
		if (c < 0) {
			merged[m++] = f->entries[i++];
		} else {
			from_new[m] = true;
			merged[m++] = *items[j++].e;
			i += c == 0;
		}
	}
	err = check_tree(f, merged, m, why_ret, path_ret);
	if (err)
		goto out;
	err = keys_reserve(f, files);
	if (err)
		goto out;
	/* Keys and ids of all new files from one draw (secret: locked). */
	rnd = fsh_secure_alloc(files * RANDOM_PER_FILE);
	if (!rnd) {
		err = -ENOMEM;
		goto out;
	}
	fsh_random(rnd, files * RANDOM_PER_FILE);
	/* Allocate what the new files need before touching the model. */
	for (i = 0; i < m; i++) {
		struct fspf_entry *e = &merged[i];
		const struct fspf_region *r;

		if (!from_new[i] || e->type != FSPF_FILE)
			continue;
		r = fspf_entry_region(f, e);
		e->chunk_count = fspf_chunk_count(e->size, r->chunk_size);
		e->chunks = NULL;
		if (e->chunk_count &&
		    (e->chunk_count > SIZE_MAX / sizeof(*e->chunks) ||
		     !(e->chunks = calloc(e->chunk_count, sizeof(*e->chunks))))) {
			for (size_t k = 0; k < i; k++)
				if (from_new[k] && merged[k].type == FSPF_FILE)
					free(merged[k].chunks);
			err = -ENOMEM;
			goto out;
		}
	}
	/* Commit: nothing below can fail. */
	for (i = 0, j = 0; i < f->entry_count; i++) {
		/* Old entries that were replaced: release what they held. */
		while (j < m && path_cmp(merged[j].path, f->entries[i].path) < 0)
			j++;
		if (j < m && from_new[j] &&
		    strcmp(merged[j].path, f->entries[i].path) == 0) {
			if (f->entries[i].type == FSPF_FILE)
				key_slot_release(f, f->entries[i].key_slot);
			entry_clear(&f->entries[i]);
		}
	}
	for (i = 0; i < m; i++) {
		struct fspf_entry *e = &merged[i];

		if (!from_new[i])
			continue;
		if (e->type == FSPF_FILE) {
			const struct fspf_region *r = fspf_entry_region(f, e);

			e->key_slot = key_slot_take(f);
			memcpy(f->keys + (size_t)e->key_slot * KEY_SLOT_BYTES,
			       rnd + r_used, r->key_size);
			memcpy(e->id, rnd + r_used + KEY_SLOT_BYTES, sizeof(e->id));
			r_used += RANDOM_PER_FILE;
		} else {
			e->chunk_count = 0;
			e->chunks = NULL;
			e->key_slot = 0;
			memset(e->id, 0, sizeof(e->id));
		}
		if (e->type == FSPF_SYMLINK)
			e->size = strlen(e->target);
		if (e->type == FSPF_DIR)
			e->size = 0;
	}
	/* The caller's structs gave up their strings to the kept entries. */
	for (j = 0; j < n_new; j++)
		items[j].e->path = NULL, items[j].e->target = NULL;
	for (i = 0; i < count; i++) {
		free(in[i].path);
		free(in[i].target);
		memset(&in[i], 0, sizeof(in[i]));
	}
	free(f->entries);
	f->entries = merged;
	f->entry_count = m;
	merged = NULL;
out:
	fsh_secure_free(rnd);
	free(merged);
	free(from_new);
	free(items);
	return err;
}

/* ---- changes of single entries (the runtime's writes) ---- */

/* The parent of normal path @path, in @out. */
static void parent_of(const char *path, char *out)
{
	char *slash;

	snprintf(out, FSPF_PATH_MAX_BYTES, "%s", path);
	slash = strrchr(out, '/');
	if (slash == out)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
}

/* Whether some region's embed point is @path or lies below it. */
static bool holds_embed_point(const struct fspf *f, const char *path)
{
	for (size_t i = 0; i < f->region_count; i++)
		if (fspf_path_contains(path, f->regions[i].path))
			return true;
	return false;
}

/*
 * Whether an entry may be created at @path of region @r: its parent is the
 * embed point or a recorded directory.
 */
static int parent_ok(const struct fspf *f, const struct fspf_region *r,
		     const char *path)
{
	char parent[FSPF_PATH_MAX_BYTES];
	const struct fspf_entry *p;

	parent_of(path, parent);
	if (fspf_path_contains(parent, r->path))
		return 0; /* the embed point itself */
	p = fspf_entry_find(f, parent);
	if (!p)
		return -ENOENT;
	return p->type == FSPF_DIR ? 0 : -ENOTDIR;
}

int fspf_entry_insert(struct fspf *f, struct fspf_entry *in,
		      const char **why_ret)
{
	const struct fspf_region *r;
	struct fspf_entry *v;
	size_t ri, pos;
	int err;

	*why_ret = NULL;
	if (!entry_fields_ok(in, why_ret))
		return -EINVAL;
	if (fspf_region_lookup(f, in->path, &ri) ||
	    f->regions[ri].protection == FSPF_NOT_PROTECTED ||
	    f->regions[ri].storage != FSPF_KERNEL) {
		*why_ret = "not in a protected kernel region";
		return -EINVAL;
	}
	r = &f->regions[ri];
	if (holds_embed_point(f, in->path)) {
		*why_ret = "an embed point is there or below";
		return -EEXIST;
	}
	pos = lower_bound(f->entries, f->entry_count, in->path);
	if (pos < f->entry_count && !strcmp(f->entries[pos].path, in->path))
		return -EEXIST;
	err = parent_ok(f, r, in->path);
	if (err) {
		*why_ret = "its parent directory is not recorded";
		return err;
	}
	v = realloc(f->entries, (f->entry_count + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	f->entries = v;
	in->chunk_count = 0;
	in->chunks = NULL;
	in->key_slot = 0;
	memset(in->id, 0, sizeof(in->id));
	if (in->type == FSPF_FILE) {
		in->chunk_count = fspf_chunk_count(in->size, r->chunk_size);
		if (in->chunk_count &&
		    (in->chunk_count > SIZE_MAX / sizeof(*in->chunks) ||
		     !(in->chunks = calloc(in->chunk_count,
					   sizeof(*in->chunks)))))
			return -ENOMEM;
		if (keys_reserve(f, 1)) {
			free(in->chunks);
			in->chunks = NULL;
			return -ENOMEM;
		}
		/* Drawn where it lives (locked): no temporary secret. */
		in->key_slot = key_slot_take(f);
		fsh_random(f->keys + (size_t)in->key_slot * KEY_SLOT_BYTES,
			   r->key_size);
		fsh_random(in->id, sizeof(in->id));
	} else {
		in->size = in->type == FSPF_SYMLINK ? strlen(in->target) : 0;
	}
	memmove(&v[pos + 1], &v[pos], (f->entry_count - pos) * sizeof(*v));
	v[pos] = *in;
	f->entry_count++;
	memset(in, 0, sizeof(*in));
	return 0;
}

int fspf_entry_remove(struct fspf *f, const char *path,
		      struct fspf_entry *taken)
{
	size_t first, end;
	struct fspf_entry *e;

	fspf_entry_range(f, path, &first, &end);
	if (first == end || strcmp(f->entries[first].path, path))
		return -ENOENT;
	if (end - first > 1)
		return -ENOTEMPTY;
	e = &f->entries[first];
	if (e->type == FSPF_FILE)
		key_slot_release(f, e->key_slot);
	if (taken)
		*taken = *e;
	else
		entry_clear(e);
	memmove(e, e + 1, (f->entry_count - first - 1) * sizeof(*e));
	f->entry_count--;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return path_cmp(((const struct fspf_entry *)a)->path,
			((const struct fspf_entry *)b)->path);
}

int fspf_entry_move(struct fspf *f, const char *from, const char *to)
{
	size_t first, end, n, ri_from, ri_to, from_len = strlen(from);
	char **paths;
	int err;

	if (!fspf_path_valid(to, strlen(to)) || strlen(to) >= FSPF_PATH_MAX_BYTES)
		return -EINVAL;
	if (fspf_region_lookup(f, from, &ri_from) ||
	    fspf_region_lookup(f, to, &ri_to))
		return -ENOENT;
	if (ri_from != ri_to)
		return -EXDEV;
	if (holds_embed_point(f, from) || holds_embed_point(f, to))
		return -EBUSY;
	if (fspf_path_contains(from, to))
		return strcmp(from, to) ? -EINVAL : 0;
	fspf_entry_range(f, from, &first, &end);
	if (first == end || strcmp(f->entries[first].path, from))
		return -ENOENT;
	if (fspf_entry_find(f, to))
		return -EEXIST;
	err = parent_ok(f, &f->regions[ri_to], to);
	if (err)
		return err;
	n = end - first;
	paths = calloc(n, sizeof(*paths));
	if (!paths)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *rest = f->entries[first + i].path + from_len;
		size_t len = strlen(to) + strlen(rest);

		err = len >= FSPF_PATH_MAX_BYTES ? -ENAMETOOLONG : 0;
		if (!err && !(paths[i] = malloc(len + 1)))
			err = -ENOMEM;
		if (!err) {
			memcpy(paths[i], to, strlen(to));
			memcpy(paths[i] + strlen(to), rest, strlen(rest) + 1);
		}
		if (err) {
			while (i--)
				free(paths[i]);
			free(paths);
			return err;
		}
	}
	for (size_t i = 0; i < n; i++) {
		free(f->entries[first + i].path);
		f->entries[first + i].path = paths[i];
	}
	free(paths);
	/* Nearly sorted: the moved run lands elsewhere as a block. */
	qsort(f->entries, f->entry_count, sizeof(*f->entries), entry_cmp);
	return 0;
}

int fspf_entry_resize(struct fspf_entry *e, uint32_t chunk_size,
		      uint64_t size)
{
	uint64_t count = fspf_chunk_count(size, chunk_size);
	struct fspf_chunk *c;

	if (e->type != FSPF_FILE || !chunk_size)
		return -EINVAL;
	if (count != e->chunk_count) {
		if (count > SIZE_MAX / sizeof(*c))
			return -EFBIG;
		if (!count) {
			free(e->chunks);
			c = NULL;
		} else {
			c = realloc(e->chunks, (size_t)count * sizeof(*c));
			if (!c)
				return -ENOMEM;
		}
		if (count > e->chunk_count)
			memset(&c[e->chunk_count], 0,
			       (size_t)(count - e->chunk_count) * sizeof(*c));
		e->chunks = c;
		e->chunk_count = count;
	}
	e->size = size;
	return 0;
}

/* ---- chunks ---- */

static void chunk_ad(uint8_t ad[FSPF_CHUNK_AD_BYTES], const uint8_t *id,
		     uint64_t index, size_t size, uint32_t domain)
{
	memcpy(ad, id, FSPF_ID_BYTES);
	put_le64(ad + 16, index);
	put_le32(ad + 24, (uint32_t)size);
	put_le32(ad + 28, domain);
}

/* Seal one chunk under @nonce (checked by the caller), into record @c. */
static int seal_one(struct fsh_aead *aead, const struct fspf_region *r,
		    const uint8_t *id, uint64_t index, struct fspf_chunk *c,
		    const uint8_t nonce[FSH_NONCE_BYTES], const uint8_t *in,
		    uint8_t *out, size_t size)
{
	uint8_t ad[FSPF_CHUNK_AD_BYTES];

	memcpy(c->nonce, nonce, FSH_NONCE_BYTES);
	if (r->protection == FSPF_ENCRYPTED) {
		struct fsh_span span = { in, out, size };

		chunk_ad(ad, id, index, size, DOMAIN_ENCRYPTED);
		return fsh_aead_seal(aead, c->nonce, ad, sizeof(ad), &span, 1,
				     c->tag);
	}
	chunk_ad(ad, id, index, size, DOMAIN_AUTHENTICATED);
	return fsh_aead_mac(aead, c->nonce, ad, sizeof(ad), in, size, c->tag);
}

int fspf_chunk_seal(struct fsh_aead *aead, const struct fspf_region *r,
		    struct fspf_entry *e, uint64_t index, const uint8_t *in,
		    uint8_t *out, size_t size)
{
	if (index >= e->chunk_count || size > r->chunk_size)
		return -EINVAL;
	return fspf_chunks_seal_rec(aead, r, e->id, index, &e->chunks[index],
				    in, out, size);
}

int fspf_chunks_seal(struct fsh_aead *aead, const struct fspf_region *r,
		     struct fspf_entry *e, uint64_t first, const uint8_t *in,
		     uint8_t *out, size_t size)
{
	uint64_t count = r->chunk_size ? fspf_chunk_count(size, r->chunk_size)
				       : 0;

	if (!count || first >= e->chunk_count ||
	    count > e->chunk_count - first)
		return -EINVAL;
	return fspf_chunks_seal_rec(aead, r, e->id, first, &e->chunks[first],
				    in, out, size);
}

int fspf_chunks_seal_rec(struct fsh_aead *aead, const struct fspf_region *r,
			 const uint8_t id[FSPF_ID_BYTES], uint64_t first,
			 struct fspf_chunk *recs, const uint8_t *in,
			 uint8_t *out, size_t size)
{
	enum { BATCH = 256 };
	uint8_t nonces[BATCH][FSH_NONCE_BYTES];
	uint64_t count;
	int err = 0;

	if ((r->protection != FSPF_ENCRYPTED &&
	     r->protection != FSPF_AUTHENTICATED) ||
	    !r->chunk_size || !size)
		return -EINVAL;
	count = fspf_chunk_count(size, r->chunk_size);
	if (first + count < first)
		return -EINVAL;
	for (uint64_t done = 0; !err && done < count; done += BATCH) {
		size_t n = count - done < BATCH ? (size_t)(count - done) : BATCH;

		/* One DRBG call for many nonces: a call costs about a seal. */
		err = fsh_nonces(nonces[0], n);
		for (size_t i = 0; !err && i < n; i++) {
			size_t off = (size_t)((done + i) * r->chunk_size);
			size_t len = size - off < r->chunk_size ? size - off
								 : r->chunk_size;

			err = seal_one(aead, r, id, first + done + i,
				       &recs[done + i], nonces[i], in + off,
				       out ? out + off : NULL, len);
		}
	}
	return err;
}

int fspf_chunk_open(struct fsh_aead *aead, const struct fspf_region *r,
		    const struct fspf_entry *e, uint64_t index,
		    const uint8_t *in, uint8_t *out, size_t size)
{
	if (index >= e->chunk_count)
		return -EINVAL;
	return fspf_chunk_open_rec(aead, r, e->id, index, &e->chunks[index],
				   in, out, size);
}

int fspf_chunk_open_rec(struct fsh_aead *aead, const struct fspf_region *r,
			const uint8_t id[FSPF_ID_BYTES], uint64_t index,
			const struct fspf_chunk *c, const uint8_t *in,
			uint8_t *out, size_t size)
{
	uint8_t ad[FSPF_CHUNK_AD_BYTES];
	int err;

	if (size > r->chunk_size || !size)
		return -EINVAL;
	if (r->protection == FSPF_ENCRYPTED) {
		struct fsh_span span = { in, out, size };

		chunk_ad(ad, id, index, size, DOMAIN_ENCRYPTED);
		return fsh_aead_open(aead, c->nonce, ad, sizeof(ad), &span, 1,
				     c->tag);
	}
	if (r->protection == FSPF_AUTHENTICATED) {
		chunk_ad(ad, id, index, size, DOMAIN_AUTHENTICATED);
		err = fsh_aead_mac_verify(aead, c->nonce, ad, sizeof(ad), in,
					  size, c->tag);
		if (err) {
			/* Verify before release: in place too, nothing stays. */
			fsh_wipe(out, size);
			return err;
		}
		if (out != in)
			memcpy(out, in, size);
		return 0;
	}
	return -EINVAL;
}

/* ---- encoding ---- */

struct layout {
	/* byte offsets in the body */
	uint64_t regions, entries, chunks, strings, lineage, keys;
	uint64_t plain_size; /* regions..lineage */
	uint64_t body_size;
};

static int layout_of(uint32_t rc, uint32_t ec, uint64_t cc, uint64_t ss,
		     uint32_t lc, uint64_t ks, struct layout *l)
{
	uint64_t c28;

	if (cc > UINT64_MAX / FSPF_CHUNK_RECORD_BYTES)
		return -EUCLEAN;
	c28 = cc * FSPF_CHUNK_RECORD_BYTES;
	l->regions = 0;
	l->entries = (uint64_t)rc * FSPF_REGION_RECORD_BYTES;
	l->chunks = l->entries + (uint64_t)ec * FSPF_ENTRY_RECORD_BYTES;
	if (c28 > UINT64_MAX / 4 || ss > UINT64_MAX / 4 || ks > UINT64_MAX / 4)
		return -EUCLEAN;
	l->strings = l->chunks + c28;
	l->lineage = l->strings + ss;
	l->keys = l->lineage + (uint64_t)lc * FSH_TAG_BYTES;
	l->plain_size = l->keys;
	l->body_size = l->keys + ks;
	if (l->body_size > SIZE_MAX - FSPF_HEADER_BYTES - FSH_TAG_BYTES)
		return -EUCLEAN;
	return 0;
}

int fspf_peek(const uint8_t *buf, size_t size, struct fspf_info *info)
{
	struct cursor c = { buf, size, 0 };
	struct layout l;
	uint64_t ss, ks;
	int err;

	if (size < FSPF_HEADER_BYTES + FSH_TAG_BYTES)
		return size >= FSPF_MAGIC_BYTES &&
				       memcmp(buf, FSPF_MAGIC, FSPF_MAGIC_BYTES)
			       ? -EMEDIUMTYPE
			       : -EUCLEAN;
	if (memcmp(cur_take(&c, FSPF_MAGIC_BYTES), FSPF_MAGIC,
		   FSPF_MAGIC_BYTES))
		return -EMEDIUMTYPE;
	memset(info, 0, sizeof(*info));
	info->major = cur_le16(&c);
	info->minor = cur_le16(&c);
	if (info->major != FSPF_VERSION_MAJOR ||
	    (info->minor != 0 && info->minor != FSPF_VERSION_MINOR))
		return -EPROTONOSUPPORT;
	info->flags = cur_le32(&c);
	info->region_count = cur_le32(&c);
	info->entry_count = cur_le32(&c);
	info->chunk_count = cur_le64(&c);
	ss = cur_le64(&c);
	ks = cur_le64(&c);
	cur_take(&c, FSH_NONCE_BYTES + FSH_KEY_CHECK_BYTES);
	/* 1.0: no lineage (reserved, zero); 1.1: one to FSPF_LINEAGE_MAX. */
	info->lineage_count = cur_le32(&c);
	if (!cur_zero(&c, 16) || c.bad ||
	    (info->minor == 0) != (info->lineage_count == 0) ||
	    info->lineage_count > FSPF_LINEAGE_MAX)
		return -EUCLEAN;
	if (info->flags & ~FSPF_F_ZERO_KEY)
		return -EUCLEAN;
	if (info->region_count > FSPF_MAX_REGIONS)
		return -EUCLEAN;
	err = layout_of(info->region_count, info->entry_count,
			info->chunk_count, ss, info->lineage_count, ks, &l);
	if (err)
		return err;
	if (size != FSPF_HEADER_BYTES + l.body_size + FSH_TAG_BYTES)
		return -EUCLEAN;
	memcpy(info->tag, buf + size - FSH_TAG_BYTES, FSH_TAG_BYTES);
	return 0;
}

/*
 * The strings section, read in the order the encoder writes it: every
 * reference must start where the previous one ended and the last must end
 * at the section's end, so one model has exactly one encoding and the
 * section holds nothing that no record names.
 */
struct strings {
	const uint8_t *base;
	uint64_t size;
	uint64_t next;
};

/* Take the (off, len) string; NULL when it is not the next one or is bad. */
static char *take_string(struct strings *st, uint32_t off, uint32_t len)
{
	char *s;

	if (len == 0 || len >= FSPF_PATH_MAX_BYTES || off != st->next ||
	    (uint64_t)off + len > st->size ||
	    memchr(st->base + off, '\0', len))
		return NULL;
	s = malloc((size_t)len + 1);
	if (!s)
		return NULL;
	memcpy(s, st->base + off, len);
	s[len] = '\0';
	st->next += len;
	return s;
}

static int decode_regions(struct fspf *f, struct cursor *c,
			  struct strings *strs, uint32_t n)
{
	f->regions = calloc(n ? n : 1, sizeof(*f->regions));
	if (!f->regions)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct fspf_region *r = &f->regions[i];
		uint32_t po = cur_le32(c), pl = cur_le32(c);
		uint32_t ko = cur_le32(c), kl = cur_le32(c);

		r->protection = cur_u8(c);
		r->storage = cur_u8(c);
		r->key_size = cur_u8(c);
		if (!cur_zero(c, 1))
			return -EUCLEAN;
		r->chunk_size = cur_le32(c);
		if (!cur_zero(c, 8) || c->bad)
			return -EUCLEAN;
		f->region_count = i + 1;
		r->path = take_string(strs, po, pl);
		if (!r->path || !fspf_path_valid(r->path, pl))
			return -EUCLEAN;
		if (r->storage == FSPF_KERNEL) {
			r->kernel = take_string(strs, ko, kl);
			if (!r->kernel || !kernel_valid(r->kernel))
				return -EUCLEAN;
		} else if (ko || kl) {
			return -EUCLEAN;
		}
		if (!region_params_ok(r))
			return -EUCLEAN;
		if (i && path_cmp(f->regions[i - 1].path, r->path) >= 0)
			return -EUCLEAN;
	}
	if (n > 1 && strcmp(f->regions[0].path, "/") != 0)
		return -EUCLEAN;
	return 0;
}

static int decode_entries(struct fspf *f, struct cursor *c,
			  struct cursor *chunks, struct strings *strs,
			  const uint8_t *keys, uint64_t ks, uint32_t n)
{
	uint64_t key_off = 0;
	uint32_t files = 0;
	int err;

	f->entries = calloc(n ? n : 1, sizeof(*f->entries));
	if (!f->entries)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct fspf_entry *e = &f->entries[i];
		const struct fspf_region *r;
		uint32_t po = cur_le32(c), pl = cur_le32(c);
		uint32_t to = cur_le32(c), tl = cur_le32(c);
		uint8_t id_zero;

		e->size = cur_le64(c);
		e->mode = cur_le32(c);
		e->uid = cur_le32(c);
		e->gid = cur_le32(c);
		e->type = cur_u8(c);
		if (!cur_zero(c, 3))
			return -EUCLEAN;
		e->mtime_ns = (int64_t)cur_le64(c);
		cur_copy(c, e->id, FSPF_ID_BYTES);
		if (c->bad)
			return -EUCLEAN;
		f->entry_count = i + 1;
		e->path = take_string(strs, po, pl);
		if (!e->path || !fspf_path_valid(e->path, pl) ||
		    (e->mode & ~07777u))
			return -EUCLEAN;
		if (i && path_cmp(f->entries[i - 1].path, e->path) >= 0)
			return -EUCLEAN;
		r = fspf_entry_region(f, e);
		if (!r || r->protection == FSPF_NOT_PROTECTED ||
		    r->storage != FSPF_KERNEL)
			return -EUCLEAN;
		id_zero = fsh_is_zero(e->id, FSPF_ID_BYTES);
		switch (e->type) {
		case FSPF_FILE:
			if (to || tl)
				return -EUCLEAN;
			e->chunk_count = fspf_chunk_count(e->size, r->chunk_size);
			if (e->chunk_count > chunks->left / FSPF_CHUNK_RECORD_BYTES)
				return -EUCLEAN;
			if (e->chunk_count) {
				e->chunks = malloc(e->chunk_count *
						   sizeof(*e->chunks));
				if (!e->chunks)
					return -ENOMEM;
				cur_copy(chunks, e->chunks,
					 e->chunk_count * sizeof(*e->chunks));
			}
			if (r->key_size > ks - key_off)
				return -EUCLEAN;
			e->key_slot = files++;
			memcpy(f->keys + (size_t)e->key_slot * KEY_SLOT_BYTES,
			       keys + key_off, r->key_size);
			key_off += r->key_size;
			break;
		case FSPF_DIR:
			if (to || tl || e->size || !id_zero)
				return -EUCLEAN;
			break;
		case FSPF_SYMLINK:
			e->target = take_string(strs, to, tl);
			if (!e->target || e->size != tl || !id_zero)
				return -EUCLEAN;
			break;
		default:
			return -EUCLEAN;
		}
	}
	if (chunks->left || key_off != ks || strs->next != strs->size)
		return -EUCLEAN;
	f->key_used = files;
	{
		const char *why, *p;

		err = check_tree(f, f->entries, f->entry_count, &why, &p);
	}
	return err ? -EUCLEAN : 0;
}

int fspf_decode(const uint8_t *buf, size_t size, const struct fsh_key *key,
		struct fspf **fspf_ret, uint8_t tag_ret[FSH_TAG_BYTES])
{
	struct fspf_info info;
	struct layout l;
	struct fsh_key *zero = NULL;
	const struct fsh_key *k = key;
	struct fsh_aead *aead = NULL;
	uint8_t check[FSH_KEY_CHECK_BYTES];
	uint8_t *plain = NULL, *keys = NULL;
	struct fspf *f = NULL;
	struct cursor c, cc;
	struct strings strs;
	uint32_t files_max;
	int err;

	memset(&l, 0, sizeof(l));
	err = fspf_peek(buf, size, &info);
	if (!err)
		err = layout_of(info.region_count, info.entry_count,
				info.chunk_count, get_le64(buf + 32),
				info.lineage_count, get_le64(buf + 40), &l);
	if (err)
		return err;
	if (info.flags & FSPF_F_ZERO_KEY) {
		err = fsh_key_new(FSH_FSPF_KEY_BYTES, &zero);
		if (err)
			goto out;
		k = zero;
	} else if (!key) {
		err = -ENOKEY;
		goto out;
	} else if (fsh_key_size(key) != FSH_FSPF_KEY_BYTES ||
		   fsh_key_is_zero(key)) {
		/* The all-zero key is public: it never opens an encrypted fspf. */
		err = -EKEYREJECTED;
		goto out;
	}
	fsh_key_check(k, check);
	if (!fsh_memeq(check, buf + 60, FSH_KEY_CHECK_BYTES)) {
		/* A zero-key fspf with a wrong check value was altered. */
		err = zero ? -EBADMSG : -EKEYREJECTED;
		goto out;
	}
	err = fspf_new(&f);
	if (err)
		goto out;
	f->encrypted = !zero;
	plain = malloc(l.plain_size ? l.plain_size : 1);
	keys = fsh_secure_alloc(l.body_size - l.keys);
	if (!plain || !keys) {
		err = -ENOMEM;
		goto out;
	}
	err = fsh_aead_new(fsh_key_bytes(k), fsh_key_size(k), &aead);
	if (err)
		goto out;
	{
		struct fsh_span spans[2] = {
			{ buf + FSPF_HEADER_BYTES, plain, l.plain_size },
			{ buf + FSPF_HEADER_BYTES + l.keys, keys,
			  l.body_size - l.keys },
		};

		err = fsh_aead_open(aead, buf + 48, buf, FSPF_HEADER_BYTES,
				    spans, 2, buf + size - FSH_TAG_BYTES);
		if (err)
			goto out;
	}
	/* Verified: now parse. */
	files_max = info.entry_count;
	f->keys = fsh_secure_alloc((size_t)(files_max ? files_max : 1) *
				   KEY_SLOT_BYTES);
	if (!f->keys) {
		err = -ENOMEM;
		goto out;
	}
	f->key_cap = files_max ? files_max : 1;
	c = (struct cursor){ plain, l.chunks, 0 };
	strs = (struct strings){ plain + l.strings, l.lineage - l.strings, 0 };
	err = decode_regions(f, &c, &strs, info.region_count);
	if (err)
		goto out;
	cc = (struct cursor){ plain + l.chunks, l.strings - l.chunks, 0 };
	err = decode_entries(f, &c, &cc, &strs, keys, l.body_size - l.keys,
			     info.entry_count);
	if (err)
		goto out;
	f->lineage_count = info.lineage_count;
	memcpy(f->lineage, plain + l.lineage,
	       (size_t)info.lineage_count * FSH_TAG_BYTES);
	if (tag_ret)
		memcpy(tag_ret, info.tag, FSH_TAG_BYTES);
	*fspf_ret = f;
	f = NULL;
out:
	fspf_free(f);
	fsh_aead_free(aead);
	fsh_secure_free(keys);
	if (plain)
		fsh_wipe(plain, l.plain_size);
	free(plain);
	fsh_key_free(zero);
	return err;
}

struct strtab {
	uint8_t *buf;
	uint64_t size, cap;
};

static int strtab_add(struct strtab *t, const char *s, uint32_t *off,
		      uint32_t *len)
{
	size_t n = strlen(s);

	if (t->size + n > UINT32_MAX)
		return -EFBIG;
	if (t->size + n > t->cap) {
		uint64_t cap = t->cap ? 2 * t->cap : 4096;
		uint8_t *b;

		while (cap < t->size + n)
			cap *= 2;
		b = realloc(t->buf, cap);
		if (!b)
			return -ENOMEM;
		t->buf = b;
		t->cap = cap;
	}
	memcpy(t->buf + t->size, s, n);
	*off = (uint32_t)t->size;
	*len = (uint32_t)n;
	t->size += n;
	return 0;
}

int fspf_encode(const struct fspf *f, const struct fsh_key *key,
		uint8_t **buf_ret, size_t *size_ret,
		uint8_t tag_ret[FSH_TAG_BYTES])
{
	struct strtab st = { 0 };
	struct fsh_key *zero = NULL;
	const struct fsh_key *k = key;
	struct fsh_aead *aead = NULL;
	struct fsh_span *spans = NULL;
	size_t nspans = 1;
	uint8_t *out = NULL, *p;
	uint64_t cc = 0, ks = 0, total;
	struct layout l;
	int err;

	if (f->entry_count > UINT32_MAX || f->region_count > FSPF_MAX_REGIONS)
		return -EINVAL;
	if (!k) {
		err = fsh_key_new(FSH_FSPF_KEY_BYTES, &zero);
		if (err)
			return err;
		k = zero;
	}
	if (fsh_key_size(k) != FSH_FSPF_KEY_BYTES ||
	    (key && fsh_key_is_zero(key))) {
		err = -EINVAL; /* sealing "encrypted" under the public key */
		goto out;
	}
	/* Never write what the decoder would refuse. */
	for (size_t i = 0; i < f->region_count; i++)
		if (!region_params_ok(&f->regions[i]) ||
		    !fspf_path_valid(f->regions[i].path,
				     strlen(f->regions[i].path)) ||
		    (f->regions[i].kernel && !kernel_valid(f->regions[i].kernel)) ||
		    (i && path_cmp(f->regions[i - 1].path, f->regions[i].path) >= 0)) {
			err = -EINVAL;
			goto out;
		}
	for (size_t i = 0; i < f->entry_count; i++) {
		const struct fspf_entry *e = &f->entries[i];
		const struct fspf_region *r = fspf_entry_region(f, e);
		const char *why;

		if (!entry_fields_ok(e, &why) || !r ||
		    r->protection == FSPF_NOT_PROTECTED ||
		    r->storage != FSPF_KERNEL ||
		    (i && path_cmp(f->entries[i - 1].path, e->path) >= 0) ||
		    (e->type == FSPF_FILE &&
		     e->chunk_count != fspf_chunk_count(e->size, r->chunk_size)) ||
		    (e->type == FSPF_DIR && e->size) ||
		    (e->type == FSPF_SYMLINK && e->size != strlen(e->target))) {
			err = -EINVAL;
			goto out;
		}
		if (e->type == FSPF_FILE) {
			cc += e->chunk_count;
			ks += r->key_size;
		}
	}
	/* Sizes first: strings are laid out while the records are written. */
	{
		uint32_t o, n;

		for (size_t i = 0; i < f->region_count; i++) {
			err = strtab_add(&st, f->regions[i].path, &o, &n);
			if (!err && f->regions[i].kernel)
				err = strtab_add(&st, f->regions[i].kernel, &o, &n);
			if (err)
				goto out;
		}
		for (size_t i = 0; i < f->entry_count; i++) {
			err = strtab_add(&st, f->entries[i].path, &o, &n);
			if (!err && f->entries[i].target)
				err = strtab_add(&st, f->entries[i].target, &o, &n);
			if (err)
				goto out;
		}
	}
	err = layout_of((uint32_t)f->region_count, (uint32_t)f->entry_count, cc,
			st.size, f->lineage_count, ks, &l);
	if (err) {
		err = -EFBIG;
		goto out;
	}
	total = FSPF_HEADER_BYTES + l.body_size + FSH_TAG_BYTES;
	out = calloc(1, total);
	/*
	 * The keys section is sealed from where the keys live (locked memory),
	 * one span per run of adjacent key slots: no secret is copied, and no
	 * locked buffer is made and unmade at every commit.
	 */
	spans = calloc(f->entry_count + 1, sizeof(*spans));
	if (!out || !spans) {
		err = -ENOMEM;
		goto out;
	}
	/* Header. */
	memcpy(out, FSPF_MAGIC, FSPF_MAGIC_BYTES);
	put_le16(out + 8, FSPF_VERSION_MAJOR);
	/* 1.0 while there is no lineage: one model, one encoding. */
	put_le16(out + 10, f->lineage_count ? FSPF_VERSION_MINOR : 0);
	put_le32(out + 12, zero ? FSPF_F_ZERO_KEY : 0);
	put_le32(out + 16, (uint32_t)f->region_count);
	put_le32(out + 20, (uint32_t)f->entry_count);
	put_le64(out + 24, cc);
	put_le64(out + 32, st.size);
	put_le64(out + 40, ks);
	err = fsh_nonce(out + 48);
	if (err)
		goto out;
	fsh_key_check(k, out + 60);
	put_le32(out + 76, f->lineage_count);
	/* Body plaintext, written in place, sealed in place below. */
	p = out + FSPF_HEADER_BYTES;
	{
		uint64_t soff = 0, koff = 0;
		uint8_t *chunks = p + l.chunks;

		spans[0] = (struct fsh_span){ p, p, l.plain_size };

#define STR(s, o, n)                                            \
	do {                                                    \
		(n) = (uint32_t)strlen(s);                      \
		(o) = (uint32_t)soff;                           \
		soff += (n);                                    \
	} while (0)
		for (size_t i = 0; i < f->region_count; i++) {
			const struct fspf_region *r = &f->regions[i];
			uint8_t *rec = p + l.regions + i * FSPF_REGION_RECORD_BYTES;
			uint32_t o, n;

			STR(r->path, o, n);
			put_le32(rec, o);
			put_le32(rec + 4, n);
			if (r->kernel) {
				STR(r->kernel, o, n);
				put_le32(rec + 8, o);
				put_le32(rec + 12, n);
			}
			rec[16] = r->protection;
			rec[17] = r->storage;
			rec[18] = (uint8_t)r->key_size;
			put_le32(rec + 20, r->chunk_size);
		}
		for (size_t i = 0; i < f->entry_count; i++) {
			const struct fspf_entry *e = &f->entries[i];
			uint8_t *rec = p + l.entries + i * FSPF_ENTRY_RECORD_BYTES;
			uint32_t o, n;

			STR(e->path, o, n);
			put_le32(rec, o);
			put_le32(rec + 4, n);
			if (e->target) {
				STR(e->target, o, n);
				put_le32(rec + 8, o);
				put_le32(rec + 12, n);
			}
			put_le64(rec + 16, e->size);
			put_le32(rec + 24, e->mode);
			put_le32(rec + 28, e->uid);
			put_le32(rec + 32, e->gid);
			rec[36] = e->type;
			put_le64(rec + 40, (uint64_t)e->mtime_ns);
			memcpy(rec + 48, e->id, FSPF_ID_BYTES);
			if (e->type == FSPF_FILE) {
				size_t kn = fspf_entry_region(f, e)->key_size;
				const uint8_t *k_in = fspf_entry_key(f, e);
				struct fsh_span *last = &spans[nspans - 1];

				if (e->chunk_count)
					memcpy(chunks, e->chunks,
					       e->chunk_count * sizeof(*e->chunks));
				chunks += e->chunk_count * sizeof(*e->chunks);
				if (nspans > 1 && last->in + last->size == k_in)
					last->size += kn;
				else
					spans[nspans++] = (struct fsh_span){
						k_in, p + l.keys + koff, kn
					};
				koff += kn;
			}
		}
#undef STR
		if (st.size)
			memcpy(p + l.strings, st.buf, st.size);
		memcpy(p + l.lineage, f->lineage,
		       (size_t)f->lineage_count * FSH_TAG_BYTES);
	}
	err = fsh_aead_new(fsh_key_bytes(k), fsh_key_size(k), &aead);
	if (err)
		goto out;
	err = fsh_aead_seal(aead, out + 48, out, FSPF_HEADER_BYTES, spans,
			    nspans, out + total - FSH_TAG_BYTES);
	if (err)
		goto out;
	if (tag_ret)
		memcpy(tag_ret, out + total - FSH_TAG_BYTES, FSH_TAG_BYTES);
	*buf_ret = out;
	*size_ret = total;
	out = NULL;
out:
	free(out);
	free(st.buf);
	free(spans);
	fsh_aead_free(aead);
	fsh_key_free(zero);
	return err;
}

/* ---- host paths ---- */

int fspf_host_path(const char *root, const char *fspf_path,
		  const struct fspf_region *r, const char *path, char *out,
		  size_t out_size)
{
	const char *rest = path + strlen(r->path);
	char base[2 * FSPF_PATH_MAX_BYTES + 2];
	int n;

	if (strcmp(r->path, "/") == 0)
		rest = path;
	if (r->kernel[0] == '/') {
		/* Absolute kernel directories live under the root (default /). */
		n = snprintf(base, sizeof(base), "%s%s",
			     root && strcmp(root, "/") ? root : "",
			     strcmp(r->kernel, "/") ? r->kernel : "");
	} else {
		/* Relative ones (volumes) next to the fspf itself. */
		const char *slash = strrchr(fspf_path, '/');
		int dlen = slash ? (int)(slash - fspf_path) : 1;

		n = snprintf(base, sizeof(base), "%.*s/%s",
			     slash == fspf_path ? 0 : dlen,
			     slash ? fspf_path : ".", r->kernel);
	}
	if (n < 0 || (size_t)n >= sizeof(base))
		return -ENAMETOOLONG;
	if (!*base && !*rest)
		n = snprintf(out, out_size, "/");
	else
		n = snprintf(out, out_size, "%s%s", base, rest);
	if (n < 0 || (size_t)n >= out_size)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- files ---- */

int fspf_load(const char *path, const struct fsh_key *key,
	      struct fspf **fspf_ret, uint8_t tag_ret[FSH_TAG_BYTES])
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err = -EMEDIUMTYPE;
		goto out;
	}
	if ((uint64_t)st.st_size > SIZE_MAX / 2) {
		err = -EFBIG;
		goto out;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	err = fspf_decode(buf, got, key, fspf_ret, tag_ret);
out:
	free(buf);
	close(fd);
	return err;
}

int fspf_load_pending(const char *path, const struct fsh_key *key,
		      const uint8_t expected[FSH_TAG_BYTES],
		      unsigned int max_depth, struct fspf **fspf_ret,
		      uint8_t tag_ret[FSH_TAG_BYTES], unsigned int *depth_ret,
		      char **pending_ret)
{
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	size_t blen = strlen(base);
	char dir[PATH_MAX], *cand = NULL, *best_path = NULL;
	uint8_t best_tag[FSH_TAG_BYTES];
	struct fspf *best = NULL;
	struct dirent *de;
	int err = 0, best_depth = -1;
	DIR *d;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path + 1) : 1,
		 slash ? path : ".");
	d = opendir(dir);
	if (!d)
		return -errno;
	while (!err && (de = readdir(d))) {
		uint8_t tag[FSH_TAG_BYTES];
		struct fspf *f;
		int depth;

		if (strncmp(de->d_name, base, blen) ||
		    strncmp(de->d_name + blen, ".tmp.", 5))
			continue;
		if (asprintf(&cand, "%s%s", slash ? dir : "", de->d_name) < 0) {
			cand = NULL;
			err = -ENOMEM;
			break;
		}
		if (fspf_load(cand, key, &f, tag) == 0) {
			depth = fspf_descent(f, tag, expected);
			if (depth > best_depth && depth <= (int)max_depth &&
			    depth <= (int)FSPF_LINEAGE_MAX) {
				fspf_free(best);
				free(best_path);
				best = f;
				best_path = cand;
				best_depth = depth;
				memcpy(best_tag, tag, sizeof(best_tag));
				cand = NULL;
				f = NULL;
			}
			fspf_free(f);
		}
		free(cand);
		cand = NULL;
	}
	closedir(d);
	if (!err && !best)
		err = -ENOENT;
	if (err) {
		fspf_free(best);
		free(best_path);
		return err;
	}
	*fspf_ret = best;
	*pending_ret = best_path;
	if (tag_ret)
		memcpy(tag_ret, best_tag, FSH_TAG_BYTES);
	if (depth_ret)
		*depth_ret = (unsigned int)best_depth;
	return 0;
}

size_t fspf_lineage(const struct fspf *f, const uint8_t **tags_ret)
{
	*tags_ret = f->lineage[0];
	return f->lineage_count;
}

void fspf_lineage_push(struct fspf *f, const uint8_t tag[FSH_TAG_BYTES])
{
	size_t keep = f->lineage_count < FSPF_LINEAGE_MAX ? f->lineage_count
							  : FSPF_LINEAGE_MAX - 1;

	memmove(f->lineage[1], f->lineage[0], keep * FSH_TAG_BYTES);
	memcpy(f->lineage[0], tag, FSH_TAG_BYTES);
	f->lineage_count = (uint32_t)keep + 1;
}

void fspf_lineage_set(struct fspf *f, const uint8_t *tags, size_t count)
{
	if (count > FSPF_LINEAGE_MAX)
		count = FSPF_LINEAGE_MAX;
	if (count)
		memmove(f->lineage[0], tags, count * FSH_TAG_BYTES);
	f->lineage_count = (uint32_t)count;
}

int fspf_descent(const struct fspf *f, const uint8_t tag[FSH_TAG_BYTES],
		 const uint8_t ancestor[FSH_TAG_BYTES])
{
	int depth = fsh_memeq(tag, ancestor, FSH_TAG_BYTES) ? 0 : -1;

	/* Every tag compared (in constant time), whichever matches. */
	for (uint32_t i = 0; i < f->lineage_count; i++)
		if (fsh_memeq(f->lineage[i], ancestor, FSH_TAG_BYTES) &&
		    depth < 0)
			depth = (int)i + 1;
	return depth;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
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

int fspf_store_fd(const struct fspf *f, int fd, const struct fsh_key *key,
		  bool new_file, uint8_t tag_ret[FSH_TAG_BYTES])
{
	uint8_t tag[FSH_TAG_BYTES];
	uint8_t *buf = NULL;
	size_t size, done = 0;
	int err;

	err = fspf_encode(f, key, &buf, &size, tag);
	if (err)
		return err;
	while (done < size) {
		ssize_t w = pwrite(fd, buf + done, size - done, (off_t)done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			err = -errno;
			goto out;
		}
		done += (size_t)w;
	}
	if (ftruncate(fd, (off_t)size) < 0 ||
	    (new_file ? fsync(fd) : fdatasync(fd)) < 0) {
		err = -errno;
		goto out;
	}
	if (tag_ret)
		memcpy(tag_ret, tag, FSH_TAG_BYTES);
out:
	free(buf);
	return err;
}

struct fspf_pending {
	char *path;
	char *tmp;
};

void fspf_store_abort(struct fspf_pending *p)
{
	if (!p)
		return;
	if (p->tmp)
		unlink(p->tmp);
	free(p->tmp);
	free(p->path);
	free(p);
}

int fspf_store_begin(const struct fspf *f, const char *path,
		     const struct fsh_key *key, struct fspf_pending **pending_ret,
		     uint8_t tag_ret[FSH_TAG_BYTES])
{
	struct fspf_pending *p;
	uint8_t tag[FSH_TAG_BYTES];
	uint8_t *buf = NULL;
	size_t size;
	int fd, err;

	err = fspf_encode(f, key, &buf, &size, tag);
	if (err)
		return err;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->path = strdup(path)) ||
	    asprintf(&p->tmp, "%s.tmp.XXXXXX", path) < 0) {
		if (p)
			p->tmp = NULL;
		err = -ENOMEM;
		goto fail;
	}
	fd = mkostemp(p->tmp, O_CLOEXEC); /* mode 0600 */
	if (fd < 0) {
		err = -errno;
		free(p->tmp);
		p->tmp = NULL;
		goto fail;
	}
	err = write_all(fd, buf, size);
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (err)
		goto fail;
	free(buf);
	if (tag_ret)
		memcpy(tag_ret, tag, FSH_TAG_BYTES);
	*pending_ret = p;
	return 0;
fail:
	free(buf);
	fspf_store_abort(p);
	return err;
}

static int store_finish(struct fspf_pending *p, bool sync_dir)
{
	char *dir, *slash;
	int dfd, err = 0;

	if (rename(p->tmp, p->path) < 0) {
		err = -errno;
		fspf_store_abort(p);
		return err;
	}
	free(p->tmp);
	p->tmp = NULL;
	/* Make the rename itself durable. */
	dir = sync_dir ? strdup(p->path) : NULL;
	if (dir) {
		slash = strrchr(dir, '/');
		if (!slash)
			strcpy(dir, ".");
		else if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
		/*
		 * Best effort: the new fspf is in place whatever happens here,
		 * so a caller must not be told that nothing changed.
		 */
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			(void)fsync(dfd);
			close(dfd);
		}
		free(dir);
	}
	fspf_store_abort(p);
	return err;
}

int fspf_store_finish(struct fspf_pending *p)
{
	return store_finish(p, true);
}

int fspf_store_rename(struct fspf_pending *p)
{
	return store_finish(p, false);
}

int fspf_store(const struct fspf *f, const char *path,
	       const struct fsh_key *key, uint8_t tag_ret[FSH_TAG_BYTES])
{
	struct fspf_pending *p;
	uint8_t tag[FSH_TAG_BYTES];
	int err = fspf_store_begin(f, path, key, &p, tag);

	if (!err)
		err = fspf_store_finish(p);
	if (!err && tag_ret)
		memcpy(tag_ret, tag, FSH_TAG_BYTES);
	return err;
}
