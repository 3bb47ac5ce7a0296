/*
 * payctl stream: read, claim and inspect the transaction stream (payd/stream.h).
 * The Redis comes from --url, else payd's [stream] url, else its [cache] url (as payd's
 * [stream] url defaults to [cache] url); the partitions from --partitions, else
 * [stream] partitions (3 by default). Payloads are decrypted through the vault as the
 * "api" principal (the one alias/events lets decrypt): --credential FILE, default
 * DATA_DIR/vault/credentials/api.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cmd/payctl.h"
#include "payd/cache.h"
#include "payd/redis_link.h"
#include "payd/stream.h"

#define READ_BATCH 100
#define PAYLOAD_MAX (4u << 20)

static volatile sig_atomic_t g_stop;

static void
on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static const char *
flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static bool
has(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

typedef struct {
    pd_rlink_t *link;
    int64_t partitions;
} target_t;

static int
open_target(payctl_t *ctx, int argc, char **argv, target_t *t)
{
    const char *url = flag(argc, argv, "--url");
    const char *parts = flag(argc, argv, "--partitions");
    const pd_stream_config_t *sc = pd_stream_config();
    pd_stream_target_t st = {0};
    char err[512] = "";
    /* without --url: payd's own target ([stream] url, else [cache] url with its TLS CA
     * and password file) */
    if (url == NULL && pd_stream_target(&st, err, sizeof(err)) != 0)
        return payctl_fail(ctx, "%s", err);
    if (url == NULL && !st.on)
        return payctl_fail(ctx, "no Redis: give --url, or [stream] url or [cache] url (--config, --set or PAYD_*)");
    t->partitions = sc != NULL ? sc->partitions : 3;
    if (parts != NULL && pd_config_parse_int(parts, 1, 256, &t->partitions) != 0)
        return payctl_fail(ctx, "--partitions: \"%s\" is not a whole number from 1 to 256", parts);
    const pd_cache_config_t *cc = pd_cache_config();
    const char *ca = url != NULL ? (cc != NULL ? cc->tls_ca : NULL) : st.tls_ca;
    const char *pwfile = url != NULL ? (cc != NULL ? cc->password_file : NULL) : st.password_file;
    int r = pd_rlink_new(&t->link, url != NULL ? url : st.url, ca, pwfile, 5000, err, sizeof(err));
    if (r == 0 && (r = pd_rlink_connect(t->link, NULL, err, sizeof(err))) != 0) {
        pd_rlink_free(t->link);
        t->link = NULL;
    }
    return r == 0 ? 0 : payctl_fail(ctx, "cannot connect to the stream's Redis: %s", err);
}

static void
key_of(char *out, size_t cap, int64_t i)
{
    snprintf(out, cap, PD_STREAM_KEY_PREFIX "%lld", (long long)i);
}

static const redisReply *
field(const redisReply *fv, const char *name)
{
    for (size_t i = 0; fv != NULL && fv->type == REDIS_REPLY_ARRAY && i + 1 < fv->elements; i += 2)
        if (fv->element[i]->type == REDIS_REPLY_STRING && strcmp(fv->element[i]->str, name) == 0 &&
            fv->element[i + 1]->type == REDIS_REPLY_STRING)
            return fv->element[i + 1];
    return NULL;
}

/* prints one entry's event JSON (decrypted when it is an envelope); 0 or a message in err */
static int
print_entry(payctl_t *ctx, const redisReply *fv, char *err, size_t cap)
{
    const redisReply *id = field(fv, "id"), *m = field(fv, "merchant"), *p = field(fv, "payload");
    if (id == NULL || m == NULL || p == NULL) {
        snprintf(err, cap, "an entry without id, merchant or payload");
        return PD_ERR_INVALID;
    }
    if (p->len > 0 && p->str[0] == '{') { /* [stream] encrypt = false */
        printf("%.*s\n", (int)p->len, p->str);
        return 0;
    }
    if (p->len % 2 != 0 || p->len / 2 > PAYLOAD_MAX) {
        snprintf(err, cap, "event %.64s: the payload is not an envelope", id->str);
        return PD_ERR_INVALID;
    }
    /* as the "api" principal, which alias/events lets decrypt */
    pd_vault_client_t *v = payctl_vault_as(ctx, "api", 10000);
    if (v == NULL) {
        snprintf(err, cap, "no vault to decrypt with");
        return PD_ERR_UNAVAILABLE;
    }
    uint8_t *env = malloc(p->len / 2 + 1);
    char c[200];
    pd_vault_reply_t out;
    memset(&out, 0, sizeof(out));
    int r = env == NULL ? PD_ERR_NOMEM : pd_unhex(p->str, p->len, env);
    if (r == 0)
        r = pd_stream_context(c, sizeof(c), id->str, m->str);
    if (r == 0 && (r = pd_vault_decrypt_sync(v, pd_view_cstr(c), pd_view(env, p->len / 2), &out)) != 0)
        snprintf(err, cap, "event %.64s: the vault refused to decrypt it: %s%s%.200s", id->str, pd_strerror(r),
                 out.text[0] ? ": " : "", out.text);
    else if (r != 0)
        snprintf(err, cap, "event %.64s: the payload is not an envelope", id->str);
    if (r == 0)
        printf("%.*s\n", (int)out.data.len, (const char *)out.data.p);
    pd_vault_reply_free(&out);
    free(env);
    return r;
}

static void
ensure_group(target_t *t, const char *key, const char *group)
{
    redisReply *rep = NULL;
    const char *a[] = {"XGROUP", "CREATE", key, group, "0", "MKSTREAM"};
    if (pd_rlink_cmd(t->link, &rep, 6, a) == 0)
        freeReplyObject(rep); /* BUSYGROUP: it exists */
}

/* reads from one partition, from `from` (">" new entries, "0" this consumer's pending);
 * *printed counts what was printed and acknowledged */
static int
read_partition(payctl_t *ctx, target_t *t, const char *key, const char *group, const char *consumer,
               const char *from, int64_t want, int64_t *printed, bool *empty, char *err, size_t cap)
{
    char cnt[24];
    snprintf(cnt, sizeof(cnt), "%lld", (long long)(want < READ_BATCH ? want : READ_BATCH));
    const char *a[] = {"XREADGROUP", "GROUP", group, consumer, "COUNT", cnt, "STREAMS", key, from};
    redisReply *rep = NULL;
    int r = pd_rlink_cmd(t->link, &rep, 9, a);
    *empty = true;
    if (r != 0) {
        snprintf(err, cap, "XREADGROUP: %s", pd_strerror(r));
        return r;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, cap, "XREADGROUP: %.200s", rep->str);
        freeReplyObject(rep);
        return PD_ERR_PROTOCOL;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 && rep->element[0]->type == REDIS_REPLY_ARRAY &&
        rep->element[0]->elements == 2) {
        const redisReply *entries = rep->element[0]->element[1];
        for (size_t i = 0; r == 0 && entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
            const redisReply *e = entries->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING)
                continue;
            *empty = false;
            bool trimmed = e->element[1]->type != REDIS_REPLY_ARRAY; /* trimmed while pending: nothing to print */
            if (!trimmed && (r = print_entry(ctx, e->element[1], err, cap)) != 0)
                break;
            fflush(stdout);
            const char *x[] = {"XACK", key, group, e->element[0]->str};
            redisReply *ack = NULL;
            if ((r = pd_rlink_cmd(t->link, &ack, 4, x)) != 0)
                snprintf(err, cap, "XACK: %s", pd_strerror(r));
            freeReplyObject(ack);
            if (!trimmed)
                (*printed)++;
        }
    }
    freeReplyObject(rep);
    return r;
}

static int
cmd_read(payctl_t *ctx, int argc, char **argv)
{
    const char *group = flag(argc, argv, "--group"), *consumer = flag(argc, argv, "--consumer");
    const char *count = flag(argc, argv, "--count");
    bool follow = has(argc, argv, "--follow");
    int64_t want = INT64_MAX, printed = 0;
    if (group == NULL || consumer == NULL)
        return payctl_fail(ctx, "usage: payctl stream read --group G --consumer C [--count N] [--follow]");
    if (count != NULL && pd_config_parse_int(count, 1, 1000000000, &want) != 0)
        return payctl_fail(ctx, "--count: \"%s\" is not a whole number from 1 to 1000000000", count);
    target_t t;
    if (open_target(ctx, argc, argv, &t) != 0)
        return 1;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char err[600] = "", key[64];
    int r = 0;
    for (int64_t i = 0; i < t.partitions; i++) {
        key_of(key, sizeof(key), i);
        ensure_group(&t, key, group);
    }
    /* this consumer's pending entries first (claimed ones, or printed but not acknowledged), then new ones */
    for (int pass = 0; r == 0 && !g_stop && printed < want; pass = pass == 0 ? 1 : pass) {
        bool all_empty = true;
        for (int64_t i = 0; r == 0 && i < t.partitions && printed < want; i++) {
            bool empty;
            key_of(key, sizeof(key), i);
            do
                r = read_partition(ctx, &t, key, group, consumer, pass == 0 ? "0" : ">", want - printed, &printed,
                                   &empty, err, sizeof(err));
            while (r == 0 && !empty && printed < want);
            all_empty = all_empty && empty;
        }
        if (pass == 0) {
            pass = 1;
            continue;
        }
        if (all_empty && !follow)
            break;
        if (all_empty) {
            struct timespec ts = {0, 200 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    pd_rlink_free(t.link);
    return r == 0 ? 0 : payctl_fail(ctx, "%s", err);
}

static int
cmd_claim(payctl_t *ctx, int argc, char **argv)
{
    const char *group = flag(argc, argv, "--group"), *idle = flag(argc, argv, "--idle");
    const char *consumer = flag(argc, argv, "--consumer");
    int64_t idle_ms = 0, total = 0;
    if (group == NULL || idle == NULL)
        return payctl_fail(ctx, "usage: payctl stream claim --group G --idle 60s [--consumer C]");
    if (pd_config_parse_ms(idle, &idle_ms) != 0 || idle_ms < 0)
        return payctl_fail(ctx, "--idle: \"%s\" is not a duration (60s, 5m, 250ms)", idle);
    if (consumer == NULL)
        consumer = "payctl-claim";
    target_t t;
    if (open_target(ctx, argc, argv, &t) != 0)
        return 1;
    char key[64], ms[24], err[300] = "";
    int r = 0;
    snprintf(ms, sizeof(ms), "%lld", (long long)idle_ms);
    json_t *arr = json_array();
    for (int64_t i = 0; r == 0 && i < t.partitions; i++) {
        key_of(key, sizeof(key), i);
        char cursor[64] = "0-0";
        int64_t n = 0;
        do {
            const char *a[] = {"XAUTOCLAIM", key, group, consumer, ms, cursor, "COUNT", "100"};
            redisReply *rep = NULL;
            if ((r = pd_rlink_cmd(t.link, &rep, 8, a)) != 0) {
                snprintf(err, sizeof(err), "XAUTOCLAIM: %s", pd_strerror(r));
                break;
            }
            if (rep->type == REDIS_REPLY_ERROR) {
                bool nogroup = strncmp(rep->str, "NOGROUP", 7) == 0;
                snprintf(err, sizeof(err), "XAUTOCLAIM %s: %.200s", key, rep->str);
                freeReplyObject(rep);
                r = nogroup ? 0 : PD_ERR_PROTOCOL;
                break;
            }
            if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 || rep->element[0]->type != REDIS_REPLY_STRING) {
                snprintf(err, sizeof(err), "XAUTOCLAIM: an unexpected reply");
                freeReplyObject(rep);
                r = PD_ERR_PROTOCOL;
                break;
            }
            snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
            if (rep->element[1]->type == REDIS_REPLY_ARRAY)
                n += (int64_t)rep->element[1]->elements;
            freeReplyObject(rep);
        } while (strcmp(cursor, "0-0") != 0);
        json_array_append_new(arr, json_pack("{s:s,s:I}", "stream", key, "claimed", (json_int_t)n));
        total += n;
    }
    pd_rlink_free(t.link);
    if (r != 0) {
        json_decref(arr);
        return payctl_fail(ctx, "%s", err);
    }
    json_t *o = json_pack("{s:s,s:s,s:I,s:o}", "group", group, "consumer", consumer, "claimed", (json_int_t)total,
                          "partitions", arr);
    char *s = json_dumps(o, ctx->json ? JSON_COMPACT : JSON_INDENT(2));
    printf("%s\n", s);
    free(s);
    json_decref(o);
    return 0;
}

static const redisReply *
map_get(const redisReply *m, const char *name)
{
    for (size_t i = 0; m != NULL && m->type == REDIS_REPLY_ARRAY && i + 1 < m->elements; i += 2)
        if (m->element[i]->type == REDIS_REPLY_STRING && strcmp(m->element[i]->str, name) == 0)
            return m->element[i + 1];
    return NULL;
}

static json_t *
entry_id(const redisReply *e)
{
    return e != NULL && e->type == REDIS_REPLY_ARRAY && e->elements >= 1 && e->element[0]->type == REDIS_REPLY_STRING
               ? json_string(e->element[0]->str)
               : json_null();
}

static int
cmd_info(payctl_t *ctx, int argc, char **argv)
{
    target_t t;
    if (open_target(ctx, argc, argv, &t) != 0)
        return 1;
    json_t *arr = json_array();
    char key[64], err[300] = "";
    int r = 0;
    for (int64_t i = 0; r == 0 && i < t.partitions; i++) {
        key_of(key, sizeof(key), i);
        json_t *p = json_pack("{s:s,s:I,s:n,s:n,s:[]}", "stream", key, "length", (json_int_t)0, "first_id", "last_id",
                              "groups");
        const char *a[] = {"XINFO", "STREAM", key};
        redisReply *rep = NULL;
        if ((r = pd_rlink_cmd(t.link, &rep, 3, a)) != 0) {
            snprintf(err, sizeof(err), "XINFO: %s", pd_strerror(r));
            json_decref(p);
            break;
        }
        if (rep->type == REDIS_REPLY_ARRAY) {
            const redisReply *len = map_get(rep, "length");
            if (len != NULL && len->type == REDIS_REPLY_INTEGER)
                json_object_set_new(p, "length", json_integer(len->integer));
            json_object_set_new(p, "first_id", entry_id(map_get(rep, "first-entry")));
            json_object_set_new(p, "last_id", entry_id(map_get(rep, "last-entry")));
            freeReplyObject(rep);
            const char *g[] = {"XINFO", "GROUPS", key};
            if ((r = pd_rlink_cmd(t.link, &rep, 3, g)) != 0) {
                snprintf(err, sizeof(err), "XINFO: %s", pd_strerror(r));
                json_decref(p);
                break;
            }
            for (size_t k = 0; rep->type == REDIS_REPLY_ARRAY && k < rep->elements; k++) {
                const redisReply *name = map_get(rep->element[k], "name"), *pend = map_get(rep->element[k], "pending");
                if (name != NULL && name->type == REDIS_REPLY_STRING && pend != NULL && pend->type == REDIS_REPLY_INTEGER)
                    json_array_append_new(json_object_get(p, "groups"),
                                          json_pack("{s:s,s:I}", "name", name->str, "pending", (json_int_t)pend->integer));
            }
        } /* an error reply: no such stream yet (length 0) */
        freeReplyObject(rep);
        json_array_append_new(arr, p);
    }
    pd_rlink_free(t.link);
    if (r != 0) {
        json_decref(arr);
        return payctl_fail(ctx, "%s", err);
    }
    json_t *o = json_pack("{s:o}", "partitions", arr);
    char *s = json_dumps(o, ctx->json ? JSON_COMPACT : JSON_INDENT(2));
    printf("%s\n", s);
    free(s);
    json_decref(o);
    return 0;
}

const payctl_cmd_t payctl_stream_cmds[] = {
    {"stream", "read", "--group G --consumer C [--count N] [--follow] [--url URL] [--partitions N]",
     "print the transaction stream's events (one JSON per line, decrypted through the vault) and acknowledge them",
     cmd_read},
    {"stream", "claim", "--group G --idle 60s [--consumer C] [--url URL] [--partitions N]",
     "take over the entries a dead consumer left pending longer than --idle (XAUTOCLAIM)", cmd_claim},
    {"stream", "info", "[--url URL] [--partitions N]",
     "each partition's length, first and last id, and the pending count per group", cmd_info},
};
const size_t payctl_stream_ncmds = sizeof(payctl_stream_cmds) / sizeof(payctl_stream_cmds[0]);
