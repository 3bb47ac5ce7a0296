/*
 * A full disk under the store: writes are refused with a clear 503, /readyz answers
 * 503 with the reason while they are, and both recover once space is freed (a
 * failed commit recovers; a failed sync would not, see docs/architecture.md).
 *
 * The store's database lives on a small tmpfs mounted for the test (root only; the
 * test is skipped otherwise); the rest of the data directory, with payd's log, stays
 * on the normal disk. The tmpfs is unmounted in the teardown, whatever happened.
 */
#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"
#include "harness.h"

static char mnt[64];      /* the tmpfs */
static char filler[128];  /* the file that fills it */
static bool mounted;
static pd_h_payd_t payd;  /* stopped in the teardown too, so that the tmpfs is not busy */

static int
setup(void **state)
{
    (void)state;
    snprintf(mnt, sizeof(mnt), "/tmp/payd-full-XXXXXX");
    if (geteuid() != 0 || mkdtemp(mnt) == NULL)
        return 0;
    mounted = mount("tmpfs", mnt, "tmpfs", 0, "size=8m,mode=0700") == 0;
    if (!mounted)
        print_message("cannot mount a tmpfs on %s: %s\n", mnt, strerror(errno));
    /* payd started as root writes its store as [server] user */
    struct passwd *pw = getpwnam("payd");
    if (mounted && pw != NULL && chown(mnt, pw->pw_uid, pw->pw_gid) != 0)
        print_message("cannot give %s to payd: %s\n", mnt, strerror(errno));
    snprintf(filler, sizeof(filler), "%s/filler", mnt);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    if (payd.pid > 0 || payd.dir[0] != '\0')
        pd_h_cleanup(&payd);
    memset(&payd, 0, sizeof(payd));
    if (mounted && umount(mnt) != 0 && umount2(mnt, MNT_DETACH) != 0) {
        print_error("cannot unmount %s: %s\n", mnt, strerror(errno));
        return -1;
    }
    mounted = false;
    if (mnt[0] != '\0')
        rmdir(mnt);
    return 0;
}

/* writes to the filler until the file system refuses more; returns the bytes written */
static long long
fill_up(void)
{
    static char chunk[64 * 1024];
    long long total = 0;
    int fd = open(filler, O_WRONLY | O_CREAT | O_APPEND, 0600);
    assert_true(fd >= 0);
    memset(chunk, 'f', sizeof(chunk));
    for (size_t len = sizeof(chunk); len > 0;) {
        ssize_t n = write(fd, chunk, len);
        if (n > 0)
            total += n;
        else if (errno == ENOSPC)
            len /= 2; /* the last pages, smaller and smaller */
        else
            fail_msg("filling the tmpfs: %s", strerror(errno));
    }
    close(fd);
    return total;
}

/* POST /v1/payment_intents (a store write); the status, the error code into code */
static long
create_intent(const pd_h_payd_t *p, char *code, size_t cap)
{
    json_t *o;
    long status = api_call(p, "POST", "/v1/payment_intents", "amount=1000&currency=usd", &o);
    const char *c = jstr(o, "error.code");
    snprintf(code, cap, "%s", c != NULL ? c : "");
    json_decref(o);
    return status;
}

/* GET /readyz on the admin listener; the status, the body into body */
static long
readyz(const pd_h_payd_t *p, char *body, size_t cap)
{
    pd_h_req_t rq = {.admin = true};
    pd_h_resp_t r;
    long status = pd_h_request(p, "GET", "/readyz", &rq, &r) == 0 ? r.status : -1;
    snprintf(body, cap, "%s", r.body != NULL ? r.body : "");
    pd_h_resp_free(&r);
    return status;
}

static const char refused_body[] =
    "{\"status\":\"unavailable\",\"reason\":\"store: writes failing (No space left on device)\"}";

/*
 * Writes until the store refuses one (503 storage_unavailable), checking after each
 * answer that /readyz agrees with it (after an accepted write it may already report a
 * background write refused since). Returns how many it accepted first: on a full
 * disk a write still passes where the WAL has pages already, e.g. after a checkpoint
 * has copied all of it and the writer rewinds it.
 */
static int
write_until_refused(const pd_h_payd_t *p)
{
    char code[64], body[512];
    for (int i = 0; i < 300; i++) {
        long status = create_intent(p, code, sizeof(code));
        if (status == 503) {
            assert_string_equal(code, "storage_unavailable");
            assert_int_equal(readyz(p, body, sizeof(body)), 503);
            assert_string_equal(body, refused_body);
            return i;
        }
        assert_int_equal(status, 200);
        /* ready, unless a background write (the outbox relay's, after this request's event)
         * was refused meanwhile: then readiness says why */
        if (readyz(p, body, sizeof(body)) != 200)
            assert_string_equal(body, refused_body);
    }
    fail_msg("the store took 300 writes on a full disk");
    return -1;
}

static void
a_full_disk_fails_writes_and_readiness_until_space_is_freed(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* mounting a tmpfs needs root */
    assert_true(mounted);
    pd_h_payd_t *p = &payd;
    char store_path[160], body[512], code[64];
    snprintf(store_path, sizeof(store_path), "store.path=%s/payd.db", mnt);
    const char *args[] = {"--set", store_path, NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(p, &o), 0);
    api_load_credentials(p);
    assert_int_equal(create_intent(p, code, sizeof(code)), 200);

    long long filled = fill_up();
    int accepted = write_until_refused(p);
    /* it stays so while the disk is full, also when nothing is written for a while
     * (the store's probes must not find a few pages and call that recovered) */
    for (int i = 0; i < 10; i++) {
        usleep(250 * 1000);
        assert_int_equal(readyz(p, body, sizeof(body)), 503);
        assert_string_equal(body, refused_body);
    }
    /* reads still work */
    json_t *list;
    assert_int_equal(api_call(p, "GET", "/v1/payment_intents?limit=1", NULL, &list), 200);
    json_decref(list);
    int accepted_again = write_until_refused(p);
    print_message("tmpfs filled with %lld bytes; then %d writes accepted before the first refusal, %d after the "
                  "pause\n",
                  filled, accepted, accepted_again);

    assert_int_equal(unlink(filler), 0);
    /* nothing is written meanwhile: the store's own probe brings readiness back */
    long ready = 503;
    for (int i = 0; i < 50 && ready != 200; i++) {
        usleep(100 * 1000);
        ready = readyz(p, body, sizeof(body));
    }
    assert_int_equal(ready, 200);
    assert_int_equal(create_intent(p, code, sizeof(code)), 200);

    char *log = pd_h_log(p);
    assert_non_null(strstr(log, "store refuses writes: not ready until one succeeds"));
    assert_non_null(strstr(log, "store accepts writes again"));
    free(log);
    assert_int_equal(pd_h_stop(p, SIGTERM, 15000), 0);
    pd_h_cleanup(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_full_disk_fails_writes_and_readiness_until_space_is_freed, setup, teardown),
    };
    if (geteuid() != 0)
        print_message("diskfull: skipped, mounting a tmpfs needs root\n");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
