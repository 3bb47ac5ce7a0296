/* Fuzzes the WAF's transformation pipeline (URL and double decoding, entities, JS
 * escapes, comments, whitespace) with every variant and output sizes down to 0. */
#include <stdint.h>
#include <stdlib.h>

#include "payd/waf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* the first byte picks how much room the output gets: all of it, or less */
    size_t cap = data[0] & 1 ? size - 1 : (size - 1) / (size_t)(1 + (data[0] >> 5));
    uint8_t *out = malloc(cap + 1);
    if (out == NULL)
        return 0;
    for (int v = 0; v < PD_WV_COUNT; v++) {
        size_t n = pd_waf_transform((pd_waf_variant_t)v, data + 1, size - 1, out, cap);
        if (n > cap)
            abort();
    }
    free(out);
    return 0;
}
