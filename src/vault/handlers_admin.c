/* Admin operations (payctl): KMS management, secrets, audit verification. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "payd/json.h"
#include "vault/handlers.h"
#include "vault/msg.h"

static const char *
arg_str(json_t *args, const char *name)
{
    json_t *v = json_object_get(args, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool
arg_int(json_t *args, const char *name, int64_t *out)
{
    json_t *v = json_object_get(args, name);
    if (!json_is_integer(v))
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

static int
missing(pd_hctx_t *h, const char *what)
{
    snprintf(h->msg, sizeof(h->msg), "missing or invalid argument: %s", what);
    return PD_ERR_INVALID;
}

static int
kms_key(pd_hctx_t *h, json_t *args, pd_kms_key_t *k)
{
    const char *name = arg_str(args, "key");
    if (name == NULL)
        return missing(h, "key");
    snprintf(h->resource, sizeof(h->resource), "%s", name);
    int rc = pd_kms_get(h->v, name, k);
    if (rc == PD_ERR_NOTFOUND)
        snprintf(h->msg, sizeof(h->msg), "no such key: %s", name);
    return rc;
}

static const char *
range_msg(int rc, const char *op)
{
    if (rc == PD_ERR_RANGE) {
        if (strcmp(op, "kms.schedule_deletion") == 0)
            return "the deletion window must be 7 to 30 days";
        if (strcmp(op, "kms.set_rotation") == 0)
            return "the rotation period must be 90 to 2560 days (or 0 to disable)";
        return "value out of range";
    }
    if (rc == PD_ERR_STATE)
        return "not allowed in the key's current state";
    if (rc == PD_ERR_KEY_DISABLED)
        return "the key is pending deletion or deleted";
    return pd_strerror(rc);
}

static int
admin_kms(pd_hctx_t *h, const char *op, json_t *args, pd_jw_t *w)
{
    pd_kms_key_t k;
    int64_t n = 0;
    int rc;

    if (strcmp(op, "kms.list") == 0) {
        snprintf(h->resource, sizeof(h->resource), "kms");
        return pd_kms_list(h->v, w);
    }
    if (strcmp(op, "kms.create") == 0) {
        const char *alias = arg_str(args, "alias");
        if (alias == NULL || strncmp(alias, "alias/", 6) != 0 || strlen(alias) < 7 || strlen(alias) > 60)
            return missing(h, "alias (alias/<name>)");
        int64_t days = 365;
        if (json_object_get(args, "rotation_days") != NULL && !arg_int(args, "rotation_days", &days))
            return missing(h, "rotation_days");
        if (days != 0 && (days < 90 || days > 2560)) {
            snprintf(h->msg, sizeof(h->msg), "the rotation period must be 90 to 2560 days (or 0 to disable)");
            return PD_ERR_RANGE;
        }
        unsigned policy[PD_KMS_OP_COUNT] = {PD_PRINCIPAL_API, PD_PRINCIPAL_API, PD_PRINCIPAL_API,
                                            PD_PRINCIPAL_API | PD_PRINCIPAL_ADMIN | PD_PRINCIPAL_ROTATION,
                                            PD_PRINCIPAL_ADMIN};
        snprintf(h->resource, sizeof(h->resource), "%s", alias);
        if ((rc = pd_kms_create(h->v, alias, days, policy, &k)) == PD_ERR_EXISTS)
            snprintf(h->msg, sizeof(h->msg), "%s already exists", alias);
        if (rc == 0)
            pd_kms_describe(&k, w);
        return rc;
    }
    if ((rc = kms_key(h, args, &k)) != 0)
        return rc;
    if (strcmp(op, "kms.describe") == 0) {
        pd_kms_describe(&k, w);
        return 0;
    }
    if (strcmp(op, "kms.rotate") == 0)
        rc = pd_kms_rotate(h->v, &k);
    else if (strcmp(op, "kms.set_rotation") == 0)
        rc = arg_int(args, "days", &n) ? pd_kms_set_rotation(h->v, &k, n) : missing(h, "days");
    else if (strcmp(op, "kms.set_min_decrypt") == 0)
        rc = arg_int(args, "version", &n) ? pd_kms_set_min_decrypt(h->v, &k, (uint32_t)n) : missing(h, "version");
    else if (strcmp(op, "kms.schedule_deletion") == 0)
        rc = arg_int(args, "days", &n) ? pd_kms_schedule_deletion(h->v, &k, n) : missing(h, "days");
    else if (strcmp(op, "kms.cancel_deletion") == 0)
        rc = pd_kms_cancel_deletion(h->v, &k);
    else {
        snprintf(h->msg, sizeof(h->msg), "unknown admin operation: %s", op);
        return PD_ERR_INVALID;
    }
    if (rc != 0 && h->msg[0] == '\0')
        snprintf(h->msg, sizeof(h->msg), "%s", range_msg(rc, op));
    if (rc == 0)
        pd_kms_describe(&k, w);
    return rc;
}

static int
admin_secrets(pd_hctx_t *h, const char *op, json_t *args, pd_jw_t *w, pd_buf_t *value_out)
{
    const char *name = arg_str(args, "name");
    char vid[PD_ID_MAX];
    int rc;

    if (strcmp(op, "secrets.list") == 0) {
        snprintf(h->resource, sizeof(h->resource), "secrets");
        return pd_secrets_list(h->v, w);
    }
    if (name == NULL || name[0] == '\0' || strlen(name) > 120)
        return missing(h, "name");
    snprintf(h->resource, sizeof(h->resource), "secret:%s", name);
    if (strcmp(op, "secrets.history") == 0) {
        if ((rc = pd_secrets_history(h->v, name, w)) == PD_ERR_NOTFOUND)
            snprintf(h->msg, sizeof(h->msg), "no such secret: %s", name);
        return rc;
    }
    if (strcmp(op, "secrets.get") == 0) {
        const char *stage = arg_str(args, "stage");
        if ((rc = pd_secrets_get(h->v, name, stage ? stage : "CURRENT", value_out, vid, sizeof(vid))) == PD_ERR_NOTFOUND)
            snprintf(h->msg, sizeof(h->msg), "no such secret or stage: %s", name);
        if (rc == 0) {
            pd_jw_obj_begin(w);
            pd_jw_kstr(w, "name", name);
            pd_jw_kstr(w, "version_id", vid);
            pd_jw_obj_end(w);
        }
        return rc;
    }
    if (strcmp(op, "secrets.put") == 0) {
        const char *value = arg_str(args, "value");
        if (value == NULL)
            return missing(h, "value");
        if ((rc = pd_secrets_put(h->v, name, pd_view_cstr(value), vid, sizeof(vid))) == PD_ERR_STATE)
            snprintf(h->msg, sizeof(h->msg), "a rotation of %s is in progress", name);
        else if (rc == PD_ERR_RANGE)
            snprintf(h->msg, sizeof(h->msg), "a secret value is 1 to 4096 bytes");
        if (rc == 0) {
            snprintf(h->changed, sizeof(h->changed), "%s", name);
            pd_jw_obj_begin(w);
            pd_jw_kstr(w, "name", name);
            pd_jw_kstr(w, "version_id", vid);
            pd_jw_obj_end(w);
        }
        return rc;
    }
    if (strcmp(op, "secrets.create") == 0) {
        int64_t days = 30, length = 32;
        const char *exclude = arg_str(args, "exclude");
        if ((json_object_get(args, "rotation_days") && !arg_int(args, "rotation_days", &days)) || days < 0 ||
            days > 3650)
            return missing(h, "rotation_days");
        if ((json_object_get(args, "length") && !arg_int(args, "length", &length)) || length < 8 || length > 1024)
            return missing(h, "length (8..1024)");
        if ((rc = pd_secrets_create(h->v, name, days, length, exclude)) == PD_ERR_EXISTS)
            snprintf(h->msg, sizeof(h->msg), "secret %s already exists", name);
        if (rc == 0)
            return pd_secrets_history(h->v, name, w);
        return rc;
    }
    if (strcmp(op, "secrets.rotate") == 0) {
        bool changed = false;
        rc = pd_secrets_rotate(h->v, name, &changed);
        if (rc == PD_ERR_NOTFOUND)
            snprintf(h->msg, sizeof(h->msg), "no such secret: %s", name);
        else if (rc == PD_ERR_AUTH)
            snprintf(h->msg, sizeof(h->msg), "testSecret failed: the rotation was rolled back, CURRENT is unchanged");
        if (changed)
            snprintf(h->changed, sizeof(h->changed), "%s", name);
        if (rc == 0)
            return pd_secrets_history(h->v, name, w);
        return rc;
    }
    snprintf(h->msg, sizeof(h->msg), "unknown admin operation: %s", op);
    return PD_ERR_INVALID;
}

bool
pd_h_admin_own_txn(pd_view_t payload)
{
    char op[64];
    pd_view_t json;
    if (pd_msg_admin_dec(payload, op, &json) != 0)
        return false;
    return strcmp(op, "secrets.rotate") == 0;
}

int
pd_h_admin(pd_hctx_t *h)
{
    char op[64];
    pd_view_t json;
    pd_buf_t out, value;
    pd_jw_t w;
    json_t *args = NULL;
    int rc;

    if (pd_msg_admin_dec(h->payload, op, &json) != 0)
        return PD_ERR_PROTOCOL;
    if (json.len == 0) {
        args = json_object();
    } else {
        char err[160];
        args = pd_json_parse(json, 4, err, sizeof(err));
        if (args == NULL || !json_is_object(args)) {
            snprintf(h->msg, sizeof(h->msg), "arguments must be a JSON object: %s", args ? "" : err);
            json_decref(args);
            return PD_ERR_INVALID;
        }
    }
    pd_buf_init(&out, PD_MSG_JSON_MAX - 64);
    pd_buf_init(&value, 8192);
    pd_jw_init(&w, &out);
    if (strncmp(op, "kms.rewrap", 10) == 0 && op[10] == '\0') {
        pd_kms_key_t k;
        int64_t batch = 1000, moved = 0, remaining = 0;
        if ((rc = kms_key(h, args, &k)) == 0) {
            if (json_object_get(args, "batch") && (!arg_int(args, "batch", &batch) || batch < 1 || batch > 100000))
                rc = missing(h, "batch (1..100000)");
            else
                rc = pd_kms_rewrap(h->v, &k, batch, &moved, &remaining);
        }
        if (rc == 0)
            rc = pd_msg_data_enc(h->reply, PD_VIEW_LIT("{}"), PD_VIEW_NULL, k.id, moved, remaining);
        goto out;
    }
    if (strncmp(op, "kms.", 4) == 0) {
        rc = admin_kms(h, op, args, &w);
    } else if (strncmp(op, "secrets.", 8) == 0) {
        rc = admin_secrets(h, op, args, &w, &value);
    } else if (strcmp(op, "audit.verify") == 0) {
        pd_audit_report_t rep;
        snprintf(h->resource, sizeof(h->resource), "audit_log");
        rc = pd_audit_verify(h->v->db, &rep);
        pd_jw_obj_begin(&w);
        pd_jw_kbool(&w, "intact", rc == 0);
        pd_jw_kint(&w, "records", rep.records);
        if (rc == PD_ERR_AUTH) {
            pd_jw_kint(&w, "first_bad_record", rep.first_bad_seq);
            pd_jw_kstr(&w, "problem", rep.problem);
            rc = 0; /* the verification itself worked; the report says what is broken */
        }
        pd_jw_obj_end(&w);
    } else {
        snprintf(h->msg, sizeof(h->msg), "unknown admin operation: %s", op);
        rc = PD_ERR_INVALID;
    }
    if (rc == 0 && (rc = pd_jw_finish(&w)) == 0) {
        rc = pd_msg_data_enc(h->reply, pd_buf_view(&out), pd_buf_view(&value), "", 0, 0);
        h->reply_secret = value.len > 0;
    }
out:
    json_decref(args);
    pd_buf_free(&out);
    pd_buf_free_secure(&value);
    return rc;
}
