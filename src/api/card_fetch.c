/*
 * The card of a two-phase processor step (internal.h, pd_card_fetch_t): read from the
 * vault while phase 1's fsync runs, so that the processor is asked as soon as phase 1
 * is durable. Shared by payment intents (confirm.c) and setup intents.
 */
#include <stddef.h>
#include <stdio.h>

#include <openssl/crypto.h>

#include "api/internal.h"

/* on the loop when phase 1 is answered and when the card arrives: ready once both have
 * happened (or phase 1 alone, when no card was asked for) */
static void
maybe_ready(pd_card_fetch_t *f)
{
    if (f->phase1_answered && (!f->asked || f->arrived))
        f->ready(f->op);
}

static void
card_arrived(pd_task_t *t)
{
    pd_card_fetch_t *f = (pd_card_fetch_t *)((char *)t - offsetof(pd_card_fetch_t, task));
    f->arrived = true;
    maybe_ready(f);
}

/* on the vault client's thread: the card is copied for the loop, which wipes it after
 * the processor call (the vault client wipes its own copy after this callback) */
static void
on_card(void *arg, int rc, pd_vault_pan_t *pan)
{
    pd_card_fetch_t *f = arg;
    f->rc = rc;
    if (rc == 0) {
        snprintf(f->pan, sizeof(f->pan), "%s", pan->pan);
        snprintf(f->cvc, sizeof(f->cvc), "%s", pan->cvc);
        f->exp_month = pan->exp_month;
        f->exp_year = pan->exp_year;
    }
    f->task.fn = card_arrived;
    pd_loop_post(f->op->r->loop, &f->task);
}

void
pd_card_fetch_init(pd_card_fetch_t *f, pd_op_t *op, void (*ready)(pd_op_t *op))
{
    f->op = op;
    f->ready = ready;
}

void
pd_card_fetch_read(pd_card_fetch_t *f, const char *merchant, const char *vault_token)
{
    f->asked = true;
    if (pd_vault_detokenize(f->op->api->vault->processor, merchant, vault_token, on_card, f) != 0)
        on_card(f, PD_ERR_CLOSED, NULL);
}

void
pd_card_fetch_phase1(pd_card_fetch_t *f)
{
    f->phase1_answered = true;
    maybe_ready(f);
}

void
pd_card_fetch_wipe(pd_card_fetch_t *f)
{
    OPENSSL_cleanse(f->pan, sizeof(f->pan));
    OPENSSL_cleanse(f->cvc, sizeof(f->cvc));
    f->exp_month = f->exp_year = 0;
}
