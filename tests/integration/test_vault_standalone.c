/*
 * payd-vault started by hand. As root with --user: it reads a passphrase file and a
 * TLS key only root may read, then hands its directory to its user (without following
 * a link out of it, refusing a hard-linked file) and runs as that user, non-dumpable,
 * without core dumps. Options that take numbers refuse anything but a whole number.
 */
#include <fcntl.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "payd/argv.h"
#include "payd/vault.h"

/* the vault's dedicated user (scripts/deps.sh creates it; nobody is refused) */
#define VAULT_USER "payd-vault"

static char dir[64], vdir[128], sock[160], addr[64];
static pid_t running; /* a vault this test started and has not stopped */

static void
in_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-vsa-XXXXXX");
    if (mkdtemp(dir) == NULL || chmod(dir, 0711) != 0) /* the vault's user must reach its directory */
        return -1;
    snprintf(vdir, sizeof(vdir), "%s/vault", dir);
    snprintf(sock, sizeof(sock), "%s/vault.sock", vdir);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];
    if (running > 0) {
        kill(running, SIGKILL);
        waitpid(running, NULL, 0);
        running = 0;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return getenv("PAYD_TEST_KEEP") != NULL || system(cmd) == 0 ? 0 : -1;
}

/* writes a file only root may read */
static void
root_only(const char *name, const char *text)
{
    char p[160];
    in_dir(p, sizeof(p), name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, 0600), 0);
    assert_int_equal(close(fd), 0);
}

static pid_t
start_vault(bool init)
{
    char log[160], pass[160], cert[160], key[160], ca[160];
    in_dir(log, sizeof(log), "vault.log");
    in_dir(pass, sizeof(pass), "passphrase");
    in_dir(cert, sizeof(cert), "vault.pem");
    in_dir(key, sizeof(key), "vault-key.pem");
    in_dir(ca, sizeof(ca), "ca.pem");
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        const char *argv[] = {PAYD_VAULT_BIN, "--data-dir", vdir, "--socket", sock, "--passphrase-file", pass,
                              "--user", VAULT_USER, "--listen", addr, "--tls-cert", cert, "--tls-key", key,
                              "--tls-client-ca", ca, init ? "--init" : NULL, NULL};
        char **av = pd_argv_dup(argv); /* single-threaded child: allocating is safe */
        if (av != NULL)
            execv(PAYD_VAULT_BIN, av);
        _exit(127);
    }
    return pid;
}

/* waits for the socket while the vault lives; false when it exited (status in *st) */
static bool
wait_ready(pid_t pid, int *st)
{
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, st, WNOHANG) == pid) {
            running = 0;
            return false;
        }
        if (access(sock, F_OK) == 0) {
            usleep(50000);
            return true;
        }
        usleep(20000);
    }
    return false;
}

static char *
proc_file(pid_t pid, const char *name)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/%d/%s", (int)pid, name);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char *text = calloc(1, 8192);
    assert_non_null(text);
    size_t n = fread(text, 1, 8191, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static int
run_count(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p == NULL || fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p != NULL)
        pclose(p);
    return n;
}

static void
started_as_root_it_reads_root_only_secrets_then_runs_as_its_user(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char cmd[2048], p1[160], p2[160];
    root_only("passphrase", "correct horse battery staple\n");
    /* the TLS pieces: a CA and the vault's certificate, its key readable by root only */
    snprintf(cmd, sizeof(cmd),
             "set -e; cd %s; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=ca "
             "-keyout ca-key.pem -out ca.pem 2>/dev/null; openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -subj /CN=vault -addext subjectAltName=IP:127.0.0.1 -keyout vault-key.pem -out vault.csr "
             "2>/dev/null; openssl x509 -req -in vault.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 "
             "-copy_extensions copy -out vault.pem 2>/dev/null; chmod 0600 vault-key.pem",
             dir);
    assert_int_equal(system(cmd), 0);
    uint16_t port = pd_h_free_port();
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    /* the state directory exists with a link pointing out of it */
    assert_int_equal(mkdir(vdir, 0700), 0);
    root_only("outside", "root's own file\n");
    in_dir(p1, sizeof(p1), "outside");
    snprintf(p2, sizeof(p2), "%s/planted", vdir);
    assert_int_equal(symlink(p1, p2), 0);

    int st = 0;
    pid_t pid = running = start_vault(true);
    if (!wait_ready(pid, &st)) {
        char log[160];
        in_dir(log, sizeof(log), "vault.log");
        snprintf(cmd, sizeof(cmd), "cat %s >&2", log);
        if (system(cmd) != 0) {
        }
        fail_msg("the vault did not start (status %d)", st);
    }
    /* it runs as its user, every id of it, with no supplementary group */
    struct passwd *pw = getpwnam(VAULT_USER);
    assert_non_null(pw);
    uid_t vuid = pw->pw_uid;
    char want_uid[80], want_gid[80];
    snprintf(want_uid, sizeof(want_uid), "\nUid:\t%u\t%u\t%u\t%u\n", vuid, vuid, vuid, vuid);
    snprintf(want_gid, sizeof(want_gid), "\nGid:\t%u\t%u\t%u\t%u\n", pw->pw_gid, pw->pw_gid, pw->pw_gid, pw->pw_gid);
    char *status = proc_file(pid, "status");
    const char *groups = strstr(status, "\nGroups:");
    bool uid = strstr(status, want_uid) != NULL, gid = strstr(status, want_gid) != NULL,
         no_groups = groups != NULL && strspn(groups + 8, " \t") == strcspn(groups + 8, "\n");
    free(status);
    assert_true(uid);
    assert_true(gid);
    assert_true(no_groups);
    /* not dumpable (its /proc files stay root's) and no core file */
    struct stat sb;
    snprintf(p1, sizeof(p1), "/proc/%d/status", (int)pid);
    assert_int_equal(stat(p1, &sb), 0);
    assert_int_equal(sb.st_uid, 0);
    char *limits = proc_file(pid, "limits");
    char *core = strstr(limits, "Max core file size");
    int soft = -1, hard = -1;
    if (core != NULL && sscanf(core + strlen("Max core file size"), "%d %d", &soft, &hard) != 2)
        soft = hard = -1;
    free(limits);
    assert_int_equal(soft, 0);
    assert_int_equal(hard, 0);
    /* its directory is its user's, all of it; what the planted link points to is not */
    snprintf(cmd, sizeof(cmd), "find %s ! -user " VAULT_USER " | wc -l", vdir);
    assert_int_equal(run_count(cmd), 0);
    assert_int_equal(lstat(p2, &sb), 0);
    assert_int_equal(sb.st_uid, vuid);
    in_dir(p1, sizeof(p1), "outside");
    assert_int_equal(stat(p1, &sb), 0);
    assert_int_equal(sb.st_uid, 0);
    /* the operator's secrets are as they were */
    in_dir(p1, sizeof(p1), "passphrase");
    assert_int_equal(stat(p1, &sb), 0);
    assert_int_equal(sb.st_uid, 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* it is unsealed and answers on its socket, and its TLS listener is up */
    char cred[128] = "";
    snprintf(p1, sizeof(p1), "%s/credentials/admin", vdir);
    FILE *f = fopen(p1, "r");
    assert_non_null(f);
    assert_non_null(fgets(cred, sizeof(cred), f));
    fclose(f);
    cred[strcspn(cred, "\n")] = '\0';
    pd_vault_client_opts_t o = {.fd = -1, .socket_path = sock, .principal = "admin", .credential = cred,
                                .timeout_ms = 5000};
    pd_vault_client_t *admin;
    assert_int_equal(pd_vault_client_new(&admin, &o), 0);
    pd_vault_reply_t r;
    assert_int_equal(pd_vault_admin_sync(admin, "kms.list", PD_VIEW_NULL, &r), 0);
    assert_non_null(strstr((const char *)r.data.p, "alias/cards"));
    pd_vault_reply_free(&r);
    pd_vault_client_free(admin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    /* a second vault on the same directory stops at once (exit 1) and names it */
    {
        int st2;
        char vlog[160], grep[400];
        pid_t second = start_vault(false);
        assert_int_equal(waitpid(second, &st2, 0), second);
        assert_true(WIFEXITED(st2) && WEXITSTATUS(st2) == 1);
        in_dir(vlog, sizeof(vlog), "vault.log");
        snprintf(grep, sizeof(grep), "grep -c 'refusing to start: .* is in use by another process (pid %d' %s",
                 (int)pid, vlog);
        assert_int_equal(run_count(grep), 1);
    }
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    running = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* a hard link to root's file inside its directory: it refuses to start, the file stays root's */
    in_dir(p1, sizeof(p1), "outside");
    snprintf(p2, sizeof(p2), "%s/credentials/extra", vdir);
    assert_int_equal(link(p1, p2), 0);
    pid = running = start_vault(false);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    running = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    assert_int_equal(stat(p1, &sb), 0);
    assert_int_equal(sb.st_uid, 0);
    char log[160];
    in_dir(log, sizeof(log), "vault.log");
    snprintf(cmd, sizeof(cmd), "grep -c 'refusing to start: refusing to chown .*hard links' %s", log);
    assert_int_equal(run_count(cmd), 1);
}

static void
options_that_take_numbers_refuse_anything_else(void **state)
{
    (void)state;
    static const struct {
        const char *opt, *value, *says;
    } cases[] = {
        {"--init-shares", "5x", "--init-shares expects a whole number from 2 to 16, not \"5x\""},
        {"--init-shares", "99", "--init-shares expects a whole number from 2 to 16, not \"99\""},
        {"--threshold", "3 ", "--threshold expects a whole number from 2 to 16, not \"3 \""},
        {"--threshold", "", "--threshold expects a whole number"},
        {"--fd", "3x:api", "--fd expects N:PRINCIPAL"},
        {"--fd", "99999999999999999999:api", "--fd expects N:PRINCIPAL"},
        {"--fd", "2:api", "--fd expects N:PRINCIPAL"},
        {"--fd", "3:root", "--fd expects N:PRINCIPAL"},
    };
    char data[160];
    in_dir(data, sizeof(data), "never");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *other = strcmp(cases[i].opt, "--threshold") == 0 ? "--init-shares" : "--threshold";
        const char *argv[] = {PAYD_VAULT_BIN, "--data-dir", data, cases[i].opt, cases[i].value, other, "3", NULL};
        if (strcmp(cases[i].opt, "--fd") == 0)
            argv[5] = NULL;
        char *out = NULL;
        int rc = pd_h_run(argv, &out);
        if (rc != 2 || strstr(out, cases[i].says) == NULL)
            fail_msg("%s %s: exit %d, %s", cases[i].opt, cases[i].value, rc, out);
        free(out);
        /* refused before anything was made */
        assert_int_not_equal(access(data, F_OK), 0);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(started_as_root_it_reads_root_only_secrets_then_runs_as_its_user),
        cmocka_unit_test(options_that_take_numbers_refuse_anything_else),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
