/*
 * payd-vault: the client side, and the types shared with the vault process.
 *
 * The vault holds every key and every PAN; payd and payctl talk to it over a framed
 * IPC channel (include/payd/vault_ipc.h). A connection is bound to one principal:
 *   api        payd's API handlers (tokenize, card metadata, KMS for webhooks/events, secrets they need)
 *   processor  the processor connector: the only principal that may detokenize
 *   admin      payctl (key management, secrets, audit)
 *   rotation   the secret-rotation handlers
 *
 * Client calls are asynchronous: each takes a callback that runs exactly once, on
 * the client's I/O thread, with rc 0 and the typed reply, or a negative PD_ERR_*
 * (PD_ERR_TIMEOUT, PD_ERR_CLOSED, PD_ERR_PERM, PD_ERR_INVALID with a message...).
 * Many requests may be in flight on one connection (request ids). payd's event loops
 * hop back to their thread with pd_loop_post() in the callback. A blocking wrapper
 * serves payctl and tests.
 */
#ifndef PAYD_VAULT_H
#define PAYD_VAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/error.h"
#include "payd/id.h"

typedef enum {
    PD_PRINCIPAL_API = 1 << 0,
    PD_PRINCIPAL_PROCESSOR = 1 << 1,
    PD_PRINCIPAL_ADMIN = 1 << 2,
    PD_PRINCIPAL_ROTATION = 1 << 3,
} pd_principal_t;

const char *pd_principal_name(unsigned p);
/* "api" -> PD_PRINCIPAL_API; 0 if unknown */
unsigned pd_principal_parse(const char *s);

typedef enum {
    PD_KMS_ENCRYPT,
    PD_KMS_DECRYPT,
    PD_KMS_GENERATE_DATA_KEY,
    PD_KMS_REENCRYPT,
    PD_KMS_MANAGE,
    PD_KMS_OP_COUNT
} pd_kms_op_t;

#define PD_CARD_NAME_MAX 128

typedef struct {
    char merchant_id[PD_ID_MAX];
    char pan[20];      /* digits, NUL-terminated */
    int exp_month, exp_year;
    char cvc[5];       /* "" when not collected */
    char name[PD_CARD_NAME_MAX];
} pd_vault_card_in_t;

typedef struct {
    char token[PD_ID_MAX];  /* card_… (the vault's reference; payd stores only this) */
    char brand[16];         /* visa, mastercard, amex, discover, jcb, diners, unionpay, maestro, unknown */
    char funding[16];       /* credit, debit, prepaid, unknown */
    char last4[5];
    char bin[9];            /* first 6 (first 8 for 16-digit PANs) */
    char fingerprint[24];   /* keyed per merchant: same card, same merchant -> same value */
    int exp_month, exp_year;
    bool cvc_held;          /* a CVC waits in vault memory for the first authorization */
} pd_vault_card_t;

typedef struct {
    char pan[20];
    int exp_month, exp_year;
    char cvc[5];            /* "" if none was collected or it was already used/expired */
    char name[PD_CARD_NAME_MAX];
} pd_vault_pan_t;

/* Card number checks (pure; used by the vault and by payd to reject bad input early). */
bool pd_card_luhn(const char *pan, size_t len);
/* visa, mastercard, amex, discover, jcb, diners, unionpay, maestro or unknown */
const char *pd_card_brand(const char *pan, size_t len);
/* credit, debit, prepaid or unknown (known test BINs only) */
const char *pd_card_funding(const char *pan, size_t len);

/* Wipes a detokenized card. */
void pd_vault_pan_wipe(pd_vault_pan_t *p);

/* ---- client ---- */

typedef struct pd_vault_client pd_vault_client_t;

typedef struct {
    int fd;                  /* an already connected socket (socketpair from payd), or -1 */
    const char *socket_path; /* Unix socket of a standalone vault (when fd < 0) */
    const char *tcp_address; /* or "host:port" of a vault on another host: mutual TLS; a comma-separated
                              * list of up to 8 instances on one database: failover (client.c) */
    const char *tls_cert, *tls_key; /* with tcp_address: this principal's certificate (CN = the principal) */
    const char *tls_ca;      /* with tcp_address: the CA of the vault's certificate */
    const char *principal;   /* the principal to authenticate as */
    const char *credential;  /* that principal's credential */
    int64_t timeout_ms;      /* per request (default 5000) */
} pd_vault_client_opts_t;

int pd_vault_client_new(pd_vault_client_t **out, const pd_vault_client_opts_t *o) PD_WUR;
/* Splits "host:port,host:port" (spaces around entries allowed) into out; PD_ERR_CONFIG
 * for an empty entry, one that is not host:port, or more than max. */
int pd_vault_parse_addresses(const char *list, char out[][300], int max, int *n) PD_WUR;
void pd_vault_client_free(pd_vault_client_t *c);
/* For a client made with fd: switches to a new connected descriptor (a restarted
 * child vault); requests in flight on the old one fail with PD_ERR_CLOSED. */
void pd_vault_client_adopt_fd(pd_vault_client_t *c, int fd);
/* True while the connection is up. */
bool pd_vault_client_connected(pd_vault_client_t *c);
/* Called (on the client thread) when the vault announces that a secret's CURRENT version changed. */
void pd_vault_client_on_secret_change(pd_vault_client_t *c, void (*fn)(void *arg, const char *name), void *arg);

/* Generic reply: for ops returning bytes (KMS, secrets) or JSON (admin). */
typedef struct {
    pd_buf_t data;       /* ciphertext / plaintext / JSON / secret value (wiped on free) */
    pd_buf_t data2;      /* second value (GenerateDataKey: the wrapped key) */
    char text[256];      /* key id, version id, or an error message */
    int64_t n1, n2;      /* counters (rewrap: moved, remaining) */
} pd_vault_reply_t;
void pd_vault_reply_free(pd_vault_reply_t *r);

typedef void (*pd_vault_card_cb)(void *arg, int rc, const pd_vault_card_t *card);
typedef void (*pd_vault_pan_cb)(void *arg, int rc, pd_vault_pan_t *pan); /* pan wiped after the callback */
typedef void (*pd_vault_cb)(void *arg, int rc, const pd_vault_reply_t *reply);

int pd_vault_tokenize(pd_vault_client_t *c, const pd_vault_card_in_t *in, pd_vault_card_cb cb, void *arg) PD_WUR;
int pd_vault_card_get(pd_vault_client_t *c, const char *merchant, const char *token, pd_vault_card_cb cb,
                      void *arg) PD_WUR;
int pd_vault_detokenize(pd_vault_client_t *c, const char *merchant, const char *token, pd_vault_pan_cb cb,
                        void *arg) PD_WUR;
int pd_vault_card_delete(pd_vault_client_t *c, const char *merchant, const char *token, pd_vault_cb cb,
                         void *arg) PD_WUR;
int pd_vault_encrypt(pd_vault_client_t *c, const char *key, pd_view_t context, pd_view_t pt, pd_vault_cb cb,
                     void *arg) PD_WUR;
int pd_vault_decrypt(pd_vault_client_t *c, pd_view_t context, pd_view_t env, pd_vault_cb cb, void *arg) PD_WUR;
int pd_vault_generate_data_key(pd_vault_client_t *c, const char *key, pd_view_t context, pd_vault_cb cb,
                               void *arg) PD_WUR;
int pd_vault_reencrypt(pd_vault_client_t *c, pd_view_t context, pd_view_t env, pd_vault_cb cb, void *arg) PD_WUR;
/* One payload of a batch encryption and its encryption context (views the caller owns
 * until the call returns: the request is encoded before it does). */
typedef struct {
    pd_view_t context, pt;
} pd_vault_batch_item_t;
/* Encrypt for n payloads in one request (ENCRYPT_BATCH, principal api): each payload gets
 * its own envelope under key, with its own context, exactly as pd_vault_encrypt would
 * make it, and the vault writes one audit record for the batch. Bounds: 1 to
 * PD_VAULT_BATCH_MAX payloads, at most PD_VAULT_BATCH_BYTES in all (one payload may take
 * all of it: there is no bound per payload, unlike Encrypt's 4096 bytes); past them the
 * vault answers PD_ERR_TOOBIG with the bound
 * in reply->text (the request is still sent: the vault is the one that checks). The
 * reply's data holds the envelopes in request order: read them with
 * pd_vault_batch_envelopes. */
#define PD_VAULT_BATCH_MAX 64
/* 256 KiB: more than the largest event payd can make (50 metadata keys of 40 bytes with
 * values of 500, each byte escaped to 6 in JSON, ~160 KiB; every other field of an
 * object has a bound of its own in src/api/schemas.c), so every event can be sealed */
#define PD_VAULT_BATCH_BYTES (256u * 1024)
int pd_vault_encrypt_batch(pd_vault_client_t *c, const char *key, const pd_vault_batch_item_t *items, size_t n,
                           pd_vault_cb cb, void *arg) PD_WUR;
/* Splits an ENCRYPT_BATCH reply's data into its envelopes (views into data): 0, or
 * PD_ERR_PROTOCOL when it is not exactly want envelopes. */
int pd_vault_batch_envelopes(pd_view_t data, pd_view_t *envs, size_t want) PD_WUR;
int pd_vault_secret_get(pd_vault_client_t *c, const char *name, pd_vault_cb cb, void *arg) PD_WUR;
/* Admin operations: op is one of the names payctl uses ("kms.rotate", "kms.describe",
 * "kms.list", "kms.schedule_deletion", "kms.cancel_deletion", "kms.set_rotation",
 * "kms.set_min_decrypt", "kms.create", "kms.rewrap", "secrets.list", "secrets.history",
 * "secrets.put", "secrets.rotate", "secrets.create", "secrets.get", "audit.verify");
 * args is a small JSON object (empty: {}). Each operation is its own message type with
 * typed fields: the client maps the name and encodes the arguments, so the vault never
 * parses JSON. An unknown operation or a missing, unknown or mistyped argument is
 * PD_ERR_INVALID before anything is sent (the sync wrapper puts the reason in
 * out->text; the callback is not called). The reply's data is JSON. */
int pd_vault_admin(pd_vault_client_t *c, const char *op, pd_view_t args_json, pd_vault_cb cb, void *arg) PD_WUR;

/* Blocking wrapper: runs fn's async call and waits for its generic reply. */
int pd_vault_admin_sync(pd_vault_client_t *c, const char *op, pd_view_t args_json, pd_vault_reply_t *out) PD_WUR;
int pd_vault_tokenize_sync(pd_vault_client_t *c, const pd_vault_card_in_t *in, pd_vault_card_t *out) PD_WUR;
int pd_vault_detokenize_sync(pd_vault_client_t *c, const char *merchant, const char *token, pd_vault_pan_t *out) PD_WUR;
int pd_vault_secret_get_sync(pd_vault_client_t *c, const char *name, pd_vault_reply_t *out) PD_WUR;
int pd_vault_encrypt_sync(pd_vault_client_t *c, const char *key, pd_view_t context, pd_view_t pt,
                          pd_vault_reply_t *out) PD_WUR;
int pd_vault_decrypt_sync(pd_vault_client_t *c, pd_view_t context, pd_view_t env, pd_vault_reply_t *out) PD_WUR;
/* GenerateDataKey: out->data the plaintext key (wiped by pd_vault_reply_free), out->data2 the wrapped key */
int pd_vault_generate_data_key_sync(pd_vault_client_t *c, const char *key, pd_view_t context,
                                    pd_vault_reply_t *out) PD_WUR;

#endif
