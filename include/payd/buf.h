/*
 * Byte views and bounded owning buffers.
 *
 * pd_view_t borrows bytes it does not own; it is never assumed NUL-terminated.
 * pd_buf_t owns a heap buffer that grows up to a named maximum (max) and fails
 * closed with PD_ERR_TOOBIG past it. After any failed append the buffer keeps its
 * previous content. pd_buf_free() accepts a zeroed or freed buffer.
 */
#ifndef PAYD_BUF_H
#define PAYD_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/error.h"

typedef struct {
    const uint8_t *p;
    size_t len;
} pd_view_t;

#define PD_VIEW_LIT(s) ((pd_view_t){(const uint8_t *)(s), sizeof(s) - 1})
#define PD_VIEW_NULL ((pd_view_t){NULL, 0})

/* View of a NUL-terminated string (NULL gives an empty view). */
pd_view_t pd_view_cstr(const char *s);
static inline pd_view_t pd_view(const void *p, size_t len) { return (pd_view_t){(const uint8_t *)p, len}; }
bool pd_view_eq(pd_view_t a, pd_view_t b);
bool pd_view_eq_cstr(pd_view_t a, const char *s);
bool pd_view_case_eq_cstr(pd_view_t a, const char *s);
bool pd_view_starts_with(pd_view_t a, const char *prefix);
/* Copies v into dst (cap bytes incl. NUL). Returns PD_ERR_TOOBIG if it does not fit. */
int pd_view_to_cstr(pd_view_t v, char *dst, size_t cap) PD_WUR;
/* Parses a decimal integer; the whole view must be digits (optional leading '-'). */
int pd_view_to_i64(pd_view_t v, int64_t *out) PD_WUR;

typedef struct {
    uint8_t *p;
    size_t len;
    size_t cap;
    size_t max; /* hard upper bound on len */
} pd_buf_t;

void pd_buf_init(pd_buf_t *b, size_t max);
void pd_buf_free(pd_buf_t *b);
/* Like free, but wipes the bytes first (for secrets). */
void pd_buf_free_secure(pd_buf_t *b);
static inline void pd_buf_reset(pd_buf_t *b) { b->len = 0; }
int pd_buf_reserve(pd_buf_t *b, size_t extra) PD_WUR;
int pd_buf_put(pd_buf_t *b, const void *p, size_t len) PD_WUR;
int pd_buf_put_cstr(pd_buf_t *b, const char *s) PD_WUR;
int pd_buf_put_byte(pd_buf_t *b, uint8_t c) PD_WUR;
int pd_buf_printf(pd_buf_t *b, const char *fmt, ...) PD_WUR __attribute__((format(printf, 2, 3)));
int pd_buf_vprintf(pd_buf_t *b, const char *fmt, va_list ap) PD_WUR __attribute__((format(printf, 2, 0)));
/* Ensures p[len] == 0 (not counted in len) so the content can be used as a C string. */
int pd_buf_cstr(pd_buf_t *b, const char **out) PD_WUR;
static inline pd_view_t pd_buf_view(const pd_buf_t *b) { return (pd_view_t){b->p, b->len}; }

/* Lower-case hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void pd_hex(const uint8_t *in, size_t len, char *out);
/* Decodes hexlen hex digits into out (hexlen/2 bytes). PD_ERR_INVALID on odd length or a bad digit. */
int pd_unhex(const char *in, size_t hexlen, uint8_t *out) PD_WUR;

#endif
