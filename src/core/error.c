#include <string.h>

#include "payd/error.h"

const char *
pd_strerror(int err)
{
    switch (err) {
    case PD_OK: return "success";
    case PD_ERR_INTERNAL: return "internal error";
    case PD_ERR_NOMEM: return "out of memory";
    case PD_ERR_INVALID: return "invalid input";
    case PD_ERR_TOOBIG: return "too big";
    case PD_ERR_NOTFOUND: return "not found";
    case PD_ERR_EXISTS: return "already exists";
    case PD_ERR_PERM: return "permission denied";
    case PD_ERR_IO: return "I/O error";
    case PD_ERR_CRYPTO: return "cryptographic failure";
    case PD_ERR_AUTH: return "authentication failed";
    case PD_ERR_CONFIG: return "invalid configuration";
    case PD_ERR_TIMEOUT: return "timed out";
    case PD_ERR_CLOSED: return "closed";
    case PD_ERR_AGAIN: return "try again";
    case PD_ERR_STATE: return "not allowed in the current state";
    case PD_ERR_PROTOCOL: return "protocol violation";
    case PD_ERR_CONFLICT: return "conflict";
    case PD_ERR_UNAVAILABLE: return "unavailable";
    case PD_ERR_RANGE: return "out of range";
    case PD_ERR_LIMIT: return "limit reached";
    case PD_ERR_KEY_DISABLED: return "key disabled or pending deletion";
    case PD_ERR_KEY_VERSION: return "unknown or retired key version";
    case PD_ERR_CONTEXT: return "encryption context mismatch";
    case PD_ERR_TRUNCATED: return "truncated input";
    case PD_ERR_DECLINED: return "declined";
    case PD_ERR_BUSY: return "another operation is in flight";
    case PD_ERR_INDOUBT: return "outcome unknown (the connection dropped during the commit)";
    }
    if (err < 0 && err > -4096)
        {
        const char *s = strerrordesc_np(-err); /* thread-safe, static text */
        return s != NULL ? s : "unknown system error";
    }
    return "unknown error";
}
