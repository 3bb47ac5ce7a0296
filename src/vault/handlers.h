/* Handler context and the request handlers the dispatcher table points at. */
#ifndef PAYD_VAULT_HANDLERS_H
#define PAYD_VAULT_HANDLERS_H

#include "vault/internal.h"

typedef struct {
    pd_vault_state_t *v;
    unsigned principal;
    pd_view_t payload;
    pd_buf_t *reply;       /* the reply payload */
    char resource[160];    /* for the audit record */
    char msg[256];         /* error message for the peer */
    bool reply_secret;     /* the reply holds secret bytes: wipe after sending */
    char changed[128];     /* a secret whose CURRENT moved: notify api peers */
} pd_hctx_t;

typedef int (*pd_handler_t)(pd_hctx_t *h);

int pd_h_tokenize(pd_hctx_t *h);
int pd_h_card_get(pd_hctx_t *h);
int pd_h_detokenize(pd_hctx_t *h);
int pd_h_card_delete(pd_hctx_t *h);
int pd_h_encrypt(pd_hctx_t *h);
int pd_h_encrypt_batch(pd_hctx_t *h);
int pd_h_decrypt(pd_hctx_t *h);
int pd_h_reencrypt(pd_hctx_t *h);
int pd_h_generate_data_key(pd_hctx_t *h);
int pd_h_secret_get(pd_hctx_t *h);
/* admin operations (handlers_admin.c), one per message type */
int pd_h_kms_list(pd_hctx_t *h);
int pd_h_kms_describe(pd_hctx_t *h);
int pd_h_kms_create(pd_hctx_t *h);
int pd_h_kms_rotate(pd_hctx_t *h);
int pd_h_kms_set_rotation(pd_hctx_t *h);
int pd_h_kms_set_min_decrypt(pd_hctx_t *h);
int pd_h_kms_schedule_deletion(pd_hctx_t *h);
int pd_h_kms_cancel_deletion(pd_hctx_t *h);
int pd_h_kms_rewrap(pd_hctx_t *h);
int pd_h_secrets_list(pd_hctx_t *h);
int pd_h_secrets_history(pd_hctx_t *h);
int pd_h_secrets_get_stage(pd_hctx_t *h);
int pd_h_secrets_put(pd_hctx_t *h);
int pd_h_secrets_create(pd_hctx_t *h);
/* runs its own transactions: its dispatcher row says so (own_txn) */
int pd_h_secrets_rotate(pd_hctx_t *h);
int pd_h_audit_verify(pd_hctx_t *h);
/* backups (handlers_backup.c); the snapshot runs outside the batch (own_txn) */
int pd_h_backup_key(pd_hctx_t *h);
int pd_h_backup_snapshot(pd_hctx_t *h);

#endif
