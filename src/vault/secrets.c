/*
 * Secrets: versions with stages CURRENT / PENDING / PREVIOUS, values encrypted under
 * alias/secrets, generated values, and the rotation engine
 * (createSecret -> setSecret -> testSecret -> finishSecret).
 *
 * Each rotation step commits on its own with the step recorded next to a rotation
 * token (the PENDING version's id), so a rotation interrupted anywhere resumes at
 * the next step. finishSecret moves the stages in one transaction, and a partial
 * unique index makes two CURRENT versions impossible.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "payd/log.h"
#include "vault/rotation.h"

#define SECRET_MAX 4096
#define DEFAULT_EXCLUDE "\"@/\\"

static int
ensure_index(pd_vault_state_t *v)
{
    return pd_db_script(v->db, "CREATE UNIQUE INDEX IF NOT EXISTS secret_one_current ON secret_versions(name) "
                               "WHERE stage = 'CURRENT';"
                               "CREATE UNIQUE INDEX IF NOT EXISTS secret_one_pending ON secret_versions(name) "
                               "WHERE stage = 'PENDING';");
}

int
pd_secrets_generate(int64_t length, const char *exclude, char *out, size_t cap)
{
    static const char *classes[] = {"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "0123456789",
                                    "!#$%&'()*+,-.:;<=>?[]^_`{|}~\"@/\\"};
    char alphabet[128];
    size_t na = 0;
    bool has_class[4] = {false};

    if (length < 8 || length > 1024 || (size_t)length >= cap)
        return PD_ERR_RANGE;
    for (int c = 0; c < 4; c++) {
        for (const char *p = classes[c]; *p; p++) {
            if (strchr(exclude, *p) == NULL) {
                alphabet[na++] = *p;
                has_class[c] = true;
            }
        }
    }
    if (na < 10)
        return PD_ERR_RANGE;
    for (int attempt = 0; attempt < 100; attempt++) {
        bool seen[4] = {false};
        for (int64_t i = 0; i < length;) {
            uint8_t b;
            if (RAND_priv_bytes(&b, 1) != 1)
                return PD_ERR_CRYPTO;
            if (b >= 256 - 256 % na)
                continue; /* rejection sampling: uniform over the alphabet */
            char ch = alphabet[b % na];
            out[i++] = ch;
            for (int c = 0; c < 4; c++)
                if (strchr(classes[c], ch) != NULL)
                    seen[c] = true;
        }
        out[length] = '\0';
        /* every character class that is allowed appears at least once */
        bool ok = true;
        for (int c = 0; c < 4; c++)
            ok = ok && (!has_class[c] || seen[c]);
        if (ok)
            return 0;
    }
    return PD_ERR_CRYPTO;
}

static void
secret_context(char *out, size_t cap, const char *name, const char *version_id)
{
    snprintf(out, cap, "purpose=secret;name=%s;version=%s", name, version_id);
}

int
pd_secrets_insert_version(pd_vault_state_t *v, const char *name, const char *version_id, const char *stage,
                          pd_view_t value)
{
    pd_kms_key_t k;
    pd_buf_t env;
    char ctx[256];
    int r;
    if ((r = pd_kms_get(v, "alias/secrets", &k)) != 0)
        return r;
    pd_buf_init(&env, SECRET_MAX + 256);
    secret_context(ctx, sizeof(ctx), name, version_id);
    if ((r = pd_kms_encrypt(v, &k, pd_view_cstr(ctx), value, &env)) == 0)
        r = pd_db_exec(v->db,
                       "INSERT INTO secret_versions (name, version_id, stage, kek_version, value, created) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       PD_SQL_ARGS(PD_SQL_S(name), PD_SQL_S(version_id), PD_SQL_S(stage), PD_SQL_I(k.current_version),
                                   PD_SQL_B(env.p, env.len), PD_SQL_I(v->now())),
                       NULL);
    pd_buf_free(&env);
    return r;
}

typedef struct {
    int64_t rotation_days, length;
    char exclude[64], handler[32], token[PD_ID_MAX], step[16];
    bool found, rotating;
} meta_t;

static int
meta_row(const pd_row_t *r, void *arg)
{
    meta_t *m = arg;
    m->found = true;
    m->rotation_days = pd_row_int(r, 0);
    m->length = pd_row_int(r, 1);
    m->rotating = !pd_row_is_null(r, 4);
    if (pd_row_copy(r, 2, m->exclude, sizeof(m->exclude)) != 0 || pd_row_copy(r, 3, m->handler, sizeof(m->handler)) != 0 ||
        pd_row_copy(r, 4, m->token, sizeof(m->token)) != 0 || pd_row_copy(r, 5, m->step, sizeof(m->step)) != 0)
        return PD_ERR_INVALID;
    return 1;
}

static int
load_meta(pd_vault_state_t *v, const char *name, meta_t *m)
{
    memset(m, 0, sizeof(*m));
    int r = pd_db_query(v->db,
                        "SELECT rotation_days, length, exclude, handler, rotation_token, COALESCE(rotation_step, '') "
                        "FROM secrets WHERE name = ?",
                        PD_SQL_ARGS(PD_SQL_S(name)), meta_row, m);
    if (r != 0)
        return r;
    return m->found ? 0 : PD_ERR_NOTFOUND;
}

int
pd_secrets_create(pd_vault_state_t *v, const char *name, int64_t rotation_days, int64_t length, const char *exclude)
{
    char value[1025], vid[PD_ID_MAX];
    int r;
    if (exclude == NULL || exclude[0] == '\0')
        exclude = DEFAULT_EXCLUDE;
    if (length == 0)
        length = 32;
    if ((r = ensure_index(v)) != 0 || (r = pd_secrets_generate(length, exclude, value, sizeof(value))) != 0 ||
        (r = pd_id_new("ver", vid, sizeof(vid))) != 0)
        return r;
    r = pd_db_exec(v->db,
                   "INSERT INTO secrets (name, rotation_days, next_rotation, handler, length, exclude, created) "
                   "VALUES (?, ?, ?, 'random', ?, ?, ?)",
                   PD_SQL_ARGS(PD_SQL_S(name), PD_SQL_I(rotation_days),
                               PD_SQL_I(rotation_days > 0 ? v->now() + rotation_days * 86400 : 0), PD_SQL_I(length),
                               PD_SQL_S(exclude), PD_SQL_I(v->now())),
                   NULL);
    if (r == 0)
        r = pd_secrets_insert_version(v, name, vid, "CURRENT", pd_view_cstr(value));
    OPENSSL_cleanse(value, sizeof(value));
    return r;
}

typedef struct {
    pd_buf_t *env;
    char *vid;
    size_t vcap;
    bool found;
} ver_t;

static int
ver_row(const pd_row_t *r, void *arg)
{
    ver_t *x = arg;
    x->found = true;
    if (pd_row_copy(r, 0, x->vid, x->vcap) != 0)
        return PD_ERR_INVALID;
    pd_view_t b = pd_row_text(r, 1);
    return pd_buf_put(x->env, b.p, b.len) == 0 ? 1 : PD_ERR_NOMEM;
}

int
pd_secrets_get(pd_vault_state_t *v, const char *name, const char *stage, pd_buf_t *value, char *version_id,
               size_t vcap)
{
    pd_buf_t env;
    pd_kms_key_t k;
    char ctx[256];
    ver_t x = {&env, version_id, vcap, false};
    int r;
    pd_buf_init(&env, SECRET_MAX + 256);
    if ((r = pd_db_query(v->db, "SELECT version_id, value FROM secret_versions WHERE name = ? AND stage = ?",
                         PD_SQL_ARGS(PD_SQL_S(name), PD_SQL_S(stage)), ver_row, &x)) == 0 &&
        !x.found)
        r = PD_ERR_NOTFOUND;
    if (r == 0) {
        secret_context(ctx, sizeof(ctx), name, version_id);
        r = pd_kms_decrypt(v, pd_view_cstr(ctx), pd_buf_view(&env), value, &k);
    }
    pd_buf_free(&env);
    return r;
}

/* moves CURRENT -> PREVIOUS (dropping the old PREVIOUS) and new_id -> CURRENT */
static int
promote(pd_vault_state_t *v, const char *name, const char *new_id)
{
    int r = pd_db_exec(v->db, "UPDATE secret_versions SET stage = '' WHERE name = ? AND stage = 'PREVIOUS'",
                       PD_SQL_ARGS(PD_SQL_S(name)), NULL);
    if (r == 0)
        r = pd_db_exec(v->db, "UPDATE secret_versions SET stage = 'PREVIOUS' WHERE name = ? AND stage = 'CURRENT'",
                       PD_SQL_ARGS(PD_SQL_S(name)), NULL);
    if (r == 0)
        r = pd_db_exec(v->db, "UPDATE secret_versions SET stage = 'CURRENT' WHERE name = ? AND version_id = ?",
                       PD_SQL_ARGS(PD_SQL_S(name), PD_SQL_S(new_id)), NULL);
    return r;
}

int
pd_secrets_put(pd_vault_state_t *v, const char *name, pd_view_t value, char *version_id, size_t vcap)
{
    meta_t m;
    int r;
    if (value.len == 0 || value.len > SECRET_MAX)
        return PD_ERR_RANGE;
    if ((r = load_meta(v, name, &m)) == PD_ERR_NOTFOUND) {
        r = pd_db_exec(v->db,
                       "INSERT INTO secrets (name, rotation_days, next_rotation, handler, length, exclude, created) "
                       "VALUES (?, 0, 0, 'random', 32, ?, ?)",
                       PD_SQL_ARGS(PD_SQL_S(name), PD_SQL_S(DEFAULT_EXCLUDE), PD_SQL_I(v->now())), NULL);
    }
    if (r != 0)
        return r;
    if (m.rotating)
        return PD_ERR_STATE; /* a rotation is in progress: finish it first */
    if ((r = ensure_index(v)) != 0 || (r = pd_id_new("ver", version_id, vcap)) != 0 ||
        (r = pd_secrets_insert_version(v, name, version_id, "", value)) != 0)
        return r;
    return promote(v, name, version_id);
}

static void
failpoint(const char *step)
{
    /* test-only crash injection: PD_FAILPOINT=rotation-after-<step> */
    const char *fp = getenv("PD_FAILPOINT");
    char want[64];
    snprintf(want, sizeof(want), "rotation-after-%s", step);
    if (fp != NULL && strcmp(fp, want) == 0) {
        pd_log_warn("failpoint reached: killing the process", PD_LS("failpoint", want));
        kill(getpid(), SIGKILL);
    }
}

/* one step in its own transaction; `step` is the one just completed */
static int
step_txn(pd_vault_state_t *v, const char *name, const char *token, const char *step)
{
    int r = pd_db_exec(v->db, "UPDATE secrets SET rotation_token = ?, rotation_step = ? WHERE name = ?",
                       PD_SQL_ARGS(PD_SQL_S(token), PD_SQL_S(step), PD_SQL_S(name)), NULL);
    return r;
}

/* ends a step's transaction: its audit record, then the commit. A record that cannot
 * be written, or a commit that fails, rolls the step back: the rotation stays where it
 * was (and resumes there on the next tick), never a step without its record. */
static int
step_commit(pd_vault_state_t *v, const char *action, const char *name, int outcome)
{
    int r = pd_vault_audit(v, "rotation", action, name, outcome, "engine");
    if (r == 0)
        r = pd_db_commit(v->db);
    if (r != 0) {
        (void)pd_db_rollback(v->db);
        pd_vault_audit_resync(v);
    }
    return r;
}

static char g_rotate_error[512];

const char *
pd_secrets_rotate_error(void)
{
    return g_rotate_error;
}

/* the PENDING value of a rotation: generated, or the handler's login built on it */
static int
next_value(pd_vault_state_t *v, const meta_t *m, const pd_rot_handler_t *h, const pd_rot_target_t *t, pd_buf_t *out)
{
    char pw[1025], vid[PD_ID_MAX];
    pd_buf_t cur;
    int r = pd_secrets_generate(m->length, m->exclude, pw, sizeof(pw));
    if (r == 0 && h == NULL)
        r = pd_buf_put_cstr(out, pw);
    else if (r == 0) {
        pd_buf_init(&cur, SECRET_MAX);
        if ((r = pd_secrets_get(v, t->name, "CURRENT", &cur, vid, sizeof(vid))) == 0)
            r = h->pending_value(t, pd_buf_view(&cur), pw, out);
        pd_buf_free_secure(&cur);
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    return r;
}

/* setSecret of a handler: the system accepts the PENDING login (the old one still works) */
static int
handler_set(pd_vault_state_t *v, const pd_rot_handler_t *h, const pd_rot_target_t *t)
{
    pd_buf_t master, pending;
    char vid[PD_ID_MAX];
    pd_buf_init(&master, SECRET_MAX);
    pd_buf_init(&pending, SECRET_MAX);
    int r = pd_rot_master(v, t, &master, g_rotate_error, sizeof(g_rotate_error));
    if (r == 0 && (r = pd_secrets_get(v, t->name, "PENDING", &pending, vid, sizeof(vid))) != 0)
        snprintf(g_rotate_error, sizeof(g_rotate_error), "cannot read the PENDING version: %s", pd_strerror(r));
    if (r == 0)
        r = h->set(t, pd_buf_view(&master), pd_buf_view(&pending), g_rotate_error, sizeof(g_rotate_error));
    pd_buf_free_secure(&master);
    pd_buf_free_secure(&pending);
    return r;
}

int
pd_secrets_rotate(pd_vault_state_t *v, const char *name, bool *changed)
{
    meta_t m;
    pd_rot_target_t t;
    const pd_rot_handler_t *h = NULL;
    char cur_vid[PD_ID_MAX] = "";
    int r;

    *changed = false;
    g_rotate_error[0] = '\0';
    if ((r = load_meta(v, name, &m)) != 0)
        return r;
    if (strcmp(m.handler, "random") != 0) {
        if ((h = pd_rot_handler(m.handler)) == NULL) {
            snprintf(g_rotate_error, sizeof(g_rotate_error), "no rotation handler %s", m.handler);
            return PD_ERR_UNAVAILABLE;
        }
        if ((r = pd_rot_target_load(v, name, &t)) != 0) {
            snprintf(g_rotate_error, sizeof(g_rotate_error), "the secret has no target (url, master_secret)");
            return r == PD_ERR_NOTFOUND ? PD_ERR_STATE : r;
        }
    }
    /* createSecret */
    if (!m.rotating) {
        pd_buf_t value;
        /* a retirement still due is done first: the next setSecret may reuse its login */
        if (h != NULL && (r = pd_rot_retire(v, &t, true, g_rotate_error, sizeof(g_rotate_error))) != 0)
            return r;
        if ((r = pd_db_begin(v->db)) != 0)
            return r;
        pd_buf_init(&value, SECRET_MAX);
        if ((r = pd_id_new("ver", m.token, sizeof(m.token))) != 0 || (r = next_value(v, &m, h, &t, &value)) != 0 ||
            (r = pd_db_exec(v->db, "DELETE FROM secret_versions WHERE name = ? AND stage = 'PENDING'",
                            PD_SQL_ARGS(PD_SQL_S(name)), NULL)) != 0 ||
            (r = pd_secrets_insert_version(v, name, m.token, "PENDING", pd_buf_view(&value))) != 0 ||
            (r = step_txn(v, name, m.token, "create")) != 0) {
            pd_buf_free_secure(&value);
            (void)pd_db_rollback(v->db);
            return r;
        }
        pd_buf_free_secure(&value);
        if ((r = step_commit(v, "secrets.rotate.create", name, 0)) != 0)
            return r;
        snprintf(m.step, sizeof(m.step), "create");
        failpoint("create");
    }
    /* setSecret: the random handler has no external system to update; a failure
     * leaves the rotation at this step, tried again on the next tick */
    if (strcmp(m.step, "create") == 0) {
        if (h != NULL && (r = handler_set(v, h, &t)) != 0) {
            pd_log_error("setSecret failed", PD_LS("secret", name), PD_LS("handler", h->name),
                         PD_LS("reason", g_rotate_error));
            return r;
        }
        if ((r = pd_db_begin(v->db)) != 0)
            return r;
        if ((r = step_txn(v, name, m.token, "set")) != 0) {
            (void)pd_db_rollback(v->db);
            return r;
        }
        if ((r = step_commit(v, "secrets.rotate.set", name, 0)) != 0)
            return r;
        snprintf(m.step, sizeof(m.step), "set");
        failpoint("set");
    }
    /* testSecret: the PENDING value must decrypt and have the configured length */
    if (strcmp(m.step, "set") == 0) {
        pd_buf_t val;
        char vid[PD_ID_MAX];
        pd_buf_init(&val, SECRET_MAX);
        r = pd_secrets_get(v, name, "PENDING", &val, vid, sizeof(vid));
        bool ok = r == 0 && strcmp(vid, m.token) == 0;
        if (ok && h == NULL)
            ok = (int64_t)val.len == m.length;
        else if (ok && (r = h->test(&t, pd_buf_view(&val), g_rotate_error, sizeof(g_rotate_error))) != 0) {
            pd_log_error("testSecret failed: the rotation is rolled back", PD_LS("secret", name),
                         PD_LS("handler", h->name), PD_LS("reason", g_rotate_error));
            ok = false;
        }
        pd_buf_free_secure(&val);
        if (!ok) {
            /* roll back: drop PENDING, clear the token; CURRENT stays as it was */
            if ((r = pd_db_begin(v->db)) != 0)
                return r;
            if ((r = pd_db_exec(v->db, "DELETE FROM secret_versions WHERE name = ? AND stage = 'PENDING'",
                                PD_SQL_ARGS(PD_SQL_S(name)), NULL)) != 0 ||
                (r = pd_db_exec(v->db, "UPDATE secrets SET rotation_token = NULL, rotation_step = NULL WHERE name = ?",
                                PD_SQL_ARGS(PD_SQL_S(name)), NULL)) != 0) {
                (void)pd_db_rollback(v->db);
                return r;
            }
            if ((r = step_commit(v, "secrets.rotate.test", name, PD_ERR_AUTH)) != 0)
                return r;
            return PD_ERR_AUTH;
        }
        if ((r = pd_db_begin(v->db)) != 0)
            return r;
        if ((r = step_txn(v, name, m.token, "test")) != 0) {
            (void)pd_db_rollback(v->db);
            return r;
        }
        if ((r = step_commit(v, "secrets.rotate.test", name, 0)) != 0)
            return r;
        snprintf(m.step, sizeof(m.step), "test");
        failpoint("test");
    }
    /* finishSecret: stages move together, in one transaction */
    if (h != NULL) {
        pd_buf_t cur;
        pd_buf_init(&cur, SECRET_MAX);
        r = pd_secrets_get(v, name, "CURRENT", &cur, cur_vid, sizeof(cur_vid));
        pd_buf_free_secure(&cur);
        if (r != 0)
            return r;
    }
    if ((r = pd_db_begin(v->db)) != 0)
        return r;
    /* the old CURRENT (PREVIOUS after this) is retired once the grace period is over */
    if ((h != NULL && (r = pd_rot_target_schedule_retire(v, &t, cur_vid)) != 0) ||
        (r = promote(v, name, m.token)) != 0 ||
        (r = pd_db_exec(v->db,
                        "UPDATE secrets SET rotation_token = NULL, rotation_step = NULL, next_rotation = ? WHERE name = ?",
                        PD_SQL_ARGS(PD_SQL_I(m.rotation_days > 0 ? v->now() + m.rotation_days * 86400 : 0),
                                    PD_SQL_S(name)),
                        NULL)) != 0) {
        (void)pd_db_rollback(v->db);
        return r;
    }
    if ((r = step_commit(v, "secrets.rotate.finish", name, 0)) != 0)
        return r;
    *changed = true;
    return 0;
}

static int
list_row(const pd_row_t *r, void *arg)
{
    pd_jw_t *w = arg;
    pd_jw_obj_begin(w);
    pd_jw_kstrv(w, "name", pd_row_text(r, 0));
    pd_jw_kint(w, "rotation_days", pd_row_int(r, 1));
    pd_jw_kint(w, "next_rotation", pd_row_int(r, 2));
    pd_jw_kstrv(w, "handler", pd_row_text(r, 3));
    pd_jw_kbool(w, "rotating", !pd_row_is_null(r, 4));
    pd_jw_kint(w, "versions", pd_row_int(r, 5));
    pd_jw_obj_end(w);
    return 0;
}

int
pd_secrets_list(pd_vault_state_t *v, pd_jw_t *w)
{
    pd_jw_arr_begin(w);
    int r = pd_db_query(v->db,
                        "SELECT s.name, s.rotation_days, s.next_rotation, s.handler, s.rotation_token, "
                        "(SELECT COUNT(*) FROM secret_versions x WHERE x.name = s.name) FROM secrets s ORDER BY s.name",
                        NULL, 0, list_row, w);
    pd_jw_arr_end(w);
    return r;
}

static int
history_row(const pd_row_t *r, void *arg)
{
    pd_jw_t *w = arg;
    pd_jw_obj_begin(w);
    pd_jw_kstrv(w, "version_id", pd_row_text(r, 0));
    pd_view_t st = pd_row_text(r, 1);
    pd_jw_key(w, "stages");
    pd_jw_arr_begin(w);
    if (st.len > 0)
        pd_jw_strv(w, st);
    pd_jw_arr_end(w);
    pd_jw_kint(w, "created", pd_row_int(r, 2));
    pd_jw_kint(w, "key_version", pd_row_int(r, 3));
    pd_jw_obj_end(w);
    return 0;
}

int
pd_secrets_history(pd_vault_state_t *v, const char *name, pd_jw_t *w)
{
    meta_t m;
    int r = load_meta(v, name, &m);
    if (r != 0)
        return r;
    pd_jw_arr_begin(w);
    r = pd_db_query(v->db,
                    "SELECT version_id, stage, created, kek_version FROM secret_versions WHERE name = ? "
                    "ORDER BY created DESC, version_id",
                    PD_SQL_ARGS(PD_SQL_S(name)), history_row, w);
    pd_jw_arr_end(w);
    return r;
}

typedef struct {
    char names[32][128];
    size_t n;
} due_t;

static int
due_row(const pd_row_t *r, void *arg)
{
    due_t *d = arg;
    if (d->n < 32 && pd_row_copy(r, 0, d->names[d->n], sizeof(d->names[0])) == 0)
        d->n++;
    return 0;
}

void
pd_secrets_tick(pd_vault_state_t *v, void (*changed)(void *arg, const char *name), void *arg)
{
    due_t d = {.n = 0};
    pd_rot_tick(v); /* retirements whose grace period is over */
    /* interrupted rotations first, then the ones whose time has come */
    if (pd_db_query(v->db,
                    "SELECT name FROM secrets WHERE rotation_token IS NOT NULL "
                    "OR (rotation_days > 0 AND next_rotation <= ?) ORDER BY name",
                    PD_SQL_ARGS(PD_SQL_I(v->now())), due_row, &d) != 0)
        return;
    for (size_t i = 0; i < d.n; i++) {
        bool moved = false;
        int r = pd_secrets_rotate(v, d.names[i], &moved);
        if (r != 0)
            pd_log_error("secret rotation failed", PD_LS("secret", d.names[i]), PD_LERR(r));
        else
            pd_log_info("secret rotated", PD_LS("secret", d.names[i]));
        if (moved && changed != NULL)
            changed(arg, d.names[i]);
    }
}
