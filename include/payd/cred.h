/*
 * A login credential (user + password) that can change while the process runs: read
 * from a file once, or held in a vault secret and fetched again when the vault says
 * its CURRENT version moved or when a server refuses the login (28P01, WRONGPASS).
 *
 * A secret's value is "PASSWORD" or "USER\nPASSWORD" (the rotation handlers write the
 * second form: the postgres handler alternates between two users). Thread-safe; the
 * password is kept in one heap block, copied out only into the caller's buffer and
 * wiped (OPENSSL_cleanse) when replaced or freed. Nothing here logs a value.
 */
#ifndef PAYD_CRED_H
#define PAYD_CRED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/error.h"

#define PD_CRED_USER_MAX 128
#define PD_CRED_PASSWORD_MAX 1024

/* Where secrets come from (payd: the vault link; set up by the program, not by the
 * component that uses the credential). */
typedef struct pd_secret_source {
    /* Blocking: the CURRENT value of name into value (a pd_buf_t of at most 4096 bytes,
     * wiped by the caller). why gets a one-line reason on failure (no value in it). */
    int (*fetch)(void *arg, const char *name, pd_buf_t *value, char *why, size_t whycap);
    /* Asks to be told when name's CURRENT moves: changed(carg, value) runs on some
     * other thread with the new value (wiped after the call). May be NULL. */
    int (*watch)(void *arg, const char *name, void (*changed)(void *carg, pd_view_t value), void *carg);
    /* Undoes watch for carg; after it returns changed is not running and never runs again. */
    void (*unwatch)(void *arg, void *carg);
    void *arg;
} pd_secret_source_t;

typedef struct pd_cred pd_cred_t;

/* A fixed credential: password (may be NULL: none, the URL's) for the URL's user. */
int pd_cred_new_static(pd_cred_t **out, const char *password) PD_WUR;
/* A credential from the vault secret name: fetches it now (the first failure is the
 * caller's to report: why names the secret and the cause) and watches it. */
int pd_cred_new_secret(pd_cred_t **out, const pd_secret_source_t *src, const char *name, char *why,
                       size_t whycap) PD_WUR;
void pd_cred_free(pd_cred_t *c);

/* Copies the user ("" when the value names none) and the password ("" when none;
 * *has_password false) out; *gen (may be NULL) gets the value's generation. */
int pd_cred_get(pd_cred_t *c, char *user, size_t ucap, char *password, size_t pcap, bool *has_password,
                uint64_t *gen) PD_WUR;
/* After a login refused with the value of generation gen: fetches the secret again,
 * unless a newer value arrived meanwhile (then 0 at once). PD_ERR_STATE for a static
 * credential (nothing to fetch: the refusal is final). */
int pd_cred_refresh(pd_cred_t *c, uint64_t gen) PD_WUR;
/* Whether the credential comes from a secret (a refused login is worth one retry). */
bool pd_cred_is_secret(const pd_cred_t *c);
/* The secret's name ("" for a static credential), for logs and errors. */
const char *pd_cred_secret_name(const pd_cred_t *c);

/* Splits a secret value into user and password (the forms above). PD_ERR_INVALID for
 * an empty password, a NUL, or a user that is empty or longer than ucap - 1. */
int pd_cred_parse(pd_view_t value, char *user, size_t ucap, char *password, size_t pcap) PD_WUR;

#endif
