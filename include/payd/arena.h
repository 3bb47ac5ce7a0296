/*
 * Request-scoped arena (in the manner of nginx pools / h2o_mem_pool_t).
 *
 * Allocations live until pd_arena_reset() or pd_arena_free(); there is no per-object
 * free. An arena has a byte budget (max): allocations past it fail (return NULL)
 * instead of growing without bound, so one request cannot exhaust the process.
 */
#ifndef PAYD_ARENA_H
#define PAYD_ARENA_H

#include <stddef.h>

#include "payd/buf.h"

typedef struct pd_arena_chunk pd_arena_chunk_t;

typedef struct {
    pd_arena_chunk_t *head;
    size_t used_total; /* bytes handed out or reserved in chunks */
    size_t max;
} pd_arena_t;

void pd_arena_init(pd_arena_t *a, size_t max);
/* Releases every chunk; the arena can be reused afterwards. Accepts NULL. */
void pd_arena_free(pd_arena_t *a);
/* Returns 16-byte aligned memory, or NULL when the budget or memory is exhausted. */
void *pd_arena_alloc(pd_arena_t *a, size_t n);
void *pd_arena_calloc(pd_arena_t *a, size_t n);
/* NUL-terminated copy of a view (NULL on exhaustion). */
char *pd_arena_strndup(pd_arena_t *a, const void *p, size_t len);
static inline char *pd_arena_view_dup(pd_arena_t *a, pd_view_t v) { return pd_arena_strndup(a, v.p, v.len); }

#endif
