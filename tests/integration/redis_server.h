/*
 * Real redis-server and Sentinel processes for the tests: on loopback, on a free
 * port, no persistence, in a fresh temp dir. Each dies with the test process
 * (PR_SET_PDEATHSIG) and is stopped by pid at exit (atexit) if a test did not.
 */
#ifndef PAYD_TEST_REDIS_SERVER_H
#define PAYD_TEST_REDIS_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    uint16_t port;
    char dir[256];
    char conf[300];
} pd_h_redis_t;

typedef struct {
    uint16_t port;              /* 0: a free one */
    const char *requirepass;    /* the default user's password */
    const char *acl_user;       /* "name password": an ACL user with the rights payd needs */
    bool tls;                   /* TLS only (no plain port): cert/key/ca below */
    const char *tls_cert, *tls_key, *tls_ca;
    uint16_t replicaof;         /* a replica of 127.0.0.1:replicaof */
    bool sentinel;              /* a sentinel monitoring 127.0.0.1:monitor as "mymaster" (quorum 2) */
    uint16_t monitor;
} pd_h_redis_opts_t;

/* Starts one and waits until it answers PING (5 s). 0 on success. */
int pd_h_redis_start(pd_h_redis_t *r, const pd_h_redis_opts_t *o);
/* Sends sig and waits for the process (SIGKILL after 5 s). Keeps the dir. */
void pd_h_redis_stop(pd_h_redis_t *r, int sig);
/* Removes the dir (after stop). */
void pd_h_redis_cleanup(pd_h_redis_t *r);
/* Runs redis-cli -p port [args] and returns its output (malloc'd) or NULL. */
char *pd_h_redis_cli(uint16_t port, const char *const *args);
/* A free loopback port. */
uint16_t pd_h_redis_free_port(void);
/* Writes a CA and a server certificate for 127.0.0.1 into dir (ca.pem, cert.pem, key.pem). */
int pd_h_redis_make_certs(const char *dir);

#endif
