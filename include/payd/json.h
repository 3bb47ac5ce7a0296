/*
 * JSON output (a streaming writer over pd_buf_t) and input helpers over jansson.
 *
 * The writer has a sticky error: after the first failure every call is a no-op and
 * pd_jw_finish() returns the error, so call sites need not check each call. Strings
 * are escaped; bytes that are not valid UTF-8 are written as U+FFFD, so the output is
 * always valid JSON.
 */
#ifndef PAYD_JSON_H
#define PAYD_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "payd/buf.h"

#define PD_JW_MAX_DEPTH 32

typedef struct {
    pd_buf_t *b;
    int err;
    int depth;
    bool first[PD_JW_MAX_DEPTH]; /* no element written yet at this depth */
    bool after_key;
} pd_jw_t;

void pd_jw_init(pd_jw_t *w, pd_buf_t *b);
int pd_jw_finish(pd_jw_t *w) PD_WUR;
void pd_jw_obj_begin(pd_jw_t *w);
void pd_jw_obj_end(pd_jw_t *w);
void pd_jw_arr_begin(pd_jw_t *w);
void pd_jw_arr_end(pd_jw_t *w);
void pd_jw_key(pd_jw_t *w, const char *k);
void pd_jw_keyv(pd_jw_t *w, pd_view_t k);
void pd_jw_str(pd_jw_t *w, const char *s); /* NULL writes null */
void pd_jw_strv(pd_jw_t *w, pd_view_t s);
void pd_jw_int(pd_jw_t *w, int64_t v);
void pd_jw_bool(pd_jw_t *w, bool v);
void pd_jw_null(pd_jw_t *w);
/* Inserts already-serialized JSON (the caller vouches for its validity). */
void pd_jw_raw(pd_jw_t *w, pd_view_t json);
/* Serializes a jansson value (jansson's iterators take a mutable value; v is not changed). */
void pd_jw_json(pd_jw_t *w, json_t *v);

/* key + value shorthands */
static inline void pd_jw_kstr(pd_jw_t *w, const char *k, const char *s) { pd_jw_key(w, k); pd_jw_str(w, s); }
static inline void pd_jw_kstrv(pd_jw_t *w, const char *k, pd_view_t s) { pd_jw_key(w, k); pd_jw_strv(w, s); }
static inline void pd_jw_kint(pd_jw_t *w, const char *k, int64_t v) { pd_jw_key(w, k); pd_jw_int(w, v); }
static inline void pd_jw_kbool(pd_jw_t *w, const char *k, bool v) { pd_jw_key(w, k); pd_jw_bool(w, v); }
static inline void pd_jw_knull(pd_jw_t *w, const char *k) { pd_jw_key(w, k); pd_jw_null(w); }

/* A Stripe error body {"error": {type, code, message, param, <extra members>, request_id}}
 * into body (reset first): the one writer of error bodies, for the edge's answers and for
 * those the API stores with idempotency keys. code, param, extra_members and request_id
 * may be NULL; extra_members is member text written by payd itself
 * ("charge":"ch_…","payment_intent":{…}). */
int pd_error_json(pd_buf_t *body, const char *type, const char *code, const char *param, const char *extra_members,
                  const char *request_id, const char *message) PD_WUR;

/* Appends s as a JSON string literal (with quotes) to b. */
int pd_json_escape(pd_buf_t *b, const uint8_t *s, size_t len) PD_WUR;

/* Length of the longest valid UTF-8 prefix of p[0..len). */
size_t pd_utf8_valid_prefix(const uint8_t *p, size_t len);
static inline bool pd_utf8_valid(const uint8_t *p, size_t len) { return pd_utf8_valid_prefix(p, len) == len; }

/*
 * Parses a JSON document. Duplicate object keys, trailing data, invalid UTF-8 and
 * nesting deeper than max_depth are rejected; on failure *errbuf (may be NULL,
 * size errcap) receives a message with the position. Returns NULL on failure.
 */
json_t *pd_json_parse(pd_view_t in, int max_depth, char *errbuf, size_t errcap);

#endif
