/*
 * Vault benchmark: tokenize (principal api) then detokenize (principal processor)
 * over the vault's Unix socket with a fixed number of requests in flight.
 *   vault_bench SOCKET CREDENTIAL_DIR [seconds] [in_flight]
 * Prints ops/s, p50 and p99 for each phase.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "payd/time.h"
#include "payd/vault.h"

#define MAX_SAMPLES 4000000

typedef struct {
    pd_vault_client_t *c;
    const char *merchant;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight, target;
    atomic_long done, errors;
    uint64_t deadline_ns;
    uint32_t *lat_us;
    atomic_long nlat;
    char (*tokens)[PD_ID_MAX];
    long ntokens;
    bool detok;
} bench_t;

typedef struct {
    bench_t *b;
    uint64_t start;
    long idx;
} op_t;

static void issue(bench_t *b);

static void
finish(bench_t *b, op_t *op, int rc)
{
    long i = atomic_fetch_add(&b->nlat, 1);
    if (i < MAX_SAMPLES)
        b->lat_us[i] = (uint32_t)((pd_mono_ns() - op->start) / 1000);
    if (rc != 0)
        atomic_fetch_add(&b->errors, 1);
    atomic_fetch_add(&b->done, 1);
    free(op);
    pthread_mutex_lock(&b->mu);
    b->in_flight--;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void
on_card(void *arg, int rc, const pd_vault_card_t *card)
{
    op_t *op = arg;
    bench_t *b = op->b;
    if (rc == 0 && op->idx < b->ntokens)
        snprintf(b->tokens[op->idx], PD_ID_MAX, "%s", card->token);
    finish(b, op, rc);
}

static void
on_pan(void *arg, int rc, pd_vault_pan_t *pan)
{
    (void)pan;
    op_t *op = arg;
    finish(op->b, op, rc);
}

static void
issue(bench_t *b)
{
    static atomic_long seq;
    op_t *op = calloc(1, sizeof(*op));
    op->b = b;
    op->start = pd_mono_ns();
    op->idx = atomic_fetch_add(&seq, 1);
    int rc;
    if (b->detok) {
        rc = pd_vault_detokenize(b->c, b->merchant, b->tokens[op->idx % b->ntokens], on_pan, op);
    } else {
        pd_vault_card_in_t in;
        memset(&in, 0, sizeof(in));
        snprintf(in.merchant_id, sizeof(in.merchant_id), "%s", b->merchant);
        snprintf(in.pan, sizeof(in.pan), "4242424242424242");
        snprintf(in.cvc, sizeof(in.cvc), "123");
        in.exp_month = 12;
        in.exp_year = 2035;
        rc = pd_vault_tokenize(b->c, &in, on_card, op);
    }
    if (rc != 0) {
        free(op);
        atomic_fetch_add(&b->errors, 1);
        pthread_mutex_lock(&b->mu);
        b->in_flight--;
        pthread_mutex_unlock(&b->mu);
    }
}

static int
cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void
run_phase(bench_t *b, const char *name, double seconds)
{
    atomic_store(&b->done, 0);
    atomic_store(&b->errors, 0);
    atomic_store(&b->nlat, 0);
    uint64_t start = pd_mono_ns();
    b->deadline_ns = start + (uint64_t)(seconds * 1e9);
    pthread_mutex_lock(&b->mu);
    while (pd_mono_ns() < b->deadline_ns) {
        while (b->in_flight < b->target) {
            b->in_flight++;
            pthread_mutex_unlock(&b->mu);
            issue(b);
            pthread_mutex_lock(&b->mu);
        }
        pthread_cond_wait(&b->cv, &b->mu);
    }
    while (b->in_flight > 0)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    double elapsed = (double)(pd_mono_ns() - start) / 1e9;
    long n = atomic_load(&b->nlat);
    if (n > MAX_SAMPLES)
        n = MAX_SAMPLES;
    qsort(b->lat_us, (size_t)n, sizeof(uint32_t), cmp);
    printf("  %-12s %10.0f ops/s   p50 %6.2f ms   p99 %6.2f ms   (%ld ops, %ld errors, %d in flight)\n", name,
           (double)atomic_load(&b->done) / elapsed, n ? b->lat_us[n / 2] / 1000.0 : 0,
           n ? b->lat_us[(size_t)((double)n * 0.99)] / 1000.0 : 0, atomic_load(&b->done), atomic_load(&b->errors),
           b->target);
}

static pd_vault_client_t *
connect_as(const char *sock, const char *cred_dir, const char *principal)
{
    char path[4200], cred[256] = "";
    snprintf(path, sizeof(path), "%s/%s", cred_dir, principal);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(cred, sizeof(cred), f) == NULL) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    cred[strcspn(cred, "\n")] = '\0';
    pd_vault_client_opts_t o = {.fd = -1, .socket_path = sock, .principal = principal, .credential = cred,
                                .timeout_ms = 30000};
    pd_vault_client_t *c;
    if (pd_vault_client_new(&c, &o) != 0) {
        fprintf(stderr, "cannot connect to %s\n", sock);
        exit(1);
    }
    return c;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: vault_bench SOCKET CREDENTIAL_DIR [seconds] [in_flight]\n");
        return 2;
    }
    double seconds = argc > 3 ? atof(argv[3]) : 5;
    int target = argc > 4 ? atoi(argv[4]) : 64;
    bench_t b = {.merchant = "acct_bench", .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
                 .target = target};
    b.lat_us = malloc(sizeof(uint32_t) * MAX_SAMPLES);
    b.ntokens = 100000;
    b.tokens = calloc((size_t)b.ntokens, PD_ID_MAX);
    b.c = connect_as(argv[1], argv[2], "api");
    run_phase(&b, "tokenize", seconds);
    long made = atomic_load(&b.done) < b.ntokens ? atomic_load(&b.done) : b.ntokens;
    pd_vault_client_free(b.c);
    b.ntokens = made;
    b.detok = true;
    b.c = connect_as(argv[1], argv[2], "processor");
    run_phase(&b, "detokenize", seconds);
    pd_vault_client_free(b.c);
    free(b.lat_us);
    free(b.tokens);
    return 0;
}
