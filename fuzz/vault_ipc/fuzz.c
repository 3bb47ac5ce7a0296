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
    char a[PD_ID_MAX], b[PD_ID_MAX], key[PD_MSG_KEY_MAX], name[PD_MSG_NAME_MAX], op[64], principal[16],
        cred[PD_MSG_CRED_MAX], msg[256];
    pd_view_t v1, v2;
    int code;
    /* every decoder either succeeds with NUL-terminated strings or fails cleanly */
    if (pd_msg_tokenize_dec(p, &in) == 0 && strlen(in.pan) >= sizeof(in.pan))
        abort();
    (void)pd_msg_card_dec(p, &card);
    (void)pd_msg_pan_dec(p, &pan);
    if (pd_msg_ref_dec(p, a, b) == 0 && (strlen(a) >= PD_ID_MAX || strlen(b) >= PD_ID_MAX))
        abort();
    if (pd_msg_kms_dec(p, key, &v1, &v2) == 0 && (v1.len > PD_MSG_CTX_MAX || v2.len > PD_MSG_DATA_MAX))
        abort();
    (void)pd_msg_name_dec(p, name);
    (void)pd_msg_admin_dec(p, op, &v1);
    (void)pd_msg_auth_dec(p, principal, cred);
    if (pd_msg_error_dec(p, &code, msg, sizeof(msg)) == 0 && code >= 0)
        abort();
    memset(&reply, 0, sizeof(reply));
    (void)pd_msg_data_dec(p, &reply);
    pd_vault_reply_free(&reply);
    return 0;
}
