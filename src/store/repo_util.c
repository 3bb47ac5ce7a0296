#include <stdlib.h>
#include <time.h>

#include "payd/time.h"
#include "store/repo.h"

char *
pd_repo_dup(pd_arena_t *a, const pd_row_t *r, int col)
{
    if (pd_row_is_null(r, col))
        return NULL;
    pd_view_t v = pd_row_text(r, col);
    return pd_arena_strndup(a, v.p, v.len);
}

pd_sqlval_t
pd_repo_opt(const char *s)
{
    return s != NULL && s[0] != '\0' ? pd_sql_text(s) : (pd_sqlval_t){.t = PD_SQL_NULL};
}

typedef struct {
    pd_decode_fn decode;
    pd_arena_t *a;
    size_t rec_size;
    void **recs;
    size_t n, cap;
    int err;
} collect_t;

static int
collect_row(const pd_row_t *r, void *arg)
{
    collect_t *c = arg;
    if (c->n == c->cap)
        return 1;
    void *rec = pd_arena_calloc(c->a, c->rec_size);
    if (rec == NULL)
        return PD_ERR_NOMEM;
    int rc = c->decode(r, c->a, rec);
    if (rc != 0)
        return rc;
    c->recs[c->n++] = rec;
    return 0;
}

int
pd_list_run(pd_db_t *db, pd_arena_t *a, const pd_list_def_t *def, const char *merchant, bool livemode,
            const pd_list_q_t *q, pd_rec_fn fn, void *arg, bool *has_more)
{
    int64_t cursor = INT64_MAX;
    bool asc = false;
    int r;
    const char *cid = q->starting_after != NULL ? q->starting_after : q->ending_before;
    if (cid != NULL) {
        r = pd_db_query_int(db, def->sql_seq, PD_SQL_ARGS(PD_SQL_S(cid), PD_SQL_S(merchant), PD_SQL_I(livemode)),
                            &cursor);
        if (r != 0)
            return r; /* PD_ERR_NOTFOUND: the cursor object does not exist */
        asc = q->ending_before != NULL;
    }
    collect_t c = {def->decode, a, def->rec_size, NULL, 0, (size_t)q->limit + 1, 0};
    if ((c.recs = pd_arena_alloc(a, sizeof(void *) * c.cap)) == NULL)
        return PD_ERR_NOMEM;
    int64_t gte = q->created_range ? q->created_gte : INT64_MIN, lte = q->created_range ? q->created_lte : INT64_MAX;
    if (def->filter2)
        r = pd_db_query(db, asc ? def->sql_asc : def->sql_desc,
                        PD_SQL_ARGS(PD_SQL_S(merchant), PD_SQL_I(livemode), PD_SQL_S(q->filter), PD_SQL_S(q->filter),
                                    PD_SQL_S(q->filter2), PD_SQL_S(q->filter2), PD_SQL_I(gte), PD_SQL_I(lte),
                                    PD_SQL_I(cursor), PD_SQL_S(cid != NULL ? cid : ""), PD_SQL_I(q->limit + 1)),
                        collect_row, &c);
    else
        r = pd_db_query(db, asc ? def->sql_asc : def->sql_desc,
                        PD_SQL_ARGS(PD_SQL_S(merchant), PD_SQL_I(livemode), PD_SQL_S(q->filter), PD_SQL_S(q->filter),
                                    PD_SQL_I(gte), PD_SQL_I(lte), PD_SQL_I(cursor), PD_SQL_S(cid != NULL ? cid : ""),
                                    PD_SQL_I(q->limit + 1)),
                        collect_row, &c);
    if (r != 0)
        return r;
    *has_more = c.n > (size_t)q->limit;
    size_t n = *has_more ? (size_t)q->limit : c.n;
    /* lists are newest first: an ending_before page was read oldest first */
    for (size_t i = 0; i < n; i++) {
        void *rec = asc ? c.recs[n - 1 - i] : c.recs[i];
        if ((r = fn(rec, arg)) != 0)
            return r;
    }
    return 0;
}

typedef struct {
    pd_decode_fn decode;
    pd_arena_t *a;
    void *rec;
    bool found;
} one_t;

static int
one_row(const pd_row_t *r, void *arg)
{
    one_t *o = arg;
    o->found = true;
    int rc = o->decode(r, o->a, o->rec);
    return rc != 0 ? rc : 1;
}

int
pd_get_one(pd_db_t *db, const char *sql, pd_decode_fn decode, pd_arena_t *a, void *rec, const char *merchant,
           bool livemode, const char *id)
{
    one_t o = {decode, a, rec, false};
    int r = pd_db_query(db, sql, PD_SQL_ARGS(PD_SQL_S(id), PD_SQL_S(merchant), PD_SQL_I(livemode)), one_row, &o);
    if (r != 0)
        return r;
    return o.found ? 0 : PD_ERR_NOTFOUND;
}

typedef struct {
    int seq_col, flag_col;
    pd_decode_fn decode;
    size_t rec_size;
    pd_search_fn fn;
    void *arg;
    int64_t rows;
} search_run_t;

static int
search_row(const pd_row_t *r, void *arg)
{
    search_run_t *s = arg;
    s->rows++;
    pd_view_t id = pd_row_text(r, 0);
    int64_t seq = pd_row_int(r, s->seq_col);
    if (pd_row_int(r, s->flag_col) == 0)
        return s->fn(NULL, seq, (const char *)id.p, s->arg);
    /* each record in an arena of its own: a window of rows that do not match keeps
     * nothing, whatever its length */
    pd_arena_t a;
    pd_arena_init(&a, 4u << 20);
    void *rec = pd_arena_calloc(&a, s->rec_size);
    int rc = rec != NULL ? s->decode(r, &a, rec) : PD_ERR_NOMEM;
    if (rc == 0)
        rc = s->fn(rec, seq, (const char *)id.p, s->arg);
    pd_arena_free(&a);
    return rc;
}

int
pd_search_run(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, int seq_col, int flag_col,
              pd_decode_fn decode, size_t rec_size, pd_search_fn fn, void *arg, int64_t *rows)
{
    search_run_t s = {seq_col, flag_col, decode, rec_size, fn, arg, 0};
    int r = pd_db_query(db, sql, args, nargs, search_row, &s);
    *rows = s.rows;
    return r;
}
