/*
 * payd-vault --unwrap-backup-key (docs/backup.md), the one-shot mode payctl backup
 * verify/restore starts: with the passphrase that seals DIR/root.key, or enough Shamir
 * shares, it turns a wrapped backup key on stdin into the data key on stdout and exits 0;
 * a wrong passphrase, too few shares, shares of another root key and a key wrapped by
 * another root key exit 3; a wrapped key of the wrong length exits 2; nothing else is
 * written to stdout, and nothing is created in DIR (no vault.db, no lock).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "harness.h"
#include "vault/backup.h"

static char dir[100];
static uint8_t root[PD_KEY_LEN], key[PD_BACKUP_KEY_LEN], wrapped[PD_BACKUP_WRAPPED_LEN];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-unwrap-XXXXXX");
    if (mkdtemp(dir) == NULL || RAND_bytes(root, sizeof(root)) != 1)
        return -1;
    char path[200];
    snprintf(path, sizeof(path), "%s/root.key", dir);
    if (pd_keyfile_write(path, root, "right passphrase", 16) != 0 || pd_vault_backup_wrap(root, key, wrapped) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/pass", dir);
    return pd_h_write_file(path, "right passphrase\n");
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* runs payd-vault --unwrap-backup-key --data-dir dir EXTRA... with in on stdin; stdout
 * (binary) into out (*n bytes, at most cap); returns the exit code */
static int
unwrap(const char *const *extra, const uint8_t *in, size_t inlen, uint8_t *out, size_t cap, size_t *n)
{
    const char *argv[16] = {PAYD_VAULT_BIN, "--unwrap-backup-key", "--data-dir", dir};
    int a = 4, pin[2], pout[2], st = 0;
    for (size_t i = 0; extra[i] != NULL; i++)
        argv[a++] = extra[i];
    argv[a] = NULL;
    assert_int_equal(pipe(pin), 0);
    assert_int_equal(pipe(pout), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(devnull, 2);
        close(pin[1]);
        close(pout[0]);
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    ssize_t w = write(pin[1], in, inlen);
    (void)w;
    close(pin[1]);
    *n = 0;
    ssize_t k;
    while (*n < cap && (k = read(pout[0], out + *n, cap - *n)) > 0)
        *n += (size_t)k;
    close(pout[0]);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void
the_passphrase_opens_the_key(void **state)
{
    (void)state;
    char pass[200], bad[200];
    uint8_t out[128];
    size_t n;
    snprintf(pass, sizeof(pass), "%s/pass", dir);
    const char *ok[] = {"--passphrase-file", pass, NULL};
    assert_int_equal(unwrap(ok, wrapped, sizeof(wrapped), out, sizeof(out), &n), 0);
    assert_int_equal(n, PD_BACKUP_KEY_LEN);
    assert_memory_equal(out, key, PD_BACKUP_KEY_LEN);
    /* a wrong passphrase: 3, nothing on stdout */
    snprintf(bad, sizeof(bad), "%s/bad", dir);
    assert_int_equal(pd_h_write_file(bad, "wrong passphrase\n"), 0);
    const char *wrong[] = {"--passphrase-file", bad, NULL};
    assert_int_equal(unwrap(wrong, wrapped, sizeof(wrapped), out, sizeof(out), &n), 3);
    assert_int_equal(n, 0);
    /* a key wrapped by another root key: 3 */
    uint8_t other[PD_KEY_LEN], k2[PD_BACKUP_KEY_LEN], w2[PD_BACKUP_WRAPPED_LEN];
    assert_int_equal(RAND_bytes(other, sizeof(other)), 1);
    assert_int_equal(pd_vault_backup_wrap(other, k2, w2), 0);
    assert_int_equal(unwrap(ok, w2, sizeof(w2), out, sizeof(out), &n), 3);
    assert_int_equal(n, 0);
    /* the wrong length: 2 */
    assert_int_equal(unwrap(ok, wrapped, sizeof(wrapped) - 1, out, sizeof(out), &n), 2);
    uint8_t longer[PD_BACKUP_WRAPPED_LEN + 1] = {0};
    memcpy(longer, wrapped, sizeof(wrapped));
    assert_int_equal(unwrap(ok, longer, sizeof(longer), out, sizeof(out), &n), 2);
    assert_int_equal(n, 0);
    /* nothing was made in the directory */
    char path[200];
    snprintf(path, sizeof(path), "%s/vault.db", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/vault.lock", dir);
    assert_int_not_equal(access(path, F_OK), 0);
}

static void
shares_open_the_key(void **state)
{
    (void)state;
    char shares[3][PD_SHARE_TEXT], files[3][200], otherf[200];
    uint8_t out[128];
    size_t n;
    char sdir[100];
    snprintf(sdir, sizeof(sdir), "%.60s/shares", dir);
    assert_int_equal(mkdir(sdir, 0700), 0);
    assert_int_equal(pd_shamir_split(root, 3, 2, shares), 0);
    for (int i = 0; i < 3; i++) {
        snprintf(files[i], sizeof(files[i]), "%s/share%d", dir, i);
        assert_int_equal(pd_h_write_file(files[i], shares[i]), 0);
    }
    /* a vault on shares has no root.key: a directory without one */
    const char *two[] = {"--share-file", files[0], "--share-file", files[2], NULL};
    char keep[100];
    snprintf(keep, sizeof(keep), "%s", dir);
    snprintf(dir, sizeof(dir), "%s", sdir);
    assert_int_equal(unwrap(two, wrapped, sizeof(wrapped), out, sizeof(out), &n), 0);
    assert_int_equal(n, PD_BACKUP_KEY_LEN);
    assert_memory_equal(out, key, PD_BACKUP_KEY_LEN);
    /* below the threshold: refused */
    const char *one[] = {"--share-file", files[1], NULL};
    assert_int_not_equal(unwrap(one, wrapped, sizeof(wrapped), out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
    /* shares of another root key: they combine, and the wrapped key refuses them */
    uint8_t other[PD_KEY_LEN];
    char oshares[2][PD_SHARE_TEXT], of[2][200];
    assert_int_equal(RAND_bytes(other, sizeof(other)), 1);
    assert_int_equal(pd_shamir_split(other, 2, 2, oshares), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(of[i], sizeof(of[i]), "%s/oshare%d", keep, i);
        assert_int_equal(pd_h_write_file(of[i], oshares[i]), 0);
    }
    snprintf(otherf, sizeof(otherf), "%s", of[1]);
    const char *others[] = {"--share-file", of[0], "--share-file", otherf, NULL};
    assert_int_equal(unwrap(others, wrapped, sizeof(wrapped), out, sizeof(out), &n), 3);
    assert_int_equal(n, 0);
    snprintf(dir, sizeof(dir), "%s", keep);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_passphrase_opens_the_key),
        cmocka_unit_test(shares_open_the_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
