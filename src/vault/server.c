/*
 * The vault's event loop. One thread: poll over the peers, read every complete
 * request that arrived, run them as one transaction (a savepoint each: group
 * commit), then send the replies. The dispatcher is a whitelist table
 * {type, principals allowed, size bounds, handler}; a peer that sends anything
 * else is audited and dropped.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "payd/config.h"
#include "payd/log.h"
#include "payd/privsep.h"
#include "payd/vault_files.h"
#include "payd/time.h"
#include "vault/metrics.h"
#include "vault/msg.h"
#include "vault/server.h"
#include "vault/transport.h"

#define MAX_CONNS 256
#define WBUF_MAX (32u * 1024 * 1024)
#define RBUF_MAX (2u * (PD_IPC_HEADER + PD_IPC_MAX_PAYLOAD))
#define MAX_BATCH 4096
#define AUTH_DEADLINE_MS 10000 /* a peer that has not authenticated by then is dropped */

typedef struct {
    int fd;
    SSL *ssl;           /* mutual TLS (TCP peers); NULL for local sockets */
    unsigned principal; /* 0 until authenticated */
    bool fixed;         /* principal bound by the descriptor (socketpair) */
    bool closing;
    bool auth_in_batch; /* authenticated by the batch being run (its record not yet committed) */
    uint64_t accepted_ms;
    char origin[64];
    pd_buf_t rbuf, wbuf;
} conn_t;

/* size bounds of the admin payloads: exactly what their decoders accept */
#define KEY_MIN PD_WIRE_STR(1)
#define KEY_MAX PD_WIRE_STR(PD_MSG_KEY_MAX - 1)
#define SECRET_MIN PD_WIRE_STR(1)
#define SECRET_MAX PD_WIRE_STR(PD_MSG_SECRET_NAME_MAX)
#define A PD_PRINCIPAL_ADMIN

static const pd_vault_dispatch_t dispatch[] = {
    {PD_MSG_TOKENIZE, "card.tokenize", PD_PRINCIPAL_API, 12, 512, pd_h_tokenize},
    {PD_MSG_CARD_GET, "card.get", PD_PRINCIPAL_API | PD_PRINCIPAL_PROCESSOR | PD_PRINCIPAL_ADMIN, 4, 2 * PD_ID_MAX + 4,
     pd_h_card_get},
    {PD_MSG_DETOKENIZE, "card.detokenize", PD_PRINCIPAL_PROCESSOR, 4, 2 * PD_ID_MAX + 4, pd_h_detokenize},
    {PD_MSG_CARD_DELETE, "card.delete", PD_PRINCIPAL_API | PD_PRINCIPAL_ADMIN, 4, 2 * PD_ID_MAX + 4, pd_h_card_delete},
    {PD_MSG_ENCRYPT, "kms.encrypt", PD_PRINCIPAL_API | PD_PRINCIPAL_ADMIN | PD_PRINCIPAL_ROTATION, 10, 16384,
     pd_h_encrypt},
    /* the stream publisher's batches: bounds of count and sizes are the handler's, named in its error */
    {PD_MSG_ENCRYPT_BATCH, "kms.encrypt_batch", PD_PRINCIPAL_API, KEY_MIN + 2, PD_IPC_MAX_PAYLOAD, pd_h_encrypt_batch},
    /* up to the largest envelope the vault makes (an ENCRYPT_BATCH payload of 28 KiB) */
    {PD_MSG_DECRYPT, "kms.decrypt", PD_PRINCIPAL_API | PD_PRINCIPAL_ADMIN | PD_PRINCIPAL_ROTATION, 10,
     PD_WIRE_STR(PD_MSG_KEY_MAX - 1) + PD_WIRE_BYTES(PD_MSG_CTX_MAX) + PD_WIRE_BYTES(PD_MSG_ENV_MAX), pd_h_decrypt},
    {PD_MSG_GENERATE_DATA_KEY, "kms.generate_data_key", PD_PRINCIPAL_API | PD_PRINCIPAL_ADMIN, 10, 2048,
     pd_h_generate_data_key},
    {PD_MSG_REENCRYPT, "kms.reencrypt", PD_PRINCIPAL_API | PD_PRINCIPAL_ADMIN | PD_PRINCIPAL_ROTATION, 10, 16384,
     pd_h_reencrypt},
    {PD_MSG_SECRET_GET, "secrets.get", PD_PRINCIPAL_API | PD_PRINCIPAL_ADMIN | PD_PRINCIPAL_ROTATION, 2, 130,
     pd_h_secret_get},
    /* admin operations (payctl): the admin principal only */
    {PD_MSG_KMS_LIST, "kms.list", A, 0, 0, pd_h_kms_list},
    {PD_MSG_KMS_DESCRIBE, "kms.describe", A, KEY_MIN, KEY_MAX, pd_h_kms_describe},
    {PD_MSG_KMS_CREATE, "kms.create", A, KEY_MIN + PD_WIRE_I64, KEY_MAX + PD_WIRE_I64, pd_h_kms_create},
    {PD_MSG_KMS_ROTATE, "kms.rotate", A, KEY_MIN, KEY_MAX, pd_h_kms_rotate},
    {PD_MSG_KMS_SET_ROTATION, "kms.set_rotation", A, KEY_MIN + PD_WIRE_I64, KEY_MAX + PD_WIRE_I64,
     pd_h_kms_set_rotation},
    {PD_MSG_KMS_SET_MIN_DECRYPT, "kms.set_min_decrypt", A, KEY_MIN + PD_WIRE_I64, KEY_MAX + PD_WIRE_I64,
     pd_h_kms_set_min_decrypt},
    {PD_MSG_KMS_SCHEDULE_DELETION, "kms.schedule_deletion", A, KEY_MIN + PD_WIRE_I64, KEY_MAX + PD_WIRE_I64,
     pd_h_kms_schedule_deletion},
    {PD_MSG_KMS_CANCEL_DELETION, "kms.cancel_deletion", A, KEY_MIN, KEY_MAX, pd_h_kms_cancel_deletion},
    {PD_MSG_KMS_REWRAP, "kms.rewrap", A, KEY_MIN + PD_WIRE_I64, KEY_MAX + PD_WIRE_I64, pd_h_kms_rewrap},
    {PD_MSG_SECRETS_LIST, "secrets.list", A, 0, 0, pd_h_secrets_list},
    {PD_MSG_SECRETS_HISTORY, "secrets.history", A, SECRET_MIN, SECRET_MAX, pd_h_secrets_history},
    {PD_MSG_SECRETS_GET_STAGE, "secrets.get", A, SECRET_MIN + PD_WIRE_STR(1), SECRET_MAX + PD_WIRE_STR(PD_MSG_STAGE_MAX),
     pd_h_secrets_get_stage},
    {PD_MSG_SECRETS_PUT, "secrets.put", A, SECRET_MIN + PD_WIRE_BYTES(1),
     SECRET_MAX + PD_WIRE_BYTES(PD_MSG_SECRET_VALUE_MAX), pd_h_secrets_put},
    {PD_MSG_SECRETS_CREATE, "secrets.create", A, SECRET_MIN + PD_MSG_SECRET_CREATE_FIXED,
     SECRET_MAX + PD_MSG_SECRET_CREATE_FIXED + PD_MSG_EXCLUDE_MAX + PD_MSG_HANDLER_MAX + PD_MSG_URL_MAX +
         PD_MSG_SECRET_NAME_MAX + PD_MSG_USER_MAX,
     pd_h_secrets_create},
    {PD_MSG_SECRETS_ROTATE, "secrets.rotate", A, SECRET_MIN, SECRET_MAX, pd_h_secrets_rotate, .own_txn = true},
    {PD_MSG_AUDIT_VERIFY, "audit.verify", A, 0, 0, pd_h_audit_verify},
    /* payctl backup create, and payd's WAL archive (a key per segment, [backup] wal_archive) */
    {PD_MSG_BACKUP_KEY, "backup.key", A | PD_PRINCIPAL_API, 0, 0, pd_h_backup_key},
    /* after the batch's commit, so the copy holds everything acknowledged before it */
    {PD_MSG_BACKUP_SNAPSHOT, "backup.snapshot", A, 0, 0, pd_h_backup_snapshot, .own_txn = true},
};
#undef A

_Static_assert(sizeof(dispatch) / sizeof(dispatch[0]) <= PD_VAULT_MAX_OPS, "PD_VAULT_MAX_OPS");

const pd_vault_dispatch_t *
pd_vault_dispatch_at(size_t i)
{
    return i < sizeof(dispatch) / sizeof(dispatch[0]) ? &dispatch[i] : NULL;
}

const pd_vault_dispatch_t *
pd_vault_dispatch_find(uint16_t type)
{
    for (size_t i = 0; i < sizeof(dispatch) / sizeof(dispatch[0]); i++)
        if (dispatch[i].type == type)
            return &dispatch[i];
    return NULL;
}

typedef struct {
    int conn;
    pd_ipc_hdr_t hdr;
    pd_view_t payload;
} req_t;

typedef struct {
    int conn;
    uint64_t id;
    uint16_t type;
    pd_buf_t payload;
    bool secret;
} staged_t;

struct pd_vault_server {
    pd_vault_state_t *v;
    conn_t conns[MAX_CONNS];
    int nconns;
    int listen_fd;
    int tcp_fd;   /* mutual-TLS listener, or -1 */
    SSL_CTX *tls; /* its context */
    char cred_hash[4][65]; /* per principal bit: hex SHA-256 of its credential */
    req_t reqs[MAX_BATCH];
    staged_t staged[MAX_BATCH];
    pd_vmx_http_t *metrics; /* the metrics listener, or NULL */
};

/* hex SHA-256 of a credential; PD_ERR_CRYPTO (and out empty) when the digest fails */
static int
sha256_hex(const char *s, char out[65])
{
    uint8_t d[32];
    unsigned int n = 0;
    out[0] = '\0';
    if (EVP_Digest(s, strlen(s), d, &n, EVP_sha256(), NULL) != 1 || n != sizeof(d)) {
        OPENSSL_cleanse(d, sizeof(d));
        return PD_ERR_CRYPTO;
    }
    pd_hex(d, 32, out);
    OPENSSL_cleanse(d, sizeof(d));
    return 0;
}

int
pd_vault_server_new(pd_vault_server_t **out, pd_vault_state_t *v)
{
    pd_vault_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return PD_ERR_NOMEM;
    s->v = v;
    s->listen_fd = -1;
    s->tcp_fd = -1;
    *out = s;
    return 0;
}

static void
conn_close(conn_t *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    pd_buf_free_secure(&c->rbuf);
    pd_buf_free_secure(&c->wbuf);
}

void
pd_vault_server_free(pd_vault_server_t *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->nconns; i++)
        conn_close(&s->conns[i]);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->tcp_fd >= 0)
        close(s->tcp_fd);
    SSL_CTX_free(s->tls);
    pd_vmx_free(s->metrics);
    pd_vmx_close();
    free(s);
}

static int
npeers(void *arg)
{
    return ((pd_vault_server_t *)arg)->nconns;
}

int
pd_vault_server_metrics(pd_vault_server_t *s, pd_vmx_http_t *h)
{
    int r = pd_vmx_open(s->v, npeers, s);
    if (r != 0) {
        pd_vmx_free(h);
        return r;
    }
    s->metrics = h;
    return 0;
}

static conn_t *
conn_add(pd_vault_server_t *s, int fd, unsigned principal, bool fixed, const char *origin)
{
    if (s->nconns == MAX_CONNS)
        return NULL;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    conn_t *c = &s->conns[s->nconns++];
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->principal = principal;
    c->fixed = fixed;
    c->accepted_ms = pd_mono_ms();
    snprintf(c->origin, sizeof(c->origin), "%s", origin);
    pd_buf_init(&c->rbuf, RBUF_MAX);
    pd_buf_init(&c->wbuf, WBUF_MAX);
    return c;
}

int
pd_vault_server_add_fd(pd_vault_server_t *s, int fd, unsigned principal, const char *origin)
{
    return conn_add(s, fd, principal, true, origin) != NULL ? 0 : PD_ERR_TOOBIG;
}

/* creates a principal's credential file once; keeps its hash in memory */
static int
ensure_credential(pd_vault_server_t *s, const char *dir, unsigned p, int idx)
{
    char path[4200], cred[65];
    char why[4400];
    const char *name = pd_principal_name(p);
    mode_t max = pd_vault_cred_max(name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    /* an existing file that more users may read than payd's and the vault's refuses the start */
    int mr = pd_privsep_check_mode(path, geteuid(), max, why, sizeof(why));
    if (mr != 0 && mr != -ENOENT) {
        pd_log_error("vault: a credential file is open to more users than it may be; refusing to start",
                     PD_LS("reason", why));
        return PD_ERR_PERM;
    }
    FILE *f = fopen(path, "re");
    if (f != NULL) {
        size_t n = fread(cred, 1, sizeof(cred) - 1, f);
        fclose(f);
        cred[n] = '\0';
        cred[strcspn(cred, "\r\n")] = '\0';
        if (cred[0] == '\0') {
            pd_log_error("vault: a principal's credential file is empty; refusing to start", PD_LS("file", path));
            return PD_ERR_INVALID;
        }
    } else {
        if (pd_secret_base62(cred, 48) != 0)
            return PD_ERR_CRYPTO;
        cred[48] = '\0';
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return -errno;
        /* fchmod: the umask does not decide what the group may read */
        bool ok = fchmod(fd, max) == 0 && write(fd, cred, 48) == 48 && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
        close(fd);
        if (!ok)
            return PD_ERR_IO;
    }
    int r = sha256_hex(cred, s->cred_hash[idx]);
    OPENSSL_cleanse(cred, sizeof(cred));
    if (r != 0)
        pd_log_error("vault: cannot hash a principal's credential (SHA-256 failed); refusing to start",
                     PD_LS("principal", pd_principal_name(p)));
    return r;
}

static int
ensure_credentials(pd_vault_server_t *s, const char *cred_dir)
{
    int r;
    char why[4400];
    if (mkdir(cred_dir, 0700) == 0) {
        if (chmod(cred_dir, PD_VAULT_DIR_MODE) != 0)
            return -errno;
    } else if (errno != EEXIST) {
        return -errno;
    }
    if ((r = pd_privsep_check_mode(cred_dir, geteuid(), PD_VAULT_DIR_MODE, why, sizeof(why))) != 0) {
        pd_log_error("vault: the credentials directory is open to more users than it may be; refusing to start",
                     PD_LS("reason", why));
        return PD_ERR_PERM;
    }
    for (int i = 0; i < 4; i++)
        if ((r = ensure_credential(s, cred_dir, 1u << i, i)) != 0)
            return r;
    return 0;
}

int
pd_vault_server_listen(pd_vault_server_t *s, const char *path, const char *cred_dir)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int r;
    if (strlen(path) >= sizeof(sa.sun_path))
        return PD_ERR_TOOBIG;
    if ((r = ensure_credentials(s, cred_dir)) != 0)
        return r;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* the socket file is created 0660: the vault's user and its group (payd's user) */
    mode_t old = umask(0777 & ~PD_VAULT_SOCKET_MODE);
    r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r != 0 || listen(fd, 64) != 0) {
        r = -errno;
        close(fd);
        return r;
    }
    s->listen_fd = fd;
    return 0;
}

int
pd_vault_server_listen_tcp(pd_vault_server_t *s, const char *addr, SSL_CTX *tls, const char *cred_dir, char *err,
                           size_t errcap)
{
    char host[256], port[8];
    uint16_t p;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int r, fd = -1, one = 1;

    SSL_CTX_free(s->tls);
    s->tls = tls; /* owned by the server from here on, also on failure */
    if (pd_config_parse_addr(addr, host, sizeof(host), &p) != 0) {
        snprintf(err, errcap, "bad listen address %s (expected HOST:PORT)", addr);
        return PD_ERR_CONFIG;
    }
    if (tls == NULL) {
        snprintf(err, errcap, "no TLS context for %s", addr);
        return PD_ERR_CONFIG;
    }
    if ((r = ensure_credentials(s, cred_dir)) != 0) {
        snprintf(err, errcap, "cannot create the credentials in %s", cred_dir);
        return r;
    }
    snprintf(port, sizeof(port), "%u", p);
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL) {
        snprintf(err, errcap, "cannot resolve %s", host);
        return PD_ERR_CONFIG;
    }
    if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        listen(fd, 64) != 0) {
        r = -errno;
        snprintf(err, errcap, "cannot listen on %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return r;
    }
    freeaddrinfo(ai);
    s->tcp_fd = fd;
    return 0;
}

static void
violation(pd_vault_server_t *s, conn_t *c, const char *what)
{
    pd_log_warn("vault: protocol violation; dropping the peer", PD_LS("peer", c->origin),
                PD_LS("principal", c->principal ? pd_principal_name(c->principal) : "unauthenticated"),
                PD_LS("violation", what));
    c->closing = true; /* whether or not its record can be written */
    pd_vmx_violation();
    if (pd_vault_audit(s->v, c->principal ? pd_principal_name(c->principal) : "unauthenticated", "ipc.violation", what,
                       PD_ERR_PROTOCOL, c->origin) != 0) {
        /* logged by pd_vault_audit */
    }
}

static void
stage(pd_vault_server_t *s, size_t *n, int conn, uint64_t id, uint16_t type, pd_buf_t *payload, bool secret)
{
    staged_t *st = &s->staged[(*n)++];
    st->conn = conn;
    st->id = id;
    st->type = type;
    st->payload = *payload; /* ownership moves */
    st->secret = secret;
    pd_buf_init(payload, PD_IPC_MAX_PAYLOAD);
}

static void
stage_error(pd_vault_server_t *s, size_t *n, int conn, uint64_t id, int code, const char *msg)
{
    pd_buf_t p;
    pd_buf_init(&p, 1024);
    if (pd_msg_error_enc(&p, code < 0 ? code : PD_ERR_INTERNAL, msg) == 0)
        stage(s, n, conn, id, PD_MSG_ERROR, &p, false);
    pd_buf_free(&p);
}

static void
notify_secret(pd_vault_server_t *s, const char *name)
{
    pd_buf_t p;
    pd_buf_init(&p, 256);
    if (pd_msg_name_enc(&p, name) == 0) {
        for (int i = 0; i < s->nconns; i++) {
            conn_t *c = &s->conns[i];
            if (c->fd >= 0 && !c->closing && (c->principal & PD_PRINCIPAL_API))
                if (pd_ipc_frame(&c->wbuf, PD_MSG_SECRET_CHANGED, 0, pd_buf_view(&p)) != 0)
                    c->closing = true;
        }
    }
    pd_buf_free(&p);
}

/* handles AUTH on an unauthenticated socket peer; an authentication whose audit
 * record cannot be written is refused like a wrong credential */
static void
authenticate(pd_vault_server_t *s, conn_t *c, size_t *nst, int ci, const req_t *rq)
{
    char principal[16], cred[PD_MSG_CRED_MAX], hash[65];
    if (rq->hdr.type != PD_MSG_AUTH || pd_msg_auth_dec(rq->payload, principal, cred) != 0) {
        violation(s, c, "expected AUTH");
        return;
    }
    unsigned p = pd_principal_parse(principal);
    int idx = p ? __builtin_ctz(p) : -1;
    /* a digest that fails refuses the peer: an empty hash never matches */
    bool hashed = sha256_hex(cred, hash) == 0;
    OPENSSL_cleanse(cred, sizeof(cred));
    /* over TLS the client certificate must also name the principal */
    char cn[64];
    bool cert_ok = c->ssl == NULL || (pd_vt_peer_cn(c->ssl, cn, sizeof(cn)) && strcmp(cn, principal) == 0);
    if (!hashed || idx < 0 || s->cred_hash[idx][0] == '\0' || CRYPTO_memcmp(hash, s->cred_hash[idx], 64) != 0 ||
        !cert_ok) {
        if (pd_vault_audit(s->v, principal, "ipc.auth", "vault", PD_ERR_AUTH, c->origin) != 0) {
            /* logged; the peer is refused either way */
        }
        c->closing = true;
        return;
    }
    if (pd_vault_audit(s->v, principal, "ipc.auth", "vault", 0, c->origin) != 0) {
        pd_log_error("vault: authentication refused: its audit record cannot be written", PD_LS("peer", c->origin),
                     PD_LS("principal", principal));
        c->closing = true;
        return;
    }
    c->principal = p;
    c->auth_in_batch = true; /* until the batch (and the record) is committed */
    pd_buf_t ok;
    pd_buf_init(&ok, 64);
    if (pd_msg_data_enc(&ok, PD_VIEW_NULL, PD_VIEW_NULL, principal, 0, 0) == 0)
        stage(s, nst, ci, rq->hdr.id, PD_MSG_AUTH | PD_MSG_REPLY, &ok, false);
    pd_buf_free(&ok);
}

/* stages the reply of an operation (or its error), wiping a secret reply that is not sent */
static void
stage_outcome(pd_vault_server_t *s, size_t *nst, const req_t *rq, pd_hctx_t *h, int hr)
{
    if (hr == 0) {
        stage(s, nst, rq->conn, rq->hdr.id, rq->hdr.type | PD_MSG_REPLY, h->reply, h->reply_secret);
        if (h->changed[0] != '\0')
            notify_secret(s, h->changed);
        return;
    }
    if (h->reply_secret)
        OPENSSL_cleanse(h->reply->p, h->reply->cap);
    pd_buf_reset(h->reply);
    stage_error(s, nst, rq->conn, rq->hdr.id, hr, h->msg[0] ? h->msg : pd_strerror(hr));
}

static void
audit_failed(pd_hctx_t *h)
{
    snprintf(h->msg, sizeof(h->msg), "the vault cannot write the audit record of this operation: it was not done");
}

/* Runs one request in its own savepoint. The audit record of a success is written
 * inside that savepoint, so an operation whose record cannot be written is rolled
 * back with everything it did (memory included) and answered with an error. Returns
 * the operation's outcome in *hr, or nonzero when the transaction itself broke. */
static int
run_one(pd_vault_server_t *s, const pd_vault_dispatch_t *d, conn_t *c, pd_hctx_t *h, int *hr)
{
    pd_vault_mark_t mark = pd_vault_mark(s->v);
    int rc = pd_db_savepoint(s->v->db);
    if (rc != 0)
        return rc;
    *hr = d->handler(h);
    bool unrecorded = false;
    if (*hr == 0 && pd_vault_audit(s->v, pd_principal_name(c->principal), d->action, h->resource, 0, c->origin) != 0) {
        unrecorded = true;
        *hr = PD_ERR_IO;
        audit_failed(h);
    }
    if (*hr == 0)
        return pd_db_release(s->v->db);
    if ((rc = pd_db_rollback_to(s->v->db)) != 0)
        return rc;
    pd_vault_undo(s->v, &mark);
    /* a failure is recorded after its effects are gone; if even that record cannot be
     * written (logged), the peer still gets the failure */
    if (*hr != PD_ERR_PROTOCOL && !unrecorded &&
        pd_vault_audit(s->v, pd_principal_name(c->principal), d->action, h->resource, *hr, c->origin) != 0) {
        /* logged by pd_vault_audit */
    }
    return 0;
}

/* runs the batch of requests as one transaction and stages their replies */
static void
run_batch(pd_vault_server_t *s, size_t nreq)
{
    size_t nst = 0, ndeferred = 0;
    int deferred[MAX_BATCH];
    pd_buf_t reply;
    int rc = pd_db_begin(s->v->db);
    if (rc != 0) {
        for (size_t i = 0; i < nreq; i++)
            stage_error(s, &nst, s->reqs[i].conn, s->reqs[i].hdr.id, PD_ERR_IO, "vault storage unavailable");
        goto send;
    }
    pd_vault_mark_t batch_mark = pd_vault_mark(s->v);
    pd_buf_init(&reply, PD_IPC_MAX_PAYLOAD);
    for (size_t i = 0; i < nreq; i++) {
        req_t *rq = &s->reqs[i];
        conn_t *c = &s->conns[rq->conn];
        if (c->closing)
            continue;
        if (c->principal == 0) {
            uint64_t t0 = pd_mono_ns();
            authenticate(s, c, &nst, rq->conn, rq);
            pd_vmx_operation(PD_MSG_AUTH, c->principal != 0 && !c->closing ? 0 : PD_ERR_AUTH, pd_mono_ns() - t0);
            continue;
        }
        const pd_vault_dispatch_t *d = pd_vault_dispatch_find(rq->hdr.type);
        if (d == NULL) {
            violation(s, c, "unknown message type");
            continue;
        }
        if ((d->allowed & c->principal) == 0) {
            violation(s, c, "message type not allowed for this principal");
            continue;
        }
        if (rq->hdr.len < d->min_len || rq->hdr.len > d->max_len) {
            violation(s, c, "message size outside the bounds of its type");
            continue;
        }
        if (d->own_txn) {
            deferred[ndeferred++] = (int)i;
            continue;
        }
        pd_hctx_t h = {.v = s->v, .principal = c->principal, .payload = rq->payload, .reply = &reply};
        int hr = 0;
        uint64_t t0 = pd_mono_ns();
        if ((rc = run_one(s, d, c, &h, &hr)) != 0)
            break;
        pd_vmx_operation(rq->hdr.type, hr, pd_mono_ns() - t0);
        if (hr == PD_ERR_PROTOCOL) {
            violation(s, c, "malformed message");
            pd_buf_reset(&reply);
            continue;
        }
        stage_outcome(s, &nst, rq, &h, hr);
    }
    pd_buf_free_secure(&reply);
    if (rc == 0)
        rc = pd_db_commit(s->v->db);
    if (rc != 0) {
        /* nothing of this batch is durable: no peer may be told otherwise */
        (void)pd_db_rollback(s->v->db);
        pd_vault_undo(s->v, &batch_mark);
        pd_vault_audit_resync(s->v);
        for (size_t i = 0; i < nst; i++) {
            if (s->staged[i].secret)
                OPENSSL_cleanse(s->staged[i].payload.p, s->staged[i].payload.cap);
            pd_buf_free(&s->staged[i].payload);
        }
        nst = 0;
        for (size_t i = 0; i < nreq; i++)
            stage_error(s, &nst, s->reqs[i].conn, s->reqs[i].hdr.id, PD_ERR_IO, "vault storage failure");
        ndeferred = 0;
    }
    pd_vault_settle(s->v);
    /* an authentication stands only once its record is durable */
    for (int i = 0; i < s->nconns; i++) {
        if (s->conns[i].auth_in_batch && rc != 0)
            s->conns[i].closing = true;
        s->conns[i].auth_in_batch = false;
    }
    /* operations with their own transactions run after the batch is durable */
    for (size_t d = 0; d < ndeferred; d++) {
        req_t *rq = &s->reqs[deferred[d]];
        conn_t *c = &s->conns[rq->conn];
        const pd_vault_dispatch_t *row = pd_vault_dispatch_find(rq->hdr.type);
        pd_buf_init(&reply, PD_IPC_MAX_PAYLOAD);
        pd_hctx_t h = {.v = s->v, .principal = c->principal, .payload = rq->payload, .reply = &reply};
        /* each of its transactions carries the audit records of its steps */
        uint64_t t0 = pd_mono_ns();
        int hr = row->handler(&h);
        pd_vmx_operation(rq->hdr.type, hr, pd_mono_ns() - t0);
        if (hr == PD_ERR_PROTOCOL) {
            violation(s, c, "malformed message");
            pd_buf_free_secure(&reply);
            continue;
        }
        /* the request's own record; when it cannot be written the peer hears of a failure */
        int ar = pd_db_begin(s->v->db);
        if (ar == 0 &&
            (ar = pd_vault_audit(s->v, pd_principal_name(c->principal), row->action, h.resource, hr, c->origin)) == 0)
            ar = pd_db_commit(s->v->db);
        if (ar != 0) {
            (void)pd_db_rollback(s->v->db);
            pd_vault_audit_resync(s->v);
            if (hr == 0) {
                hr = PD_ERR_IO;
                snprintf(h.msg, sizeof(h.msg), "the vault cannot write the audit record of this request (its steps "
                                               "were recorded and committed one by one)");
            }
        }
        stage_outcome(s, &nst, rq, &h, hr);
        if (hr != 0 && h.changed[0] != '\0')
            notify_secret(s, h.changed); /* CURRENT moved durably even if the request is answered with an error */
        pd_buf_free_secure(&reply);
    }
send:
    for (size_t i = 0; i < nst; i++) {
        staged_t *st = &s->staged[i];
        conn_t *c = &s->conns[st->conn];
        if (c->fd >= 0 && !c->closing && pd_ipc_frame(&c->wbuf, st->type, st->id, pd_buf_view(&st->payload)) != 0)
            c->closing = true; /* a peer that does not read its replies is dropped */
        if (st->secret)
            OPENSSL_cleanse(st->payload.p, st->payload.cap);
        pd_buf_free(&st->payload);
    }
}

/* parses complete frames of c into s->reqs; returns false on a framing violation */
static bool
collect(pd_vault_server_t *s, int ci, size_t *nreq, size_t *consumed)
{
    conn_t *c = &s->conns[ci];
    size_t off = 0;
    while (*nreq < MAX_BATCH && c->rbuf.len - off >= PD_IPC_HEADER) {
        pd_ipc_hdr_t h;
        if (pd_ipc_hdr_decode(c->rbuf.p + off, &h) != 0) {
            violation(s, c, "oversized message or bad header");
            return false;
        }
        if (c->rbuf.len - off - PD_IPC_HEADER < h.len)
            break;
        req_t *rq = &s->reqs[(*nreq)++];
        rq->conn = ci;
        rq->hdr = h;
        rq->payload = pd_view(c->rbuf.p + off + PD_IPC_HEADER, h.len);
        off += PD_IPC_HEADER + h.len;
    }
    *consumed = off;
    return true;
}

static void
read_conn(conn_t *c)
{
    for (;;) {
        if (pd_buf_reserve(&c->rbuf, 65536) != 0)
            return; /* full: the pending frames are processed first */
        ssize_t n = pd_vt_read(c->fd, c->ssl, c->rbuf.p + c->rbuf.len, c->rbuf.cap - c->rbuf.len - 1);
        if (n > 0) {
            c->rbuf.len += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            c->closing = true;
        return;
    }
}

static void
flush_conn(conn_t *c)
{
    size_t off = 0;
    while (off < c->wbuf.len) {
        ssize_t n = pd_vt_write(c->fd, c->ssl, c->wbuf.p + off, c->wbuf.len - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        c->closing = true;
        break;
    }
    if (off > 0) {
        OPENSSL_cleanse(c->wbuf.p, off);
        memmove(c->wbuf.p, c->wbuf.p + off, c->wbuf.len - off);
        c->wbuf.len -= off;
    }
}

/* TCP peers: mutual TLS, handshake driven by the first reads */
static void
accept_tls_peers(pd_vault_server_t *s)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(s->tcp_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        char ip[64] = "?", origin[96];
        uint16_t port = 0;
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        snprintf(origin, sizeof(origin), "tls:%s:%u", ip, port);
        SSL *ssl = SSL_new(s->tls);
        conn_t *c = ssl != NULL ? conn_add(s, fd, 0, false, origin) : NULL;
        if (c == NULL) {
            SSL_free(ssl);
            close(fd);
            continue;
        }
        SSL_set_fd(ssl, fd);
        SSL_set_accept_state(ssl);
        c->ssl = ssl;
    }
}

static void
accept_peers(pd_vault_server_t *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct ucred cr;
        socklen_t cl = sizeof(cr);
        char origin[64] = "uds";
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
            snprintf(origin, sizeof(origin), "uds:pid=%d,uid=%d", (int)cr.pid, (int)cr.uid);
        if (conn_add(s, fd, 0, false, origin) == NULL)
            close(fd);
    }
}

static void
on_secret_changed(void *arg, const char *name)
{
    notify_secret(arg, name);
}

int
pd_vault_server_run(pd_vault_server_t *s, volatile sig_atomic_t *stop, bool exit_when_orphaned)
{
    struct pollfd pfd[MAX_CONNS + 2 + 1 + PD_VMX_MAX_CONNS]; /* the peers, up to two listeners, the metrics' */
    uint64_t last_tick = 0;

    while (!*stop) {
        int n = 0;
        bool any_fixed = false;
        int li = -1, ti = -1;
        if (s->listen_fd >= 0) {
            li = n;
            pfd[n++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
        }
        if (s->tcp_fd >= 0) {
            ti = n;
            pfd[n++] = (struct pollfd){.fd = s->tcp_fd, .events = POLLIN};
        }
        int base = n;
        for (int i = 0; i < s->nconns; i++) {
            conn_t *c = &s->conns[i];
            bool out = c->wbuf.len > 0 || (c->ssl != NULL && SSL_want_write(c->ssl));
            pfd[n++] = (struct pollfd){.fd = c->fd, .events = (short)(POLLIN | (out ? POLLOUT : 0))};
            any_fixed |= c->fixed;
        }
        if (exit_when_orphaned && !any_fixed)
            break; /* payd is gone: a child vault has nobody to serve */
        int mbase = n;
        n += pd_vmx_pollfds(s->metrics, &pfd[n]);
        int pr = poll(pfd, (nfds_t)n, 250);
        if (pr < 0 && errno != EINTR)
            return -errno;
        if (li >= 0 && (pfd[li].revents & POLLIN))
            accept_peers(s);
        if (ti >= 0 && (pfd[ti].revents & POLLIN))
            accept_tls_peers(s);
        size_t nreq = 0;
        size_t consumed[MAX_CONNS] = {0};
        int nc = s->nconns;
        for (int i = 0; i < nc && i < mbase - base; i++) {
            conn_t *c = &s->conns[i];
            /* a TLS handshake that waited to write goes on through a read */
            if ((pfd[base + i].revents & (POLLIN | POLLHUP | POLLERR)) ||
                (c->ssl != NULL && (pfd[base + i].revents & POLLOUT) && SSL_want_write(c->ssl)))
                read_conn(c);
            if (!collect(s, i, &nreq, &consumed[i]))
                consumed[i] = c->rbuf.len;
        }
        if (nreq > 0)
            run_batch(s, nreq);
        pd_vmx_handle(s->metrics, &pfd[mbase], n - mbase); /* between batches: the state is settled */
        for (int i = 0; i < nc; i++) {
            conn_t *c = &s->conns[i];
            if (consumed[i] > 0) {
                OPENSSL_cleanse(c->rbuf.p, consumed[i]);
                memmove(c->rbuf.p, c->rbuf.p + consumed[i], c->rbuf.len - consumed[i]);
                c->rbuf.len -= consumed[i];
            }
            if (c->wbuf.len > 0)
                flush_conn(c);
        }
        /* drop closed peers, and peers that never authenticated (a slot each), compacting the array */
        int w = 0;
        uint64_t now = pd_mono_ms();
        for (int i = 0; i < s->nconns; i++) {
            conn_t *c = &s->conns[i];
            if (!c->closing && c->principal == 0 && now - c->accepted_ms >= AUTH_DEADLINE_MS) {
                pd_log_warn("vault: peer did not authenticate in time; dropped", PD_LS("peer", c->origin));
                c->closing = true;
            }
            if (s->conns[i].closing) {
                conn_close(&s->conns[i]);
                continue;
            }
            if (w != i)
                s->conns[w] = s->conns[i];
            w++;
        }
        s->nconns = w;
        if (now - last_tick >= 1000) {
            last_tick = now;
            pd_vault_tick(s->v);
            if (s->v->leader) /* on a shared database: the instance with the scheduler lease */
                pd_secrets_tick(s->v, on_secret_changed, s);
        }
    }
    return 0;
}
