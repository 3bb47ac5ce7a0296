/*
 * Reaching the master: a direct URL connects to its one host; a Sentinel URL
 * follows the Sentinel client rules (redis.io, "Sentinel client spec"):
 *   1. ask each sentinel in turn SENTINEL get-master-addr-by-name; the first that
 *      answers names the master;
 *   2. connect to it and check ROLE: a server that is not "master" is refused (it may
 *      be a demoted master a sentinel has not caught up with), and the next sentinel
 *      is asked;
 *   3. the caller rediscovers (calls this again) on any connection error and on a
 *      -READONLY reply.
 * Then AUTH (ACL user + password, or password alone) and SELECT db.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/internal.h"

/* AUTH, SELECT and the ROLE check on an open connection */
static int
handshake(pd_rconn_t *c, const pd_rurl_t *u, bool check_role, bool *fatal, char *err, size_t cap)
{
    redisReply *rp = NULL;
    int r = 0;
    if (u->password[0] != '\0') {
        const char *a3[] = {"AUTH", u->user, u->password};
        const char *a2[] = {"AUTH", u->password};
        r = u->user[0] != '\0' ? pd_rconn_cmd(c, &rp, 3, a3) : pd_rconn_cmd(c, &rp, 2, a2);
        if (r == 0 && rp->type == REDIS_REPLY_ERROR) {
            *fatal = true; /* WRONGPASS, or AUTH to a server without a password: configuration */
            snprintf(err, cap, "%s refused the credentials of [cache] url%s: %.120s", c->peer,
                     u->user[0] ? " (ACL user)" : "", rp->str);
            r = PD_ERR_AUTH;
        }
        freeReplyObject(rp);
        rp = NULL;
        if (r != 0)
            goto out;
    }
    {
        const char *ping[] = {"PING"};
        r = pd_rconn_cmd(c, &rp, 1, ping);
        if (r == 0 && rp->type == REDIS_REPLY_ERROR) {
            *fatal = strncmp(rp->str, "NOAUTH", 6) == 0;
            snprintf(err, cap, "%s: %.160s%s", c->peer, rp->str, *fatal ? " (set a password in [cache] url)" : "");
            r = PD_ERR_AUTH;
        }
        freeReplyObject(rp);
        rp = NULL;
        if (r != 0)
            goto out;
    }
    if (u->db != 0) {
        char db[8];
        snprintf(db, sizeof(db), "%d", u->db);
        const char *sel[] = {"SELECT", db};
        r = pd_rconn_cmd(c, &rp, 2, sel);
        if (r == 0 && rp->type == REDIS_REPLY_ERROR) {
            snprintf(err, cap, "%s: SELECT %d: %.160s", c->peer, u->db, rp->str);
            *fatal = true;
            r = PD_ERR_CONFIG;
        }
        freeReplyObject(rp);
        rp = NULL;
        if (r != 0)
            goto out;
    }
    if (check_role) {
        const char *role[] = {"ROLE"};
        r = pd_rconn_cmd(c, &rp, 1, role);
        if (r == 0) {
            bool master = rp->type == REDIS_REPLY_ARRAY && rp->elements > 0 && rp->element[0]->type == REDIS_REPLY_STRING &&
                          strcmp(rp->element[0]->str, "master") == 0;
            if (!master) {
                snprintf(err, cap, "%s, named master by the sentinels, is not a master (ROLE: %.40s)", c->peer,
                         rp->type == REDIS_REPLY_ARRAY && rp->elements > 0 && rp->element[0]->type == REDIS_REPLY_STRING
                             ? rp->element[0]->str
                         : rp->type == REDIS_REPLY_ERROR ? rp->str
                                                         : "?");
                r = PD_ERR_STATE;
            }
        }
        freeReplyObject(rp);
        rp = NULL;
    }
out:
    if (r != 0 && err[0] == '\0')
        snprintf(err, cap, "%s: %s", c->peer, pd_strerror(r));
    return r;
}

/* asks one sentinel for the master's address */
static int
ask_sentinel(const pd_rurl_t *u, int i, int timeout_ms, char *host, size_t hcap, uint16_t *port, char *err, size_t cap)
{
    pd_rconn_t s;
    redisReply *rp = NULL;
    int r = pd_rconn_open(&s, u->hosts[i].host, u->hosts[i].port, NULL, timeout_ms, err, cap);
    if (r != 0)
        return r;
    const char *q[] = {"SENTINEL", "get-master-addr-by-name", u->master};
    r = pd_rconn_cmd(&s, &rp, 3, q);
    if (r != 0) {
        snprintf(err, cap, "sentinel %s: %s", s.peer, pd_strerror(r));
    } else if (rp->type == REDIS_REPLY_NIL) {
        snprintf(err, cap, "sentinel %s does not know a master named \"%s\"", s.peer, u->master);
        r = PD_ERR_NOTFOUND;
    } else if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 2 || rp->element[0]->type != REDIS_REPLY_STRING ||
               rp->element[1]->type != REDIS_REPLY_STRING) {
        snprintf(err, cap, "sentinel %s: unexpected answer to get-master-addr-by-name%s%.100s", s.peer,
                 rp->type == REDIS_REPLY_ERROR ? ": " : "", rp->type == REDIS_REPLY_ERROR ? rp->str : "");
        r = PD_ERR_PROTOCOL;
    } else {
        char *end = NULL;
        long p = strtol(rp->element[1]->str, &end, 10);
        if (rp->element[0]->len >= hcap || end == rp->element[1]->str || *end != '\0' || p < 1 || p > 65535) {
            snprintf(err, cap, "sentinel %s named an unusable master address", s.peer);
            r = PD_ERR_PROTOCOL;
        } else {
            memcpy(host, rp->element[0]->str, rp->element[0]->len + 1);
            *port = (uint16_t)p;
        }
    }
    freeReplyObject(rp);
    pd_rconn_close(&s);
    return r;
}

int
pd_rmaster_connect(pd_rconn_t *c, const pd_rurl_t *u, SSL_CTX *ctx, int timeout_ms, bool *fatal, char *err, size_t cap)
{
    *fatal = false;
    err[0] = '\0';
    if (u->kind != PD_RURL_SENTINEL) {
        int r = pd_rconn_open(c, u->hosts[0].host, u->hosts[0].port, ctx, timeout_ms, err, cap);
        if (r == PD_ERR_CRYPTO)
            *fatal = true;
        if (r == 0 && (r = handshake(c, u, false, fatal, err, cap)) != 0)
            pd_rconn_close(c);
        return r;
    }
    int r = PD_ERR_UNAVAILABLE;
    char why[512] = "";
    for (int i = 0; i < u->nhosts; i++) {
        char host[256];
        uint16_t port = 0;
        err[0] = '\0';
        if ((r = ask_sentinel(u, i, timeout_ms, host, sizeof(host), &port, err, cap)) != 0) {
            snprintf(why, sizeof(why), "%s", err);
            continue;
        }
        if ((r = pd_rconn_open(c, host, port, ctx, timeout_ms, err, cap)) == 0 &&
            (r = handshake(c, u, true, fatal, err, cap)) != 0)
            pd_rconn_close(c);
        if (r == 0 || *fatal)
            return r;
        snprintf(why, sizeof(why), "%s", err);
    }
    snprintf(err, cap, "no usable master for \"%s\" from %d sentinel(s): last: %s", u->master, u->nhosts, why);
    return r;
}
