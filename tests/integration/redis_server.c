/* Real redis-server / Sentinel processes for tests (see redis_server.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_server.h"

#define MAX_LIVE 16
static pid_t live[MAX_LIVE];
static bool atexit_set;

static void
kill_live(void)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (live[i] > 0) {
            kill(live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
        }
}

static void
track(pid_t p, bool add)
{
    for (int i = 0; i < MAX_LIVE; i++) {
        if (add && live[i] == 0) {
            live[i] = p;
            return;
        }
        if (!add && live[i] == p) {
            live[i] = 0;
            return;
        }
    }
}

uint16_t
pd_h_redis_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    uint16_t port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* in a child: execvp with mutable copies of argv (execvp's prototype wants char *const *) */
static void
exec_copy(const char *const *argv)
{
    char *v[40];
    int n = 0;
    for (; argv[n] != NULL && n < 39; n++)
        v[n] = strdup(argv[n]);
    v[n] = NULL;
    execvp(v[0], v);
    _exit(127);
}

static int
run_quiet(const char *const *argv)
{
    pid_t p = fork();
    if (p == 0) {
        int dn = open("/dev/null", O_WRONLY);
        dup2(dn, 1);
        dup2(dn, 2);
        exec_copy(argv);
    }
    int st = 0;
    if (p < 0 || waitpid(p, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int
pd_h_redis_make_certs(const char *dir)
{
    char ca[400], cakey[400], key[400], csr[400], cert[400], ext[400];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(cakey, sizeof(cakey), "%s/ca.key", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(csr, sizeof(csr), "%s/req.csr", dir);
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(ext, sizeof(ext), "%s/ext.cnf", dir);
    FILE *f = fopen(ext, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    fclose(f);
    const char *a1[] = {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", cakey, "-out", ca, "-days", "2", "-subj", "/CN=payd test redis CA", NULL};
    const char *a2[] = {"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                        "-out", csr, "-subj", "/CN=127.0.0.1", NULL};
    const char *a3[] = {"openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey, "-CAcreateserial", "-out", cert,
                        "-days", "2", "-extfile", ext, NULL};
    return run_quiet(a1) == 0 && run_quiet(a2) == 0 && run_quiet(a3) == 0 ? 0 : -1;
}

char *
pd_h_redis_cli(uint16_t port, const char *const *args)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    const char *argv[32] = {"redis-cli", "-h", "127.0.0.1", "-p", ps};
    int n = 5;
    for (int i = 0; args != NULL && args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t p = fork();
    if (p == 0) {
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        close(pfd[0]);
        exec_copy(argv);
    }
    close(pfd[1]);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    for (ssize_t k; out != NULL && (k = read(pfd[0], out + len, cap - len - 1)) > 0;) {
        len += (size_t)k;
        if (cap - len < 2) {
            char *g = realloc(out, cap * 2);
            if (g == NULL) {
                free(out);
                out = NULL;
                break;
            }
            out = g;
            cap *= 2;
        }
    }
    close(pfd[0]);
    waitpid(p, NULL, 0);
    if (out != NULL)
        out[len] = '\0';
    return out;
}

static bool
pings(const pd_h_redis_t *r, const pd_h_redis_opts_t *o)
{
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", (unsigned)r->port);
    const char *argv[16] = {"redis-cli", "-h", "127.0.0.1", "-p", ps};
    int n = 5;
    if (o->tls) {
        argv[n++] = "--tls";
        argv[n++] = "--cacert";
        argv[n++] = o->tls_ca;
    }
    if (o->requirepass != NULL) {
        argv[n++] = "--no-auth-warning";
        argv[n++] = "-a";
        argv[n++] = o->requirepass;
    }
    argv[n++] = "PING";
    argv[n] = NULL;
    int pfd[2];
    if (pipe(pfd) != 0)
        return false;
    pid_t p = fork();
    if (p == 0) {
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        close(pfd[0]);
        exec_copy(argv);
    }
    close(pfd[1]);
    char buf[256] = "";
    ssize_t k = read(pfd[0], buf, sizeof(buf) - 1);
    close(pfd[0]);
    waitpid(p, NULL, 0);
    return k > 0 && strstr(buf, "PONG") != NULL;
}

int
pd_h_redis_start(pd_h_redis_t *r, const pd_h_redis_opts_t *o)
{
    static const pd_h_redis_opts_t none = {0};
    if (o == NULL)
        o = &none;
    memset(r, 0, sizeof(*r));
    if (!atexit_set) {
        atexit(kill_live);
        atexit_set = true;
    }
    snprintf(r->dir, sizeof(r->dir), "/tmp/payd-redis-XXXXXX");
    if (mkdtemp(r->dir) == NULL)
        return -1;
    r->port = o->port != 0 ? o->port : pd_h_redis_free_port();
    snprintf(r->conf, sizeof(r->conf), "%s/redis.conf", r->dir);
    FILE *f = fopen(r->conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "bind 127.0.0.1\nprotected-mode no\ndir %s\nlogfile %s/redis.log\nloglevel verbose\n", r->dir, r->dir);
    if (o->tls)
        fprintf(f, "port 0\ntls-port %u\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients no\n",
                (unsigned)r->port, o->tls_cert, o->tls_key, o->tls_ca);
    else
        fprintf(f, "port %u\n", (unsigned)r->port);
    if (o->sentinel) {
        fprintf(f, "sentinel monitor mymaster 127.0.0.1 %u 2\n"
                   "sentinel down-after-milliseconds mymaster 1000\n"
                   "sentinel failover-timeout mymaster 5000\n"
                   "sentinel parallel-syncs mymaster 1\n",
                (unsigned)o->monitor);
    } else {
        fprintf(f, "save \"\"\nappendonly no\n");
        if (o->requirepass != NULL)
            fprintf(f, "requirepass %s\n", o->requirepass);
        if (o->acl_user != NULL) {
            char name[64], pass[128];
            if (sscanf(o->acl_user, "%63s %127s", name, pass) == 2)
                fprintf(f, "user %s on >%s ~payd:* +@read +@write +@scripting -@dangerous +time +role +ping +select +script|load\n",
                        name, pass);
        }
        if (o->replicaof != 0)
            fprintf(f, "replicaof 127.0.0.1 %u\nreplica-read-only yes\n", (unsigned)o->replicaof);
        if (o->replicaof != 0 && o->requirepass != NULL)
            fprintf(f, "masterauth %s\n", o->requirepass); /* the master's default user */
    }
    fclose(f);
    pid_t p = fork();
    if (p < 0)
        return -1;
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int dn = open("/dev/null", O_RDWR);
        dup2(dn, 0);
        dup2(dn, 1);
        dup2(dn, 2);
        if (o->sentinel)
            execlp("redis-server", "redis-server", r->conf, "--sentinel", (char *)NULL);
        else
            execlp("redis-server", "redis-server", r->conf, (char *)NULL);
        _exit(127);
    }
    r->pid = p;
    track(p, true);
    for (int i = 0; i < 100; i++) {
        if (pings(r, o))
            return 0;
        if (waitpid(p, NULL, WNOHANG) == p) {
            track(p, false);
            r->pid = 0;
            return -1;
        }
        usleep(50000);
    }
    pd_h_redis_stop(r, SIGKILL);
    return -1;
}

void
pd_h_redis_stop(pd_h_redis_t *r, int sig)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, sig);
    for (int i = 0; i < 100; i++) {
        if (waitpid(r->pid, NULL, WNOHANG) == r->pid)
            goto done;
        usleep(50000);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
done:
    track(r->pid, false);
    r->pid = 0;
}

void
pd_h_redis_cleanup(pd_h_redis_t *r)
{
    if (r->dir[0] == '\0' || getenv("PAYD_KEEP_REDIS") != NULL) /* kept for a post-mortem */
        return;
    const char *argv[] = {"rm", "-rf", r->dir, NULL};
    (void)run_quiet(argv);
    r->dir[0] = '\0';
}
