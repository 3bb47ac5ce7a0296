/* payctl commands of the vault: vault init, kms, secrets, audit. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cmd/payctl.h"
#include "payd/config.h"

/* value of "--name V" among the command's arguments, or NULL */
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

/* the n-th positional argument after the command (flags and their values skipped) */
static const char *
positional(int argc, char **argv, int n)
{
    int seen = 0;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0) {
            if (i + 1 < argc && strcmp(argv[i], "--reveal") != 0 && strcmp(argv[i], "--stdin") != 0)
                i++;
            continue;
        }
        if (seen++ == n)
            return argv[i];
    }
    return NULL;
}

/* a whole decimal number (no spaces, sign '+' or suffix); the vault checks the range */
static bool
parse_int(const char *s, long long *out)
{
    int64_t v;
    if (pd_config_parse_int(s, INT64_MIN, INT64_MAX, &v) != 0)
        return false;
    *out = (long long)v;
    return true;
}

/* runs an admin op with args and prints its JSON; returns the exit code */
static int
admin(payctl_t *ctx, const char *op, json_t *args)
{
    char *a = args ? json_dumps(args, JSON_COMPACT) : NULL;
    pd_vault_reply_t r;
    int rc = pd_vault_admin_sync(payctl_vault(ctx), op, pd_view_cstr(a ? a : "{}"), &r);
    free(a);
    json_decref(args);
    if (rc != 0) {
        int code = payctl_fail(ctx, "%s: %s", op, r.text[0] ? r.text : pd_strerror(rc));
        pd_vault_reply_free(&r);
        return code;
    }
    const char *s;
    if (pd_buf_cstr(&r.data, &s) == 0)
        payctl_print_json(ctx, s);
    pd_vault_reply_free(&r);
    return 0;
}

static int
need(payctl_t *ctx, const char *what, const char *usage)
{
    return payctl_fail(ctx, "missing %s (usage: %s)", what, usage);
}

static int
cmd_kms_list(payctl_t *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return admin(ctx, "kms.list", NULL);
}

static int
cmd_kms_key_op(payctl_t *ctx, int argc, char **argv, const char *op)
{
    const char *key = positional(argc, argv, 0);
    if (key == NULL)
        return need(ctx, "KEY", "payctl kms <command> alias/<name>|key_<id>");
    return admin(ctx, op, json_pack("{s:s}", "key", key));
}

static int cmd_kms_describe(payctl_t *c, int n, char **v) { return cmd_kms_key_op(c, n, v, "kms.describe"); }
static int cmd_kms_rotate(payctl_t *c, int n, char **v) { return cmd_kms_key_op(c, n, v, "kms.rotate"); }
static int cmd_kms_cancel(payctl_t *c, int n, char **v) { return cmd_kms_key_op(c, n, v, "kms.cancel_deletion"); }

static int
cmd_kms_key_num(payctl_t *ctx, int argc, char **argv, const char *op, const char *field, const char *usage)
{
    const char *key = positional(argc, argv, 0);
    long long n;
    if (key == NULL || !parse_int(positional(argc, argv, 1), &n))
        return need(ctx, "arguments", usage);
    return admin(ctx, op, json_pack("{s:s,s:I}", "key", key, field, n));
}

static int
cmd_kms_schedule(payctl_t *c, int n, char **v)
{
    return cmd_kms_key_num(c, n, v, "kms.schedule_deletion", "days", "payctl kms schedule-deletion KEY DAYS (7-30)");
}

static int
cmd_kms_set_rotation(payctl_t *c, int n, char **v)
{
    return cmd_kms_key_num(c, n, v, "kms.set_rotation", "days", "payctl kms set-rotation KEY DAYS (90-2560, 0 = off)");
}

static int
cmd_kms_min_decrypt(payctl_t *c, int n, char **v)
{
    return cmd_kms_key_num(c, n, v, "kms.set_min_decrypt", "version", "payctl kms set-min-decrypt KEY VERSION");
}

static int
cmd_kms_create(payctl_t *ctx, int argc, char **argv)
{
    const char *alias = positional(argc, argv, 0);
    long long days = 365;
    if (alias == NULL)
        return need(ctx, "ALIAS", "payctl kms create alias/<name> [--rotation-days N]");
    if (flag(argc, argv, "--rotation-days") && !parse_int(flag(argc, argv, "--rotation-days"), &days))
        return payctl_fail(ctx, "--rotation-days must be a number");
    return admin(ctx, "kms.create", json_pack("{s:s,s:I}", "alias", alias, "rotation_days", days));
}

static int
cmd_kms_rewrap(payctl_t *ctx, int argc, char **argv)
{
    const char *key = positional(argc, argv, 0);
    long long batch = 1000;
    int64_t total = 0;
    if (key == NULL)
        return need(ctx, "KEY", "payctl kms rewrap KEY [--batch N]");
    if (flag(argc, argv, "--batch") && (!parse_int(flag(argc, argv, "--batch"), &batch) || batch < 1))
        return payctl_fail(ctx, "--batch must be a positive number");
    /* batch after batch until nothing is left on an older version: resumable by design */
    for (;;) {
        json_t *args = json_pack("{s:s,s:I}", "key", key, "batch", batch);
        char *a = json_dumps(args, JSON_COMPACT);
        json_decref(args);
        pd_vault_reply_t r;
        int rc = pd_vault_admin_sync(payctl_vault(ctx), "kms.rewrap", pd_view_cstr(a), &r);
        free(a);
        if (rc != 0) {
            int code = payctl_fail(ctx, "rewrap of %s stopped after %lld: %s", key, (long long)total,
                                   r.text[0] ? r.text : pd_strerror(rc));
            pd_vault_reply_free(&r);
            return code;
        }
        total += r.n1;
        if (!ctx->json)
            printf("rewrap %s: moved %lld this batch, %lld total, %lld remaining\n", key, (long long)r.n1,
                   (long long)total, (long long)r.n2);
        int64_t remaining = r.n2, moved = r.n1;
        pd_vault_reply_free(&r);
        if (remaining == 0 || moved == 0)
            break;
    }
    if (ctx->json)
        printf("{\"key\":\"%s\",\"rewrapped\":%lld,\"remaining\":0}\n", key, (long long)total);
    else
        printf("rewrap %s complete: %lld ciphertexts now on the newest key version\n", key, (long long)total);
    return 0;
}

static int
cmd_secrets_list(payctl_t *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return admin(ctx, "secrets.list", NULL);
}

static int
cmd_secrets_history(payctl_t *ctx, int argc, char **argv)
{
    const char *name = positional(argc, argv, 0);
    if (name == NULL)
        return need(ctx, "NAME", "payctl secrets history NAME");
    return admin(ctx, "secrets.history", json_pack("{s:s}", "name", name));
}

static int
cmd_secrets_rotate(payctl_t *ctx, int argc, char **argv)
{
    const char *name = positional(argc, argv, 0);
    if (name == NULL)
        return need(ctx, "NAME", "payctl secrets rotate NAME");
    return admin(ctx, "secrets.rotate", json_pack("{s:s}", "name", name));
}

#define CREATE_USAGE                                                                                              \
    "payctl secrets create NAME [--rotation-days N] [--length N] [--exclude CHARS] "                             \
    "[--handler postgres|redis --url URL --master-secret NAME --username USER [--grace SECONDS]]"

static int
cmd_secrets_create(payctl_t *ctx, int argc, char **argv)
{
    const char *name = positional(argc, argv, 0), *exclude = flag(argc, argv, "--exclude");
    long long days = 30, length = 32, grace = 60;
    if (name == NULL)
        return need(ctx, "NAME", CREATE_USAGE);
    if ((flag(argc, argv, "--rotation-days") && !parse_int(flag(argc, argv, "--rotation-days"), &days)) ||
        (flag(argc, argv, "--length") && !parse_int(flag(argc, argv, "--length"), &length)) ||
        (flag(argc, argv, "--grace") && !parse_int(flag(argc, argv, "--grace"), &grace)))
        return payctl_fail(ctx, "--rotation-days, --length and --grace take numbers");
    json_t *args = json_pack("{s:s,s:I,s:I}", "name", name, "rotation_days", days, "length", length);
    if (exclude != NULL)
        json_object_set_new(args, "exclude", json_string(exclude));
    /* a handler secret: the login of a database or Redis user that the vault rotates */
    static const char *const target[][2] = {
        {"--handler", "handler"}, {"--url", "url"}, {"--master-secret", "master_secret"}, {"--username", "username"}};
    for (size_t i = 0; i < sizeof(target) / sizeof(target[0]); i++)
        if (flag(argc, argv, target[i][0]) != NULL)
            json_object_set_new(args, target[i][1], json_string(flag(argc, argv, target[i][0])));
    if (flag(argc, argv, "--grace") != NULL)
        json_object_set_new(args, "grace_s", json_integer(grace));
    return admin(ctx, "secrets.create", args);
}

static int
cmd_secrets_put(payctl_t *ctx, int argc, char **argv)
{
    const char *name = positional(argc, argv, 0);
    char value[4097];
    if (name == NULL)
        return need(ctx, "NAME", "payctl secrets put NAME < value");
    /* the value comes from stdin so it never shows in the process list or shell history */
    size_t n = fread(value, 1, sizeof(value) - 1, stdin);
    value[n] = '\0';
    if (n > 0 && value[n - 1] == '\n')
        value[--n] = '\0';
    if (n == 0)
        return payctl_fail(ctx, "no value on standard input");
    json_t *args = json_pack("{s:s,s:s}", "name", name, "value", value);
    OPENSSL_cleanse(value, sizeof(value));
    return admin(ctx, "secrets.put", args);
}

static int
cmd_secrets_get(payctl_t *ctx, int argc, char **argv)
{
    const char *name = positional(argc, argv, 0), *stage = flag(argc, argv, "--stage");
    if (name == NULL)
        return need(ctx, "NAME", "payctl secrets get NAME [--stage CURRENT|PENDING|PREVIOUS] [--reveal]");
    /* a secret is printed only to a terminal, or when asked for explicitly */
    if (!isatty(STDOUT_FILENO) && !has(argc, argv, "--reveal"))
        return payctl_fail(ctx, "refusing to print a secret to a pipe or file; add --reveal to do it anyway");
    json_t *args = json_pack("{s:s,s:s}", "name", name, "stage", stage ? stage : "CURRENT");
    char *a = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    pd_vault_reply_t r;
    int rc = pd_vault_admin_sync(payctl_vault(ctx), "secrets.get", pd_view_cstr(a), &r);
    free(a);
    if (rc != 0) {
        int code = payctl_fail(ctx, "%s", r.text[0] ? r.text : pd_strerror(rc));
        pd_vault_reply_free(&r);
        return code;
    }
    const char *meta;
    if (pd_buf_cstr(&r.data, &meta) != 0)
        meta = "{}";
    json_error_t e;
    json_t *o = json_loads(meta, 0, &e);
    if (ctx->json) {
        json_object_set_new(o, "value", json_stringn((const char *)r.data2.p, r.data2.len));
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    } else {
        printf("%.*s\n", (int)r.data2.len, (const char *)r.data2.p);
    }
    json_decref(o);
    pd_vault_reply_free(&r);
    return 0;
}

static int
cmd_audit_verify(payctl_t *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    pd_vault_reply_t r;
    int rc = pd_vault_admin_sync(payctl_vault(ctx), "audit.verify", PD_VIEW_LIT("{}"), &r);
    if (rc != 0) {
        int code = payctl_fail(ctx, "%s", r.text[0] ? r.text : pd_strerror(rc));
        pd_vault_reply_free(&r);
        return code;
    }
    const char *s;
    bool intact = pd_buf_cstr(&r.data, &s) == 0 && strstr(s, "\"intact\":true") != NULL;
    if (ctx->json) {
        printf("%s\n", s);
    } else {
        json_error_t e;
        json_t *o = json_loads(s, 0, &e);
        if (intact)
            printf("audit log intact: %lld records verified\n", (long long)json_integer_value(json_object_get(o, "records")));
        else
            printf("audit log BROKEN at record %lld: %s\n",
                   (long long)json_integer_value(json_object_get(o, "first_bad_record")),
                   json_string_value(json_object_get(o, "problem")));
        json_decref(o);
    }
    pd_vault_reply_free(&r);
    return intact ? 0 : 3;
}

/* split knowledge: the vault binary makes the root key and prints the shares */
static int
cmd_vault_init(payctl_t *ctx, int argc, char **argv)
{
    const char *shares = flag(argc, argv, "--shares"), *threshold = flag(argc, argv, "--threshold");
    char self[4096], bin[4200], dir[4200];
    long long n, t;
    if (!parse_int(shares, &n) || !parse_int(threshold, &t))
        return need(ctx, "--shares N --threshold T", "payctl vault init --shares 5 --threshold 3");
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0)
        return payctl_fail(ctx, "cannot find payd-vault");
    self[len] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    snprintf(bin, sizeof(bin), "%s/payd-vault", self);
    snprintf(dir, sizeof(dir), "%s/vault", ctx->data_dir);
    char ns[24], ts[24];
    snprintf(ns, sizeof(ns), "%lld", n);
    snprintf(ts, sizeof(ts), "%lld", t);
    pid_t pid = fork();
    if (pid == 0) {
        execl(bin, bin, "--data-dir", dir, "--init-shares", ns, "--threshold", ts, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return payctl_fail(ctx, "vault init failed");
    if (!ctx->json)
        fprintf(stderr, "payctl: give each share above to a different custodian; any %lld of them unseal the vault "
                        "(payd-vault --share-file FILE ...). They are not stored anywhere else.\n",
                t);
    return 0;
}

const payctl_cmd_t payctl_vault_cmds[] = {
    {"vault", "init", "--shares N --threshold T", "create a vault whose root key is split into N shares (any T unseal it)",
     cmd_vault_init},
    {"kms", "list", "", "list keys with their aliases, versions, rotation and policy", cmd_kms_list},
    {"kms", "describe", "KEY", "show one key", cmd_kms_describe},
    {"kms", "create", "alias/NAME [--rotation-days N]", "create a key", cmd_kms_create},
    {"kms", "rotate", "KEY", "add a new version and make it current", cmd_kms_rotate},
    {"kms", "set-rotation", "KEY DAYS", "automatic rotation period (90-2560 days, 0 = off)", cmd_kms_set_rotation},
    {"kms", "set-min-decrypt", "KEY VERSION", "retire versions below VERSION for decryption", cmd_kms_min_decrypt},
    {"kms", "schedule-deletion", "KEY DAYS", "delete the key after 7-30 days; all use fails meanwhile", cmd_kms_schedule},
    {"kms", "cancel-deletion", "KEY", "cancel a scheduled deletion", cmd_kms_cancel},
    {"kms", "rewrap", "KEY [--batch N]", "move every stored ciphertext of KEY to its newest version", cmd_kms_rewrap},
    {"secrets", "list", "", "list secrets", cmd_secrets_list},
    {"secrets", "get", "NAME [--stage S] [--reveal]", "print a secret (only to a terminal unless --reveal)",
     cmd_secrets_get},
    {"secrets", "put", "NAME < value", "store a new CURRENT version read from standard input", cmd_secrets_put},
    {"secrets", "create",
     "NAME [--rotation-days N] [--length N] [--exclude CHARS] [--handler postgres|redis --url URL "
     "--master-secret NAME --username USER [--grace SECONDS]]",
     "create a generated secret with automatic rotation (of a database or Redis login with --handler)",
     cmd_secrets_create},
    {"secrets", "rotate", "NAME", "rotate now (createSecret, setSecret, testSecret, finishSecret)", cmd_secrets_rotate},
    {"secrets", "history", "NAME", "versions and their stages", cmd_secrets_history},
    {"audit", "verify", "", "walk the vault's hash-chained audit log", cmd_audit_verify},
};
const size_t payctl_vault_ncmds = sizeof(payctl_vault_cmds) / sizeof(payctl_vault_cmds[0]);
