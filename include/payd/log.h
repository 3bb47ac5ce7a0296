/*
 * Structured logging: one JSON object per line, written with a single write(2) so
 * lines from different threads never interleave.
 *
 *   pd_log(PD_LOG_INFO, "listening", PD_LS("addr", addr), PD_LI("port", port));
 *   -> {"ts":"2026-11-24T22:39:17.123Z","level":"info","msg":"listening","addr":"...","port":8443}
 *
 * Never pass a PAN, CVC, key, secret or full API key as a field.
 */
#ifndef PAYD_LOG_H
#define PAYD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/error.h"

typedef enum { PD_LOG_DEBUG = 0, PD_LOG_INFO, PD_LOG_WARN, PD_LOG_ERROR, PD_LOG_OFF } pd_log_level_t;

typedef enum { PD_LF_END = 0, PD_LF_STR, PD_LF_VIEW, PD_LF_INT, PD_LF_BOOL, PD_LF_RAW } pd_log_ftype_t;

typedef struct {
    const char *key;
    pd_log_ftype_t type;
    const char *s; /* STR (NUL-terminated, NULL logs null), VIEW and RAW (s, len) */
    size_t len;
    int64_t i;
} pd_log_field_t;

#define PD_LS(k, str) ((pd_log_field_t){.key = (k), .type = PD_LF_STR, .s = (str)})
#define PD_LV(k, view) ((pd_log_field_t){.key = (k), .type = PD_LF_VIEW, .s = (const char *)(view).p, .len = (view).len})
#define PD_LI(k, n) ((pd_log_field_t){.key = (k), .type = PD_LF_INT, .i = (int64_t)(n)})
#define PD_LB(k, b) ((pd_log_field_t){.key = (k), .type = PD_LF_BOOL, .i = (b) ? 1 : 0})
/* a pre-serialized JSON value */
#define PD_LRAW(k, view) ((pd_log_field_t){.key = (k), .type = PD_LF_RAW, .s = (const char *)(view).p, .len = (view).len})
#define PD_LERR(r) PD_LS("error", pd_strerror(r))

#define pd_log(lvl, msg, ...)                                                                                          \
    do {                                                                                                               \
        if ((lvl) >= pd_log_level)                                                                                     \
            pd_log_emit((lvl), (msg), (const pd_log_field_t[]){{.type = PD_LF_END}, ##__VA_ARGS__} + 1,                \
                        sizeof((const pd_log_field_t[]){{.type = PD_LF_END}, ##__VA_ARGS__}) / sizeof(pd_log_field_t) - 1); \
    } while (0)

#define pd_log_debug(msg, ...) pd_log(PD_LOG_DEBUG, msg, ##__VA_ARGS__)
#define pd_log_info(msg, ...) pd_log(PD_LOG_INFO, msg, ##__VA_ARGS__)
#define pd_log_warn(msg, ...) pd_log(PD_LOG_WARN, msg, ##__VA_ARGS__)
#define pd_log_error(msg, ...) pd_log(PD_LOG_ERROR, msg, ##__VA_ARGS__)

extern pd_log_level_t pd_log_level;

void pd_log_emit(pd_log_level_t lvl, const char *msg, const pd_log_field_t *f, size_t n);
/* Parses "debug", "info", "warn", "error", "off". */
int pd_log_level_parse(const char *s, pd_log_level_t *out) PD_WUR;
const char *pd_log_level_name(pd_log_level_t l);

/*
 * A log destination: stderr (path NULL, "stderr" or "-"), stdout ("stdout") or an
 * append-only file that can be reopened (after logrotate, on SIGUSR1) and rotated by
 * size (max_bytes > 0) or age (pd_log_sink_set_max_age): path -> path.1 ... path.keep,
 * the oldest dropped.
 */
typedef struct pd_log_sink pd_log_sink_t;
int pd_log_sink_open(pd_log_sink_t **out, const char *path, uint64_t max_bytes, unsigned keep) PD_WUR;
void pd_log_sink_free(pd_log_sink_t *s);
/* Rotate a file once it has been written to for max_age_ms (0: never). Call before use. */
void pd_log_sink_set_max_age(pd_log_sink_t *s, uint64_t max_age_ms);
/* Rotated files (path.1 .. path.keep) last written more than retention_ms ago are
 * removed, now and at every rotation (0: only keep bounds them). keep bounds the
 * count, the retention the age: whichever comes first. */
void pd_log_sink_set_retention(pd_log_sink_t *s, uint64_t retention_ms);
int pd_log_sink_reopen(pd_log_sink_t *s) PD_WUR;
/* Writes one complete line (the caller includes the trailing newline). */
void pd_log_sink_write(pd_log_sink_t *s, const void *line, size_t len);
/* The sink used by pd_log (stderr until set). The previous sink is returned to the caller. */
pd_log_sink_t *pd_log_set_sink(pd_log_sink_t *s);

#endif
