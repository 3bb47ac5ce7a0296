/*
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the traceparent header
 * "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>". A valid one is continued
 * (its trace id kept), anything else starts a new trace; either way this request
 * gets a span id of its own and answers with its traceparent.
 */
#include <string.h>

#include "payd/buf.h"
#include "payd/http.h"
#include "payd/id.h"

static bool
lower_hex(const uint8_t *p, size_t n, bool *all_zero)
{
    *all_zero = true;
    for (size_t i = 0; i < n; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
        if (p[i] != '0')
            *all_zero = false;
    }
    return true;
}

bool
pd_trace_parse(pd_view_t v, char trace_id[33], uint8_t *flags)
{
    bool zero;
    /* version 00 is exactly 55 characters; a later version may append fields after a '-' */
    if (v.len < 55 || v.p[2] != '-' || v.p[35] != '-' || v.p[52] != '-')
        return false;
    if (!lower_hex(v.p, 2, &zero) || memcmp(v.p, "ff", 2) == 0 || (memcmp(v.p, "00", 2) == 0 && v.len != 55) ||
        (v.len > 55 && v.p[55] != '-'))
        return false;
    if (!lower_hex(v.p + 3, 32, &zero) || zero)
        return false;
    if (!lower_hex(v.p + 36, 16, &zero) || zero)
        return false;
    uint8_t f;
    if (!lower_hex(v.p + 53, 2, &zero) || pd_unhex((const char *)v.p + 53, 2, &f) != 0)
        return false;
    memcpy(trace_id, v.p + 3, 32);
    trace_id[32] = '\0';
    *flags = f;
    return true;
}

int
pd_trace_start(pd_req_t *r, pd_view_t traceparent)
{
    uint8_t b[16];
    if (!pd_trace_parse(traceparent, r->trace_id, &r->trace_flags)) {
        if (pd_rand_public(b, sizeof(b)) != 0)
            return PD_ERR_CRYPTO;
        pd_hex(b, sizeof(b), r->trace_id);
        r->trace_flags = 0;
    }
    if (pd_rand_public(b, 8) != 0)
        return PD_ERR_CRYPTO;
    pd_hex(b, 8, r->span_id);
    return 0;
}
