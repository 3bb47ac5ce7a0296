#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "payd/arena.h"

#define ARENA_CHUNK 8192

struct pd_arena_chunk {
    pd_arena_chunk_t *next;
    size_t cap;
    size_t off;
    _Alignas(16) uint8_t data[];
};

void
pd_arena_init(pd_arena_t *a, size_t max)
{
    a->head = NULL;
    a->used_total = 0;
    a->max = max;
}

void
pd_arena_free(pd_arena_t *a)
{
    if (a == NULL)
        return;
    pd_arena_chunk_t *c = a->head;
    while (c != NULL) {
        pd_arena_chunk_t *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->used_total = 0;
}

void *
pd_arena_alloc(pd_arena_t *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    pd_arena_chunk_t *c = a->head;
    if (c == NULL || c->cap - c->off < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        if (cap > a->max || a->used_total > a->max - cap)
            return NULL;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->cap = cap;
        c->off = 0;
        a->used_total += cap;
        /* a big one-off allocation goes behind the current chunk so the
         * current chunk's free space stays usable */
        if (n > ARENA_CHUNK && a->head != NULL) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->off;
    c->off += n;
    return p;
}

void *
pd_arena_calloc(pd_arena_t *a, size_t n)
{
    void *p = pd_arena_alloc(a, n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

char *
pd_arena_strndup(pd_arena_t *a, const void *p, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *s = pd_arena_alloc(a, len + 1);
    if (s == NULL)
        return NULL;
    if (len > 0)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}
