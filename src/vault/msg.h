/* Typed encode/decode of every vault message (server and client share these). */
#ifndef PAYD_VAULT_MSG_H
#define PAYD_VAULT_MSG_H

#include "payd/vault.h"
#include "payd/vault_crypto.h"
#include "payd/vault_ipc.h"

#define PD_MSG_KEY_MAX 80
#define PD_MSG_CTX_MAX 1024
#define PD_MSG_DATA_MAX 8192
#define PD_MSG_JSON_MAX (PD_VAULT_BATCH_BYTES + 16384) /* a data reply's data: JSON, or a batch's envelopes */
#define PD_MSG_NAME_MAX 128
#define PD_MSG_CRED_MAX 128

int pd_msg_auth_enc(pd_buf_t *b, const char *principal, const char *credential);
int pd_msg_auth_dec(pd_view_t p, char principal[16], char credential[PD_MSG_CRED_MAX]);

int pd_msg_tokenize_enc(pd_buf_t *b, const pd_vault_card_in_t *in);
int pd_msg_tokenize_dec(pd_view_t p, pd_vault_card_in_t *in);
int pd_msg_card_enc(pd_buf_t *b, const pd_vault_card_t *c);
int pd_msg_card_dec(pd_view_t p, pd_vault_card_t *c);
/* CARD_GET, DETOKENIZE, CARD_DELETE: (merchant, token) */
int pd_msg_ref_enc(pd_buf_t *b, const char *merchant, const char *token);
int pd_msg_ref_dec(pd_view_t p, char merchant[PD_ID_MAX], char token[PD_ID_MAX]);
int pd_msg_pan_enc(pd_buf_t *b, const pd_vault_pan_t *pan);
int pd_msg_pan_dec(pd_view_t p, pd_vault_pan_t *pan);

/* ENCRYPT (key, ctx, pt), GENERATE_DATA_KEY (key, ctx, empty), DECRYPT/REENCRYPT ("", ctx, env).
 * data is at most PD_MSG_ENV_MAX bytes: the largest envelope ENCRYPT_BATCH makes (one
 * payload of PD_VAULT_BATCH_BYTES), so that Decrypt opens every envelope the vault
 * makes; each handler applies its own, smaller bound where it has one (Encrypt: 4096). */
#define PD_MSG_ENV_MAX (PD_VAULT_BATCH_BYTES + PD_ENV_OVERHEAD)
int pd_msg_kms_enc(pd_buf_t *b, const char *key, pd_view_t ctx, pd_view_t data);
int pd_msg_kms_dec(pd_view_t p, char key[PD_MSG_KEY_MAX], pd_view_t *ctx, pd_view_t *data);

/* ENCRYPT_BATCH: key, u16 count, then count x (bytes context, bytes plaintext). The
 * decoder checks the structure only (PD_ERR_PROTOCOL: bad fields, a context longer than
 * PD_MSG_CTX_MAX, trailing bytes), and PD_ERR_TOOBIG for a count above
 * PD_VAULT_BATCH_MAX (*n gets the count); the other bounds (payload and total size, an
 * empty batch) are the handler's, which names them in its error. Views into p. */
int pd_msg_encrypt_batch_enc(pd_buf_t *b, const char *key, const pd_vault_batch_item_t *items, size_t n);
int pd_msg_encrypt_batch_dec(pd_view_t p, char key[PD_MSG_KEY_MAX], pd_vault_batch_item_t items[PD_VAULT_BATCH_MAX],
                             size_t *n);
/* the reply's data: u16 count, count x bytes envelope */
int pd_msg_envs_enc(pd_buf_t *b, const pd_view_t *envs, size_t n);
/* the largest envelope list a batch within the bounds makes; it fits a data reply */
#define PD_MSG_ENVS_MAX (2u + PD_VAULT_BATCH_MAX * (4u + PD_ENV_OVERHEAD) + PD_VAULT_BATCH_BYTES)

/* generic data reply */
int pd_msg_data_enc(pd_buf_t *b, pd_view_t data, pd_view_t data2, const char *text, int64_t n1, int64_t n2);
int pd_msg_data_dec(pd_view_t p, pd_vault_reply_t *r);

/* SECRET_GET and SECRET_CHANGED: a name */
int pd_msg_name_enc(pd_buf_t *b, const char *name);
int pd_msg_name_dec(pd_view_t p, char name[PD_MSG_NAME_MAX]);

/* ---- admin operations: one message type each (vault_ipc.h), typed fields ----
 * Decoders refuse an empty key or secret name (PD_ERR_INVALID) besides the usual
 * malformations; the size bounds below are the dispatcher's for each type. */
#define PD_MSG_SECRET_NAME_MAX 120  /* bytes of a secret's name */
#define PD_MSG_STAGE_MAX 16         /* CURRENT, PENDING, PREVIOUS */
#define PD_MSG_SECRET_VALUE_MAX 4096
#define PD_MSG_EXCLUDE_MAX 63       /* characters a generated secret must not contain */

/* encoded sizes of the field types (pd_wire_*) */
#define PD_WIRE_STR(n) (2u + (n))
#define PD_WIRE_BYTES(n) (4u + (n))
#define PD_WIRE_I64 8u

/* KMS_DESCRIBE, KMS_ROTATE, KMS_CANCEL_DELETION: a key (alias/<name> or key_<id>) */
int pd_msg_key_enc(pd_buf_t *b, const char *key);
int pd_msg_key_dec(pd_view_t p, char key[PD_MSG_KEY_MAX]);
/* a key and a number: KMS_CREATE (alias, rotation days), KMS_SET_ROTATION (days),
 * KMS_SET_MIN_DECRYPT (version), KMS_SCHEDULE_DELETION (days), KMS_REWRAP (batch) */
int pd_msg_key_num_enc(pd_buf_t *b, const char *key, int64_t n);
int pd_msg_key_num_dec(pd_view_t p, char key[PD_MSG_KEY_MAX], int64_t *n);
/* SECRETS_HISTORY, SECRETS_ROTATE: a secret's name */
int pd_msg_secret_enc(pd_buf_t *b, const char *name);
int pd_msg_secret_dec(pd_view_t p, char name[PD_MSG_SECRET_NAME_MAX + 1]);
/* SECRETS_GET_STAGE: name, stage */
int pd_msg_secret_stage_enc(pd_buf_t *b, const char *name, const char *stage);
int pd_msg_secret_stage_dec(pd_view_t p, char name[PD_MSG_SECRET_NAME_MAX + 1], char stage[PD_MSG_STAGE_MAX + 1]);
/* SECRETS_PUT: name, value (1 to 4096 bytes; a view into the payload) */
int pd_msg_secret_put_enc(pd_buf_t *b, const char *name, pd_view_t value);
int pd_msg_secret_put_dec(pd_view_t p, char name[PD_MSG_SECRET_NAME_MAX + 1], pd_view_t *value);
/* SECRETS_CREATE: name, rotation days, length, excluded characters ("": the default
 * set), then the rotation handler ("" = random) and its target: url, master secret,
 * username, grace period in seconds (all "" / 0 for random) */
#define PD_MSG_HANDLER_MAX 16
#define PD_MSG_URL_MAX 1024
#define PD_MSG_USER_MAX 63
typedef struct {
    char name[PD_MSG_SECRET_NAME_MAX + 1];
    int64_t rotation_days, length;
    char exclude[PD_MSG_EXCLUDE_MAX + 1];
    char handler[PD_MSG_HANDLER_MAX + 1];
    char url[PD_MSG_URL_MAX + 1];
    char master[PD_MSG_SECRET_NAME_MAX + 1];
    char username[PD_MSG_USER_MAX + 1];
    int64_t grace_s;
} pd_msg_secret_create_t;
#define PD_MSG_SECRET_CREATE_FIXED (3 * PD_WIRE_I64 + 5 * PD_WIRE_STR(0))
int pd_msg_secret_create_enc(pd_buf_t *b, const pd_msg_secret_create_t *m);
int pd_msg_secret_create_dec(pd_view_t p, pd_msg_secret_create_t *m);
/* KMS_LIST, SECRETS_LIST, AUDIT_VERIFY carry no payload. */

/* The client side of the admin operations: maps an operation name ("kms.rotate") to
 * its message type and encodes the JSON arguments payctl gives (an object; empty
 * means {}) as that type's fields, with their defaults. PD_ERR_INVALID with a message
 * in err for an unknown operation, an unknown, missing or mistyped argument, or a
 * value the wire cannot carry; nothing is sent then. The vault checks every value
 * again. */
int pd_msg_admin_request(const char *op, pd_view_t args_json, uint16_t *type, pd_buf_t *payload, char *err,
                         size_t errcap);
/* the message type of an admin operation, 0 when there is none by that name */
uint16_t pd_msg_admin_type(const char *op);

int pd_msg_error_enc(pd_buf_t *b, int code, const char *message);
int pd_msg_error_dec(pd_view_t p, int *code, char *message, size_t cap);

#endif
