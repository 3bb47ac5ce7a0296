#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "payd/json.h"
#include "payd/log.h"
#include "payd/time.h"

#define LOG_LINE_MAX (64 * 1024)

pd_log_level_t pd_log_level = PD_LOG_INFO;

struct pd_log_sink {
    char *path; /* NULL: stderr */
    _Atomic int fd;
    pthread_mutex_t mu; /* serializes reopen/rotation */
    uint64_t max_bytes;
    unsigned keep;
    _Atomic uint64_t written;
    uint64_t max_age_ms;         /* rotate a file older than this (0: never) */
    uint64_t retention_ms;       /* rotated files last written longer ago are removed (0: kept) */
    _Atomic uint64_t opened_ms;  /* real time the current file was started */
};

static pd_log_sink_t stderr_sink = {.path = NULL, .fd = 2, .mu = PTHREAD_MUTEX_INITIALIZER};
static pd_log_sink_t *_Atomic main_sink = &stderr_sink;

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

const char *
pd_log_level_name(pd_log_level_t l)
{
    return (unsigned)l <= PD_LOG_OFF ? level_names[l] : "?";
}

int
pd_log_level_parse(const char *s, pd_log_level_t *out)
{
    for (unsigned i = 0; i <= PD_LOG_OFF; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (pd_log_level_t)i;
            return 0;
        }
    }
    return PD_ERR_INVALID;
}

static int
sink_open_fd(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

int
pd_log_sink_open(pd_log_sink_t **out, const char *path, uint64_t max_bytes, unsigned keep)
{
    pd_log_sink_t *s;
    int fd = 2;

    if (path != NULL && strcmp(path, "stdout") == 0) {
        fd = 1;
        path = NULL;
    } else if (path != NULL && strcmp(path, "stderr") != 0 && strcmp(path, "-") != 0) {
        if ((fd = sink_open_fd(path)) < 0)
            return fd;
    } else {
        path = NULL;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL || (path != NULL && (s->path = strdup(path)) == NULL)) {
        free(s);
        if (fd > 2)
            close(fd);
        return PD_ERR_NOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    atomic_store(&s->fd, fd);
    s->max_bytes = max_bytes;
    s->keep = keep;
    if (path != NULL) {
        struct stat st;
        if (fstat(fd, &st) == 0)
            atomic_store(&s->written, (uint64_t)st.st_size);
    }
    atomic_store(&s->opened_ms, (uint64_t)pd_real_ms());
    *out = s;
    return 0;
}

void
pd_log_sink_free(pd_log_sink_t *s)
{
    if (s == NULL || s == &stderr_sink)
        return;
    int fd = atomic_load(&s->fd);
    if (fd > 2)
        close(fd);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

int
pd_log_sink_reopen(pd_log_sink_t *s)
{
    int r = 0;
    if (s->path == NULL)
        return 0;
    pthread_mutex_lock(&s->mu);
    int fd = sink_open_fd(s->path);
    if (fd < 0) {
        r = fd;
    } else {
        int old = atomic_exchange(&s->fd, fd);
        struct stat st;
        atomic_store(&s->written, fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0);
        atomic_store(&s->opened_ms, (uint64_t)pd_real_ms());
        /* a writer racing with us may still hold old; a late write to a rotated
         * file is harmless, a write to a reused descriptor number is not, so the
         * old descriptor is closed after the swap only */
        close(old);
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* removes the rotated files (path.1 .. path.keep) last written before the retention */
static void
sink_expire_locked(pd_log_sink_t *s)
{
    char name[4096];
    if (s->path == NULL || s->retention_ms == 0)
        return;
    int64_t cutoff_s = (pd_real_ms() - (int64_t)s->retention_ms) / 1000;
    for (unsigned i = 1; i <= s->keep; i++) {
        struct stat st;
        snprintf(name, sizeof(name), "%s.%u", s->path, i);
        if (stat(name, &st) == 0 && (int64_t)st.st_mtime < cutoff_s)
            (void)unlink(name);
    }
}

static void
sink_rotate_locked(pd_log_sink_t *s)
{
    char from[4096], to[4096];
    for (unsigned i = s->keep; i >= 1; i--) {
        if (i == 1)
            snprintf(from, sizeof(from), "%s", s->path);
        else
            snprintf(from, sizeof(from), "%s.%u", s->path, i - 1);
        snprintf(to, sizeof(to), "%s.%u", s->path, i);
        (void)rename(from, to);
    }
    if (s->keep == 0 && truncate(s->path, 0) != 0)
        return; /* nothing better to do than keep appending */
    sink_expire_locked(s);
}

void
pd_log_sink_set_retention(pd_log_sink_t *s, uint64_t retention_ms)
{
    pthread_mutex_lock(&s->mu);
    s->retention_ms = retention_ms;
    sink_expire_locked(s); /* what expired while payd was not running */
    pthread_mutex_unlock(&s->mu);
}

void
pd_log_sink_set_max_age(pd_log_sink_t *s, uint64_t max_age_ms)
{
    s->max_age_ms = max_age_ms;
}

static bool
sink_due(pd_log_sink_t *s, uint64_t now)
{
    return (s->max_bytes > 0 && atomic_load(&s->written) >= s->max_bytes) ||
           (s->max_age_ms > 0 && now - atomic_load(&s->opened_ms) >= s->max_age_ms);
}

void
pd_log_sink_write(pd_log_sink_t *s, const void *line, size_t len)
{
    int fd = atomic_load(&s->fd);
    ssize_t w;
    do {
        w = write(fd, line, len);
    } while (w < 0 && errno == EINTR);
    if (s->path == NULL || w <= 0)
        return;
    atomic_fetch_add(&s->written, (uint64_t)w);
    uint64_t now = s->max_age_ms > 0 ? (uint64_t)pd_real_ms() : 0;
    /* one writer rotates; the others keep writing to the old file meanwhile */
    if (sink_due(s, now) && pthread_mutex_trylock(&s->mu) == 0) {
        if (sink_due(s, now)) {
            sink_rotate_locked(s);
            int nfd = sink_open_fd(s->path);
            if (nfd >= 0) {
                int old = atomic_exchange(&s->fd, nfd);
                close(old);
                atomic_store(&s->written, 0);
                atomic_store(&s->opened_ms, now != 0 ? now : (uint64_t)pd_real_ms());
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
}

pd_log_sink_t *
pd_log_set_sink(pd_log_sink_t *s)
{
    return atomic_exchange(&main_sink, s != NULL ? s : &stderr_sink);
}

void
pd_log_emit(pd_log_level_t lvl, const char *msg, const pd_log_field_t *f, size_t n)
{
    pd_buf_t line;
    char ts[32];
    pd_jw_t w;

    pd_buf_init(&line, LOG_LINE_MAX);
    pd_time_rfc3339(pd_real_ms(), ts, sizeof(ts));
    pd_jw_init(&w, &line);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "ts", ts);
    pd_jw_kstr(&w, "level", pd_log_level_name(lvl));
    pd_jw_kstr(&w, "msg", msg);
    for (size_t i = 0; i < n; i++) {
        pd_jw_key(&w, f[i].key);
        switch (f[i].type) {
        case PD_LF_STR: pd_jw_str(&w, f[i].s); break;
        case PD_LF_VIEW: pd_jw_strv(&w, pd_view(f[i].s, f[i].len)); break;
        case PD_LF_INT: pd_jw_int(&w, f[i].i); break;
        case PD_LF_BOOL: pd_jw_bool(&w, f[i].i != 0); break;
        case PD_LF_RAW: pd_jw_raw(&w, pd_view(f[i].s, f[i].len)); break;
        case PD_LF_END: pd_jw_null(&w); break;
        }
    }
    pd_jw_obj_end(&w);
    if (pd_jw_finish(&w) != 0) {
        /* too long or out of memory: still say something */
        pd_buf_reset(&line);
        if (pd_buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"log line dropped\"}", ts,
                          pd_log_level_name(lvl)) != 0)
            goto out;
    }
    if (pd_buf_put_byte(&line, '\n') != 0)
        goto out;
    pd_log_sink_write(atomic_load(&main_sink), line.p, line.len);
out:
    pd_buf_free(&line);
}
