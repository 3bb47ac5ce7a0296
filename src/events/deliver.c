/*
 * The webhook delivery engine: one thread, libcurl multi, many attempts in flight.
 * See include/payd/webhook.h for the contract.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/time.h"
#include "payd/webhook.h"

#define RESPONSE_KEEP 512

typedef struct transfer {
    struct transfer *next, *prev; /* in-flight list */
    pd_delivery_t d;
    CURL *easy;
    struct curl_slist *headers;
    char sig_header[PD_WEBHOOK_SIG_MAX + 32];
    bool blocked; /* refused by the SSRF rule */
    uint64_t start_ns;
} transfer_t;

struct pd_webhook_engine {
    pd_webhook_queue_t q;
    pd_webhook_opts_t o;
    CURLM *multi;
    pthread_t thread;
    atomic_bool stop;
    int in_flight;
    transfer_t *active; /* in-flight transfers */
    pd_hook_outcome_t *done; /* the transfers one pass finished (max_in_flight of room) */
    transfer_t **done_t;
};

static bool
v4_is_private(const uint8_t b[4])
{
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    memcpy(&v4.sin_addr, b, 4);
    return pd_addr_is_private((const struct sockaddr *)&v4);
}

bool
pd_addr_is_private(const struct sockaddr *sa)
{
    static const uint8_t zero[12] = {0}, nat64[12] = {0x00, 0x64, 0xff, 0x9b},
                         siit[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 16) == 0xA9FE /* 169.254 */ ||
               (a >> 20) == 0xAC1 /* 172.16/12 */ || (a >> 16) == 0xC0A8 /* 192.168 */ ||
               (a >> 22) == (100u << 2 | 1) /* 100.64/10 */ || (a >> 28) >= 0xE /* multicast, reserved */ ||
               (a >> 8) == 0xC00000 /* 192.0.0/24 */ || (a >> 17) == (198u << 7 | 9) /* 198.18/15 */;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        const uint8_t *b = a6->s6_addr;
        /* forms that carry an IPv4 address, which some stack or gateway on the way may
         * reach: mapped ::ffff:a.b.c.d, translated ::ffff:0:a.b.c.d, NAT64 64:ff9b::/96
         * and 6to4 2002::/16 are judged by the IPv4 address they embed */
        if (IN6_IS_ADDR_V4MAPPED(a6) || memcmp(b, siit, 12) == 0 || memcmp(b, nat64, 12) == 0)
            return v4_is_private(b + 12);
        if (b[0] == 0x20 && b[1] == 0x02)
            return v4_is_private(b + 2);
        /* IPv4-compatible ::a.b.c.d (deprecated; :: and ::1 included), the local-use
         * NAT64 prefix 64:ff9b:1::/48, the discard prefix 100::/64 and Teredo 2001::/32
         * (its IPv4 address is obfuscated) are never a webhook target */
        if (memcmp(b, zero, 12) == 0 || (memcmp(b, nat64, 4) == 0 && b[4] == 0 && b[5] == 1) ||
            (b[0] == 0x01 && memcmp(b + 1, zero, 7) == 0) || (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0))
            return true;
        return IN6_IS_ADDR_LOOPBACK(a6) || IN6_IS_ADDR_UNSPECIFIED(a6) || IN6_IS_ADDR_LINKLOCAL(a6) ||
               IN6_IS_ADDR_SITELOCAL(a6) || IN6_IS_ADDR_MULTICAST(a6) || (b[0] & 0xfe) == 0xfc;
    }
    return true; /* unknown families are never allowed */
}

/* checks the address libcurl is about to connect to (after DNS, so rebinding cannot dodge it) */
static curl_socket_t
open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    transfer_t *t = clientp;
    (void)purpose;
    if (!t->d.allow_private && pd_addr_is_private(&addr->addr)) {
        t->blocked = true;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype, addr->protocol);
}

static size_t
discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static void
transfer_free(transfer_t *t)
{
    if (t == NULL)
        return;
    curl_slist_free_all(t->headers);
    if (t->easy != NULL)
        curl_easy_cleanup(t->easy);
    pd_buf_free(&t->d.payload);
    pd_buf_free_secure(&t->d.secret);
    free(t);
}

static int
start_transfer(pd_webhook_engine_t *e, transfer_t *t)
{
    char sig[PD_WEBHOOK_SIG_MAX];
    int64_t now = pd_unix_now();
    if (pd_webhook_sign((const char *)t->d.secret.p, t->d.secret.len, now, pd_buf_view(&t->d.payload), sig,
                        sizeof(sig)) != 0)
        return PD_ERR_CRYPTO;
    snprintf(t->sig_header, sizeof(t->sig_header), "Stripe-Signature: %s", sig);
    /* the secret is not needed past signing */
    pd_buf_free_secure(&t->d.secret);
    if ((t->easy = curl_easy_init()) == NULL)
        return PD_ERR_NOMEM;
    t->headers = curl_slist_append(t->headers, "Content-Type: application/json; charset=utf-8");
    t->headers = curl_slist_append(t->headers, t->sig_header);
    t->headers = curl_slist_append(t->headers, "Expect:");
    curl_easy_setopt(t->easy, CURLOPT_URL, t->d.url);
    curl_easy_setopt(t->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, (const char *)t->d.payload.p);
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->d.payload.len);
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(t->easy, CURLOPT_USERAGENT, e->o.user_agent);
    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long)e->o.timeout_ms);
    curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(e->o.timeout_ms < 5000 ? e->o.timeout_ms : 5000));
    curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, t->d.allow_private ? "http,https" : "https");
    curl_easy_setopt(t->easy, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(t->easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(t->easy, CURLOPT_OPENSOCKETDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    t->start_ns = pd_mono_ns();
    if (curl_multi_add_handle(e->multi, t->easy) != CURLM_OK)
        return PD_ERR_INTERNAL;
    t->next = e->active;
    if (e->active != NULL)
        e->active->prev = t;
    e->active = t;
    e->in_flight++;
    return 0;
}

/* Takes a finished transfer out of the multi handle and the in-flight list, and works out
 * its outcome; the caller records it and frees t. */
static void
finish_transfer(pd_webhook_engine_t *e, transfer_t *t, CURLcode code, pd_attempt_t *a)
{
    long status = 0;
    memset(a, 0, sizeof(*a));
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    a->http_status = (int)status;
    a->duration_ms = (int64_t)((pd_mono_ns() - t->start_ns) / 1000000u);
    a->ok = code == CURLE_OK && status >= 200 && status < 300;
    if (t->blocked)
        snprintf(a->error, sizeof(a->error), "refused: the endpoint resolves to a private or loopback address");
    else if (code != CURLE_OK)
        snprintf(a->error, sizeof(a->error), "%s", curl_easy_strerror(code));
    else if (!a->ok)
        snprintf(a->error, sizeof(a->error), "endpoint answered HTTP %ld", status);
    pd_mx_inc(PD_MX_WEBHOOK_DELIVERIES, a->ok                              ? PD_MX_HOOK_SUCCESS
                                        : t->blocked                       ? PD_MX_HOOK_REFUSED
                                        : code == CURLE_OPERATION_TIMEDOUT ? PD_MX_HOOK_TIMEOUT
                                        : code != CURLE_OK                 ? PD_MX_HOOK_NETWORK_ERROR
                                                                           : PD_MX_HOOK_HTTP_ERROR);
    int64_t now = pd_unix_now();
    if (!a->ok) {
        int64_t wait = pd_webhook_backoff(t->d.attempt, t->d.first_at, now);
        a->next_at = wait < 0 ? 0 : now + wait;
    }
    pd_log(a->ok ? PD_LOG_DEBUG : PD_LOG_WARN, "webhook attempt", PD_LS("event", t->d.event_id),
           PD_LS("delivery", t->d.delivery_id), PD_LI("attempt", t->d.attempt), PD_LI("status", a->http_status),
           PD_LB("ok", a->ok), PD_LS("error", a->error[0] ? a->error : NULL), PD_LI("next_at", a->next_at));
    curl_multi_remove_handle(e->multi, t->easy);
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        e->active = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    e->in_flight--;
}

/* Records every transfer that finished in this pass in one call to the queue (at most
 * max_in_flight of them: the engine's done arrays have that room). */
static void
record_finished(pd_webhook_engine_t *e)
{
    size_t n = 0;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(e->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        transfer_t *t = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        finish_transfer(e, t, m->data.result, &e->done[n].a);
        e->done[n].d = &t->d;
        e->done_t[n++] = t;
    }
    if (n > 0)
        e->q.record(e->q.ctx, e->done, n);
    for (size_t i = 0; i < n; i++)
        transfer_free(e->done_t[i]);
}

/* reports an attempt that never went out, to be tried again in a minute */
static void
record_not_started(pd_webhook_engine_t *e, const pd_delivery_t *d)
{
    pd_hook_outcome_t o = {d, {.next_at = pd_unix_now() + 60}};
    snprintf(o.a.error, sizeof(o.a.error), "could not start the request");
    pd_mx_inc(PD_MX_WEBHOOK_DELIVERIES, PD_MX_HOOK_NOT_STARTED);
    e->q.record(e->q.ctx, &o, 1);
}

static void
fill(pd_webhook_engine_t *e)
{
    int room = e->o.max_in_flight - e->in_flight;
    if (room <= 0 || atomic_load(&e->stop))
        return;
    pd_delivery_t *batch = calloc((size_t)room, sizeof(*batch));
    if (batch == NULL)
        return;
    int n = e->q.next_due(e->q.ctx, pd_unix_now(), batch, room);
    for (int i = 0; i < n; i++) {
        transfer_t *t = calloc(1, sizeof(*t));
        if (t == NULL) {
            record_not_started(e, &batch[i]);
            pd_buf_free(&batch[i].payload);
            pd_buf_free_secure(&batch[i].secret);
            continue;
        }
        t->d = batch[i];
        if (start_transfer(e, t) != 0) {
            record_not_started(e, &t->d);
            transfer_free(t);
        }
    }
    free(batch);
}

static void *
engine_main(void *arg)
{
    pd_webhook_engine_t *e = arg;
    pthread_setname_np(pthread_self(), "payd-webhooks");
    uint64_t stop_deadline = 0;
    for (;;) {
        bool stopping = atomic_load(&e->stop);
        if (stopping && stop_deadline == 0)
            stop_deadline = pd_mono_ms() + (uint64_t)e->o.timeout_ms;
        if (stopping && (e->in_flight == 0 || pd_mono_ms() > stop_deadline))
            break;
        fill(e);
        int running = 0;
        curl_multi_poll(e->multi, NULL, 0, (int)e->o.poll_ms, NULL);
        curl_multi_perform(e->multi, &running);
        record_finished(e);
    }
    /* attempts still running at the stop deadline stay leased in the queue and are
     * retried after the lease expires */
    while (e->active != NULL) {
        transfer_t *t = e->active;
        e->active = t->next;
        curl_multi_remove_handle(e->multi, t->easy);
        transfer_free(t);
    }
    return NULL;
}

static void
engine_free(pd_webhook_engine_t *e)
{
    if (e->multi != NULL)
        curl_multi_cleanup(e->multi);
    free(e->done);
    free(e->done_t);
    free(e);
}

int
pd_webhook_engine_start(pd_webhook_engine_t **out, const pd_webhook_queue_t *q, const pd_webhook_opts_t *o)
{
    pd_webhook_engine_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return PD_ERR_NOMEM;
    e->q = *q;
    e->o = o != NULL ? *o : (pd_webhook_opts_t){0};
    if (e->o.max_in_flight <= 0)
        e->o.max_in_flight = 64;
    if (e->o.timeout_ms <= 0)
        e->o.timeout_ms = 10000;
    if (e->o.poll_ms <= 0)
        e->o.poll_ms = 500;
    if (e->o.user_agent == NULL)
        e->o.user_agent = "payd-webhooks/1 (+https://stripe.com/docs/webhooks compatible)";
    curl_global_init(CURL_GLOBAL_DEFAULT);
    e->done = calloc((size_t)e->o.max_in_flight, sizeof(*e->done));
    e->done_t = calloc((size_t)e->o.max_in_flight, sizeof(*e->done_t));
    if (e->done == NULL || e->done_t == NULL || (e->multi = curl_multi_init()) == NULL) {
        engine_free(e);
        return PD_ERR_NOMEM;
    }
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        engine_free(e);
        return PD_ERR_INTERNAL;
    }
    *out = e;
    return 0;
}

void
pd_webhook_engine_kick(pd_webhook_engine_t *e)
{
    if (e != NULL)
        curl_multi_wakeup(e->multi);
}

void
pd_webhook_engine_stop(pd_webhook_engine_t *e)
{
    if (e == NULL)
        return;
    atomic_store(&e->stop, true);
    curl_multi_wakeup(e->multi);
    pthread_join(e->thread, NULL);
    engine_free(e);
}
