/* Fuzzes the amount and currency parsers: every request with money goes through them.
 * The first byte picks which; the invariants are the API's promises. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "payd/money.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    pd_view_t text = pd_view(data + 1, size - 1);
    if (data[0] & 1) {
        int64_t v = -1;
        pd_amount_error_t e = pd_amount_parse(text, &v);
        if (e == PD_AMOUNT_OK) {
            /* accepted: positive, within Stripe's limit, and digits only */
            if (v < 1 || v > PD_AMOUNT_MAX || text.len == 0)
                abort();
            for (size_t i = 0; i < text.len; i++)
                if (text.p[i] < '0' || text.p[i] > '9')
                    abort();
        } else if (pd_amount_error_code(e) == NULL) {
            abort(); /* every refusal has a Stripe error code */
        }
    } else {
        char out[4];
        int exp = pd_currency_exponent(text);
        int r = pd_currency_normalize(text, out);
        if ((r == 0) != (exp >= 0) || exp > 3)
            abort(); /* known exactly when it has an exponent; none has more than 3 */
        if (r == 0 && (strlen(out) != 3 || pd_currency_exponent(pd_view(out, 3)) != exp))
            abort();
    }
    return 0;
}
