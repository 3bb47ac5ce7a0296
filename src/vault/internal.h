/*
 * payd-vault internals: the state of one vault (its database, key material in
 * locked memory, caches) and the operations the dispatcher calls. Single-threaded:
 * only the vault's event loop touches a pd_vault_state_t.
 */
#ifndef PAYD_VAULT_INTERNAL_H
#define PAYD_VAULT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "payd/audit.h"
#include "payd/db.h"
#include "payd/json.h"
#include "payd/vault.h"
#include "payd/vault_crypto.h"

#define PD_VAULT_MAX_KEK 1024       /* key versions held in memory */
#define PD_VAULT_CVC_SLOTS 65536
#define PD_VAULT_CVC_TTL_S 600
#define PD_VAULT_CVC_JOURNAL 4096   /* CVCs held by one transaction (a batch has at most 4096 requests) */

void *pd_secmem_region(size_t len, bool *locked);
void pd_secmem_release(void *p, size_t len);

typedef struct {
    uint32_t num, version;
    uint8_t material[PD_KEY_LEN];
} pd_kek_t;

typedef struct {
    char token[PD_ID_MAX];
    char cvc[8];
    int64_t expires;
} pd_cvc_slot_t;

/* the secret part of the state, in one locked region */
typedef struct {
    uint8_t root[PD_KEY_LEN];
    pd_kek_t kek[PD_VAULT_MAX_KEK];
    size_t nkek;
    struct {
        int64_t id;        /* data_keys.id, 0: none */
        uint32_t key_num;  /* the KEK that wraps it */
        uint32_t key_version;
        uint8_t key[PD_KEY_LEN];
        int64_t messages;
        int64_t created;
    } dk;                  /* current card data key */
    struct {
        int64_t id;
        uint8_t key[PD_KEY_LEN];
    } dk_read[64];          /* recently used data keys for decryption */
    size_t dk_read_next;
    pd_cvc_slot_t cvc[PD_VAULT_CVC_SLOTS];
} pd_vault_secrets_t;

/* kms.c: keys are named by "alias/<name>" or their id "key_..." */
typedef struct {
    uint32_t num;
    char id[PD_ID_MAX];
    char alias[64];
    char state[24];          /* Enabled | PendingDeletion | Deleted */
    uint32_t current_version;
    uint32_t min_decrypt_version;
    int64_t rotation_days;   /* 0: no automatic rotation */
    int64_t next_rotation;
    int64_t deletion_at;
    int64_t created;
    unsigned policy[PD_KMS_OP_COUNT]; /* principals allowed per operation */
} pd_kms_key_t;

typedef struct pd_vault_state {
    pd_db_t *db;
    pd_vault_secrets_t *sec;
    bool locked;
    pd_audit_chain_t audit;
    int64_t dk_max_messages;
    int64_t dk_max_age_s;
    int64_t (*now)(void); /* unix seconds; replaceable in tests */
    uint64_t kms_gen;     /* bumped by every change to a key (invalidates kms_cache) */
    struct {
        uint64_t gen;     /* 0: empty */
        pd_kms_key_t key;
    } fp_cache;           /* alias/fingerprint, read on every tokenization */
    /* CVC slots filled since the last pd_vault_settle: a rolled-back tokenization's CVC is wiped */
    uint32_t cvc_journal[PD_VAULT_CVC_JOURNAL];
    size_t ncvc_journal;
    bool shared;          /* the tables are on PostgreSQL, maybe shared with other instances */
    bool leader;          /* shared: this instance holds the scheduler lease */
    int64_t refreshed_ms; /* shared: when key material and key state were last reloaded */
    uint32_t cards_min;   /* shared: alias/cards's minimum decryption version at that reload */
    char db_path[4096];   /* the SQLite file of the tables ("" when they are on PostgreSQL) */
} pd_vault_state_t;

/* How long (at most) an instance on a shared database keeps using what it cached of a
 * change another instance made: key versions added (a rotation), destroyed, and the
 * card data key under a rotated alias/cards. Key rows (state, current and minimum
 * version, policy) are read from the database on every operation; a version unknown
 * in memory is loaded from the database when first asked for. */
#define PD_VAULT_REFRESH_MS 5000

/* What a transaction (or a savepoint) may leave in memory that its rollback does not
 * take back: key versions appended to sec->kek, a new card data key, CVCs held for
 * new cards. Take a mark before, and undo to it after a rollback, so that memory
 * never holds a key version or data key the database does not (which would encrypt
 * under material that is gone after a restart). */
typedef struct {
    size_t nkek;
    int64_t dk_id;
    size_t ncvc;
} pd_vault_mark_t;

pd_vault_mark_t pd_vault_mark(const pd_vault_state_t *v);
/* after a rollback to where m was taken: drops the key versions added since, the card
 * data key if it changed, the read cache of data keys, the CVCs held since; bumps kms_gen */
void pd_vault_undo(pd_vault_state_t *v, const pd_vault_mark_t *m);
/* the transaction is over (committed, or undone): the CVC journal starts again */
void pd_vault_settle(pd_vault_state_t *v);

/* storage.c: where the tables are */
typedef struct {
    const char *sqlite_path; /* vault.db, used when pg_url is NULL */
    const char *pg_url;      /* [vault] store_url: PostgreSQL, shared by the vault's instances */
    const char *pg_password; /* overrides the URL's (store_password_file); may be NULL */
    char *why;               /* on failure: a one-line reason (never the password) */
    size_t whycap;
} pd_vault_store_t;

/* Opens v->db and applies the vault's migrations (versioned in vault_schema_version,
 * under the backend's migration lock). PostgreSQL: PD_ERR_AUTH when the password is
 * refused, PD_ERR_UNAVAILABLE when the server cannot be reached; st->why says why. */
int pd_vault_db_open(pd_vault_state_t *v, const pd_vault_store_t *st) PD_WUR;
/* Whether this instance runs the scheduled work (always true on SQLite); on a shared
 * database the one holding the scheduler lease does. Called once per tick. */
bool pd_vault_leader(pd_vault_state_t *v);

/* state.c */
/* pd_vault_state_open with the tables where st says */
int pd_vault_state_open_store(pd_vault_state_t **out, const pd_vault_store_t *st, const uint8_t root[PD_KEY_LEN]);
/* Opens vault.db (creating the schema), checks the root key against the stored
 * check value (PD_ERR_AUTH when it is another key), loads key material. A new vault
 * gets the standard keys (alias/cards, ...) and the api-key pepper secret. */
int pd_vault_state_open(pd_vault_state_t **out, const char *db_path, const uint8_t root[PD_KEY_LEN]);
void pd_vault_state_close(pd_vault_state_t *v);
/* Periodic work: automatic key rotation, finishing deletions, CVC expiry, secret rotation schedules. */
void pd_vault_tick(pd_vault_state_t *v);

int pd_kms_create(pd_vault_state_t *v, const char *alias, int64_t rotation_days, const unsigned policy[PD_KMS_OP_COUNT],
                  pd_kms_key_t *out);
int pd_kms_get(pd_vault_state_t *v, const char *name, pd_kms_key_t *out);
int pd_kms_get_num(pd_vault_state_t *v, uint32_t num, pd_kms_key_t *out);
/* PD_ERR_PERM unless principal may do op on the key; PD_ERR_KEY_DISABLED when pending deletion/deleted */
int pd_kms_check(const pd_kms_key_t *k, pd_kms_op_t op, unsigned principal);
/* the material of a key version: from memory, else loaded from the database (a
 * version another instance made); NULL when there is none (or it was destroyed) */
const uint8_t *pd_kms_material(pd_vault_state_t *v, uint32_t num, uint32_t version);
/* Loads every key version the database has and memory lacks; wipes from memory the
 * versions whose material the database no longer has (a completed deletion).
 * strict (at open): a version that does not open under the root key fails with
 * PD_ERR_AUTH; otherwise it is logged and skipped. *added (may be NULL) gets how many. */
int pd_kms_load(pd_vault_state_t *v, bool strict, size_t *added);
/* shared database: what another instance changed reaches memory (PD_VAULT_REFRESH_MS) */
void pd_kms_refresh(pd_vault_state_t *v);
int pd_kms_encrypt(pd_vault_state_t *v, const pd_kms_key_t *k, pd_view_t ctx, pd_view_t pt, pd_buf_t *env);
/* decrypts with whatever key/version the envelope names; *k receives that key */
int pd_kms_decrypt(pd_vault_state_t *v, pd_view_t ctx, pd_view_t env, pd_buf_t *pt, pd_kms_key_t *k);
int pd_kms_rotate(pd_vault_state_t *v, pd_kms_key_t *k);
int pd_kms_set_rotation(pd_vault_state_t *v, pd_kms_key_t *k, int64_t days);
int pd_kms_set_min_decrypt(pd_vault_state_t *v, pd_kms_key_t *k, uint32_t version);
int pd_kms_schedule_deletion(pd_vault_state_t *v, pd_kms_key_t *k, int64_t days);
int pd_kms_cancel_deletion(pd_vault_state_t *v, pd_kms_key_t *k);
void pd_kms_describe(const pd_kms_key_t *k, pd_jw_t *w);
int pd_kms_list(pd_vault_state_t *v, pd_jw_t *w);
/* rewrap: moves up to batch stored ciphertexts of key to its newest version;
 * *moved gets how many, *remaining how many are still on older versions */
int pd_kms_rewrap(pd_vault_state_t *v, const pd_kms_key_t *k, int64_t batch, int64_t *moved, int64_t *remaining);
void pd_kms_tick(pd_vault_state_t *v);

/* cards.c */
int pd_cards_tokenize(pd_vault_state_t *v, const pd_vault_card_in_t *in, pd_vault_card_t *out);
int pd_cards_get(pd_vault_state_t *v, const char *merchant, const char *token, pd_vault_card_t *out);
/* PAN and CVC (if still held; then wiped) */
int pd_cards_detokenize(pd_vault_state_t *v, const char *merchant, const char *token, pd_vault_pan_t *out);
int pd_cards_delete(pd_vault_state_t *v, const char *merchant, const char *token);
void pd_cards_tick(pd_vault_state_t *v);

/* secrets.c */
int pd_secrets_get(pd_vault_state_t *v, const char *name, const char *stage, pd_buf_t *value, char *version_id,
                   size_t vcap);
int pd_secrets_put(pd_vault_state_t *v, const char *name, pd_view_t value, char *version_id, size_t vcap);
int pd_secrets_create(pd_vault_state_t *v, const char *name, int64_t rotation_days, int64_t length,
                      const char *exclude);
/* runs (or resumes) a rotation through all four steps; *changed is set when CURRENT moved */
int pd_secrets_rotate(pd_vault_state_t *v, const char *name, bool *changed);
int pd_secrets_list(pd_vault_state_t *v, pd_jw_t *w);
int pd_secrets_history(pd_vault_state_t *v, const char *name, pd_jw_t *w);
/* resumes interrupted rotations and runs scheduled ones; returns names whose CURRENT changed via cb */
void pd_secrets_tick(pd_vault_state_t *v, void (*changed)(void *arg, const char *name), void *arg);
int pd_secrets_generate(int64_t length, const char *exclude, char *out, size_t cap);

/* Appends an audit record in the current transaction (rc: the operation's outcome).
 * Returns 0, or the error when the record cannot be written (logged; the chain head in
 * memory is reloaded): the caller must then fail the operation and roll its effects
 * back. Nothing the vault does may succeed without its record (PCI DSS 10.2, 10.3). */
int pd_vault_audit(pd_vault_state_t *v, const char *principal, const char *action, const char *resource, int rc,
                   const char *origin) PD_WUR;
/* after a rolled-back transaction: the chain head in memory goes back to the database's */
void pd_vault_audit_resync(pd_vault_state_t *v);

#endif
