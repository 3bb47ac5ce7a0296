/*
 * Open API connections, in all and per client address (the [api] max_connections and
 * max_connections_per_ip limits). One table for every loop: the kernel spreads one
 * client's connections over the loops' SO_REUSEPORT listeners, so a count per loop
 * would allow threads x the limit. A mutex guards it; taking and giving a place is a
 * hash lookup, once per connection.
 *
 * The table holds only addresses with a connection open: open addressing, linear
 * probing, deletion by backward shift (no tombstones), grown by doubling at half full.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "edge/internal.h"

#define INITIAL_SLOTS 1024u

typedef struct {
    uint8_t addr[16];
    uint32_t n; /* 0: free slot */
} slot_t;

struct pd_conn_limit {
    pthread_mutex_t mu;
    uint64_t max, per_addr, open;
    slot_t *slots;
    size_t nslots, used; /* nslots: a power of two */
};

bool
pd_conn_limit_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

static size_t
hash(const uint8_t a[16])
{
    /* FNV-1a: the addresses come from the network, but a client controls only its own */
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++)
        h = (h ^ a[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29));
}

int
pd_conn_limit_new(pd_conn_limit_t **out, uint64_t max, uint64_t per_addr)
{
    pd_conn_limit_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return PD_ERR_NOMEM;
    l->max = max;
    l->per_addr = per_addr;
    if (per_addr > 0) {
        l->nslots = INITIAL_SLOTS;
        if ((l->slots = calloc(l->nslots, sizeof(*l->slots))) == NULL) {
            free(l);
            return PD_ERR_NOMEM;
        }
    }
    pthread_mutex_init(&l->mu, NULL);
    *out = l;
    return 0;
}

void
pd_conn_limit_free(pd_conn_limit_t *l)
{
    if (l == NULL)
        return;
    pthread_mutex_destroy(&l->mu);
    free(l->slots);
    free(l);
}

/* the slot of addr, or the free slot where it would go */
static slot_t *
find(slot_t *slots, size_t nslots, const uint8_t addr[16])
{
    size_t i = hash(addr) & (nslots - 1);
    while (slots[i].n != 0 && memcmp(slots[i].addr, addr, 16) != 0)
        i = (i + 1) & (nslots - 1);
    return &slots[i];
}

static int
grow(pd_conn_limit_t *l)
{
    size_t n = l->nslots * 2;
    slot_t *s = calloc(n, sizeof(*s));
    if (s == NULL)
        return PD_ERR_NOMEM;
    for (size_t i = 0; i < l->nslots; i++)
        if (l->slots[i].n != 0)
            *find(s, n, l->slots[i].addr) = l->slots[i];
    free(l->slots);
    l->slots = s;
    l->nslots = n;
    return 0;
}

int
pd_conn_limit_take(pd_conn_limit_t *l, const uint8_t addr[16], const char **why)
{
    int r = PD_ERR_LIMIT;
    pthread_mutex_lock(&l->mu);
    if (l->open >= l->max) {
        *why = "max_connections";
        goto out;
    }
    if (l->per_addr > 0) {
        slot_t *s = find(l->slots, l->nslots, addr);
        if (s->n >= l->per_addr) {
            *why = "max_connections_per_ip";
            goto out;
        }
        if (s->n == 0) {
            /* a new address: keep the table at most half full */
            if ((l->used + 1) * 2 > l->nslots) {
                if (grow(l) != 0) {
                    *why = "max_connections"; /* fail closed: no memory to count it */
                    goto out;
                }
                s = find(l->slots, l->nslots, addr);
            }
            memcpy(s->addr, addr, 16);
            l->used++;
        }
        s->n++;
    }
    l->open++;
    r = 0;
out:
    pthread_mutex_unlock(&l->mu);
    return r;
}

void
pd_conn_limit_give(pd_conn_limit_t *l, const uint8_t addr[16])
{
    pthread_mutex_lock(&l->mu);
    if (l->open > 0)
        l->open--;
    if (l->per_addr > 0) {
        slot_t *s = find(l->slots, l->nslots, addr);
        if (s->n > 0 && --s->n == 0) {
            /* backward shift: move later members of the run into the hole where they may go */
            size_t mask = l->nslots - 1, hole = (size_t)(s - l->slots), j = hole;
            for (;;) {
                j = (j + 1) & mask;
                if (l->slots[j].n == 0)
                    break;
                size_t home = hash(l->slots[j].addr) & mask;
                /* j may move to hole when its home is not in (hole, j] (cyclically) */
                bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
                if (!stays) {
                    l->slots[hole] = l->slots[j];
                    l->slots[j].n = 0;
                    hole = j;
                }
            }
            l->used--;
        }
    }
    pthread_mutex_unlock(&l->mu);
}

uint64_t
pd_conn_limit_max(const pd_conn_limit_t *l)
{
    return l->max;
}

uint64_t
pd_conn_limit_open(pd_conn_limit_t *l, const uint8_t *addr)
{
    uint64_t n;
    pthread_mutex_lock(&l->mu);
    if (addr == NULL)
        n = l->open;
    else
        n = l->per_addr > 0 ? find(l->slots, l->nslots, addr)->n : 0;
    pthread_mutex_unlock(&l->mu);
    return n;
}
