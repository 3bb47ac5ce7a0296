/*
 * PostgreSQL backend of pd_db_t over libpq.
 *
 * Statements: "?" placeholders become "$n" (pg_sql.c); each statement is prepared once
 * per connection and cached by the SQL literal's address and the types of its bound
 * values (int8, text, bytea; a NULL is left for the server to infer, except before
 * IS [NOT] NULL, where it is text), so "? IS NULL OR x = ?" works. Parameters go in
 * binary, results come back as text (integers parsed, booleans as 0/1).
 *
 * Transactions: inside one, statements go in libpq's pipeline mode. BEGIN, and the
 * savepoint around each write of a batch, are queued ahead of the next statement, and
 * a deferred statement (pd_db_exec_deferred: an insert whose failure only fails the
 * write) is queued without waiting for its result. The next statement that needs its
 * result, or the write's end (the flush op, which the store calls before it releases
 * the write's savepoint), sends the queue with one sync and reads every result in
 * order: the first error is the answer, the statements after it were skipped by the
 * server (PGRES_PIPELINE_ABORTED). A write that inserts ten rows after one read costs
 * two round trips instead of eleven. Outside a transaction statements run one at a
 * time (PQexecPrepared).
 *
 * Errors map to the PD_ERR_* model by SQLSTATE: unique and other integrity
 * violations PD_ERR_EXISTS (as SQLite's constraint errors), serialization failures
 * and deadlocks PD_ERR_CONFLICT, read-only transactions (25006, a standby after a
 * failover) and lost connections PD_ERR_UNAVAILABLE, disk full -ENOSPC, data errors
 * PD_ERR_INVALID. Logs name the server (host, port, database), never the password.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "payd/cred.h"
#include "payd/log.h"
#include "payd/time.h"
#include "store/internal.h"

#define CACHE_SLOTS 512
#define MAX_PARAMS 64
#define SQL_MAX 16384
/* statements queued in a pipeline before it is sent anyway (bounds the buffers) */
#define PIPE_MAX 128
/* the advisory lock around migrations: 0x70617964, "payd" */
#define MIGRATION_LOCK "1885434212"

/* the type codes of a statement's signature, 2 bits per parameter */
enum { T_UNKNOWN = 0, T_INT8 = 1, T_TEXT = 2, T_BYTEA = 3 };
static const Oid type_oids[] = {0, 20 /* int8 */, 25 /* text */, 17 /* bytea */};

typedef struct {
    const char *sql;
    uint64_t sig[2];
    uint32_t id;
} stmt_t;

typedef struct {
    pd_db_t super;
    PGconn *c;
    uint32_t next_id;
    bool in_tx, pend_begin, pend_sp, pend_release;
    bool need_reset; /* the server is read-only (a demoted or standby primary): reconnect through the host list */
    bool piped;      /* in pipeline mode, with nqueued statements whose results are unread */
    int64_t timeout_ms; /* > 0: an autocommit statement unanswered this long gives up the session */
    bool timed_out;     /* the last statement did (no retry on a new session: the server is slow, not gone) */
    int nqueued;
    const char *queued[PIPE_MAX]; /* their SQL, for the log of an error */
    char *url;
    pd_cred_t *cred; /* the user and password of every (re)connection */
    bool own_cred;   /* made from pd_db_open_postgres's password */
    stmt_t cache[CACHE_SLOTS];
} pg_db_t;

typedef struct {
    pd_row_t super;
    PGresult *res;
    int row;
    /* bytea columns of the current row, decoded from the text result (PQunescapeBytea):
     * NULL where the column is not bytea or is NULL */
    unsigned char **bytea;
    size_t *bytea_len;
} pg_row_t;

#define BYTEA_OID 17

/* libpq's notices (e.g. "relation already exists, skipping") go to the debug log */
static void
notice(void *arg, const char *msg)
{
    (void)arg;
    size_t n = strlen(msg);
    pd_log_debug("database notice", PD_LV("msg", pd_view(msg, n > 0 && msg[n - 1] == '\n' ? n - 1 : n)));
}

/* "host:port/db" of the connection, for logs (no user, no password) */
static void
server_name(const pg_db_t *d, char *out, size_t cap)
{
    const char *h = d->c != NULL ? PQhost(d->c) : NULL, *p = d->c != NULL ? PQport(d->c) : NULL;
    const char *db = d->c != NULL ? PQdb(d->c) : NULL;
    snprintf(out, cap, "%s:%s/%s", h != NULL ? h : "?", p != NULL ? p : "?", db != NULL ? db : "?");
}

static void
sql_snip(const char *sql, pd_view_t *v)
{
    size_t n = strlen(sql);
    *v = pd_view(sql, n > 120 ? 120 : n);
}

/* the PD_ERR_* of a failed result (res may be NULL: the connection failed) */
static int
map_error(pg_db_t *d, const PGresult *res, const char *sql)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char srv[300];
    pd_view_t snip;
    if (msg == NULL)
        msg = PQerrorMessage(d->c);
    server_name(d, srv, sizeof(srv));
    sql_snip(sql, &snip);
    if (PQstatus(d->c) == CONNECTION_BAD || state == NULL || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P", 3) == 0) {
        pd_log_error("database connection lost", PD_LS("server", srv), PD_LS("error", msg),
                     PD_LS("sqlstate", state != NULL ? state : ""));
        return PD_ERR_UNAVAILABLE;
    }
    if (strncmp(state, "23", 2) == 0)
        return PD_ERR_EXISTS; /* an integrity violation, as SQLite's constraint error */
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return PD_ERR_CONFLICT; /* serialization failure, deadlock: decided again by the caller */
    if (strcmp(state, "25006") == 0) {
        d->need_reset = true;
        pd_log_error("database is read-only (a standby, e.g. after a failover)", PD_LS("server", srv),
                     PD_LS("sqlstate", state));
        return PD_ERR_UNAVAILABLE;
    }
    if (strcmp(state, "53100") == 0) {
        pd_log_error("database full", PD_LS("server", srv), PD_LS("error", msg));
        return -ENOSPC;
    }
    if (strncmp(state, "22", 2) == 0) {
        pd_log_warn("database refused a value", PD_LS("error", msg), PD_LS("sqlstate", state), PD_LV("sql", snip));
        return PD_ERR_INVALID;
    }
    pd_log_error("database error", PD_LS("server", srv), PD_LS("error", msg), PD_LS("sqlstate", state),
                 PD_LV("sql", snip));
    return PD_ERR_IO;
}

/* a command result: 0 or the mapped error; clears res */
static int
check_cmd(pg_db_t *d, PGresult *res, const char *sql)
{
    ExecStatusType st = PQresultStatus(res);
    int r = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : map_error(d, res, sql);
    PQclear(res);
    return r;
}

static int drain(pg_db_t *d, PGresult **last);

/* runs a parameterless command now (simple protocol, may hold several statements),
 * after what the pipeline holds: an error there is the answer */
static int
simple(pg_db_t *d, const char *sql)
{
    int r = drain(d, NULL);
    return r != 0 ? r : check_cmd(d, PQexec(d->c, sql), sql);
}

/* sends what begin, savepoint and release left pending, in one round trip */
static int
flush_pending(pg_db_t *d)
{
    char buf[96];
    size_t n = 0;
    buf[0] = '\0';
    if (d->pend_begin)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "BEGIN;");
    if (d->pend_release)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "RELEASE SAVEPOINT w;");
    if (d->pend_sp)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "SAVEPOINT w;");
    d->pend_begin = d->pend_release = d->pend_sp = false;
    return n == 0 ? 0 : simple(d, buf);
}

static uint64_t
mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

void
pd_db_postgres_set_timeout(pd_db_t *db, int64_t ms)
{
    ((pg_db_t *)db)->timeout_ms = ms;
}

/* waits until fd is ready for events or deadline (pd_mono_ms) passes: 1 ready, 0 timed out, -1 error */
static int
wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = pd_mono_ms();
        if (now >= deadline)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, (int)(deadline - now));
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/*
 * The result of the command just sent, read as it comes, waiting on the socket at most
 * d->timeout_ms: NULL with d->timed_out set when the server did not answer in time. The
 * session is then given up (need_reset: the next statement logs in anew), since its
 * answer may still come.
 */
static PGresult *
result_bounded(pg_db_t *d)
{
    uint64_t deadline = pd_mono_ms() + (uint64_t)d->timeout_ms;
    PGresult *last = NULL;
    int fd = PQsocket(d->c), f;
    while ((f = PQflush(d->c)) == 1)
        if (wait_fd(fd, POLLOUT, deadline) != 1)
            goto timeout;
    if (f < 0)
        return NULL;
    for (;;) {
        while (PQisBusy(d->c)) {
            int w = wait_fd(fd, POLLIN, deadline);
            if (w == 0)
                goto timeout;
            if (w < 0 || PQconsumeInput(d->c) != 1) {
                PQclear(last);
                return NULL;
            }
        }
        PGresult *res = PQgetResult(d->c);
        if (res == NULL)
            return last;
        PQclear(last);
        last = res;
    }
timeout:
    PQclear(last);
    d->timed_out = true;
    d->need_reset = true;
    pd_log_warn("the database did not answer a read in time: its connection is given up",
                PD_LI("read_timeout_ms", d->timeout_ms), PD_LS("setting", "store.read_timeout_ms"));
    return NULL;
}

/* PQprepare, bounded by d->timeout_ms outside a transaction */
static PGresult *
prepare_stmt(pg_db_t *d, const char *name, const char *text, int n, const Oid *types)
{
    if (d->timeout_ms <= 0 || d->in_tx)
        return PQprepare(d->c, name, text, n, types);
    return PQsendPrepare(d->c, name, text, n, types) == 1 ? result_bounded(d) : NULL;
}

/*
 * The prepared statement for sql with these argument types, prepared now if this
 * connection has none yet and prepare is set (else PD_ERR_NOTFOUND). *id gets its
 * number (its name is "p<id>").
 */
static int
stmt_get(pg_db_t *d, const char *sql, const pd_sqlval_t *args, size_t nargs, bool prepare, uint32_t *id)
{
    uint64_t sig[2] = {0, 0};
    if (nargs > MAX_PARAMS)
        return PD_ERR_TOOBIG;
    char text[SQL_MAX];
    bool is_null_ctx[MAX_PARAMS];
    size_t n = 0;
    int r;
    /* the signature needs the NULL contexts only for NULLs; computed on a miss below */
    uint8_t codes[MAX_PARAMS];
    for (size_t i = 0; i < nargs; i++) {
        codes[i] = args[i].t == PD_SQL_INT    ? T_INT8
                   : args[i].t == PD_SQL_TEXT ? T_TEXT
                   : args[i].t == PD_SQL_BLOB ? T_BYTEA
                                              : T_UNKNOWN;
        sig[i / 32] |= (uint64_t)codes[i] << (2 * (i % 32));
    }
    size_t h = (size_t)(mix((uint64_t)(uintptr_t)sql ^ mix(sig[0] ^ (sig[1] << 1))) % CACHE_SLOTS);
    for (size_t k = 0; k < 16; k++) {
        stmt_t *e = &d->cache[(h + k) % CACHE_SLOTS];
        if (e->sql == sql && e->sig[0] == sig[0] && e->sig[1] == sig[1]) {
            *id = e->id;
            return 0;
        }
        if (e->sql != NULL)
            continue;
        if (!prepare)
            return PD_ERR_NOTFOUND;
        if ((r = pd_pg_params(sql, text, sizeof(text), &n, is_null_ctx, MAX_PARAMS)) != 0) {
            pd_log_error("statement too long for the PostgreSQL backend", PD_LI("max", SQL_MAX));
            return r;
        }
        if (n != nargs) {
            pd_view_t snip;
            sql_snip(sql, &snip);
            pd_log_error("statement has a different number of placeholders than values", PD_LI("placeholders", (int64_t)n),
                         PD_LI("values", (int64_t)nargs), PD_LV("sql", snip));
            return PD_ERR_INTERNAL;
        }
        Oid types[MAX_PARAMS];
        for (size_t i = 0; i < n; i++)
            types[i] = codes[i] == T_UNKNOWN && is_null_ctx[i] ? type_oids[T_TEXT] : type_oids[codes[i]];
        char name[16];
        uint32_t nid = ++d->next_id;
        snprintf(name, sizeof(name), "p%u", nid);
        PGresult *res = prepare_stmt(d, name, text, (int)n, types);
        if (res == NULL && d->timed_out)
            return PD_ERR_UNAVAILABLE;
        if ((r = check_cmd(d, res, sql)) != 0)
            return r;
        e->sql = sql;
        e->sig[0] = sig[0];
        e->sig[1] = sig[1];
        e->id = nid;
        *id = nid;
        return 0;
    }
    pd_log_error("statement cache full (too many distinct statements)", PD_LI("slots", CACHE_SLOTS));
    return PD_ERR_INTERNAL;
}

/*
 * A new session through the host list (libpq tries each host of the URL in turn, with
 * target_session_attrs): after a lost connection, or a server found read-only.
 */
static int login(pg_db_t *d, char *why, size_t whycap);

static void
reconnect(pg_db_t *d)
{
    char srv[300];
    /* a new session with the credential in force now (PQreset would resend the one of
     * the first connection, which a rotation may have retired) */
    (void)login(d, NULL, 0);
    memset(d->cache, 0, sizeof(d->cache)); /* a new session has no prepared statements */
    d->next_id = 0;
    d->need_reset = false;
    d->piped = false; /* nor a pipeline */
    d->nqueued = 0;
    if (PQstatus(d->c) == CONNECTION_OK) {
        PQsetNoticeProcessor(d->c, notice, NULL);
        if (simple(d, "SET client_encoding = 'UTF8'") == 0) {
            server_name(d, srv, sizeof(srv));
            pd_log_info("database connection re-established", PD_LS("server", srv));
        }
    }
}

/* a statement's parameters in libpq's binary form */
typedef struct {
    const char *values[MAX_PARAMS];
    int lengths[MAX_PARAMS], formats[MAX_PARAMS];
    uint8_t ints[MAX_PARAMS][8]; /* the integers, big-endian */
} params_t;

static int
bind_params(const pd_sqlval_t *args, size_t nargs, params_t *p)
{
    if (nargs > MAX_PARAMS)
        return PD_ERR_TOOBIG;
    for (size_t i = 0; i < nargs; i++) {
        p->formats[i] = 1;
        switch (args[i].t) {
        case PD_SQL_INT: {
            uint64_t v = (uint64_t)args[i].i;
            for (int b = 0; b < 8; b++)
                p->ints[i][b] = (uint8_t)(v >> (56 - 8 * b));
            p->values[i] = (const char *)p->ints[i];
            p->lengths[i] = 8;
            break;
        }
        case PD_SQL_TEXT:
        case PD_SQL_BLOB:
            if (args[i].len > (size_t)INT32_MAX)
                return PD_ERR_TOOBIG;
            p->values[i] = args[i].len > 0 ? args[i].p : "";
            p->lengths[i] = (int)args[i].len;
            break;
        default:
            p->values[i] = NULL;
            p->lengths[i] = 0;
        }
    }
    return 0;
}

/*
 * Sends the pipeline with a sync, reads every result in order and leaves pipeline
 * mode. Returns the first error (the server skipped the statements after it); *last
 * (last may be NULL) gets the last statement's result when all succeeded.
 */
static int
drain(pg_db_t *d, PGresult **last)
{
    int first = 0, n = d->nqueued, i = 0;
    if (last != NULL)
        *last = NULL;
    if (!d->piped)
        return 0;
    d->piped = false;
    d->nqueued = 0;
    if (PQpipelineSync(d->c) != 1)
        first = map_error(d, NULL, "pipeline sync");
    for (bool done = first != 0; !done;) {
        PGresult *res = PQgetResult(d->c);
        if (res == NULL) { /* the end of statement i's results */
            if (++i > n || PQstatus(d->c) == CONNECTION_BAD) {
                if (first == 0)
                    first = map_error(d, NULL, "pipeline");
                done = true;
            }
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            done = true;
        } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_PIPELINE_ABORTED) {
            if (first == 0)
                first = map_error(d, res, i < n ? d->queued[i] : "pipeline");
        } else if (last != NULL && i == n - 1 && st != PGRES_PIPELINE_ABORTED && *last == NULL) {
            *last = res;
            continue;
        }
        PQclear(res);
    }
    if (PQpipelineStatus(d->c) != PQ_PIPELINE_OFF && PQexitPipelineMode(d->c) != 1) {
        d->need_reset = true; /* results left unread: the session cannot be trusted */
        if (first == 0)
            first = map_error(d, NULL, "pipeline");
    }
    if (first != 0 && last != NULL) {
        PQclear(*last);
        *last = NULL;
    }
    return first;
}

static int
pipe_cmd(pg_db_t *d, const char *cmd)
{
    if (PQsendQueryParams(d->c, cmd, 0, NULL, NULL, NULL, NULL, 0) != 1)
        return map_error(d, NULL, cmd);
    d->queued[d->nqueued++] = cmd;
    return 0;
}

/* pipeline mode, with room for a statement, and what begin, release and savepoint
 * left pending queued ahead of it */
static int
pipe_open(pg_db_t *d)
{
    int r;
    if (d->nqueued > PIPE_MAX - 4 && (r = drain(d, NULL)) != 0)
        return r;
    if (!d->piped) {
        if (PQenterPipelineMode(d->c) != 1)
            return map_error(d, NULL, "pipeline");
        d->piped = true;
    }
    if ((d->pend_begin && (r = pipe_cmd(d, "BEGIN")) != 0) ||
        (d->pend_release && (r = pipe_cmd(d, "RELEASE SAVEPOINT w")) != 0) ||
        (d->pend_sp && (r = pipe_cmd(d, "SAVEPOINT w")) != 0))
        return r;
    d->pend_begin = d->pend_release = d->pend_sp = false;
    return 0;
}

/* PQexecPrepared, bounded by d->timeout_ms */
static PGresult *
exec_prepared(pg_db_t *d, const char *name, int nargs, const params_t *p)
{
    if (d->timeout_ms <= 0)
        return PQexecPrepared(d->c, name, nargs, p->values, p->lengths, p->formats, 0);
    return PQsendQueryPrepared(d->c, name, nargs, p->values, p->lengths, p->formats, 0) == 1 ? result_bounded(d)
                                                                                             : NULL;
}

/*
 * Runs a statement; *res gets its result (the caller clears it). Inside a transaction
 * it goes through the pipeline, and deferred leaves it queued there (*res stays NULL).
 */
static int
run(pg_db_t *d, const char *sql, const pd_sqlval_t *args, size_t nargs, bool deferred, PGresult **res)
{
    uint32_t id = 0;
    params_t p;
    int r;
    *res = NULL;
    d->timed_out = false;
    if ((PQstatus(d->c) == CONNECTION_BAD || d->need_reset) && !d->in_tx)
        reconnect(d); /* autocommit statements on a lost connection: one new try through the host list */
    if ((r = bind_params(args, nargs, &p)) != 0)
        return r;
    /* a statement new on this connection is prepared on its own, after what is queued */
    if (stmt_get(d, sql, args, nargs, false, &id) != 0 &&
        ((r = drain(d, NULL)) != 0 || (r = flush_pending(d)) != 0 || (r = stmt_get(d, sql, args, nargs, true, &id)) != 0))
        return r;
    char name[16];
    snprintf(name, sizeof(name), "p%u", id);
    if (d->in_tx) {
        if ((r = pipe_open(d)) != 0)
            return r;
        if (PQsendQueryPrepared(d->c, name, (int)nargs, p.values, p.lengths, p.formats, 0) != 1)
            return map_error(d, NULL, sql);
        d->queued[d->nqueued++] = sql;
        if (deferred)
            return 0;
        if ((r = drain(d, res)) == 0 && *res == NULL)
            r = PD_ERR_IO;
        return r;
    }
    *res = exec_prepared(d, name, (int)nargs, &p);
    if (*res == NULL && d->timed_out)
        return PD_ERR_UNAVAILABLE;
    ExecStatusType st = PQresultStatus(*res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        r = map_error(d, *res, sql);
        PQclear(*res);
        *res = NULL;
        return r;
    }
    return 0;
}

static int
p_exec(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, int64_t *changes)
{
    pg_db_t *d = (pg_db_t *)db;
    PGresult *res = NULL;
    int r = run(d, sql, args, nargs, false, &res);
    if (changes != NULL) {
        const char *t = r == 0 ? PQcmdTuples(res) : "";
        *changes = t != NULL && t[0] != '\0' ? strtoll(t, NULL, 10) : 0;
    }
    PQclear(res);
    return r;
}

static int
p_exec_deferred(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs)
{
    pg_db_t *d = (pg_db_t *)db;
    PGresult *res = NULL;
    int r = run(d, sql, args, nargs, d->in_tx, &res);
    PQclear(res);
    return r;
}

static int
p_flush(pd_db_t *db)
{
    return drain((pg_db_t *)db, NULL);
}

static int
p_query(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, pd_row_fn fn, void *arg)
{
    pg_db_t *d = (pg_db_t *)db;
    PGresult *res = NULL;
    int r = run(d, sql, args, nargs, false, &res);
    if (r == PD_ERR_UNAVAILABLE && !d->in_tx && !d->timed_out && (PQstatus(d->c) == CONNECTION_BAD || d->need_reset) &&
        strncmp(sql, "SELECT", 6) == 0)
        r = run(d, sql, args, nargs, false, &res); /* a read outside a transaction found its session gone (a
                                             * failover): once more on a new one, through the host list */
    if (r != 0)
        return r;
    pg_row_t row = {{db->ops}, res, 0, NULL, NULL};
    int nrows = PQntuples(res), nf = PQnfields(res);
    bool any_bytea = false;
    for (int f = 0; f < nf; f++)
        any_bytea = any_bytea || PQftype(res, f) == BYTEA_OID;
    /* BLOB columns come back as bytea in text form ("\x..."): the row gives the bytes,
     * as SQLite's does */
    if (any_bytea && nrows > 0) {
        row.bytea = calloc((size_t)nf, sizeof(*row.bytea));
        row.bytea_len = calloc((size_t)nf, sizeof(*row.bytea_len));
        if (row.bytea == NULL || row.bytea_len == NULL)
            r = PD_ERR_NOMEM;
    }
    for (row.row = 0; r == 0 && row.row < nrows; row.row++) {
        for (int f = 0; row.bytea != NULL && f < nf; f++) {
            if (PQftype(res, f) != BYTEA_OID || PQgetisnull(res, row.row, f))
                continue;
            row.bytea[f] = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row.row, f), &row.bytea_len[f]);
            if (row.bytea[f] == NULL)
                r = PD_ERR_NOMEM;
        }
        int cr = r == 0 ? fn(&row.super, arg) : 0;
        for (int f = 0; row.bytea != NULL && f < nf; f++) {
            if (row.bytea[f] != NULL) {
                OPENSSL_cleanse(row.bytea[f], row.bytea_len[f]); /* may be key material or a card */
                PQfreemem(row.bytea[f]);
                row.bytea[f] = NULL;
            }
        }
        if (cr != 0) {
            r = cr < 0 ? cr : 0;
            break;
        }
    }
    free(row.bytea);
    free(row.bytea_len);
    PQclear(res);
    return r;
}

static int64_t
p_row_int(const pd_row_t *r, int col)
{
    const pg_row_t *pr = (const pg_row_t *)r;
    if (col < 0 || col >= PQnfields(pr->res) || PQgetisnull(pr->res, pr->row, col))
        return 0;
    const char *v = PQgetvalue(pr->res, pr->row, col);
    if (v[0] == 't' && v[1] == '\0') /* booleans read as SQLite's 0/1 */
        return 1;
    if (v[0] == 'f' && v[1] == '\0')
        return 0;
    return strtoll(v, NULL, 10);
}

static bool
p_row_is_null(const pd_row_t *r, int col)
{
    const pg_row_t *pr = (const pg_row_t *)r;
    return col < 0 || col >= PQnfields(pr->res) || PQgetisnull(pr->res, pr->row, col);
}

static pd_view_t
p_row_text(const pd_row_t *r, int col)
{
    const pg_row_t *pr = (const pg_row_t *)r;
    if (p_row_is_null(r, col))
        return pd_view("", 0);
    if (pr->bytea != NULL && pr->bytea[col] != NULL)
        return pd_view(pr->bytea[col], pr->bytea_len[col]);
    return pd_view(PQgetvalue(pr->res, pr->row, col), (size_t)PQgetlength(pr->res, pr->row, col));
}

/*
 * True when an idle session was ended by the server (a terminated backend, a primary
 * that went away with a reset, a restart): an idle session has nothing to read, so a
 * readable socket means its end (the server's FATAL message, then EOF). The rare
 * unsolicited message that is not (a parameter change after a reload) costs one new
 * session. Checked before each transaction, so a batch starts on a session that is
 * still there instead of failing on a dead one: after a failover the writes get a
 * fresh session rather than a 503. One poll() with no wait.
 */
static bool
idle_session_ended(pg_db_t *d)
{
    struct pollfd pfd = {.fd = PQsocket(d->c), .events = POLLIN};
    return pfd.fd < 0 || poll(&pfd, 1, 0) > 0;
}

static int
p_begin(pd_db_t *db)
{
    pg_db_t *d = (pg_db_t *)db;
    if (d->in_tx)
        return PD_ERR_STATE;
    if (PQstatus(d->c) == CONNECTION_OK && !d->need_reset && idle_session_ended(d)) {
        pd_log_info("database session ended while idle: a new one before the next transaction");
        d->need_reset = true;
    }
    if (PQstatus(d->c) == CONNECTION_BAD || d->need_reset) {
        reconnect(d);
        if (PQstatus(d->c) == CONNECTION_BAD)
            return map_error(d, NULL, "BEGIN");
    }
    d->in_tx = d->pend_begin = true;
    d->pend_sp = d->pend_release = false;
    return 0;
}

static int
p_commit(pd_db_t *db)
{
    pg_db_t *d = (pg_db_t *)db;
    if (!d->in_tx)
        return PD_ERR_STATE;
    int r = drain(d, NULL); /* a failed statement there fails the commit; the caller rolls back */
    if (r != 0)
        return r;
    d->in_tx = false;
    if (d->pend_begin) { /* nothing ran: nothing to commit */
        d->pend_begin = d->pend_sp = d->pend_release = false;
        return 0;
    }
    d->pend_sp = d->pend_release = false; /* COMMIT releases every savepoint */
    PGresult *res = PQexec(d->c, "COMMIT");
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK) {
        if (PQstatus(d->c) == CONNECTION_BAD) {
            /* the COMMIT may or may not have been applied: neither failed nor succeeded.
             * The callers answer so; a retry with the same idempotency key finds the
             * record if it took effect, or runs anew if it did not */
            char srv[300];
            server_name(d, srv, sizeof(srv));
            pd_log_error("database connection lost during COMMIT: the batch's outcome is unknown",
                         PD_LS("server", srv));
            r = PD_ERR_INDOUBT;
        } else {
            r = map_error(d, res, "COMMIT");
        }
    } else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        /* an aborted transaction "commits" as ROLLBACK */
        pd_log_error("database rolled the transaction back at COMMIT", PD_LS("status", PQcmdStatus(res)));
        r = PD_ERR_IO;
    }
    PQclear(res);
    return r;
}

static int
p_rollback(pd_db_t *db)
{
    pg_db_t *d = (pg_db_t *)db;
    bool sent = d->in_tx && !d->pend_begin;
    d->in_tx = d->pend_begin = d->pend_sp = d->pend_release = false;
    (void)drain(d, NULL); /* what a failed write left queued: its error was answered already */
    if (!sent || PQstatus(d->c) == CONNECTION_BAD)
        return 0;
    return simple(d, "ROLLBACK");
}

static int
p_savepoint(pd_db_t *db)
{
    pg_db_t *d = (pg_db_t *)db;
    if (!d->in_tx || d->pend_sp)
        return PD_ERR_STATE;
    d->pend_sp = true;
    return 0;
}

static int
p_release(pd_db_t *db)
{
    pg_db_t *d = (pg_db_t *)db;
    if (d->pend_sp) /* the write ran no statement */
        d->pend_sp = false;
    else
        d->pend_release = true;
    return 0;
}

static int
p_rollback_to(pd_db_t *db)
{
    pg_db_t *d = (pg_db_t *)db;
    if (d->pend_sp) {
        d->pend_sp = false;
        return 0;
    }
    (void)drain(d, NULL); /* what the failed write left queued: its error was answered already */
    int r = flush_pending(d);
    return r != 0 ? r : simple(d, "ROLLBACK TO SAVEPOINT w; RELEASE SAVEPOINT w");
}

static int
p_script(pd_db_t *db, const char *sql)
{
    pg_db_t *d = (pg_db_t *)db;
    size_t cap = strlen(sql) * 2 + 4096;
    char *text = malloc(cap);
    int r;
    if (text == NULL)
        return PD_ERR_NOMEM;
    if ((r = pd_pg_ddl(sql, text, cap)) == 0 && (r = flush_pending(d)) == 0)
        r = simple(d, text);
    free(text);
    return r;
}

static int
p_migration_lock(pd_db_t *db, bool lock)
{
    pg_db_t *d = (pg_db_t *)db;
    return simple(d, lock ? "SELECT pg_advisory_lock(" MIGRATION_LOCK ")" : "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")");
}

static int
count_row(const pd_row_t *r, void *arg)
{
    int64_t *n = arg;
    n[0] = p_row_int(r, 0);
    n[1] = p_row_int(r, 1);
    return 1;
}

static int
p_user_tables(pd_db_t *db, int64_t *others, bool *has_version)
{
    int64_t n[2] = {0, 0};
    int r = p_query(db,
                    "SELECT COUNT(*) FILTER (WHERE table_name <> 'schema_version'), "
                    "COUNT(*) FILTER (WHERE table_name = 'schema_version') FROM information_schema.tables "
                    "WHERE table_schema = current_schema()",
                    NULL, 0, count_row, n);
    *others = n[0];
    *has_version = n[1] > 0;
    return r;
}

static void
p_close(pd_db_t *db)
{
    pg_db_t *d = (pg_db_t *)db;
    if (d == NULL)
        return;
    PQfinish(d->c);
    if (d->own_cred)
        pd_cred_free(d->cred);
    free(d->url);
    free(d);
}

static const pd_db_ops_t pg_ops = {
    .name = "postgres",
    .exec = p_exec,
    .exec_deferred = p_exec_deferred,
    .flush = p_flush,
    .query = p_query,
    .row_int = p_row_int,
    .row_is_null = p_row_is_null,
    .row_text = p_row_text,
    .begin = p_begin,
    .commit = p_commit,
    .rollback = p_rollback,
    .savepoint = p_savepoint,
    .release = p_release,
    .rollback_to = p_rollback_to,
    .script = p_script,
    .migration_lock = p_migration_lock,
    .user_tables = p_user_tables,
    .defer_sync = NULL, /* a COMMIT is durable when it returns (synchronous_commit) */
    .sync = NULL,
    .close = p_close,
};

/* libpq's message of a failed connection on one line */
static void
conn_message(PGconn *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s", c != NULL ? PQerrorMessage(c) : "out of memory");
    for (char *p = out; *p != '\0'; p++)
        if (*p == '\n')
            *p = *(p + 1) != '\0' ? ' ' : '\0';
}

/* 28P01 (invalid_password) at connect time: libpq reports it only as text */
static bool
auth_refused(const char *msg)
{
    return strstr(msg, "password authentication failed") != NULL || strstr(msg, "no password supplied") != NULL;
}

/*
 * Connects (replacing d->c, which is then a session or a failed connection, never
 * NULL unless out of memory) with the credential in force. A refused password from a
 * vault secret fetches the secret again and tries once more: a node that missed a
 * rotation's notice picks up the new CURRENT here. The password is wiped after use.
 */
static int
login(pg_db_t *d, char *why, size_t whycap)
{
    char msg[512] = "", user[PD_CRED_USER_MAX], pw[PD_CRED_PASSWORD_MAX + 1];
    int r = PD_ERR_UNAVAILABLE;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool has_pw = false;
        uint64_t gen = 0;
        if ((r = pd_cred_get(d->cred, user, sizeof(user), pw, sizeof(pw), &has_pw, &gen)) != 0)
            break;
        /* the URL or conninfo string is expanded as libpq does (multi-host, sslmode,
         * sslrootcert, target_session_attrs ...); a user and password given apart
         * override the URL's. Keywords before dbname are defaults the URL may override:
         * a host that does not answer is given up after connect_timeout (then the next
         * host of the list), and sent data unacknowledged for tcp_user_timeout (a
         * partition) fails the session instead of leaving a writer waiting on TCP for
         * minutes. */
        char ct[24] = "5"; /* a bounded reader logs in within its bound too (libpq's least is 2 s) */
        if (d->timeout_ms > 0 && d->timeout_ms < 5000)
            snprintf(ct, sizeof(ct), "%lld", (long long)(d->timeout_ms < 2000 ? 2 : (d->timeout_ms + 999) / 1000));
        const char *keys[7] = {"connect_timeout", "tcp_user_timeout", "dbname", "application_name", NULL, NULL, NULL};
        const char *vals[7] = {ct, "10000", d->url, "payd", NULL, NULL, NULL};
        int k = 4;
        if (user[0] != '\0') {
            keys[k] = "user";
            vals[k++] = user;
        }
        if (has_pw) {
            keys[k] = "password";
            vals[k++] = pw;
        }
        PGconn *c = PQconnectdbParams(keys, vals, 1);
        OPENSSL_cleanse(pw, sizeof(pw));
        if (c == NULL)
            return PD_ERR_NOMEM;
        PQfinish(d->c);
        d->c = c;
        if (PQstatus(c) == CONNECTION_OK)
            return 0;
        /* libpq's message names the host and the cause, never the password */
        conn_message(c, msg, sizeof(msg));
        r = auth_refused(msg) ? PD_ERR_AUTH : PD_ERR_UNAVAILABLE;
        if (r != PD_ERR_AUTH || attempt > 0 || !pd_cred_is_secret(d->cred))
            break;
        pd_log_warn("the database refused the password: fetching the secret again",
                    PD_LS("secret", pd_cred_secret_name(d->cred)), PD_LS("sqlstate", "28P01"));
        if (pd_cred_refresh(d->cred, gen) != 0)
            break;
    }
    if (why != NULL && whycap > 0)
        snprintf(why, whycap, "%s", msg);
    return r;
}

int
pd_db_open_postgres_cred(pd_db_t **out, const char *url, pd_cred_t *cred, char *why, size_t whycap)
{
    pg_db_t *d = calloc(1, sizeof(*d));
    int r;
    if (why != NULL && whycap > 0)
        why[0] = '\0';
    if (d == NULL)
        return PD_ERR_NOMEM;
    d->super.ops = &pg_ops;
    d->cred = cred;
    if ((d->url = strdup(url)) == NULL) {
        free(d);
        return PD_ERR_NOMEM;
    }
    if ((r = login(d, why, whycap)) != 0) {
        p_close(&d->super);
        return r;
    }
    PQsetNoticeProcessor(d->c, notice, NULL);
    /* the session speaks UTF-8 whatever the database's default */
    if ((r = simple(d, "SET client_encoding = 'UTF8'")) != 0) {
        p_close(&d->super);
        return r;
    }
    *out = &d->super;
    return 0;
}

int
pd_db_open_postgres(pd_db_t **out, const char *url, const char *password, char *why, size_t whycap)
{
    pd_cred_t *cred;
    int r = pd_cred_new_static(&cred, password);
    if (r != 0)
        return r;
    if ((r = pd_db_open_postgres_cred(out, url, cred, why, whycap)) != 0) {
        pd_cred_free(cred);
        return r;
    }
    ((pg_db_t *)*out)->own_cred = true;
    return 0;
}
