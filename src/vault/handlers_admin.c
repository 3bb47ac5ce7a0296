/*
 * Admin operations (payctl): KMS management, secrets, audit verification. One
 * handler per message type; the dispatcher table in server.c says who may send each
 * and its size bounds. The typed fields are decoded here (a malformed payload is
 * PD_ERR_PROTOCOL: the peer is dropped); the values are checked here too, with a
 * message for the operator. Replies are a data message whose data is JSON.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "payd/json.h"
#include "vault/handlers.h"
#include "vault/rotation.h"
#include "vault/msg.h"

#define DECODE(expr)                                                                                                   \
    do {                                                                                                               \
        if ((expr) != 0)                                                                                               \
            return PD_ERR_PROTOCOL;                                                                                    \
    } while (0)

/* the reply JSON, written by fill, then sent as the data of a data reply (value: data2) */
typedef struct {
    pd_buf_t out, value;
    pd_jw_t w;
} reply_t;

static void
reply_init(reply_t *r)
{
    pd_buf_init(&r->out, PD_MSG_JSON_MAX - 64);
    pd_buf_init(&r->value, 8192);
    pd_jw_init(&r->w, &r->out);
}

/* sends the JSON written (when rc is 0) and frees the buffers */
static int
reply_finish(pd_hctx_t *h, reply_t *r, int rc)
{
    if (rc == 0 && (rc = pd_jw_finish(&r->w)) == 0) {
        rc = pd_msg_data_enc(h->reply, pd_buf_view(&r->out), pd_buf_view(&r->value), "", 0, 0);
        h->reply_secret = r->value.len > 0;
    }
    pd_buf_free(&r->out);
    pd_buf_free_secure(&r->value);
    return rc;
}

static int
no_payload(pd_hctx_t *h, const char *resource)
{
    if (h->payload.len != 0)
        return PD_ERR_PROTOCOL;
    snprintf(h->resource, sizeof(h->resource), "%s", resource);
    return 0;
}

/* --- KMS --- */

static int
kms_key(pd_hctx_t *h, const char *name, pd_kms_key_t *k)
{
    snprintf(h->resource, sizeof(h->resource), "%s", name);
    int rc = pd_kms_get(h->v, name, k);
    if (rc == PD_ERR_NOTFOUND)
        snprintf(h->msg, sizeof(h->msg), "no such key: %s", name);
    return rc;
}

static const char *
kms_error(int rc)
{
    switch (rc) {
    case PD_ERR_RANGE: return "value out of range";
    case PD_ERR_STATE: return "not allowed in the key's current state";
    case PD_ERR_KEY_DISABLED: return "the key is pending deletion or deleted";
    default: return pd_strerror(rc);
    }
}

/* runs a change on the key named in a {key} or {key, n} request and replies with the key */
typedef int (*kms_change_fn)(pd_vault_state_t *v, pd_kms_key_t *k, int64_t n);

static int
kms_change(pd_hctx_t *h, bool with_num, kms_change_fn fn, const char *range_msg)
{
    char key[PD_MSG_KEY_MAX];
    int64_t n = 0;
    pd_kms_key_t k;
    reply_t out;
    if (with_num)
        DECODE(pd_msg_key_num_dec(h->payload, key, &n));
    else
        DECODE(pd_msg_key_dec(h->payload, key));
    int rc = kms_key(h, key, &k);
    if (rc == 0 && fn != NULL && (rc = fn(h->v, &k, n)) != 0 && h->msg[0] == '\0')
        snprintf(h->msg, sizeof(h->msg), "%s", rc == PD_ERR_RANGE && range_msg != NULL ? range_msg : kms_error(rc));
    reply_init(&out);
    if (rc == 0)
        pd_kms_describe(&k, &out.w);
    return reply_finish(h, &out, rc);
}

static int rotate(pd_vault_state_t *v, pd_kms_key_t *k, int64_t n) { (void)n; return pd_kms_rotate(v, k); }
static int set_rotation(pd_vault_state_t *v, pd_kms_key_t *k, int64_t n) { return pd_kms_set_rotation(v, k, n); }
static int schedule(pd_vault_state_t *v, pd_kms_key_t *k, int64_t n) { return pd_kms_schedule_deletion(v, k, n); }
static int cancel(pd_vault_state_t *v, pd_kms_key_t *k, int64_t n) { (void)n; return pd_kms_cancel_deletion(v, k); }

static int
set_min_decrypt(pd_vault_state_t *v, pd_kms_key_t *k, int64_t n)
{
    if (n < 1 || n > UINT32_MAX)
        return PD_ERR_RANGE;
    return pd_kms_set_min_decrypt(v, k, (uint32_t)n);
}

int pd_h_kms_describe(pd_hctx_t *h) { return kms_change(h, false, NULL, NULL); }
int pd_h_kms_rotate(pd_hctx_t *h) { return kms_change(h, false, rotate, NULL); }
int pd_h_kms_cancel_deletion(pd_hctx_t *h) { return kms_change(h, false, cancel, NULL); }

int
pd_h_kms_set_rotation(pd_hctx_t *h)
{
    return kms_change(h, true, set_rotation, "the rotation period must be 90 to 2560 days (or 0 to disable)");
}

int
pd_h_kms_set_min_decrypt(pd_hctx_t *h)
{
    return kms_change(h, true, set_min_decrypt, "the minimum version must be 1 to the key's current version");
}

int
pd_h_kms_schedule_deletion(pd_hctx_t *h)
{
    return kms_change(h, true, schedule, "the deletion window must be 7 to 30 days");
}

int
pd_h_kms_list(pd_hctx_t *h)
{
    reply_t out;
    int rc = no_payload(h, "kms");
    if (rc != 0)
        return rc;
    reply_init(&out);
    return reply_finish(h, &out, pd_kms_list(h->v, &out.w));
}

int
pd_h_kms_create(pd_hctx_t *h)
{
    char alias[PD_MSG_KEY_MAX];
    int64_t days;
    pd_kms_key_t k;
    reply_t out;
    int rc;
    DECODE(pd_msg_key_num_dec(h->payload, alias, &days));
    snprintf(h->resource, sizeof(h->resource), "%s", alias);
    if (strncmp(alias, "alias/", 6) != 0 || strlen(alias) < 7 || strlen(alias) > 60) {
        snprintf(h->msg, sizeof(h->msg), "the alias must be alias/<name>, 7 to 60 characters");
        return PD_ERR_INVALID;
    }
    if (days != 0 && (days < 90 || days > 2560)) {
        snprintf(h->msg, sizeof(h->msg), "the rotation period must be 90 to 2560 days (or 0 to disable)");
        return PD_ERR_RANGE;
    }
    unsigned policy[PD_KMS_OP_COUNT] = {PD_PRINCIPAL_API, PD_PRINCIPAL_API, PD_PRINCIPAL_API,
                                        PD_PRINCIPAL_API | PD_PRINCIPAL_ADMIN | PD_PRINCIPAL_ROTATION,
                                        PD_PRINCIPAL_ADMIN};
    if ((rc = pd_kms_create(h->v, alias, days, policy, &k)) == PD_ERR_EXISTS)
        snprintf(h->msg, sizeof(h->msg), "%s already exists", alias);
    reply_init(&out);
    if (rc == 0)
        pd_kms_describe(&k, &out.w);
    return reply_finish(h, &out, rc);
}

int
pd_h_kms_rewrap(pd_hctx_t *h)
{
    char key[PD_MSG_KEY_MAX];
    int64_t batch, moved = 0, remaining = 0;
    pd_kms_key_t k;
    DECODE(pd_msg_key_num_dec(h->payload, key, &batch));
    int rc = kms_key(h, key, &k);
    if (rc != 0)
        return rc;
    if (batch < 1 || batch > 100000) {
        snprintf(h->msg, sizeof(h->msg), "the batch must be 1 to 100000");
        return PD_ERR_RANGE;
    }
    if ((rc = pd_kms_rewrap(h->v, &k, batch, &moved, &remaining)) != 0)
        return rc;
    return pd_msg_data_enc(h->reply, PD_VIEW_LIT("{}"), PD_VIEW_NULL, k.id, moved, remaining);
}

/* --- secrets --- */

static void
secret_resource(pd_hctx_t *h, const char *name)
{
    snprintf(h->resource, sizeof(h->resource), "secret:%s", name);
}

static int
not_found(pd_hctx_t *h, int rc, const char *what, const char *name)
{
    if (rc == PD_ERR_NOTFOUND)
        snprintf(h->msg, sizeof(h->msg), "no such %s: %s", what, name);
    return rc;
}

int
pd_h_secrets_list(pd_hctx_t *h)
{
    reply_t out;
    int rc = no_payload(h, "secrets");
    if (rc != 0)
        return rc;
    reply_init(&out);
    return reply_finish(h, &out, pd_secrets_list(h->v, &out.w));
}

int
pd_h_secrets_history(pd_hctx_t *h)
{
    char name[PD_MSG_SECRET_NAME_MAX + 1];
    reply_t out;
    DECODE(pd_msg_secret_dec(h->payload, name));
    secret_resource(h, name);
    reply_init(&out);
    return reply_finish(h, &out, not_found(h, pd_secrets_history(h->v, name, &out.w), "secret", name));
}

int
pd_h_secrets_get_stage(pd_hctx_t *h)
{
    char name[PD_MSG_SECRET_NAME_MAX + 1], stage[PD_MSG_STAGE_MAX + 1], vid[PD_ID_MAX];
    reply_t out;
    DECODE(pd_msg_secret_stage_dec(h->payload, name, stage));
    secret_resource(h, name);
    reply_init(&out);
    int rc = not_found(h, pd_secrets_get(h->v, name, stage, &out.value, vid, sizeof(vid)), "secret or stage", name);
    if (rc == 0) {
        pd_jw_obj_begin(&out.w);
        pd_jw_kstr(&out.w, "name", name);
        pd_jw_kstr(&out.w, "version_id", vid);
        pd_jw_obj_end(&out.w);
    }
    return reply_finish(h, &out, rc);
}

int
pd_h_secrets_put(pd_hctx_t *h)
{
    char name[PD_MSG_SECRET_NAME_MAX + 1], vid[PD_ID_MAX];
    pd_view_t value;
    reply_t out;
    DECODE(pd_msg_secret_put_dec(h->payload, name, &value));
    secret_resource(h, name);
    int rc = pd_secrets_put(h->v, name, value, vid, sizeof(vid));
    if (rc == PD_ERR_STATE)
        snprintf(h->msg, sizeof(h->msg), "a rotation of %s is in progress", name);
    else if (rc == PD_ERR_RANGE)
        snprintf(h->msg, sizeof(h->msg), "a secret value is 1 to 4096 bytes");
    reply_init(&out);
    if (rc == 0) {
        snprintf(h->changed, sizeof(h->changed), "%s", name);
        pd_jw_obj_begin(&out.w);
        pd_jw_kstr(&out.w, "name", name);
        pd_jw_kstr(&out.w, "version_id", vid);
        pd_jw_obj_end(&out.w);
    }
    return reply_finish(h, &out, rc);
}

int
pd_h_secrets_create(pd_hctx_t *h)
{
    pd_msg_secret_create_t m;
    reply_t out;
    int rc;
    DECODE(pd_msg_secret_create_dec(h->payload, &m));
    secret_resource(h, m.name);
    if (m.rotation_days < 0 || m.rotation_days > 3650) {
        snprintf(h->msg, sizeof(h->msg), "the rotation period must be 0 to 3650 days");
        return PD_ERR_RANGE;
    }
    if (m.length < 8 || m.length > 1024) {
        snprintf(h->msg, sizeof(h->msg), "the length must be 8 to 1024");
        return PD_ERR_RANGE;
    }
    if (m.handler[0] == '\0' || strcmp(m.handler, "random") == 0) {
        if (m.url[0] != '\0' || m.master[0] != '\0' || m.username[0] != '\0') {
            snprintf(h->msg, sizeof(h->msg), "url, master_secret and username are for the postgres and redis handlers");
            return PD_ERR_INVALID;
        }
        if ((rc = pd_secrets_create(h->v, m.name, m.rotation_days, m.length, m.exclude)) == PD_ERR_EXISTS)
            snprintf(h->msg, sizeof(h->msg), "secret %s already exists", m.name);
    } else {
        pd_rot_target_t t;
        memset(&t, 0, sizeof(t));
        snprintf(t.name, sizeof(t.name), "%s", m.name);
        snprintf(t.handler, sizeof(t.handler), "%s", m.handler);
        snprintf(t.url, sizeof(t.url), "%s", m.url);
        snprintf(t.master, sizeof(t.master), "%s", m.master);
        snprintf(t.username, sizeof(t.username), "%s", m.username);
        t.grace_s = m.grace_s;
        rc = pd_secrets_create_rotated(h->v, m.name, m.rotation_days, m.length, m.exclude, &t, h->msg, sizeof(h->msg));
    }
    reply_init(&out);
    if (rc == 0)
        rc = pd_secrets_history(h->v, m.name, &out.w);
    return reply_finish(h, &out, rc);
}

/* runs its own transactions (one per rotation step): the dispatcher runs it after the batch */
int
pd_h_secrets_rotate(pd_hctx_t *h)
{
    char name[PD_MSG_SECRET_NAME_MAX + 1];
    bool changed = false;
    reply_t out;
    DECODE(pd_msg_secret_dec(h->payload, name));
    secret_resource(h, name);
    int rc = not_found(h, pd_secrets_rotate(h->v, name, &changed), "secret", name);
    if (rc == PD_ERR_AUTH)
        snprintf(h->msg, sizeof(h->msg), "testSecret failed: the rotation was rolled back, CURRENT is unchanged%s%s",
                 pd_secrets_rotate_error()[0] != '\0' ? ": " : "", pd_secrets_rotate_error());
    else if (rc != 0 && rc != PD_ERR_NOTFOUND && pd_secrets_rotate_error()[0] != '\0')
        snprintf(h->msg, sizeof(h->msg), "%s", pd_secrets_rotate_error());
    if (changed)
        snprintf(h->changed, sizeof(h->changed), "%s", name);
    reply_init(&out);
    if (rc == 0)
        rc = pd_secrets_history(h->v, name, &out.w);
    return reply_finish(h, &out, rc);
}

/* --- audit --- */

int
pd_h_audit_verify(pd_hctx_t *h)
{
    pd_audit_report_t rep;
    reply_t out;
    int rc = no_payload(h, "audit_log");
    if (rc != 0)
        return rc;
    reply_init(&out);
    rc = pd_audit_verify(h->v->db, &rep);
    pd_jw_obj_begin(&out.w);
    pd_jw_kbool(&out.w, "intact", rc == 0);
    pd_jw_kint(&out.w, "records", rep.records);
    if (rc == PD_ERR_AUTH) {
        pd_jw_kint(&out.w, "first_bad_record", rep.first_bad_seq);
        pd_jw_kstr(&out.w, "problem", rep.problem);
        rc = 0; /* the verification itself worked; the report says what is broken */
    }
    pd_jw_obj_end(&out.w);
    return reply_finish(h, &out, rc);
}
