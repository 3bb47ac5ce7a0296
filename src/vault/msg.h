/* Typed encode/decode of every vault message (server and client share these). */
#ifndef PAYD_VAULT_MSG_H
#define PAYD_VAULT_MSG_H

#include "payd/vault.h"
#include "payd/vault_ipc.h"

#define PD_MSG_KEY_MAX 80
#define PD_MSG_CTX_MAX 1024
#define PD_MSG_DATA_MAX 8192
#define PD_MSG_JSON_MAX 32768
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

/* ENCRYPT (key, ctx, pt), GENERATE_DATA_KEY (key, ctx, empty), DECRYPT/REENCRYPT ("", ctx, env) */
int pd_msg_kms_enc(pd_buf_t *b, const char *key, pd_view_t ctx, pd_view_t data);
int pd_msg_kms_dec(pd_view_t p, char key[PD_MSG_KEY_MAX], pd_view_t *ctx, pd_view_t *data);

/* generic data reply */
int pd_msg_data_enc(pd_buf_t *b, pd_view_t data, pd_view_t data2, const char *text, int64_t n1, int64_t n2);
int pd_msg_data_dec(pd_view_t p, pd_vault_reply_t *r);

/* SECRET_GET and SECRET_CHANGED: a name */
int pd_msg_name_enc(pd_buf_t *b, const char *name);
int pd_msg_name_dec(pd_view_t p, char name[PD_MSG_NAME_MAX]);

int pd_msg_admin_enc(pd_buf_t *b, const char *op, pd_view_t json);
int pd_msg_admin_dec(pd_view_t p, char op[64], pd_view_t *json);

int pd_msg_error_enc(pd_buf_t *b, int code, const char *message);
int pd_msg_error_dec(pd_view_t p, int *code, char *message, size_t cap);

#endif
