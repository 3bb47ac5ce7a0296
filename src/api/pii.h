/* Customers' personal data: its envelope under alias/pii and the email's blind index (pii.c). */
#ifndef PAYD_API_PII_H
#define PAYD_API_PII_H

#include <jansson.h>

#include "api/internal.h"

#define PD_PII_MAX 4096       /* the personal data of one customer as JSON (the vault's Encrypt bound) */
#define PD_PII_EMAIL_MAX 512  /* an email (the schema's PD_FT_EMAIL bound) */

/* Derives the blind index key from the vault's pepper; called once at start. */
int pd_pii_set_index_key(const uint8_t *pepper, size_t len) PD_WUR;
/* The email's blind index (hex HMAC-SHA256 of the normalized email, the merchant and
 * mode): equal for emails that differ in case or surrounding spaces only. */
int pd_pii_email_index(const char *merchant, bool livemode, const char *email, char out[65]) PD_WUR;
/* The encryption context of a customer's personal data. */
void pd_pii_customer_context(char *out, size_t cap, const char *merchant, const char *customer_id);
/* true when c has some personal data */
bool pd_pii_present(const pd_customer_rec_t *c);
/* c's personal data as JSON text in a (NULL: out of memory); *len its length */
char *pd_pii_encode(pd_arena_t *a, const pd_customer_rec_t *c, size_t *len);
/* Sets c's personal data from the JSON text pd_pii_encode made (strings in a). */
int pd_pii_decode(pd_arena_t *a, const char *text, size_t len, pd_customer_rec_t *c) PD_WUR;

/* One envelope to open: context and env_hex set by the caller; out (PD_PII_MAX + 1
 * bytes in r's arena, wiped after done returns), len and rc set by the open. */
typedef struct {
    const char *context;
    const char *env_hex;
    char *out;
    size_t len;
    int rc;
} pd_pii_slot_t;
typedef void (*pd_pii_done_fn)(pd_req_t *r, void *arg, int rc);
/* Opens n envelopes through the vault at once (principal api), then calls done on r's
 * loop with 0, or the first slot's failure; holds r meanwhile. done is always called
 * (at once for n = 0). */
void pd_pii_open_many(pd_req_t *r, pd_pii_slot_t *slots, size_t n, pd_pii_done_fn done, void *arg);
/* Encrypts pt under alias/pii with the context, then fn on r's loop with the hex
 * envelope (in r's arena; NULL when rc != 0). 0 when under way; else fn is not called. */
typedef void (*pd_pii_sealed_fn)(pd_req_t *r, void *arg, int rc, const char *env_hex);
int pd_pii_seal(pd_req_t *r, const char *context, const char *pt, size_t len, pd_pii_sealed_fn fn, void *arg) PD_WUR;

/* A customer rendered on a reader thread or in a write (customers.c, expand.c) carries
 * its envelope in this member until the response leaves: pd_pii_respond opens it. */
#define PD_PII_MARK "__pii"
/* Sets o's email, name, phone and address from the personal data's JSON text. */
int pd_pii_put_json(json_t *o, const char *text, size_t len) PD_WUR;
/* Renders c without its personal data, its envelope (if any) in PD_PII_MARK. */
void pd_pii_render_sealed(pd_jw_t *w, const pd_customer_rec_t *c);
/* pd_resp_json for a response that may hold sealed customers (objects with PD_PII_MARK):
 * their personal data is opened through the vault first, all at once, and the mark
 * removed (json is parsed before this returns: the caller may free it). Without any, it
 * is pd_resp_json. */
void pd_pii_respond(pd_req_t *r, int status, pd_view_t json);

#endif
