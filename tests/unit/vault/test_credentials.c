/* The vault refuses to start when it cannot hash the principals' credentials: with
 * SHA-256 made unavailable (an OpenSSL configuration whose default properties no
 * provider meets), listening fails instead of keeping a hash of nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vault/server.h"

static char dir[64];

static void
write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void
listening_fails_when_the_credentials_cannot_be_hashed(void **state)
{
    (void)state;
    char creds[128], path[192], sock[128];
    snprintf(creds, sizeof(creds), "%s/credentials", dir);
    assert_int_equal(mkdir(creds, 0700), 0);
    /* existing credential files: only the digest is asked of OpenSSL, no random bytes */
    static const char *const principals[] = {"api", "processor", "admin", "rotation"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", creds, principals[i]);
        write_text(path, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL\n");
        assert_int_equal(chmod(path, 0600), 0); /* a credential other users may read refuses the start */
    }
    snprintf(sock, sizeof(sock), "%s/vault.sock", dir);
    pd_vault_server_t *s = NULL;
    assert_int_equal(pd_vault_server_new(&s, NULL), 0);
    assert_int_equal(pd_vault_server_listen(s, sock, creds), PD_ERR_CRYPTO);
    pd_vault_server_free(s);
}

int
main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/payd-vcred-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    char conf[128];
    snprintf(conf, sizeof(conf), "%s/openssl.cnf", dir);
    /* before the first OpenSSL call: libcrypto reads OPENSSL_CONF when it initializes */
    write_text(conf, "openssl_conf = init\n[init]\nalg_section = evp\n[evp]\ndefault_properties = fips=yes\n");
    setenv("OPENSSL_CONF", conf, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(listening_fails_when_the_credentials_cannot_be_hashed),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (getenv("PAYD_TEST_KEEP") == NULL && system(cmd) != 0)
        return 1;
    return r;
}
