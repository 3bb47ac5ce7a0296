/* payd-vault over its real Unix socket: principals, policy, tamper detection,
 * rotation, deletion window, crash in the middle of a secret rotation, audit,
 * and no PAN/CVC at rest. */
#include <fcntl.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "payd/vault.h"
#include "vault/msg.h"

static char dir[64], sock[128];
static pid_t vault_pid;

static pid_t
start_vault(const char *failpoint)
{
    char log[160];
    snprintf(log, sizeof(log), "%s/vault.log", dir);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test that dies leaves no vault behind */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        if (failpoint != NULL)
            setenv("PD_FAILPOINT", failpoint, 1);
        else
            unsetenv("PD_FAILPOINT");
        char vdir[96];
        snprintf(vdir, sizeof(vdir), "%s/vault", dir);
        execl(PAYD_VAULT_BIN, PAYD_VAULT_BIN, "--data-dir", vdir, "--socket", sock, "--dev", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && access(sock, F_OK) != 0; i++)
        usleep(20000);
    usleep(50000);
    return pid;
}

static int
stop_vault(pid_t pid)
{
    int st = 0;
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static pd_vault_client_t *
client(const char *principal)
{
    char path[160], cred[128] = "";
    snprintf(path, sizeof(path), "%s/vault/credentials/%s", dir, principal);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(cred, sizeof(cred), f));
    fclose(f);
    cred[strcspn(cred, "\n")] = '\0';
    pd_vault_client_opts_t o = {.fd = -1, .socket_path = sock, .principal = principal, .credential = cred,
                                .timeout_ms = 5000};
    pd_vault_client_t *c;
    assert_int_equal(pd_vault_client_new(&c, &o), 0);
    return c;
}

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-vit-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(sock, sizeof(sock), "%s/vault.sock", dir);
    vault_pid = start_vault(NULL);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    int rc = vault_pid > 0 ? stop_vault(vault_pid) : 0;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (getenv("PAYD_TEST_KEEP") == NULL && system(cmd) != 0)
        return -1;
    return rc == 0 ? 0 : -1;
}

static pd_vault_card_in_t
amex(void)
{
    pd_vault_card_in_t in;
    memset(&in, 0, sizeof(in));
    snprintf(in.merchant_id, sizeof(in.merchant_id), "acct_test1");
    snprintf(in.pan, sizeof(in.pan), "378282246310005");
    snprintf(in.cvc, sizeof(in.cvc), "7319");
    in.exp_month = 11;
    in.exp_year = 2033;
    return in;
}

static void
tokenize_as_api_detokenize_as_processor(void **state)
{
    (void)state;
    pd_vault_client_t *api = client("api"), *proc = client("processor");
    pd_vault_card_in_t in = amex();
    pd_vault_card_t card;
    pd_vault_pan_t pan;
    assert_int_equal(pd_vault_tokenize_sync(api, &in, &card), 0);
    assert_string_equal(card.brand, "amex");
    assert_string_equal(card.last4, "0005");
    assert_true(card.cvc_held);
    assert_int_equal(pd_vault_detokenize_sync(proc, "acct_test1", card.token, &pan), 0);
    assert_string_equal(pan.pan, "378282246310005");
    assert_string_equal(pan.cvc, "7319");
    pd_vault_pan_wipe(&pan);
    /* bad input gets an error reply, not a dropped connection */
    snprintf(in.pan, sizeof(in.pan), "378282246310006"); /* Luhn */
    assert_int_equal(pd_vault_tokenize_sync(api, &in, &card), PD_ERR_INVALID);
    assert_true(pd_vault_client_connected(api));
    /* many requests in flight on one connection */
    in = amex();
    for (int i = 0; i < 200; i++)
        assert_int_equal(pd_vault_tokenize_sync(api, &in, &card), 0);
    pd_vault_client_free(api);
    pd_vault_client_free(proc);
}

static void
a_principal_sending_what_it_may_not_is_dropped(void **state)
{
    (void)state;
    pd_vault_client_t *api = client("api"), *proc = client("processor");
    pd_vault_card_in_t in = amex();
    pd_vault_card_t card;
    pd_vault_pan_t pan;
    assert_int_equal(pd_vault_tokenize_sync(api, &in, &card), 0);
    /* only the processor may detokenize: the api peer is dropped */
    assert_int_equal(pd_vault_detokenize_sync(api, "acct_test1", card.token, &pan), PD_ERR_CLOSED);
    /* the processor may not tokenize */
    assert_int_equal(pd_vault_tokenize_sync(proc, &in, &card), PD_ERR_CLOSED);
    pd_vault_client_free(api);
    pd_vault_client_free(proc);
    /* a wrong credential never gets in */
    pd_vault_client_opts_t o = {.fd = -1, .socket_path = sock, .principal = "admin", .credential = "guess",
                                .timeout_ms = 2000};
    pd_vault_client_t *bad;
    assert_int_equal(pd_vault_client_new(&bad, &o), 0);
    pd_vault_reply_t r;
    assert_int_not_equal(pd_vault_admin_sync(bad, "kms.list", PD_VIEW_NULL, &r), 0);
    pd_vault_reply_free(&r);
    pd_vault_client_free(bad);
    /* the audit log recorded the violations and the chain is intact */
    pd_vault_client_t *admin = client("admin");
    assert_int_equal(pd_vault_admin_sync(admin, "audit.verify", PD_VIEW_NULL, &r), 0);
    assert_non_null(strstr((const char *)r.data.p, "\"intact\":true"));
    pd_vault_reply_free(&r);
    pd_vault_client_free(admin);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "sqlite3 %s/vault/vault.db \"SELECT COUNT(*) FROM audit_log WHERE action = 'ipc.violation'\"",
             dir);
    FILE *p = popen(cmd, "r");
    int n = 0;
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    assert_true(n >= 2);
}

static int
sql_int(const char *query)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "sqlite3 %s/vault/vault.db \"%s\"", dir, query);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p == NULL || fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p != NULL)
        pclose(p);
    return n;
}

/* A raw connection as principal: AUTH, then one frame of type with payload. Returns the
 * type of the reply to that frame, or -1 when the vault closed the connection instead. */
static int
raw_exchange(const char *principal, uint16_t type, pd_view_t payload)
{
    char path[160], cred[128] = "";
    snprintf(path, sizeof(path), "%s/vault/credentials/%s", dir, principal);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(cred, sizeof(cred), f));
    fclose(f);
    cred[strcspn(cred, "\n")] = '\0';
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(sock) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    pd_buf_t auth, out;
    pd_buf_init(&auth, 1024);
    pd_buf_init(&out, 2 * PD_IPC_MAX_PAYLOAD);
    assert_int_equal(pd_msg_auth_enc(&auth, principal, cred), 0);
    assert_int_equal(pd_ipc_frame(&out, PD_MSG_AUTH, 1, pd_buf_view(&auth)), 0);
    assert_int_equal(pd_ipc_frame(&out, type, 2, payload), 0);
    /* the vault may drop the connection before it has read everything (that is one of
     * the outcomes asserted below): a short write or EPIPE, never a SIGPIPE */
    ssize_t w = send(fd, out.p, out.len, MSG_NOSIGNAL);
    assert_true(w == (ssize_t)out.len || (w < 0 && (errno == EPIPE || errno == ECONNRESET)) || w > 0);
    pd_buf_free(&auth);
    pd_buf_free(&out);
    /* read frames until the reply to request 2 or the end of the connection */
    uint8_t buf[1 << 17];
    size_t have = 0;
    int result = -1;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&pfd, 1, 5000), 1);
        ssize_t n = read(fd, buf + have, sizeof(buf) - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        pd_ipc_hdr_t h;
        size_t off = 0;
        while (have - off >= PD_IPC_HEADER && pd_ipc_hdr_decode(buf + off, &h) == 0 &&
               have - off - PD_IPC_HEADER >= h.len) {
            if (h.id == 2)
                result = h.type;
            off += PD_IPC_HEADER + h.len;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
        if (result >= 0)
            break;
    }
    close(fd);
    return result;
}

static void
admin_operations_are_rows_of_the_dispatcher(void **state)
{
    (void)state;
    pd_buf_t p;
    pd_buf_init(&p, PD_IPC_MAX_PAYLOAD);
    int before = sql_int("SELECT COUNT(*) FROM audit_log WHERE action = 'ipc.violation'");
    /* a well-formed KMS_ROTATE from admin is answered with its reply type */
    assert_int_equal(pd_msg_key_enc(&p, "alias/events"), 0);
    assert_int_equal(raw_exchange("admin", PD_MSG_KMS_ROTATE, pd_buf_view(&p)), PD_MSG_KMS_ROTATE | PD_MSG_REPLY);
    /* ... and audited under the operation's name, by principal admin */
    assert_int_equal(sql_int("SELECT COUNT(*) FROM audit_log WHERE action = 'kms.rotate' AND actor = 'admin' "
                             "AND resource = 'alias/events' AND outcome = 'success'"),
                     1);
    assert_int_equal(sql_int("SELECT COUNT(*) FROM audit_log WHERE action = 'admin'"), 0);
    /* a value the handler refuses is an error reply, the connection stays */
    pd_buf_reset(&p);
    assert_int_equal(pd_msg_key_num_enc(&p, "alias/events", 3), 0);
    assert_int_equal(raw_exchange("admin", PD_MSG_KMS_SCHEDULE_DELETION, pd_buf_view(&p)), PD_MSG_ERROR);
    /* the api principal may not send it: dropped */
    pd_buf_reset(&p);
    assert_int_equal(pd_msg_key_enc(&p, "alias/events"), 0);
    assert_int_equal(raw_exchange("api", PD_MSG_KMS_ROTATE, pd_buf_view(&p)), -1);
    assert_int_equal(raw_exchange("processor", PD_MSG_SECRETS_GET_STAGE, pd_buf_view(&p)), -1);
    /* a trailing byte inside the type's size bounds: malformed, dropped */
    assert_int_equal(pd_buf_put(&p, "x", 1), 0);
    assert_int_equal(raw_exchange("admin", PD_MSG_KMS_ROTATE, pd_buf_view(&p)), -1);
    /* a payload on a type that takes none, and the retired ADMIN type: dropped */
    assert_int_equal(raw_exchange("admin", PD_MSG_KMS_LIST, PD_VIEW_LIT("x")), -1);
    pd_buf_reset(&p);
    assert_int_equal(raw_exchange("admin", 40, PD_VIEW_LIT("\x00\x08kms.list\x00\x00\x00\x00")), -1);
    pd_buf_free(&p);
    /* each drop was audited as a violation; the rotation did not happen twice */
    assert_int_equal(sql_int("SELECT COUNT(*) FROM audit_log WHERE action = 'ipc.violation'") - before, 5);
    assert_int_equal(sql_int("SELECT COUNT(*) FROM audit_log WHERE action = 'kms.rotate'"), 1);
    assert_int_equal(sql_int("SELECT current_version FROM kms_keys WHERE alias = 'events'"), 2);
}

static void
kms_tamper_rotation_and_deletion_window(void **state)
{
    (void)state;
    pd_vault_client_t *api = client("api"), *admin = client("admin");
    pd_vault_reply_t enc, dec, r;
    pd_view_t ctx = PD_VIEW_LIT("merchant=acct_test1;purpose=webhooks;id=we_1");
    assert_int_equal(pd_vault_encrypt_sync(api, "alias/webhooks", ctx, PD_VIEW_LIT("whsec_secret"), &enc), 0);
    assert_int_equal(pd_vault_decrypt_sync(api, ctx, pd_buf_view(&enc.data), &dec), 0);
    assert_memory_equal(dec.data.p, "whsec_secret", 12);
    pd_vault_reply_free(&dec);
    /* wrong context, flipped bit, truncated: distinct errors, never plaintext */
    assert_int_equal(pd_vault_decrypt_sync(api, PD_VIEW_LIT("merchant=acct_other"), pd_buf_view(&enc.data), &dec),
                     PD_ERR_AUTH);
    pd_vault_reply_free(&dec);
    enc.data.p[enc.data.len - 3] ^= 1;
    assert_int_equal(pd_vault_decrypt_sync(api, ctx, pd_buf_view(&enc.data), &dec), PD_ERR_AUTH);
    pd_vault_reply_free(&dec);
    enc.data.p[enc.data.len - 3] ^= 1;
    assert_int_equal(pd_vault_decrypt_sync(api, ctx, pd_view(enc.data.p, 20), &dec), PD_ERR_TRUNCATED);
    pd_vault_reply_free(&dec);
    /* rotation keeps old ciphertexts decryptable */
    assert_int_equal(pd_vault_admin_sync(admin, "kms.rotate", PD_VIEW_LIT("{\"key\":\"alias/webhooks\"}"), &r), 0);
    assert_non_null(strstr((const char *)r.data.p, "\"current_version\":2"));
    pd_vault_reply_free(&r);
    assert_int_equal(pd_vault_decrypt_sync(api, ctx, pd_buf_view(&enc.data), &dec), 0);
    pd_vault_reply_free(&dec);
    /* ReEncrypt moves it to version 2 without showing the plaintext */
    assert_int_equal(pd_vault_admin_sync(admin, "kms.describe", PD_VIEW_LIT("{\"key\":\"alias/webhooks\"}"), &r), 0);
    pd_vault_reply_free(&r);
    /* the api principal may not manage keys: dropped */
    pd_vault_client_t *api2 = client("api");
    assert_int_equal(pd_vault_admin_sync(api2, "kms.rotate", PD_VIEW_LIT("{\"key\":\"alias/webhooks\"}"), &r),
                     PD_ERR_CLOSED);
    pd_vault_reply_free(&r);
    pd_vault_client_free(api2);
    /* deletion window: 7..30 days, all use fails during it, cancel restores */
    assert_int_equal(pd_vault_admin_sync(admin, "kms.schedule_deletion",
                                         PD_VIEW_LIT("{\"key\":\"alias/webhooks\",\"days\":3}"), &r),
                     PD_ERR_RANGE);
    assert_non_null(strstr(r.text, "7 to 30 days"));
    pd_vault_reply_free(&r);
    assert_int_equal(pd_vault_admin_sync(admin, "kms.schedule_deletion",
                                         PD_VIEW_LIT("{\"key\":\"alias/webhooks\",\"days\":7}"), &r),
                     0);
    pd_vault_reply_free(&r);
    assert_int_equal(pd_vault_decrypt_sync(api, ctx, pd_buf_view(&enc.data), &dec), PD_ERR_KEY_DISABLED);
    pd_vault_reply_free(&dec);
    pd_vault_reply_t e2;
    assert_int_equal(pd_vault_encrypt_sync(api, "alias/webhooks", ctx, PD_VIEW_LIT("x"), &e2), PD_ERR_KEY_DISABLED);
    pd_vault_reply_free(&e2);
    assert_int_equal(pd_vault_admin_sync(admin, "kms.cancel_deletion", PD_VIEW_LIT("{\"key\":\"alias/webhooks\"}"), &r), 0);
    pd_vault_reply_free(&r);
    assert_int_equal(pd_vault_decrypt_sync(api, ctx, pd_buf_view(&enc.data), &dec), 0);
    pd_vault_reply_free(&dec);
    pd_vault_reply_free(&enc);
    pd_vault_client_free(api);
    pd_vault_client_free(admin);
}

static int
count_stage(const char *name, const char *stage)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "sqlite3 %s/vault/vault.db \"SELECT COUNT(*) FROM secret_versions WHERE name = '%s' AND stage = '%s'\"", dir,
             name, stage);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (fscanf(p, "%d", &n) != 1)
        n = -1;
    pclose(p);
    return n;
}

static void
kill_9_in_the_middle_of_a_secret_rotation_resumes(void **state)
{
    (void)state;
    pd_vault_client_t *admin = client("admin");
    pd_vault_reply_t r, before, after;
    assert_int_equal(pd_vault_admin_sync(admin, "secrets.create", PD_VIEW_LIT("{\"name\":\"db/app\",\"rotation_days\":30}"), &r),
                     0);
    pd_vault_reply_free(&r);
    assert_int_equal(pd_vault_admin_sync(admin, "secrets.get", PD_VIEW_LIT("{\"name\":\"db/app\"}"), &before), 0);
    pd_vault_client_free(admin);
    static const char *steps[] = {"create", "set", "test"};
    for (int i = 0; i < 3; i++) {
        /* restart the vault with a crash injected right after this step commits */
        assert_int_equal(stop_vault(vault_pid), 0);
        char fp[48];
        snprintf(fp, sizeof(fp), "rotation-after-%s", steps[i]);
        vault_pid = start_vault(fp);
        admin = client("admin");
        assert_int_equal(pd_vault_admin_sync(admin, "secrets.rotate", PD_VIEW_LIT("{\"name\":\"db/app\"}"), &r),
                         PD_ERR_CLOSED);
        pd_vault_reply_free(&r);
        pd_vault_client_free(admin);
        int st = 0;
        waitpid(vault_pid, &st, 0);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        /* mid-rotation: exactly one CURRENT (the old one) and one PENDING */
        assert_int_equal(count_stage("db/app", "CURRENT"), 1);
        assert_int_equal(count_stage("db/app", "PENDING"), 1);
        /* a normal start resumes and finishes within its first ticks */
        vault_pid = start_vault(NULL);
        for (int t = 0; t < 50 && count_stage("db/app", "PENDING") != 0; t++)
            usleep(100000);
        assert_int_equal(count_stage("db/app", "PENDING"), 0);
        assert_int_equal(count_stage("db/app", "CURRENT"), 1);
        assert_int_equal(count_stage("db/app", "PREVIOUS"), 1);
    }
    admin = client("admin");
    assert_int_equal(pd_vault_admin_sync(admin, "secrets.get", PD_VIEW_LIT("{\"name\":\"db/app\"}"), &after), 0);
    assert_false(before.data2.len == after.data2.len && memcmp(before.data2.p, after.data2.p, after.data2.len) == 0);
    pd_vault_reply_free(&before);
    pd_vault_reply_free(&after);
    pd_vault_client_free(admin);
}

/* runs one SQL statement on the vault's database with the sqlite3 shell (waits for the lock) */
static void
sql_exec(const char *stmt)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "sqlite3 -cmd '.timeout 5000' %s/vault/vault.db \"%s\"", dir, stmt);
    assert_int_equal(system(cmd), 0);
}

static void
an_operation_whose_audit_record_cannot_be_written_fails(void **state)
{
    (void)state;
    pd_vault_card_in_t in = amex();
    pd_vault_card_t card;
    pd_vault_reply_t r, enc;
    pd_view_t ctx = PD_VIEW_LIT("merchant=acct_test1;purpose=events;id=ev_1");
    /* while the vault is stopped, the audit table refuses the records of tokenizations,
     * key rotations and the processor's authentications */
    assert_int_equal(stop_vault(vault_pid), 0);
    sql_exec("CREATE TRIGGER audit_refused BEFORE INSERT ON audit_log WHEN NEW.action IN ('card.tokenize', "
             "'kms.rotate') OR (NEW.action = 'ipc.auth' AND NEW.actor = 'processor') "
             "BEGIN SELECT RAISE(ABORT, 'audit refused by the test'); END");
    vault_pid = start_vault(NULL);
    int cards = sql_int("SELECT COUNT(*) FROM cards"), data_keys = sql_int("SELECT COUNT(*) FROM data_keys"),
        records = sql_int("SELECT COUNT(*) FROM audit_log"),
        events_version = sql_int("SELECT current_version FROM kms_keys WHERE alias = 'events'"),
        versions = sql_int("SELECT COUNT(*) FROM kms_versions");
    assert_true(cards > 0 && records > 0 && events_version > 0);

    pd_vault_client_t *api = client("api"), *admin = client("admin");
    /* the tokenization fails with an error (the peer is not dropped) and stores nothing:
     * no card, not the data key the vault made for it, no record */
    assert_int_equal(pd_vault_tokenize_sync(api, &in, &card), PD_ERR_IO);
    assert_true(pd_vault_client_connected(api));
    assert_int_equal(sql_int("SELECT COUNT(*) FROM cards"), cards);
    assert_int_equal(sql_int("SELECT COUNT(*) FROM data_keys"), data_keys);
    /* a rotation fails the same way: no new version, in the database or in use */
    assert_int_not_equal(pd_vault_admin_sync(admin, "kms.rotate", PD_VIEW_LIT("{\"key\":\"alias/events\"}"), &r), 0);
    assert_non_null(strstr(r.text, "audit record"));
    pd_vault_reply_free(&r);
    assert_int_equal(sql_int("SELECT current_version FROM kms_keys WHERE alias = 'events'"), events_version);
    assert_int_equal(sql_int("SELECT COUNT(*) FROM kms_versions"), versions);
    /* an authentication whose record cannot be written is refused */
    pd_vault_client_t *proc = client("processor");
    pd_vault_pan_t pan;
    assert_int_equal(pd_vault_detokenize_sync(proc, "acct_test1", "card_none", &pan), PD_ERR_CLOSED);
    pd_vault_client_free(proc);
    /* operations whose records can be written go on; the chain is intact */
    assert_int_equal(pd_vault_admin_sync(admin, "audit.verify", PD_VIEW_NULL, &r), 0);
    assert_non_null(strstr((const char *)r.data.p, "\"intact\":true"));
    pd_vault_reply_free(&r);
    int tokenize_records = sql_int("SELECT COUNT(*) FROM audit_log WHERE action = 'card.tokenize'");

    /* the audit log writable again, without a restart: the same vault process works, and
     * what it makes now is still readable after a restart (nothing in its memory refers
     * to the data key or key version that were rolled back) */
    sql_exec("DROP TRIGGER audit_refused");
    assert_int_equal(pd_vault_tokenize_sync(api, &in, &card), 0);
    assert_int_equal(sql_int("SELECT COUNT(*) FROM cards"), cards + 1);
    assert_int_equal(sql_int("SELECT COUNT(*) FROM audit_log WHERE action = 'card.tokenize'"), tokenize_records + 1);
    assert_int_equal(pd_vault_admin_sync(admin, "kms.rotate", PD_VIEW_LIT("{\"key\":\"alias/events\"}"), &r), 0);
    pd_vault_reply_free(&r);
    assert_int_equal(sql_int("SELECT current_version FROM kms_keys WHERE alias = 'events'"), events_version + 1);
    assert_int_equal(pd_vault_encrypt_sync(api, "alias/events", ctx, PD_VIEW_LIT("event payload"), &enc), 0);
    pd_vault_client_free(api);
    pd_vault_client_free(admin);
    assert_int_equal(stop_vault(vault_pid), 0);
    vault_pid = start_vault(NULL);
    api = client("api");
    proc = client("processor");
    assert_int_equal(pd_vault_detokenize_sync(proc, "acct_test1", card.token, &pan), 0);
    assert_string_equal(pan.pan, "378282246310005");
    pd_vault_pan_wipe(&pan);
    pd_vault_reply_t dec;
    assert_int_equal(pd_vault_decrypt_sync(api, ctx, pd_buf_view(&enc.data), &dec), 0);
    assert_memory_equal(dec.data.p, "event payload", 13);
    pd_vault_reply_free(&dec);
    pd_vault_reply_free(&enc);
    pd_vault_client_free(api);
    pd_vault_client_free(proc);
}

static void
no_pan_or_cvc_at_rest_after_authorization(void **state)
{
    (void)state;
    pd_vault_client_t *api = client("api"), *proc = client("processor");
    pd_vault_card_in_t in = amex();
    pd_vault_card_t card;
    pd_vault_pan_t pan;
    assert_int_equal(pd_vault_tokenize_sync(api, &in, &card), 0);
    assert_int_equal(pd_vault_detokenize_sync(proc, "acct_test1", card.token, &pan), 0);
    pd_vault_pan_wipe(&pan);
    pd_vault_client_free(api);
    pd_vault_client_free(proc);
    assert_int_equal(stop_vault(vault_pid), 0);
    vault_pid = start_vault(NULL);
    /* the CVC only as a word of its own: 4 digits occur inside timestamps and ids, and
     * inside the hex of hashes and envelopes (between letters, so "no digit" is not enough);
     * the lock file holds nothing but a pid */
    char cmd[360];
    snprintf(cmd, sizeof(cmd),
             "{ find %s/vault -maxdepth 1 -type f ! -name '*.lock' -exec cat {} +; cat %s/*.log; } 2>/dev/null | "
             "grep -c -a -E -e 378282246310005 "
             "-e '(^|[^0-9A-Za-z])7319([^0-9A-Za-z]|$)'",
             dir, dir);
    FILE *p = popen(cmd, "r");
    int hits = -1;
    assert_int_equal(fscanf(p, "%d", &hits), 1);
    pclose(p);
    assert_int_equal(hits, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokenize_as_api_detokenize_as_processor),
        cmocka_unit_test(a_principal_sending_what_it_may_not_is_dropped),
        cmocka_unit_test(admin_operations_are_rows_of_the_dispatcher),
        cmocka_unit_test(kms_tamper_rotation_and_deletion_window),
        cmocka_unit_test(kill_9_in_the_middle_of_a_secret_rotation_resumes),
        cmocka_unit_test(an_operation_whose_audit_record_cannot_be_written_fails),
        cmocka_unit_test(no_pan_or_cvc_at_rest_after_authorization),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
