/*
 * The postgres rotation handler: alternating users. PostgreSQL holds one password
 * per role, so a new password for the role in use would lock out every node that has
 * not fetched it yet. Instead the secret alternates between USER and USER_clone (a
 * role created on the first rotation, member of USER with its sessions run as USER,
 * so both reach the same objects): setSecret gives the other role a new password,
 * finishSecret makes it CURRENT while the old role still logs in, and the retirement
 * after the grace period clears the old role's password (PASSWORD NULL). Sessions
 * already open keep working (PostgreSQL checks a password at connect time only).
 *
 * The password goes to the server only as a SCRAM-SHA-256 verifier computed here
 * (PQencryptPasswordConn), so it is in no server log even with log_statement = all.
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "payd/cred.h"
#include "vault/rotation.h"

static void
one_line(const char *in, char *out, size_t cap)
{
    snprintf(out, cap, "%s", in);
    for (char *p = out; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = *(p + 1) != '\0' ? ' ' : '\0';
}

/* a session as login (value "USER\nPASSWORD" or "PASSWORD" for the URL's user) */
static PGconn *
pg_login(const pd_rot_target_t *t, pd_view_t login, const char *what, char *why, size_t cap)
{
    char user[PD_CRED_USER_MAX], pw[PD_CRED_PASSWORD_MAX + 1], msg[400];
    if (pd_cred_parse(login, user, sizeof(user), pw, sizeof(pw)) != 0) {
        snprintf(why, cap, "the %s login is not a password or \"USER\\nPASSWORD\"", what);
        return NULL;
    }
    const char *keys[] = {"connect_timeout", "dbname", "application_name", user[0] ? "user" : NULL, NULL, NULL};
    const char *vals[] = {"5", t->url, "payd-vault-rotation", user[0] ? user : NULL, NULL, NULL};
    int k = user[0] ? 4 : 3;
    keys[k] = "password";
    vals[k] = pw;
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    OPENSSL_cleanse(pw, sizeof(pw));
    if (c != NULL && PQstatus(c) == CONNECTION_OK)
        return c;
    one_line(c != NULL ? PQerrorMessage(c) : "out of memory", msg, sizeof(msg));
    snprintf(why, cap, "cannot log in to %s as the %s login: %s", PQhost(c) ? PQhost(c) : "the database", what, msg);
    PQfinish(c);
    return NULL;
}

static int
pg_exec(PGconn *c, const char *sql, char *why, size_t cap)
{
    PGresult *res = PQexec(c, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok) {
        char msg[300];
        one_line(PQresultErrorMessage(res), msg, sizeof(msg));
        snprintf(why, cap, "%s", msg);
    }
    PQclear(res);
    return ok ? 0 : PD_ERR_UNAVAILABLE;
}

static int
pending_value(const pd_rot_target_t *t, pd_view_t current, const char *password, pd_buf_t *out)
{
    char user[PD_CRED_USER_MAX], pw[PD_CRED_PASSWORD_MAX + 1], clone[PD_ROT_USER_MAX + 8];
    int r = pd_cred_parse(current, user, sizeof(user), pw, sizeof(pw));
    OPENSSL_cleanse(pw, sizeof(pw));
    if (r != 0)
        return r;
    snprintf(clone, sizeof(clone), "%s_clone", t->username);
    const char *next = strcmp(user, clone) == 0 ? t->username : clone;
    return pd_buf_printf(out, "%s\n%s", next, password);
}

/* ALTER ROLE user PASSWORD <verifier> (or NULL), on the master's session */
static int
set_password(PGconn *c, const char *user, const char *password, char *why, size_t cap)
{
    char sql[1024];
    int r = PD_ERR_NOMEM;
    char *id = PQescapeIdentifier(c, user, strlen(user)), *lit = NULL, *verifier = NULL;
    if (id == NULL)
        goto out;
    if (password != NULL) {
        if ((verifier = PQencryptPasswordConn(c, password, user, "scram-sha-256")) == NULL ||
            (lit = PQescapeLiteral(c, verifier, strlen(verifier))) == NULL) {
            snprintf(why, cap, "cannot compute the SCRAM verifier");
            r = PD_ERR_CRYPTO;
            goto out;
        }
    }
    snprintf(sql, sizeof(sql), "ALTER ROLE %s WITH LOGIN PASSWORD %s", id, lit != NULL ? lit : "NULL");
    r = pg_exec(c, sql, why, cap);
out:
    OPENSSL_cleanse(sql, sizeof(sql));
    if (verifier != NULL) {
        OPENSSL_cleanse(verifier, strlen(verifier));
        PQfreemem(verifier);
    }
    PQfreemem(lit);
    PQfreemem(id);
    return r;
}

/* USER_clone: member of USER, sessions run as USER (objects it creates are USER's) */
static int
ensure_clone(PGconn *c, const pd_rot_target_t *t, const char *clone, char *why, size_t cap)
{
    char sql[1024];
    char *cid = PQescapeIdentifier(c, clone, strlen(clone)), *uid = PQescapeIdentifier(c, t->username, strlen(t->username));
    char *lit = PQescapeLiteral(c, clone, strlen(clone));
    int r = PD_ERR_NOMEM;
    if (cid != NULL && uid != NULL && lit != NULL) {
        snprintf(sql, sizeof(sql),
                 "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s) THEN "
                 "CREATE ROLE %s LOGIN IN ROLE %s; END IF; END$$; ALTER ROLE %s SET role = %s",
                 lit, cid, uid, cid, uid);
        r = pg_exec(c, sql, why, cap);
    }
    PQfreemem(cid);
    PQfreemem(uid);
    PQfreemem(lit);
    return r;
}

static int
set(const pd_rot_target_t *t, pd_view_t master, pd_view_t pending, char *why, size_t cap)
{
    char user[PD_CRED_USER_MAX], pw[PD_CRED_PASSWORD_MAX + 1], clone[PD_ROT_USER_MAX + 8], w[400] = "";
    int r;
    PGconn *c = pg_login(t, master, "master", why, cap);
    if (c == NULL)
        return PD_ERR_UNAVAILABLE;
    if ((r = pd_cred_parse(pending, user, sizeof(user), pw, sizeof(pw))) != 0) {
        snprintf(why, cap, "the pending value is malformed");
    } else {
        snprintf(clone, sizeof(clone), "%s_clone", t->username);
        if (strcmp(user, clone) == 0 && (r = ensure_clone(c, t, clone, w, sizeof(w))) != 0)
            snprintf(why, cap, "cannot create the role %s: %s", clone, w);
        else if (r == 0 && (r = set_password(c, user, pw, w, sizeof(w))) != 0)
            snprintf(why, cap, "cannot set the password of role %s: %s", user, w);
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    PQfinish(c);
    return r;
}

static int
test(const pd_rot_target_t *t, pd_view_t pending, char *why, size_t cap)
{
    PGconn *c = pg_login(t, pending, "pending", why, cap);
    if (c == NULL)
        return PD_ERR_AUTH;
    int r = pg_exec(c, "SELECT 1", why, cap);
    PQfinish(c);
    return r;
}

static int
retire(const pd_rot_target_t *t, pd_view_t master, pd_view_t previous, pd_view_t current, char *why, size_t cap)
{
    char pu[PD_CRED_USER_MAX], cu[PD_CRED_USER_MAX], pw[PD_CRED_PASSWORD_MAX + 1], w[400] = "";
    int r = pd_cred_parse(previous, pu, sizeof(pu), pw, sizeof(pw));
    if (r == 0)
        r = pd_cred_parse(current, cu, sizeof(cu), pw, sizeof(pw));
    OPENSSL_cleanse(pw, sizeof(pw));
    if (r != 0) {
        snprintf(why, cap, "a stored login is malformed");
        return r;
    }
    if (pu[0] == '\0' || strcmp(pu, cu) == 0)
        return 0; /* the first rotation from an operator's value, or nothing to retire */
    PGconn *c = pg_login(t, master, "master", why, cap);
    if (c == NULL)
        return PD_ERR_UNAVAILABLE;
    if ((r = set_password(c, pu, NULL, w, sizeof(w))) != 0)
        snprintf(why, cap, "cannot clear the password of role %s: %s", pu, w);
    PQfinish(c);
    return r;
}

const pd_rot_handler_t pd_rot_postgres = {"postgres", pending_value, set, test, retire};
