#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "payd/audit.h"

static char path[64];

static pd_db_t *
fresh_log(int n)
{
    pd_db_t *db;
    pd_audit_chain_t c;
    snprintf(path, sizeof(path), "/tmp/payd-audit-%d.db", (int)getpid());
    unlink(path);
    assert_int_equal(pd_db_open_sqlite(&db, path, true), 0);
    assert_int_equal(pd_db_script(db, pd_audit_schema), 0);
    assert_int_equal(pd_audit_load(db, &c), 0);
    for (int i = 0; i < n; i++) {
        char res[32];
        snprintf(res, sizeof(res), "card_%d", i);
        pd_audit_rec_t r = {"api", "card.tokenize", res, "success", "uds:pid=1", "brand=visa"};
        assert_int_equal(pd_audit_append(db, &c, 1700000000 + i, &r), 0);
    }
    return db;
}

static void
drop(pd_db_t *db)
{
    pd_db_close(db);
    char p[96];
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

static void
intact_chain_verifies_and_reloads(void **state)
{
    (void)state;
    pd_db_t *db = fresh_log(10);
    pd_audit_report_t rep;
    assert_int_equal(pd_audit_verify(db, &rep), 0);
    assert_int_equal(rep.records, 10);
    pd_audit_chain_t c;
    assert_int_equal(pd_audit_load(db, &c), 0);
    assert_int_equal(c.seq, 10);
    pd_audit_rec_t r = {"admin", "kms.rotate", "alias/cards", "success", "cli", ""};
    assert_int_equal(pd_audit_append(db, &c, 1700000100, &r), 0);
    assert_int_equal(pd_audit_verify(db, &rep), 0);
    assert_int_equal(rep.records, 11);
    drop(db);
}

static void
edits_deletions_reorders_and_insertions_are_detected(void **state)
{
    (void)state;
    static const char *tamper[] = {
        "UPDATE audit_log SET outcome = 'failure:denied' WHERE seq = 4",
        "DELETE FROM audit_log WHERE seq = 5",
        "UPDATE audit_log SET seq = 100 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 6;"
        "UPDATE audit_log SET seq = 6 WHERE seq = 100",
        "UPDATE audit_log SET ts = ts + 1 WHERE seq = 7",
        "DELETE FROM audit_log WHERE seq = 1",
    };
    static const int64_t first_bad[] = {4, 5, 3, 7, 1};
    for (size_t i = 0; i < sizeof(tamper) / sizeof(tamper[0]); i++) {
        pd_db_t *db = fresh_log(8);
        pd_audit_report_t rep;
        assert_int_equal(pd_db_script(db, tamper[i]), 0);
        assert_int_equal(pd_audit_verify(db, &rep), PD_ERR_AUTH);
        if (rep.first_bad_seq != first_bad[i])
            fail_msg("%s: first bad %lld (%s)", tamper[i], (long long)rep.first_bad_seq, rep.problem);
        assert_true(rep.problem[0] != '\0');
        drop(db);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(intact_chain_verifies_and_reloads),
        cmocka_unit_test(edits_deletions_reorders_and_insertions_are_detected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
