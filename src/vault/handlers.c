/*
 * Request handlers of the vault. Each decodes its message (PD_ERR_PROTOCOL on any
 * malformation, which drops the peer), does the work inside the caller's
 * transaction, and encodes its reply. Errors other than PD_ERR_PROTOCOL become an
 * error reply with msg.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "payd/json.h"
#include "vault/handlers.h"
#include "vault/msg.h"

#define DECODE(expr)                                                                                                   \
    do {                                                                                                               \
        if ((expr) != 0)                                                                                               \
            return PD_ERR_PROTOCOL;                                                                                    \
    } while (0)

static int
card_error(int rc, char *msg, size_t cap)
{
    switch (rc) {
    case PD_ERR_INVALID: snprintf(msg, cap, "invalid card number or CVC"); break;
    case PD_ERR_RANGE: snprintf(msg, cap, "invalid or past expiry date"); break;
    case PD_ERR_NOTFOUND: snprintf(msg, cap, "no such card"); break;
    default: snprintf(msg, cap, "%s", pd_strerror(rc));
    }
    return rc;
}

int
pd_h_tokenize(pd_hctx_t *h)
{
    pd_vault_card_in_t in;
    pd_vault_card_t out;
    int rc = pd_msg_tokenize_dec(h->payload, &in);
    if (rc != 0) {
        OPENSSL_cleanse(&in, sizeof(in));
        return PD_ERR_PROTOCOL;
    }
    snprintf(h->resource, sizeof(h->resource), "merchant:%s", in.merchant_id);
    rc = pd_cards_tokenize(h->v, &in, &out);
    OPENSSL_cleanse(&in, sizeof(in));
    if (rc != 0)
        return card_error(rc, h->msg, sizeof(h->msg));
    snprintf(h->resource, sizeof(h->resource), "%s", out.token);
    return pd_msg_card_enc(h->reply, &out);
}

int
pd_h_card_get(pd_hctx_t *h)
{
    char merchant[PD_ID_MAX], token[PD_ID_MAX];
    pd_vault_card_t out;
    DECODE(pd_msg_ref_dec(h->payload, merchant, token));
    snprintf(h->resource, sizeof(h->resource), "%s", token);
    int rc = pd_cards_get(h->v, merchant, token, &out);
    if (rc != 0)
        return card_error(rc, h->msg, sizeof(h->msg));
    return pd_msg_card_enc(h->reply, &out);
}

int
pd_h_detokenize(pd_hctx_t *h)
{
    char merchant[PD_ID_MAX], token[PD_ID_MAX];
    pd_vault_pan_t pan;
    DECODE(pd_msg_ref_dec(h->payload, merchant, token));
    snprintf(h->resource, sizeof(h->resource), "%s", token);
    int rc = pd_cards_detokenize(h->v, merchant, token, &pan);
    if (rc != 0)
        return card_error(rc, h->msg, sizeof(h->msg));
    rc = pd_msg_pan_enc(h->reply, &pan);
    pd_vault_pan_wipe(&pan);
    h->reply_secret = true;
    return rc;
}

int
pd_h_card_delete(pd_hctx_t *h)
{
    char merchant[PD_ID_MAX], token[PD_ID_MAX];
    DECODE(pd_msg_ref_dec(h->payload, merchant, token));
    snprintf(h->resource, sizeof(h->resource), "%s", token);
    int rc = pd_cards_delete(h->v, merchant, token);
    if (rc != 0)
        return card_error(rc, h->msg, sizeof(h->msg));
    return pd_msg_data_enc(h->reply, PD_VIEW_NULL, PD_VIEW_NULL, "deleted", 0, 0);
}

/* resolves the key named in a request and checks the principal's right to op */
static int
key_for(pd_hctx_t *h, const char *name, pd_kms_op_t op, pd_kms_key_t *k)
{
    snprintf(h->resource, sizeof(h->resource), "%s", name);
    int rc = pd_kms_get(h->v, name, k);
    if (rc == PD_ERR_NOTFOUND) {
        snprintf(h->msg, sizeof(h->msg), "no such key: %s", name);
        return rc;
    }
    if (rc == 0 && (rc = pd_kms_check(k, op, h->principal)) != 0)
        snprintf(h->msg, sizeof(h->msg), "%s", rc == PD_ERR_PERM ? "the key policy does not allow this principal"
                                                                  : "the key is pending deletion or deleted");
    return rc;
}

int
pd_h_encrypt(pd_hctx_t *h)
{
    char key[PD_MSG_KEY_MAX];
    pd_view_t ctx, pt;
    pd_kms_key_t k;
    pd_buf_t env;
    DECODE(pd_msg_kms_dec(h->payload, key, &ctx, &pt));
    if (pt.len > 4096) {
        snprintf(h->msg, sizeof(h->msg), "plaintext larger than 4096 bytes: use GenerateDataKey");
        return PD_ERR_TOOBIG;
    }
    int rc = key_for(h, key, PD_KMS_ENCRYPT, &k);
    if (rc != 0)
        return rc;
    pd_buf_init(&env, 8192);
    if ((rc = pd_kms_encrypt(h->v, &k, ctx, pt, &env)) == 0)
        rc = pd_msg_data_enc(h->reply, pd_buf_view(&env), PD_VIEW_NULL, k.id, k.current_version, 0);
    pd_buf_free(&env);
    return rc;
}

_Static_assert(PD_MSG_ENVS_MAX <= PD_MSG_JSON_MAX, "a batch's envelopes fit a data reply");
_Static_assert(PD_MSG_JSON_MAX + PD_MSG_DATA_MAX + 1024 <= PD_IPC_MAX_PAYLOAD, "a data reply fits a frame");
_Static_assert(PD_VAULT_BATCH_BYTES + PD_VAULT_BATCH_MAX * (4 + PD_MSG_CTX_MAX + 4) + PD_MSG_KEY_MAX + 4 <=
                   PD_IPC_MAX_PAYLOAD,
               "the largest batch request fits a frame");

/* Encrypt for each entry of the batch, all or nothing: a bound passed or a failure
 * refuses the whole batch, which is audited as one operation on the key. */
int
pd_h_encrypt_batch(pd_hctx_t *h)
{
    char key[PD_MSG_KEY_MAX];
    pd_vault_batch_item_t it[PD_VAULT_BATCH_MAX];
    pd_view_t envs[PD_VAULT_BATCH_MAX];
    size_t n = 0, total = 0;
    pd_kms_key_t k;
    int rc = pd_msg_encrypt_batch_dec(h->payload, key, it, &n);
    if (rc == PD_ERR_TOOBIG) {
        snprintf(h->msg, sizeof(h->msg), "a batch of %zu entries: at most %d", n, PD_VAULT_BATCH_MAX);
        return rc;
    }
    if (rc != 0)
        return PD_ERR_PROTOCOL;
    if (n == 0) {
        snprintf(h->msg, sizeof(h->msg), "an empty batch: at least one entry");
        return PD_ERR_INVALID;
    }
    /* no bound per entry but the total: an event of 20 KiB is one entry (Encrypt's 4096
     * bytes would leave such an event unpublished) */
    for (size_t i = 0; i < n; i++)
        total += it[i].pt.len;
    if (total > PD_VAULT_BATCH_BYTES) {
        snprintf(h->msg, sizeof(h->msg), "a batch of %zu plaintext bytes: at most %u in all", total,
                 PD_VAULT_BATCH_BYTES);
        return PD_ERR_TOOBIG;
    }
    if ((rc = key_for(h, key, PD_KMS_ENCRYPT, &k)) != 0)
        return rc;
    /* the audit record names the key and how many entries it sealed */
    size_t rl = strlen(h->resource);
    snprintf(h->resource + rl, sizeof(h->resource) - rl, " (%zu entries)", n);
    pd_buf_t env;
    pd_buf_init(&env, PD_MSG_ENVS_MAX);
    size_t off[PD_VAULT_BATCH_MAX];
    for (size_t i = 0; i < n && rc == 0; i++) {
        off[i] = env.len;
        rc = pd_kms_encrypt(h->v, &k, it[i].context, it[i].pt, &env);
    }
    /* views once the buffer has stopped growing */
    for (size_t i = 0; i < n && rc == 0; i++)
        envs[i] = pd_view(env.p + off[i], (i + 1 < n ? off[i + 1] : env.len) - off[i]);
    pd_buf_t list;
    pd_buf_init(&list, PD_MSG_ENVS_MAX);
    if (rc == 0 && (rc = pd_msg_envs_enc(&list, envs, n)) == 0)
        rc = pd_msg_data_enc(h->reply, pd_buf_view(&list), PD_VIEW_NULL, k.id, k.current_version, (int64_t)n);
    if (rc != 0 && h->msg[0] == '\0')
        snprintf(h->msg, sizeof(h->msg), "%s", pd_strerror(rc));
    pd_buf_free(&list);
    pd_buf_free(&env);
    return rc;
}

/* decrypt and reencrypt share the envelope check */
static int
open_env(pd_hctx_t *h, pd_view_t ctx, pd_view_t env, pd_kms_op_t op, pd_buf_t *pt, pd_kms_key_t *k)
{
    pd_env_header_t eh;
    int rc = pd_env_parse(env, &eh);
    if (rc == 0 && (rc = pd_kms_get_num(h->v, eh.key_num, k)) == 0) {
        snprintf(h->resource, sizeof(h->resource), "%s", k->id);
        if ((rc = pd_kms_check(k, op, h->principal)) == PD_ERR_PERM) {
            snprintf(h->msg, sizeof(h->msg), "the key policy does not allow this principal");
            return rc;
        }
    }
    if (rc == 0)
        rc = pd_kms_decrypt(h->v, ctx, env, pt, k);
    switch (rc) {
    case 0: break;
    case PD_ERR_AUTH: snprintf(h->msg, sizeof(h->msg), "the ciphertext or its encryption context does not match"); break;
    case PD_ERR_TRUNCATED: snprintf(h->msg, sizeof(h->msg), "truncated envelope"); break;
    case PD_ERR_KEY_VERSION: snprintf(h->msg, sizeof(h->msg), "unknown or retired key version"); break;
    case PD_ERR_KEY_DISABLED: snprintf(h->msg, sizeof(h->msg), "the key is pending deletion or deleted"); break;
    case PD_ERR_INVALID: snprintf(h->msg, sizeof(h->msg), "not an envelope"); break;
    case PD_ERR_NOTFOUND: snprintf(h->msg, sizeof(h->msg), "unknown key"); rc = PD_ERR_KEY_VERSION; break;
    default: snprintf(h->msg, sizeof(h->msg), "%s", pd_strerror(rc));
    }
    return rc;
}

int
pd_h_decrypt(pd_hctx_t *h)
{
    char key[PD_MSG_KEY_MAX];
    pd_view_t ctx, env;
    pd_kms_key_t k;
    pd_buf_t pt;
    DECODE(pd_msg_kms_dec(h->payload, key, &ctx, &env));
    pd_buf_init(&pt, PD_MSG_ENV_MAX);
    int rc = open_env(h, ctx, env, PD_KMS_DECRYPT, &pt, &k);
    if (rc == 0)
        rc = pd_msg_data_enc(h->reply, pd_buf_view(&pt), PD_VIEW_NULL, k.id, 0, 0);
    h->reply_secret = true;
    pd_buf_free_secure(&pt);
    return rc;
}

int
pd_h_reencrypt(pd_hctx_t *h)
{
    char key[PD_MSG_KEY_MAX];
    pd_view_t ctx, env;
    pd_kms_key_t k;
    pd_buf_t pt, out;
    DECODE(pd_msg_kms_dec(h->payload, key, &ctx, &env));
    pd_buf_init(&pt, 8192);
    pd_buf_init(&out, 8192);
    /* the plaintext stays inside the vault: the caller gets only the new envelope */
    int rc = open_env(h, ctx, env, PD_KMS_REENCRYPT, &pt, &k);
    if (rc == 0 && (rc = pd_kms_encrypt(h->v, &k, ctx, pd_buf_view(&pt), &out)) == 0)
        rc = pd_msg_data_enc(h->reply, pd_buf_view(&out), PD_VIEW_NULL, k.id, k.current_version, 0);
    pd_buf_free_secure(&pt);
    pd_buf_free(&out);
    return rc;
}

int
pd_h_generate_data_key(pd_hctx_t *h)
{
    char key[PD_MSG_KEY_MAX];
    pd_view_t ctx, unused;
    pd_kms_key_t k;
    uint8_t dk[PD_KEY_LEN];
    pd_buf_t env;
    DECODE(pd_msg_kms_dec(h->payload, key, &ctx, &unused));
    int rc = key_for(h, key, PD_KMS_GENERATE_DATA_KEY, &k);
    if (rc != 0)
        return rc;
    if (RAND_priv_bytes(dk, sizeof(dk)) != 1)
        return PD_ERR_CRYPTO;
    pd_buf_init(&env, 256);
    if ((rc = pd_kms_encrypt(h->v, &k, ctx, pd_view(dk, sizeof(dk)), &env)) == 0)
        rc = pd_msg_data_enc(h->reply, pd_view(dk, sizeof(dk)), pd_buf_view(&env), k.id, k.current_version, 0);
    h->reply_secret = true;
    OPENSSL_cleanse(dk, sizeof(dk));
    pd_buf_free(&env);
    return rc;
}

/* the secrets each principal may read with SECRET_GET */
static bool
may_read_secret(unsigned principal, const char *name)
{
    if (principal & (PD_PRINCIPAL_ADMIN | PD_PRINCIPAL_ROTATION))
        return true;
    return (principal & PD_PRINCIPAL_API) && strncmp(name, "payd/", 5) == 0;
}

int
pd_h_secret_get(pd_hctx_t *h)
{
    char name[PD_MSG_NAME_MAX], vid[PD_ID_MAX];
    pd_buf_t val;
    DECODE(pd_msg_name_dec(h->payload, name));
    snprintf(h->resource, sizeof(h->resource), "secret:%s", name);
    if (!may_read_secret(h->principal, name)) {
        snprintf(h->msg, sizeof(h->msg), "this principal may not read %s", name);
        return PD_ERR_PERM;
    }
    pd_buf_init(&val, 8192);
    int rc = pd_secrets_get(h->v, name, "CURRENT", &val, vid, sizeof(vid));
    if (rc == PD_ERR_NOTFOUND)
        snprintf(h->msg, sizeof(h->msg), "no such secret: %s", name);
    if (rc == 0)
        rc = pd_msg_data_enc(h->reply, pd_buf_view(&val), PD_VIEW_NULL, vid, 0, 0);
    h->reply_secret = true;
    pd_buf_free_secure(&val);
    return rc;
}
