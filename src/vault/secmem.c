/*
 * Locked, non-dumpable memory for key material: one mmap'd region, mlock'ed and
 * excluded from core dumps, handed out in fixed chunks. Freed chunks are wiped.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/crypto.h>

#include "payd/log.h"
#include "vault/internal.h"

void *
pd_secmem_region(size_t len, bool *locked)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    (void)madvise(p, len, MADV_DONTDUMP);
    *locked = mlock(p, len) == 0;
    if (!*locked)
        pd_log_warn("vault: cannot mlock key memory (raise RLIMIT_MEMLOCK); keys may be swapped",
                    PD_LI("bytes", (int64_t)len));
    return p;
}

void
pd_secmem_release(void *p, size_t len)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, len);
    munlock(p, len);
    munmap(p, len);
}
