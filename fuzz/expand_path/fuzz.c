/* Fuzzes the expand[] path check (src/api/expand.c): the first byte picks the resource
 * and whether it is a list, the rest is the path. Whatever the bytes, the check returns
 * without crashing or reading past the path, and what it accepts is a path of at most
 * four known fields (after "data." for a list), dot-separated, no empty part, not ending
 * in invoice_settings (a customer's object that only leads to its default_payment_method). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "payd/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const resources[] = {"payment_intents", "charges", "payment_methods", "refunds",
                                        "disputes",        "events",  "customers",       NULL};
static const char *const fields[] = {"latest_charge", "payment_method",   "payment_intent",
                                     "charge",        "customer",         "invoice_settings",
                                     "default_payment_method"};

static bool
known(const char *p, size_t n)
{
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strlen(fields[i]) == n && memcmp(fields[i], p, n) == 0)
            return true;
    return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *res = resources[data[0] % 8];
    bool list = (data[0] & 0x80) != 0;
    /* the path in a buffer of its own size, so a read past it is caught */
    char *path = malloc(size - 1 > 0 ? size - 1 : 1);
    if (path == NULL)
        abort();
    memcpy(path, data + 1, size - 1);
    bool ok = pd_expand_path_ok(res, list, pd_view(path, size - 1));
    if (ok) {
        const char *p = path, *end = path + size - 1;
        if (list) {
            if (size - 1 < 6 || memcmp(p, "data.", 5) != 0)
                abort();
            p += 5;
        }
        int depth = 0;
        const char *last = p;
        while (p < end) {
            last = p;
            const char *dot = memchr(p, '.', (size_t)(end - p));
            size_t n = dot != NULL ? (size_t)(dot - p) : (size_t)(end - p);
            if (n == 0 || !known(p, n) || ++depth > 4)
                abort();
            p += n + (dot != NULL);
        }
        if (depth == 0 || path[size - 2] == '.' || res == resources[5])
            abort();
        /* invoice_settings is an object to go through, never the end of a path */
        if ((size_t)(end - last) == strlen("invoice_settings") && memcmp(last, "invoice_settings", 16) == 0)
            abort();
    }
    free(path);
    return 0;
}
