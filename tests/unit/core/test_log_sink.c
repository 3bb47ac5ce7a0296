/* Log files: rotation by size, and the retention that removes old rotated files. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "payd/log.h"

#define DAY_S 86400

static char dir[64], path[128];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-log-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/access.log", dir);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* path.i, last written days_ago days ago */
static void
rotated(unsigned i, int days_ago)
{
    char name[160];
    snprintf(name, sizeof(name), "%s.%u", path, i);
    FILE *f = fopen(name, "w");
    assert_non_null(f);
    fputs("{\"old\":true}\n", f);
    fclose(f);
    struct timespec t[2] = {{.tv_sec = time(NULL) - (time_t)days_ago * DAY_S}, {.tv_sec = time(NULL) - (time_t)days_ago * DAY_S}};
    assert_int_equal(utimensat(AT_FDCWD, name, t, 0), 0);
}

static bool
exists(unsigned i)
{
    char name[160];
    struct stat st;
    snprintf(name, sizeof(name), "%s.%u", path, i);
    return stat(name, &st) == 0;
}

static void
files_older_than_the_retention_go_at_start_and_at_rotation(void **state)
{
    (void)state;
    rotated(1, 10);
    rotated(2, 89);
    rotated(3, 91);
    rotated(4, 200);
    pd_log_sink_t *s = NULL;
    assert_int_equal(pd_log_sink_open(&s, path, 64, 10), 0);
    pd_log_sink_set_retention(s, 90ULL * DAY_S * 1000);
    /* at start: 91 and 200 days old removed, 10 and 89 kept */
    assert_true(exists(1));
    assert_true(exists(2));
    assert_false(exists(3));
    assert_false(exists(4));
    /* a rotation shifts them (.1 -> .2, .2 -> .3) and applies the retention again */
    rotated(2, 95); /* now .2 is past the retention; it becomes .3 at the rotation */
    char line[80];
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 2] = '\n';
    pd_log_sink_write(s, line, sizeof(line) - 1); /* past max_bytes: rotates */
    assert_true(exists(1));  /* the file just rotated */
    assert_true(exists(2));  /* 10 days old */
    assert_false(exists(3)); /* 95 days old: removed */
    pd_log_sink_free(s);
}

static void
no_retention_keeps_what_keep_allows(void **state)
{
    (void)state;
    rotated(1, 400);
    rotated(2, 500);
    pd_log_sink_t *s = NULL;
    assert_int_equal(pd_log_sink_open(&s, path, 0, 10), 0);
    pd_log_sink_set_retention(s, 0);
    assert_true(exists(1));
    assert_true(exists(2));
    pd_log_sink_free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(files_older_than_the_retention_go_at_start_and_at_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(no_retention_keeps_what_keep_allows, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
