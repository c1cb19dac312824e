/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fspf (file system protection file): regions, entries (files,
 * directories, symlinks) and per-chunk records, and its sealed encoding.
 * See fspf(5) for the byte layout.
 *
 * Functions return 0 or a negative errno; fspf_strerror() names the
 * format-specific ones:
 *   -EMEDIUMTYPE       not an fspf (bad magic)
 *   -EPROTONOSUPPORT   unknown format version
 *   -EUCLEAN           malformed: bad size, non-zero reserved bytes, bad
 *                      record, unsorted or inconsistent tables
 *   -EKEYREJECTED      the key is not the fspf's key
 *   -ENOKEY            the fspf is encrypted and no key was given
 *   -EBADMSG           the root tag does not verify: the fspf was tampered with
 */
#ifndef FSPF_H
#define FSPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsh_crypto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FSPF_MAGIC_BYTES 8
#define FSPF_VERSION_MAJOR 1
/* 1.0, and 1.1 with a lineage; written as 1.0 while the lineage is empty */
#define FSPF_VERSION_MINOR 1
#define FSPF_HEADER_BYTES 96
#define FSPF_REGION_RECORD_BYTES 32
#define FSPF_ENTRY_RECORD_BYTES 64
#define FSPF_CHUNK_RECORD_BYTES 28
#define FSPF_CHUNK_AD_BYTES 32
#define FSPF_ID_BYTES 16

#define FSPF_DEFAULT_CHUNK_BYTES 4096u
#define FSPF_MIN_CHUNK_BYTES 512u
#define FSPF_MAX_CHUNK_BYTES (16u << 20)
#define FSPF_DEFAULT_FILE_KEY_BYTES 32u
#define FSPF_PATH_MAX_BYTES 4096u
#define FSPF_MAX_REGIONS 4096u
/* Tags of earlier states an fspf names (its lineage), at most. */
#define FSPF_LINEAGE_MAX 16u

/* Header flags. */
#define FSPF_F_ZERO_KEY 0x1u /* sealed under the all-zero key: not encrypted yet */

enum fspf_protection {
	FSPF_NOT_PROTECTED = 0,
	FSPF_AUTHENTICATED = 1,
	FSPF_ENCRYPTED = 2,
};

enum fspf_storage {
	FSPF_KERNEL = 0,
	FSPF_EPHEMERAL = 1,
};

enum fspf_type {
	FSPF_FILE = 1,
	FSPF_DIR = 2,
	FSPF_SYMLINK = 3,
};

/**
 * struct fspf_region - a path prefix with a protection and a storage.
 * @path:       embed point: absolute, normalised ("/", "/usr/lib")
 * @kernel:     host directory of a kernel region, NULL for ephemeral ones
 * @key_size:   per-file key bytes (16, 24, 32); 0 when not protected
 * @chunk_size: chunk bytes; 0 when not protected
 */
struct fspf_region {
	char *path;
	char *kernel;
	uint8_t protection;
	uint8_t storage;
	uint32_t key_size;
	uint32_t chunk_size;
};

/** struct fspf_chunk - the record of one chunk: its nonce and GCM tag. */
struct fspf_chunk {
	uint8_t nonce[FSH_NONCE_BYTES];
	uint8_t tag[FSH_TAG_BYTES];
};
_Static_assert(sizeof(struct fspf_chunk) == FSPF_CHUNK_RECORD_BYTES,
	       "chunk record is stored as is");

/**
 * struct fspf_entry - one recorded file, directory or symlink of a protected
 * region. Everything here is under the root tag.
 * @target:      symlink target (NULL otherwise)
 * @size:        file size in bytes; symlink: target length; dir: 0
 * @mode:        permission bits (07777)
 * @mtime_ns:    modification time, nanoseconds since the epoch
 * @id:          random file id, part of every chunk's associated data
 * @key_slot:    index of the file key in the fspf's key table (files only)
 * @chunks:      one record per chunk (files only)
 */
struct fspf_entry {
	char *path;
	char *target;
	uint64_t size;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint8_t type;
	int64_t mtime_ns;
	uint8_t id[FSPF_ID_BYTES];
	uint32_t key_slot;
	uint64_t chunk_count;
	struct fspf_chunk *chunks;
};

struct fspf;

/** fspf_new() - an empty fspf (no regions, no entries). */
int fspf_new(struct fspf **fspf_ret);

/** fspf_free() - free @fspf, wiping its key table. NULL-safe. */
void fspf_free(struct fspf *fspf);

/** fspf_strerror() - a message for an errno returned by this module. */
const char *fspf_strerror(int err);

/**
 * struct fspf_info - what the clear header says, readable without a key.
 */
struct fspf_info {
	uint16_t major, minor;
	uint32_t flags;
	uint32_t region_count;
	uint32_t entry_count;
	uint64_t chunk_count;
	uint32_t lineage_count;
	uint8_t tag[FSH_TAG_BYTES];
};

/**
 * fspf_peek() - check the clear header and the total size of an encoded fspf
 * and report it. Authenticates nothing.
 * Return: 0, -EMEDIUMTYPE, -EPROTONOSUPPORT, -EUCLEAN.
 */
int fspf_peek(const uint8_t *buf, size_t size, struct fspf_info *info);

/**
 * fspf_decode() - verify and decode an encoded fspf.
 * @key: the fspf key (32 bytes), or NULL. An fspf sealed under the all-zero
 *       key (FSPF_F_ZERO_KEY) opens with or without a key; the caller decides
 *       whether to accept it (fspf_is_encrypted()): it proves nothing, since
 *       anyone can write one. An encrypted fspf never opens with an all-zero
 *       key (-EKEYREJECTED).
 * @tag_ret: the root tag, written on success (may be NULL).
 *
 * Nothing of the body is used before its tag verified.
 * Return: 0, or one of the errors listed at the top of this header, -ENOMEM.
 */
int fspf_decode(const uint8_t *buf, size_t size, const struct fsh_key *key,
		struct fspf **fspf_ret, uint8_t tag_ret[FSH_TAG_BYTES]);

/**
 * fspf_encode() - seal @fspf under @key (NULL: the all-zero key) with a fresh
 * nonce. The caller frees *@buf_ret with free().
 * Return: 0, -EINVAL when @fspf breaks a rule of the format or @key is not a
 * 32-byte key or is all zero (a public key must not seal an fspf marked
 * encrypted), -ENOMEM, -EIO.
 */
int fspf_encode(const struct fspf *fspf, const struct fsh_key *key,
		uint8_t **buf_ret, size_t *size_ret,
		uint8_t tag_ret[FSH_TAG_BYTES]);

/**
 * fspf_load() - read and decode the fspf at @path (see fspf_decode()).
 * Return: as fspf_decode(), or the negative errno of the failed read.
 */
int fspf_load(const char *path, const struct fsh_key *key,
	      struct fspf **fspf_ret, uint8_t tag_ret[FSH_TAG_BYTES]);

/**
 * fspf_store() - encode @fspf and replace the file at @path atomically
 * (temporary file in the same directory, fsync, rename, fsync of the
 * directory), mode 0600. On failure the old file is untouched.
 */
int fspf_store(const struct fspf *fspf, const char *path,
	       const struct fsh_key *key, uint8_t tag_ret[FSH_TAG_BYTES]);

/**
 * struct fspf_pending - an encoded fspf written and fsynced to a temporary
 * file beside its destination, not yet renamed over it.
 */
struct fspf_pending;

/**
 * fspf_store_begin() - the first half of fspf_store(): encode, write and
 * fsync a temporary file. Lets a caller do the slow, failure-prone part
 * before it changes anything else, then commit with one rename.
 * The tag in @tag_ret is the one the fspf will have once committed.
 */
int fspf_store_begin(const struct fspf *fspf, const char *path,
		     const struct fsh_key *key, struct fspf_pending **pending_ret,
		     uint8_t tag_ret[FSH_TAG_BYTES]);

/**
 * fspf_store_finish() - rename the temporary file over the destination and
 * fsync the directory; frees @pending. On failure the temporary file is
 * removed and the old fspf is untouched. Once the rename succeeded it
 * returns 0: a failed fsync of the directory is not reported, since the new
 * fspf is in place either way.
 */
int fspf_store_finish(struct fspf_pending *pending);

/**
 * fspf_store_rename() - fspf_store_finish() without the fsync of the
 * directory: the rename is in place at once and durable some time later.
 * Only for a caller whose commit point is elsewhere, already durable, and
 * that finds the temporary file again after a crash (a tag file naming the
 * new tag, and fspf_load_pending() at the next open).
 */
int fspf_store_rename(struct fspf_pending *pending);

/**
 * fspf_store_fd() - encode @fspf and write it as the whole content of the
 * regular file open for writing at @fd, in place: pwrite at offset 0,
 * ftruncate to its size, then fdatasync (@new_file: fsync, which also makes
 * a newly created file's name durable on the Linux file systems we know).
 * For a writer that keeps a pending fspf in a slot file it reuses from
 * commit to commit (a tag file names the commit, fspf_load_pending() finds
 * it). Not atomic: while it runs and after it failed the file holds no
 * valid fspf, so only a file that no tag file names may be passed.
 * The tag in @tag_ret is the new fspf's.
 * Return: 0, an error of fspf_encode(), or the negative errno of the write,
 * truncate or sync.
 */
int fspf_store_fd(const struct fspf *fspf, int fd, const struct fsh_key *key,
		  bool new_file, uint8_t tag_ret[FSH_TAG_BYTES]);

/** fspf_store_abort() - remove the temporary file and free @pending. NULL-safe. */
void fspf_store_abort(struct fspf_pending *pending);

/**
 * fspf_load_pending() - find the new fspf of an interrupted commit: a
 * temporary file of fspf_store_begin() or a slot file of fspf_store_fd()
 * beside @path ("<path>.tmp.*") that verifies under @key and has tag
 * @expected or, when @max_depth > 0, descends from it: @expected is one
 * of the first @max_depth tags of its lineage (fspf_descent()). Of those,
 * the one that descends furthest (the newest) is taken. A writer that
 * names its new tag (a tag file) before it renames the new fspf into
 * place leaves exactly this behind when it dies in between; one whose
 * tag file lags behind its commits (synced only now and then), a newer
 * state than the tag file names. Files that do not verify (a slot torn by
 * a crash while it was rewritten, an older state) are passed over.
 * @tag_ret:     its tag (may be NULL)
 * @depth_ret:   its fspf_descent() from @expected (may be NULL)
 * @pending_ret: the temporary file's path, for the caller to free (and to
 *               rename over @path, if it may write).
 * Return: 0, -ENOENT (none), or the errno of reading the directory.
 */
int fspf_load_pending(const char *path, const struct fsh_key *key,
		      const uint8_t expected[FSH_TAG_BYTES],
		      unsigned int max_depth, struct fspf **fspf_ret,
		      uint8_t tag_ret[FSH_TAG_BYTES], unsigned int *depth_ret,
		      char **pending_ret);

/**
 * fspf_lineage() - the tags of the states this fspf's state was committed
 * over, newest first: [0] is the state it replaced. Sealed with the rest:
 * a reader whose expected tag may lag behind the writer's commits (a tag
 * file synced only now and then) can tell a newer state of the same
 * history from any other. At most FSPF_LINEAGE_MAX.
 * Return: how many, the tags at *@tags_ret (16 bytes each, contiguous).
 */
size_t fspf_lineage(const struct fspf *fspf, const uint8_t **tags_ret);

/**
 * fspf_lineage_push() - name @tag (the state about to be replaced) as the
 * newest of the lineage; the oldest beyond FSPF_LINEAGE_MAX is dropped.
 */
void fspf_lineage_push(struct fspf *fspf, const uint8_t tag[FSH_TAG_BYTES]);

/** fspf_lineage_set() - replace the lineage (at most FSPF_LINEAGE_MAX tags). */
void fspf_lineage_set(struct fspf *fspf, const uint8_t *tags, size_t count);

/**
 * fspf_descent() - how many commits the state of @fspf, whose tag is @tag,
 * is after the state with tag @ancestor: 0 when @tag is @ancestor, k when
 * @ancestor is the k-th tag of its lineage, -1 when neither.
 */
int fspf_descent(const struct fspf *fspf, const uint8_t tag[FSH_TAG_BYTES],
		 const uint8_t ancestor[FSH_TAG_BYTES]);

/** fspf_is_encrypted() - false when it was decoded from a zero-key fspf. */
bool fspf_is_encrypted(const struct fspf *fspf);

/* Regions. */
size_t fspf_region_count(const struct fspf *fspf);
const struct fspf_region *fspf_region(const struct fspf *fspf, size_t index);

/**
 * fspf_region_add() - add a region, checking every rule: a valid embed point,
 * no duplicate, "/" present once there is more than one region, no region
 * that would take over recorded entries of another, kernel directories that
 * do not overlap inconsistently, valid key and chunk sizes.
 * @why_ret: on -EINVAL/-EEXIST, a static message saying which rule.
 * Return: 0, -EINVAL, -EEXIST, -ENOMEM.
 */
int fspf_region_add(struct fspf *fspf, const struct fspf_region *region,
		    const char **why_ret);

/**
 * fspf_region_lookup() - index of the region with the longest embed point
 * that contains @path, compared by path components.
 * Return: 0, or -ENOENT when no region contains @path.
 */
int fspf_region_lookup(const struct fspf *fspf, const char *path,
		       size_t *index_ret);

/* Entries, kept sorted by path. */
size_t fspf_entry_count(const struct fspf *fspf);
struct fspf_entry *fspf_entry(const struct fspf *fspf, size_t index);

/** fspf_entry_find() - the entry at exactly @path, or NULL. */
struct fspf_entry *fspf_entry_find(const struct fspf *fspf, const char *path);

/**
 * fspf_entry_range() - the entries at or below @dir: indices [*first, *end).
 */
void fspf_entry_range(const struct fspf *fspf, const char *dir, size_t *first,
		      size_t *end);

/**
 * fspf_entries_put() - add or replace @count entries in one pass.
 *
 * Each entry's path and target are taken over by the fspf (the caller's
 * struct is emptied), a file gets a fresh random id and a fresh random key of
 * its region's key size, and its chunks array is allocated for its size
 * (records zeroed: the caller seals them). An entry at the path of an
 * existing one replaces it; so does a directory replacing a file. Entries
 * must lie in protected kernel regions.
 * @why_ret/@path_ret: on -EINVAL, a static message and the offending path
 * (pointing into the caller's array).
 * Return: 0, -EINVAL, -ENOMEM.
 */
int fspf_entries_put(struct fspf *fspf, struct fspf_entry *entries,
		     size_t count, const char **why_ret,
		     const char **path_ret);

/**
 * fspf_entry_insert() - add one new entry at a free path: the cheap path for
 * a runtime that creates files one at a time. Its parent must be the embed
 * point of its region or a recorded directory. A file gets a fresh id and
 * key and zeroed chunk records for its size. The entry's strings are taken
 * over (*@in is emptied) on success only.
 * @why_ret: on -EINVAL/-EEXIST/-ENOENT, a static message (or NULL).
 * Return: 0, -EEXIST, -ENOENT/-ENOTDIR (parent), -EINVAL, -ENOMEM.
 */
int fspf_entry_insert(struct fspf *fspf, struct fspf_entry *in,
		      const char **why_ret);

/**
 * fspf_entry_remove() - remove the entry at @path; a directory must have no
 * entries below it. A file's key slot is wiped and released. With @taken
 * the entry (path, chunk records, id) is moved there for the caller to
 * free (its key is gone from the fspf), else it is freed.
 * Return: 0, -ENOENT, -ENOTEMPTY.
 */
int fspf_entry_remove(struct fspf *fspf, const char *path,
		      struct fspf_entry *taken);

/**
 * fspf_entry_move() - rename the entry at @from, and every entry below it,
 * to @to, which must be free, in the same region, with a recorded parent.
 * Ids, keys and chunk records stay: a chunk's associated data has no path.
 * Return: 0, -ENOENT, -EEXIST, -EXDEV (another region), -EBUSY (an embed
 * point is at or below either path), -EINVAL (@to inside @from),
 * -ENOTDIR, -ENAMETOOLONG, -ENOMEM. On error nothing changed.
 */
int fspf_entry_move(struct fspf *fspf, const char *from, const char *to);

/**
 * fspf_entry_resize() - set file @entry's size, growing (zeroed records)
 * or shrinking its chunk records to match; the caller seals what changed.
 * Return: 0, -EINVAL (not a file), -EFBIG, -ENOMEM (nothing changed).
 */
int fspf_entry_resize(struct fspf_entry *entry, uint32_t chunk_size,
		      uint64_t size);

/** fspf_entry_key() - the key bytes of file entry @entry. */
const uint8_t *fspf_entry_key(const struct fspf *fspf,
			      const struct fspf_entry *entry);

/** fspf_entry_region() - the region of @entry. */
const struct fspf_region *fspf_entry_region(const struct fspf *fspf,
					    const struct fspf_entry *entry);

/** fspf_chunk_count() - how many chunks @size bytes take at @chunk_size. */
uint64_t fspf_chunk_count(uint64_t size, uint32_t chunk_size);

/**
 * fspf_chunk_seal() - protect chunk @index of @entry: encrypt @in into @out
 * (encrypted region) or MAC @in (authenticated region; @out unused), with a
 * fresh nonce, and store nonce and tag in @entry->chunks[@index].
 * @aead is a context for this entry's key. @size is the chunk's length.
 */
int fspf_chunk_seal(struct fsh_aead *aead, const struct fspf_region *region,
		    struct fspf_entry *entry, uint64_t index, const uint8_t *in,
		    uint8_t *out, size_t size);

/**
 * fspf_chunks_seal() - fspf_chunk_seal() of the consecutive chunks that
 * make up @size bytes at @in (whole chunks, the last may be partial),
 * starting at chunk @first; nonces are drawn in batches. @out may be NULL
 * for an authenticated region.
 * Return: 0, -EINVAL (bad range or region), -EIO.
 */
int fspf_chunks_seal(struct fsh_aead *aead, const struct fspf_region *region,
		     struct fspf_entry *entry, uint64_t first,
		     const uint8_t *in, uint8_t *out, size_t size);

/**
 * fspf_chunks_seal_rec() - fspf_chunks_seal() into records @recs (the
 * first is chunk @first's) of the file with id @id: lets a caller seal
 * without holding the entry, then store the records.
 */
int fspf_chunks_seal_rec(struct fsh_aead *aead,
			 const struct fspf_region *region,
			 const uint8_t id[FSPF_ID_BYTES], uint64_t first,
			 struct fspf_chunk *recs, const uint8_t *in,
			 uint8_t *out, size_t size);

/**
 * fspf_chunk_open_rec() - fspf_chunk_open() against record @rec of chunk
 * @index of the file with id @id.
 */
FSH_WUR int fspf_chunk_open_rec(struct fsh_aead *aead,
				const struct fspf_region *region,
				const uint8_t id[FSPF_ID_BYTES], uint64_t index,
				const struct fspf_chunk *rec, const uint8_t *in,
				uint8_t *out, size_t size);

/**
 * fspf_chunk_open() - verify chunk @index of @entry from its stored bytes
 * @in and release the plaintext to @out (decrypted, or copied when only
 * authenticated). @out may equal @in. On failure @out is wiped.
 * Return: 0, -EBADMSG, -EIO.
 */
FSH_WUR int fspf_chunk_open(struct fsh_aead *aead,
			    const struct fspf_region *region,
			    const struct fspf_entry *entry, uint64_t index,
			    const uint8_t *in, uint8_t *out, size_t size);

/**
 * fspf_path_normalize() - check that @path is absolute and normalise it:
 * no empty, "." or ".." components, no trailing slash. Writes into @out
 * (FSPF_PATH_MAX_BYTES).
 * Return: 0, -EINVAL.
 */
int fspf_path_normalize(const char *path, char *out);

/**
 * fspf_host_path() - where the host stores @path of kernel region @r: an
 * absolute kernel directory lies under @root (NULL or "/": the host's /), a
 * relative one (a volume's ".") next to the fspf at @fspf_path.
 * Return: 0, or -ENAMETOOLONG when @out_size is too small.
 */
int fspf_host_path(const char *root, const char *fspf_path,
		   const struct fspf_region *r, const char *path, char *out,
		   size_t out_size);

/** fspf_path_valid() - true when @path is absolute and already normal. */
bool fspf_path_valid(const char *path, size_t len);

/**
 * fspf_path_contains() - true when @path is @prefix or lies below it, by
 * components ("/data" does not contain "/database"; "/" contains all).
 */
bool fspf_path_contains(const char *prefix, const char *path);

#ifdef __cplusplus
}
#endif

#endif /* FSPF_H */
