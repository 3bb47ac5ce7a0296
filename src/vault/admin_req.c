/*
 * The client side of the admin operations: payctl names an operation ("kms.rotate")
 * and gives its arguments as a small JSON object; this file maps the name to the
 * operation's message type and writes the arguments as that type's typed fields.
 * JSON is parsed here, in the client, never by the vault.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "payd/json.h"
#include "vault/msg.h"

typedef enum {
    A_NONE,          /* no payload */
    A_KEY,           /* key */
    A_KEY_NUM,       /* key, number */
    A_SECRET,        /* name */
    A_SECRET_STAGE,  /* name, stage */
    A_SECRET_PUT,    /* name, value */
    A_SECRET_CREATE, /* name, rotation_days, length, exclude, handler, url, master_secret, username, grace_s */
} shape_t;

typedef struct {
    const char *op;
    uint16_t type;
    shape_t shape;
    const char *key_field; /* A_KEY, A_KEY_NUM: "key" or "alias" */
    const char *num_field; /* A_KEY_NUM */
    bool num_required;
    int64_t num_default;
} admin_op_t;

static const admin_op_t ops[] = {
    {"kms.list", PD_MSG_KMS_LIST, A_NONE, NULL, NULL, false, 0},
    {"kms.describe", PD_MSG_KMS_DESCRIBE, A_KEY, "key", NULL, false, 0},
    {"kms.create", PD_MSG_KMS_CREATE, A_KEY_NUM, "alias", "rotation_days", false, 365},
    {"kms.rotate", PD_MSG_KMS_ROTATE, A_KEY, "key", NULL, false, 0},
    {"kms.set_rotation", PD_MSG_KMS_SET_ROTATION, A_KEY_NUM, "key", "days", true, 0},
    {"kms.set_min_decrypt", PD_MSG_KMS_SET_MIN_DECRYPT, A_KEY_NUM, "key", "version", true, 0},
    {"kms.schedule_deletion", PD_MSG_KMS_SCHEDULE_DELETION, A_KEY_NUM, "key", "days", true, 0},
    {"kms.cancel_deletion", PD_MSG_KMS_CANCEL_DELETION, A_KEY, "key", NULL, false, 0},
    {"kms.rewrap", PD_MSG_KMS_REWRAP, A_KEY_NUM, "key", "batch", false, 1000},
    {"secrets.list", PD_MSG_SECRETS_LIST, A_NONE, NULL, NULL, false, 0},
    {"secrets.history", PD_MSG_SECRETS_HISTORY, A_SECRET, NULL, NULL, false, 0},
    {"secrets.get", PD_MSG_SECRETS_GET_STAGE, A_SECRET_STAGE, NULL, NULL, false, 0},
    {"secrets.put", PD_MSG_SECRETS_PUT, A_SECRET_PUT, NULL, NULL, false, 0},
    {"secrets.create", PD_MSG_SECRETS_CREATE, A_SECRET_CREATE, NULL, NULL, false, 0},
    {"secrets.rotate", PD_MSG_SECRETS_ROTATE, A_SECRET, NULL, NULL, false, 0},
    {"audit.verify", PD_MSG_AUDIT_VERIFY, A_NONE, NULL, NULL, false, 0},
    {"backup.key", PD_MSG_BACKUP_KEY, A_NONE, NULL, NULL, false, 0},
    {"backup.snapshot", PD_MSG_BACKUP_SNAPSHOT, A_NONE, NULL, NULL, false, 0},
};

static const admin_op_t *
find_op(const char *op)
{
    for (size_t i = 0; op != NULL && i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].op, op) == 0)
            return &ops[i];
    return NULL;
}

uint16_t
pd_msg_admin_type(const char *op)
{
    const admin_op_t *o = find_op(op);
    return o != NULL ? o->type : 0;
}

typedef struct {
    const char *op;
    json_t *args;
    char *err;
    size_t errcap;
} args_t;

static int
bad(args_t *a, const char *field, const char *what)
{
    snprintf(a->err, a->errcap, "%s: argument %s %s", a->op, field, what);
    return PD_ERR_INVALID;
}

/* a string argument of 1..max bytes; absent: def (NULL: required) */
static int
str_arg(args_t *a, const char *field, size_t max, const char *def, const char **out)
{
    json_t *v = json_object_get(a->args, field);
    if (v == NULL) {
        if (def == NULL)
            return bad(a, field, "is missing");
        *out = def;
        return 0;
    }
    if (!json_is_string(v))
        return bad(a, field, "must be a string");
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (memchr(s, '\0', n) != NULL)
        return bad(a, field, "must not contain NUL");
    if (n > max || (def == NULL && n == 0)) {
        char what[64];
        snprintf(what, sizeof(what), "must be %s1 to %zu bytes", def != NULL ? "0 or " : "", max);
        return bad(a, field, what);
    }
    *out = s;
    return 0;
}

static int
num_arg(args_t *a, const char *field, bool required, int64_t def, int64_t *out)
{
    json_t *v = json_object_get(a->args, field);
    if (v == NULL) {
        if (required)
            return bad(a, field, "is missing");
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return bad(a, field, "must be an integer");
    *out = (int64_t)json_integer_value(v);
    return 0;
}

/* every argument given must be one the operation takes */
static int
only(args_t *a, const char *const *fields)
{
    const char *k;
    json_t *v;
    json_object_foreach(a->args, k, v)
    {
        bool known = false;
        for (size_t i = 0; fields[i] != NULL; i++)
            known = known || strcmp(k, fields[i]) == 0;
        if (!known)
            return bad(a, k, "is not one this operation takes");
    }
    return 0;
}

static int
encode(const admin_op_t *o, args_t *a, pd_buf_t *payload)
{
    const char *s1 = NULL, *s2 = NULL;
    int64_t n1 = 0;
    int r;
    switch (o->shape) {
    case A_NONE: {
        const char *const f[] = {NULL};
        return only(a, f);
    }
    case A_KEY: {
        const char *const f[] = {o->key_field, NULL};
        if ((r = only(a, f)) != 0 || (r = str_arg(a, o->key_field, PD_MSG_KEY_MAX - 1, NULL, &s1)) != 0)
            return r;
        return pd_msg_key_enc(payload, s1);
    }
    case A_KEY_NUM: {
        const char *const f[] = {o->key_field, o->num_field, NULL};
        if ((r = only(a, f)) != 0 || (r = str_arg(a, o->key_field, PD_MSG_KEY_MAX - 1, NULL, &s1)) != 0 ||
            (r = num_arg(a, o->num_field, o->num_required, o->num_default, &n1)) != 0)
            return r;
        return pd_msg_key_num_enc(payload, s1, n1);
    }
    case A_SECRET: {
        const char *const f[] = {"name", NULL};
        if ((r = only(a, f)) != 0 || (r = str_arg(a, "name", PD_MSG_SECRET_NAME_MAX, NULL, &s1)) != 0)
            return r;
        return pd_msg_secret_enc(payload, s1);
    }
    case A_SECRET_STAGE: {
        const char *const f[] = {"name", "stage", NULL};
        if ((r = only(a, f)) != 0 || (r = str_arg(a, "name", PD_MSG_SECRET_NAME_MAX, NULL, &s1)) != 0 ||
            (r = str_arg(a, "stage", PD_MSG_STAGE_MAX, "CURRENT", &s2)) != 0)
            return r;
        return pd_msg_secret_stage_enc(payload, s1, s2[0] != '\0' ? s2 : "CURRENT");
    }
    case A_SECRET_PUT: {
        const char *const f[] = {"name", "value", NULL};
        if ((r = only(a, f)) != 0 || (r = str_arg(a, "name", PD_MSG_SECRET_NAME_MAX, NULL, &s1)) != 0 ||
            (r = str_arg(a, "value", PD_MSG_SECRET_VALUE_MAX, NULL, &s2)) != 0)
            return r;
        return pd_msg_secret_put_enc(payload, s1, pd_view_cstr(s2));
    }
    case A_SECRET_CREATE: {
        const char *const f[] = {"name", "rotation_days", "length", "exclude", "handler", "url", "master_secret",
                                 "username", "grace_s", NULL};
        const char *h = NULL, *url = NULL, *master = NULL, *user = NULL;
        pd_msg_secret_create_t m;
        memset(&m, 0, sizeof(m));
        if ((r = only(a, f)) != 0 || (r = str_arg(a, "name", PD_MSG_SECRET_NAME_MAX, NULL, &s1)) != 0 ||
            (r = num_arg(a, "rotation_days", false, 30, &m.rotation_days)) != 0 ||
            (r = num_arg(a, "length", false, 32, &m.length)) != 0 ||
            (r = str_arg(a, "exclude", PD_MSG_EXCLUDE_MAX, "", &s2)) != 0 ||
            (r = str_arg(a, "handler", PD_MSG_HANDLER_MAX, "", &h)) != 0 ||
            (r = str_arg(a, "url", PD_MSG_URL_MAX, "", &url)) != 0 ||
            (r = str_arg(a, "master_secret", PD_MSG_SECRET_NAME_MAX, "", &master)) != 0 ||
            (r = str_arg(a, "username", PD_MSG_USER_MAX, "", &user)) != 0 ||
            (r = num_arg(a, "grace_s", false, 60, &m.grace_s)) != 0)
            return r;
        snprintf(m.name, sizeof(m.name), "%s", s1);
        snprintf(m.exclude, sizeof(m.exclude), "%s", s2);
        snprintf(m.handler, sizeof(m.handler), "%s", h);
        snprintf(m.url, sizeof(m.url), "%s", url);
        snprintf(m.master, sizeof(m.master), "%s", master);
        snprintf(m.username, sizeof(m.username), "%s", user);
        return pd_msg_secret_create_enc(payload, &m);
    }
    }
    return PD_ERR_INTERNAL;
}

int
pd_msg_admin_request(const char *op, pd_view_t args_json, uint16_t *type, pd_buf_t *payload, char *err, size_t errcap)
{
    char perr[160];
    const admin_op_t *o = find_op(op);
    if (o == NULL) {
        snprintf(err, errcap, "unknown admin operation: %s", op != NULL ? op : "(none)");
        return PD_ERR_INVALID;
    }
    json_t *args = args_json.len == 0 ? json_object() : pd_json_parse(args_json, 4, perr, sizeof(perr));
    if (args == NULL || !json_is_object(args)) {
        snprintf(err, errcap, "%s: the arguments must be a JSON object%s%s", op, args == NULL ? ": " : "",
                 args == NULL ? perr : "");
        json_decref(args);
        return PD_ERR_INVALID;
    }
    args_t a = {op, args, err, errcap};
    int r = encode(o, &a, payload);
    json_t *value = json_object_get(args, "value"); /* secrets.put: wipe jansson's copy */
    if (json_is_string(value)) {
        /* jansson owns the string and offers no mutable access to it: the one place payd
         * casts const away, to wipe a secret before the memory is freed */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"
        OPENSSL_cleanse((char *)json_string_value(value), json_string_length(value));
#pragma GCC diagnostic pop
    }
    json_decref(args);
    if (r == 0)
        *type = o->type;
    else if (r != PD_ERR_INVALID)
        snprintf(err, errcap, "%s: cannot encode the request: %s", op, pd_strerror(r));
    return r;
}
