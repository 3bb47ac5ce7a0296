/*
 * The redis rotation handler: one ACL user with two passwords for a while. Redis
 * ACL users hold several passwords, so setSecret adds the new one (ACL SETUSER u
 * >new) while the old one keeps working; finishSecret makes it CURRENT and every payd
 * fetches it; the retirement after the grace period removes the old one (ACL SETUSER u
 * <old). Connections already authenticated stay so (Redis checks a password at AUTH).
 * ACLs are per server and not replicated: each change is made on the master (the
 * target URL, or the master a Sentinel URL names) and then on every replica the
 * master's ROLE lists, with the same master login, so a failover to a replica finds
 * the same passwords. A replica that cannot be changed fails the step (it is retried);
 * one that lacks a password being removed is not an error.
 *
 * The master login must be allowed ACL SETUSER and ACL GETUSER. The user must exist:
 * SETUSER would otherwise create one without rights.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "payd/cred.h"
#include "payd/redis_link.h"
#include "vault/rotation.h"

static pd_rlink_t *
r_login(const pd_rot_target_t *t, pd_view_t login, const char *what, char *why, size_t cap)
{
    char user[PD_CRED_USER_MAX], pw[PD_CRED_PASSWORD_MAX + 1], err[300];
    pd_rlink_t *l = NULL;
    if (pd_cred_parse(login, user, sizeof(user), pw, sizeof(pw)) != 0) {
        snprintf(why, cap, "the %s login is not a password or \"USER\\nPASSWORD\"", what);
        return NULL;
    }
    int r = pd_rlink_new_login(&l, t->url, NULL, user, pw, 2000, err, sizeof(err));
    OPENSSL_cleanse(pw, sizeof(pw));
    if (r == 0 && (r = pd_rlink_connect(l, NULL, err, sizeof(err))) != 0) {
        pd_rlink_free(l);
        l = NULL;
    }
    if (r != 0)
        snprintf(why, cap, "cannot log in to Redis as the %s login: %s", what, err); /* err never holds a password */
    return l;
}

/* one command; a Redis error reply becomes why */
static int
r_cmd(pd_rlink_t *l, int argc, const char **argv, bool nil_ok, char *why, size_t cap)
{
    redisReply *rp = NULL;
    int r = pd_rlink_cmd(l, &rp, argc, argv);
    if (r != 0)
        snprintf(why, cap, "Redis did not answer %s %s", argv[0], argc > 1 ? argv[1] : "");
    else if (rp->type == REDIS_REPLY_ERROR) {
        snprintf(why, cap, "%s %s: %.200s", argv[0], argc > 1 ? argv[1] : "", rp->str);
        r = PD_ERR_PERM;
    } else if (rp->type == REDIS_REPLY_NIL && !nil_ok) {
        r = PD_ERR_NOTFOUND;
    }
    freeReplyObject(rp);
    return r;
}

static int
pending_value(const pd_rot_target_t *t, pd_view_t current, const char *password, pd_buf_t *out)
{
    (void)current;
    return pd_buf_printf(out, "%s\n%s", t->username, password);
}

/* ACL GETUSER then ACL SETUSER user <op><password> on the server l is logged in to */
static int
acl_set_on(pd_rlink_t *l, const pd_rot_target_t *t, const char *pw, bool replica, char *why, size_t cap)
{
    const char *get[] = {"ACL", "GETUSER", t->username};
    const char *setu[] = {"ACL", "SETUSER", t->username, pw};
    int r = r_cmd(l, 3, get, false, why, cap);
    if (r == PD_ERR_NOTFOUND)
        snprintf(why, cap, "the Redis ACL user %s does not exist on %s (create it with its rights first)",
                 t->username, pd_rlink_peer(l));
    if (r == 0 && (r = r_cmd(l, 4, setu, false, why, cap)) == PD_ERR_PERM && replica && pw[0] == '<' &&
        strstr(why, "does not exist") != NULL)
        r = 0; /* a replica that never had the old password */
    return r;
}

/* the replicas ROLE on the master lists, as "host:port" into hosts (at most max) */
static size_t
replicas_of(pd_rlink_t *l, char hosts[][300], size_t max)
{
    const char *role[] = {"ROLE"};
    redisReply *rp = NULL;
    size_t n = 0;
    if (pd_rlink_cmd(l, &rp, 1, role) != 0)
        return 0;
    if (rp->type == REDIS_REPLY_ARRAY && rp->elements >= 3 && rp->element[2]->type == REDIS_REPLY_ARRAY) {
        const redisReply *list = rp->element[2];
        for (size_t i = 0; i < list->elements && n < max; i++) {
            const redisReply *e = list->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING ||
                e->element[1]->type != REDIS_REPLY_STRING)
                continue;
            const char *ip = e->element[0]->str;
            snprintf(hosts[n++], 300, strchr(ip, ':') != NULL ? "[%s]:%s" : "%s:%s", ip, e->element[1]->str);
        }
    }
    freeReplyObject(rp);
    return n;
}

/* ACL SETUSER user <op><password> on the master, then on each of its replicas:
 * op '>' adds, '<' removes */
static int
acl_password(const pd_rot_target_t *t, pd_view_t master, pd_view_t value, char op, char *why, size_t cap)
{
    char user[PD_CRED_USER_MAX], pw[PD_CRED_PASSWORD_MAX + 2], hosts[16][300];
    int r;
    if (pd_cred_parse(value, user, sizeof(user), pw + 1, sizeof(pw) - 1) != 0) {
        snprintf(why, cap, "a stored login is malformed");
        return PD_ERR_INVALID;
    }
    pw[0] = op;
    pd_rlink_t *l = r_login(t, master, "master", why, cap);
    size_t nrep = 0;
    if (l == NULL) {
        r = PD_ERR_UNAVAILABLE;
    } else {
        if ((r = acl_set_on(l, t, pw, false, why, cap)) == 0)
            nrep = replicas_of(l, hosts, sizeof(hosts) / sizeof(hosts[0]));
        pd_rlink_free(l);
    }
    bool tls = strncmp(t->url, "rediss://", 9) == 0;
    for (size_t i = 0; r == 0 && i < nrep; i++) {
        pd_rot_target_t rt = *t;
        char w[300];
        snprintf(rt.url, sizeof(rt.url), "%s://%.299s", tls ? "rediss" : "redis", hosts[i]);
        if ((l = r_login(&rt, master, "master", w, sizeof(w))) == NULL) {
            snprintf(why, cap, "replica %s: %s", hosts[i], w);
            r = PD_ERR_UNAVAILABLE;
            break;
        }
        if ((r = acl_set_on(l, &rt, pw, true, w, sizeof(w))) != 0)
            snprintf(why, cap, "replica %s: %s", hosts[i], w);
        pd_rlink_free(l);
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    return r;
}

static int
set(const pd_rot_target_t *t, pd_view_t master, pd_view_t pending, char *why, size_t cap)
{
    return acl_password(t, master, pending, '>', why, cap);
}

static int
test(const pd_rot_target_t *t, pd_view_t pending, char *why, size_t cap)
{
    pd_rlink_t *l = r_login(t, pending, "pending", why, cap);
    if (l == NULL)
        return PD_ERR_AUTH;
    const char *ping[] = {"PING"};
    int r = r_cmd(l, 1, ping, false, why, cap);
    pd_rlink_free(l);
    return r;
}

static int
retire(const pd_rot_target_t *t, pd_view_t master, pd_view_t previous, pd_view_t current, char *why, size_t cap)
{
    if (pd_view_eq(previous, current))
        return 0;
    return acl_password(t, master, previous, '<', why, cap);
}

const pd_rot_handler_t pd_rot_redis = {"redis", pending_value, set, test, retire};
