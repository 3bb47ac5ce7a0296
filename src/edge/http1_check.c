/*
 * Strict HTTP/1.x framing, checked on the raw request head before anything else
 * sees the request. libh2o 2.2 already refuses NUL and other control bytes,
 * whitespace before a header's colon, malformed Content-Length values, unknown
 * transfer codings and bad chunk sizes; it accepts, and this refuses, what lets a
 * front end and payd disagree on where a request ends (request smuggling):
 * Content-Length together with Transfer-Encoding, more than one Content-Length or
 * Transfer-Encoding, Transfer-Encoding on HTTP/1.0, bare LF line ends, obsolete
 * line folding, and a missing or repeated Host on HTTP/1.1.
 */
#include <string.h>

#include "payd/http.h"

static bool
name_is(const uint8_t *p, size_t n, const char *lname)
{
    size_t l = strlen(lname);
    if (n != l)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        if (c != (uint8_t)lname[i])
            return false;
    }
    return true;
}

const char *
pd_http1_check_head(const uint8_t *p, size_t n, bool http11)
{
    size_t i = 0, line = 0, ncl = 0, nte = 0, nhost = 0;

    for (;;) {
        /* one line: [i, e) followed by CRLF */
        size_t e = i;
        while (e < n && p[e] != '\n')
            e++;
        if (e == n)
            return "the request head is incomplete";
        if (e == i || p[e - 1] != '\r')
            return "a line ends with a bare LF";
        size_t end = e - 1; /* the CR */
        if (end == i) {
            if (line == 0 && i == 0) { /* one empty line before the request line is tolerated (RFC 9112 2.2) */
                i = e + 1;
                continue;
            }
            break; /* the empty line: end of the head */
        }
        if (line > 0) {
            if (p[i] == ' ' || p[i] == '\t')
                return "obsolete line folding";
            const uint8_t *colon = memchr(p + i, ':', end - i);
            if (colon == NULL)
                return "a header line without a colon";
            size_t nl = (size_t)(colon - (p + i));
            if (name_is(p + i, nl, "content-length"))
                ncl++;
            else if (name_is(p + i, nl, "transfer-encoding"))
                nte++;
            else if (name_is(p + i, nl, "host"))
                nhost++;
        }
        for (size_t k = i; k < end; k++)
            if (p[k] == '\r' || p[k] == '\0')
                return "a control character in the request head";
        line++;
        i = e + 1;
    }
    if (ncl > 0 && nte > 0)
        return "both Content-Length and Transfer-Encoding";
    if (ncl > 1)
        return "more than one Content-Length";
    if (nte > 1)
        return "more than one Transfer-Encoding";
    if (nte > 0 && !http11)
        return "Transfer-Encoding on HTTP/1.0";
    if (http11 && nhost != 1)
        return nhost == 0 ? "no Host header" : "more than one Host header";
    return NULL;
}
