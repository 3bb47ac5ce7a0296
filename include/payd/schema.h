/*
 * The positive model of a route: which parameters exist, their types and limits.
 * One schema serves both the WAF (anything not declared is refused before the
 * handler runs) and the API's validation; errors are Stripe-shaped (code + param).
 *
 * Field names are key paths as produced by params.h ("amount", "card[number]").
 * PD_FT_MAP matches "name[key]" (metadata-like), PD_FT_LIST matches "name[N]".
 */
#ifndef PAYD_SCHEMA_H
#define PAYD_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "payd/params.h"

typedef enum {
    PD_FT_STRING,   /* UTF-8 text, length in bytes within [min, max] (max 0: 5000) */
    PD_FT_INT,      /* decimal integer (form text or JSON integer) within [min, max] */
    PD_FT_BOOL,     /* true/false */
    PD_FT_ENUM,     /* one of choices */
    PD_FT_ID,       /* an object id: [A-Za-z0-9_]{1,max}, max 0: 255 */
    PD_FT_CURRENCY, /* three ASCII letters (the handler checks the ISO table) */
    PD_FT_EMAIL,    /* local@domain, no spaces or controls, <= 512 bytes */
    PD_FT_URL,      /* http:// or https:// URL without spaces or controls, <= 2048 bytes */
    PD_FT_MAP,      /* name[key]=string: at most max_items keys, key <= 40 bytes, value <= max (0: 500) */
    PD_FT_LIST,     /* name[0..N]=string: at most max_items items; each checked against choices if set */
    PD_FT_DIGITS,   /* ASCII digits only, length within [min, max] (card numbers, CVC) */
} pd_ftype_t;

enum {
    PD_FF_REQUIRED = 1 << 0, /* must be present */
    PD_FF_UNSET = 1 << 1,    /* an empty value / JSON null means "unset" and is allowed */
    PD_FF_NOSCAN = 1 << 2,   /* a language of its own that the handler parses (a search query):
                              * the WAF's signatures do not scan it */
};

typedef struct {
    const char *name;
    pd_ftype_t type;
    unsigned flags;
    int64_t min, max;
    const char *const *choices; /* ENUM, LIST (NULL-terminated) */
    uint32_t max_items;         /* MAP, LIST (0: 50 for MAP, 100 for LIST) */
} pd_field_t;

typedef struct pd_schema_s {
    const pd_field_t *fields;
    size_t n;
} pd_schema_t;

#define PD_SCHEMA(arr) ((pd_schema_t){(arr), sizeof(arr) / sizeof((arr)[0])})

typedef struct {
    const char *code; /* parameter_unknown, parameter_missing, parameter_invalid_integer, ... */
    char param[PD_PARAMS_MAX_KEY];
    char message[320];
} pd_schema_error_t;

/* Checks every parameter against the schema. Returns 0 or PD_ERR_INVALID with err filled. */
int pd_schema_check(const pd_schema_t *s, const pd_params_t *p, pd_schema_error_t *err) PD_WUR;
/* The field a parameter key belongs to, or NULL. */
const pd_field_t *pd_schema_field(const pd_schema_t *s, pd_view_t key);

#endif
