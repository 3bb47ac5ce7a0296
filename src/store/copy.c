/*
 * SQLite → PostgreSQL copy of the payments store (see payd/store_copy.h).
 *
 * Works on the raw connections (sqlite3, libpq) rather than pd_db: the table and
 * column names are read from the source at run time, and COPY has no equivalent in
 * the portable interface. Values keep their SQLite storage class: NULL, INTEGER and
 * REAL as numbers, TEXT escaped for COPY's text format, BLOB as bytea hex.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "payd/buf.h"
#include "payd/store_copy.h"

#define MAX_TABLES 64
#define MAX_COLS 64
#define NAME_MAX_LEN 64
#define FLUSH_AT (256 * 1024)
#define COPY_BUF_MAX ((size_t)64 << 20) /* one row: a few MiB of event JSON at most */

typedef struct {
    char name[NAME_MAX_LEN];
    char cols[MAX_COLS][NAME_MAX_LEN];
    int ncols;
    int64_t rows;
} table_t;

typedef struct {
    sqlite3 *src;
    PGconn *dst;
    table_t t[MAX_TABLES];
    int nt;
    char *err;
    size_t cap;
} copy_t;

static int fail(copy_t *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(copy_t *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->cap, fmt, ap);
    va_end(ap);
    return rc;
}

/* libpq's message on one line */
static const char *
pg_msg(PGconn *conn, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", PQerrorMessage(conn));
    for (char *p = buf; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = (p[1] == '\0') ? '\0' : ' ';
    return buf;
}

/* names from the schema: identifiers payd itself created ([a-z0-9_]); anything else
 * is refused rather than quoted */
static bool
plain_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static int
load_tables(copy_t *c)
{
    sqlite3_stmt *st = NULL;
    /* the cluster's tables (leases, heartbeats) are the running nodes' state, not the
     * store's data: the PostgreSQL nodes register themselves (docs/cluster.md) */
    int r = sqlite3_prepare_v2(c->src,
                               "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                               "AND name NOT IN ('schema_version', 'leases', 'cluster_nodes') ORDER BY rowid",
                               -1, &st, NULL);
    if (r != SQLITE_OK)
        return fail(c, PD_ERR_IO, "cannot read the source's tables: %s", sqlite3_errmsg(c->src));
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (c->nt == MAX_TABLES || name == NULL || !plain_name(name)) {
            sqlite3_finalize(st);
            return fail(c, PD_ERR_STATE, "the source has an unexpected table \"%.60s\"", name ? name : "");
        }
        snprintf(c->t[c->nt++].name, NAME_MAX_LEN, "%s", name);
    }
    sqlite3_finalize(st);
    if (r != SQLITE_DONE)
        return fail(c, PD_ERR_IO, "cannot read the source's tables: %s", sqlite3_errmsg(c->src));
    for (int i = 0; i < c->nt; i++) {
        char sql[160];
        snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", c->t[i].name);
        if (sqlite3_prepare_v2(c->src, sql, -1, &st, NULL) != SQLITE_OK)
            return fail(c, PD_ERR_IO, "%s: cannot read its columns: %s", c->t[i].name, sqlite3_errmsg(c->src));
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
            const char *col = (const char *)sqlite3_column_text(st, 1);
            if (c->t[i].ncols == MAX_COLS || col == NULL || !plain_name(col)) {
                sqlite3_finalize(st);
                return fail(c, PD_ERR_STATE, "%s: unexpected column \"%.60s\"", c->t[i].name, col ? col : "");
            }
            snprintf(c->t[i].cols[c->t[i].ncols++], NAME_MAX_LEN, "%s", col);
        }
        sqlite3_finalize(st);
        if (r != SQLITE_DONE)
            return fail(c, PD_ERR_IO, "%s: cannot read its columns: %s", c->t[i].name, sqlite3_errmsg(c->src));
    }
    return 0;
}

/* one statement on the destination; its single value (if any) into out */
static int
pg_exec(copy_t *c, const char *sql, ExecStatusType want, char *out, size_t outcap)
{
    char msg[400];
    PGresult *res = PQexec(c->dst, sql);
    int r = 0;
    if (PQresultStatus(res) != want) {
        snprintf(c->err, c->cap, "PostgreSQL: %s", pg_msg(c->dst, msg, sizeof(msg)));
        r = PQstatus(c->dst) == CONNECTION_OK ? PD_ERR_STATE : PD_ERR_UNAVAILABLE;
    } else if (out != NULL) {
        snprintf(out, outcap, "%s", PQntuples(res) > 0 && PQnfields(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    }
    PQclear(res);
    return r;
}

/* tables whose rows the migrations themselves insert (schema.c): in a fresh database
 * they hold the seed, which the source's rows replace. A migration that seeds another
 * table makes integration/pg_migrate fail until it is named here. */
static const char *const seeded[] = {"api_key_epoch"};

static bool
is_seeded(const char *table)
{
    for (size_t i = 0; i < sizeof(seeded) / sizeof(seeded[0]); i++)
        if (strcmp(seeded[i], table) == 0)
            return true;
    return false;
}

static int
destination_empty(copy_t *c)
{
    for (int i = 0; i < c->nt; i++) {
        if (is_seeded(c->t[i].name))
            continue;
        char sql[200], v[8];
        snprintf(sql, sizeof(sql), "SELECT EXISTS (SELECT 1 FROM %s)", c->t[i].name);
        int r = pg_exec(c, sql, PGRES_TUPLES_OK, v, sizeof(v));
        if (r != 0)
            return r;
        if (strcmp(v, "t") == 0)
            return fail(c, PD_ERR_STATE, "the destination is not empty: table %s has rows (migrate copies into an "
                                         "empty database only)", c->t[i].name);
    }
    return 0;
}

/* COPY's text format: backslash, newline, carriage return and tab escaped */
static int
put_text(pd_buf_t *b, const unsigned char *s, int n)
{
    int r = 0;
    for (int i = 0; i < n && r == 0; i++) {
        switch (s[i]) {
        case '\\': r = pd_buf_put(b, "\\\\", 2); break;
        case '\n': r = pd_buf_put(b, "\\n", 2); break;
        case '\r': r = pd_buf_put(b, "\\r", 2); break;
        case '\t': r = pd_buf_put(b, "\\t", 2); break;
        default: r = pd_buf_put_byte(b, s[i]); break;
        }
    }
    return r;
}

static int
put_value(pd_buf_t *b, sqlite3_stmt *st, int col)
{
    static const char hex[] = "0123456789abcdef";
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_NULL: return pd_buf_put(b, "\\N", 2);
    case SQLITE_INTEGER: return pd_buf_printf(b, "%" PRId64, (int64_t)sqlite3_column_int64(st, col));
    case SQLITE_FLOAT: return pd_buf_printf(b, "%.17g", sqlite3_column_double(st, col));
    case SQLITE_TEXT: {
        const unsigned char *s = sqlite3_column_text(st, col);
        int n = sqlite3_column_bytes(st, col);
        if (s == NULL)
            return PD_ERR_NOMEM;
        if (memchr(s, '\0', (size_t)n) != NULL)
            return PD_ERR_INVALID; /* PostgreSQL text cannot hold a NUL byte */
        return put_text(b, s, n);
    }
    default: { /* BLOB: bytea's hex input, its backslash escaped for COPY */
        const unsigned char *p = sqlite3_column_blob(st, col);
        int n = sqlite3_column_bytes(st, col);
        int r = pd_buf_put(b, "\\\\x", 3);
        for (int i = 0; i < n && r == 0; i++) {
            char two[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
            r = pd_buf_put(b, two, 2);
        }
        return r;
    }
    }
}

static int
copy_rows(copy_t *c, table_t *t, sqlite3_stmt *st, pd_buf_t *b)
{
    char msg[400];
    int r, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        for (int k = 0; k < t->ncols; k++) {
            if ((k > 0 && (r = pd_buf_put_byte(b, '\t')) != 0) || (r = put_value(b, st, k)) != 0)
                return r == PD_ERR_INVALID ? fail(c, r, "%s.%s: a text value holds a NUL byte", t->name, t->cols[k])
                                           : fail(c, r, "%s: a row is too large to copy", t->name);
        }
        if ((r = pd_buf_put_byte(b, '\n')) != 0)
            return fail(c, r, "%s: a row is too large to copy", t->name);
        t->rows++;
        if (b->len >= FLUSH_AT) {
            if (PQputCopyData(c->dst, (const char *)b->p, (int)b->len) != 1)
                return fail(c, PD_ERR_UNAVAILABLE, "%s: PostgreSQL: %s", t->name, pg_msg(c->dst, msg, sizeof(msg)));
            pd_buf_reset(b);
        }
    }
    if (step != SQLITE_DONE)
        return fail(c, PD_ERR_IO, "%s: cannot read the source: %s", t->name, sqlite3_errmsg(c->src));
    if (b->len > 0 && PQputCopyData(c->dst, (const char *)b->p, (int)b->len) != 1)
        return fail(c, PD_ERR_UNAVAILABLE, "%s: PostgreSQL: %s", t->name, pg_msg(c->dst, msg, sizeof(msg)));
    return 0;
}

/* "a, b, c" for table t */
static void
column_list(const table_t *t, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int k = 0; k < t->ncols && n < cap; k++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", k ? ", " : "", t->cols[k]);
}

static int
copy_table(copy_t *c, table_t *t)
{
    char cols[MAX_COLS * (NAME_MAX_LEN + 2)], sql[sizeof(cols) + 200], msg[400];
    column_list(t, cols, sizeof(cols));
    snprintf(sql, sizeof(sql), "SELECT %s FROM %s", cols, t->name);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->src, sql, -1, &st, NULL) != SQLITE_OK)
        return fail(c, PD_ERR_IO, "%s: cannot read the source: %s", t->name, sqlite3_errmsg(c->src));
    int r = 0;
    if (is_seeded(t->name)) {
        snprintf(sql, sizeof(sql), "DELETE FROM %s", t->name);
        r = pg_exec(c, sql, PGRES_COMMAND_OK, NULL, 0);
    }
    snprintf(sql, sizeof(sql), "COPY %s (%s) FROM STDIN", t->name, cols);
    if (r == 0)
        r = pg_exec(c, sql, PGRES_COPY_IN, NULL, 0);
    if (r != 0) {
        sqlite3_finalize(st);
        return r;
    }
    pd_buf_t b;
    pd_buf_init(&b, COPY_BUF_MAX);
    r = copy_rows(c, t, st, &b);
    pd_buf_free(&b);
    sqlite3_finalize(st);
    /* ending the COPY with an error message aborts it (and the transaction) */
    if (PQputCopyEnd(c->dst, r == 0 ? NULL : "payctl store migrate: the copy failed") != 1 && r == 0)
        r = fail(c, PD_ERR_UNAVAILABLE, "%s: PostgreSQL: %s", t->name, pg_msg(c->dst, msg, sizeof(msg)));
    PGresult *res;
    while ((res = PQgetResult(c->dst)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && r == 0)
            r = fail(c, PD_ERR_STATE, "%s: PostgreSQL refused a row: %s", t->name, pg_msg(c->dst, msg, sizeof(msg)));
        PQclear(res);
    }
    return r;
}

/* identity columns continue after the largest copied id */
static int
move_sequences(copy_t *c, const table_t *t)
{
    const char *p[1] = {t->name};
    PGresult *res = PQexecParams(c->dst,
                                 "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                 "current_schema() AND table_name = $1 AND is_identity = 'YES'",
                                 1, NULL, p, NULL, NULL, 0);
    char msg[400];
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return fail(c, PD_ERR_STATE, "%s: PostgreSQL: %s", t->name, pg_msg(c->dst, msg, sizeof(msg)));
    }
    int r = 0;
    for (int i = 0; i < PQntuples(res) && r == 0; i++) {
        const char *col = PQgetvalue(res, i, 0);
        char sql[400];
        if (!plain_name(col))
            continue;
        snprintf(sql, sizeof(sql),
                 "SELECT setval(pg_get_serial_sequence('%s', '%s'), COALESCE(MAX(%s), 0) + 1, false) FROM %s", t->name,
                 col, col, t->name);
        r = pg_exec(c, sql, PGRES_TUPLES_OK, NULL, 0);
    }
    PQclear(res);
    return r;
}

static int
verify_counts(copy_t *c, pd_copy_progress_fn progress, void *arg)
{
    for (int i = 0; i < c->nt; i++) {
        char sql[200], v[32];
        snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", c->t[i].name);
        int r = pg_exec(c, sql, PGRES_TUPLES_OK, v, sizeof(v));
        if (r != 0)
            return r;
        sqlite3_stmt *st = NULL;
        int64_t src = -1;
        if (sqlite3_prepare_v2(c->src, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            src = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (src < 0 || strtoll(v, NULL, 10) != src || src != c->t[i].rows) {
            snprintf(c->err, c->cap, "%s: %lld rows in the source, %s in PostgreSQL after the copy", c->t[i].name,
                     (long long)src, v);
            return PD_ERR_STATE;
        }
        if (progress != NULL)
            progress(arg, c->t[i].name, src, 1);
    }
    return 0;
}

int
pd_store_copy_to_postgres(const char *sqlite_path, const char *url, const char *password, pd_copy_progress_fn progress,
                          void *arg, pd_copy_report_t *rep, char *err, size_t cap)
{
    copy_t *c = calloc(1, sizeof(*c));
    char msg[400];
    int r = 0;
    memset(rep, 0, sizeof(*rep));
    if (c == NULL)
        return PD_ERR_NOMEM;
    c->err = err;
    c->cap = cap;
    if (sqlite3_open_v2(sqlite_path, &c->src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        r = fail(c, PD_ERR_IO, "cannot open %s: %s", sqlite_path, c->src ? sqlite3_errmsg(c->src) : "out of memory");
        goto out;
    }
    const char *keys[] = {"dbname", "application_name", password != NULL ? "password" : NULL, NULL};
    const char *vals[] = {url, "payctl-migrate", password, NULL};
    c->dst = PQconnectdbParams(keys, vals, 1);
    if (c->dst == NULL || PQstatus(c->dst) != CONNECTION_OK) {
        const char *why = c->dst != NULL ? pg_msg(c->dst, msg, sizeof(msg)) : "out of memory";
        r = fail(c, strstr(why, "password") != NULL ? PD_ERR_AUTH : PD_ERR_UNAVAILABLE, "cannot connect to %s: %s",
                 "the destination (store.url)", why);
        goto out;
    }
    /* the source is read in one snapshot, so its tables agree with each other */
    if ((r = load_tables(c)) != 0 || sqlite3_exec(c->src, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        (r = pg_exec(c, "BEGIN", PGRES_COMMAND_OK, NULL, 0)) != 0 || (r = destination_empty(c)) != 0)
        goto out;
    for (int i = 0; i < c->nt; i++) {
        if ((r = copy_table(c, &c->t[i])) != 0 || (r = move_sequences(c, &c->t[i])) != 0)
            goto out;
        rep->tables++;
        rep->rows += c->t[i].rows;
        if (progress != NULL)
            progress(arg, c->t[i].name, c->t[i].rows, 0);
    }
    if ((r = pg_exec(c, "COMMIT", PGRES_COMMAND_OK, NULL, 0)) != 0)
        goto out;
    r = verify_counts(c, progress, arg);
out:
    if (c->dst != NULL && r != 0 && PQtransactionStatus(c->dst) != PQTRANS_IDLE)
        PQclear(PQexec(c->dst, "ROLLBACK"));
    PQfinish(c->dst);
    if (c->src != NULL)
        sqlite3_close(c->src);
    free(c);
    return r;
}
