/*
 * Request parameters: form bodies (Stripe's bracket syntax), query strings and JSON
 * bodies decoded into one flat list of (key path, value) pairs, so the WAF, the
 * route's schema and the handlers all read the same decoded view.
 *
 * Key paths use brackets for nesting in both encodings:
 *   form  card[number]=4242...&enabled_events[]=a&enabled_events[]=b&metadata[k]=v
 *   JSON  {"card":{"number":"4242..."},"enabled_events":["a","b"],"metadata":{"k":"v"}}
 *   both  -> card[number], enabled_events[0], enabled_events[1], metadata[k]
 *
 * All memory comes from the caller's arena; values are NUL-terminated copies.
 * Decoding fails closed on: bad percent escapes, invalid UTF-8, NUL bytes, malformed
 * brackets, duplicate keys, nesting deeper than PD_PARAMS_MAX_DEPTH, more than
 * PD_PARAMS_MAX parameters, and (JSON) anything jansson rejects.
 */
#ifndef PAYD_PARAMS_H
#define PAYD_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/arena.h"
#include "payd/buf.h"

#define PD_PARAMS_MAX 512
#define PD_PARAMS_MAX_DEPTH 8
#define PD_PARAMS_MAX_KEY 256

typedef enum {
    PD_P_STR,   /* form values are always strings */
    PD_P_INT,   /* JSON integer (value holds its decimal text) */
    PD_P_REAL,  /* JSON number with fraction or exponent (text) */
    PD_P_BOOL,  /* JSON true/false ("true"/"false") */
    PD_P_NULL,  /* JSON null ("") */
    PD_P_EMPTY, /* JSON {} or [] ("") */
} pd_ptype_t;

typedef struct {
    pd_view_t key;   /* normalized path, NUL-terminated */
    pd_view_t value; /* decoded, NUL-terminated */
    pd_ptype_t type;
    bool used;       /* matched by the schema or read by the handler */
    char *bytes;     /* value's bytes, owned by the request's arena: wiped in place for secrets */
} pd_param_t;

typedef struct {
    pd_param_t *v;
    size_t n;
} pd_params_t;

typedef struct {
    char message[256];
    char param[PD_PARAMS_MAX_KEY]; /* offending key if known */
} pd_params_error_t;

/* application/x-www-form-urlencoded (also used for query strings). */
int pd_params_parse_form(pd_arena_t *a, pd_view_t in, pd_params_t *out, pd_params_error_t *err) PD_WUR;
/* application/json: the top level must be an object. */
int pd_params_parse_json(pd_arena_t *a, pd_view_t in, pd_params_t *out, pd_params_error_t *err) PD_WUR;

/* The parameter with exactly this key, or NULL. Marks it used. */
pd_param_t *pd_params_get(pd_params_t *p, const char *key);
/* True when any key equals name or starts with "name[". */
bool pd_params_has_prefix(const pd_params_t *p, const char *name);

/* Decodes %XX and '+' (form rules) into out (cap bytes, NUL added); returns the length or -1. */
long pd_url_decode(const uint8_t *in, size_t len, char *out, size_t cap, bool plus_is_space);

#endif
