/* payctl commands of the payments side: merchants, API keys, ledger verification.
 * Every change is also recorded in payd's own hash-chained audit log. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cmd/payctl.h"
#include "payd/api.h"
#include "payd/payments.h"
#include "payd/audit.h"
#include "payd/config.h"
#include "payd/processor.h"
#include "payd/records.h"
#include "payd/time.h"

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

/* the API-key pepper, read from the vault as admin */
static size_t
pepper(payctl_t *ctx, uint8_t *out, size_t cap)
{
    pd_vault_reply_t r;
    int rc = pd_vault_admin_sync(payctl_vault(ctx), "secrets.get", PD_VIEW_LIT("{\"name\":\"payd/api-key-pepper\"}"), &r);
    if (rc != 0 || r.data2.len == 0 || r.data2.len > cap) {
        pd_vault_reply_free(&r);
        exit(payctl_fail(ctx, "cannot read the API-key pepper from the vault: %s", pd_strerror(rc)));
    }
    size_t n = r.data2.len;
    memcpy(out, r.data2.p, n);
    pd_vault_reply_free(&r);
    return n;
}

typedef struct {
    const char *action, *resource, *outcome;
} audit_t;

static int
write_audit(pd_db_t *tx, void *arg)
{
    audit_t *a = arg;
    pd_audit_chain_t chain;
    char origin[64];
    snprintf(origin, sizeof(origin), "payctl:uid=%d", (int)getuid());
    int r = pd_audit_load(tx, &chain);
    pd_audit_rec_t rec = {"admin", a->action, a->resource, a->outcome, origin, ""};
    return r != 0 ? r : pd_audit_append(tx, &chain, pd_unix_now(), &rec);
}

static void
audit(pd_store_t *s, const char *action, const char *resource, int rc)
{
    audit_t a = {action, resource, rc == 0 ? "success" : pd_strerror(rc)};
    if (pd_store_write_sync(s, write_audit, &a) != 0)
        fprintf(stderr, "payctl: warning: could not write the audit record\n");
}

static int
cmd_merchant_create(payctl_t *ctx, int argc, char **argv)
{
    const char *name = flag(argc, argv, "--name");
    uint8_t p[256];
    pd_merchant_keys_t k;
    if (name == NULL || name[0] == '\0' || strlen(name) > 200)
        return payctl_fail(ctx, "missing --name (usage: payctl merchant create --name NAME [--live])");
    bool live = has(argc, argv, "--live");
    size_t pl = pepper(ctx, p, sizeof(p));
    pd_store_t *s = payctl_store_open(ctx);
    int r = pd_api_create_merchant(s, p, pl, name, false, &k);
    pd_merchant_keys_t lk;
    memset(&lk, 0, sizeof(lk));
    if (r == 0 && live) {
        r = pd_api_create_key(s, p, pl, k.merchant_id, "secret", true, NULL, 0, lk.secret_key, sizeof(lk.secret_key),
                              lk.secret_key_id);
        if (r == 0)
            r = pd_api_create_key(s, p, pl, k.merchant_id, "publishable", true, NULL, 0, lk.publishable_key,
                                  sizeof(lk.publishable_key), lk.publishable_key_id);
    }
    OPENSSL_cleanse(p, sizeof(p));
    audit(s, "merchant.create", r == 0 ? k.merchant_id : name, r);
    pd_store_close(s);
    if (r != 0)
        return payctl_fail(ctx, "cannot create the merchant: %s", pd_strerror(r));
    json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "merchant_id", k.merchant_id, "name", name, "secret_key", k.secret_key,
                          "publishable_key", k.publishable_key);
    if (live) {
        json_object_set_new(o, "live_secret_key", json_string(lk.secret_key));
        json_object_set_new(o, "live_publishable_key", json_string(lk.publishable_key));
    }
    char *text = json_dumps(o, ctx->json ? JSON_COMPACT : JSON_INDENT(2));
    printf("%s\n", text);
    if (!ctx->json)
        fprintf(stderr, "payctl: the secret keys are shown only now; store them safely.\n");
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    json_decref(o);
    OPENSSL_cleanse(&k, sizeof(k));
    OPENSSL_cleanse(&lk, sizeof(lk));
    return 0;
}

static int
print_key(payctl_t *ctx, const char *id, const char *key, const pd_key_rec_t *rec)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:b,s:s}", "id", id, "key", key, "type", rec->kind, "livemode", rec->livemode,
                          "merchant_id", rec->merchant_id);
    if (rec->scopes[0])
        json_object_set_new(o, "scopes", json_string(rec->scopes));
    if (rec->expires_at)
        json_object_set_new(o, "expires_at", json_integer(rec->expires_at));
    char *text = json_dumps(o, ctx->json ? JSON_COMPACT : JSON_INDENT(2));
    printf("%s\n", text);
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    json_decref(o);
    return 0;
}

static int
cmd_keys_create(payctl_t *ctx, int argc, char **argv)
{
    const char *merchant = flag(argc, argv, "--merchant"), *type = flag(argc, argv, "--type"),
               *scopes = flag(argc, argv, "--scopes");
    if (merchant == NULL || type == NULL)
        return payctl_fail(ctx, "usage: payctl keys create --merchant ID --type secret|publishable|restricted "
                                "[--live] [--scopes payment_intents:write,refunds:read]");
    char why[600];
    if (strcmp(type, "restricted") == 0 && pd_api_scopes_check(scopes, why, sizeof(why)) != 0)
        return payctl_fail(ctx, "invalid --scopes: %s", why);
    if (strcmp(type, "restricted") != 0 && scopes != NULL)
        return payctl_fail(ctx, "--scopes is for restricted keys only (--type restricted)");
    uint8_t p[256];
    size_t pl = pepper(ctx, p, sizeof(p));
    pd_store_t *s = payctl_store_open(ctx);
    pd_merchant_rec_t m;
    int r = pd_merchant_get(pd_store_reader(s), merchant, &m);
    char key[80], id[PD_ID_MAX] = "";
    if (r == 0)
        r = pd_api_create_key(s, p, pl, merchant, type, has(argc, argv, "--live"), scopes, 0, key, sizeof(key), id);
    OPENSSL_cleanse(p, sizeof(p));
    audit(s, "api_key.create", r == 0 ? id : merchant, r);
    pd_key_rec_t rec;
    if (r == 0)
        r = pd_key_get(pd_store_reader(s), id, &rec);
    pd_store_close(s);
    if (r != 0)
        return payctl_fail(ctx, "cannot create the key: %s", r == PD_ERR_NOTFOUND ? "no such merchant" : pd_strerror(r));
    print_key(ctx, id, key, &rec);
    OPENSSL_cleanse(key, sizeof(key));
    return 0;
}

typedef struct {
    const char *id;
    int64_t when;
} revoke_t;

static int
write_revoke(pd_db_t *tx, void *arg)
{
    revoke_t *x = arg;
    return pd_key_revoke(tx, x->id, x->when);
}

static int
cmd_keys_revoke(payctl_t *ctx, int argc, char **argv)
{
    const char *id = argc > 1 ? argv[1] : NULL;
    if (id == NULL || id[0] == '-')
        return payctl_fail(ctx, "usage: payctl keys revoke KEY_ID");
    pd_store_t *s = payctl_store_open(ctx);
    revoke_t x = {id, pd_unix_now()};
    int r = pd_store_write_sync(s, write_revoke, &x);
    audit(s, "api_key.revoke", id, r);
    pd_store_close(s);
    if (r != 0)
        return payctl_fail(ctx, "cannot revoke %s: %s", id, r == PD_ERR_NOTFOUND ? "no such active key" : pd_strerror(r));
    /* the revocation moved the store's key epoch: with reads on the loop every payd thread
     * reads it per request; with reads off the loop (PostgreSQL) a thread per node rereads
     * it every 100 ms (docs/api-keys.md, "Revocation") */
    bool offloaded = ctx->store.backend == PD_STORE_POSTGRES || ctx->store.readers > 0;
    if (ctx->json)
        printf("{\"id\":\"%s\",\"revoked\":true}\n", id);
    else if (offloaded)
        printf("revoked %s: refused by every payd node on this database within 100 ms and one round trip\n", id);
    else
        printf("revoked %s: refused from the next request on, by every payd thread\n", id);
    return 0;
}

/* roll: a new key with the same type, mode and scopes; the old one expires after --expires-in seconds (default now) */
static int
cmd_keys_roll(payctl_t *ctx, int argc, char **argv)
{
    const char *id = argc > 1 ? argv[1] : NULL, *in = flag(argc, argv, "--expires-in");
    int64_t grace = 0;
    if (id == NULL || id[0] == '-')
        return payctl_fail(ctx, "usage: payctl keys roll KEY_ID [--expires-in SECONDS (0-604800)]");
    /* a grace period is a whole number of seconds: "10days" is refused, not read as 10 */
    if (in == NULL && has(argc, argv, "--expires-in"))
        return payctl_fail(ctx, "--expires-in needs a number of seconds (0 to 604800)");
    if (in != NULL && pd_config_parse_int(in, 0, 7 * 86400, &grace) != 0)
        return payctl_fail(ctx, "--expires-in takes a whole number of seconds from 0 to 604800 (7 days), not \"%s\"",
                           in);
    uint8_t p[256];
    size_t pl = pepper(ctx, p, sizeof(p));
    pd_store_t *s = payctl_store_open(ctx);
    pd_key_rec_t rec;
    char key[80], nid[PD_ID_MAX] = "";
    int r = pd_api_roll_key(s, p, pl, id, grace, key, sizeof(key), nid);
    OPENSSL_cleanse(p, sizeof(p));
    audit(s, "api_key.roll", id, r);
    if (r == 0)
        r = pd_key_get(pd_store_reader(s), nid, &rec);
    pd_store_close(s);
    if (r != 0)
        return payctl_fail(ctx, "cannot roll %s: %s", id,
                           r == PD_ERR_NOTFOUND ? "no such key"
                           : r == PD_ERR_STATE  ? "the key is revoked or expired, and a dead key stays dead (create a new key)"
                           : r == PD_ERR_INVALID ? "its scopes are not valid any more (create a new key)"
                                                 : pd_strerror(r));
    print_key(ctx, nid, key, &rec);
    OPENSSL_cleanse(key, sizeof(key));
    return 0;
}

static int
list_key(void *rec, void *arg)
{
    const pd_key_rec_t *k = rec;
    json_t *arr = arg;
    json_t *o = json_pack("{s:s,s:s,s:b,s:s,s:I}", "id", k->id, "type", k->kind, "livemode", k->livemode, "redacted",
                          k->prefix, "created", (json_int_t)k->created);
    json_object_set_new(o, "last4", json_string(k->last4));
    if (k->revoked_at)
        json_object_set_new(o, "revoked_at", json_integer(k->revoked_at));
    if (k->expires_at)
        json_object_set_new(o, "expires_at", json_integer(k->expires_at));
    json_array_append_new(arr, o);
    return 0;
}

static int
cmd_keys_list(payctl_t *ctx, int argc, char **argv)
{
    const char *merchant = flag(argc, argv, "--merchant");
    if (merchant == NULL)
        return payctl_fail(ctx, "usage: payctl keys list --merchant ID");
    pd_store_t *s = payctl_store_open(ctx);
    json_t *arr = json_array();
    int r = pd_key_list(pd_store_reader(s), merchant, list_key, arr);
    pd_store_close(s);
    if (r == 0) {
        char *text = json_dumps(arr, ctx->json ? JSON_COMPACT : JSON_INDENT(2));
        printf("%s\n", text);
        free(text);
    }
    json_decref(arr);
    return r == 0 ? 0 : payctl_fail(ctx, "cannot list keys: %s", pd_strerror(r));
}

/* the processor's record: the simulator's file (--simulator-db, default DATA_DIR/simulator.db) */
static pd_processor_t *
open_processor(payctl_t *ctx, int argc, char **argv)
{
    char path[4200];
    const char *db = flag(argc, argv, "--simulator-db");
    if (db == NULL)
        snprintf(path, sizeof(path), "%s/simulator.db", ctx->data_dir);
    else
        snprintf(path, sizeof(path), "%s", db);
    if (access(path, R_OK) != 0)
        exit(payctl_fail(ctx, "cannot read the processor's record %s (give --simulator-db PATH)", path));
    pd_processor_t *p = NULL;
    int r = pd_simulator_new(&p, path, 0);
    if (r != 0)
        exit(payctl_fail(ctx, "cannot open the processor's record %s: %s", path, pd_strerror(r)));
    return p;
}

/* --since: a duration back from now (90m, 24h, 7d), or Unix seconds; default 24h */
static int
parse_since(const char *v, int64_t *since)
{
    int64_t ms;
    char *end = NULL;
    if (v == NULL) {
        *since = pd_unix_now() - 86400;
        return 0;
    }
    if (pd_config_parse_ms(v, &ms) == 0 && strspn(v, "0123456789") != strlen(v)) {
        *since = pd_unix_now() - ms / 1000;
        return 0;
    }
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < 0 || n > pd_unix_now())
        return PD_ERR_INVALID;
    *since = n;
    return 0;
}

static void
print_reconcile(payctl_t *ctx, const pd_reconcile_report_t *rep, json_t *into)
{
    if (ctx->json || into != NULL) {
        json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I}", "compared", (json_int_t)rep->compared, "matched",
                              (json_int_t)rep->matched, "in_flight", (json_int_t)rep->in_flight, "mismatches",
                              (json_int_t)rep->mismatches, "repaired", (json_int_t)rep->repaired);
        json_t *arr = json_array();
        for (int i = 0; i < rep->nlines; i++)
            json_array_append_new(arr, json_string(rep->lines[i]));
        json_object_set_new(o, "details", arr);
        if (into != NULL) {
            json_object_set_new(into, "processor", o);
            return;
        }
        char *text = json_dumps(o, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
        json_decref(o);
        return;
    }
    printf("reconciled %lld charges with the processor: %lld match, %lld in flight, %lld mismatch(es), %lld repaired\n",
           (long long)rep->compared, (long long)rep->matched, (long long)rep->in_flight, (long long)rep->mismatches,
           (long long)rep->repaired);
    for (int i = 0; i < rep->nlines; i++)
        printf("  %s\n", rep->lines[i]);
}

/* payctl reconcile [--since D] [--report-only] [--simulator-db PATH]: exit 0 when
 * every mismatch (if any) was repaired, 3 when some remain, 1 when it could not run */
static int
cmd_reconcile(payctl_t *ctx, int argc, char **argv)
{
    int64_t since;
    if (parse_since(flag(argc, argv, "--since"), &since) != 0)
        return payctl_fail(ctx, "--since takes a duration back from now (90m, 24h, 7d) or Unix seconds");
    bool report_only = has(argc, argv, "--report-only");
    pd_processor_t *p = open_processor(ctx, argc, argv);
    pd_store_t *s = payctl_store_open(ctx);
    pd_reconcile_report_t rep;
    int r = pd_reconcile(s, p, since, PD_RECON_AUDIT | (report_only ? 0 : PD_RECON_REPAIR), &rep);
    pd_store_close(s);
    p->free(p);
    if (r != 0)
        return payctl_fail(ctx, "cannot reconcile: %s", pd_strerror(r));
    print_reconcile(ctx, &rep, NULL);
    return rep.mismatches == rep.repaired ? 0 : 3;
}

static int
cmd_ledger_verify(payctl_t *ctx, int argc, char **argv)
{
    pd_ledger_report_t rep;
    pd_reconcile_report_t prep;
    bool with_processor = has(argc, argv, "--with-processor");
    pd_processor_t *p = with_processor ? open_processor(ctx, argc, argv) : NULL;
    pd_store_t *s = payctl_store_open(ctx);
    int r = pd_ledger_verify(pd_store_reader(s), &rep);
    int pr = 0;
    if (p != NULL && (r == 0 || r == PD_ERR_STATE))
        pr = pd_reconcile(s, p, 0, 0, &prep); /* report only: a verification writes nothing */
    pd_store_close(s);
    if (p != NULL)
        p->free(p);
    if (r != 0 && r != PD_ERR_STATE)
        return payctl_fail(ctx, "cannot verify the ledger: %s", pd_strerror(r));
    if (pr != 0)
        return payctl_fail(ctx, "cannot compare with the processor: %s", pd_strerror(pr));
    bool agrees = p == NULL || prep.mismatches == 0;
    if (ctx->json) {
        json_t *o = json_pack("{s:b,s:I,s:I,s:i}", "ok", r == 0 && agrees, "entries", (json_int_t)rep.entries,
                              "charges", (json_int_t)rep.charges, "problems", rep.nproblems);
        json_t *arr = json_array();
        for (int i = 0; i < rep.nproblems && i < PD_LEDGER_MAX_PROBLEMS; i++)
            json_array_append_new(arr, json_string(rep.problems[i]));
        json_object_set_new(o, "details", arr);
        if (p != NULL)
            print_reconcile(ctx, &prep, o);
        char *text = json_dumps(o, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
        json_decref(o);
    } else {
        if (r == 0) {
            printf("ledger verified: %lld entries, %lld charges, every invariant holds\n", (long long)rep.entries,
                   (long long)rep.charges);
        } else {
            printf("ledger BROKEN: %d problem(s)\n", rep.nproblems);
            for (int i = 0; i < rep.nproblems && i < PD_LEDGER_MAX_PROBLEMS; i++)
                printf("  %s\n", rep.problems[i]);
        }
        if (p != NULL && agrees)
            printf("processor agrees: %lld charges compared, %lld in flight\n", (long long)prep.compared,
                   (long long)prep.in_flight);
        else if (p != NULL)
            print_reconcile(ctx, &prep, NULL);
    }
    return r == 0 && agrees ? 0 : 3;
}

static json_t *
merchant_json(const pd_merchant_rec_t *m)
{
    return json_pack("{s:s,s:s,s:I}", "id", m->id, "name", m->name, "created", (json_int_t)m->created);
}

static int
list_merchant(void *rec, void *arg)
{
    json_array_append_new(arg, merchant_json(rec));
    return 0;
}

static void
print_json(payctl_t *ctx, json_t *v)
{
    char *text = json_dumps(v, ctx->json ? JSON_COMPACT : JSON_INDENT(2));
    printf("%s\n", text);
    free(text);
}

static int
cmd_merchant_list(payctl_t *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    pd_store_t *s = payctl_store_open(ctx);
    json_t *arr = json_array();
    int r = pd_merchant_list(pd_store_reader(s), list_merchant, arr);
    pd_store_close(s);
    if (r == 0)
        print_json(ctx, arr);
    json_decref(arr);
    return r == 0 ? 0 : payctl_fail(ctx, "cannot list merchants: %s", pd_strerror(r));
}

/* the merchant and its keys (redacted) */
static int
cmd_merchant_show(payctl_t *ctx, int argc, char **argv)
{
    const char *id = argc > 1 ? argv[1] : NULL;
    if (id == NULL || id[0] == '-')
        return payctl_fail(ctx, "usage: payctl merchant show MERCHANT_ID");
    pd_store_t *s = payctl_store_open(ctx);
    pd_merchant_rec_t m;
    int r = pd_merchant_get(pd_store_reader(s), id, &m);
    json_t *o = NULL, *keys = json_array();
    if (r == 0)
        r = pd_key_list(pd_store_reader(s), id, list_key, keys);
    pd_store_close(s);
    if (r == 0) {
        o = merchant_json(&m);
        json_object_set_new(o, "keys", keys);
        print_json(ctx, o);
        json_decref(o);
    } else {
        json_decref(keys);
    }
    if (r != 0)
        return payctl_fail(ctx, "cannot show %s: %s", id, r == PD_ERR_NOTFOUND ? "no such merchant" : pd_strerror(r));
    return 0;
}

const payctl_cmd_t payctl_payments_cmds[] = {
    {"merchant", "list", "", "list every merchant", cmd_merchant_list},
    {"merchant", "show", "MERCHANT_ID", "a merchant and its API keys (redacted)", cmd_merchant_show},
    {"merchant", "create", "--name NAME [--live]", "create a merchant with test keys (and live keys with --live)",
     cmd_merchant_create},
    {"keys", "create", "--merchant ID --type secret|publishable|restricted [--live] [--scopes S]",
     "create an API key (shown once)", cmd_keys_create},
    {"keys", "revoke", "KEY_ID", "revoke an API key (refused from the next request on)", cmd_keys_revoke},
    {"keys", "roll", "KEY_ID [--expires-in SECONDS]", "replace a live key; the old one expires after the grace period",
     cmd_keys_roll},
    {"keys", "list", "--merchant ID", "list a merchant's keys (redacted)", cmd_keys_list},
    {"ledger", "verify", "[--with-processor [--simulator-db PATH]]",
     "recompute balances and check the ledger's invariants (and that the processor's record agrees)",
     cmd_ledger_verify},
    {"reconcile", "", "[--since 24h|UNIX_SECONDS] [--report-only] [--simulator-db PATH]",
     "compare charges and refunds with the processor's record; repair what the processor's record decides",
     cmd_reconcile},
};
const size_t payctl_payments_ncmds = sizeof(payctl_payments_cmds) / sizeof(payctl_payments_cmds[0]);
