/*
 * KMS: named keys (aliases), versions, per-key policy, envelope encryption with the
 * encryption context as associated data, rotation (manual and by period),
 * minimum decryption version, scheduled deletion, and the rewrap job.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "payd/log.h"
#include "payd/time.h"
#include "vault/internal.h"

static const char *const op_names[PD_KMS_OP_COUNT] = {"encrypt", "decrypt", "generate_data_key", "reencrypt",
                                                      "manage"};

static void
policy_format(const unsigned policy[PD_KMS_OP_COUNT], char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (int op = 0; op < PD_KMS_OP_COUNT; op++) {
        used += (size_t)snprintf(out + used, cap - used, "%s%s=", op ? ";" : "", op_names[op]);
        bool first = true;
        for (unsigned p = 1; p <= PD_PRINCIPAL_ROTATION && used < cap; p <<= 1) {
            if (policy[op] & p) {
                used += (size_t)snprintf(out + used, cap - used, "%s%s", first ? "" : ",", pd_principal_name(p));
                first = false;
            }
        }
        if (used >= cap)
            break;
    }
}

static void
policy_parse(pd_view_t text, unsigned policy[PD_KMS_OP_COUNT])
{
    char buf[512], *save = NULL;
    memset(policy, 0, sizeof(unsigned) * PD_KMS_OP_COUNT);
    if (pd_view_to_cstr(text, buf, sizeof(buf)) != 0)
        return;
    for (char *part = strtok_r(buf, ";", &save); part != NULL; part = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(part, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        for (int op = 0; op < PD_KMS_OP_COUNT; op++) {
            if (strcmp(part, op_names[op]) != 0)
                continue;
            char *s2 = NULL;
            for (char *p = strtok_r(eq + 1, ",", &s2); p != NULL; p = strtok_r(NULL, ",", &s2))
                policy[op] |= pd_principal_parse(p);
        }
    }
}

static int
key_row(const pd_row_t *r, void *arg)
{
    pd_kms_key_t *k = arg;
    k->num = (uint32_t)pd_row_int(r, 0);
    if (pd_row_copy(r, 1, k->id, sizeof(k->id)) != 0 || pd_row_copy(r, 2, k->alias, sizeof(k->alias)) != 0 ||
        pd_row_copy(r, 3, k->state, sizeof(k->state)) != 0)
        return PD_ERR_INVALID;
    k->current_version = (uint32_t)pd_row_int(r, 4);
    k->min_decrypt_version = (uint32_t)pd_row_int(r, 5);
    k->rotation_days = pd_row_int(r, 6);
    k->next_rotation = pd_row_int(r, 7);
    k->deletion_at = pd_row_int(r, 8);
    k->created = pd_row_int(r, 9);
    policy_parse(pd_row_text(r, 10), k->policy);
    return 1;
}

#define KEY_COLS "num, id, alias, state, current_version, min_decrypt_version, rotation_days, next_rotation, deletion_at, created, policy"

int
pd_kms_get(pd_vault_state_t *v, const char *name, pd_kms_key_t *out)
{
    memset(out, 0, sizeof(*out));
    int r;
    if (strncmp(name, "alias/", 6) == 0)
        r = pd_db_query(v->db, "SELECT " KEY_COLS " FROM kms_keys WHERE alias = ?", PD_SQL_ARGS(PD_SQL_S(name + 6)),
                        key_row, out);
    else
        r = pd_db_query(v->db, "SELECT " KEY_COLS " FROM kms_keys WHERE id = ?", PD_SQL_ARGS(PD_SQL_S(name)), key_row,
                        out);
    if (r != 0)
        return r;
    return out->num == 0 ? PD_ERR_NOTFOUND : 0;
}

int
pd_kms_get_num(pd_vault_state_t *v, uint32_t num, pd_kms_key_t *out)
{
    memset(out, 0, sizeof(*out));
    int r = pd_db_query(v->db, "SELECT " KEY_COLS " FROM kms_keys WHERE num = ?", PD_SQL_ARGS(PD_SQL_I(num)), key_row,
                        out);
    if (r != 0)
        return r;
    return out->num == 0 ? PD_ERR_NOTFOUND : 0;
}

int
pd_kms_check(const pd_kms_key_t *k, pd_kms_op_t op, unsigned principal)
{
    if (strcmp(k->state, "Enabled") != 0)
        return PD_ERR_KEY_DISABLED;
    if ((k->policy[op] & principal) == 0)
        return PD_ERR_PERM;
    return 0;
}

static const uint8_t *
material_held(const pd_vault_state_t *v, uint32_t num, uint32_t version)
{
    for (size_t i = 0; i < v->sec->nkek; i++)
        if (v->sec->kek[i].num == num && v->sec->kek[i].version == version)
            return v->sec->kek[i].material;
    return NULL;
}

typedef struct {
    pd_vault_state_t *v;
    bool strict;
    size_t added;
    int rc;
} load_t;

/* one kms_versions row (key_num, version, material) into memory, unless held already */
static int
kek_row(const pd_row_t *r, void *arg)
{
    load_t *l = arg;
    pd_vault_state_t *v = l->v;
    uint32_t num = (uint32_t)pd_row_int(r, 0), version = (uint32_t)pd_row_int(r, 1);
    pd_view_t sealed = pd_row_text(r, 2);
    char aad[48];
    if (pd_row_is_null(r, 2) || material_held(v, num, version) != NULL)
        return 0; /* destroyed by a completed deletion, or known */
    if (v->sec->nkek == PD_VAULT_MAX_KEK) {
        l->rc = PD_ERR_TOOBIG;
        return 1;
    }
    int n = snprintf(aad, sizeof(aad), "kek:%u:%u", num, version);
    pd_kek_t *k = &v->sec->kek[v->sec->nkek];
    if (sealed.len != PD_GCM_NONCE + PD_KEY_LEN + PD_GCM_TAG ||
        pd_aead_open(v->sec->root, (const uint8_t *)aad, (size_t)n, sealed.p, sealed.len, k->material) != 0) {
        OPENSSL_cleanse(k->material, PD_KEY_LEN);
        pd_log_error("vault: a key version does not open under the root key", PD_LI("key", num),
                     PD_LI("version", version));
        if (!l->strict)
            return 0;
        l->rc = PD_ERR_AUTH;
        return 1;
    }
    k->num = num;
    k->version = version;
    v->sec->nkek++;
    l->added++;
    return 0;
}

int
pd_kms_load(pd_vault_state_t *v, bool strict, size_t *added)
{
    load_t l = {v, strict, 0, 0};
    int r = pd_db_query(v->db, "SELECT key_num, version, material FROM kms_versions ORDER BY key_num, version", NULL,
                        0, kek_row, &l);
    if (r == 0)
        r = l.rc;
    if (added != NULL)
        *added = l.added;
    return r;
}

const uint8_t *
pd_kms_material(pd_vault_state_t *v, uint32_t num, uint32_t version)
{
    const uint8_t *m = material_held(v, num, version);
    if (m != NULL || !v->shared)
        return m;
    /* a version another instance made since this one loaded its keys */
    load_t l = {v, false, 0, 0};
    if (pd_db_query(v->db, "SELECT key_num, version, material FROM kms_versions WHERE key_num = ? AND version = ?",
                    PD_SQL_ARGS(PD_SQL_I(num), PD_SQL_I(version)), kek_row, &l) != 0 ||
        l.rc != 0)
        return NULL;
    return material_held(v, num, version);
}

typedef struct {
    pd_vault_state_t *v;
    size_t wiped;
} destroyed_t;

static int
destroyed_row(const pd_row_t *r, void *arg)
{
    destroyed_t *d = arg;
    uint32_t num = (uint32_t)pd_row_int(r, 0), version = (uint32_t)pd_row_int(r, 1);
    for (size_t i = 0; i < d->v->sec->nkek; i++) {
        pd_kek_t *k = &d->v->sec->kek[i];
        if (k->num == num && k->version == version) {
            OPENSSL_cleanse(k->material, PD_KEY_LEN);
            k->num = 0;
            d->wiped++;
        }
    }
    return 0;
}

void
pd_kms_refresh(pd_vault_state_t *v)
{
    int64_t now = (int64_t)pd_mono_ms();
    if (now - v->refreshed_ms < PD_VAULT_REFRESH_MS)
        return;
    v->refreshed_ms = now;
    size_t added = 0;
    destroyed_t d = {v, 0};
    if (pd_kms_load(v, false, &added) != 0 ||
        pd_db_query(v->db, "SELECT key_num, version FROM kms_versions WHERE material IS NULL", NULL, 0, destroyed_row,
                    &d) != 0) {
        pd_log_warn("vault: cannot reload key versions from the shared database; retrying in 5 s");
        return;
    }
    /* key rows are read on every use; what is cached from them goes: the fingerprint
     * key's row, the card data keys when alias/cards moved on */
    v->kms_gen++;
    pd_kms_key_t k;
    if (pd_kms_get(v, "alias/cards", &k) == 0) {
        bool moved = strcmp(k.state, "Enabled") != 0 || k.min_decrypt_version != v->cards_min ||
                     (v->sec->dk.id != 0 && v->sec->dk.key_version != k.current_version);
        if (moved) {
            /* new cards get a data key under the current version; cached data keys are
             * unwrapped again (a raised minimum version then refuses the old ones) */
            OPENSSL_cleanse(&v->sec->dk, sizeof(v->sec->dk));
            OPENSSL_cleanse(v->sec->dk_read, sizeof(v->sec->dk_read));
        }
        v->cards_min = k.min_decrypt_version;
    }
    if (added > 0 || d.wiped > 0)
        pd_log_info("vault: key versions reloaded from the shared database", PD_LI("added", (int64_t)added),
                    PD_LI("destroyed", (int64_t)d.wiped));
}

/* a new random version of key num: sealed into the database, loaded into memory */
static int
add_version(pd_vault_state_t *v, uint32_t num, uint32_t version)
{
    char aad[48];
    uint8_t sealed[PD_GCM_NONCE + PD_KEY_LEN + PD_GCM_TAG];
    if (v->sec->nkek == PD_VAULT_MAX_KEK)
        return PD_ERR_TOOBIG;
    pd_kek_t *k = &v->sec->kek[v->sec->nkek];
    if (RAND_priv_bytes(k->material, PD_KEY_LEN) != 1)
        return PD_ERR_CRYPTO;
    int n = snprintf(aad, sizeof(aad), "kek:%u:%u", num, version);
    int r = pd_aead_seal(v->sec->root, (const uint8_t *)aad, (size_t)n, k->material, PD_KEY_LEN, sealed);
    if (r == 0)
        r = pd_db_exec(v->db, "INSERT INTO kms_versions (key_num, version, material, created) VALUES (?, ?, ?, ?)",
                       PD_SQL_ARGS(PD_SQL_I(num), PD_SQL_I(version), PD_SQL_B(sealed, sizeof(sealed)),
                                   PD_SQL_I(v->now())),
                       NULL);
    if (r != 0) {
        OPENSSL_cleanse(k->material, PD_KEY_LEN);
        return r;
    }
    k->num = num;
    k->version = version;
    v->sec->nkek++;
    return 0;
}

int
pd_kms_create(pd_vault_state_t *v, const char *alias, int64_t rotation_days, const unsigned policy[PD_KMS_OP_COUNT],
              pd_kms_key_t *out)
{
    char pol[512];
    int64_t num = 0;
    int r;

    if (pd_kms_get(v, alias, out) == 0)
        return PD_ERR_EXISTS;
    if ((r = pd_db_query_int(v->db, "SELECT COALESCE(MAX(num), 0) + 1 FROM kms_keys", NULL, 0, &num)) != 0)
        return r;
    memset(out, 0, sizeof(*out));
    out->num = (uint32_t)num;
    if ((r = pd_id_new("key", out->id, sizeof(out->id))) != 0)
        return r;
    snprintf(out->alias, sizeof(out->alias), "%s", strncmp(alias, "alias/", 6) == 0 ? alias + 6 : alias);
    policy_format(policy, pol, sizeof(pol));
    int64_t now = v->now();
    r = pd_db_exec(v->db,
                   "INSERT INTO kms_keys (num, id, alias, state, current_version, min_decrypt_version, rotation_days, "
                   "next_rotation, created, policy) VALUES (?, ?, ?, 'Enabled', 1, 1, ?, ?, ?, ?)",
                   PD_SQL_ARGS(PD_SQL_I(num), PD_SQL_S(out->id), PD_SQL_S(out->alias), PD_SQL_I(rotation_days),
                               PD_SQL_I(rotation_days > 0 ? now + rotation_days * 86400 : 0), PD_SQL_I(now),
                               PD_SQL_S(pol)),
                   NULL);
    if (r != 0 || (r = add_version(v, out->num, 1)) != 0)
        return r;
    return pd_kms_get_num(v, out->num, out);
}

int
pd_kms_encrypt(pd_vault_state_t *v, const pd_kms_key_t *k, pd_view_t ctx, pd_view_t pt, pd_buf_t *env)
{
    const uint8_t *m = pd_kms_material(v, k->num, k->current_version);
    if (m == NULL)
        return PD_ERR_KEY_VERSION;
    return pd_env_seal(env, k->num, k->current_version, m, ctx, pt);
}

int
pd_kms_decrypt(pd_vault_state_t *v, pd_view_t ctx, pd_view_t env, pd_buf_t *pt, pd_kms_key_t *k)
{
    pd_env_header_t h;
    int r;
    if ((r = pd_env_parse(env, &h)) != 0)
        return r;
    if ((r = pd_kms_get_num(v, h.key_num, k)) != 0)
        return r == PD_ERR_NOTFOUND ? PD_ERR_KEY_VERSION : r;
    if (strcmp(k->state, "Enabled") != 0)
        return PD_ERR_KEY_DISABLED;
    if (h.key_version < k->min_decrypt_version || h.key_version > k->current_version)
        return PD_ERR_KEY_VERSION;
    const uint8_t *m = pd_kms_material(v, h.key_num, h.key_version);
    if (m == NULL)
        return PD_ERR_KEY_VERSION;
    return pd_env_open(pt, m, ctx, env);
}

int
pd_kms_rotate(pd_vault_state_t *v, pd_kms_key_t *k)
{
    v->kms_gen++;
    if (strcmp(k->state, "Enabled") != 0)
        return PD_ERR_KEY_DISABLED;
    uint32_t next = k->current_version + 1;
    int64_t now = v->now();
    int64_t changed = 0;
    /* (key_num, version) is the primary key, and the update moves the version only
     * from the one this rotation read: two rotations that read the same version (two
     * instances) never make two versions with one number; the second fails here */
    int r = add_version(v, k->num, next);
    if (r == 0)
        r = pd_db_exec(v->db,
                       "UPDATE kms_keys SET current_version = ?, next_rotation = ? WHERE num = ? AND current_version = ?",
                       PD_SQL_ARGS(PD_SQL_I(next), PD_SQL_I(k->rotation_days > 0 ? now + k->rotation_days * 86400 : 0),
                                   PD_SQL_I(k->num), PD_SQL_I(k->current_version)),
                       &changed);
    if (r == 0 && changed != 1)
        r = PD_ERR_CONFLICT;
    if (r == 0 && strcmp(k->alias, "cards") == 0)
        v->sec->dk.id = 0; /* new card data keys come under the new version */
    return r != 0 ? r : pd_kms_get_num(v, k->num, k);
}

int
pd_kms_set_rotation(pd_vault_state_t *v, pd_kms_key_t *k, int64_t days)
{
    v->kms_gen++;
    /* AWS KMS allows a rotation period of 90 to 2560 days; 0 turns it off */
    if (days != 0 && (days < 90 || days > 2560))
        return PD_ERR_RANGE;
    int r = pd_db_exec(v->db, "UPDATE kms_keys SET rotation_days = ?, next_rotation = ? WHERE num = ?",
                       PD_SQL_ARGS(PD_SQL_I(days), PD_SQL_I(days > 0 ? v->now() + days * 86400 : 0), PD_SQL_I(k->num)),
                       NULL);
    return r != 0 ? r : pd_kms_get_num(v, k->num, k);
}

int
pd_kms_set_min_decrypt(pd_vault_state_t *v, pd_kms_key_t *k, uint32_t version)
{
    v->kms_gen++;
    if (version < 1 || version > k->current_version)
        return PD_ERR_RANGE;
    int r = pd_db_exec(v->db, "UPDATE kms_keys SET min_decrypt_version = ? WHERE num = ?",
                       PD_SQL_ARGS(PD_SQL_I(version), PD_SQL_I(k->num)), NULL);
    return r != 0 ? r : pd_kms_get_num(v, k->num, k);
}

int
pd_kms_schedule_deletion(pd_vault_state_t *v, pd_kms_key_t *k, int64_t days)
{
    v->kms_gen++;
    if (days < 7 || days > 30)
        return PD_ERR_RANGE;
    if (strcmp(k->state, "Enabled") != 0)
        return PD_ERR_STATE;
    int r = pd_db_exec(v->db, "UPDATE kms_keys SET state = 'PendingDeletion', deletion_at = ? WHERE num = ?",
                       PD_SQL_ARGS(PD_SQL_I(v->now() + days * 86400), PD_SQL_I(k->num)), NULL);
    return r != 0 ? r : pd_kms_get_num(v, k->num, k);
}

int
pd_kms_cancel_deletion(pd_vault_state_t *v, pd_kms_key_t *k)
{
    v->kms_gen++;
    if (strcmp(k->state, "PendingDeletion") != 0)
        return PD_ERR_STATE;
    int r = pd_db_exec(v->db, "UPDATE kms_keys SET state = 'Enabled', deletion_at = 0 WHERE num = ?",
                       PD_SQL_ARGS(PD_SQL_I(k->num)), NULL);
    return r != 0 ? r : pd_kms_get_num(v, k->num, k);
}

void
pd_kms_describe(const pd_kms_key_t *k, pd_jw_t *w)
{
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "key_id", k->id);
    char alias[80];
    snprintf(alias, sizeof(alias), "alias/%s", k->alias);
    pd_jw_kstr(w, "alias", alias);
    pd_jw_kstr(w, "state", k->state);
    pd_jw_kint(w, "current_version", k->current_version);
    pd_jw_kint(w, "min_decrypt_version", k->min_decrypt_version);
    pd_jw_kint(w, "rotation_period_days", k->rotation_days);
    pd_jw_kint(w, "next_rotation", k->next_rotation);
    if (k->deletion_at > 0)
        pd_jw_kint(w, "deletion_date", k->deletion_at);
    pd_jw_kint(w, "created", k->created);
    pd_jw_key(w, "policy");
    pd_jw_obj_begin(w);
    for (int op = 0; op < PD_KMS_OP_COUNT; op++) {
        pd_jw_key(w, op_names[op]);
        pd_jw_arr_begin(w);
        for (unsigned p = 1; p <= PD_PRINCIPAL_ROTATION; p <<= 1)
            if (k->policy[op] & p)
                pd_jw_str(w, pd_principal_name(p));
        pd_jw_arr_end(w);
    }
    pd_jw_obj_end(w);
    pd_jw_obj_end(w);
}

static int
list_row(const pd_row_t *r, void *arg)
{
    pd_kms_key_t k;
    memset(&k, 0, sizeof(k));
    int rc = key_row(r, &k);
    if (rc < 0)
        return rc;
    pd_kms_describe(&k, arg);
    return 0;
}

int
pd_kms_list(pd_vault_state_t *v, pd_jw_t *w)
{
    pd_jw_arr_begin(w);
    int r = pd_db_query(v->db, "SELECT " KEY_COLS " FROM kms_keys ORDER BY num", NULL, 0, list_row, w);
    pd_jw_arr_end(w);
    return r;
}

/* --- rewrap: data keys (alias/cards) and secret values (alias/secrets) live in the vault --- */

typedef struct {
    int64_t id;
    char name[128], version_id[PD_ID_MAX];
    pd_buf_t blob;
} old_t;

typedef struct {
    old_t *rows;
    size_t n, cap;
} olds_t;

static int
old_row(const pd_row_t *r, void *arg)
{
    olds_t *o = arg;
    if (o->n == o->cap)
        return 1;
    old_t *x = &o->rows[o->n];
    x->id = pd_row_int(r, 0);
    if (pd_row_copy(r, 1, x->name, sizeof(x->name)) != 0 || pd_row_copy(r, 2, x->version_id, sizeof(x->version_id)) != 0)
        return PD_ERR_INVALID;
    pd_buf_init(&x->blob, 1 << 16);
    pd_view_t b = pd_row_text(r, 3);
    if (pd_buf_put(&x->blob, b.p, b.len) != 0)
        return PD_ERR_NOMEM;
    o->n++;
    return 0;
}

int
pd_kms_rewrap(pd_vault_state_t *v, const pd_kms_key_t *k, int64_t batch, int64_t *moved, int64_t *remaining)
{
    olds_t o = {calloc((size_t)batch, sizeof(old_t)), 0, (size_t)batch};
    pd_buf_t pt, env;
    int r = 0;
    bool cards = strcmp(k->alias, "cards") == 0, secrets = strcmp(k->alias, "secrets") == 0;

    *moved = 0;
    *remaining = 0;
    if (o.rows == NULL)
        return PD_ERR_NOMEM;
    pd_buf_init(&pt, 1 << 16);
    pd_buf_init(&env, 1 << 16);
    if (cards)
        r = pd_db_query(v->db,
                        "SELECT id, '', '', wrapped FROM data_keys WHERE key_num = ? AND kek_version < ? LIMIT ?",
                        PD_SQL_ARGS(PD_SQL_I(k->num), PD_SQL_I(k->current_version), PD_SQL_I(batch)), old_row, &o);
    else if (secrets)
        r = pd_db_query(v->db,
                        "SELECT 0, name, version_id, value FROM secret_versions WHERE kek_version < ? LIMIT ?",
                        PD_SQL_ARGS(PD_SQL_I(k->current_version), PD_SQL_I(batch)), old_row, &o);
    for (size_t i = 0; r == 0 && i < o.n; i++) {
        char ctx[256];
        pd_kms_key_t used;
        if (cards)
            snprintf(ctx, sizeof(ctx), "purpose=datakey;id=%" PRId64, o.rows[i].id);
        else
            snprintf(ctx, sizeof(ctx), "purpose=secret;name=%s;version=%s", o.rows[i].name, o.rows[i].version_id);
        pd_buf_reset(&pt);
        pd_buf_reset(&env);
        /* the plaintext never leaves this function and is wiped below */
        if ((r = pd_kms_decrypt(v, pd_view_cstr(ctx), pd_buf_view(&o.rows[i].blob), &pt, &used)) != 0 ||
            (r = pd_kms_encrypt(v, k, pd_view_cstr(ctx), pd_buf_view(&pt), &env)) != 0)
            break;
        if (cards)
            r = pd_db_exec(v->db, "UPDATE data_keys SET wrapped = ?, kek_version = ? WHERE id = ?",
                           PD_SQL_ARGS(PD_SQL_B(env.p, env.len), PD_SQL_I(k->current_version), PD_SQL_I(o.rows[i].id)),
                           NULL);
        else
            r = pd_db_exec(v->db, "UPDATE secret_versions SET value = ?, kek_version = ? WHERE name = ? AND version_id = ?",
                           PD_SQL_ARGS(PD_SQL_B(env.p, env.len), PD_SQL_I(k->current_version),
                                       PD_SQL_S(o.rows[i].name), PD_SQL_S(o.rows[i].version_id)),
                           NULL);
        if (r == 0)
            (*moved)++;
    }
    if (r == 0 && cards)
        r = pd_db_query_int(v->db, "SELECT COUNT(*) FROM data_keys WHERE key_num = ? AND kek_version < ?",
                            PD_SQL_ARGS(PD_SQL_I(k->num), PD_SQL_I(k->current_version)), remaining);
    else if (r == 0 && secrets)
        r = pd_db_query_int(v->db, "SELECT COUNT(*) FROM secret_versions WHERE kek_version < ?",
                            PD_SQL_ARGS(PD_SQL_I(k->current_version)), remaining);
    for (size_t i = 0; i < o.n; i++)
        pd_buf_free_secure(&o.rows[i].blob);
    free(o.rows);
    pd_buf_free_secure(&pt);
    pd_buf_free(&env);
    return r;
}

/* automatic rotation and completion of scheduled deletions */
typedef struct {
    uint32_t nums[64];
    size_t n;
} due_t;

static int
due_row(const pd_row_t *r, void *arg)
{
    due_t *d = arg;
    if (d->n < 64)
        d->nums[d->n++] = (uint32_t)pd_row_int(r, 0);
    return 0;
}

/* one scheduled change in a savepoint, with its record: a change whose record cannot
 * be written is undone; a failed change is undone and its failure recorded. Returns
 * nonzero when nothing more of the tick may stay (the caller rolls it all back). */
typedef int (*tick_fn)(pd_vault_state_t *v, uint32_t num, char *resource, size_t cap);
/* what a tick_fn returns when the key, read again in the transaction, is no longer due */
#define TICK_NOT_DUE 1

static int
tick_one(pd_vault_state_t *v, const char *action, uint32_t num, tick_fn fn, bool *done)
{
    char resource[PD_ID_MAX + 16];
    pd_vault_mark_t mark = pd_vault_mark(v);
    int r = pd_db_savepoint(v->db);
    *done = false;
    snprintf(resource, sizeof(resource), "key#%u", num);
    if (r != 0)
        return r;
    int rr = fn(v, num, resource, sizeof(resource));
    if (rr == TICK_NOT_DUE)
        return pd_db_release(v->db); /* another instance did it meanwhile: nothing to record */
    int ar = rr == 0 ? pd_vault_audit(v, "rotation", action, resource, 0, "scheduler") : 0;
    if (rr == 0 && ar == 0) {
        *done = true;
        return pd_db_release(v->db);
    }
    if ((r = pd_db_rollback_to(v->db)) != 0)
        return r;
    pd_vault_undo(v, &mark);
    if (ar != 0)
        return ar;
    return pd_vault_audit(v, "rotation", action, resource, rr, "scheduler");
}

static int
tick_rotate(pd_vault_state_t *v, uint32_t num, char *resource, size_t cap)
{
    pd_kms_key_t k;
    int r = pd_kms_get_num(v, num, &k);
    if (r == 0) {
        snprintf(resource, cap, "%s", k.id);
        /* read outside the transaction: due then, maybe rotated by now */
        if (strcmp(k.state, "Enabled") != 0 || k.rotation_days <= 0 || k.next_rotation > v->now())
            return TICK_NOT_DUE;
        r = pd_kms_rotate(v, &k);
    }
    return r;
}

/* the material is destroyed: everything it encrypted is unrecoverable, by design */
static int
tick_destroy(pd_vault_state_t *v, uint32_t num, char *resource, size_t cap)
{
    (void)resource;
    (void)cap;
    int64_t changed = 0;
    int r = pd_db_exec(v->db, "UPDATE kms_keys SET state = 'Deleted' WHERE num = ? AND state = 'PendingDeletion' "
                              "AND deletion_at <= ?",
                       PD_SQL_ARGS(PD_SQL_I(num), PD_SQL_I(v->now())), &changed);
    if (r == 0 && changed == 0)
        return TICK_NOT_DUE; /* canceled or done meanwhile */
    if (r == 0)
        r = pd_db_exec(v->db, "UPDATE kms_versions SET material = NULL WHERE key_num = ?", PD_SQL_ARGS(PD_SQL_I(num)),
                       NULL);
    return r;
}

void
pd_kms_tick(pd_vault_state_t *v)
{
    due_t rot = {{0}, 0}, del = {{0}, 0};
    uint32_t destroyed[64];
    size_t ndestroyed = 0;
    int64_t now = v->now();
    if (pd_db_query(v->db,
                    "SELECT num FROM kms_keys WHERE state = 'Enabled' AND rotation_days > 0 AND next_rotation <= ?",
                    PD_SQL_ARGS(PD_SQL_I(now)), due_row, &rot) != 0 ||
        pd_db_query(v->db, "SELECT num FROM kms_keys WHERE state = 'PendingDeletion' AND deletion_at <= ?",
                    PD_SQL_ARGS(PD_SQL_I(now)), due_row, &del) != 0)
        return;
    if (rot.n == 0 && del.n == 0)
        return;
    v->kms_gen++;
    pd_vault_mark_t tick = pd_vault_mark(v);
    int r = pd_db_begin(v->db);
    bool done;
    for (size_t i = 0; r == 0 && i < rot.n; i++)
        r = tick_one(v, "kms.rotate.automatic", rot.nums[i], tick_rotate, &done);
    for (size_t i = 0; r == 0 && i < del.n; i++)
        if ((r = tick_one(v, "kms.delete.complete", del.nums[i], tick_destroy, &done)) == 0 && done)
            destroyed[ndestroyed++] = del.nums[i];
    if (r == 0)
        r = pd_db_commit(v->db);
    if (r != 0) {
        /* nothing of this tick stays, in the database or in memory; the next tick tries again */
        (void)pd_db_rollback(v->db);
        pd_vault_undo(v, &tick);
        pd_vault_audit_resync(v);
        pd_log_error("vault: scheduled key rotations and deletions undone", PD_LERR(r));
        return;
    }
    /* a destroyed key's material leaves memory once its destruction is durable */
    for (size_t i = 0; i < ndestroyed; i++) {
        for (size_t j = 0; j < v->sec->nkek; j++) {
            if (v->sec->kek[j].num == destroyed[i]) {
                OPENSSL_cleanse(v->sec->kek[j].material, PD_KEY_LEN);
                v->sec->kek[j].num = 0;
            }
        }
    }
}
