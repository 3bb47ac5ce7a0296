/*
 * payd-vault standalone (--config) with its root key wrapped by a key inside a
 * PKCS#11 token (SoftHSM2): the token key is sensitive and never extractable, the
 * vault unseals through the token after a restart, payd tokenizes and charges cards
 * through the vault's socket, and a wrong PIN, an altered key file or a missing
 * token are refused with a clear message.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"

#define SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"

static char dir[64], vdir[128], sock[160], conf[160];
static pid_t running; /* a vault this test started and has not stopped yet (killed by teardown) */

static void
write_text(const char *path, const char *text)
{
    assert_int_equal(pd_h_write_file(path, text), 0);
}

/* payd-vault --config conf [extra]; waits for its socket; returns the pid */
static pid_t
start_vault(const char *extra)
{
    char log[200];
    snprintf(log, sizeof(log), "%s/vault.log", dir);
    unlink(sock);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(PAYD_VAULT_BIN, PAYD_VAULT_BIN, "--config", conf, extra, (char *)NULL);
        _exit(127);
    }
    running = pid;
    for (int i = 0; i < 300 && access(sock, F_OK) != 0; i++)
        usleep(20000);
    assert_int_equal(access(sock, F_OK), 0);
    return pid;
}

static int
stop_vault(pid_t pid)
{
    int st = 0;
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    running = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* runs payd-vault --config c to its end (it must fail); returns the exit code, *out its output */
static int
vault_fails(const char *c, char **out)
{
    const char *argv[] = {PAYD_VAULT_BIN, "--config", c, NULL};
    return pd_h_run(argv, out);
}

static void
vault_conf(const char *path, const char *pin_file, const char *token)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "[vault]\ndata_dir = %s\nsocket = %s\npkcs11_module = " SOFTHSM_MODULE "\npkcs11_token = %s\n"
             "pkcs11_key = payd-root\npkcs11_pin_file = %s\n%s",
             vdir, sock, token, pin_file, geteuid() == 0 ? "user = payd-vault\n" : "");
    write_text(path, text);
}

static int
setup(void **state)
{
    (void)state;
    char path[200], cmd[512];
    snprintf(dir, sizeof(dir), "/tmp/payd-p11-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(vdir, sizeof(vdir), "%s/vault", dir);
    /* in the vault's own directory: started as root, it runs as payd-vault, and payd
     * (a member of payd-vault's group) reaches the socket and credentials there */
    snprintf(sock, sizeof(sock), "%s/vault.sock", vdir);
    if (geteuid() == 0 && chmod(dir, 0711) != 0)
        return -1;
    snprintf(conf, sizeof(conf), "%s/vault.conf", dir);
    snprintf(path, sizeof(path), "%s/softhsm2.conf", dir);
    snprintf(cmd, sizeof(cmd), "directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n", dir);
    if (pd_h_write_file(path, cmd) != 0)
        return -1;
    setenv("SOFTHSM2_CONF", path, 1); /* for payd-vault and softhsm2-util alike */
    snprintf(cmd, sizeof(cmd),
             "mkdir -p %s/tokens && softhsm2-util --init-token --free --label payd-test --pin 246810 --so-pin 135791 "
             ">/dev/null",
             dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/pin", dir);
    if (pd_h_write_file(path, "246810\n") != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/wrong-pin", dir);
    if (pd_h_write_file(path, "999999\n") != 0)
        return -1;
    char pin[200];
    snprintf(pin, sizeof(pin), "%s/pin", dir);
    vault_conf(conf, pin, "payd-test");
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    if (running > 0)
        stop_vault(running);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return getenv("PAYD_TEST_KEEP") == NULL && system(cmd) != 0 ? -1 : 0;
}

static void
token_wraps_the_root_key_and_payd_uses_the_vault(void **state)
{
    (void)state;
    char path[256], *out = NULL;
    pid_t v = start_vault("--init");
    snprintf(path, sizeof(path), "%s/root.p11", vdir);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/root.key", vdir);
    assert_int_not_equal(access(path, F_OK), 0); /* no passphrase-sealed copy */

    /* the wrapping key lives in the token and cannot be read out of it */
    const char *tool[] = {"/usr/bin/pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", "payd-test", "--login",
                          "--pin", "246810", "--list-objects", "--type", "secrkey", NULL};
    assert_int_equal(pd_h_run(tool, &out), 0);
    assert_non_null(strstr(out, "payd-root"));
    assert_non_null(strstr(out, "never extractable"));
    assert_non_null(strstr(out, "always sensitive"));
    free(out);

    /* payd against the standalone vault's socket: tokenize and charge a card */
    char set_sock[256], set_api[256], set_proc[256];
    snprintf(set_sock, sizeof(set_sock), "vault.socket=%s", sock);
    snprintf(set_api, sizeof(set_api), "vault.api_credential=%s/credentials/api", vdir);
    snprintf(set_proc, sizeof(set_proc), "vault.processor_credential=%s/credentials/processor", vdir);
    const char *args[] = {"--set", "vault.mode=socket", "--set", set_sock, "--set", set_api, "--set", set_proc, NULL};
    pd_h_opts_t opts = {.args = args};
    pd_h_payd_t p;
    assert_int_equal(pd_h_start(&p, &opts), 0);
    api_load_credentials(&p);
    json_t *o;
    char pm[64];
    assert_int_equal(api_card_pm(&p, "4242424242424242", pm, sizeof(pm)), 200);
    assert_int_equal(api_charge(&p, pm, 700, "usd", &o), 200);
    assert_string_equal(jstr(o, "status"), "succeeded");
    json_decref(o);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
    assert_int_equal(stop_vault(v), 0);

    /* a restart unseals through the token (the vault database opens with the key) */
    v = start_vault(NULL);
    assert_int_equal(stop_vault(v), 0);
    snprintf(path, sizeof(path), "%s/vault.log", dir);
    int fd = open(path, O_RDONLY);
    char log[16384] = "";
    assert_true(read(fd, log, sizeof(log) - 1) > 0);
    close(fd);
    assert_non_null(strstr(log, "\"new_vault\":false"));
}

static void
wrong_pin_altered_file_and_missing_token_are_refused(void **state)
{
    (void)state;
    char c2[200], pin[200], path[256], *out = NULL;
    snprintf(c2, sizeof(c2), "%s/wrong.conf", dir);

    snprintf(pin, sizeof(pin), "%s/wrong-pin", dir);
    vault_conf(c2, pin, "payd-test");
    assert_int_equal(vault_fails(c2, &out), 3);
    assert_non_null(strstr(out, "the token PIN is wrong"));
    free(out);

    snprintf(pin, sizeof(pin), "%s/pin", dir);
    vault_conf(c2, pin, "no-such-token");
    assert_int_not_equal(vault_fails(c2, &out), 0);
    assert_non_null(strstr(out, "no-such-token"));
    free(out);

    /* flip one hex digit of the sealed key */
    snprintf(path, sizeof(path), "%s/root.p11", vdir);
    FILE *f = fopen(path, "r+");
    assert_non_null(f);
    char text[1024];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    char *sealed = strstr(text, "sealed ");
    assert_non_null(sealed);
    sealed[10] = sealed[10] == '0' ? '1' : '0';
    rewind(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
    assert_int_equal(vault_fails(conf, &out), 3);
    assert_non_null(strstr(out, "could not unwrap"));
    free(out);
}

static void
bad_configuration_files_are_refused(void **state)
{
    (void)state;
    char c2[200], *out = NULL;
    snprintf(c2, sizeof(c2), "%s/bad.conf", dir);
    write_text(c2, "[vault]\ndata_dir = /tmp/x\nsockett = /tmp/x.sock\n");
    assert_int_equal(vault_fails(c2, &out), 2);
    assert_non_null(strstr(out, "sockett"));
    assert_non_null(strstr(out, "bad.conf:3"));
    free(out);
    write_text(c2, "[vault]\nlog_level = loud\n");
    assert_int_equal(vault_fails(c2, &out), 2);
    assert_non_null(strstr(out, "log_level"));
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_wraps_the_root_key_and_payd_uses_the_vault),
        cmocka_unit_test(wrong_pin_altered_file_and_missing_token_are_refused),
        cmocka_unit_test(bad_configuration_files_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
