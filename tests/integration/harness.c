#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "harness.h"
#include "payd/argv.h"
#include "pg_server.h"

#ifndef PAYD_BIN
#error "PAYD_BIN must be defined by the build"
#endif

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

uint16_t
pd_h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

int
pd_h_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* the ports of the "listening" line this start wrote (past `from` in p's log, which a
 * restart appends to) into p; false until there is one */
static bool
listening_ports(pd_h_payd_t *p, size_t from)
{
    char *log = pd_h_log(p);
    const char *line = log != NULL && strlen(log) > from ? strstr(log + from, "\"msg\":\"listening\"") : NULL;
    const char *ap = line != NULL ? strstr(line, "\"api_port\":") : NULL;
    const char *dp = line != NULL ? strstr(line, "\"admin_port\":") : NULL;
    if (ap != NULL && dp != NULL) {
        p->api_port = (uint16_t)strtol(ap + 11, NULL, 10);
        p->admin_port = (uint16_t)strtol(dp + 13, NULL, 10);
    }
    free(log);
    return p->api_port != 0 && p->admin_port != 0;
}

/* PAYD_TEST_STORE=postgres: the data dir's own database on the tests' PostgreSQL (named
 * after the dir, so a restart on the dir finds it), as "store.url=URL" in out; false
 * on SQLite or when args set the store themselves */
bool
pd_h_store_args(const char *dir, const char *const *args, char *out, size_t cap)
{
    if (!pd_pg_wanted())
        return false;
    for (size_t i = 0; args != NULL && args[i] != NULL; i++)
        if (strncmp(args[i], "store.backend=", 14) == 0 || strncmp(args[i], "store.url=", 10) == 0)
            return false;
    const char *base = strrchr(dir, '/');
    char url[360];
    if (pd_pg_database(base != NULL ? base + 1 : dir, true, url, sizeof(url)) != 0) {
        fprintf(stderr, "harness: no PostgreSQL database for %s\n", dir);
        return false;
    }
    snprintf(out, cap, "store.url=%s", url);
    return true;
}

/* "waf.cache_dir=BUILD/waf-cache", the directory made (owned by the user payd runs as
 * when the tests run as root) */
static const char *
waf_cache_arg(void)
{
    static char arg[600];
    if (arg[0] == '\0') {
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/waf-cache", PAYD_BUILD_DIR);
        if (mkdir(dir, 0700) == 0 && geteuid() == 0) {
            struct passwd *pw = getpwnam("payd");
            if (pw != NULL && chown(dir, pw->pw_uid, pw->pw_gid) != 0)
                fprintf(stderr, "harness: cannot give %s to payd: %s\n", dir, strerror(errno));
        }
        snprintf(arg, sizeof(arg), "waf.cache_dir=%s", dir);
    }
    return arg;
}

int
pd_h_start(pd_h_payd_t *p, const pd_h_opts_t *opts)
{
    static const pd_h_opts_t none = {0};
    const char *argv[64];
    char listen[64], admin[64];
    int n = 0;

    /* a server that refuses us mid-write must fail the call, not kill the test */
    signal(SIGPIPE, SIG_IGN);

    if (opts == NULL)
        opts = &none;
    if (opts->reuse_dir != NULL) {
        if (p->dir != opts->reuse_dir)
            snprintf(p->dir, sizeof(p->dir), "%s", opts->reuse_dir);
    } else {
        snprintf(p->dir, sizeof(p->dir), "/tmp/payd-it-XXXXXX");
        if (mkdtemp(p->dir) == NULL)
            return -1;
    }
    snprintf(p->log_path, sizeof(p->log_path), "%s/payd.log", p->dir);
    snprintf(p->ca_path, sizeof(p->ca_path), "%s/tls/ca.pem", p->dir);
    /* port 0: payd binds free ports itself and logs them ("listening"), so tests running
     * side by side never race for a port picked in advance; a start not waited for
     * gets ports picked here (its test may never see the log line) */
    p->api_port = opts->no_wait ? pd_h_free_port() : 0;
    p->admin_port = opts->no_wait ? pd_h_free_port() : 0;
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", p->api_port);
    snprintf(admin, sizeof(admin), "127.0.0.1:%u", p->admin_port);

    argv[n++] = PAYD_BIN;
    argv[n++] = "--dev";
    argv[n++] = "--data-dir";
    argv[n++] = p->dir;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--admin-listen";
    argv[n++] = admin;
    char store_url[400];
    if (pd_h_store_args(p->dir, opts->args, store_url, sizeof(store_url))) {
        argv[n++] = "--set";
        argv[n++] = "store.backend=postgres";
        argv[n++] = "--set";
        argv[n++] = store_url;
    }
    /* one [waf] cache_dir for every payd the tests start, so each does not compile the
     * rules again (seconds under the sanitizers); a test's own --set comes after it */
    argv[n++] = "--set";
    argv[n++] = waf_cache_arg();
    for (size_t i = 0; opts->args != NULL && opts->args[i] != NULL && n < 62; i++)
        argv[n++] = opts->args[i];
    argv[n] = NULL;

    struct stat lst;
    size_t log_from = stat(p->log_path, &lst) == 0 ? (size_t)lst.st_size : 0;
    static const char *const no_env[] = {NULL};
    char **av = pd_argv_dup(argv), **env = pd_argv_dup(opts->env != NULL ? opts->env : no_env);
    if (av == NULL || env == NULL) {
        pd_argv_free(av);
        pd_argv_free(env);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        pd_argv_free(av);
        pd_argv_free(env);
        return -1;
    }
    if (pid == 0) {
        /* payd dies with the test process, whatever way that ends (a failed assertion
         * longjmps past the test's own stop; an abort skips atexit) */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (opts->user != NULL) {
            struct passwd *pw = getpwnam(opts->user);
            if (pw == NULL || chown(p->dir, pw->pw_uid, pw->pw_gid) != 0 || initgroups(opts->user, pw->pw_gid) != 0 ||
                setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
                setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0 ||
                prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) /* a change of user clears it */
                _exit(126);
        }
        unsetenv("PAYD_TEST_KEEP"); /* the harness's own switch, not a payd setting */
        unsetenv("PAYD_TEST_STORE"); /* likewise */
        if (opts->nofile > 0) {
            struct rlimit rl = {(rlim_t)opts->nofile,
                                (rlim_t)(opts->nofile_hard > opts->nofile ? opts->nofile_hard : opts->nofile)};
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
                _exit(126);
        }
        for (size_t i = 0; env[i] != NULL; i++)
            putenv(env[i]);
        execv(PAYD_BIN, av);
        _exit(127);
    }
    pd_argv_free(av);
    pd_argv_free(env);
    p->pid = pid;
    if (opts->no_wait)
        return 0;
    /* 40 s: a start is not what these tests time, and under ThreadSanitizer on a busy
     * machine the vault's key derivation alone can take seconds */
    for (int i = 0; i < 800; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            p->pid = 0;
            char *log = pd_h_log(p);
            fprintf(stderr, "payd exited during start; its output:\n%s\n", log);
            free(log);
            return -1;
        }
        if (p->api_port == 0 && !listening_ports(p, log_from)) {
            sleep_ms(50);
            continue;
        }
        pd_h_resp_t r;
        pd_h_req_t rq = {.admin = true, .timeout_ms = 1000};
        if (pd_h_request(p, "GET", "/readyz", &rq, &r) == 0 && r.status == 200) {
            pd_h_resp_free(&r);
            return 0;
        }
        pd_h_resp_free(&r);
        sleep_ms(50);
    }
    char *log = pd_h_log(p);
    fprintf(stderr, "payd did not become ready in 40 s; its output:\n%s\n", log != NULL ? log : "");
    free(log);
    (void)pd_h_stop(p, SIGKILL, 5000); /* never leave it running */
    return -1;
}

int
pd_h_stop(pd_h_payd_t *p, int sig, int timeout_ms)
{
    int st;
    if (p->pid <= 0)
        return -1;
    kill(p->pid, sig);
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            return 128 + WTERMSIG(st);
        }
        sleep_ms(10);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &st, 0);
    p->pid = 0;
    return -1;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void
pd_h_cleanup(pd_h_payd_t *p)
{
    if (p->pid > 0)
        pd_h_stop(p, SIGKILL, 2000);
    if (p->dir[0] != '\0' && getenv("PAYD_TEST_KEEP") == NULL)
        nftw(p->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return strdup("");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char tmp[8192];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            buf = realloc(buf, cap);
        }
        memcpy(buf + len, tmp, n);
        len += n;
    }
    fclose(f);
    if (buf == NULL)
        return strdup("");
    buf[len] = '\0';
    return buf;
}

char *
pd_h_log(const pd_h_payd_t *p)
{
    return slurp(p->log_path);
}

struct pd_h_client {
    const pd_h_payd_t *p;
    CURL *curl;
};

typedef struct {
    char *p;
    size_t len, cap;
} grow_t;

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    grow_t *g = ud;
    size_t n = size * nmemb;
    if (g->len + n + 1 > g->cap) {
        g->cap = (g->len + n + 1) * 2;
        g->p = realloc(g->p, g->cap);
    }
    memcpy(g->p + g->len, ptr, n);
    g->len += n;
    g->p[g->len] = '\0';
    return n;
}

pd_h_client_t *
pd_h_client_new(const pd_h_payd_t *p)
{
    static int inited;
    if (!inited) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        inited = 1;
    }
    pd_h_client_t *c = calloc(1, sizeof(*c));
    c->p = p;
    c->curl = curl_easy_init();
    return c;
}

void
pd_h_client_free(pd_h_client_t *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->curl);
    free(c);
}

int
pd_h_do(pd_h_client_t *c, const char *method, const char *path, const pd_h_req_t *req, pd_h_resp_t *out)
{
    static const pd_h_req_t none = {0};
    char url[1024];
    grow_t body = {0}, hdrs = {0};
    struct curl_slist *hl = NULL;
    CURL *h = c->curl;

    memset(out, 0, sizeof(*out));
    if (req == NULL)
        req = &none;
    curl_easy_reset(h);
    if (req->admin)
        snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", c->p->admin_port, path);
    else
        snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", c->p->api_port, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CAINFO, c->p->ca_path);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, req->http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 15000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++)
        hl = curl_slist_append(hl, req->headers[i]);
    if (req->body != NULL) {
        size_t len = req->body_len ? req->body_len : strlen(req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        hl = curl_slist_append(hl, "Expect:");
    }
    if (req->user != NULL)
        curl_easy_setopt(h, CURLOPT_USERPWD, req->user);
    if (hl != NULL)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    out->curl_code = (int)curl_easy_perform(h);
    curl_slist_free_all(hl);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &out->connects);
    long v = 0;
    curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &v);
    out->http_version = v == CURL_HTTP_VERSION_2_0 ? 2 : 11;
    out->body = body.p ? body.p : strdup("");
    out->body_len = body.len;
    /* lower-case header names (HTTP/1.1 keeps the server's case) */
    bool in_name = true;
    for (char *q = hdrs.p; q != NULL && *q; q++) {
        if (*q == '\n')
            in_name = true;
        else if (*q == ':')
            in_name = false;
        else if (in_name && *q >= 'A' && *q <= 'Z')
            *q = (char)(*q - 'A' + 'a');
    }
    out->headers = hdrs.p ? hdrs.p : strdup("");
    return out->curl_code == CURLE_OK ? 0 : -1;
}

int
pd_h_request(const pd_h_payd_t *p, const char *method, const char *path, const pd_h_req_t *req, pd_h_resp_t *out)
{
    pd_h_client_t *c = pd_h_client_new(p);
    int r = pd_h_do(c, method, path, req, out);
    pd_h_client_free(c);
    return r;
}

void
pd_h_resp_free(pd_h_resp_t *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}

bool
pd_h_resp_header(const pd_h_resp_t *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *line = r->headers; line != NULL && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = strcspn(v, "\r\n");
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return true;
        }
    }
    return false;
}

/* a TLS connection to the API port on loopback (SNI localhost, reads time out after
 * timeout_s); NULL if the TCP connect or the handshake fails. *fd gets the socket
 * (also on a failed handshake, for the caller to close). */
static SSL *
tls_connect(SSL_CTX *ctx, uint16_t port, int timeout_s, int *fd)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {timeout_s, 0};
    if ((*fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(*fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return NULL;
    setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    SSL_set_fd(ssl, *fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (SSL_connect(ssl) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

/* with_request: negotiate HTTP/1.1 and require a 200 for GET /healthz after the handshake */
static int
tls_probe(uint16_t port, int min_version, int max_version, const char *tls12_ciphers, const char *cert,
          const char *key, bool with_request, pd_h_tls_info_t *info)
{
    int r = -1, fd = -1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    static const unsigned char alpn_h2[] = "\x02h2\x08http/1.1", alpn_h1[] = "\x08http/1.1";
    const unsigned char *alpn = with_request ? alpn_h1 : alpn_h2;
    unsigned alpn_len = with_request ? sizeof(alpn_h1) - 1 : sizeof(alpn_h2) - 1;

    memset(info, 0, sizeof(*info));
    /* level 0 so that the client itself is willing to offer old protocols */
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, min_version);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    if (tls12_ciphers != NULL && SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1)
        goto out;
    if (cert != NULL && (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
                         SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1))
        goto out;
    SSL_CTX_set_alpn_protos(ctx, alpn, alpn_len);
    if ((ssl = tls_connect(ctx, port, 5, &fd)) == NULL)
        goto out;
    snprintf(info->version, sizeof(info->version), "%s", SSL_get_version(ssl));
    snprintf(info->cipher, sizeof(info->cipher), "%s", SSL_get_cipher_name(ssl));
    const unsigned char *a;
    unsigned al;
    SSL_get0_alpn_selected(ssl, &a, &al);
    if (a != NULL && al < sizeof(info->alpn)) {
        memcpy(info->alpn, a, al);
        info->alpn[al] = '\0';
    }
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (peer != NULL) {
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, info->subject_cn,
                                  sizeof(info->subject_cn));
        X509_free(peer);
    }
    if (with_request) {
        static const char get[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        char resp[64] = "";
        if (SSL_write(ssl, get, (int)sizeof(get) - 1) != (int)sizeof(get) - 1 ||
            SSL_read(ssl, resp, (int)sizeof(resp) - 1) <= 0 || strncmp(resp, "HTTP/1.1 200", 12) != 0)
            goto out;
    }
    r = 0;
out:
    ERR_clear_error();
    if (ssl != NULL)
        SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
    return r;
}

int
pd_h_tls_probe(uint16_t port, int min_version, int max_version, const char *tls12_ciphers, pd_h_tls_info_t *info)
{
    return tls_probe(port, min_version, max_version, tls12_ciphers, NULL, NULL, false, info);
}

int
pd_h_tls_probe_client(uint16_t port, const char *cert, const char *key, pd_h_tls_info_t *info)
{
    return tls_probe(port, TLS1_2_VERSION, TLS1_3_VERSION, NULL, cert, key, true, info);
}

int
pd_h_run(const char *const *argv, char **out)
{
    char path[] = "/tmp/payd-run-XXXXXX";
    char **av = pd_argv_dup(argv);
    int fd = av != NULL ? mkstemp(path) : -1;
    if (fd < 0) {
        pd_argv_free(av);
        return -1;
    }
    char url[400];
    const char *dir = NULL;
    for (size_t i = 1; argv[i] != NULL && argv[i + 1] != NULL; i++)
        if (strcmp(argv[i], "--data-dir") == 0)
            dir = argv[i + 1];
    bool pg = dir != NULL && pd_h_store_args(dir, NULL, url, sizeof(url));
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        if (pg) { /* payctl opens the payd's store through the same settings */
            setenv("PAYD_STORE_BACKEND", "postgres", 1);
            setenv("PAYD_STORE_URL", url + strlen("store.url="), 1);
        }
        execv(av[0], av);
        _exit(127);
    }
    pd_argv_free(av);
    close(fd);
    int st = 0;
    waitpid(pid, &st, 0);
    *out = slurp(path);
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int
pd_h_raw_http1(uint16_t port, const void *req, size_t len, char **out, bool *closed)
{
    int r = -1, fd = -1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    static const unsigned char alpn[] = "\x08http/1.1";
    size_t cap = 65536, used = 0;
    char *buf = calloc(1, cap + 1);

    *out = NULL;
    *closed = false;
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    if (buf == NULL || (ssl = tls_connect(ctx, port, 2, &fd)) == NULL || SSL_write(ssl, req, (int)len) != (int)len)
        goto out;
    for (;;) {
        int n = SSL_read(ssl, buf + used, (int)(cap - used));
        if (n > 0) {
            used += (size_t)n;
            if (used == cap)
                break;
            continue;
        }
        int e = SSL_get_error(ssl, n);
        /* a clean close_notify or a TCP FIN: the server closed; a timeout: it kept the connection */
        *closed = e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno != EAGAIN && errno != EWOULDBLOCK);
        break;
    }
    buf[used] = '\0';
    *out = buf;
    buf = NULL;
    r = 0;
out:
    ERR_clear_error();
    free(buf);
    if (ssl != NULL)
        SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
    return r;
}

int
pd_h_payctl(const pd_h_payd_t *p, const char *const *args, char **out)
{
    const char *argv[40] = {PAYCTL_BIN, "--data-dir", p->dir};
    size_t n = 3;
    for (size_t i = 0; args[i] != NULL; i++) {
        if (n == sizeof(argv) / sizeof(argv[0]) - 1)
            return -1;
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    return pd_h_run(argv, out);
}
