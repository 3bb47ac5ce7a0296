/*
 * The store's reader threads (pd_store_read, store.readers): reads run on a reader
 * thread with a connection of its own, a full queue refuses with PD_ERR_AGAIN, close
 * runs what is queued, and readers = 0 reads inline. On SQLite and, as .../postgres,
 * on the test's PostgreSQL.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "payd/error.h"
#include "payd/records.h"
#include "payd/store.h"
#include "pg_server.h"
#include "store_fixture.h"

static int
setup(void **state)
{
    (void)state;
    return pd_tf_setup("rpool");
}

static int
teardown(void **state)
{
    (void)state;
    return pd_tf_teardown();
}

static pd_store_t *
open_store(int64_t readers, int64_t read_queue)
{
    pd_store_config_t c = {.max_batch = 512, .max_queue = 100000, .readers = readers, .read_queue = read_queue};
    return pd_tf_open(&c, 1);
}

/* what the reads saw, shared by the test and the reader threads */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, read_ok, off_thread, gate_open;
    pthread_t caller;
} seen_t;

static void
seen_init(seen_t *x)
{
    memset(x, 0, sizeof(*x));
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    x->caller = pthread_self();
}

static void
seen_free(seen_t *x)
{
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
}

/* a real read: the store's key epoch */
static void
read_epoch(pd_db_t *db, void *arg)
{
    seen_t *x = arg;
    int64_t e = -1;
    bool ok = db != NULL && pd_key_epoch(db, &e) == 0 && e >= 0;
    pthread_mutex_lock(&x->mu);
    x->read_ok += ok;
    x->off_thread += !pthread_equal(pthread_self(), x->caller);
    x->done++;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

/* waits for the gate, then reads */
static void
read_gated(pd_db_t *db, void *arg)
{
    seen_t *x = arg;
    pthread_mutex_lock(&x->mu);
    while (!x->gate_open)
        pthread_cond_wait(&x->cv, &x->mu);
    pthread_mutex_unlock(&x->mu);
    read_epoch(db, arg);
}

static void
wait_done(seen_t *x, int n)
{
    pthread_mutex_lock(&x->mu);
    while (x->done < n)
        pthread_cond_wait(&x->cv, &x->mu);
    pthread_mutex_unlock(&x->mu);
}

static void
reads_run_on_reader_threads(void **state)
{
    (void)state;
    pd_store_t *s = open_store(3, 4096);
    seen_t x;
    seen_init(&x);
    assert_true(pd_store_reads_offloaded(s));
    for (int i = 0; i < 200; i++)
        assert_int_equal(pd_store_read(s, read_epoch, &x), 0);
    wait_done(&x, 200);
    assert_int_equal(x.read_ok, 200);
    assert_int_equal(x.off_thread, 200);
    pd_store_stats_t st;
    for (int i = 0; i < 1000; i++) { /* a read is counted once its function has returned */
        pd_store_stats(s, &st);
        if (st.reads == 200)
            break;
        usleep(1000);
    }
    assert_int_equal(st.read_threads, 3);
    assert_int_equal(st.reads, 200);
    assert_true(st.readers >= 1 && st.readers <= 3); /* a connection per reader thread that read */
    pd_store_close(s);
    seen_free(&x);
}

static void
a_full_queue_refuses(void **state)
{
    (void)state;
    pd_store_t *s = open_store(1, 16);
    seen_t x;
    seen_init(&x);
    /* the one reader is held by the first read; 16 more wait; the next is refused */
    assert_int_equal(pd_store_read(s, read_gated, &x), 0);
    for (;;) { /* until the reader has taken it off the queue */
        pd_store_stats_t st;
        pd_store_stats(s, &st);
        if (st.reads_busy == 1)
            break;
        usleep(1000);
    }
    for (int i = 0; i < 16; i++)
        assert_int_equal(pd_store_read(s, read_epoch, &x), 0);
    assert_int_equal(pd_store_read(s, read_epoch, &x), PD_ERR_AGAIN);
    pd_store_stats_t st;
    pd_store_stats(s, &st);
    assert_int_equal(st.reads_queued, 16);
    assert_int_equal(st.read_queue_full, 1);
    pthread_mutex_lock(&x.mu);
    x.gate_open = 1;
    pthread_cond_broadcast(&x.cv);
    pthread_mutex_unlock(&x.mu);
    wait_done(&x, 17);
    assert_int_equal(x.read_ok, 17);
    pd_store_close(s);
    seen_free(&x);
}

static void
close_runs_what_is_queued(void **state)
{
    (void)state;
    pd_store_t *s = open_store(2, 4096);
    seen_t x;
    seen_init(&x);
    for (int i = 0; i < 50; i++)
        assert_int_equal(pd_store_read(s, read_epoch, &x), 0);
    pd_store_close(s);
    assert_int_equal(x.done, 50);
    assert_int_equal(x.read_ok, 50);
    seen_free(&x);
}

static void
no_readers_reads_inline(void **state)
{
    (void)state;
    pd_store_t *s = open_store(0, 4096);
    seen_t x;
    seen_init(&x);
    assert_false(pd_store_reads_offloaded(s));
    assert_int_equal(pd_store_read(s, read_epoch, &x), 0);
    assert_int_equal(x.done, 1); /* before pd_store_read returned */
    assert_int_equal(x.read_ok, 1);
    assert_int_equal(x.off_thread, 0);
    pd_store_close(s);
    seen_free(&x);
}

static void
the_default_follows_the_backend(void **state)
{
    (void)state;
    pd_store_t *s = open_store(-1, 4096);
    pd_store_stats_t st;
    pd_store_stats(s, &st);
    /* 4 reader threads on PostgreSQL; SQLite reads inline */
    assert_int_equal(st.read_threads, pd_pg_wanted() ? 4 : 0);
    assert_int_equal(pd_store_reads_offloaded(s), pd_pg_wanted());
    pd_store_close(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reads_run_on_reader_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(a_full_queue_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(close_runs_what_is_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(no_readers_reads_inline, setup, teardown),
        cmocka_unit_test_setup_teardown(the_default_follows_the_backend, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
