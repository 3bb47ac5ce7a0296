/*
 * Card numbers pasted into free text are refused: a description, statement descriptor
 * or metadata key or value holding a Luhn-valid run of 13 to 19 digits (separated by
 * single spaces or dashes at most, as card numbers are written) gets 400 with the
 * parameter named, before anything is stored. Stripe refuses card data in metadata
 * too. payments.refuse_card_numbers_in_text (default true) turns it off.
 */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "payd/vault.h"

/* the parameters that carry free text */
static bool
free_text_key(pd_view_t k)
{
    static const char *const names[] = {"description", "statement_descriptor", "statement_descriptor_suffix"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t n = strlen(names[i]);
        if (pd_view_eq_cstr(k, names[i]) ||
            (k.len > n + 2 && k.p[k.len - 1] == ']' && k.p[k.len - n - 2] == '[' &&
             memcmp(k.p + k.len - n - 1, names[i], n) == 0))
            return true;
    }
    return pd_view_starts_with(k, "metadata[") || memmem(k.p, k.len, "[metadata][", 11) != NULL;
}

bool
pd_text_has_card_number(pd_view_t v)
{
    char digits[20];
    size_t nd = 0;
    bool run = false, too_long = false;
    for (size_t i = 0; i <= v.len; i++) {
        uint8_t c = i < v.len ? v.p[i] : 0;
        if (c >= '0' && c <= '9') {
            if (nd < sizeof(digits))
                digits[nd] = (char)c;
            else
                too_long = true;
            nd++;
            run = true;
            continue;
        }
        /* one separator between two digits keeps the run going */
        if (run && (c == ' ' || c == '-') && i + 1 < v.len && v.p[i + 1] >= '0' && v.p[i + 1] <= '9')
            continue;
        if (run && !too_long && nd >= 13 && nd <= 19 && pd_card_luhn(digits, nd))
            return true;
        nd = 0;
        run = too_long = false;
    }
    return false;
}

/* a PD_STAGE_PARSED filter on the /v1 routes: 1 after it refused the request */
int
pd_free_text_filter(pd_req_t *r, void *arg)
{
    pd_api_t *api = arg;
    if (r->auth == NULL || !api->cfg->refuse_card_numbers_in_text)
        return 0;
    for (size_t i = 0; i < r->params.n; i++) {
        const pd_param_t *p = &r->params.v[i];
        if (!free_text_key(p->key))
            continue;
        bool in_key = pd_text_has_card_number(p->key);
        if (!in_key && !pd_text_has_card_number(p->value))
            continue;
        /* the parameter is named (a key holding the number is named by its object only) */
        char param[PD_PARAMS_MAX_KEY], msg[PD_PARAMS_MAX_KEY + 256];
        const char *name = "metadata";
        if (!in_key) {
            snprintf(param, sizeof(param), "%.*s", (int)p->key.len, (const char *)p->key.p);
            name = param;
        }
        snprintf(msg, sizeof(msg),
                 "%s looks like it contains a card number (a Luhn-valid run of 13 to 19 digits). Card data may not be "
                 "stored in free text: send a card only in card[number] when creating a payment method.",
                 name);
        pd_resp_error(r, 400, "invalid_request_error", "parameter_invalid", msg, name);
        return 1;
    }
    return 0;
}
