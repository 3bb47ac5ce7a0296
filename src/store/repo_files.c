/* The file store's index (files) and report runs (report_runs). */
#include "store/repo.h"

#define FILE_COLS "id, merchant_id, livemode, purpose, filename, type, size, sha256, created, expires_at, seq"

/* FILE_COLS from column c on */
static int
decode_file_at(const pd_row_t *r, int c, pd_file_rec_t *f)
{
    COPY(r, c, f->id);
    COPY(r, c + 1, f->merchant_id);
    f->livemode = pd_row_int(r, c + 2) != 0;
    COPY(r, c + 3, f->purpose);
    COPY(r, c + 4, f->filename);
    COPY(r, c + 5, f->type);
    f->size = pd_row_int(r, c + 6);
    COPY(r, c + 7, f->sha256);
    f->created = pd_row_int(r, c + 8);
    f->expires_at = pd_row_int(r, c + 9);
    f->seq = pd_row_int(r, c + 10);
    return 0;
}

static int
decode_file(const pd_row_t *r, pd_arena_t *a, void *rec)
{
    (void)a;
    return decode_file_at(r, 0, rec);
}

int
pd_file_insert(pd_db_t *tx, const pd_file_rec_t *f)
{
    return pd_db_exec(tx,
                      "INSERT INTO files (id, merchant_id, livemode, purpose, filename, type, size, sha256, created, "
                      "expires_at, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                      PD_SQL_ARGS(PD_SQL_S(f->id), PD_SQL_S(f->merchant_id), PD_SQL_I(f->livemode),
                                  PD_SQL_S(f->purpose), PD_SQL_S(f->filename), PD_SQL_S(f->type), PD_SQL_I(f->size),
                                  PD_SQL_S(f->sha256), PD_SQL_I(f->created), PD_SQL_I(f->expires_at),
                                  PD_SQL_I(f->seq)),
                      NULL);
}

int
pd_file_get(pd_db_t *db, const char *merchant, bool livemode, const char *id, pd_file_rec_t *out)
{
    return pd_get_one(db, "SELECT " FILE_COLS " FROM files WHERE id = ? AND merchant_id = ? AND livemode = ?",
                      decode_file, NULL, out, merchant, livemode, id);
}

typedef struct {
    pd_rec_fn fn;
    void *arg;
} each_t;

static int
each_file_row(const pd_row_t *r, void *arg)
{
    each_t *e = arg;
    pd_file_rec_t f;
    int rc = decode_file(r, NULL, &f);
    return rc != 0 ? rc : e->fn(&f, e->arg);
}

static int
one_file_row(const pd_row_t *r, void *arg)
{
    int rc = decode_file(r, NULL, arg);
    return rc != 0 ? rc : 1;
}

int
pd_file_get_any(pd_db_t *db, const char *id, pd_file_rec_t *out)
{
    out->id[0] = '\0';
    int r = pd_db_query(db, "SELECT " FILE_COLS " FROM files WHERE id = ?", PD_SQL_ARGS(PD_SQL_S(id)), one_file_row,
                        out);
    return r != 0 ? r : out->id[0] != '\0' ? 0 : PD_ERR_NOTFOUND;
}

static const pd_list_def_t file_list = {
    "SELECT " FILE_COLS " FROM files WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR purpose = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
    "SELECT " FILE_COLS " FROM files WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR purpose = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) > (?, ?) ORDER BY seq ASC, id ASC LIMIT ?",
    "SELECT seq FROM files WHERE id = ? AND merchant_id = ? AND livemode = ?",
    decode_file,
    sizeof(pd_file_rec_t),
};

int
pd_file_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
             void *arg, bool *has_more)
{
    return pd_list_run(db, a, &file_list, merchant, livemode, q, fn, arg, has_more);
}

int
pd_file_list_all(pd_db_t *db, const char *purpose, pd_rec_fn fn, void *arg)
{
    each_t e = {fn, arg};
    return pd_db_query(db, "SELECT " FILE_COLS " FROM files WHERE (? IS NULL OR purpose = ?) ORDER BY seq DESC, id DESC",
                       PD_SQL_ARGS(PD_SQL_S(purpose), PD_SQL_S(purpose)), each_file_row, &e);
}

int
pd_file_list_expired(pd_db_t *db, int64_t now, int64_t limit, pd_rec_fn fn, void *arg)
{
    each_t e = {fn, arg};
    return pd_db_query(db,
                       "SELECT " FILE_COLS " FROM files WHERE expires_at > 0 AND expires_at <= ? "
                       "ORDER BY expires_at, id LIMIT ?",
                       PD_SQL_ARGS(PD_SQL_I(now), PD_SQL_I(limit)), each_file_row, &e);
}

int
pd_file_delete(pd_db_t *tx, const char *id)
{
    int64_t n = 0;
    int r = pd_db_exec(tx, "DELETE FROM files WHERE id = ?", PD_SQL_ARGS(PD_SQL_S(id)), &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_NOTFOUND;
}

/* --- report runs --- */

/* a run with its result file's row (LEFT JOIN files f) */
#define RUN_COLS                                                                                                       \
    "r.id, r.merchant_id, r.livemode, r.report_type, r.interval_start, r.interval_end, COALESCE(r.currency, ''), "    \
    "r.columns, r.status, COALESCE(r.error, ''), COALESCE(r.result_file, ''), r.created, r.succeeded_at, "            \
    "r.claimed_until, r.attempts, r.seq, f.id, f.merchant_id, f.livemode, f.purpose, f.filename, f.type, f.size, "    \
    "f.sha256, f.created, f.expires_at, f.seq" /* the file's as FILE_COLS */
#define RUN_FROM " FROM report_runs r LEFT JOIN files f ON f.id = r.result_file "

static int
decode_run(const pd_row_t *r, pd_arena_t *a, void *rec)
{
    (void)a;
    pd_report_run_rec_t *x = rec;
    COPY(r, 0, x->id);
    COPY(r, 1, x->merchant_id);
    x->livemode = pd_row_int(r, 2) != 0;
    COPY(r, 3, x->report_type);
    x->interval_start = pd_row_int(r, 4);
    x->interval_end = pd_row_int(r, 5);
    COPY(r, 6, x->currency);
    COPY(r, 7, x->columns);
    COPY(r, 8, x->status);
    COPY(r, 9, x->error);
    COPY(r, 10, x->result_file);
    x->created = pd_row_int(r, 11);
    x->succeeded_at = pd_row_int(r, 12);
    x->claimed_until = pd_row_int(r, 13);
    x->attempts = pd_row_int(r, 14);
    x->seq = pd_row_int(r, 15);
    x->has_result = !pd_row_is_null(r, 16);
    memset(&x->result, 0, sizeof(x->result));
    return x->has_result ? decode_file_at(r, 16, &x->result) : 0;
}

int
pd_report_run_insert(pd_db_t *tx, const pd_report_run_rec_t *x)
{
    return pd_db_exec(tx,
                      "INSERT INTO report_runs (id, merchant_id, livemode, report_type, interval_start, interval_end, "
                      "currency, columns, status, created, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                      PD_SQL_ARGS(PD_SQL_S(x->id), PD_SQL_S(x->merchant_id), PD_SQL_I(x->livemode),
                                  PD_SQL_S(x->report_type), PD_SQL_I(x->interval_start), PD_SQL_I(x->interval_end),
                                  pd_repo_opt(x->currency), PD_SQL_S(x->columns), PD_SQL_S(x->status),
                                  PD_SQL_I(x->created), PD_SQL_I(x->seq)),
                      NULL);
}

int
pd_report_run_get(pd_db_t *db, const char *merchant, bool livemode, const char *id, pd_report_run_rec_t *out)
{
    return pd_get_one(db, "SELECT " RUN_COLS RUN_FROM "WHERE r.id = ? AND r.merchant_id = ? AND r.livemode = ?",
                      decode_run, NULL, out, merchant, livemode, id);
}

static const pd_list_def_t run_list = {
    "SELECT " RUN_COLS RUN_FROM "WHERE r.merchant_id = ? AND r.livemode = ? AND (? IS NULL OR r.report_type = ?) "
    "AND r.created >= ? AND r.created <= ? AND (r.seq, r.id) < (?, ?) ORDER BY r.seq DESC, r.id DESC LIMIT ?",
    "SELECT " RUN_COLS RUN_FROM "WHERE r.merchant_id = ? AND r.livemode = ? AND (? IS NULL OR r.report_type = ?) "
    "AND r.created >= ? AND r.created <= ? AND (r.seq, r.id) > (?, ?) ORDER BY r.seq ASC, r.id ASC LIMIT ?",
    "SELECT seq FROM report_runs WHERE id = ? AND merchant_id = ? AND livemode = ?",
    decode_run,
    sizeof(pd_report_run_rec_t),
};

int
pd_report_run_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q,
                   pd_rec_fn fn, void *arg, bool *has_more)
{
    return pd_list_run(db, a, &run_list, merchant, livemode, q, fn, arg, has_more);
}

static int
one_run_row(const pd_row_t *r, void *arg)
{
    int rc = decode_run(r, NULL, arg);
    return rc != 0 ? rc : 1;
}

int
pd_report_run_claim(pd_db_t *tx, int64_t now, int64_t until, pd_report_run_rec_t *out)
{
    out->id[0] = '\0';
    int r = pd_db_query(tx,
                        "SELECT " RUN_COLS RUN_FROM "WHERE r.status = 'pending' AND r.claimed_until < ? "
                        "ORDER BY r.created, r.id LIMIT 1",
                        PD_SQL_ARGS(PD_SQL_I(now)), one_run_row, out);
    if (r != 0)
        return r;
    if (out->id[0] == '\0')
        return PD_ERR_NOTFOUND;
    /* the claim is the update that finds the run still unclaimed: of two workers that
     * read the same run, one changes the row and the other finds it claimed */
    int64_t n = 0;
    r = pd_db_exec(tx,
                   "UPDATE report_runs SET claimed_until = ?, attempts = attempts + 1 "
                   "WHERE id = ? AND status = 'pending' AND claimed_until < ?",
                   PD_SQL_ARGS(PD_SQL_I(until), PD_SQL_S(out->id), PD_SQL_I(now)), &n);
    if (r != 0)
        return r;
    if (n != 1)
        return PD_ERR_NOTFOUND;
    out->claimed_until = until;
    out->attempts++;
    return 0;
}

int
pd_report_run_finish(pd_db_t *tx, const pd_report_run_rec_t *x)
{
    int64_t n = 0;
    int r = pd_db_exec(tx,
                       "UPDATE report_runs SET status = ?, error = ?, result_file = ?, succeeded_at = ? "
                       "WHERE id = ? AND status = 'pending'",
                       PD_SQL_ARGS(PD_SQL_S(x->status), pd_repo_opt(x->error), pd_repo_opt(x->result_file),
                                   PD_SQL_I(x->succeeded_at), PD_SQL_S(x->id)),
                       &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_STATE;
}
