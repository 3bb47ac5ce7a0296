/*
 * Strict decoding of chunked request bodies (RFC 9112 7.1), in place of libh2o's.
 *
 * libh2o 2.2 decodes chunked bodies with picohttpparser's phr_decode_chunked, which
 * accepts what a front end may read differently: a bare LF ending a chunk-size line,
 * the data's CRLF or a trailer line; any CRs before that LF; and anything after the
 * hex digits up to the LF as an "extension", so "0x17" is a last chunk of size 0
 * followed by 0x17 bytes the next request starts with. The body is decoded in place,
 * inside the socket's buffer, before payd's handler sees the request, so the raw
 * framing cannot be checked afterwards: this file defines phr_decode_chunked itself,
 * with the same structure and contract, and the dynamic linker binds libh2o's calls
 * to it (the executable's definition comes first in symbol lookup). A refusal (-1)
 * makes libh2o answer 400 and close the connection. pd_chunked_bound() tells at start
 * whether the binding holds.
 *
 * Accepted, exactly: chunk-size (1-16 hex digits) [ BWS ";" extension without control
 * characters ] CRLF, then the data and CRLF; after the last chunk, trailer lines
 * without control characters, each ending CRLF, and an empty CRLF line.
 */
#include <dlfcn.h>
#include <string.h>
#include <sys/types.h>

#include "edge/internal.h"

/* picohttpparser's struct phr_chunked_decoder is pd_chunked_decoder_t field for field:
 * libh2o allocates it, zeroes it and sets consume_trailer; _hex_count and _state are
 * this decoder's own */
struct phr_chunked_decoder {
    pd_chunked_decoder_t d;
};

enum {
    S_SIZE,          /* hex digits of the chunk size (_hex_count: digits so far) */
    S_EXT,           /* after the digits: BWS, then ";" and the extension (_hex_count: 1 once ";" seen) */
    S_SIZE_LF,       /* the CR ending the size line was read */
    S_DATA,          /* bytes_left_in_chunk bytes of data */
    S_DATA_CR,       /* the CR after the data */
    S_DATA_LF,       /* the LF after it */
    S_TRAILER_HEAD,  /* start of a trailer line, or of the final empty line */
    S_TRAILER_LINE,  /* inside a trailer line */
    S_TRAILER_LF,    /* the CR ending a trailer line was read */
    S_END_LF,        /* the CR of the final empty line was read */
};

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* a byte allowed inside an extension or a trailer line: not a control character but HTAB */
static int
text_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

long
pd_chunked_decode(pd_chunked_decoder_t *d, char *buf, size_t *bufsz)
{
    size_t dst = 0, src = 0, n = *bufsz;
    long ret = -2; /* incomplete */

    while (src < n || d->_state == S_DATA) {
        unsigned char c = src < n ? (unsigned char)buf[src] : 0;
        switch (d->_state) {
        case S_SIZE: {
            int v = hexval(c);
            if (v < 0) {
                if (d->_hex_count == 0)
                    goto bad;
                d->_hex_count = 0;
                d->_state = S_EXT;
                continue; /* the same byte, as the start of what follows the digits */
            }
            if ((size_t)d->_hex_count == sizeof(size_t) * 2)
                goto bad;
            d->bytes_left_in_chunk = d->bytes_left_in_chunk * 16 + (size_t)v;
            d->_hex_count++;
            src++;
            break;
        }
        case S_EXT:
            if (c == '\r') {
                d->_hex_count = 0;
                d->_state = S_SIZE_LF;
            } else if (d->_hex_count == 0 && (c == ' ' || c == '\t')) {
                /* BWS before the ";" */
            } else if (d->_hex_count == 0 && c == ';') {
                d->_hex_count = 1;
            } else if (d->_hex_count == 0 || !text_byte(c)) {
                goto bad; /* "0x17", "5 junk", a bare LF, a NUL in an extension */
            }
            src++;
            break;
        case S_SIZE_LF:
            if (c != '\n')
                goto bad;
            src++;
            if (d->bytes_left_in_chunk != 0) {
                d->_state = S_DATA;
            } else if (d->consume_trailer) {
                d->_state = S_TRAILER_HEAD;
            } else {
                goto complete;
            }
            break;
        case S_DATA: {
            size_t avail = n - src, take = avail < d->bytes_left_in_chunk ? avail : d->bytes_left_in_chunk;
            if (take > 0 && dst != src)
                memmove(buf + dst, buf + src, take);
            src += take;
            dst += take;
            d->bytes_left_in_chunk -= take;
            if (d->bytes_left_in_chunk > 0)
                goto out; /* all input used */
            d->_state = S_DATA_CR;
            break;
        }
        case S_DATA_CR:
            if (c != '\r')
                goto bad;
            src++;
            d->_state = S_DATA_LF;
            break;
        case S_DATA_LF:
            if (c != '\n')
                goto bad;
            src++;
            d->_state = S_SIZE;
            break;
        case S_TRAILER_HEAD:
            src++;
            if (c == '\r')
                d->_state = S_END_LF;
            else if (c != ' ' && c != '\t' && text_byte(c))
                d->_state = S_TRAILER_LINE; /* a line starting with whitespace would be a folded one */
            else
                goto bad;
            break;
        case S_TRAILER_LINE:
            src++;
            if (c == '\r')
                d->_state = S_TRAILER_LF;
            else if (!text_byte(c))
                goto bad;
            break;
        case S_TRAILER_LF:
            if (c != '\n')
                goto bad;
            src++;
            d->_state = S_TRAILER_HEAD;
            break;
        case S_END_LF:
            if (c != '\n')
                goto bad;
            src++;
            goto complete;
        default:
            goto bad;
        }
    }
    goto out;
complete:
    ret = (long)(n - src);
out:
    /* what is left after the body (the next request, or the part not yet decoded) follows the decoded bytes */
    if (dst != src)
        memmove(buf + dst, buf + src, n - src);
    *bufsz = dst;
    return ret;
bad:
    ret = -1;
    goto out;
}


/* the names libh2o calls: see the top of the file */
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);
int phr_decode_chunked_is_in_data(struct phr_chunked_decoder *decoder);

ssize_t
phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz)
{
    return pd_chunked_decode(&decoder->d, buf, bufsz);
}

int
phr_decode_chunked_is_in_data(struct phr_chunked_decoder *decoder)
{
    return decoder->d._state == S_DATA;
}

bool
pd_chunked_bound(void)
{
    void *f = dlsym(RTLD_DEFAULT, "phr_decode_chunked");
    void *g = dlsym(RTLD_DEFAULT, "phr_decode_chunked_is_in_data");
    return f == (void *)phr_decode_chunked && g == (void *)phr_decode_chunked_is_in_data;
}
