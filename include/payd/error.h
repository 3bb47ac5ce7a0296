/*
 * payd error model.
 *
 * Every fallible function returns int: 0 on success, a negative PD_ERR_* code on
 * failure (system failures may be returned as -errno; pd_strerror() handles both).
 */
#ifndef PAYD_ERROR_H
#define PAYD_ERROR_H

#define PD_WUR __attribute__((warn_unused_result))

enum {
    PD_OK = 0,
    PD_ERR_INTERNAL = -1000,   /* a bug or an impossible state */
    PD_ERR_NOMEM = -1001,      /* allocation failed */
    PD_ERR_INVALID = -1002,    /* malformed input */
    PD_ERR_TOOBIG = -1003,     /* input or buffer exceeds its named maximum */
    PD_ERR_NOTFOUND = -1004,   /* no such object */
    PD_ERR_EXISTS = -1005,     /* object already exists */
    PD_ERR_PERM = -1006,       /* caller may not do this */
    PD_ERR_IO = -1007,         /* I/O failure other than a specific errno */
    PD_ERR_CRYPTO = -1008,     /* a cryptographic library call failed */
    PD_ERR_AUTH = -1009,       /* authentication tag / signature mismatch */
    PD_ERR_CONFIG = -1010,     /* invalid configuration */
    PD_ERR_TIMEOUT = -1011,    /* deadline passed */
    PD_ERR_CLOSED = -1012,     /* peer closed / object shut down */
    PD_ERR_AGAIN = -1013,      /* try again later (would block, in flight) */
    PD_ERR_STATE = -1014,      /* operation not allowed in the current state */
    PD_ERR_PROTOCOL = -1015,   /* peer violated a protocol */
    PD_ERR_CONFLICT = -1016,   /* concurrent modification / idempotency conflict */
    PD_ERR_UNAVAILABLE = -1017,/* dependency not ready */
    PD_ERR_RANGE = -1018,      /* value outside the accepted range */
    PD_ERR_LIMIT = -1019,      /* rate or quota limit reached */
    PD_ERR_KEY_DISABLED = -1020,  /* key is pending deletion or disabled */
    PD_ERR_KEY_VERSION = -1021,   /* unknown or retired key version */
    PD_ERR_CONTEXT = -1022,       /* encryption context mismatch */
    PD_ERR_TRUNCATED = -1023,     /* input ended early */
    PD_ERR_DECLINED = -1024,      /* processor declined */
    PD_ERR_BUSY = -1025,          /* another operation on the object is in flight */
    PD_ERR_INDOUBT = -1026,       /* a commit's outcome is unknown (the connection dropped during it) */
    PD_ERR__MIN = -1027
};

/* Returns a static, human-readable text for a PD_ERR_* code or a -errno value. */
const char *pd_strerror(int err);

#endif
