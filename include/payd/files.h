/*
 * payd's encrypted files (issue 16's file store, docs/files.md): the on-disk format and
 * its streaming writer and reader. The data key comes from the caller (a fresh one per
 * file from the vault's alias/files, with the wrapped copy stored in the header); this
 * layer only encrypts, authenticates and commits.
 *
 * Format, all integers big-endian:
 *   header  "PDF1" | u8 version (1) | u8 0 | u16 id_len | id | u16 wrapped_len | wrapped key
 *           | u32 chunk size | 32-byte SHA-256 of the plaintext
 *   chunks  u32 plaintext length (<= chunk size) | u8 flags (1: the final chunk)
 *           | AES-256-GCM ciphertext | 16-byte tag
 * Chunk i is sealed with the nonce 0^4 | u64 i (one data key per file: no nonce repeats)
 * and the additional data header-without-SHA | u64 i | flags, plus the SHA-256 on the
 * final chunk. So a changed header, a chunk moved, dropped, duplicated or cut short, a
 * missing final chunk and a changed SHA-256 all fail authentication; a file always ends
 * with exactly one final chunk (an empty file is one empty final chunk).
 *
 * The writer writes to a temporary name in the target directory, fsyncs it, renames it
 * to its name and fsyncs the directory: a crash leaves no half file under a real name.
 * Memory is bounded by one chunk on each side, whatever the file's size.
 */
#ifndef PAYD_FILES_H
#define PAYD_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"

#define PD_FILE_CHUNK (1u << 20) /* plaintext bytes per chunk */
#define PD_FILE_KEY_LEN 32
#define PD_FILE_ID_MAX 64
#define PD_FILE_WRAPPED_MAX 1024

typedef struct pd_file_writer pd_file_writer_t;

/* Starts dir/name: a temporary file in dir, the header written. id (a file id, at most
 * PD_FILE_ID_MAX bytes) and wrapped (the data key as the vault wrapped it) go into the
 * header in clear; key is the plaintext data key (copied, wiped at the end). */
int pd_file_writer_open(pd_file_writer_t **out, const char *dir, const char *name, const char *id,
                        const uint8_t key[PD_FILE_KEY_LEN], pd_view_t wrapped) PD_WUR;
/* Appends n bytes (sealed a chunk at a time). */
int pd_file_writer_write(pd_file_writer_t *w, const void *p, size_t n) PD_WUR;
/* Seals the final chunk, records the SHA-256, syncs and renames the file into place;
 * sha (may be NULL) and size (may be NULL) get the plaintext's. Frees w either way: on
 * failure nothing is left under the name. */
int pd_file_writer_commit(pd_file_writer_t *w, uint8_t sha[32], uint64_t *size) PD_WUR;
/* Drops the temporary file and frees w (NULL: nothing). */
void pd_file_writer_abort(pd_file_writer_t *w);

typedef struct pd_file_reader pd_file_reader_t;

/* Opens path and reads its header: id and wrapped (views into the reader, valid until it
 * is closed) tell the caller which data key to unwrap. PD_ERR_INVALID for a file that is
 * not in this format. */
int pd_file_reader_open(pd_file_reader_t **out, const char *path, pd_view_t *id, pd_view_t *wrapped) PD_WUR;
/* The data key the header's wrapped key unwraps to (copied, wiped at close). */
void pd_file_reader_key(pd_file_reader_t *r, const uint8_t key[PD_FILE_KEY_LEN]);
/* Up to cap plaintext bytes into buf, *n of them; *n == 0 once the final chunk and the
 * SHA-256 have been checked. PD_ERR_AUTH (tampered, wrong key, reordered, SHA-256
 * mismatch), PD_ERR_TRUNCATED (cut short), PD_ERR_INVALID (malformed, bytes after the
 * final chunk): whatever was read before an error must be discarded. */
int pd_file_reader_read(pd_file_reader_t *r, void *buf, size_t cap, size_t *n) PD_WUR;
/* The SHA-256 the header records (checked against the plaintext by the last read). */
const uint8_t *pd_file_reader_sha(const pd_file_reader_t *r);
void pd_file_reader_close(pd_file_reader_t *r);

#endif
