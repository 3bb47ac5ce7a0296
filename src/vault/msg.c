#include <string.h>

#include "vault/msg.h"

static int
done_w(pd_wire_w_t *w)
{
    return w->err;
}

int
pd_msg_auth_enc(pd_buf_t *b, const char *principal, const char *credential)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_str(&w, pd_view_cstr(principal));
    pd_wire_put_str(&w, pd_view_cstr(credential));
    return done_w(&w);
}

int
pd_msg_auth_dec(pd_view_t p, char principal[16], char credential[PD_MSG_CRED_MAX])
{
    pd_wire_r_t r;
    pd_wire_r_init(&r, p);
    pd_wire_get_cstr(&r, principal, 16);
    pd_wire_get_cstr(&r, credential, PD_MSG_CRED_MAX);
    return pd_wire_done(&r);
}

int
pd_msg_tokenize_enc(pd_buf_t *b, const pd_vault_card_in_t *in)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_str(&w, pd_view_cstr(in->merchant_id));
    pd_wire_put_str(&w, pd_view_cstr(in->pan));
    pd_wire_put_u8(&w, (uint8_t)in->exp_month);
    pd_wire_put_u16(&w, (uint16_t)in->exp_year);
    pd_wire_put_str(&w, pd_view_cstr(in->cvc));
    pd_wire_put_str(&w, pd_view_cstr(in->name));
    return done_w(&w);
}

int
pd_msg_tokenize_dec(pd_view_t p, pd_vault_card_in_t *in)
{
    pd_wire_r_t r;
    memset(in, 0, sizeof(*in));
    pd_wire_r_init(&r, p);
    pd_wire_get_cstr(&r, in->merchant_id, sizeof(in->merchant_id));
    pd_wire_get_cstr(&r, in->pan, sizeof(in->pan));
    in->exp_month = pd_wire_get_u8(&r);
    in->exp_year = pd_wire_get_u16(&r);
    pd_wire_get_cstr(&r, in->cvc, sizeof(in->cvc));
    pd_wire_get_cstr(&r, in->name, sizeof(in->name));
    return pd_wire_done(&r);
}

int
pd_msg_card_enc(pd_buf_t *b, const pd_vault_card_t *c)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_str(&w, pd_view_cstr(c->token));
    pd_wire_put_str(&w, pd_view_cstr(c->brand));
    pd_wire_put_str(&w, pd_view_cstr(c->funding));
    pd_wire_put_str(&w, pd_view_cstr(c->last4));
    pd_wire_put_str(&w, pd_view_cstr(c->bin));
    pd_wire_put_str(&w, pd_view_cstr(c->fingerprint));
    pd_wire_put_u8(&w, (uint8_t)c->exp_month);
    pd_wire_put_u16(&w, (uint16_t)c->exp_year);
    pd_wire_put_u8(&w, c->cvc_held ? 1 : 0);
    return done_w(&w);
}

int
pd_msg_card_dec(pd_view_t p, pd_vault_card_t *c)
{
    pd_wire_r_t r;
    memset(c, 0, sizeof(*c));
    pd_wire_r_init(&r, p);
    pd_wire_get_cstr(&r, c->token, sizeof(c->token));
    pd_wire_get_cstr(&r, c->brand, sizeof(c->brand));
    pd_wire_get_cstr(&r, c->funding, sizeof(c->funding));
    pd_wire_get_cstr(&r, c->last4, sizeof(c->last4));
    pd_wire_get_cstr(&r, c->bin, sizeof(c->bin));
    pd_wire_get_cstr(&r, c->fingerprint, sizeof(c->fingerprint));
    c->exp_month = pd_wire_get_u8(&r);
    c->exp_year = pd_wire_get_u16(&r);
    uint8_t held = pd_wire_get_u8(&r);
    if (held > 1 && r.err == 0)
        r.err = PD_ERR_INVALID;
    c->cvc_held = held == 1;
    return pd_wire_done(&r);
}

int
pd_msg_ref_enc(pd_buf_t *b, const char *merchant, const char *token)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_str(&w, pd_view_cstr(merchant));
    pd_wire_put_str(&w, pd_view_cstr(token));
    return done_w(&w);
}

int
pd_msg_ref_dec(pd_view_t p, char merchant[PD_ID_MAX], char token[PD_ID_MAX])
{
    pd_wire_r_t r;
    pd_wire_r_init(&r, p);
    pd_wire_get_cstr(&r, merchant, PD_ID_MAX);
    pd_wire_get_cstr(&r, token, PD_ID_MAX);
    return pd_wire_done(&r);
}

int
pd_msg_pan_enc(pd_buf_t *b, const pd_vault_pan_t *pan)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_str(&w, pd_view_cstr(pan->pan));
    pd_wire_put_u8(&w, (uint8_t)pan->exp_month);
    pd_wire_put_u16(&w, (uint16_t)pan->exp_year);
    pd_wire_put_str(&w, pd_view_cstr(pan->cvc));
    pd_wire_put_str(&w, pd_view_cstr(pan->name));
    return done_w(&w);
}

int
pd_msg_pan_dec(pd_view_t p, pd_vault_pan_t *pan)
{
    pd_wire_r_t r;
    memset(pan, 0, sizeof(*pan));
    pd_wire_r_init(&r, p);
    pd_wire_get_cstr(&r, pan->pan, sizeof(pan->pan));
    pan->exp_month = pd_wire_get_u8(&r);
    pan->exp_year = pd_wire_get_u16(&r);
    pd_wire_get_cstr(&r, pan->cvc, sizeof(pan->cvc));
    pd_wire_get_cstr(&r, pan->name, sizeof(pan->name));
    return pd_wire_done(&r);
}

int
pd_msg_kms_enc(pd_buf_t *b, const char *key, pd_view_t ctx, pd_view_t data)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_str(&w, pd_view_cstr(key));
    pd_wire_put_bytes(&w, ctx);
    pd_wire_put_bytes(&w, data);
    return done_w(&w);
}

int
pd_msg_kms_dec(pd_view_t p, char key[PD_MSG_KEY_MAX], pd_view_t *ctx, pd_view_t *data)
{
    pd_wire_r_t r;
    pd_wire_r_init(&r, p);
    pd_wire_get_cstr(&r, key, PD_MSG_KEY_MAX);
    *ctx = pd_wire_get_bytes(&r, PD_MSG_CTX_MAX);
    *data = pd_wire_get_bytes(&r, PD_MSG_ENV_MAX);
    return pd_wire_done(&r);
}

int
pd_msg_encrypt_batch_enc(pd_buf_t *b, const char *key, const pd_vault_batch_item_t *items, size_t n)
{
    pd_wire_w_t w;
    if (n > UINT16_MAX)
        return PD_ERR_TOOBIG;
    pd_wire_w_init(&w, b);
    pd_wire_put_str(&w, pd_view_cstr(key));
    pd_wire_put_u16(&w, (uint16_t)n);
    for (size_t i = 0; i < n; i++) {
        pd_wire_put_bytes(&w, items[i].context);
        pd_wire_put_bytes(&w, items[i].pt);
    }
    return done_w(&w);
}

int
pd_msg_encrypt_batch_dec(pd_view_t p, char key[PD_MSG_KEY_MAX], pd_vault_batch_item_t items[PD_VAULT_BATCH_MAX],
                         size_t *n)
{
    pd_wire_r_t r;
    pd_wire_r_init(&r, p);
    pd_wire_get_cstr(&r, key, PD_MSG_KEY_MAX);
    *n = pd_wire_get_u16(&r);
    if (r.err != 0)
        return PD_ERR_PROTOCOL;
    if (*n > PD_VAULT_BATCH_MAX)
        return PD_ERR_TOOBIG; /* not read further: the handler refuses the count */
    for (size_t i = 0; i < *n; i++) {
        items[i].context = pd_wire_get_bytes(&r, PD_MSG_CTX_MAX);
        items[i].pt = pd_wire_get_bytes(&r, PD_IPC_MAX_PAYLOAD); /* sizes: the handler's */
    }
    return pd_wire_done(&r) == 0 ? 0 : PD_ERR_PROTOCOL;
}

int
pd_msg_envs_enc(pd_buf_t *b, const pd_view_t *envs, size_t n)
{
    pd_wire_w_t w;
    if (n > UINT16_MAX)
        return PD_ERR_TOOBIG;
    pd_wire_w_init(&w, b);
    pd_wire_put_u16(&w, (uint16_t)n);
    for (size_t i = 0; i < n; i++)
        pd_wire_put_bytes(&w, envs[i]);
    return done_w(&w);
}

int
pd_vault_batch_envelopes(pd_view_t data, pd_view_t *envs, size_t want)
{
    pd_wire_r_t r;
    pd_wire_r_init(&r, data);
    if (pd_wire_get_u16(&r) != want || r.err != 0)
        return PD_ERR_PROTOCOL;
    for (size_t i = 0; i < want; i++)
        envs[i] = pd_wire_get_bytes(&r, PD_MSG_ENVS_MAX);
    return pd_wire_done(&r) == 0 ? 0 : PD_ERR_PROTOCOL;
}

int
pd_msg_data_enc(pd_buf_t *b, pd_view_t data, pd_view_t data2, const char *text, int64_t n1, int64_t n2)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_bytes(&w, data);
    pd_wire_put_bytes(&w, data2);
    pd_wire_put_str(&w, pd_view_cstr(text));
    pd_wire_put_u64(&w, (uint64_t)n1);
    pd_wire_put_u64(&w, (uint64_t)n2);
    return done_w(&w);
}

int
pd_msg_data_dec(pd_view_t p, pd_vault_reply_t *out)
{
    pd_wire_r_t r;
    pd_wire_r_init(&r, p);
    pd_view_t d = pd_wire_get_bytes(&r, PD_MSG_JSON_MAX), d2 = pd_wire_get_bytes(&r, PD_MSG_DATA_MAX);
    pd_wire_get_cstr(&r, out->text, sizeof(out->text));
    out->n1 = (int64_t)pd_wire_get_u64(&r);
    out->n2 = (int64_t)pd_wire_get_u64(&r);
    int rc = pd_wire_done(&r);
    if (rc != 0)
        return rc;
    pd_buf_init(&out->data, PD_MSG_JSON_MAX);
    pd_buf_init(&out->data2, PD_MSG_DATA_MAX);
    if ((rc = pd_buf_put(&out->data, d.p, d.len)) != 0 || (rc = pd_buf_put(&out->data2, d2.p, d2.len)) != 0)
        return rc;
    return 0;
}

int
pd_msg_name_enc(pd_buf_t *b, const char *name)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_str(&w, pd_view_cstr(name));
    return done_w(&w);
}

int
pd_msg_name_dec(pd_view_t p, char name[PD_MSG_NAME_MAX])
{
    pd_wire_r_t r;
    pd_wire_r_init(&r, p);
    pd_wire_get_cstr(&r, name, PD_MSG_NAME_MAX);
    return pd_wire_done(&r);
}

/* a string field that must not be empty */
static void
get_name(pd_wire_r_t *r, char *out, size_t cap)
{
    pd_wire_get_cstr(r, out, cap);
    if (r->err == 0 && out[0] == '\0')
        r->err = PD_ERR_INVALID;
}

int
pd_msg_key_enc(pd_buf_t *b, const char *key)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_str(&w, pd_view_cstr(key));
    return done_w(&w);
}

int
pd_msg_key_dec(pd_view_t p, char key[PD_MSG_KEY_MAX])
{
    pd_wire_r_t r;
    pd_wire_r_init(&r, p);
    get_name(&r, key, PD_MSG_KEY_MAX);
    return pd_wire_done(&r);
}

int
pd_msg_key_num_enc(pd_buf_t *b, const char *key, int64_t n)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_str(&w, pd_view_cstr(key));
    pd_wire_put_u64(&w, (uint64_t)n);
    return done_w(&w);
}

int
pd_msg_key_num_dec(pd_view_t p, char key[PD_MSG_KEY_MAX], int64_t *n)
{
    pd_wire_r_t r;
    pd_wire_r_init(&r, p);
    get_name(&r, key, PD_MSG_KEY_MAX);
    *n = (int64_t)pd_wire_get_u64(&r);
    return pd_wire_done(&r);
}

int
pd_msg_secret_enc(pd_buf_t *b, const char *name)
{
    return pd_msg_key_enc(b, name);
}

int
pd_msg_secret_dec(pd_view_t p, char name[PD_MSG_SECRET_NAME_MAX + 1])
{
    pd_wire_r_t r;
    pd_wire_r_init(&r, p);
    get_name(&r, name, PD_MSG_SECRET_NAME_MAX + 1);
    return pd_wire_done(&r);
}

int
pd_msg_secret_stage_enc(pd_buf_t *b, const char *name, const char *stage)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_str(&w, pd_view_cstr(name));
    pd_wire_put_str(&w, pd_view_cstr(stage));
    return done_w(&w);
}

int
pd_msg_secret_stage_dec(pd_view_t p, char name[PD_MSG_SECRET_NAME_MAX + 1], char stage[PD_MSG_STAGE_MAX + 1])
{
    pd_wire_r_t r;
    pd_wire_r_init(&r, p);
    get_name(&r, name, PD_MSG_SECRET_NAME_MAX + 1);
    get_name(&r, stage, PD_MSG_STAGE_MAX + 1);
    return pd_wire_done(&r);
}

int
pd_msg_secret_put_enc(pd_buf_t *b, const char *name, pd_view_t value)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_str(&w, pd_view_cstr(name));
    pd_wire_put_bytes(&w, value);
    return done_w(&w);
}

int
pd_msg_secret_put_dec(pd_view_t p, char name[PD_MSG_SECRET_NAME_MAX + 1], pd_view_t *value)
{
    pd_wire_r_t r;
    pd_wire_r_init(&r, p);
    get_name(&r, name, PD_MSG_SECRET_NAME_MAX + 1);
    *value = pd_wire_get_bytes(&r, PD_MSG_SECRET_VALUE_MAX);
    if (r.err == 0 && value->len == 0)
        r.err = PD_ERR_INVALID;
    return pd_wire_done(&r);
}

int
pd_msg_secret_create_enc(pd_buf_t *b, const pd_msg_secret_create_t *m)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_str(&w, pd_view_cstr(m->name));
    pd_wire_put_u64(&w, (uint64_t)m->rotation_days);
    pd_wire_put_u64(&w, (uint64_t)m->length);
    pd_wire_put_str(&w, pd_view_cstr(m->exclude));
    pd_wire_put_str(&w, pd_view_cstr(m->handler));
    pd_wire_put_str(&w, pd_view_cstr(m->url));
    pd_wire_put_str(&w, pd_view_cstr(m->master));
    pd_wire_put_str(&w, pd_view_cstr(m->username));
    pd_wire_put_u64(&w, (uint64_t)m->grace_s);
    return done_w(&w);
}

int
pd_msg_secret_create_dec(pd_view_t p, pd_msg_secret_create_t *m)
{
    pd_wire_r_t r;
    memset(m, 0, sizeof(*m));
    pd_wire_r_init(&r, p);
    get_name(&r, m->name, sizeof(m->name));
    m->rotation_days = (int64_t)pd_wire_get_u64(&r);
    m->length = (int64_t)pd_wire_get_u64(&r);
    pd_wire_get_cstr(&r, m->exclude, sizeof(m->exclude));
    pd_wire_get_cstr(&r, m->handler, sizeof(m->handler));
    pd_wire_get_cstr(&r, m->url, sizeof(m->url));
    pd_wire_get_cstr(&r, m->master, sizeof(m->master));
    pd_wire_get_cstr(&r, m->username, sizeof(m->username));
    m->grace_s = (int64_t)pd_wire_get_u64(&r);
    return pd_wire_done(&r);
}

int
pd_msg_error_enc(pd_buf_t *b, int code, const char *message)
{
    pd_wire_w_t w;
    pd_wire_w_init(&w, b);
    pd_wire_put_i32(&w, code);
    pd_wire_put_str(&w, pd_view_cstr(message));
    return done_w(&w);
}

int
pd_msg_error_dec(pd_view_t p, int *code, char *message, size_t cap)
{
    pd_wire_r_t r;
    pd_wire_r_init(&r, p);
    *code = pd_wire_get_i32(&r);
    pd_wire_get_cstr(&r, message, cap);
    int rc = pd_wire_done(&r);
    if (rc == 0 && *code >= 0)
        return PD_ERR_PROTOCOL; /* an error reply must carry an error */
    return rc;
}
