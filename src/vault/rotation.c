/*
 * Targets of the rotation handlers (vault table secret_targets, see rotation.h),
 * creation of a handler secret, and the retirement of PREVIOUS logins once every
 * node had the grace period to pick up CURRENT.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "payd/cred.h"
#include "payd/log.h"
#include "vault/rotation.h"

#define VALUE_MAX 4096

const pd_rot_handler_t *
pd_rot_handler(const char *name)
{
    if (strcmp(name, "postgres") == 0)
        return &pd_rot_postgres;
    if (strcmp(name, "redis") == 0)
        return &pd_rot_redis;
    return NULL;
}

static int
ensure_table(pd_vault_state_t *v)
{
    return pd_db_script(v->db, "CREATE TABLE IF NOT EXISTS secret_targets ("
                               "  name TEXT PRIMARY KEY, url TEXT NOT NULL, master TEXT NOT NULL,"
                               "  username TEXT NOT NULL, grace_s INTEGER NOT NULL,"
                               "  retire_version TEXT NOT NULL DEFAULT '', retire_at INTEGER NOT NULL DEFAULT 0);");
}

typedef struct {
    pd_rot_target_t *t;
    bool found;
} load_t;

static int
target_row(const pd_row_t *r, void *arg)
{
    load_t *l = arg;
    pd_rot_target_t *t = l->t;
    l->found = true;
    if (pd_row_copy(r, 0, t->url, sizeof(t->url)) != 0 || pd_row_copy(r, 1, t->master, sizeof(t->master)) != 0 ||
        pd_row_copy(r, 2, t->username, sizeof(t->username)) != 0 ||
        pd_row_copy(r, 4, t->retire_version, sizeof(t->retire_version)) != 0 ||
        pd_row_copy(r, 6, t->handler, sizeof(t->handler)) != 0)
        return PD_ERR_INVALID;
    t->grace_s = pd_row_int(r, 3);
    t->retire_at = pd_row_int(r, 5);
    return 1;
}

int
pd_rot_target_load(pd_vault_state_t *v, const char *name, pd_rot_target_t *t)
{
    load_t l = {t, false};
    int r;
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    if ((r = ensure_table(v)) != 0)
        return r;
    r = pd_db_query(v->db,
                    "SELECT t.url, t.master, t.username, t.grace_s, t.retire_version, t.retire_at, s.handler "
                    "FROM secret_targets t JOIN secrets s ON s.name = t.name WHERE t.name = ?",
                    PD_SQL_ARGS(PD_SQL_S(name)), target_row, &l);
    if (r == 0 && !l.found)
        r = PD_ERR_NOTFOUND;
    return r;
}

int
pd_rot_target_schedule_retire(pd_vault_state_t *v, const pd_rot_target_t *t, const char *previous_version)
{
    return pd_db_exec(v->db, "UPDATE secret_targets SET retire_version = ?, retire_at = ? WHERE name = ?",
                      PD_SQL_ARGS(PD_SQL_S(previous_version), PD_SQL_I(v->now() + t->grace_s), PD_SQL_S(t->name)),
                      NULL);
}

int
pd_rot_master(pd_vault_state_t *v, const pd_rot_target_t *t, pd_buf_t *out, char *why, size_t cap)
{
    char vid[PD_ID_MAX];
    int r = pd_secrets_get(v, t->master, "CURRENT", out, vid, sizeof(vid));
    if (r != 0)
        snprintf(why, cap, "cannot read the master secret %s: %s", t->master,
                 r == PD_ERR_NOTFOUND ? "no such secret" : pd_strerror(r));
    return r;
}

typedef struct {
    pd_buf_t *value;
    bool found;
} value_t;

static int
value_row(const pd_row_t *r, void *arg)
{
    value_t *x = arg;
    x->found = true;
    pd_view_t b = pd_row_text(r, 0);
    return pd_buf_put(x->value, b.p, b.len) == 0 ? 1 : PD_ERR_NOMEM;
}

/* a version's value by id (the retired PREVIOUS may have lost its stage since) */
static int
version_value(pd_vault_state_t *v, const char *name, const char *vid, pd_buf_t *out)
{
    pd_buf_t env;
    pd_kms_key_t k;
    char ctx[256];
    value_t x = {&env, false};
    pd_buf_init(&env, VALUE_MAX + 256);
    int r = pd_db_query(v->db, "SELECT value FROM secret_versions WHERE name = ? AND version_id = ?",
                        PD_SQL_ARGS(PD_SQL_S(name), PD_SQL_S(vid)), value_row, &x);
    if (r == 0 && !x.found)
        r = PD_ERR_NOTFOUND;
    if (r == 0) {
        snprintf(ctx, sizeof(ctx), "purpose=secret;name=%s;version=%s", name, vid);
        r = pd_kms_decrypt(v, pd_view_cstr(ctx), pd_buf_view(&env), out, &k);
    }
    pd_buf_free(&env);
    return r;
}

int
pd_rot_retire(pd_vault_state_t *v, pd_rot_target_t *t, bool own_txn, char *why, size_t cap)
{
    const pd_rot_handler_t *h = pd_rot_handler(t->handler);
    pd_buf_t master, prev, cur;
    char vid[PD_ID_MAX];
    int r;
    if (t->retire_version[0] == '\0')
        return 0;
    if (h == NULL) {
        snprintf(why, cap, "unknown handler %s", t->handler);
        return PD_ERR_STATE;
    }
    pd_buf_init(&master, VALUE_MAX);
    pd_buf_init(&prev, VALUE_MAX);
    pd_buf_init(&cur, VALUE_MAX);
    if ((r = pd_rot_master(v, t, &master, why, cap)) == 0 &&
        (r = version_value(v, t->name, t->retire_version, &prev)) == 0 &&
        (r = pd_secrets_get(v, t->name, "CURRENT", &cur, vid, sizeof(vid))) == 0)
        r = h->retire(t, pd_buf_view(&master), pd_buf_view(&prev), pd_buf_view(&cur), why, cap);
    else if (r != 0 && why[0] == '\0')
        snprintf(why, cap, "cannot read the versions of %s: %s", t->name, pd_strerror(r));
    pd_buf_free_secure(&master);
    pd_buf_free_secure(&prev);
    pd_buf_free_secure(&cur);
    if (r != 0)
        return r;
    if (own_txn && (r = pd_db_begin(v->db)) != 0)
        return r;
    r = pd_db_exec(v->db, "UPDATE secret_targets SET retire_version = '', retire_at = 0 WHERE name = ?",
                   PD_SQL_ARGS(PD_SQL_S(t->name)), NULL);
    if (r == 0)
        r = pd_vault_audit(v, "rotation", "secrets.rotate.retire", t->name, 0, "engine");
    if (own_txn) {
        if (r == 0)
            r = pd_db_commit(v->db);
        if (r != 0) {
            (void)pd_db_rollback(v->db);
            pd_vault_audit_resync(v);
        }
    }
    if (r == 0) {
        t->retire_version[0] = '\0';
        pd_log_info("previous login of a secret retired", PD_LS("secret", t->name), PD_LS("handler", t->handler));
    }
    return r;
}

typedef struct {
    char names[16][128];
    size_t n;
} due_t;

static int
due_row(const pd_row_t *r, void *arg)
{
    due_t *d = arg;
    if (d->n < 16 && pd_row_copy(r, 0, d->names[d->n], sizeof(d->names[0])) == 0)
        d->n++;
    return 0;
}

void
pd_rot_tick(pd_vault_state_t *v)
{
    due_t d = {.n = 0};
    if (ensure_table(v) != 0 ||
        pd_db_query(v->db, "SELECT name FROM secret_targets WHERE retire_version <> '' AND retire_at <= ? ORDER BY name",
                    PD_SQL_ARGS(PD_SQL_I(v->now())), due_row, &d) != 0)
        return;
    for (size_t i = 0; i < d.n; i++) {
        pd_rot_target_t t;
        char why[512] = "";
        int r = pd_rot_target_load(v, d.names[i], &t);
        if (r == 0)
            r = pd_rot_retire(v, &t, true, why, sizeof(why));
        if (r != 0)
            pd_log_error("cannot retire the previous login of a secret (tried again in a second)",
                         PD_LS("secret", d.names[i]), PD_LS("reason", why), PD_LERR(r));
    }
}

static bool
valid_user(const char *u)
{
    size_t n = strlen(u);
    if (n == 0 || n > PD_ROT_USER_MAX - 6) /* room for _clone */
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)u[i]) && u[i] != '_' && u[i] != '-')
            return false;
    return true;
}

static int
exists_row(const pd_row_t *r, void *arg)
{
    (void)r;
    *(bool *)arg = true;
    return 1;
}

/* checked before the system is touched: a second create must not change its password */
static int
exists(pd_vault_state_t *v, const char *name, char *why, size_t cap)
{
    bool found = false;
    int r = pd_db_query(v->db, "SELECT 1 FROM secrets WHERE name = ?", PD_SQL_ARGS(PD_SQL_S(name)), exists_row, &found);
    if (r == 0 && found) {
        snprintf(why, cap, "secret %s already exists", name);
        r = PD_ERR_EXISTS;
    }
    return r;
}

int
pd_secrets_create_rotated(pd_vault_state_t *v, const char *name, int64_t rotation_days, int64_t length,
                          const char *exclude, const pd_rot_target_t *t, char *why, size_t cap)
{
    const pd_rot_handler_t *h = pd_rot_handler(t->handler);
    char pw[1025], vid[PD_ID_MAX];
    pd_buf_t master, value;
    int r;
    if (h == NULL) {
        snprintf(why, cap, "unknown handler %s (random, postgres or redis)", t->handler);
        return PD_ERR_INVALID;
    }
    if (t->url[0] == '\0' || t->master[0] == '\0') {
        snprintf(why, cap, "a %s secret needs url and master_secret", t->handler);
        return PD_ERR_INVALID;
    }
    if (!valid_user(t->username)) {
        snprintf(why, cap, "username must be 1 to %d letters, digits, _ or -", PD_ROT_USER_MAX - 6);
        return PD_ERR_INVALID;
    }
    if (strcmp(t->master, name) == 0) {
        snprintf(why, cap, "a secret cannot be its own master");
        return PD_ERR_INVALID;
    }
    /* payd's api principal reads the secrets named payd/...: the login that may change
     * every password must not be one of them */
    if (strncmp(t->master, "payd/", 5) == 0) {
        snprintf(why, cap, "the master secret must not be named payd/... (payd could read it)");
        return PD_ERR_INVALID;
    }
    if (t->grace_s < 0 || t->grace_s > 86400) {
        snprintf(why, cap, "the grace period must be 0 to 86400 seconds");
        return PD_ERR_RANGE;
    }
    if (exclude == NULL || exclude[0] == '\0')
        exclude = "\"@/\\:'";
    pd_buf_init(&master, VALUE_MAX);
    pd_buf_init(&value, VALUE_MAX);
    if ((r = ensure_table(v)) != 0 || (r = exists(v, name, why, cap)) != 0 ||
        (r = pd_rot_master(v, t, &master, why, cap)) != 0)
        goto out;
    if ((r = pd_secrets_generate(length, exclude, pw, sizeof(pw))) != 0 ||
        (r = pd_buf_printf(&value, "%s\n%s", t->username, pw)) != 0 || (r = pd_id_new("ver", vid, sizeof(vid))) != 0)
        goto out;
    r = pd_db_exec(v->db,
                   "INSERT INTO secrets (name, rotation_days, next_rotation, handler, length, exclude, created) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   PD_SQL_ARGS(PD_SQL_S(name), PD_SQL_I(rotation_days),
                               PD_SQL_I(rotation_days > 0 ? v->now() + rotation_days * 86400 : 0), PD_SQL_S(t->handler),
                               PD_SQL_I(length), PD_SQL_S(exclude), PD_SQL_I(v->now())),
                   NULL);
    if (r == PD_ERR_EXISTS)
        snprintf(why, cap, "secret %s already exists", name);
    if (r == 0)
        r = pd_db_exec(v->db, "INSERT INTO secret_targets (name, url, master, username, grace_s) VALUES (?, ?, ?, ?, ?)",
                       PD_SQL_ARGS(PD_SQL_S(name), PD_SQL_S(t->url), PD_SQL_S(t->master), PD_SQL_S(t->username),
                                   PD_SQL_I(t->grace_s)),
                       NULL);
    if (r == 0)
        r = pd_secrets_insert_version(v, name, vid, "CURRENT", pd_buf_view(&value));
    /* the first password is set and tried last, inside the creation's transaction: a
     * wrong url or master fails it with the server's reason and nothing is stored, and
     * the server never holds a password the vault failed to store (short of the commit
     * itself failing) */
    if (r == 0 && (r = h->set(t, pd_buf_view(&master), pd_buf_view(&value), why, cap)) == 0)
        r = h->test(t, pd_buf_view(&value), why, cap);
out:
    OPENSSL_cleanse(pw, sizeof(pw));
    pd_buf_free_secure(&master);
    pd_buf_free_secure(&value);
    return r;
}
