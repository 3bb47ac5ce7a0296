#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "payd/id.h"
#include "payd/time.h"

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Per-thread pool of CSPRNG output: one RAND_bytes call per ~40 ids instead of
 * one per id (the call takes a lock). Identifiers are public, so a pool that
 * lives in memory until used is fine; keys never come from here. */
static _Thread_local struct {
    unsigned char bytes[1024];
    size_t pos;
    bool filled;
} pool;

static int
next_byte(unsigned char *c)
{
    if (!pool.filled || pool.pos == sizeof(pool.bytes)) {
        if (RAND_bytes(pool.bytes, sizeof(pool.bytes)) != 1)
            return PD_ERR_CRYPTO;
        pool.pos = 0;
        pool.filled = true;
    }
    *c = pool.bytes[pool.pos++];
    return 0;
}

int
pd_rand_base62(char *out, size_t n)
{
    size_t have = 0;

    while (have < n) {
        unsigned char c;
        if (next_byte(&c) != 0)
            return PD_ERR_CRYPTO;
        /* rejection sampling keeps the distribution uniform: 248 = 62 * 4 */
        if (c < 248)
            out[have++] = b62[c % 62];
    }
    return 0;
}

int
pd_rand_public(uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (next_byte(&out[i]) != 0)
            return PD_ERR_CRYPTO;
    return 0;
}

int
pd_id_new(const char *prefix, char *out, size_t cap)
{
    size_t pl = strlen(prefix);
    if (cap < pl + 1 + PD_ID_TIME_LEN + PD_ID_RAND_LEN + 1)
        return PD_ERR_TOOBIG;
    memcpy(out, prefix, pl);
    out[pl] = '_';
    /* the creation millisecond, fixed-width base62 (the alphabet is in ASCII order), so
     * ids sort by time and new rows land on the last page of each index */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t t = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    for (size_t i = PD_ID_TIME_LEN; i-- > 0; t /= 62)
        out[pl + 1 + i] = b62[t % 62];
    int r = pd_rand_base62(out + pl + 1 + PD_ID_TIME_LEN, PD_ID_RAND_LEN);
    if (r != 0)
        return r;
    out[pl + 1 + PD_ID_TIME_LEN + PD_ID_RAND_LEN] = '\0';
    return 0;
}

bool
pd_id_valid(pd_view_t v, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (v.len < pl + 1 + 8 || v.len > pl + 1 + 64 || memcmp(v.p, prefix, pl) != 0 || v.p[pl] != '_')
        return false;
    for (size_t i = pl + 1; i < v.len; i++) {
        uint8_t c = v.p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return false;
    }
    return true;
}

int64_t
pd_next_seq(void)
{
    static _Atomic int64_t last;
    int64_t now = pd_real_ms() * 1000, prev = atomic_load(&last), next;
    do {
        next = now > prev ? now : prev + 1;
    } while (!atomic_compare_exchange_weak(&last, &prev, next));
    return next;
}
