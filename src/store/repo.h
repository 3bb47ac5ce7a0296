/* Repository internals shared by the repo_*.c files. */
#ifndef PAYD_STORE_REPO_H
#define PAYD_STORE_REPO_H

#include <string.h>

#include "payd/records.h"

/* copies a text column (truncating never: too long -> PD_ERR_TOOBIG) */
#define COPY(row, col, field)                                                                                          \
    do {                                                                                                               \
        int _r = pd_row_copy((row), (col), (field), sizeof(field));                                                   \
        if (_r != 0)                                                                                                   \
            return _r;                                                                                                 \
    } while (0)

/* a nullable text column duplicated into the arena (NULL stays NULL) */
char *pd_repo_dup(pd_arena_t *a, const pd_row_t *r, int col);
/* "" -> SQL NULL */
pd_sqlval_t pd_repo_opt(const char *s);

typedef int (*pd_decode_fn)(const pd_row_t *r, pd_arena_t *a, void *rec);

typedef struct {
    /* ... WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR filter = ?) AND created >= ? AND
     * created <= ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?: the id breaks ties, as
     * nodes can give two objects one seq */
    const char *sql_desc;
    const char *sql_asc;  /* same with (seq, id) > (?, ?) ORDER BY seq ASC, id ASC */
    const char *sql_seq;  /* SELECT seq FROM t WHERE id = ? AND merchant_id = ? AND livemode = ? */
    pd_decode_fn decode;
    size_t rec_size;
    bool filter2; /* the SQL has (? IS NULL OR f2 = ?) after the filter's, bound to q->filter2 */
} pd_list_def_t;

int pd_list_run(pd_db_t *db, pd_arena_t *a, const pd_list_def_t *def, const char *merchant, bool livemode,
                const pd_list_q_t *q, pd_rec_fn fn, void *arg, bool *has_more);

/* A search window (records.h, pd_search_q_t): runs sql (its last two columns the row's
 * pre-filter flag and nothing else after it; seq at seq_col, id at 0) with args, decoding
 * each row that passed into a record of rec_size in an arena of its own, freed after fn. */
int pd_search_run(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, int seq_col, int flag_col,
                  pd_decode_fn decode, size_t rec_size, pd_search_fn fn, void *arg, int64_t *rows);
/* the pre-filter's text value: lower-case in the caller's buffer, or NULL */
#define PD_SEARCH_PRE_ARGS(q)                                                                                          \
    PD_SQL_S((q)->status), PD_SQL_S((q)->status), PD_SQL_S((q)->currency), PD_SQL_S((q)->currency),                  \
        PD_SQL_S((q)->customer), PD_SQL_S((q)->customer), PD_SQL_I((q)->amount_gte), PD_SQL_I((q)->amount_lte),      \
        PD_SQL_I((q)->created_gte), PD_SQL_I((q)->created_lte)
#define PD_SEARCH_PRE_SQL                                                                                              \
    "CASE WHEN (? IS NULL OR LOWER(status) = ?) AND (? IS NULL OR LOWER(currency) = ?) AND "                           \
    "(? IS NULL OR LOWER(customer) = ?) AND amount >= ? AND amount <= ? AND created >= ? AND created <= ? "           \
    "THEN 1 ELSE 0 END"

/* get one row by (id, merchant, livemode) with decode; PD_ERR_NOTFOUND if none */
int pd_get_one(pd_db_t *db, const char *sql, pd_decode_fn decode, pd_arena_t *a, void *rec, const char *merchant,
               bool livemode, const char *id);

#endif
