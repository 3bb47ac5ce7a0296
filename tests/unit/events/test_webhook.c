#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "payd/time.h"
#include "payd/webhook.h"

static const char secret[] = "whsec_test_secret";

static void
signature_matches_an_independent_hmac(void **state)
{
    (void)state;
    char sig[PD_WEBHOOK_SIG_MAX];
    pd_view_t body = PD_VIEW_LIT("{\"id\":\"evt_1\"}");
    assert_int_equal(pd_webhook_sign(secret, strlen(secret), 1700000000, body, sig, sizeof(sig)), 0);
    /* computed with Python's hmac module */
    assert_string_equal(sig, "t=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a");
    assert_int_equal(pd_webhook_verify(secret, strlen(secret), sig, body, 1700000100, 300), 0);
    /* tampered payload, wrong secret, stale timestamp, garbage header */
    assert_int_equal(pd_webhook_verify(secret, strlen(secret), sig, PD_VIEW_LIT("{\"id\":\"evt_2\"}"), 1700000100, 300),
                     PD_ERR_AUTH);
    assert_int_equal(pd_webhook_verify("whsec_other", 11, sig, body, 1700000100, 300), PD_ERR_AUTH);
    assert_int_equal(pd_webhook_verify(secret, strlen(secret), sig, body, 1700001000, 300), PD_ERR_AUTH);
    assert_int_equal(pd_webhook_verify(secret, strlen(secret), "v1=abc", body, 1700000000, 300), PD_ERR_INVALID);
    assert_int_equal(pd_webhook_verify(secret, strlen(secret), "t=12x,v1=00", body, 1700000000, 300), PD_ERR_INVALID);
}

static void
backoff_grows_with_jitter_and_stops_after_three_days(void **state)
{
    (void)state;
    int64_t now = 1700000000;
    int64_t prev_max = 0;
    for (int attempt = 1; attempt <= 8; attempt++) {
        int64_t w = pd_webhook_backoff(attempt, now, now);
        int64_t base = 30LL << (attempt - 1);
        if (base > 43200)
            base = 43200;
        assert_true(w >= base - base / 4 && w <= base + base / 4);
        assert_true(base >= prev_max);
        prev_max = base;
    }
    assert_true(pd_webhook_backoff(20, now, now) <= 43200 + 43200 / 4);
    assert_int_equal(pd_webhook_backoff(20, now - 3 * 86400, now), -1);
}

static void
private_addresses_are_recognized(void **state)
{
    (void)state;
    static const struct {
        const char *ip;
        bool priv;
    } cases[] = {{"127.0.0.1", true},     {"10.1.2.3", true},   {"172.16.0.1", true},  {"172.31.255.1", true},
                 {"172.32.0.1", false},   {"192.168.1.1", true}, {"169.254.169.254", true}, {"100.64.0.1", true},
                 {"0.0.0.0", true},       {"224.0.0.1", true},   {"8.8.8.8", false},    {"93.184.216.34", false},
                 {"::1", true},           {"fe80::1", true},     {"fd00::1", true},     {"::ffff:10.0.0.1", true},
                 {"2606:4700::1111", false},
                 /* IPv6 forms that carry an IPv4 address, and prefixes never to be reached */
                 {"::127.0.0.1", true},   {"::8.8.8.8", true},   {"::ffff:0:7f00:1", true},
                 {"64:ff9b::7f00:1", true}, {"64:ff9b::a00:1", true}, {"64:ff9b::808:808", false},
                 {"64:ff9b:1::808:808", true}, {"2002:7f00:1::1", true}, {"2002:c0a8:101::1", true},
                 {"2002:808:808::1", false}, {"100::1", true}, {"100::ffff:1", true}, {"100:1::1", false},
                 {"2001:0:4136:e378:8000:63bf:3fff:fdd2", true}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage ss = {0};
        if (strchr(cases[i].ip, ':')) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            a->sin6_family = AF_INET6;
            assert_int_equal(inet_pton(AF_INET6, cases[i].ip, &a->sin6_addr), 1);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            a->sin_family = AF_INET;
            assert_int_equal(inet_pton(AF_INET, cases[i].ip, &a->sin_addr), 1);
        }
        if (pd_addr_is_private((struct sockaddr *)&ss) != cases[i].priv)
            fail_msg("%s: expected private=%d", cases[i].ip, cases[i].priv);
    }
}

/* a tiny HTTP endpoint: answers each request with the next status in `statuses` */
typedef struct {
    int fd;
    uint16_t port;
    int statuses[4];
    int served;
    char last_sig[256];
    char last_body[256];
} endpoint_t;

static void *
endpoint_main(void *arg)
{
    endpoint_t *ep = arg;
    for (;;) {
        int c = accept(ep->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char buf[8192];
        size_t got = 0;
        ssize_t n;
        /* read until headers + content-length body are in */
        while ((n = read(c, buf + got, sizeof(buf) - 1 - got)) > 0) {
            got += (size_t)n;
            buf[got] = '\0';
            char *hend = strstr(buf, "\r\n\r\n");
            char *cl = strcasestr(buf, "content-length:");
            if (hend != NULL && cl != NULL && got >= (size_t)(hend + 4 - buf) + (size_t)atoi(cl + 15))
                break;
        }
        char *sig = strcasestr(buf, "stripe-signature: ");
        if (sig != NULL)
            snprintf(ep->last_sig, sizeof(ep->last_sig), "%.*s", (int)strcspn(sig + 18, "\r\n"), sig + 18);
        char *hend = strstr(buf, "\r\n\r\n");
        if (hend != NULL)
            snprintf(ep->last_body, sizeof(ep->last_body), "%s", hend + 4);
        int status = ep->statuses[ep->served < 4 ? ep->served : 3];
        ep->served++;
        char resp[128];
        int rl = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
        if (write(c, resp, (size_t)rl) < 0) {
            /* the client went away; nothing to do */
        }
        close(c);
    }
}

typedef struct {
    pthread_mutex_t mu;
    int handed;
    int total;
    uint16_t port;
    bool allow_private;
    const char *host6; /* an IPv6 literal to send to over https; NULL: 127.0.0.1 */
    pd_attempt_t attempts[8];
    int nattempts;
} fake_queue_t;

static int
next_due(void *ctx, int64_t now, pd_delivery_t *out, int max)
{
    (void)now;
    fake_queue_t *q = ctx;
    pthread_mutex_lock(&q->mu);
    int n = 0;
    if (q->handed < q->total && max > 0) {
        pd_delivery_t *d = &out[n++];
        snprintf(d->delivery_id, sizeof(d->delivery_id), "whd_%d", q->handed);
        snprintf(d->event_id, sizeof(d->event_id), "evt_1");
        if (q->host6 != NULL)
            snprintf(d->url, sizeof(d->url), "https://[%s]:%u/hook", q->host6, q->port);
        else
            snprintf(d->url, sizeof(d->url), "%s://127.0.0.1:%u/hook", q->allow_private ? "http" : "https", q->port);
        pd_buf_init(&d->payload, 1024);
        pd_buf_init(&d->secret, 64);
        if (pd_buf_put_cstr(&d->payload, "{\"id\":\"evt_1\",\"type\":\"charge.succeeded\"}") != 0 ||
            pd_buf_put_cstr(&d->secret, secret) != 0)
            abort();
        d->attempt = q->handed + 1;
        d->first_at = pd_unix_now();
        d->allow_private = q->allow_private;
        q->handed++;
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

static void
record(void *ctx, const pd_hook_outcome_t *o, size_t n)
{
    fake_queue_t *q = ctx;
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < n; i++)
        q->attempts[q->nattempts++] = o[i].a;
    pthread_mutex_unlock(&q->mu);
}

static int
attempts(fake_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    int n = q->nattempts;
    pthread_mutex_unlock(&q->mu);
    return n;
}

static void
engine_delivers_signed_events_and_reports_failures(void **state)
{
    (void)state;
    endpoint_t ep = {.statuses = {500, 200, 200, 200}};
    ep.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(ep.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(ep.fd, 16), 0);
    getsockname(ep.fd, (struct sockaddr *)&sa, &sl);
    ep.port = ntohs(sa.sin_port);
    pthread_t th;
    pthread_create(&th, NULL, endpoint_main, &ep);

    fake_queue_t q = {.mu = PTHREAD_MUTEX_INITIALIZER, .total = 2, .port = ep.port, .allow_private = true};
    pd_webhook_queue_t wq = {next_due, record, &q};
    pd_webhook_opts_t o = {.timeout_ms = 3000, .poll_ms = 20, .max_in_flight = 1};
    pd_webhook_engine_t *e;
    assert_int_equal(pd_webhook_engine_start(&e, &wq, &o), 0);
    for (int i = 0; i < 300 && attempts(&q) < 2; i++)
        usleep(10000);
    pd_webhook_engine_stop(e);
    assert_int_equal(q.nattempts, 2);
    assert_false(q.attempts[0].ok);
    assert_int_equal(q.attempts[0].http_status, 500);
    assert_true(q.attempts[0].next_at > pd_unix_now());
    assert_true(q.attempts[1].ok);
    assert_int_equal(q.attempts[1].next_at, 0);
    /* what arrived verifies with the secret */
    assert_int_equal(pd_webhook_verify(secret, strlen(secret), ep.last_sig, pd_view_cstr(ep.last_body), pd_unix_now(), 300),
                     0);

    /* live mode (no private targets): loopback is refused before connecting */
    fake_queue_t q2 = {.mu = PTHREAD_MUTEX_INITIALIZER, .total = 1, .port = ep.port, .allow_private = false};
    pd_webhook_queue_t wq2 = {next_due, record, &q2};
    int served_before = ep.served;
    assert_int_equal(pd_webhook_engine_start(&e, &wq2, &o), 0);
    for (int i = 0; i < 300 && attempts(&q2) < 1; i++)
        usleep(10000);
    pd_webhook_engine_stop(e);
    assert_int_equal(q2.nattempts, 1);
    assert_false(q2.attempts[0].ok);
    assert_non_null(strstr(q2.attempts[0].error, "private or loopback"));
    assert_int_equal(ep.served, served_before);

    /* the connect-time guard reads the address libcurl connects to: every IPv6 form of
     * a private IPv4 address is refused before a socket is opened (without the rule
     * curl would try to connect and fail otherwise, or reach it through a gateway) */
    static const char *forms[] = {"::127.0.0.1",    "::ffff:0:7f00:1", "64:ff9b::7f00:1",
                                  "2002:7f00:1::1", "100::1",          "::ffff:127.0.0.1"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        fake_queue_t q3 = {.mu = PTHREAD_MUTEX_INITIALIZER, .total = 1, .port = ep.port, .host6 = forms[i]};
        pd_webhook_queue_t wq3 = {next_due, record, &q3};
        assert_int_equal(pd_webhook_engine_start(&e, &wq3, &o), 0);
        for (int k = 0; k < 300 && attempts(&q3) < 1; k++)
            usleep(10000);
        pd_webhook_engine_stop(e);
        assert_int_equal(q3.nattempts, 1);
        if (strstr(q3.attempts[0].error, "private or loopback") == NULL)
            fail_msg("%s: not refused by the guard: %s", forms[i], q3.attempts[0].error);
    }
    assert_int_equal(ep.served, served_before);
    shutdown(ep.fd, SHUT_RDWR);
    close(ep.fd);
    pthread_join(th, NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(signature_matches_an_independent_hmac),
        cmocka_unit_test(backoff_grows_with_jitter_and_stops_after_three_days),
        cmocka_unit_test(private_addresses_are_recognized),
        cmocka_unit_test(engine_delivers_signed_events_and_reports_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
