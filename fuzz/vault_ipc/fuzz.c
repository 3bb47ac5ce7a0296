/* Fuzzes the vault's IPC decoding: the frame header and every message decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vault/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PD_IPC_HEADER)
        return 0;
    pd_ipc_hdr_t h;
    if (pd_ipc_hdr_decode(data, &h) == 0 && h.len > PD_IPC_MAX_PAYLOAD)
        abort();
    pd_view_t p = pd_view(data + PD_IPC_HEADER, size - PD_IPC_HEADER);
    pd_vault_card_in_t in;
    pd_vault_card_t card;
    pd_vault_pan_t pan;
    pd_vault_reply_t reply;
    char a[PD_ID_MAX], b[PD_ID_MAX], key[PD_MSG_KEY_MAX], name[PD_MSG_NAME_MAX], principal[16],
        cred[PD_MSG_CRED_MAX], msg[256], sname[PD_MSG_SECRET_NAME_MAX + 1], stage[PD_MSG_STAGE_MAX + 1];
    pd_msg_secret_create_t create;
    pd_view_t v1, v2;
    int64_t n1;
    int code;
    /* every decoder either succeeds with NUL-terminated strings or fails cleanly */
    if (pd_msg_tokenize_dec(p, &in) == 0 && strlen(in.pan) >= sizeof(in.pan))
        abort();
    (void)pd_msg_card_dec(p, &card);
    (void)pd_msg_pan_dec(p, &pan);
    if (pd_msg_ref_dec(p, a, b) == 0 && (strlen(a) >= PD_ID_MAX || strlen(b) >= PD_ID_MAX))
        abort();
    if (pd_msg_kms_dec(p, key, &v1, &v2) == 0 && (v1.len > PD_MSG_CTX_MAX || v2.len > PD_MSG_ENV_MAX))
        abort();
    /* ENCRYPT_BATCH: a decoded batch has at most PD_VAULT_BATCH_MAX entries, each inside the payload */
    static pd_vault_batch_item_t items[PD_VAULT_BATCH_MAX];
    static pd_view_t envs[PD_VAULT_BATCH_MAX];
    size_t nb = 0;
    if (pd_msg_encrypt_batch_dec(p, key, items, &nb) == 0) {
        if (nb > PD_VAULT_BATCH_MAX || strlen(key) >= PD_MSG_KEY_MAX)
            abort();
        for (size_t i = 0; i < nb; i++)
            if (items[i].context.len > PD_MSG_CTX_MAX || items[i].context.p + items[i].context.len > p.p + p.len ||
                items[i].pt.p + items[i].pt.len > p.p + p.len)
                abort();
    }
    for (size_t want = 0; want <= 3; want++)
        if (pd_vault_batch_envelopes(p, envs, want) == 0)
            for (size_t i = 0; i < want; i++)
                if (envs[i].p + envs[i].len > p.p + p.len)
                    abort();
    (void)pd_msg_name_dec(p, name);
    /* the admin operations: a decoded key or name is never empty and fits its bound */
    if (pd_msg_key_dec(p, key) == 0 && (key[0] == '\0' || strlen(key) >= PD_MSG_KEY_MAX))
        abort();
    if (pd_msg_key_num_dec(p, key, &n1) == 0 && (key[0] == '\0' || strlen(key) >= PD_MSG_KEY_MAX))
        abort();
    if (pd_msg_secret_dec(p, sname) == 0 && (sname[0] == '\0' || strlen(sname) > PD_MSG_SECRET_NAME_MAX))
        abort();
    if (pd_msg_secret_stage_dec(p, sname, stage) == 0 && (sname[0] == '\0' || stage[0] == '\0'))
        abort();
    if (pd_msg_secret_put_dec(p, sname, &v1) == 0 && (v1.len == 0 || v1.len > PD_MSG_SECRET_VALUE_MAX))
        abort();
    if (pd_msg_secret_create_dec(p, &create) == 0 &&
        (create.name[0] == '\0' || strlen(create.exclude) > PD_MSG_EXCLUDE_MAX || strlen(create.url) > PD_MSG_URL_MAX))
        abort();
    (void)pd_msg_auth_dec(p, principal, cred);
    if (pd_msg_error_dec(p, &code, msg, sizeof(msg)) == 0 && code >= 0)
        abort();
    memset(&reply, 0, sizeof(reply));
    (void)pd_msg_data_dec(p, &reply);
    pd_vault_reply_free(&reply);
    return 0;
}
