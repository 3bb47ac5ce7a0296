/*
 * The redis rotation handler: one ACL user with two passwords for a while. Redis
 * ACL users hold several passwords, so setSecret adds the new one (ACL SETUSER u
 * >new) while the old one keeps working; finishSecret makes it CURRENT and every payd
 * fetches it; the retirement after the grace period removes the old one (ACL SETUSER u
 * <old). Connections already authenticated stay so (Redis checks a password at AUTH).
 * ACLs are per server: the target URL names the server (a Sentinel URL reaches the
 * master only; replicas need the same ACL change, see docs/redis.md).
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

/* ACL SETUSER user <op><password>: op '>' adds, '<' removes */
static int
acl_password(const pd_rot_target_t *t, pd_view_t master, pd_view_t value, char op, char *why, size_t cap)
{
    char user[PD_CRED_USER_MAX], pw[PD_CRED_PASSWORD_MAX + 2];
    int r;
    if (pd_cred_parse(value, user, sizeof(user), pw + 1, sizeof(pw) - 1) != 0) {
        snprintf(why, cap, "a stored login is malformed");
        return PD_ERR_INVALID;
    }
    pw[0] = op;
    pd_rlink_t *l = r_login(t, master, "master", why, cap);
    if (l == NULL) {
        r = PD_ERR_UNAVAILABLE;
    } else {
        const char *get[] = {"ACL", "GETUSER", t->username};
        const char *setu[] = {"ACL", "SETUSER", t->username, pw};
        if ((r = r_cmd(l, 3, get, false, why, cap)) == PD_ERR_NOTFOUND)
            snprintf(why, cap, "the Redis ACL user %s does not exist (create it with its rights first)", t->username);
        if (r == 0)
            r = r_cmd(l, 4, setu, false, why, cap);
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
