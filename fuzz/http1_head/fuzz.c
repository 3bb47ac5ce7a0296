/* Fuzzes the raw HTTP/1 head check and the traceparent parser: both read untrusted
 * bytes straight off the connection. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "payd/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = pd_http1_check_head(data, size, size > 0 && (data[0] & 1));
    /* an accepted head has a CRLF CRLF end and no bare LF */
    if (why == NULL && (size < 4 || memmem(data, size, "\r\n\r\n", 4) == NULL))
        abort();
    char trace[33];
    uint8_t flags;
    if (pd_trace_parse(pd_view(data, size), trace, &flags)) {
        if (strlen(trace) != 32 || strspn(trace, "0123456789abcdef") != 32 || strspn(trace, "0") == 32)
            abort();
    }
    return 0;
}
