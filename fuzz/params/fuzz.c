/* Fuzzes request parameter decoding (form and JSON) and the schema check over the
 * result. The first byte selects the decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "payd/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const modes[] = {"automatic", "manual", NULL};
static const pd_field_t fields[] = {
    {"amount", PD_FT_INT, PD_FF_REQUIRED, 1, 99999999}, {"currency", PD_FT_CURRENCY, 0},
    {"capture_method", PD_FT_ENUM, 0, .choices = modes}, {"metadata", PD_FT_MAP, PD_FF_UNSET},
    {"expand", PD_FT_LIST, 0},                           {"card[number]", PD_FT_DIGITS, 0, 12, 19},
    {"receipt_email", PD_FT_EMAIL, 0},                   {"url", PD_FT_URL, 0},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    pd_arena_t a;
    pd_params_t p;
    pd_params_error_t e;
    pd_schema_error_t se;
    pd_arena_init(&a, 1 << 22);
    pd_view_t in = pd_view(data + 1, size - 1);
    int r = (data[0] & 1) ? pd_params_parse_json(&a, in, &p, &e) : pd_params_parse_form(&a, in, &p, &e);
    if (r == 0) {
        for (size_t i = 0; i < p.n; i++)
            if (strlen((const char *)p.v[i].key.p) != p.v[i].key.len || p.v[i].key.len == 0)
                abort();
        pd_schema_t s = PD_SCHEMA(fields);
        if (pd_schema_check(&s, &p, &se) != 0 && (se.code == NULL || se.message[0] == '\0'))
            abort(); /* every refusal carries a code and a message */
    }
    pd_arena_free(&a);
    return 0;
}
