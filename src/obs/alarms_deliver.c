/*
 * The notifier: one thread of its own that posts each queued notification to every
 * notify_url (libcurl, bounded attempts with back-off) and runs notify_command with
 * the body on standard input (posix_spawn, no shell, bounded time). The evaluator
 * only queues: a slow or dead receiver never holds it or the API.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "payd/alarms.h"
#include "payd/cred.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/time.h"

#define QUEUE_MAX 64
#define URLS_MAX 16
#define BACKOFF_MAX_MS 30000

static void
count(size_t result)
{
    pd_metric_add(pd_mx, PD_MX_ALARM_NOTIFICATIONS, result, 1);
}

struct pd_alarm_notifier {
    const pd_alarms_config_t *cfg;
    const pd_secret_source_t *secrets;
    char urls[URLS_MAX][1024];
    int nurls;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started, stopping;
    pd_buf_t queue[QUEUE_MAX];
    size_t head, count;
};

static size_t
discard(void *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* waits ms unless stopping; returns false when stopping */
static bool
rest(pd_alarm_notifier_t *n, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + ms * 1000000;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&n->mu);
    while (!n->stopping && pthread_cond_timedwait(&n->cv, &n->mu, &ts) != ETIMEDOUT)
        ;
    bool go = !n->stopping;
    pthread_mutex_unlock(&n->mu);
    return go;
}

/* one POST; 0 for a 2xx */
static int
post(pd_alarm_notifier_t *n, const char *url, pd_view_t body, const char *sig, long *status)
{
    CURL *c = curl_easy_init();
    if (c == NULL)
        return PD_ERR_NOMEM;
    char h[120];
    snprintf(h, sizeof(h), "X-Payd-Signature: %s", sig);
    struct curl_slist *hs = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *hs2 = hs ? curl_slist_append(hs, h) : NULL;
    /* no "Expect: 100-continue": a receiver that does not answer it would cost a second */
    hs2 = hs2 ? curl_slist_append(hs2, "Expect:") : NULL;
    int r = PD_ERR_NOMEM;
    if (hs2 == NULL)
        goto out;
    hs = hs2;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)body.p);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body.len);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)n->cfg->notify_timeout_ms);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "payd-alarms");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    CURLcode cc = curl_easy_perform(c);
    *status = 0;
    if (cc != CURLE_OK) {
        r = cc == CURLE_OPERATION_TIMEDOUT ? PD_ERR_TIMEOUT : PD_ERR_IO;
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    r = *status >= 200 && *status < 300 ? 0 : PD_ERR_PROTOCOL;
out:
    curl_slist_free_all(hs);
    curl_easy_cleanup(c);
    return r;
}

static void
deliver_url(pd_alarm_notifier_t *n, const char *url, pd_view_t body, const char *sig)
{
    int64_t backoff = 1000;
    char shown[1100];
    pd_alarm_url_shown(url, strlen(url), shown, sizeof(shown));
    for (int64_t att = 1; att <= n->cfg->notify_attempts; att++) {
        long status = 0;
        int r = post(n, url, body, sig, &status);
        if (r == 0) {
            pd_log_info("alarm notification delivered", PD_LS("url", shown), PD_LI("status", status),
                        PD_LI("attempt", att));
            count(PD_MX_NOTIFY_DELIVERED);
            return;
        }
        pd_log_warn("alarm notification failed", PD_LS("url", shown), PD_LI("status", status), PD_LI("attempt", att),
                    PD_LERR(r));
        if (att == n->cfg->notify_attempts || !rest(n, backoff))
            break;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    count(PD_MX_NOTIFY_FAILED);
    pd_log_error("alarm notification dropped after its last attempt", PD_LS("url", shown),
                 PD_LI("attempts", n->cfg->notify_attempts));
}

/* notify_command with body on stdin; killed at notify_timeout */
static void
run_command(pd_alarm_notifier_t *n, pd_view_t body)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        pd_log_error("alarms: notify_command: no pipe", PD_LERR(-errno));
        return;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    char *const argv[] = {n->cfg->notify_command, NULL};
    static char path_env[] = "PATH=/usr/bin:/bin";
    char *const envp[] = {path_env, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, n->cfg->notify_command, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[0]);
    if (rc != 0) {
        close(fds[1]);
        count(PD_MX_NOTIFY_COMMAND_FAILED);
        pd_log_error("alarms: cannot run notify_command", PD_LS("command", n->cfg->notify_command),
                     PD_LERR(-rc));
        return;
    }
    int64_t deadline = (int64_t)pd_mono_ms() + n->cfg->notify_timeout_ms;
    (void)fcntl(fds[1], F_SETFL, O_NONBLOCK);
    size_t off = 0;
    while (off < body.len && (int64_t)pd_mono_ms() < deadline) {
        struct pollfd p = {fds[1], POLLOUT, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t w = write(fds[1], body.p + off, body.len - off);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            break; /* the program closed its stdin */
        if (w > 0)
            off += (size_t)w;
    }
    close(fds[1]);
    int st = 0;
    pid_t got;
    while ((got = waitpid(pid, &st, WNOHANG)) == 0 && (int64_t)pd_mono_ms() < deadline)
        usleep(10000);
    if (got == 0) {
        kill(pid, SIGKILL);
        (void)waitpid(pid, &st, 0);
        count(PD_MX_NOTIFY_COMMAND_FAILED);
        pd_log_error("alarms: notify_command ran past notify_timeout: killed",
                     PD_LS("command", n->cfg->notify_command));
        return;
    }
    bool ok = got > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    count(ok ? PD_MX_NOTIFY_COMMAND_OK : PD_MX_NOTIFY_COMMAND_FAILED);
    if (!ok)
        pd_log_warn("alarms: notify_command failed", PD_LS("command", n->cfg->notify_command),
                    PD_LI("status", WIFEXITED(st) ? WEXITSTATUS(st) : -1));
}

static void
deliver(pd_alarm_notifier_t *n, pd_view_t body)
{
    if (n->nurls > 0) {
        char sig[65] = "", why[256] = "";
        pd_buf_t key;
        pd_buf_init(&key, 4096);
        int r = n->secrets != NULL && n->secrets->fetch != NULL
                    ? n->secrets->fetch(n->secrets->arg, n->cfg->notify_secret, &key, why, sizeof(why))
                    : PD_ERR_UNAVAILABLE;
        if (r == 0)
            r = pd_alarm_sign(key.p, key.len, body, sig);
        pd_buf_free_secure(&key);
        if (r != 0) {
            /* never unsigned: a receiver could not tell it from a forgery */
            count(PD_MX_NOTIFY_NO_SECRET);
            pd_log_error("alarm notification not sent: cannot read its signing secret",
                         PD_LS("secret", n->cfg->notify_secret), PD_LS("reason", why[0] ? why : pd_strerror(r)));
        } else {
            for (int i = 0; i < n->nurls; i++)
                deliver_url(n, n->urls[i], body, sig);
        }
        OPENSSL_cleanse(sig, sizeof(sig));
    }
    if (n->cfg->notify_command[0] != '\0')
        run_command(n, body);
}

static void *
worker(void *arg)
{
    pd_alarm_notifier_t *n = arg;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->stopping && n->count == 0)
            pthread_cond_wait(&n->cv, &n->mu);
        if (n->stopping)
            break;
        pd_buf_t b = n->queue[n->head];
        memset(&n->queue[n->head], 0, sizeof(pd_buf_t));
        n->head = (n->head + 1) % QUEUE_MAX;
        n->count--;
        pthread_mutex_unlock(&n->mu);
        deliver(n, pd_buf_view(&b));
        pd_buf_free(&b);
        pthread_mutex_lock(&n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

static int
parse_urls(pd_alarm_notifier_t *n, const char *list)
{
    const char *p = list;
    while (p != NULL && *p != '\0') {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (n->nurls == URLS_MAX || len >= sizeof(n->urls[0]))
            return PD_ERR_TOOBIG;
        memcpy(n->urls[n->nurls], p, len);
        n->urls[n->nurls][len] = '\0';
        n->nurls++;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

int
pd_alarm_notifier_new(pd_alarm_notifier_t **out, const pd_alarms_config_t *cfg, const pd_secret_source_t *secrets)
{
    pd_alarm_notifier_t *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return PD_ERR_NOMEM;
    n->cfg = cfg;
    n->secrets = secrets;
    int r = parse_urls(n, cfg->notify_url);
    if (r != 0) {
        free(n);
        return r;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, &ca);
    pthread_condattr_destroy(&ca);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (pthread_create(&n->thread, NULL, worker, n) != 0) {
        pd_alarm_notifier_free(n);
        return PD_ERR_INTERNAL;
    }
    n->started = true;
    *out = n;
    return 0;
}

void
pd_alarm_notify(pd_alarm_notifier_t *n, pd_view_t body)
{
    if (n == NULL || (n->nurls == 0 && n->cfg->notify_command[0] == '\0'))
        return;
    pd_buf_t b;
    pd_buf_init(&b, body.len + 1);
    if (pd_buf_put(&b, body.p, body.len) != 0) {
        pd_log_error("alarms: out of memory: a notification is dropped");
        pd_buf_free(&b);
        return;
    }
    pthread_mutex_lock(&n->mu);
    if (n->count == QUEUE_MAX) {
        pthread_mutex_unlock(&n->mu);
        count(PD_MX_NOTIFY_QUEUE_FULL);
        pd_log_error("alarms: the notification queue is full: a notification is dropped", PD_LI("queue", QUEUE_MAX));
        pd_buf_free(&b);
        return;
    }
    n->queue[(n->head + n->count) % QUEUE_MAX] = b;
    n->count++;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

void
pd_alarm_notifier_free(pd_alarm_notifier_t *n)
{
    if (n == NULL)
        return;
    if (n->started) {
        pthread_mutex_lock(&n->mu);
        n->stopping = true;
        pthread_cond_broadcast(&n->cv);
        pthread_mutex_unlock(&n->mu);
        pthread_join(n->thread, NULL);
    }
    if (n->count > 0)
        pd_log_warn("alarms: notifications still queued at stop are dropped", PD_LI("queued", (int64_t)n->count));
    for (size_t i = 0; i < QUEUE_MAX; i++)
        pd_buf_free(&n->queue[i]);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n);
}
