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
int pd_h_decrypt(pd_hctx_t *h);
int pd_h_reencrypt(pd_hctx_t *h);
int pd_h_generate_data_key(pd_hctx_t *h);
int pd_h_secret_get(pd_hctx_t *h);
/* admin ops; *own_txn tells the server the op manages its own transactions */
int pd_h_admin(pd_hctx_t *h);
bool pd_h_admin_own_txn(pd_view_t payload);

#endif
