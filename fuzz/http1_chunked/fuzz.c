/* Fuzzes the strict chunked body decoder (src/edge/chunked.c): libh2o hands it the
 * request body's raw bytes off the connection. The input is fed whole and again split
 * at its first byte's value, as libh2o feeds a socket buffer; both must agree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "payd/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* decodes data fed in two parts (split at cut); body length into *body, returns the last answer */
static long
run(const uint8_t *data, size_t size, size_t cut, char *buf, size_t *body)
{
    pd_chunked_decoder_t d = {.consume_trailer = 1};
    size_t total = 0, prev = 0, fed = 0;
    long r = -2;
    while (fed < size && r == -2) {
        size_t take = fed == 0 && cut > 0 && cut < size ? cut : size - fed;
        memcpy(buf + total, data + fed, take);
        fed += take;
        total += take;
        size_t sz = total - prev;
        r = pd_chunked_decode(&d, buf + prev, &sz);
        if (sz > total - prev)
            abort(); /* never claims more than it was given */
        total = prev + sz;
        prev = total;
    }
    *body = total;
    return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *a = malloc(size + 1), *b = malloc(size + 1);
    size_t na, nb;
    long ra = run(data, size, 0, a, &na);
    long rb = run(data, size, size > 0 ? data[0] % (size + 1) : 0, b, &nb);
    /* the same bytes decode the same way however they arrive (a refusal may come earlier
     * or later, never a different outcome) */
    if ((ra == -1) != (rb == -1) || (ra >= 0) != (rb >= 0) || (ra >= 0 && (na != nb || memcmp(a, b, na) != 0)))
        abort();
    /* an accepted body has a framing: never more decoded bytes than were given */
    if (na > size)
        abort();
    free(a);
    free(b);
    return 0;
}
