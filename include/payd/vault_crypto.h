/*
 * Cryptographic building blocks of the vault: AES-256-GCM, the versioned envelope
 * format, the sealed root-key file and Shamir secret sharing over GF(256).
 *
 * Envelope (ARCHITECTURE.md §6), all integers big-endian:
 *   magic "PDE" | format version (1) | key number u32 | key version u32 |
 *   nonce[12] | ciphertext | tag[16]
 * The associated data is the 12-byte header followed by the encryption context,
 * so a wrong context, a flipped bit anywhere, or a header edited to point at another
 * key/version fails authentication instead of yielding garbage.
 */
#ifndef PAYD_VAULT_CRYPTO_H
#define PAYD_VAULT_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/crypto.h"
#include "payd/error.h"

#define PD_KEY_LEN 32
#define PD_GCM_NONCE 12
#define PD_GCM_TAG 16
#define PD_ENV_HEADER 12
#define PD_ENV_OVERHEAD (PD_ENV_HEADER + PD_GCM_NONCE + PD_GCM_TAG)
#define PD_ENV_VERSION 1

/* AES-256-GCM with a fresh random nonce: out = nonce | ct | tag (len + 28 bytes). */
int pd_aead_seal(const uint8_t key[PD_KEY_LEN], const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t ptlen,
                 uint8_t *out) PD_WUR;
/* Opens nonce | ct | tag; out gets len - 28 bytes. PD_ERR_AUTH on any mismatch. */
int pd_aead_open(const uint8_t key[PD_KEY_LEN], const uint8_t *aad, size_t aadlen, const uint8_t *in, size_t inlen,
                 uint8_t *out) PD_WUR;

typedef struct {
    uint32_t key_num;
    uint32_t key_version;
} pd_env_header_t;

/* Parses the header of an envelope. PD_ERR_TRUNCATED if too short to be one,
 * PD_ERR_INVALID for a bad magic, PD_ERR_KEY_VERSION for an unknown format version. */
int pd_env_parse(pd_view_t env, pd_env_header_t *h) PD_WUR;
/* Encrypts pt under key (the material of key_num/key_version) with context as AAD;
 * appends the envelope to out. */
int pd_env_seal(pd_buf_t *out, uint32_t key_num, uint32_t key_version, const uint8_t key[PD_KEY_LEN],
                pd_view_t context, pd_view_t pt) PD_WUR;
/* Decrypts an envelope whose header was already parsed into h (its key supplied by
 * the caller); appends the plaintext to out. PD_ERR_AUTH when the context, the key
 * or any byte is wrong; PD_ERR_TRUNCATED when too short. */
int pd_env_open(pd_buf_t *out, const uint8_t key[PD_KEY_LEN], pd_view_t context, pd_view_t env) PD_WUR;

/*
 * The sealed root key file:
 *   payd-vault-keyfile 1
 *   kdf scrypt <N> <r> <p>
 *   salt <hex 16 bytes>
 *   sealed <hex nonce|ct|tag of the 32-byte root key, AAD "payd-root-key">
 * The passphrase never touches disk through this code.
 */
int pd_keyfile_write(const char *path, const uint8_t root[PD_KEY_LEN], const char *pass, size_t passlen) PD_WUR;
/* PD_ERR_AUTH: wrong passphrase; PD_ERR_INVALID: malformed file (message in err). */
int pd_keyfile_read(const char *path, const char *pass, size_t passlen, uint8_t root[PD_KEY_LEN], char *err,
                    size_t errcap) PD_WUR;
/* Same, from text already in memory (for the fuzzer). */
int pd_keyfile_parse(pd_view_t text, const char *pass, size_t passlen, uint8_t root[PD_KEY_LEN], char *err,
                     size_t errcap) PD_WUR;

/*
 * Shamir secret sharing of a PD_KEY_LEN secret over GF(256). A share is text:
 *   pdshare1-<threshold>-<index>-<64 hex digits>-<8 hex check digits>
 * The check digits (a hash of the rest) catch typos in a single share; a share from
 * another secret is caught by the root-key check value the vault keeps.
 */
#define PD_SHARE_TEXT 112
int pd_shamir_split(const uint8_t secret[PD_KEY_LEN], int n, int threshold, char shares[][PD_SHARE_TEXT]) PD_WUR;
/* Combines shares (at least the threshold they carry). PD_ERR_INVALID with a message
 * for malformed/duplicate/mismatched shares, PD_ERR_RANGE for too few. */
int pd_shamir_combine(const char *const *shares, int n, uint8_t secret[PD_KEY_LEN], char *err, size_t errcap) PD_WUR;

#endif
