/*
 * Rotation handlers of the secrets engine: secrets whose value is a login of another
 * server (handler postgres or redis). The engine (secrets.c) runs the four steps;
 * a handler does what each step means for its system:
 *   createSecret   pending_value: the next value ("USER\nPASSWORD") from CURRENT and a
 *                  generated password;
 *   setSecret      set: the system accepts the PENDING login, logged in as the master
 *                  secret's login (the old login keeps working);
 *   testSecret     test: a login with PENDING works;
 *   finishSecret   the engine moves the stages, every payd is told and fetches the new
 *                  CURRENT; after the target's grace period
 *   retire         the system refuses the PREVIOUS login (open sessions keep working).
 *
 * A secret names its target in the vault table secret_targets: url (libpq URL or
 * redis:// URL, no password in it), master (the name of the secret holding the login
 * allowed to change passwords: "USER\nPASSWORD", or "PASSWORD" for the URL's user),
 * username (the login the secret is for) and grace_s. docs/postgres.md, docs/redis.md.
 * Handlers never log a password; every copy is wiped after use.
 */
#ifndef PAYD_VAULT_ROTATION_H
#define PAYD_VAULT_ROTATION_H

#include "vault/internal.h"

#define PD_ROT_URL_MAX 1024
#define PD_ROT_USER_MAX 63
#define PD_ROT_GRACE_DEFAULT 60

typedef struct {
    char name[128];
    char handler[24];
    char url[PD_ROT_URL_MAX + 1];
    char master[128];
    char username[PD_ROT_USER_MAX + 1];
    int64_t grace_s;
    char retire_version[PD_ID_MAX]; /* PREVIOUS version to retire ("" = none due) */
    int64_t retire_at;
} pd_rot_target_t;

typedef struct {
    const char *name;
    int (*pending_value)(const pd_rot_target_t *t, pd_view_t current, const char *password, pd_buf_t *out);
    int (*set)(const pd_rot_target_t *t, pd_view_t master, pd_view_t pending, char *why, size_t cap);
    int (*test)(const pd_rot_target_t *t, pd_view_t pending, char *why, size_t cap);
    int (*retire)(const pd_rot_target_t *t, pd_view_t master, pd_view_t previous, pd_view_t current, char *why,
                  size_t cap);
} pd_rot_handler_t;

extern const pd_rot_handler_t pd_rot_postgres;
extern const pd_rot_handler_t pd_rot_redis;
/* "postgres" or "redis"; NULL otherwise */
const pd_rot_handler_t *pd_rot_handler(const char *name);

/* rotation.c */
int pd_rot_target_load(pd_vault_state_t *v, const char *name, pd_rot_target_t *t);
/* records the PREVIOUS version to retire after the grace period (in the caller's transaction) */
int pd_rot_target_schedule_retire(pd_vault_state_t *v, const pd_rot_target_t *t, const char *previous_version);
/* Retires t's PREVIOUS login now when one is recorded; its own transaction when
 * own_txn. Failure: why says why, the retirement stays due. */
int pd_rot_retire(pd_vault_state_t *v, pd_rot_target_t *t, bool own_txn, char *why, size_t cap);
/* the master login of t (CURRENT of t->master) into out (wiped by the caller) */
int pd_rot_master(pd_vault_state_t *v, const pd_rot_target_t *t, pd_buf_t *out, char *why, size_t cap);
/* retirements that are due (called by pd_secrets_tick) */
void pd_rot_tick(pd_vault_state_t *v);
/* Creates a secret with a handler: checks the target, sets a first generated
 * password on the server (set + test, so a bad URL or master fails here), stores it
 * as CURRENT. why says what is wrong, never a value. */
int pd_secrets_create_rotated(pd_vault_state_t *v, const char *name, int64_t rotation_days, int64_t length,
                              const char *exclude, const pd_rot_target_t *target, char *why, size_t cap);

/* secrets.c, for rotation.c */
int pd_secrets_insert_version(pd_vault_state_t *v, const char *name, const char *version_id, const char *stage,
                              pd_view_t value);
/* the reason of the last failed pd_secrets_rotate ("" when none) */
const char *pd_secrets_rotate_error(void);

/* shared by the handlers: URL + login -> the user and password to use */
int pd_rot_split(pd_view_t value, char *user, size_t ucap, char *password, size_t pcap);

#endif
