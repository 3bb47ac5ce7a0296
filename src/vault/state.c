/* The vault's database, key material in locked memory, and periodic work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "payd/log.h"
#include "payd/time.h"
#include "vault/internal.h"

static int64_t
real_now(void)
{
    return pd_unix_now();
}

static int
root_check(const uint8_t root[PD_KEY_LEN], char out[65])
{
    uint8_t mac[32];
    static const char label[] = "payd-vault-root-check";
    int r = pd_hmac_sha256(root, PD_KEY_LEN, (const uint8_t *)label, sizeof(label) - 1, mac);
    if (r == 0)
        pd_hex(mac, 32, out);
    return r;
}

typedef struct {
    char value[128];
    bool found;
} meta_t;

static int
meta_row(const pd_row_t *r, void *arg)
{
    meta_t *m = arg;
    m->found = pd_row_copy(r, 0, m->value, sizeof(m->value)) == 0;
    return 1;
}

/* the standard keys every vault has (ARCHITECTURE.md §6) */
/* the standard keys; `missing_only` (an existing vault) creates those it lacks, which
 * an older version did not make, and not the pepper */
static int
create_standard_keys(pd_vault_state_t *v, bool missing_only)
{
    static const struct {
        const char *alias;
        int64_t rotation_days;
        unsigned enc, dec, gen;
    } keys[] = {
        {"cards", 365, 0, 0, 0},
        {"fingerprint", 0, 0, 0, 0}, /* fingerprints must stay stable: never rotated */
        {"secrets", 365, 0, 0, 0},
        {"webhooks", 365, PD_PRINCIPAL_API, PD_PRINCIPAL_API, 0},
        {"events", 365, PD_PRINCIPAL_API, PD_PRINCIPAL_API, PD_PRINCIPAL_API},
        {"files", 365, PD_PRINCIPAL_API | PD_PRINCIPAL_ADMIN, PD_PRINCIPAL_API | PD_PRINCIPAL_ADMIN,
         PD_PRINCIPAL_API | PD_PRINCIPAL_ADMIN},
        {"cache", 365, PD_PRINCIPAL_API, PD_PRINCIPAL_API, PD_PRINCIPAL_API},
        /* personal data payd stores outside the card vault (the cardholder name) */
        {"pii", 365, PD_PRINCIPAL_API, PD_PRINCIPAL_API, 0},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        unsigned policy[PD_KMS_OP_COUNT] = {
            [PD_KMS_ENCRYPT] = keys[i].enc,
            [PD_KMS_DECRYPT] = keys[i].dec,
            [PD_KMS_GENERATE_DATA_KEY] = keys[i].gen,
            [PD_KMS_REENCRYPT] = keys[i].enc | PD_PRINCIPAL_ADMIN | PD_PRINCIPAL_ROTATION,
            [PD_KMS_MANAGE] = PD_PRINCIPAL_ADMIN,
        };
        pd_kms_key_t k;
        char alias[32];
        snprintf(alias, sizeof(alias), "alias/%s", keys[i].alias);
        if (missing_only && pd_kms_get(v, alias, &k) == 0)
            continue;
        int r = pd_kms_create(v, keys[i].alias, keys[i].rotation_days, policy, &k);
        if (r == 0 && missing_only) {
            r = pd_vault_audit(v, "admin", "kms.create", alias, 0, "local");
            if (r == 0)
                pd_log_info("vault: standard key created", PD_LS("key", alias));
        }
        if (r != 0)
            return r;
    }
    if (missing_only)
        return 0;
    /* the pepper payd hashes API keys with; rotated only on demand (rotating it
     * invalidates every API key) */
    return pd_secrets_create(v, "payd/api-key-pepper", 0, 64, "");
}

int
pd_vault_state_open(pd_vault_state_t **out, const char *db_path, const uint8_t root[PD_KEY_LEN])
{
    pd_vault_store_t st = {.sqlite_path = db_path};
    return pd_vault_state_open_store(out, &st, root);
}

int
pd_vault_state_open_store(pd_vault_state_t **out, const pd_vault_store_t *st, const uint8_t root[PD_KEY_LEN])
{
    pd_vault_state_t *v = calloc(1, sizeof(*v));
    char check[65];
    meta_t m = {"", false};
    int r;

    if (v == NULL)
        return PD_ERR_NOMEM;
    v->now = real_now;
    v->dk_max_messages = 1000000; /* far below the 2^32 random-nonce bound of AES-GCM */
    v->dk_max_age_s = 3600;
    if ((v->sec = pd_secmem_region(sizeof(*v->sec), &v->locked)) == NULL) {
        free(v);
        return PD_ERR_NOMEM;
    }
    memcpy(v->sec->root, root, PD_KEY_LEN);
    if (st->pg_url == NULL && st->sqlite_path != NULL)
        snprintf(v->db_path, sizeof(v->db_path), "%s", st->sqlite_path);
    if ((r = pd_vault_db_open(v, st)) != 0)
        goto fail;
    if ((r = root_check(root, check)) != 0)
        goto fail;
    if ((r = pd_audit_load(v->db, &v->audit)) != 0)
        goto fail;
    /* in a transaction (on a shared database: under the write lock), so that of two
     * instances starting on a new database one creates the vault and the other finds it */
    if ((r = pd_db_begin(v->db)) != 0)
        goto fail;
    if ((r = pd_db_query(v->db, "SELECT value FROM meta WHERE name = 'root_check'", NULL, 0, meta_row, &m)) != 0)
        goto rollback;
    if (m.found) {
        if (CRYPTO_memcmp(m.value, check, 64) != 0) {
            pd_log_error("vault: the root key does not belong to this vault (wrong passphrase or shares?)");
            r = PD_ERR_AUTH;
            goto rollback;
        }
        if ((r = pd_kms_load(v, true, NULL)) != 0)
            goto rollback;
        /* a vault made by an older version gets the standard keys added since (alias/pii) */
        if ((r = create_standard_keys(v, true)) != 0 || (r = pd_db_commit(v->db)) != 0)
            goto rollback;
    } else {
        /* a new vault: root check, standard keys and secrets in one transaction */
        if ((r = pd_db_exec(v->db, "INSERT INTO meta (name, value) VALUES ('root_check', ?)",
                            PD_SQL_ARGS(PD_SQL_S(check)), NULL)) != 0 ||
            (r = create_standard_keys(v, false)) != 0)
            goto rollback;
        if ((r = pd_vault_audit(v, "admin", "vault.init", "vault", 0, "local")) != 0)
            goto rollback;
        if ((r = pd_db_commit(v->db)) != 0)
            goto fail;
        pd_log_info("vault initialized with standard keys",
                    PD_LS("keys", "alias/cards,alias/fingerprint,alias/secrets,alias/webhooks,alias/events,alias/files,alias/cache,"
                                    "alias/pii"));
    }
    *out = v;
    return 0;
rollback:
    (void)pd_db_rollback(v->db);
fail:
    pd_vault_state_close(v);
    return r;
}

void
pd_vault_state_close(pd_vault_state_t *v)
{
    if (v == NULL)
        return;
    pd_db_close(v->db);
    pd_secmem_release(v->sec, sizeof(*v->sec));
    free(v);
}

int
pd_vault_audit(pd_vault_state_t *v, const char *principal, const char *action, const char *resource, int rc,
               const char *origin)
{
    char outcome[96];
    if (rc == 0)
        snprintf(outcome, sizeof(outcome), "success");
    else
        snprintf(outcome, sizeof(outcome), "failure: %s", pd_strerror(rc));
    pd_audit_rec_t rec = {principal, action, resource, outcome, origin, ""};
    int r = pd_audit_append(v->db, &v->audit, v->now(), &rec);
    if (r != 0) {
        pd_log_error("vault: cannot append to the audit log; the operation fails", PD_LS("action", action),
                     PD_LS("principal", principal), PD_LERR(r));
        /* another writer may have moved the chain: the next record follows the database's head */
        pd_vault_audit_resync(v);
    }
    return r;
}

pd_vault_mark_t
pd_vault_mark(const pd_vault_state_t *v)
{
    return (pd_vault_mark_t){v->sec->nkek, v->sec->dk.id, v->ncvc_journal};
}

void
pd_vault_undo(pd_vault_state_t *v, const pd_vault_mark_t *m)
{
    pd_vault_secrets_t *sec = v->sec;
    if (sec->nkek > m->nkek) {
        OPENSSL_cleanse(&sec->kek[m->nkek], (sec->nkek - m->nkek) * sizeof(sec->kek[0]));
        sec->nkek = m->nkek;
    }
    if (sec->dk.id != m->dk_id) {
        /* the data key made meanwhile is gone from the database; an id it had would be reused */
        OPENSSL_cleanse(&sec->dk, sizeof(sec->dk));
    }
    OPENSSL_cleanse(sec->dk_read, sizeof(sec->dk_read));
    for (size_t i = m->ncvc; i < v->ncvc_journal; i++)
        OPENSSL_cleanse(&sec->cvc[v->cvc_journal[i]], sizeof(sec->cvc[0]));
    if (v->ncvc_journal > m->ncvc)
        v->ncvc_journal = m->ncvc;
    v->kms_gen++;
}

void
pd_vault_settle(pd_vault_state_t *v)
{
    v->ncvc_journal = 0;
}

void
pd_vault_audit_resync(pd_vault_state_t *v)
{
    if (pd_audit_load(v->db, &v->audit) != 0)
        pd_log_error("vault: cannot reload the audit chain head");
}

void
pd_vault_tick(pd_vault_state_t *v)
{
    if (v->shared)
        pd_kms_refresh(v);
    /* scheduled key work runs on one instance; each instance expires its own CVCs */
    if (pd_vault_leader(v))
        pd_kms_tick(v);
    pd_cards_tick(v);
}
