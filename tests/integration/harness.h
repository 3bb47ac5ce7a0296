/*
 * Integration test harness: starts the real payd on free loopback ports, waits
 * until it is ready, and talks to it over HTTPS with libcurl (or raw OpenSSL for
 * TLS policy checks). Every later test suite builds on this.
 */
#ifndef PAYD_TEST_HARNESS_H
#define PAYD_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    char dir[256];      /* data dir (a fresh temp dir unless reused) */
    char log_path[300]; /* payd's stdout+stderr */
    char ca_path[300];
    uint16_t api_port, admin_port;
} pd_h_payd_t;

typedef struct {
    const char *const *args; /* extra arguments (NULL-terminated) */
    const char *const *env;  /* extra NAME=value (NULL-terminated) */
    const char *reuse_dir;   /* start on an existing data dir (restart tests) */
    bool no_wait;            /* do not wait for /readyz */
    long nofile;             /* > 0: payd's RLIMIT_NOFILE, soft and hard (so payd cannot raise it) */
    long nofile_hard;        /* > nofile: the hard limit instead (payd raises its soft limit to it) */
    const char *user;        /* when the test runs as root: start payd as this user (the data
                              * dir is given to it), as an operator without root would */
} pd_h_opts_t;

/* Starts payd --dev; returns 0 when /readyz answered 200 within 40 s (else it is killed). */
int pd_h_start(pd_h_payd_t *p, const pd_h_opts_t *opts);
/* Sends sig and waits up to timeout_ms; returns the exit code, 128+signal if killed, or -1 on timeout (then SIGKILLs). */
int pd_h_stop(pd_h_payd_t *p, int sig, int timeout_ms);
/* Removes the data dir. */
void pd_h_cleanup(pd_h_payd_t *p);
/* Returns the whole log file content (malloc'd). */
char *pd_h_log(const pd_h_payd_t *p);

typedef struct {
    long status;
    char *body;
    size_t body_len;
    char *headers; /* raw response headers, lower-cased names */
    long http_version; /* 11 or 2 */
    long connects;     /* new connections made for this request (0 = reused) */
    int curl_code;
} pd_h_resp_t;

typedef struct {
    bool admin;     /* plain HTTP on the admin port */
    bool http2;     /* negotiate HTTP/2 via ALPN (default HTTP/1.1) */
    const char *const *headers; /* "Name: value" (NULL-terminated) */
    const char *body;
    size_t body_len; /* 0: strlen(body) */
    const char *user; /* basic auth "user:" */
    long timeout_ms;
} pd_h_req_t;

/* A reusable client (keeps connections alive between calls). */
typedef struct pd_h_client pd_h_client_t;
pd_h_client_t *pd_h_client_new(const pd_h_payd_t *p);
void pd_h_client_free(pd_h_client_t *c);
int pd_h_do(pd_h_client_t *c, const char *method, const char *path, const pd_h_req_t *req, pd_h_resp_t *out);
/* One-shot request on a fresh client. */
int pd_h_request(const pd_h_payd_t *p, const char *method, const char *path, const pd_h_req_t *req, pd_h_resp_t *out);
void pd_h_resp_free(pd_h_resp_t *r);
/* Copies the value of a response header (lower-case name) into out; false if absent. */
bool pd_h_resp_header(const pd_h_resp_t *r, const char *name, char *out, size_t cap);

/* Raw TLS handshake against the API port. Returns 0 if it succeeded; fills the
 * negotiated protocol version name, cipher, ALPN and the peer certificate's CN. */
typedef struct {
    char version[32], cipher[64], alpn[16], subject_cn[128];
} pd_h_tls_info_t;
int pd_h_tls_probe(uint16_t port, int min_version, int max_version, const char *tls12_ciphers, pd_h_tls_info_t *info);
/* A handshake with a client certificate (PEM files; cert NULL: none), TLS 1.2 or 1.3,
 * then GET /healthz over HTTP/1.1: returns 0 only if that answered 200 (a TLS 1.3
 * server refuses a client certificate after the client's handshake has finished). */
int pd_h_tls_probe_client(uint16_t port, const char *cert, const char *key, pd_h_tls_info_t *info);

/* Sends raw bytes over TLS (HTTP/1.1 by ALPN) to the API port and reads until the
 * server closes or 2 s pass. *out gets what was received (malloc'd); *closed tells
 * whether the server closed the connection. Returns 0 when the exchange ran. */
int pd_h_raw_http1(uint16_t port, const void *req, size_t len, char **out, bool *closed);
/* A TLS connection to the API port from source address src (NULL: any loopback),
 * offering ALPN alpn ("h2" or "http/1.1"); reads time out after timeout_ms. NULL on
 * failure. pd_h_tls_close frees both. */
typedef struct {
    int fd;
    void *ssl_ctx, *ssl; /* SSL_CTX *, SSL * */
} pd_h_tls_t;
int pd_h_tls_open(pd_h_tls_t *t, uint16_t port, const char *src, const char *alpn, int timeout_ms);
void pd_h_tls_close(pd_h_tls_t *t);

/* A minimal HTTP/2 client over pd_h_tls_t (frames and literal HPACK; no flow control
 * beyond the defaults), for the tests of the edge's HTTP/2 limits. */
typedef struct {
    pd_h_tls_t tls;
    uint8_t in[65536 + 16];
    size_t inlen;
} pd_h_h2_t;
/* connects with ALPN h2 and sends the preface and an empty SETTINGS frame */
int pd_h_h2_open(pd_h_h2_t *h, uint16_t port, int timeout_ms);
void pd_h_h2_close(pd_h_h2_t *h);
/* appends one frame to out (at most cap bytes); returns its length or 0 if it does not fit */
size_t pd_h_h2_frame(uint8_t *out, size_t cap, uint8_t type, uint8_t flags, uint32_t stream, const void *payload,
                     size_t len);
/* a HEADERS frame for method path (authority localhost), extra "name: value" headers
 * (NULL-terminated, lower-case names) and the given flags (END_STREAM 0x1, END_HEADERS 0x4) */
size_t pd_h_h2_headers(uint8_t *out, size_t cap, uint32_t stream, uint8_t flags, const char *method, const char *path,
                       const char *const *extra);
/* writes all of buf; 0, or -1 once the server has closed */
int pd_h_h2_write(pd_h_h2_t *h, const void *buf, size_t len);
/* reads the next frame: 0 (type, flags, stream and up to cap payload bytes into payload,
 * *len its length), 1 when none arrived within timeout_ms, -1 when the connection closed.
 * SETTINGS frames from the server are acknowledged on the way. */
int pd_h_h2_read(pd_h_h2_t *h, int timeout_ms, uint8_t *type, uint8_t *flags, uint32_t *stream, uint8_t *payload,
                 size_t cap, size_t *len);
/* CPU time (user + system) a process has used, in clock ticks, from /proc/PID/stat; -1 on error */
long pd_h_cpu_ticks(int pid);

/* Runs argv, captures stdout+stderr (malloc'd into *out), returns the exit status or -1. */
int pd_h_run(const char *const *argv, char **out);
/* Runs `payctl --data-dir <p's data dir> ARGS...` (args NULL-terminated) with pd_h_run. */
int pd_h_payctl(const pd_h_payd_t *p, const char *const *args, char **out);
/* A currently free loopback TCP port. */
uint16_t pd_h_free_port(void);
/* PostgreSQL runs (PAYD_TEST_STORE=postgres, see pg_server.h): "store.url=URL" of the
 * data dir's own database into out; false on SQLite or when args set the store */
bool pd_h_store_args(const char *dir, const char *const *args, char *out, size_t cap);
/* Writes text to path (0644); returns 0 on success. */
int pd_h_write_file(const char *path, const char *text);

#endif
