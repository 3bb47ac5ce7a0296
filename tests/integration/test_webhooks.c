/*
 * Webhook delivery scheduling against payd --dev, with real endpoints on loopback:
 * one endpoint that never answers must not starve a healthy one, and deleting an
 * endpoint stops the deliveries still queued for it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"

/* the per-endpoint cap the tests run with (payments.webhook_concurrency_per_endpoint) */
#define PER_ENDPOINT 8

static pd_h_payd_t payd;

static int
setup(void **state)
{
    (void)state;
    const char *args[] = {"--set", "payments.webhook_concurrency_per_endpoint=8", NULL};
    pd_h_opts_t o = {.args = args};
    if (pd_h_start(&payd, &o) != 0)
        return -1;
    api_load_credentials(&payd);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    int rc = pd_h_stop(&payd, SIGTERM, 20000);
    pd_h_cleanup(&payd);
    return rc == 0 ? 0 : -1;
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- a webhook endpoint in the test process ---
 * One thread polls the listening socket and every connection. A request counts once its
 * head and Content-Length body are in; a HOOK_OK endpoint then answers 200 (after
 * delay_ms) and closes, a HOOK_HANG endpoint never answers and keeps the connection. */
typedef enum { HOOK_OK, HOOK_HANG } hook_mode_t;

#define HOOK_CONNS 256
#define HOOK_REQ_MAX 65536
#define HOOK_EVENTS 4096

typedef struct {
    int fd;
    size_t got;
    bool complete;
    int64_t answer_at; /* HOOK_OK: monotonic ms at which to answer */
    char *buf;
} hook_conn_t;

typedef struct {
    hook_mode_t mode;
    int delay_ms;
    int fd, wake[2];
    uint16_t port;
    pthread_t thread;
    hook_conn_t conns[HOOK_CONNS];
    pthread_mutex_t mu;
    /* under mu */
    int requests;      /* complete requests received */
    int open, max_open; /* connections open now, and at most at once */
    int nev;
    char pi[HOOK_EVENTS][40]; /* the payment intent of each event received */
    int64_t at[HOOK_EVENTS];  /* when it arrived (monotonic ms) */
} hook_t;

static void
hook_close(hook_t *h, hook_conn_t *c)
{
    close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    pthread_mutex_lock(&h->mu);
    h->open--;
    pthread_mutex_unlock(&h->mu);
}

/* notes a complete request: the payment intent its event is about */
static void
hook_request(hook_t *h, hook_conn_t *c)
{
    char *body = strstr(c->buf, "\r\n\r\n");
    json_error_t e;
    json_t *ev = body != NULL ? json_loads(body + 4, 0, &e) : NULL;
    const char *pi = ev != NULL ? jstr(ev, "data.object.id") : NULL;
    pthread_mutex_lock(&h->mu);
    h->requests++;
    if (pi != NULL && h->nev < HOOK_EVENTS) {
        snprintf(h->pi[h->nev], sizeof(h->pi[0]), "%s", pi);
        h->at[h->nev++] = now_ms();
    }
    pthread_mutex_unlock(&h->mu);
    json_decref(ev);
    c->complete = true;
    c->answer_at = now_ms() + h->delay_ms;
}

static void
hook_read(hook_t *h, hook_conn_t *c)
{
    ssize_t n = read(c->fd, c->buf + c->got, HOOK_REQ_MAX - 1 - c->got);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            hook_close(h, c);
        return;
    }
    if (c->complete)
        return; /* a hanging endpoint reads and ignores whatever follows */
    c->got += (size_t)n;
    c->buf[c->got] = '\0';
    char *hend = strstr(c->buf, "\r\n\r\n"), *cl = strcasestr(c->buf, "content-length:");
    if (hend != NULL && cl != NULL && c->got >= (size_t)(hend + 4 - c->buf) + strtoul(cl + 15, NULL, 10))
        hook_request(h, c);
    else if (c->got == HOOK_REQ_MAX - 1)
        hook_close(h, c);
}

static void
hook_accept(hook_t *h)
{
    int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK);
    if (fd < 0)
        return;
    for (int i = 0; i < HOOK_CONNS; i++) {
        hook_conn_t *c = &h->conns[i];
        if (c->fd >= 0)
            continue;
        c->fd = fd;
        c->buf = malloc(HOOK_REQ_MAX);
        pthread_mutex_lock(&h->mu);
        if (++h->open > h->max_open)
            h->max_open = h->open;
        pthread_mutex_unlock(&h->mu);
        return;
    }
    close(fd); /* more connections than any test opens */
}

static void *
hook_main(void *arg)
{
    hook_t *h = arg;
    struct pollfd pf[HOOK_CONNS + 2];
    int idx[HOOK_CONNS + 2];
    for (;;) {
        int n = 0, timeout = 100;
        pf[n++] = (struct pollfd){.fd = h->wake[0], .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = h->fd, .events = POLLIN};
        int64_t t = now_ms();
        for (int i = 0; i < HOOK_CONNS; i++) {
            hook_conn_t *c = &h->conns[i];
            if (c->fd < 0)
                continue;
            if (c->complete && h->mode == HOOK_OK) {
                if (c->answer_at <= t) {
                    const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                    if (write(c->fd, ok, sizeof(ok) - 1) < 0) {
                        /* the sender went away */
                    }
                    hook_close(h, c);
                    continue;
                }
                if (c->answer_at - t < timeout)
                    timeout = (int)(c->answer_at - t);
            }
            idx[n] = i;
            pf[n++] = (struct pollfd){.fd = c->fd, .events = POLLIN};
        }
        if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR)
            break;
        if (pf[0].revents != 0)
            break;
        if (pf[1].revents & POLLIN)
            hook_accept(h);
        for (int k = 2; k < n; k++)
            if (pf[k].revents != 0 && h->conns[idx[k]].fd >= 0)
                hook_read(h, &h->conns[idx[k]]);
    }
    for (int i = 0; i < HOOK_CONNS; i++)
        if (h->conns[i].fd >= 0)
            hook_close(h, &h->conns[i]);
    return NULL;
}

static hook_t *
hook_start(hook_mode_t mode, int delay_ms)
{
    hook_t *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    h->mode = mode;
    h->delay_ms = delay_ms;
    pthread_mutex_init(&h->mu, NULL);
    for (int i = 0; i < HOOK_CONNS; i++)
        h->conns[i].fd = -1;
    assert_int_equal(pipe(h->wake), 0);
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(h->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(h->fd, 128), 0);
    assert_int_equal(getsockname(h->fd, (struct sockaddr *)&sa, &sl), 0);
    h->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&h->thread, NULL, hook_main, h), 0);
    return h;
}

/* closes every connection (payd's attempts on them fail at once) and frees */
static void
hook_stop(hook_t *h)
{
    if (write(h->wake[1], "x", 1) != 1)
        fail_msg("cannot wake the endpoint thread");
    pthread_join(h->thread, NULL);
    close(h->fd);
    close(h->wake[0]);
    close(h->wake[1]);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static int
hook_events(hook_t *h)
{
    pthread_mutex_lock(&h->mu);
    int n = h->nev;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* registers h for payment_intent.created; its we_ id into id */
static void
hook_register(const hook_t *h, char *id, size_t cap)
{
    char body[300];
    json_t *j;
    snprintf(body, sizeof(body), "url=http://127.0.0.1:%u/hook&enabled_events[]=payment_intent.created", h->port);
    assert_int_equal(api_call(&payd, "POST", "/v1/webhook_endpoints", body, &j), 200);
    snprintf(id, cap, "%s", jstr(j, "id"));
    json_decref(j);
}

static void
hook_delete(const char *id)
{
    char path[128];
    json_t *j;
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%s", id);
    assert_int_equal(api_call(&payd, "DELETE", path, NULL, &j), 200);
    json_decref(j);
}

/* --- payment intents: each creation is one payment_intent.created event --- */
typedef struct {
    char id[40];
    int64_t at; /* when the creation was answered (monotonic ms) */
} created_t;

/* creates n payment intents over one kept-alive connection */
static void
create_intents(created_t *out, int n)
{
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    const char *hdrs[] = {auth, "Content-Type: application/x-www-form-urlencoded", NULL};
    pd_h_req_t rq = {.headers = hdrs, .body = "amount=1500&currency=usd"};
    pd_h_client_t *c = pd_h_client_new(&payd);
    for (int i = 0; i < n; i++) {
        pd_h_resp_t r;
        assert_int_equal(pd_h_do(c, "POST", "/v1/payment_intents", &rq, &r), 0);
        assert_int_equal(r.status, 200);
        json_error_t e;
        json_t *j = json_loads(r.body, 0, &e);
        snprintf(out[i].id, sizeof(out[i].id), "%s", jstr(j, "id"));
        out[i].at = now_ms();
        json_decref(j);
        pd_h_resp_free(&r);
    }
    pd_h_client_free(c);
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* how many of the n intents reached h (each once at least); lags (ms from creation to
 * arrival, first arrival of each) into lag, sorted, for those that did */
static int
arrived(hook_t *h, const created_t *pi, int n, int64_t *lag)
{
    int got = 0;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < h->nev; k++)
            if (strcmp(h->pi[k], pi[i].id) == 0) {
                lag[got++] = h->at[k] - pi[i].at;
                break;
            }
    pthread_mutex_unlock(&h->mu);
    qsort(lag, (size_t)got, sizeof(lag[0]), cmp_i64);
    return got;
}

#define EVENTS 300
#define DEADLINE_MS 5000 /* after the last creation: half the 10 s attempt timeout the old scheduling waited out */

static void
a_hanging_endpoint_does_not_starve_a_healthy_one(void **state)
{
    (void)state;
    hook_t *hang = hook_start(HOOK_HANG, 0), *ok = hook_start(HOOK_OK, 0);
    char hang_id[64], ok_id[64];
    /* the hanging endpoint first: its deliveries of each event are queued first */
    hook_register(hang, hang_id, sizeof(hang_id));
    hook_register(ok, ok_id, sizeof(ok_id));
    static created_t pi[EVENTS];
    int64_t t0 = now_ms();
    create_intents(pi, EVENTS);
    int64_t created = now_ms();
    static int64_t lag[EVENTS];
    int got = 0;
    while ((got = arrived(ok, pi, EVENTS, lag)) < EVENTS && now_ms() < created + DEADLINE_MS)
        usleep(20000);
    int64_t done = now_ms();
    pthread_mutex_lock(&hang->mu);
    int hang_max = hang->max_open, hang_reqs = hang->requests;
    pthread_mutex_unlock(&hang->mu);
    print_message("%d events created in %lld ms; healthy endpoint: %d of %d within %lld ms of the last one, "
                  "lag median %lld ms, max %lld ms; hanging endpoint: %d requests, at most %d connections at once\n",
                  EVENTS, (long long)(created - t0), got, EVENTS, (long long)(done - created),
                  (long long)(got ? lag[got / 2] : -1), (long long)(got ? lag[got - 1] : -1), hang_reqs, hang_max);
    assert_int_equal(got, EVENTS);
    /* the hanging endpoint got attempts, but never more than its cap at once */
    assert_true(hang_reqs >= 1);
    assert_true(hang_max <= PER_ENDPOINT);
    /* the latest event went to the healthy endpoint and not (yet) to the hanging one:
     * one webhook pending, as Stripe's pending_webhooks counts (the healthy endpoint's
     * last attempt is recorded just after its answer arrived: give the record a moment) */
    json_t *ev = NULL;
    long long pending = -1;
    for (int i = 0; i < 50 && pending != 1; i++) {
        if (ev != NULL) {
            json_decref(ev);
            usleep(100 * 1000);
        }
        assert_int_equal(api_call(&payd, "GET", "/v1/events?limit=1", NULL, &ev), 200);
        pending = jint(json_array_get(json_object_get(ev, "data"), 0), "pending_webhooks");
    }
    assert_int_equal(pending, 1);
    json_decref(ev);
    hook_delete(hang_id);
    hook_delete(ok_id);
    hook_stop(hang);
    hook_stop(ok);
}

#define QUEUED 200
#define SLOW_MS 1000 /* per answer: the slow endpoint drains ~PER_ENDPOINT deliveries a second */

static void
deleting_an_endpoint_stops_its_queued_deliveries(void **state)
{
    (void)state;
    hook_t *slow = hook_start(HOOK_OK, SLOW_MS), *ok = hook_start(HOOK_OK, 0);
    char slow_id[64], ok_id[64];
    hook_register(slow, slow_id, sizeof(slow_id));
    hook_register(ok, ok_id, sizeof(ok_id));
    static created_t pi[QUEUED + 1];
    create_intents(pi, QUEUED);
    hook_delete(slow_id);
    int at_delete = hook_events(slow);
    /* the delete must have had something to stop */
    assert_true(at_delete < QUEUED - 2 * PER_ENDPOINT);
    /* one more event after the delete: once the healthy endpoint has it, the engine has
     * gone through its queue after the delete; then wait for attempts already in flight
     * at the delete to finish */
    create_intents(&pi[QUEUED], 1);
    static int64_t lag[QUEUED + 1];
    int64_t deadline = now_ms() + DEADLINE_MS;
    while (arrived(ok, &pi[QUEUED], 1, lag) < 1 && now_ms() < deadline)
        usleep(20000);
    assert_int_equal(arrived(ok, &pi[QUEUED], 1, lag), 1);
    usleep(2 * SLOW_MS * 1000);
    int after = hook_events(slow) - at_delete;
    print_message("slow endpoint: %d of %d deliveries before the delete returned, %d after\n", at_delete, QUEUED,
                  after);
    /* only attempts leased before the delete committed may still arrive: at most the
     * endpoint's cap */
    assert_true(after <= PER_ENDPOINT);
    /* and nothing for the new event */
    assert_int_equal(arrived(slow, &pi[QUEUED], 1, lag), 0);
    hook_delete(ok_id);
    hook_stop(slow);
    hook_stop(ok);
}

/* POST /v1/webhook_endpoints/:id: disabled stops deliveries until enabled again;
 * description and metadata change with Stripe's merge rules; bad input is refused */
static void
an_endpoint_can_be_disabled_and_updated(void **state)
{
    (void)state;
    hook_t *ok = hook_start(HOOK_OK, 0);
    char id[64], path[128], body[300];
    json_t *j;
    hook_register(ok, id, sizeof(id));
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%s", id);
    assert_int_equal(api_call(&payd, "POST", path, "disabled=true&metadata[team]=payments", &j), 200);
    assert_string_equal(jstr(j, "status"), "disabled");
    assert_string_equal(jstr(j, "metadata.team"), "payments");
    json_decref(j);
    static created_t pi[5];
    create_intents(pi, 5);
    usleep(1500000);
    assert_int_equal(hook_events(ok), 0); /* nothing sent while disabled */
    assert_int_equal(api_call(&payd, "POST", path, "disabled=false&description=main&metadata[env]=prod", &j), 200);
    assert_string_equal(jstr(j, "status"), "enabled");
    assert_string_equal(jstr(j, "description"), "main");
    assert_string_equal(jstr(j, "metadata.team"), "payments"); /* merged, not replaced */
    assert_string_equal(jstr(j, "metadata.env"), "prod");
    json_decref(j);
    create_intents(pi, 1);
    for (int i = 0; i < 250 && hook_events(ok) == 0; i++)
        usleep(20000);
    assert_true(hook_events(ok) >= 1);
    assert_int_equal(api_call(&payd, "POST", path, "url=ftp://example.com/hook", &j), 400);
    assert_string_equal(jstr(j, "error.param"), "url");
    json_decref(j);
    snprintf(body, sizeof(body), "enabled_events[]=no.such_event");
    assert_int_equal(api_call(&payd, "POST", path, body, &j), 400);
    json_decref(j);
    assert_int_equal(api_call(&payd, "POST", "/v1/webhook_endpoints/we_nope", "disabled=true", &j), 404);
    json_decref(j);
    hook_delete(id);
    assert_int_equal(api_call(&payd, "POST", path, "disabled=true", &j), 404); /* deleted */
    json_decref(j);
    hook_stop(ok);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_hanging_endpoint_does_not_starve_a_healthy_one),
        cmocka_unit_test(deleting_an_endpoint_stops_its_queued_deliveries),
        cmocka_unit_test(an_endpoint_can_be_disabled_and_updated),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
