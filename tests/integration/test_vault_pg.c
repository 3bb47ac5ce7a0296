/*
 * Two payd-vault instances on one PostgreSQL database (issue 12, test 4). The vault has
 * its own database and role (payd_vault); the payments role (payd) can neither connect
 * to it nor read the card table. Each instance unseals the root key itself (a copy of
 * the sealed key file). Checked:
 * - a card tokenized through A is detokenized through B;
 * - a key rotated through A is used by B for encryption, and A decrypts what B made;
 *   two rotations at once (one through each) give two versions, one number each;
 * - every operation works through either instance; a due automatic rotation is done once
 *   (scheduler lease), and the lease moves when its holder dies;
 * - payd with [vault] address = A,B keeps serving payments after A is SIGKILLed, and
 *   after A is back and B is killed in turn; requests in flight at a kill fail at once
 *   with PD_ERR_CLOSED, and those answered are durable; an instance stopped inside a
 *   transaction stalls the other for at most ~10 s;
 * - an unreachable store_url and a wrong password stop the start with one line naming
 *   [vault] store_url, exit codes 1 and 3.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "api_helpers.h"
#include "payd/time.h"
#include "payd/vault.h"
#include "payd/vault_crypto.h"
#include "pg_server.h"

#define VAULT_PW "pd-vault-pw"
#define PD_TEST_REFRESH_MS 5000 /* PD_VAULT_REFRESH_MS, the bound docs/vault.md gives */

static char dir[64], vdir[2][128], addr[2][64], url[256], url_pw[256], pwfile[128];
static pid_t vault_pid[2];

/* CA "ca" signs a certificate for each CN (server certs get SAN IP:127.0.0.1) */
static int
make_pki(const char *const *cns)
{
    char cmd[8192];
    int n = snprintf(cmd, sizeof(cmd),
                     "set -e; cd %s; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
                     "-subj /CN=ca -keyout ca-key.pem -out ca.pem 2>/dev/null;",
                     dir);
    for (int i = 0; cns[i] != NULL; i++)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n,
                      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=%s "
                      "-addext subjectAltName=IP:127.0.0.1 -keyout %s-key.pem -out %s.csr 2>/dev/null;"
                      "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 "
                      "-copy_extensions copy -out %s.pem 2>/dev/null;",
                      cns[i], cns[i], cns[i], cns[i], cns[i]);
    return system(cmd);
}

/* starts instance i on its data dir with these store options (its log starts empty) */
static pid_t
start_vault(int i, const char *store_url, const char *pw_file)
{
    char cert[200], key[200], ca[200], log[200];
    snprintf(cert, sizeof(cert), "%s/vault.pem", dir);
    snprintf(key, sizeof(key), "%s/vault-key.pem", dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(log, sizeof(log), "%s/vault%d.log", dir, i);
    unlink(log); /* wait_ready must not read the last start's "vault ready" */
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        const char *argv[24];
        int n = 0;
        argv[n++] = PAYD_VAULT_BIN;
        argv[n++] = "--data-dir";
        argv[n++] = vdir[i];
        argv[n++] = "--dev";
        argv[n++] = "--listen";
        argv[n++] = addr[i];
        argv[n++] = "--tls-cert";
        argv[n++] = cert;
        argv[n++] = "--tls-key";
        argv[n++] = key;
        argv[n++] = "--tls-client-ca";
        argv[n++] = ca;
        argv[n++] = "--store-url";
        argv[n++] = store_url;
        if (pw_file != NULL) {
            argv[n++] = "--store-password-file";
            argv[n++] = pw_file;
        }
        if (geteuid() == 0) {
            argv[n++] = "--user";
            argv[n++] = "payd-vault";
        }
        /* execv wants mutable strings: copies, in the child that is about to exec */
        char *av[24];
        for (int k = 0; k < n; k++)
            av[k] = strdup(argv[k]);
        av[n] = NULL;
        execv(PAYD_VAULT_BIN, av);
        _exit(127);
    }
    return pid;
}

/* true once instance i's log says it is ready */
static bool
wait_ready(int i)
{
    char path[200];
    snprintf(path, sizeof(path), "%s/vault%d.log", dir, i);
    for (int t = 0; t < 500; t++) {
        char buf[65536] = "";
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            ssize_t n = read(fd, buf, sizeof(buf) - 1);
            close(fd);
            if (n > 0 && strstr(buf, "\"vault ready\"") != NULL)
                return true;
        }
        usleep(20000);
    }
    return false;
}

static void
read_cred(const char *principal, char *out, size_t cap)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/credentials/%s", vdir[0], principal);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(out, (int)cap, f));
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
}

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-vpg-XXXXXX");
    if (mkdtemp(dir) == NULL || chmod(dir, 0711) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        snprintf(vdir[i], sizeof(vdir[i]), "%s/vault%d", dir, i);
        snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%u", pd_h_free_port());
    }
    const char *cns[] = {"vault", "api", "processor", "admin", NULL};
    if (make_pki(cns) != 0)
        return -1;
    if (geteuid() == 0) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "cd %s && chown payd:payd api-key.pem processor-key.pem", dir);
        if (system(cmd) != 0)
            return -1;
    }
    /* the vault's own role and database; nobody else may connect to it */
    if (pd_pg_start() != 0 ||
        pd_pg_sql("postgres", "CREATE ROLE payd_vault LOGIN PASSWORD '" VAULT_PW "'") != 0 ||
        pd_pg_sql("postgres", "CREATE DATABASE payd_vault OWNER payd_vault") != 0 ||
        pd_pg_sql("postgres", "REVOKE ALL ON DATABASE payd_vault FROM PUBLIC") != 0)
        return -1;
    snprintf(url, sizeof(url), "postgresql://payd_vault@127.0.0.1:%u/payd_vault", pd_pg_port());
    snprintf(url_pw, sizeof(url_pw), "postgresql://payd_vault:" VAULT_PW "@127.0.0.1:%u/payd_vault", pd_pg_port());
    snprintf(pwfile, sizeof(pwfile), "%s/vault-db-password", dir);
    FILE *f = fopen(pwfile, "w");
    if (f == NULL || fprintf(f, "%s\n", VAULT_PW) < 0 || fclose(f) != 0)
        return -1;
    /* A creates the vault (password from a file); B gets a copy of the sealed root key,
     * the dev passphrase and the principals' credentials, and unseals on its own (its
     * password in the URL) */
    vault_pid[0] = start_vault(0, url, pwfile);
    if (!wait_ready(0))
        return -1;
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp -a %s/root.key %s/dev-passphrase %s/credentials %s/ && "
                               "chmod --reference=%s %s && chown --reference=%s %s",
             vdir[1], vdir[0], vdir[0], vdir[0], vdir[1], vdir[0], vdir[1], vdir[0], vdir[1]);
    if (system(cmd) != 0)
        return -1;
    vault_pid[1] = start_vault(1, url_pw, NULL);
    return wait_ready(1) ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        if (vault_pid[i] > 0) {
            kill(vault_pid[i], SIGCONT); /* a test that failed may have left it stopped */
            kill(vault_pid[i], SIGTERM);
            waitpid(vault_pid[i], NULL, 0);
        }
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (getenv("PAYD_TEST_KEEP") == NULL && system(cmd) != 0)
        return -1;
    return 0;
}

/* a client of principal `as` to the instance list `where` */
static int client_t(const char *as, const char *where, int64_t timeout_ms, pd_vault_client_t **out);

static int
client(const char *as, const char *where, pd_vault_client_t **out)
{
    return client_t(as, where, 5000, out);
}

static int
client_t(const char *as, const char *where, int64_t timeout_ms, pd_vault_client_t **out)
{
    char c[200], k[200], a[200], cred[200];
    snprintf(c, sizeof(c), "%s/%s.pem", dir, as);
    snprintf(k, sizeof(k), "%s/%s-key.pem", dir, as);
    snprintf(a, sizeof(a), "%s/ca.pem", dir);
    read_cred(as, cred, sizeof(cred));
    pd_vault_client_opts_t o = {.fd = -1, .tcp_address = where, .tls_cert = c, .tls_key = k, .tls_ca = a,
                                .principal = as, .credential = cred, .timeout_ms = timeout_ms};
    return pd_vault_client_new(out, &o);
}

/* the payments role: no connection to the vault's database, no read of its cards */
static void
payments_role_cannot_read_cards(void **state)
{
    (void)state;
    char info[256];
    snprintf(info, sizeof(info), "host=127.0.0.1 port=%u dbname=payd_vault user=payd password=" PD_PG_PASSWORD,
             pd_pg_port());
    PGconn *c = PQconnectdb(info);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(c), "permission denied for database"));
    PQfinish(c);
    /* and were it let in (CONNECT granted by mistake), the table is still not its own */
    snprintf(info, sizeof(info), "host=127.0.0.1 port=%u dbname=payd_vault user=postgres password=" PD_PG_PASSWORD,
             pd_pg_port());
    c = PQconnectdb(info);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "SET ROLE payd");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    r = PQexec(c, "SELECT pan FROM cards LIMIT 1");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42501"); /* insufficient_privilege */
    assert_non_null(strstr(PQresultErrorMessage(r), "permission denied for table cards"));
    PQclear(r);
    PQfinish(c);
}

static void
tokenized_through_a_detokenized_through_b(void **state)
{
    (void)state;
    pd_vault_client_t *a = NULL, *b = NULL;
    assert_int_equal(client("api", addr[0], &a), 0);
    assert_int_equal(client("processor", addr[1], &b), 0);
    for (int i = 0; i < 20; i++) {
        pd_vault_card_in_t in;
        pd_vault_card_t card;
        pd_vault_pan_t pan;
        memset(&in, 0, sizeof(in));
        snprintf(in.merchant_id, sizeof(in.merchant_id), "acct_pg%d", i % 3);
        snprintf(in.pan, sizeof(in.pan), i % 2 ? "4242424242424242" : "5555555555554444");
        snprintf(in.name, sizeof(in.name), "Card Holder %d", i);
        in.exp_month = 1 + i % 12;
        in.exp_year = 2034;
        assert_int_equal(pd_vault_tokenize_sync(a, &in, &card), 0);
        assert_int_equal(pd_vault_detokenize_sync(b, in.merchant_id, card.token, &pan), 0);
        assert_string_equal(pan.pan, in.pan);
        assert_string_equal(pan.name, in.name);
        assert_int_equal(pan.exp_month, in.exp_month);
        pd_vault_pan_wipe(&pan);
        /* the card is the merchant's: another merchant's token lookup finds nothing */
        assert_int_equal(pd_vault_detokenize_sync(b, "acct_other", card.token, &pan), PD_ERR_NOTFOUND);
    }
    pd_vault_client_free(a);
    pd_vault_client_free(b);
}

/* the version of alias/events a kms.describe / kms.rotate reply names */
static int64_t
current_version(const pd_vault_reply_t *r)
{
    json_error_t e;
    json_t *o = json_loadb((const char *)r->data.p, r->data.len, 0, &e);
    assert_non_null(o);
    int64_t v = json_integer_value(json_object_get(o, "current_version"));
    json_decref(o);
    return v;
}

static uint32_t
envelope_version(const pd_vault_reply_t *r)
{
    pd_env_header_t h;
    assert_int_equal(pd_env_parse(pd_buf_view(&r->data), &h), 0);
    return h.key_version;
}

typedef struct {
    pd_vault_client_t *c;
    int rc;
    int64_t version;
} rot_t;

static void *
rotate_thread(void *arg)
{
    rot_t *t = arg;
    pd_vault_reply_t r;
    memset(&r, 0, sizeof(r));
    t->rc = pd_vault_admin_sync(t->c, "kms.rotate", pd_view_cstr("{\"key\":\"alias/events\"}"), &r);
    if (t->rc == 0)
        t->version = current_version(&r);
    pd_vault_reply_free(&r);
    return NULL;
}

static void
rotation_through_a_is_used_by_b(void **state)
{
    (void)state;
    pd_vault_client_t *adm_a = NULL, *adm_b = NULL, *api_a = NULL, *api_b = NULL;
    pd_vault_reply_t r, env, pt;
    memset(&r, 0, sizeof(r));
    memset(&env, 0, sizeof(env));
    memset(&pt, 0, sizeof(pt));
    assert_int_equal(client("admin", addr[0], &adm_a), 0);
    assert_int_equal(client("admin", addr[1], &adm_b), 0);
    assert_int_equal(client("api", addr[0], &api_a), 0);
    assert_int_equal(client("api", addr[1], &api_b), 0);
    pd_view_t ctx = pd_view_cstr("purpose=test;id=1"), msg = pd_view_cstr("shared between instances");

    /* B has used the current version, so it holds it in memory */
    assert_int_equal(pd_vault_encrypt_sync(api_b, "alias/events", ctx, msg, &env), 0);
    uint32_t before = envelope_version(&env);
    pd_vault_reply_free(&env);
    memset(&env, 0, sizeof(env));

    assert_int_equal(pd_vault_admin_sync(adm_a, "kms.rotate", pd_view_cstr("{\"key\":\"alias/events\"}"), &r), 0);
    int64_t after = current_version(&r);
    pd_vault_reply_free(&r);
    assert_int_equal(after, before + 1);
    /* at once, not after the 5 s reload: B reads the key's row, finds the version it
     * lacks in the database */
    assert_int_equal(pd_vault_encrypt_sync(api_b, "alias/events", ctx, msg, &env), 0);
    assert_int_equal(envelope_version(&env), after);
    assert_int_equal(pd_vault_decrypt_sync(api_a, ctx, pd_buf_view(&env.data), &pt), 0);
    assert_int_equal(pt.data.len, msg.len);
    assert_memory_equal(pt.data.p, msg.p, msg.len);
    pd_vault_reply_free(&env);
    pd_vault_reply_free(&pt);

    /* a rotation through each at the same moment: two new versions, numbered apart */
    for (int round = 0; round < 5; round++) {
        rot_t t[2] = {{adm_a, -1, 0}, {adm_b, -1, 0}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&th[i], NULL, rotate_thread, &t[i]), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        assert_int_equal(t[0].rc, 0);
        assert_int_equal(t[1].rc, 0);
        assert_int_not_equal(t[0].version, t[1].version);
        int64_t hi = t[0].version > t[1].version ? t[0].version : t[1].version;
        int64_t lo = t[0].version < t[1].version ? t[0].version : t[1].version;
        assert_int_equal(lo, after + 1);
        assert_int_equal(hi, after + 2);
        after = hi;
        /* both instances encrypt under the newest and decrypt each other's */
        for (int i = 0; i < 2; i++) {
            memset(&env, 0, sizeof(env));
            memset(&pt, 0, sizeof(pt));
            assert_int_equal(pd_vault_encrypt_sync(i ? api_b : api_a, "alias/events", ctx, msg, &env), 0);
            assert_int_equal(envelope_version(&env), after);
            assert_int_equal(pd_vault_decrypt_sync(i ? api_a : api_b, ctx, pd_buf_view(&env.data), &pt), 0);
            assert_memory_equal(pt.data.p, msg.p, msg.len);
            pd_vault_reply_free(&env);
            pd_vault_reply_free(&pt);
        }
    }
    /* the audit chain both instances wrote is one unbroken chain */
    memset(&r, 0, sizeof(r));
    assert_int_equal(pd_vault_admin_sync(adm_b, "audit.verify", pd_view_cstr("{}"), &r), 0);
    pd_vault_reply_free(&r);
    pd_vault_client_free(adm_a);
    pd_vault_client_free(adm_b);
    pd_vault_client_free(api_a);
    pd_vault_client_free(api_b);
}

/* --- every operation on PostgreSQL, through either instance --- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    pd_buf_t data, data2;
} waiter_t;

static void
on_reply(void *arg, int rc, const pd_vault_reply_t *r)
{
    waiter_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    if (rc == 0 && r != NULL) {
        assert_int_equal(pd_buf_put(&w->data, r->data.p, r->data.len), 0);
        assert_int_equal(pd_buf_put(&w->data2, r->data2.p, r->data2.len), 0);
    }
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void
waiter_init(waiter_t *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pd_buf_init(&w->data, 1 << 16);
    pd_buf_init(&w->data2, 1 << 16);
}

static int
waiter_wait(waiter_t *w, int sent)
{
    if (sent != 0)
        return sent;
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return w->rc;
}

static void
waiter_free(waiter_t *w)
{
    pd_buf_free(&w->data);
    pd_buf_free(&w->data2);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

/* an admin operation; its JSON reply's field (string or integer) into out when given */
static int
admin(pd_vault_client_t *c, const char *op, const char *args, const char *field, char *out, size_t cap)
{
    pd_vault_reply_t r;
    memset(&r, 0, sizeof(r));
    int rc = pd_vault_admin_sync(c, op, pd_view_cstr(args), &r);
    if (rc == 0 && field != NULL) {
        json_error_t e;
        json_t *o = json_loadb((const char *)r.data.p, r.data.len, 0, &e);
        json_t *f = json_object_get(o, field);
        if (json_is_string(f))
            snprintf(out, cap, "%s", json_string_value(f));
        else if (json_is_integer(f))
            snprintf(out, cap, "%lld", (long long)json_integer_value(f));
        else
            snprintf(out, cap, "?");
        json_decref(o);
    }
    pd_vault_reply_free(&r);
    return rc;
}

/* one integer from the vault's database, read as the superuser */
static long long
pg_int(const char *sql)
{
    char info[256];
    snprintf(info, sizeof(info), "host=127.0.0.1 port=%u dbname=payd_vault user=postgres password=" PD_PG_PASSWORD,
             pd_pg_port());
    PGconn *c = PQconnectdb(info);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

static void
every_operation_through_either_instance(void **state)
{
    (void)state;
    pd_vault_client_t *adm_a = NULL, *adm_b = NULL, *api_a = NULL, *api_b = NULL, *proc_b = NULL;
    char v[256], v2[256];
    assert_int_equal(client("admin", addr[0], &adm_a), 0);
    assert_int_equal(client("admin", addr[1], &adm_b), 0);
    assert_int_equal(client("api", addr[0], &api_a), 0);
    assert_int_equal(client("api", addr[1], &api_b), 0);
    assert_int_equal(client("processor", addr[1], &proc_b), 0);

    /* keys: created through A, seen and changed through B at once */
    assert_int_equal(admin(adm_a, "kms.list", "{}", NULL, NULL, 0), 0);
    assert_int_equal(admin(adm_a, "kms.create", "{\"alias\":\"alias/pgtest\",\"rotation_days\":90}", "key_id", v,
                           sizeof(v)),
                     0);
    assert_int_equal(strncmp(v, "key_", 4), 0);
    assert_int_equal(admin(adm_b, "kms.describe", "{\"key\":\"alias/pgtest\"}", "key_id", v2, sizeof(v2)), 0);
    assert_string_equal(v, v2);
    assert_int_equal(admin(adm_b, "kms.set_rotation", "{\"key\":\"alias/pgtest\",\"days\":120}", NULL, NULL, 0), 0);
    assert_int_equal(admin(adm_a, "kms.describe", "{\"key\":\"alias/pgtest\"}", "rotation_period_days", v, sizeof(v)),
                     0);
    assert_string_equal(v, "120");
    assert_int_equal(admin(adm_a, "kms.schedule_deletion", "{\"key\":\"alias/pgtest\",\"days\":7}", NULL, NULL, 0),
                     0);
    assert_int_equal(admin(adm_b, "kms.describe", "{\"key\":\"alias/pgtest\"}", "state", v, sizeof(v)), 0);
    assert_string_equal(v, "PendingDeletion");
    assert_int_equal(admin(adm_b, "kms.cancel_deletion", "{\"key\":\"alias/pgtest\"}", NULL, NULL, 0), 0);
    assert_int_equal(admin(adm_a, "kms.describe", "{\"key\":\"alias/pgtest\"}", "state", v, sizeof(v)), 0);
    assert_string_equal(v, "Enabled");

    /* a minimum decryption version raised through A holds on B at once */
    pd_view_t ctx = pd_view_cstr("purpose=test;id=2"), msg = pd_view_cstr("old envelope");
    pd_vault_reply_t old, r;
    memset(&old, 0, sizeof(old));
    memset(&r, 0, sizeof(r));
    assert_int_equal(pd_vault_encrypt_sync(api_b, "alias/events", ctx, msg, &old), 0);
    assert_int_equal(admin(adm_a, "kms.rotate", "{\"key\":\"alias/events\"}", "current_version", v, sizeof(v)), 0);
    char args[400];
    snprintf(args, sizeof(args), "{\"key\":\"alias/events\",\"version\":%s}", v);
    assert_int_equal(admin(adm_a, "kms.set_min_decrypt", args, NULL, NULL, 0), 0);
    assert_int_equal(pd_vault_decrypt_sync(api_b, ctx, pd_buf_view(&old.data), &r), PD_ERR_KEY_VERSION);
    pd_vault_reply_free(&r);
    assert_int_equal(admin(adm_b, "kms.set_min_decrypt", "{\"key\":\"alias/events\",\"version\":1}", NULL, NULL, 0),
                     0);
    /* reencrypt through A: the old envelope comes back under the current version */
    waiter_t w;
    waiter_init(&w);
    assert_int_equal(waiter_wait(&w, pd_vault_reencrypt(api_a, ctx, pd_buf_view(&old.data), on_reply, &w)), 0);
    pd_env_header_t h;
    assert_int_equal(pd_env_parse(pd_buf_view(&w.data), &h), 0);
    assert_int_equal((long long)h.key_version, strtoll(v, NULL, 10));
    memset(&r, 0, sizeof(r));
    assert_int_equal(pd_vault_decrypt_sync(api_b, ctx, pd_buf_view(&w.data), &r), 0);
    assert_memory_equal(r.data.p, msg.p, msg.len);
    pd_vault_reply_free(&r);
    pd_vault_reply_free(&old);
    waiter_free(&w);
    /* a data key made through B opens through A */
    waiter_init(&w);
    assert_int_equal(waiter_wait(&w, pd_vault_generate_data_key(api_b, "alias/events", ctx, on_reply, &w)), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(pd_vault_decrypt_sync(api_a, ctx, pd_buf_view(&w.data2), &r), 0);
    assert_int_equal(r.data.len, w.data.len);
    assert_memory_equal(r.data.p, w.data.p, w.data.len);
    pd_vault_reply_free(&r);
    waiter_free(&w);

    /* cards: a rotation of alias/cards through B reaches A's new cards within the 5 s
     * bound, the rewrap through A moves the old data keys, and old cards still open */
    pd_vault_card_in_t in;
    pd_vault_card_t before, after;
    memset(&in, 0, sizeof(in));
    snprintf(in.merchant_id, sizeof(in.merchant_id), "acct_rot");
    snprintf(in.pan, sizeof(in.pan), "4000056655665556");
    in.exp_month = 5;
    in.exp_year = 2036;
    assert_int_equal(pd_vault_tokenize_sync(api_a, &in, &before), 0);
    assert_int_equal(admin(adm_b, "kms.rotate", "{\"key\":\"alias/cards\"}", "current_version", v, sizeof(v)), 0);
    usleep((PD_TEST_REFRESH_MS + 1500) * 1000);
    assert_int_equal(pd_vault_tokenize_sync(api_a, &in, &after), 0);
    char sql[600];
    snprintf(sql, sizeof(sql), "SELECT d.kek_version FROM cards c JOIN data_keys d ON d.id = c.dk_id WHERE c.token = '%s'",
             after.token);
    assert_int_equal(pg_int(sql), strtoll(v, NULL, 10));
    assert_int_equal(admin(adm_a, "kms.rewrap", "{\"key\":\"alias/cards\",\"batch\":1000}", NULL, NULL, 0), 0);
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM data_keys WHERE kek_version < %s", v);
    assert_int_equal(pg_int(sql), 0);
    pd_vault_pan_t pan;
    assert_int_equal(pd_vault_detokenize_sync(proc_b, in.merchant_id, before.token, &pan), 0);
    assert_string_equal(pan.pan, in.pan);
    pd_vault_pan_wipe(&pan);
    /* deleted through A: gone for B, its ciphertext overwritten */
    waiter_init(&w);
    assert_int_equal(waiter_wait(&w, pd_vault_card_delete(api_a, in.merchant_id, before.token, on_reply, &w)), 0);
    waiter_free(&w);
    assert_int_equal(pd_vault_detokenize_sync(proc_b, in.merchant_id, before.token, &pan), PD_ERR_NOTFOUND);
    snprintf(sql, sizeof(sql), "SELECT length(pan) FROM cards WHERE token = '%s'", before.token);
    assert_int_equal(pg_int(sql), 0);

    /* secrets: made through A, read, replaced and rotated through either */
    assert_int_equal(admin(adm_a, "secrets.create",
                           "{\"name\":\"pg/test\",\"rotation_days\":30,\"length\":32,\"exclude\":\"\"}", NULL, NULL,
                           0),
                     0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(pd_vault_admin_sync(adm_b, "secrets.get", pd_view_cstr("{\"name\":\"pg/test\"}"), &r), 0);
    assert_int_equal(r.data2.len, 32); /* the value (data: the JSON of its version) */
    pd_vault_reply_free(&r);
    assert_int_equal(admin(adm_b, "secrets.put", "{\"name\":\"pg/test\",\"value\":\"put-through-b-0123456789\"}",
                           NULL, NULL, 0),
                     0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(pd_vault_admin_sync(adm_a, "secrets.get", pd_view_cstr("{\"name\":\"pg/test\"}"), &r), 0);
    assert_int_equal(r.data2.len, 24);
    assert_memory_equal(r.data2.p, "put-through-b-0123456789", 24);
    pd_vault_reply_free(&r);
    assert_int_equal(admin(adm_a, "secrets.rotate", "{\"name\":\"pg/test\"}", NULL, NULL, 0), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(pd_vault_admin_sync(adm_b, "secrets.get", pd_view_cstr("{\"name\":\"pg/test\"}"), &r), 0);
    assert_int_equal(r.data2.len, 32); /* a new generated value is CURRENT */
    pd_vault_reply_free(&r);
    assert_int_equal(admin(adm_b, "secrets.history", "{\"name\":\"pg/test\"}", NULL, NULL, 0), 0);
    assert_int_equal(admin(adm_b, "secrets.list", "{}", NULL, NULL, 0), 0);
    assert_int_equal(admin(adm_a, "audit.verify", "{}", NULL, NULL, 0), 0);

    pd_vault_client_free(adm_a);
    pd_vault_client_free(adm_b);
    pd_vault_client_free(api_a);
    pd_vault_client_free(api_b);
    pd_vault_client_free(proc_b);
}

static bool
log_has(int i, const char *what)
{
    char path[200], buf[1 << 17] = "";
    snprintf(path, sizeof(path), "%s/vault%d.log", dir, i);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    return n > 0 && strstr(buf, what) != NULL;
}

#define LEASE_MSG "this instance runs the scheduled work"

/* waits up to ms for alias/pgtest's current version to be want */
static bool
pgtest_version_becomes(long long want, int ms)
{
    for (int t = 0; t < ms / 100; t++) {
        if (pg_int("SELECT current_version FROM kms_keys WHERE alias = 'pgtest'") == want)
            return true;
        usleep(100000);
    }
    return false;
}

/* a due automatic rotation is done once, by the instance holding the scheduler lease;
 * when that instance dies, the other takes the lease and the schedule goes on */
static void
scheduled_rotation_runs_once(void **state)
{
    (void)state;
    long long v0 = pg_int("SELECT current_version FROM kms_keys WHERE alias = 'pgtest'");
    long long n0 = pg_int("SELECT COUNT(*) FROM kms_versions v JOIN kms_keys k ON k.num = v.key_num "
                          "WHERE k.alias = 'pgtest'");
    assert_int_equal(pd_pg_sql("payd_vault", "UPDATE kms_keys SET next_rotation = 1 WHERE alias = 'pgtest'"), 0);
    assert_true(pgtest_version_becomes(v0 + 1, 5000));
    usleep(3000 * 1000); /* three more ticks of each instance */
    assert_int_equal(pg_int("SELECT current_version FROM kms_keys WHERE alias = 'pgtest'"), v0 + 1);
    assert_int_equal(pg_int("SELECT COUNT(*) FROM kms_versions v JOIN kms_keys k ON k.num = v.key_num "
                            "WHERE k.alias = 'pgtest'"),
                     n0 + 1);
    assert_int_equal(pg_int("SELECT COUNT(*) FROM audit_log a JOIN kms_keys k ON a.resource = k.id "
                            "WHERE k.alias = 'pgtest' AND a.action = 'kms.rotate.automatic'"),
                     1);
    /* one lease holder; kill it, the other takes over */
    bool a = log_has(0, LEASE_MSG), b = log_has(1, LEASE_MSG);
    assert_true(a != b);
    int leader = a ? 0 : 1, other = 1 - leader;
    kill(vault_pid[leader], SIGKILL);
    waitpid(vault_pid[leader], NULL, 0);
    vault_pid[leader] = 0;
    bool took = false;
    for (int t = 0; t < 50 && !took; t++) {
        took = log_has(other, LEASE_MSG);
        usleep(100000);
    }
    assert_true(took);
    assert_int_equal(pd_pg_sql("payd_vault", "UPDATE kms_keys SET next_rotation = 1 WHERE alias = 'pgtest'"), 0);
    assert_true(pgtest_version_becomes(v0 + 2, 5000));
    vault_pid[leader] = start_vault(leader, leader == 0 ? url : url_pw, leader == 0 ? pwfile : NULL);
    assert_true(wait_ready(leader));
}

/* payd reaches the vault at "A,B" */
static void
start_payd(pd_h_payd_t *p)
{
    static char s_addr[200], s_ca[256], s_api[256], s_apik[256], s_proc[256], s_prock[256], s_apic[256],
        s_procc[256];
    snprintf(s_addr, sizeof(s_addr), "vault.address=%s,%s", addr[0], addr[1]);
    snprintf(s_ca, sizeof(s_ca), "vault.tls_ca=%s/ca.pem", dir);
    snprintf(s_api, sizeof(s_api), "vault.api_tls_cert=%s/api.pem", dir);
    snprintf(s_apik, sizeof(s_apik), "vault.api_tls_key=%s/api-key.pem", dir);
    snprintf(s_proc, sizeof(s_proc), "vault.processor_tls_cert=%s/processor.pem", dir);
    snprintf(s_prock, sizeof(s_prock), "vault.processor_tls_key=%s/processor-key.pem", dir);
    snprintf(s_apic, sizeof(s_apic), "vault.api_credential=%s/credentials/api", vdir[0]);
    snprintf(s_procc, sizeof(s_procc), "vault.processor_credential=%s/credentials/processor", vdir[0]);
    static const char *args[] = {"--set", "vault.mode=tcp", "--set", s_addr,  "--set", s_ca,    "--set", s_api,
                                 "--set", s_apik,           "--set", s_proc,  "--set", s_prock, "--set", s_apic,
                                 "--set", s_procc,          NULL};
    pd_h_opts_t opts = {.args = args};
    assert_int_equal(pd_h_start(p, &opts), 0);
    api_load_credentials(p);
}

/* n charges with pm: the first ones may meet a connection the kill just broke (a clean
 * 5xx, never a hang); from the first success on, every one succeeds */
static void
charges_keep_succeeding(const pd_h_payd_t *p, const char *pm, int n)
{
    int ok = 0, failed_before = 0;
    uint64_t t0 = pd_mono_ms();
    for (int i = 0; i < n; i++) {
        json_t *o = NULL;
        long st = api_charge(p, pm, 1000 + i, "eur", &o);
        if (st == 200) {
            assert_string_equal(jstr(o, "status"), "succeeded");
            ok++;
        } else {
            assert_int_equal(ok, 0); /* a failure only before the failover completed */
            assert_true(st >= 500 && st < 600);
            failed_before++;
        }
        json_decref(o);
    }
    fprintf(stderr, "vault_pg: %d charges, %d failed before the first success, %llu ms in all\n", n, failed_before,
            (unsigned long long)(pd_mono_ms() - t0));
    assert_true(failed_before <= 2);
    assert_int_equal(ok + failed_before, n);
}

static void
payd_fails_over_between_instances(void **state)
{
    (void)state;
    pd_h_payd_t p;
    char pm[64], pm2[64];
    start_payd(&p);
    assert_int_equal(api_card_pm(&p, "4242424242424242", pm, sizeof(pm)), 200);
    charges_keep_succeeding(&p, pm, 3);

    /* A dies without a word: payd goes on through B, with the card tokenized through A */
    kill(vault_pid[0], SIGKILL);
    waitpid(vault_pid[0], NULL, 0);
    vault_pid[0] = 0;
    charges_keep_succeeding(&p, pm, 10);
    assert_int_equal(api_card_pm(&p, "5555555555554444", pm2, sizeof(pm2)), 200);
    charges_keep_succeeding(&p, pm2, 3);

    /* A is back (it unseals again); payd returns to it once idle, so B may go too */
    vault_pid[0] = start_vault(0, url, pwfile);
    assert_true(wait_ready(0));
    usleep(6500 * 1000); /* past the client's 5 s look for the first instance */
    kill(vault_pid[1], SIGKILL);
    waitpid(vault_pid[1], NULL, 0);
    vault_pid[1] = 0;
    charges_keep_succeeding(&p, pm2, 5);
    charges_keep_succeeding(&p, pm, 5);
    assert_true(api_ledger_verifies(&p));
    char *plog = pd_h_log(&p);
    assert_non_null(strstr(plog, "back on the first vault instance"));
    free(plog);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
    /* B again, for the tests after this one */
    vault_pid[1] = start_vault(1, url_pw, NULL);
    assert_true(wait_ready(1));
}

typedef struct {
    pthread_mutex_t mu;
    int done, ok, closed, other;
    char tokens[400][64];
} inflight_t;

static void
on_tokenized(void *arg, int rc, const pd_vault_card_t *card)
{
    inflight_t *f = arg;
    pthread_mutex_lock(&f->mu);
    if (rc == 0 && f->ok < 400)
        snprintf(f->tokens[f->ok++], sizeof(f->tokens[0]), "%s", card->token);
    else if (rc == PD_ERR_CLOSED)
        f->closed++;
    else
        f->other++;
    f->done++;
    pthread_mutex_unlock(&f->mu);
}

/* requests in flight when an instance dies fail at once with PD_ERR_CLOSED (none hangs
 * until its deadline, none is answered twice); what succeeded is durable, and the next
 * requests go to the other instance */
static void
in_flight_requests_fail_cleanly(void **state)
{
    (void)state;
    char both[140];
    snprintf(both, sizeof(both), "%s,%s", addr[0], addr[1]);
    pd_vault_client_t *c = NULL, *proc = NULL;
    assert_int_equal(client("api", both, &c), 0);
    assert_int_equal(client("processor", addr[1], &proc), 0);
    static inflight_t f;
    memset(&f, 0, sizeof(f));
    pthread_mutex_init(&f.mu, NULL);
    pd_vault_card_in_t in;
    memset(&in, 0, sizeof(in));
    snprintf(in.merchant_id, sizeof(in.merchant_id), "acct_inflight");
    snprintf(in.pan, sizeof(in.pan), "4242424242424242");
    in.exp_month = 3;
    in.exp_year = 2035;
    const int n = 400;
    uint64_t t0 = pd_mono_ms();
    /* the first quarter is answered before the kill (so there is something to be durable),
     * the second is written right before it (so requests are in flight), the rest after */
    for (int i = 0; i < n; i++) {
        assert_int_equal(pd_vault_tokenize(c, &in, on_tokenized, &f), 0);
        if (i == n / 4 - 1)
            for (int w = 0; w < 400; w++) {
                pthread_mutex_lock(&f.mu);
                int d = f.done;
                pthread_mutex_unlock(&f.mu);
                if (d == n / 4)
                    break;
                usleep(10000);
            }
        if (i == n / 2 - 1) {
            t0 = pd_mono_ms();
            kill(vault_pid[0], SIGKILL);
            waitpid(vault_pid[0], NULL, 0);
            vault_pid[0] = 0;
        }
    }
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&f.mu);
        int d = f.done;
        pthread_mutex_unlock(&f.mu);
        if (d == n)
            break;
        usleep(10000);
    }
    uint64_t took = pd_mono_ms() - t0;
    fprintf(stderr, "vault_pg: %d tokenizations across a SIGKILL: %d ok, %d failed closed, %d other, all done %llu ms after it\n", n,
            f.ok, f.closed, f.other, (unsigned long long)took);
    assert_int_equal(f.done, n);
    assert_int_equal(f.other, 0);
    assert_true(took < 4000); /* from the kill: not the 5 s request deadline */
    assert_true(f.ok >= n / 4);
    /* every success is in the database: B detokenizes each */
    for (int i = 0; i < f.ok; i++) {
        pd_vault_pan_t pan;
        assert_int_equal(pd_vault_detokenize_sync(proc, in.merchant_id, f.tokens[i], &pan), 0);
        assert_string_equal(pan.pan, in.pan);
        pd_vault_pan_wipe(&pan);
    }
    pd_vault_card_t card;
    assert_int_equal(pd_vault_tokenize_sync(c, &in, &card), 0);
    pd_vault_client_free(c);
    pd_vault_client_free(proc);
    pthread_mutex_destroy(&f.mu);
    vault_pid[0] = start_vault(0, url, pwfile);
    assert_true(wait_ready(0));
}

static void
on_any_card(void *arg, int rc, const pd_vault_card_t *card)
{
    (void)arg;
    (void)rc;
    (void)card;
}

/* An instance stopped inside a transaction (SIGSTOP: a paused VM) holds the write lock.
 * The other's batches wait at most 5 s for it (then fail cleanly), and the server ends
 * the stopped instance's session after 10 s idle in its transaction, so the other serves
 * again; the stopped one, resumed, reconnects and serves too. */
static void
a_stopped_instance_does_not_stall_the_other(void **state)
{
    (void)state;
    pd_vault_client_t *a = NULL, *b = NULL;
    assert_int_equal(client_t("api", addr[0], 20000, &a), 0);
    assert_int_equal(client_t("api", addr[1], 20000, &b), 0);
    pd_vault_card_in_t in;
    pd_vault_card_t card;
    memset(&in, 0, sizeof(in));
    snprintf(in.merchant_id, sizeof(in.merchant_id), "acct_stop");
    snprintf(in.pan, sizeof(in.pan), "4242424242424242");
    in.exp_month = 7;
    in.exp_year = 2035;
    const char *held_sql = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND objid::bigint = 1885631095 "
                           "AND granted";
    bool held = false;
    for (int t = 0; t < 40 && !held; t++) {
        for (int i = 0; i < 200; i++)
            assert_int_equal(pd_vault_tokenize(a, &in, on_any_card, NULL), 0);
        usleep((useconds_t)(1000 + 500 * t));
        kill(vault_pid[0], SIGSTOP);
        usleep(50000);
        held = pg_int(held_sql) == 1;
        if (!held) {
            kill(vault_pid[0], SIGCONT);
            usleep(200000);
        }
    }
    assert_true(held); /* A is stopped with the lock */
    uint64_t t0 = pd_mono_ms();
    int rc = -1, tries = 0;
    while (rc != 0 && pd_mono_ms() - t0 < 16000) {
        rc = pd_vault_tokenize_sync(b, &in, &card);
        tries++;
        /* the lock wait gave up: "vault storage failure", or for a connection whose
         * authentication was in that batch, the connection (the client reconnects) */
        if (rc != 0 && rc != PD_ERR_IO && rc != PD_ERR_CLOSED)
            fail_msg("B failed otherwise: %s", pd_strerror(rc));
    }
    uint64_t took = pd_mono_ms() - t0;
    fprintf(stderr, "vault_pg: B served again %llu ms after A stopped inside a transaction (%d tries)\n",
            (unsigned long long)took, tries);
    assert_int_equal(rc, 0);
    kill(vault_pid[0], SIGCONT);
    /* A's session is gone: its batch fails, the next one reconnects */
    rc = -1;
    for (int i = 0; i < 20 && rc != 0; i++) {
        rc = pd_vault_tokenize_sync(a, &in, &card);
        if (rc != 0)
            usleep(100000);
    }
    assert_int_equal(rc, 0);
    pd_vault_client_free(a);
    pd_vault_client_free(b);
}

/* runs payd-vault on a fresh data dir with a Unix socket and these store options;
 * its exit code, its output into *out (caller frees) */
static int
run_vault(const char *store_url, const char *pw_file, char **out)
{
    static int n;
    char d[160], sock[200];
    snprintf(d, sizeof(d), "%s/bad%d", dir, n);
    snprintf(sock, sizeof(sock), "%s/bad%d.sock", dir, n++);
    const char *argv[16];
    int k = 0;
    argv[k++] = PAYD_VAULT_BIN;
    argv[k++] = "--data-dir";
    argv[k++] = d;
    argv[k++] = "--dev";
    argv[k++] = "--socket";
    argv[k++] = sock;
    if (store_url != NULL) {
        argv[k++] = "--store-url";
        argv[k++] = store_url;
    }
    if (pw_file != NULL) {
        argv[k++] = "--store-password-file";
        argv[k++] = pw_file;
    }
    if (geteuid() == 0) {
        argv[k++] = "--user";
        argv[k++] = "payd-vault";
    }
    argv[k] = NULL;
    return pd_h_run(argv, out);
}

/* how many lines of out are payd-vault's own messages ("payd-vault: ..."), -1 when none
 * holds want (JSON log records and the dev-mode banner are not counted) */
static int
operator_lines(const char *out, const char *want)
{
    int n = 0;
    bool found = false;
    for (const char *l = out; l != NULL && *l != '\0';) {
        const char *e = strchr(l, '\n');
        size_t len = e != NULL ? (size_t)(e - l) : strlen(l);
        if (len > 0 && strncmp(l, "payd-vault: ", 12) == 0) {
            n++;
            found = found || (strstr(l, want) != NULL && strstr(l, want) < l + len);
        }
        l = e != NULL ? e + 1 : NULL;
    }
    return found ? n : -1;
}

static void
bad_store_settings_stop_the_start(void **state)
{
    (void)state;
    char u[256], wrong[160];
    char *o = NULL;
    /* nothing listens there: exit 1, one line naming the setting */
    snprintf(u, sizeof(u), "postgresql://payd_vault@127.0.0.1:%u/payd_vault", pd_h_free_port());
    assert_int_equal(run_vault(u, pwfile, &o), 1);
    assert_int_equal(operator_lines(o, "payd-vault: [vault] store_url: cannot use the vault's database: "), 1);
    assert_null(strstr(o, VAULT_PW));
    free(o);
    /* a wrong password (from the file): exit 3, said so, the password never printed */
    snprintf(wrong, sizeof(wrong), "%s/wrong-password", dir);
    FILE *f = fopen(wrong, "w");
    assert_non_null(f);
    fprintf(f, "not-the-password\n");
    fclose(f);
    assert_int_equal(run_vault(url, wrong, &o), 3);
    assert_int_equal(operator_lines(o, "payd-vault: [vault] store_url: the database refused the password"), 1);
    assert_null(strstr(o, "not-the-password"));
    free(o);
    /* in the URL: the same, and the URL (with its password) is not printed */
    snprintf(u, sizeof(u), "postgresql://payd_vault:not-the-password@127.0.0.1:%u/payd_vault", pd_pg_port());
    assert_int_equal(run_vault(u, NULL, &o), 3);
    assert_int_equal(operator_lines(o, "the database refused the password"), 1);
    assert_null(strstr(o, "not-the-password"));
    free(o);
    /* store_password_file without store_url: a usage error */
    assert_int_equal(run_vault(NULL, wrong, &o), 2);
    assert_int_equal(operator_lines(o, "store_password_file is set but store_url is not"), 1);
    free(o);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(payments_role_cannot_read_cards),
        cmocka_unit_test(tokenized_through_a_detokenized_through_b),
        cmocka_unit_test(rotation_through_a_is_used_by_b),
        cmocka_unit_test(every_operation_through_either_instance),
        cmocka_unit_test(scheduled_rotation_runs_once),
        cmocka_unit_test(payd_fails_over_between_instances),
        cmocka_unit_test(in_flight_requests_fail_cleanly),
        cmocka_unit_test(a_stopped_instance_does_not_stall_the_other),
        cmocka_unit_test(bad_store_settings_stop_the_start),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
