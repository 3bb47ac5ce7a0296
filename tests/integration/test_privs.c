/*
 * The privilege boundary (docs/vault.md, "Trust model"). Started as root, payd serves
 * the network as [server] user (payd) with no capability, the vault runs as [vault]
 * user (payd-vault) and is restarted as that user after a crash by its privileged
 * parent; other users cannot read the vault's credentials or reach its socket; looser
 * modes stop the start; missing users and nobody are refused; dev output holds no full
 * key; started as a normal user, payd says the vault is not isolated.
 *
 * The root cases need root and the users of scripts/deps.sh (CI runs as root).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"

static struct passwd payd_pw, vault_pw;

static int
need_root_and_users(void **state)
{
    (void)state;
    /* getpwnam's answer lives in static storage: copied before the next call */
    struct passwd *a = getpwnam("payd");
    if (a != NULL)
        payd_pw = *a;
    struct passwd *b = getpwnam("payd-vault");
    if (b != NULL)
        vault_pw = *b;
    if (geteuid() != 0 || a == NULL || b == NULL) {
        fprintf(stderr, "test_privs: needs root and the users payd and payd-vault (scripts/deps.sh)\n");
        memset(&payd_pw, 0, sizeof(payd_pw));
        return 0; /* each test skips */
    }
    static char payd_name[] = "payd", vault_name[] = "payd-vault";
    payd_pw.pw_name = payd_name;
    vault_pw.pw_name = vault_name;
    return 0;
}

#define NEED_ROOT()                                                                                                \
    do {                                                                                                           \
        if (payd_pw.pw_name == NULL)                                                                               \
            skip();                                                                                                \
    } while (0)

/* the pid of the n-th (1-based) "vault started as a child" line, or 0 */
static pid_t
vault_pid(const pd_h_payd_t *p, int nth)
{
    char *log = pd_h_log(p);
    const char *at = log;
    pid_t pid = 0;
    for (int i = 0; i < nth && at != NULL; i++) {
        at = strstr(at, "\"msg\":\"vault started as a child\"");
        pid = 0;
        if (at != NULL) {
            const char *q = strstr(at, "\"pid\":");
            pid = q != NULL ? (pid_t)strtol(q + 6, NULL, 10) : 0;
            at++;
        }
    }
    free(log);
    return pid;
}

/* the value of a line of /proc/PID/status ("Uid", "CapEff", ...), or "" */
static void
status_field(pid_t pid, const char *name, char *out, size_t cap)
{
    char path[64], line[512];
    size_t n = strlen(name);
    out[0] = '\0';
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            v += strspn(v, " \t");
            snprintf(out, cap, "%.*s", (int)strcspn(v, "\n"), v);
            break;
        }
    }
    fclose(f);
}

static void
assert_all_ids(pid_t pid, const char *field, unsigned id)
{
    char v[128], want[128];
    status_field(pid, field, v, sizeof(v));
    snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", id, id, id, id);
    if (strcmp(v, want) != 0)
        fail_msg("pid %d: %s is \"%s\", expected \"%s\"", (int)pid, field, v, want);
}

/* how many times msg appears in payd's output */
static int
log_count(const pd_h_payd_t *p, const char *msg)
{
    char *log = pd_h_log(p);
    int n = 0;
    for (const char *at = log; at != NULL && (at = strstr(at, msg)) != NULL; at++)
        n++;
    free(log);
    return n;
}

static void
start_root(pd_h_payd_t *p, const char *reuse)
{
    pd_h_opts_t o = {.reuse_dir = reuse};
    assert_int_equal(pd_h_start(p, &o), 0);
}

/* every thread of payd runs as payd, with no capability; the vault runs as payd-vault,
 * under a root parent that is payd's child and does nothing else */
static void
as_root_payd_serves_as_payd_with_no_capability(void **state)
{
    (void)state;
    NEED_ROOT();
    pd_h_payd_t p;
    char v[128], path[300], pm[64];
    json_t *o;
    start_root(&p, NULL);
    assert_all_ids(p.pid, "Uid", payd_pw.pw_uid);
    assert_all_ids(p.pid, "Gid", payd_pw.pw_gid);
    const char *zero = "0000000000000000";
    status_field(p.pid, "CapEff", v, sizeof(v));
    assert_string_equal(v, zero);
    status_field(p.pid, "CapPrm", v, sizeof(v));
    assert_string_equal(v, zero);
    status_field(p.pid, "CapBnd", v, sizeof(v));
    assert_string_equal(v, zero);
    status_field(p.pid, "NoNewPrivs", v, sizeof(v));
    assert_string_equal(v, "1");
    /* each thread (loops, store writer, workers, vault client) */
    snprintf(path, sizeof(path), "/proc/%d/task", (int)p.pid);
    DIR *d = opendir(path);
    assert_non_null(d);
    int threads = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char tpath[700], line[256];
        snprintf(tpath, sizeof(tpath), "%s/%s/status", path, e->d_name);
        FILE *f = fopen(tpath, "r");
        if (f == NULL)
            continue; /* it ended */
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "Uid:", 4) == 0 || strncmp(line, "CapEff:", 7) == 0) {
                char want[128];
                if (line[0] == 'U')
                    snprintf(want, sizeof(want), "Uid:\t%u\t%u\t%u\t%u\n", payd_pw.pw_uid, payd_pw.pw_uid,
                             payd_pw.pw_uid, payd_pw.pw_uid);
                else
                    snprintf(want, sizeof(want), "CapEff:\t%s\n", zero);
                if (strcmp(line, want) != 0)
                    fail_msg("thread %s: %s", e->d_name, line);
            }
        }
        fclose(f);
        threads++;
    }
    closedir(d);
    assert_true(threads > 3);

    pid_t vp = vault_pid(&p, 1);
    assert_true(vp > 0);
    assert_all_ids(vp, "Uid", vault_pw.pw_uid);
    assert_all_ids(vp, "Gid", vault_pw.pw_gid);
    status_field(vp, "CapEff", v, sizeof(v));
    assert_string_equal(v, zero);
    status_field(vp, "CapBnd", v, sizeof(v));
    assert_string_equal(v, zero);
    status_field(vp, "NoNewPrivs", v, sizeof(v));
    assert_string_equal(v, "1");
    /* the vault's parent: root, payd's child */
    status_field(vp, "PPid", v, sizeof(v));
    pid_t mon = (pid_t)strtol(v, NULL, 10);
    assert_true(mon > 0 && mon != p.pid);
    assert_all_ids(mon, "Uid", 0);
    status_field(mon, "PPid", v, sizeof(v));
    assert_int_equal(strtol(v, NULL, 10), p.pid);

    /* the data dir is payd's, the vault's directory the vault's */
    struct stat st;
    assert_int_equal(stat(p.dir, &st), 0);
    assert_int_equal(st.st_uid, payd_pw.pw_uid);
    snprintf(path, sizeof(path), "%s/payd.db", p.dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, payd_pw.pw_uid);
    snprintf(path, sizeof(path), "%s/vault/vault.db", p.dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, vault_pw.pw_uid);

    /* and it works */
    api_load_credentials(&p);
    assert_int_equal(api_card_pm(&p, "4242424242424242", pm, sizeof(pm)), 200);
    assert_int_equal(api_charge(&p, pm, 1000, "usd", &o), 200);
    assert_string_equal(jstr(o, "status"), "succeeded");
    json_decref(o);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

/* in a child switched to user (with its groups): which of the vault's files it can
 * open and whether it can connect to the socket; bits: 1 api, 2 processor, 4 admin,
 * 8 socket, 16 root.key */
static int
reach_as(const char *user, const char *dir)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct passwd *pw = getpwnam(user);
        if (pw == NULL || initgroups(user, pw->pw_gid) != 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
            setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0)
            _exit(255);
        static const char *const files[] = {"credentials/api", "credentials/processor", "credentials/admin"};
        char path[400];
        int bits = 0;
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof(path), "%s/vault/%s", dir, files[i]);
            int fd = open(path, O_RDONLY);
            if (fd >= 0) {
                bits |= 1 << i;
                close(fd);
            } else if (errno != EACCES) {
                _exit(254);
            }
        }
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/vault/vault.sock", dir);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            bits |= 8;
        snprintf(path, sizeof(path), "%s/vault/root.key", dir);
        int fd = open(path, O_RDONLY);
        if (fd >= 0)
            bits |= 16;
        _exit(bits);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void
other_users_cannot_read_the_credentials_nor_connect(void **state)
{
    (void)state;
    NEED_ROOT();
    pd_h_payd_t p;
    start_root(&p, NULL);
    /* the attacker: a process running as nobody */
    assert_int_equal(reach_as("nobody", p.dir), 0);
    /* payd's own user: the two credentials it may need (socket mode) and the socket,
     * never the admin credential nor the key file */
    assert_int_equal(reach_as("payd", p.dir), 1 | 2 | 8);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

/* waits for a start not waited for to end; returns the exit code (-1: still running) */
static int
exit_code(pd_h_payd_t *p)
{
    int st;
    for (int i = 0; i < 600; i++) {
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(50000);
    }
    (void)pd_h_stop(p, SIGKILL, 5000);
    return -1;
}

static void
expect_refused(pd_h_payd_t *p, const char *needle)
{
    pd_h_opts_t o = {.reuse_dir = p->dir, .no_wait = true};
    assert_int_equal(pd_h_start(p, &o), 0);
    int code = exit_code(p);
    char *log = pd_h_log(p);
    bool ok = code == 1 && strstr(log, needle) != NULL;
    if (!ok)
        print_error("expected exit 1 and \"%s\"; got %d and:\n%s\n", needle, code, log);
    free(log);
    assert_true(ok);
}

static void
looser_modes_stop_the_start(void **state)
{
    (void)state;
    NEED_ROOT();
    pd_h_payd_t p;
    char path[400], needle[500];
    start_root(&p, NULL);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);

    snprintf(path, sizeof(path), "%s/vault/credentials/processor", p.dir);
    assert_int_equal(chmod(path, 0644), 0);
    snprintf(needle, sizeof(needle), "%s has mode 0644", path);
    expect_refused(&p, needle);
    assert_int_equal(chmod(path, 0640), 0);

    snprintf(path, sizeof(path), "%s/vault/credentials/admin", p.dir);
    assert_int_equal(chmod(path, 0640), 0);
    snprintf(needle, sizeof(needle), "%s has mode 0640", path);
    expect_refused(&p, needle);
    assert_int_equal(chmod(path, 0600), 0);

    snprintf(path, sizeof(path), "%s/vault/credentials", p.dir);
    assert_int_equal(chmod(path, 0755), 0);
    snprintf(needle, sizeof(needle), "%s has mode 0755", path);
    expect_refused(&p, needle);
    assert_int_equal(chmod(path, 0710), 0);

    /* a socket left at the vault's path (the vault removes its own at exit), open to everyone */
    snprintf(path, sizeof(path), "%s/vault/vault.sock", p.dir);
    int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof(sun.sun_path));
    memcpy(sun.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(sfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(sfd);
    assert_int_equal(chown(path, vault_pw.pw_uid, vault_pw.pw_gid), 0);
    assert_int_equal(chmod(path, 0666), 0);
    snprintf(needle, sizeof(needle), "%s has mode 0666", path);
    expect_refused(&p, needle);
    assert_int_equal(unlink(path), 0);

    /* a credential that is not the vault's user's */
    snprintf(path, sizeof(path), "%s/vault/credentials/api", p.dir);
    assert_int_equal(chown(path, payd_pw.pw_uid, vault_pw.pw_gid), 0);
    snprintf(needle, sizeof(needle), "%s belongs to uid %u", path, payd_pw.pw_uid);
    expect_refused(&p, needle);
    assert_int_equal(chown(path, vault_pw.pw_uid, vault_pw.pw_gid), 0);

    /* the vault refuses on its own too (payd-vault started by hand, as the operator would) */
    snprintf(path, sizeof(path), "%s/vault/credentials/rotation", p.dir);
    assert_int_equal(chmod(path, 0604), 0);
    char vdir[300], sock[320];
    snprintf(vdir, sizeof(vdir), "%s/vault", p.dir);
    snprintf(sock, sizeof(sock), "%s/vault/vault.sock", p.dir);
    const char *argv[] = {PAYD_VAULT_BIN, "--data-dir", vdir, "--socket", sock, "--dev", "--user", "payd-vault", NULL};
    char *out = NULL;
    int code = pd_h_run(argv, &out);
    bool ok = code == 1 && strstr(out, "credentials/rotation has mode 0604") != NULL;
    if (!ok)
        print_error("payd-vault: exit %d, output:\n%s\n", code, out);
    free(out);
    assert_true(ok);
    assert_int_equal(chmod(path, 0600), 0);

    start_root(&p, p.dir); /* all fixed: it starts */
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

static void
a_killed_vault_is_restarted_as_the_vault_user(void **state)
{
    (void)state;
    NEED_ROOT();
    pd_h_payd_t p;
    char pm[64];
    json_t *o;
    start_root(&p, NULL);
    api_load_credentials(&p);
    assert_int_equal(api_card_pm(&p, "4242424242424242", pm, sizeof(pm)), 200);
    pid_t first = vault_pid(&p, 1);
    assert_true(first > 0);
    assert_int_equal(kill(first, SIGKILL), 0);
    pid_t second = 0;
    for (int i = 0; i < 300 && second == 0; i++) {
        second = vault_pid(&p, 2);
        usleep(20000);
    }
    assert_true(second > 0 && second != first);
    /* started as root, it drops to its user once it has unsealed, before it serves */
    for (int i = 0; i < 1000 && log_count(&p, "\"msg\":\"vault ready\"") < 2; i++)
        usleep(20000);
    assert_int_equal(log_count(&p, "\"msg\":\"vault ready\""), 2);
    long s = 0;
    for (int i = 0; i < 300 && s != 200; i++) {
        pd_h_resp_t r;
        pd_h_req_t rq = {.admin = true, .timeout_ms = 1000};
        s = pd_h_request(&p, "GET", "/readyz", &rq, &r) == 0 ? r.status : -1;
        pd_h_resp_free(&r);
        usleep(20000);
    }
    assert_int_equal(s, 200);
    assert_all_ids(second, "Uid", vault_pw.pw_uid);
    assert_all_ids(p.pid, "Uid", payd_pw.pw_uid);
    assert_int_equal(api_charge(&p, pm, 700, "usd", &o), 200);
    assert_string_equal(jstr(o, "status"), "succeeded");
    json_decref(o);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

static void
dev_output_holds_no_full_secret_key(void **state)
{
    (void)state;
    pd_h_payd_t p;
    char prefix[16], path[400];
    assert_int_equal(pd_h_start(&p, NULL), 0);
    api_load_credentials(&p);
    assert_true(strncmp(api_sk, "sk_test_", 8) == 0 && strlen(api_sk) > 20);
    char *log = pd_h_log(&p); /* payd's stdout and stderr */
    assert_non_null(strstr(log, "payd is running"));
    if (strstr(log, api_sk) != NULL)
        fail_msg("the full secret key is in payd's output");
    snprintf(prefix, sizeof(prefix), "%.12s...", api_sk);
    assert_non_null(strstr(log, prefix));
    snprintf(path, sizeof(path), "%s/credentials.json", p.dir);
    assert_non_null(strstr(log, path));
    free(log);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

/* runs payd with extra arguments on a fresh dir; expects exit code 2 and the message */
static void
expect_config_refusal(const char *const *args, const char *needle)
{
    pd_h_payd_t p;
    pd_h_opts_t o = {.args = args, .no_wait = true};
    assert_int_equal(pd_h_start(&p, &o), 0);
    int code = exit_code(&p);
    char *log = pd_h_log(&p);
    bool ok = code == 2 && strstr(log, needle) != NULL;
    if (!ok)
        print_error("expected exit 2 and \"%s\"; got %d and:\n%s\n", needle, code, log);
    free(log);
    log = NULL;
    assert_true(ok);
    /* nothing was made: it stopped before creating the dev state */
    char path[400];
    snprintf(path, sizeof(path), "%s/tls", p.dir);
    assert_int_equal(access(path, F_OK), -1);
    free(log);
    pd_h_cleanup(&p);
}

static void
missing_users_nobody_and_a_shared_user_are_refused(void **state)
{
    (void)state;
    NEED_ROOT();
    const char *a1[] = {"--set", "server.user=payd-nosuchuser", NULL};
    expect_config_refusal(a1, "there is no user payd-nosuchuser");
    expect_config_refusal(a1, "useradd --system");
    const char *a2[] = {"--set", "vault.user=payd-nosuchvault", NULL};
    expect_config_refusal(a2, "there is no user payd-nosuchvault ([vault] user");
    const char *a3[] = {"--set", "vault.user=nobody", NULL};
    expect_config_refusal(a3, "must not be nobody");
    const char *a4[] = {"--set", "server.user=nobody", NULL};
    expect_config_refusal(a4, "must not be nobody");
    const char *a5[] = {"--set", "vault.user=payd", NULL};
    expect_config_refusal(a5, "[server] user and [vault] user are both uid");
    const char *a6[] = {"--set", "server.user=root", NULL};
    expect_config_refusal(a6, "must be a dedicated user, not root");
    /* payd-vault itself, started by hand */
    char dir[] = "/tmp/payd-it-vn-XXXXXX", vdir[64];
    assert_non_null(mkdtemp(dir));
    snprintf(vdir, sizeof(vdir), "%s/v", dir);
    const char *argv[] = {PAYD_VAULT_BIN, "--data-dir", vdir, "--socket", "/tmp/payd-it-never.sock", "--dev",
                          "--user", "nobody", NULL};
    char *out = NULL;
    assert_int_equal(pd_h_run(argv, &out), 1);
    assert_non_null(strstr(out, "must not be nobody"));
    free(out);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* as a normal user there is no boundary: payd says so, loudly */
static void
as_a_normal_user_dev_says_the_vault_is_not_isolated(void **state)
{
    (void)state;
    NEED_ROOT(); /* to become the normal user */
    pd_h_payd_t p;
    pd_h_opts_t o = {.user = "payd"};
    assert_int_equal(pd_h_start(&p, &o), 0);
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "WARNING: the vault is NOT isolated"));
    assert_non_null(strstr(log, "\"msg\":\"the vault is not isolated: payd and the vault run as the same user\""));
    free(log);
    pid_t vp = vault_pid(&p, 1);
    assert_true(vp > 0);
    assert_all_ids(vp, "Uid", payd_pw.pw_uid);
    assert_all_ids(p.pid, "Uid", payd_pw.pw_uid);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(as_root_payd_serves_as_payd_with_no_capability),
        cmocka_unit_test(other_users_cannot_read_the_credentials_nor_connect),
        cmocka_unit_test(looser_modes_stop_the_start),
        cmocka_unit_test(a_killed_vault_is_restarted_as_the_vault_user),
        cmocka_unit_test(dev_output_holds_no_full_secret_key),
        cmocka_unit_test(missing_users_nobody_and_a_shared_user_are_refused),
        cmocka_unit_test(as_a_normal_user_dev_says_the_vault_is_not_isolated),
    };
    return cmocka_run_group_tests(tests, need_root_and_users, NULL);
}
