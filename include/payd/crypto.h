/* Cryptographic helpers shared by payd and the vault (src/core/hmac.c). */
#ifndef PAYD_CRYPTO_H
#define PAYD_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "payd/error.h"

/* n uniform base62 characters from the private DRBG (for passphrases, credentials and keys). */
int pd_secret_base62(char *out, size_t n) PD_WUR;

/* HMAC-SHA256 into out[32] (a per-thread context, re-keyed per call). */
int pd_hmac_sha256(const uint8_t *key, size_t keylen, const uint8_t *msg, size_t msglen, uint8_t out[32]) PD_WUR;

#endif
