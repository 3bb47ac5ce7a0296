/*
 * Internals of the cache component: the backends behind include/payd/cache.h, the
 * Redis URL, the Redis connection (hiredis's protocol parts over our own socket and
 * OpenSSL) and Sentinel discovery. Not a public interface.
 */
#ifndef PAYD_CACHE_INTERNAL_H
#define PAYD_CACHE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include "payd/cache.h"

/* --- the in-process backend (memory.c) --- */
typedef struct pd_mem pd_mem_t;
int pd_mem_new(pd_mem_t **out, int64_t max_entries) PD_WUR;
void pd_mem_free(pd_mem_t *m);
bool pd_mem_take(pd_mem_t *m, const char *key, double rate, double burst, int64_t now_ms, int64_t *remaining,
                 int64_t *reset_ms, int64_t *retry_ms);
int64_t pd_mem_hit(pd_mem_t *m, const char *key, int64_t window_ms, int64_t now_ms);
int64_t pd_mem_add(pd_mem_t *m, const char *key, int64_t n, int64_t expires_ms, int64_t now_ms);
void pd_mem_block(pd_mem_t *m, const char *key, int64_t until_ms, int64_t now_ms);
int64_t pd_mem_blocked(pd_mem_t *m, const char *key, int64_t now_ms);

/* --- the Redis backend (redis.c) --- */
typedef struct pd_redis pd_redis_t;
int pd_redis_new(pd_redis_t **out, const pd_cache_config_t *cfg, int64_t max_entries, char *err, size_t cap) PD_WUR;
void pd_redis_free(pd_redis_t *r);
bool pd_redis_take(pd_redis_t *r, const char *key, double rate, double burst, int64_t now_ms, int64_t *remaining,
                   int64_t *reset_ms, int64_t *retry_ms);
int64_t pd_redis_hit(pd_redis_t *r, const char *key, int64_t window_ms, int64_t now_ms);
int64_t pd_redis_add(pd_redis_t *r, const char *key, int64_t n, int64_t expires_ms, int64_t now_ms);
void pd_redis_block(pd_redis_t *r, const char *key, int64_t until_ms, int64_t now_ms);
int64_t pd_redis_blocked(pd_redis_t *r, const char *key, int64_t now_ms);
void pd_redis_stats(pd_redis_t *r, pd_cache_stats_t *out);
int pd_redis_sync(pd_redis_t *r, int timeout_ms) PD_WUR;

/* --- [cache] url (url.c) --- */
#define PD_RURL_MAX_HOSTS 8
typedef enum { PD_RURL_PLAIN, PD_RURL_TLS, PD_RURL_SENTINEL } pd_rurl_kind_t;
typedef struct {
    pd_rurl_kind_t kind;
    struct {
        char host[256];
        uint16_t port;
    } hosts[PD_RURL_MAX_HOSTS]; /* one, or the sentinels */
    int nhosts;
    char user[128], password[256];
    char master[128]; /* redis-sentinel://…/master-name */
    int db;
} pd_rurl_t;
/* Parses redis://[user:password@]host:port[/db], rediss://… or
 * redis-sentinel://[user:password@]host:port,host:port/master-name[/db]; the
 * user and password are percent-decoded. err names what is wrong (never the password). */
int pd_rurl_parse(pd_rurl_t *u, const char *s, char *err, size_t cap) PD_WUR;

/* --- one connection (conn.c): blocking, with a deadline per call, on the sync thread only --- */
#define PD_RCONN_OUT_MAX (4u << 20) /* a pipeline's commands */
typedef struct {
    int fd;
    SSL *ssl;
    redisReader *rd;
    char *out;
    size_t outlen, outcap;
    int timeout_ms;
    char peer[300];
} pd_rconn_t;
/* Connects to host:port (TLS when ctx is not NULL: the certificate must name host).
 * err: a sentence naming the peer and the cause. */
int pd_rconn_open(pd_rconn_t *c, const char *host, uint16_t port, SSL_CTX *ctx, int timeout_ms, char *err,
                  size_t cap) PD_WUR;
void pd_rconn_close(pd_rconn_t *c);
/* Appends one command (binary-safe arguments) to the pipeline. */
int pd_rconn_append(pd_rconn_t *c, int argc, const char **argv, const size_t *lens) PD_WUR;
/* Writes the pipeline. */
int pd_rconn_flush(pd_rconn_t *c) PD_WUR;
/* Reads the next reply (caller frees it with freeReplyObject). */
int pd_rconn_read(pd_rconn_t *c, redisReply **out) PD_WUR;
/* One command, NUL-terminated arguments: append, flush, read. */
int pd_rconn_cmd(pd_rconn_t *c, redisReply **out, int argc, const char **argv) PD_WUR;
/* A TLS client context that trusts ca_file (empty: the system's store). */
int pd_rconn_tls_ctx(SSL_CTX **out, const char *ca_file, char *err, size_t cap) PD_WUR;

/* --- connecting to the master (sentinel.c) --- */
/* Opens c to the server u names: connects, AUTH, SELECT, and for a Sentinel URL asks
 * each sentinel in turn for the master and checks its ROLE. *fatal is set when the
 * failure is one that retrying will not heal (wrong password, TLS refused). */
int pd_rmaster_connect(pd_rconn_t *c, const pd_rurl_t *u, SSL_CTX *ctx, int timeout_ms, bool *fatal, char *err,
                       size_t cap) PD_WUR;

/* --- [cache] password_secret (secret.c): one credential for the process, counted --- */
struct pd_cred;
/* The credential of cfg's password_secret (NULL in *out when it is not set); err
 * names the secret and the cause (never the value). */
int pd_rcred_acquire(const pd_cache_config_t *cfg, struct pd_cred **out, char *err, size_t cap) PD_WUR;
void pd_rcred_release(struct pd_cred *c);
/* pd_rmaster_connect with the credential's user (when the value names one) and
 * password put into u first; a refused password (WRONGPASS) fetches the secret
 * again and tries once more. cred NULL: u as it is. */
int pd_rcred_connect(pd_rconn_t *c, pd_rurl_t *u, struct pd_cred *cred, SSL_CTX *ctx, int timeout_ms, bool *fatal,
                     char *err, size_t cap) PD_WUR;

/* The first line of path into out (the password of password_file); err names the file, never the value. */
int pd_rpassword_file(const char *path, char *out, size_t cap, char *err, size_t ecap) PD_WUR;

/* --- the scripts (scripts.c) --- */
typedef enum { PD_RS_TAKE, PD_RS_HIT, PD_RS_ADD, PD_RS_BLOCK, PD_RS_NODES, PD_RS__N } pd_rscript_t;
const char *pd_rscript_body(pd_rscript_t s);
/* the SHA1 hex of the body, as EVALSHA wants it */
const char *pd_rscript_sha(pd_rscript_t s);

#endif
