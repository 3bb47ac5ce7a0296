/*
 * Copying a payments store from SQLite into PostgreSQL (payctl store migrate).
 *
 * Both databases must already be at this binary's schema (the caller opens each
 * with pd_store_open first, which applies the migrations and refuses a database that
 * is not payd's or is newer). The copy then:
 *   - refuses a destination in which any payd table has a row (besides the seed
 *     rows the migrations insert, which the source's replace);
 *   - copies every table with COPY ... FROM STDIN inside ONE transaction, so a
 *     failure at any point leaves the destination as empty as it was;
 *   - moves the identity sequences past the copied ids;
 *   - after the commit, counts every table on both sides.
 * The source is opened read-only and never written.
 */
#ifndef PAYD_STORE_COPY_H
#define PAYD_STORE_COPY_H

#include <stddef.h>
#include <stdint.h>

#include "payd/error.h"

/* Called after each table is copied (rows: its row count) and once per table verified
 * (verified = 1). */
typedef void (*pd_copy_progress_fn)(void *arg, const char *table, int64_t rows, int verified);

typedef struct {
    int64_t tables, rows; /* copied */
} pd_copy_report_t;

/* PD_ERR_STATE: the destination has rows, or a count differs after the copy;
 * PD_ERR_UNAVAILABLE / PD_ERR_AUTH: cannot connect; PD_ERR_IO: the source cannot be
 * read; PD_ERR_INVALID: a value PostgreSQL cannot hold (text with a NUL byte).
 * err gets one line naming the table and the cause (never a password). */
int pd_store_copy_to_postgres(const char *sqlite_path, const char *url, const char *password,
                              pd_copy_progress_fn progress, void *arg, pd_copy_report_t *rep, char *err,
                              size_t cap) PD_WUR;

#endif
