/* The vault's privilege helpers: a recursive chown that never follows a symbolic link
 * out of the directory nor hands over a hard-linked file, and the hardening calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vault/privs.h"

#define NOBODY 65534

static char base[64];

static void
path(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", base, rel);
}

static void
make_file(const char *rel)
{
    char p[256];
    path(p, sizeof(p), rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fclose(f), 0);
}

static void
make_dir(const char *rel)
{
    char p[256];
    path(p, sizeof(p), rel);
    assert_int_equal(mkdir(p, 0700), 0);
}

static uid_t
owner(const char *rel, bool follow)
{
    char p[256];
    struct stat st;
    path(p, sizeof(p), rel);
    assert_int_equal(follow ? stat(p, &st) : lstat(p, &st), 0);
    return st.st_uid;
}

static int
setup(void **state)
{
    (void)state;
    if (geteuid() != 0)
        return 0;
    snprintf(base, sizeof(base), "/tmp/payd-vprivs-XXXXXX");
    if (mkdtemp(base) == NULL)
        return -1;
    make_dir("vault");
    make_dir("vault/sub");
    make_dir("vault/sub/deeper");
    make_file("vault/a");
    make_file("vault/sub/b");
    make_file("vault/sub/deeper/c");
    make_dir("outside");
    make_dir("outside/dir");
    make_file("outside/target");
    make_file("outside/dir/f");
    char t[256], l[256];
    path(t, sizeof(t), "outside/target");
    path(l, sizeof(l), "vault/link_out");
    assert_int_equal(symlink(t, l), 0);
    path(t, sizeof(t), "outside/dir");
    path(l, sizeof(l), "vault/sub/dirlink");
    assert_int_equal(symlink(t, l), 0);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];
    if (base[0] == '\0')
        return 0;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
    return getenv("PAYD_TEST_KEEP") != NULL || system(cmd) == 0 ? 0 : -1;
}

static void
chown_tree_changes_the_tree_and_never_what_a_link_points_to(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char dir[256], err[256] = "";
    path(dir, sizeof(dir), "vault");
    assert_int_equal(pd_vault_chown_tree(dir, NOBODY, NOBODY, err, sizeof(err)), 0);
    static const char *const inside[] = {"vault", "vault/a", "vault/sub", "vault/sub/b", "vault/sub/deeper",
                                         "vault/sub/deeper/c"};
    for (size_t i = 0; i < sizeof(inside) / sizeof(inside[0]); i++)
        if (owner(inside[i], false) != NOBODY)
            fail_msg("%s was not handed over", inside[i]);
    /* the links themselves change hands; what they point to does not */
    assert_int_equal(owner("vault/link_out", false), NOBODY);
    assert_int_equal(owner("vault/sub/dirlink", false), NOBODY);
    assert_int_equal(owner("outside/target", true), 0);
    assert_int_equal(owner("outside/dir", true), 0);
    assert_int_equal(owner("outside/dir/f", true), 0);
}

static void
chown_tree_refuses_a_hard_linked_file(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char dir[256], t[256], l[256], err[256] = "";
    path(dir, sizeof(dir), "vault");
    path(t, sizeof(t), "outside/target");
    path(l, sizeof(l), "vault/sub/hardlink");
    assert_int_equal(link(t, l), 0);
    assert_int_equal(pd_vault_chown_tree(dir, NOBODY, NOBODY, err, sizeof(err)), PD_ERR_PERM);
    assert_non_null(strstr(err, "hard links"));
    assert_int_equal(owner("outside/target", true), 0);
    /* a missing directory is an error that names it */
    path(dir, sizeof(dir), "missing");
    assert_int_not_equal(pd_vault_chown_tree(dir, NOBODY, NOBODY, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "missing"));
}

static void
harden_turns_core_dumps_off_and_makes_the_process_non_dumpable(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(pd_vault_harden(err, sizeof(err)), 0);
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_CORE, &rl), 0);
    assert_int_equal(rl.rlim_cur, 0);
    assert_int_equal(rl.rlim_max, 0);
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(chown_tree_changes_the_tree_and_never_what_a_link_points_to, setup, teardown),
        cmocka_unit_test_setup_teardown(chown_tree_refuses_a_hard_linked_file, setup, teardown),
        cmocka_unit_test(harden_turns_core_dumps_off_and_makes_the_process_non_dumpable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
