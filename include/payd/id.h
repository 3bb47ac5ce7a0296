/*
 * Object identifiers: "<prefix>_", PD_ID_TIME_LEN base62 characters of the creation
 * time in milliseconds, then PD_ID_RAND_LEN base62 characters from the CSPRNG (~143
 * bits of randomness), e.g. pi_0lRc2Xq3MtwBwLkdIwHu7ix28a3tqPa. The time prefix makes
 * ids sort by creation, so the rows one group commit inserts land on the last page of
 * each id index instead of on pages all over the current second's range (which cost
 * a WAL frame each).
 */
#ifndef PAYD_ID_H
#define PAYD_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/error.h"

#define PD_ID_TIME_LEN 7 /* creation millisecond, base62 (until the year 2080): ids sort by time */
#define PD_ID_RAND_LEN 24
#define PD_ID_MAX 48 /* longest id including NUL */

/* Writes prefix "_" time random into out. Returns PD_ERR_TOOBIG if cap is too small. */
int pd_id_new(const char *prefix, char *out, size_t cap) PD_WUR;
/* Fills out[0..n) with uniform base62 characters (no NUL added). */
int pd_rand_base62(char *out, size_t n) PD_WUR;
/* Random bytes for public identifiers (trace ids), from the same pooled CSPRNG
 * output as ids. Never for keys or secrets. */
int pd_rand_public(uint8_t *out, size_t n) PD_WUR;
/* A process-wide increasing sequence (microseconds of the real clock, bumped past the last
 * one given) that orders records within lists. */
int64_t pd_next_seq(void);
/* True when v looks like an id with this prefix: prefix "_" [0-9A-Za-z]{8,64}. */
bool pd_id_valid(pd_view_t v, const char *prefix);

#endif
