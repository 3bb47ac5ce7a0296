#include <string.h>

#include "payd/db.h"

int64_t pd_row_int(const pd_row_t *r, int col) { return r->ops->row_int(r, col); }
bool pd_row_is_null(const pd_row_t *r, int col) { return r->ops->row_is_null(r, col); }
pd_view_t pd_row_text(const pd_row_t *r, int col) { return r->ops->row_text(r, col); }

int
pd_row_copy(const pd_row_t *r, int col, char *dst, size_t cap)
{
    return pd_view_to_cstr(pd_row_text(r, col), dst, cap);
}

int
pd_db_exec(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, int64_t *changes)
{
    return db->ops->exec(db, sql, args, nargs, changes);
}

int
pd_db_exec_deferred(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs)
{
    if (db->ops->exec_deferred == NULL)
        return db->ops->exec(db, sql, args, nargs, NULL);
    return db->ops->exec_deferred(db, sql, args, nargs);
}

int
pd_db_flush(pd_db_t *db)
{
    return db->ops->flush != NULL ? db->ops->flush(db) : 0;
}

int
pd_db_query(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, pd_row_fn fn, void *arg)
{
    return db->ops->query(db, sql, args, nargs, fn, arg);
}

typedef struct {
    bool found;
    int64_t v;
} first_t;

static int
first_int(const pd_row_t *r, void *arg)
{
    first_t *f = arg;
    f->found = true;
    f->v = pd_row_int(r, 0);
    return 1;
}

int
pd_db_query_int(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, int64_t *out)
{
    first_t f = {false, 0};
    int r = pd_db_query(db, sql, args, nargs, first_int, &f);
    if (r != 0)
        return r;
    if (!f.found)
        return PD_ERR_NOTFOUND;
    *out = f.v;
    return 0;
}
