/* pd_cred: the forms of a secret's value, a fixed credential, and a credential whose
 * source is asked again after a refused login. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "payd/cred.h"

static void
values_are_a_password_or_user_newline_password(void **state)
{
    (void)state;
    char u[16], p[32];
    assert_int_equal(pd_cred_parse(PD_VIEW_LIT("s3cret"), u, sizeof(u), p, sizeof(p)), 0);
    assert_string_equal(u, "");
    assert_string_equal(p, "s3cret");
    assert_int_equal(pd_cred_parse(PD_VIEW_LIT("payd_clone\nx:y@z"), u, sizeof(u), p, sizeof(p)), 0);
    assert_string_equal(u, "payd_clone");
    assert_string_equal(p, "x:y@z");
    /* refused: no password, no user before the newline, a second line, a NUL, too long */
    static const pd_view_t bad[] = {PD_VIEW_LIT(""), PD_VIEW_LIT("payd\n"), PD_VIEW_LIT("\npw"),
                                    PD_VIEW_LIT("payd\npw\nmore"), PD_VIEW_LIT("pa\0ss"),
                                    PD_VIEW_LIT("a-user-name-longer-than-16\npw"),
                                    PD_VIEW_LIT("a-password-longer-than-32-bytes-x")};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pd_cred_parse(bad[i], u, sizeof(u), p, sizeof(p)), PD_ERR_INVALID);
}

static void
a_fixed_credential_has_nothing_to_fetch(void **state)
{
    (void)state;
    pd_cred_t *c;
    char u[16], p[32];
    bool has = true;
    assert_int_equal(pd_cred_new_static(&c, NULL), 0);
    assert_int_equal(pd_cred_get(c, u, sizeof(u), p, sizeof(p), &has, NULL), 0);
    assert_false(has);
    assert_false(pd_cred_is_secret(c));
    assert_int_equal(pd_cred_refresh(c, 0), PD_ERR_STATE); /* a refusal is final */
    pd_cred_free(c);
    assert_int_equal(pd_cred_new_static(&c, "pw"), 0);
    assert_int_equal(pd_cred_get(c, u, sizeof(u), p, sizeof(p), &has, NULL), 0);
    assert_true(has);
    assert_string_equal(p, "pw");
    assert_int_equal(pd_cred_get(c, u, sizeof(u), p, 2, &has, NULL), PD_ERR_TOOBIG);
    pd_cred_free(c);
}

/* a source whose value is whatever the test last stored */
typedef struct {
    const char *value;
    int fetches;
} src_t;

static int
fetch(void *arg, const char *name, pd_buf_t *value, char *why, size_t whycap)
{
    src_t *s = arg;
    s->fetches++;
    if (s->value == NULL) {
        snprintf(why, whycap, "no such secret: %s", name);
        return PD_ERR_NOTFOUND;
    }
    return pd_buf_put_cstr(value, s->value);
}

static void
a_refused_login_fetches_once_unless_newer_arrived(void **state)
{
    (void)state;
    src_t s = {NULL, 0};
    pd_secret_source_t src = {.fetch = fetch, .arg = &s};
    pd_cred_t *c = NULL;
    char why[200], u[16], p[32];
    bool has;
    uint64_t g0, g1;
    /* an unknown secret: the source's reason */
    assert_int_equal(pd_cred_new_secret(&c, &src, "payd/db", why, sizeof(why)), PD_ERR_NOTFOUND);
    assert_string_equal(why, "no such secret: payd/db");
    /* a value that is not a login */
    s.value = "payd\n";
    assert_int_not_equal(pd_cred_new_secret(&c, &src, "payd/db", why, sizeof(why)), 0);
    assert_non_null(strstr(why, "is not a password"));
    s.value = "payd\nold";
    assert_int_equal(pd_cred_new_secret(&c, &src, "payd/db", why, sizeof(why)), 0);
    assert_true(pd_cred_is_secret(c));
    assert_string_equal(pd_cred_secret_name(c), "payd/db");
    assert_int_equal(pd_cred_get(c, u, sizeof(u), p, sizeof(p), &has, &g0), 0);
    assert_string_equal(p, "old");
    /* rotated: the refusal of generation g0 fetches the new value */
    s.value = "payd_clone\nnew";
    int before = s.fetches;
    assert_int_equal(pd_cred_refresh(c, g0), 0);
    assert_int_equal(s.fetches, before + 1);
    assert_int_equal(pd_cred_get(c, u, sizeof(u), p, sizeof(p), &has, &g1), 0);
    assert_true(g1 > g0);
    assert_string_equal(u, "payd_clone");
    assert_string_equal(p, "new");
    /* a refusal of an older generation does not fetch again: a newer value is there */
    assert_int_equal(pd_cred_refresh(c, g0), 0);
    assert_int_equal(s.fetches, before + 1);
    pd_cred_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_are_a_password_or_user_newline_password),
        cmocka_unit_test(a_fixed_credential_has_nothing_to_fetch),
        cmocka_unit_test(a_refused_login_fetches_once_unless_newer_arrived),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
