/*
 * One blocking Redis connection for a worker thread that is not the cache's: the
 * cache's own connection code (src/cache: hiredis's redisFormatCommandArgv and
 * redisReader over payd's socket and OpenSSL, Sentinel discovery) behind a small
 * interface. The transaction stream's publisher (src/events/stream.c) and payctl
 * stream use it. Never on an event-loop thread: each call blocks up to the timeout.
 */
#ifndef PAYD_REDIS_LINK_H
#define PAYD_REDIS_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "payd/cache.h"
#include "payd/error.h"

typedef struct pd_rlink pd_rlink_t;

/* Checks url (the [cache] url forms), tls_ca and password_file (may be NULL or
 * empty) without connecting. err names what is wrong, never the password. */
int pd_rlink_new(pd_rlink_t **out, const char *url, const char *tls_ca, const char *password_file, int timeout_ms,
                 char *err, size_t cap) PD_WUR;
/* The same with the login given (user may be NULL or "": the URL's; password
 * overrides the URL's): the vault's redis rotation handler logs in with secrets. */
int pd_rlink_new_login(pd_rlink_t **out, const char *url, const char *tls_ca, const char *user, const char *password,
                       int timeout_ms, char *err, size_t cap) PD_WUR;
/* Logs in with [cache] password_secret when it is set (the stream on the cache's
 * Redis): the same credential as the cache's, rotations included. err names the
 * secret and the cause. */
int pd_rlink_use_cache_secret(pd_rlink_t *l, char *err, size_t cap) PD_WUR;
void pd_rlink_free(pd_rlink_t *l);
/* Connects (for a Sentinel URL: to the master the sentinels name, its ROLE checked)
 * unless connected. *fatal (may be NULL): retrying will not heal it (wrong password,
 * TLS refused). */
int pd_rlink_connect(pd_rlink_t *l, bool *fatal, char *err, size_t cap) PD_WUR;
bool pd_rlink_connected(const pd_rlink_t *l);
/* Drops the connection (the next connect rediscovers the master). */
void pd_rlink_drop(pd_rlink_t *l);
/* The master in use, "host:port" ("" when not connected). */
const char *pd_rlink_peer(const pd_rlink_t *l);
/* Appends a command (binary-safe arguments) to the pipeline; flush sends it; read
 * takes the next reply (freeReplyObject). An I/O or protocol error drops the
 * connection; a reply of type REDIS_REPLY_ERROR is a reply, not an error here. */
int pd_rlink_append(pd_rlink_t *l, int argc, const char **argv, const size_t *lens) PD_WUR;
int pd_rlink_flush(pd_rlink_t *l) PD_WUR;
int pd_rlink_read(pd_rlink_t *l, redisReply **out) PD_WUR;
/* append + flush + read of one command of NUL-terminated arguments (at most 16). */
int pd_rlink_cmd(pd_rlink_t *l, redisReply **out, int argc, const char **argv) PD_WUR;

/* The [cache] values in force (NULL when [cache] was never registered). */
const pd_cache_config_t *pd_cache_config(void);

#endif
