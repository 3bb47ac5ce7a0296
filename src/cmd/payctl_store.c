/*
 * payctl store migrate --from sqlite:PATH --to URL: a dev install's payments store
 * copied into an empty PostgreSQL database (payd/store_copy.h), then verified: every
 * table's row count, and the ledger on both sides (the same entries and charges, every
 * invariant holding). The destination's password comes from [store] password_file
 * when set, else from the URL or libpq's own means.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cmd/payctl.h"
#include "payd/records.h"
#include "payd/store_copy.h"

static const char *
flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

/* opens one side (applying its migrations, refusing a foreign or newer database),
 * verifies its ledger and closes it */
static int
open_and_verify(payctl_t *ctx, const pd_store_config_t *c, const char *what, pd_ledger_report_t *rep)
{
    pd_store_t *s = NULL;
    int r = pd_store_open(&s, c, ctx->data_dir);
    if (r != 0)
        return payctl_fail(ctx, "cannot open the %s: %s (see the log line above)", what, pd_strerror(r));
    r = pd_ledger_verify(pd_store_reader(s), rep);
    pd_store_close(s);
    if (r == PD_ERR_STATE)
        return payctl_fail(ctx, "the %s's ledger does not verify: %s", what, rep->nproblems > 0 ? rep->problems[0] : "");
    if (r != 0)
        return payctl_fail(ctx, "cannot verify the %s's ledger: %s", what, pd_strerror(r));
    return 0;
}

static void
progress(void *arg, const char *table, int64_t rows, int verified)
{
    payctl_t *ctx = arg;
    if (!ctx->json)
        printf("  %-8s %-28s %lld rows\n", verified ? "verified" : "copied", table, (long long)rows);
    fflush(stdout);
}

static int
cmd_store_migrate(payctl_t *ctx, int argc, char **argv)
{
    const char *from = flag(argc, argv, "--from"), *to = flag(argc, argv, "--to");
    if (from == NULL || to == NULL || strncmp(from, "sqlite:", 7) != 0 || from[7] == '\0' || to[0] == '\0')
        return payctl_fail(ctx, "usage: payctl store migrate --from sqlite:PATH --to URL (a PostgreSQL URI or "
                                "conninfo string)");
    const char *path = from + 7;
    struct stat sb;
    errno = 0;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return payctl_fail(ctx, "--from: %s: %s", path, errno != 0 ? strerror(errno) : "not a file");

    pd_store_config_t src = ctx->store, dst = ctx->store;
    src.backend = PD_STORE_SQLITE;
    src.path = path;
    src.writers = 1;
    dst.backend = PD_STORE_POSTGRES;
    dst.url = to;
    dst.writers = 1;
    src.readers = dst.readers = 0;
    pd_ledger_report_t before, after;
    int r;
    if ((r = open_and_verify(ctx, &src, "source", &before)) != 0 ||
        (r = open_and_verify(ctx, &dst, "destination", &after)) != 0)
        return r;

    char *password = NULL, err[600] = "";
    if (dst.password_file != NULL && dst.password_file[0] != '\0' &&
        pd_store_read_password(dst.password_file, &password) != 0)
        return payctl_fail(ctx, "cannot read [store] password_file %s", dst.password_file);
    if (!ctx->json)
        printf("copying %s into PostgreSQL (one transaction)\n", path);
    pd_copy_report_t rep;
    r = pd_store_copy_to_postgres(path, to, password, progress, ctx, &rep, err, sizeof(err));
    if (password != NULL) {
        OPENSSL_cleanse(password, strlen(password));
        free(password);
    }
    if (r != 0)
        return payctl_fail(ctx, "migrate: %s; the destination is unchanged", err);
    if ((r = open_and_verify(ctx, &dst, "destination", &after)) != 0)
        return r;
    if (after.entries != before.entries || after.charges != before.charges)
        return payctl_fail(ctx, "the copy's ledger differs: %lld entries and %lld charges in the source, %lld and %lld "
                                "in PostgreSQL",
                           (long long)before.entries, (long long)before.charges, (long long)after.entries,
                           (long long)after.charges);
    if (ctx->json) {
        json_t *o = json_pack("{s:b,s:I,s:I,s:I,s:I}", "ok", 1, "tables", (json_int_t)rep.tables, "rows",
                              (json_int_t)rep.rows, "ledger_entries", (json_int_t)after.entries, "charges",
                              (json_int_t)after.charges);
        char *text = json_dumps(o, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
        json_decref(o);
    } else {
        printf("migrated: %lld tables, %lld rows; ledger verified on both sides (%lld entries, %lld charges)\n",
               (long long)rep.tables, (long long)rep.rows, (long long)after.entries, (long long)after.charges);
    }
    return 0;
}

const payctl_cmd_t payctl_store_cmds[] = {
    {"store", "migrate", "--from sqlite:PATH --to URL",
     "copy a payments store from SQLite into an empty PostgreSQL database and verify the copy", cmd_store_migrate},
};
const size_t payctl_store_ncmds = sizeof(payctl_store_cmds) / sizeof(payctl_store_cmds[0]);
