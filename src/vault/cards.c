/*
 * The card vault: validation (src/pay/card.c: Luhn, brand by IIN; expiry), tokenization under
 * alias/cards with per-card context, keyed fingerprints under alias/fingerprint,
 * detokenization, deletion, and the in-memory CVC store (never written anywhere).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "payd/log.h"
#include "payd/time.h"
#include "vault/internal.h"

/* --- the current card data key (cached within limits) --- */

static int
dk_current(pd_vault_state_t *v, const uint8_t **key, int64_t *id)
{
    pd_kms_key_t k;
    int64_t now = v->now();
    int r;
    if (v->sec->dk.id != 0 && v->sec->dk.messages < v->dk_max_messages && now - v->sec->dk.created < v->dk_max_age_s) {
        v->sec->dk.messages++;
        *key = v->sec->dk.key;
        *id = v->sec->dk.id;
        return 0;
    }
    if ((r = pd_kms_get(v, "alias/cards", &k)) != 0)
        return r;
    if (strcmp(k.state, "Enabled") != 0)
        return PD_ERR_KEY_DISABLED;
    int64_t next = 0;
    if ((r = pd_db_query_int(v->db, "SELECT COALESCE(MAX(id), 0) + 1 FROM data_keys", NULL, 0, &next)) != 0)
        return r;
    uint8_t dk[PD_KEY_LEN];
    char ctx[64];
    pd_buf_t env;
    pd_buf_init(&env, 256);
    if (RAND_priv_bytes(dk, sizeof(dk)) != 1) {
        r = PD_ERR_CRYPTO;
        goto out;
    }
    snprintf(ctx, sizeof(ctx), "purpose=datakey;id=%" PRId64, next);
    if ((r = pd_kms_encrypt(v, &k, pd_view_cstr(ctx), pd_view(dk, sizeof(dk)), &env)) != 0)
        goto out;
    if ((r = pd_db_exec(v->db, "INSERT INTO data_keys (id, key_num, kek_version, wrapped, created) VALUES (?, ?, ?, ?, ?)",
                        PD_SQL_ARGS(PD_SQL_I(next), PD_SQL_I(k.num), PD_SQL_I(k.current_version),
                                    PD_SQL_B(env.p, env.len), PD_SQL_I(now)),
                        NULL)) != 0)
        goto out;
    memcpy(v->sec->dk.key, dk, PD_KEY_LEN);
    v->sec->dk.id = next;
    v->sec->dk.key_num = k.num;
    v->sec->dk.key_version = k.current_version;
    v->sec->dk.messages = 1;
    v->sec->dk.created = now;
    *key = v->sec->dk.key;
    *id = next;
out:
    OPENSSL_cleanse(dk, sizeof(dk));
    pd_buf_free(&env);
    return r;
}

typedef struct {
    pd_buf_t *b;
    bool found;
} blob_t;

static int
blob_row(const pd_row_t *r, void *arg)
{
    blob_t *f = arg;
    pd_view_t v = pd_row_text(r, 0);
    f->found = true;
    return pd_buf_put(f->b, v.p, v.len) == 0 ? 1 : PD_ERR_NOMEM;
}

/* a data key for decryption: from the small cache, else unwrapped under its KEK */
static int
dk_for_read(pd_vault_state_t *v, int64_t id, const uint8_t **key)
{
    pd_vault_secrets_t *sec = v->sec;
    const size_t slots = sizeof(sec->dk_read) / sizeof(sec->dk_read[0]);
    if (sec->dk.id == id) {
        *key = sec->dk.key;
        return 0;
    }
    for (size_t i = 0; i < slots; i++) {
        if (sec->dk_read[i].id == id) {
            *key = sec->dk_read[i].key;
            return 0;
        }
    }
    pd_buf_t wrapped, pt;
    pd_kms_key_t k;
    char ctx[64];
    blob_t f = {&wrapped, false};
    int r;
    pd_buf_init(&wrapped, 512);
    pd_buf_init(&pt, 64);
    if ((r = pd_db_query(v->db, "SELECT wrapped FROM data_keys WHERE id = ?", PD_SQL_ARGS(PD_SQL_I(id)), blob_row, &f)) !=
        0)
        goto out;
    if (!f.found) {
        r = PD_ERR_NOTFOUND;
        goto out;
    }
    snprintf(ctx, sizeof(ctx), "purpose=datakey;id=%" PRId64, id);
    if ((r = pd_kms_decrypt(v, pd_view_cstr(ctx), pd_buf_view(&wrapped), &pt, &k)) != 0)
        goto out;
    if (pt.len != PD_KEY_LEN) {
        r = PD_ERR_INVALID;
        goto out;
    }
    size_t slot = sec->dk_read_next++ % slots;
    sec->dk_read[slot].id = id;
    memcpy(sec->dk_read[slot].key, pt.p, PD_KEY_LEN);
    *key = sec->dk_read[slot].key;
out:
    pd_buf_free(&wrapped);
    pd_buf_free_secure(&pt);
    return r;
}

/* --- CVC store: open addressing by token hash; entries expire after 10 minutes --- */

static size_t
cvc_hash(const char *token)
{
    size_t h = 1469598103934665603u;
    for (const char *p = token; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211u;
    return h;
}

/* holds the CVC for the token's first authorization; false when its neighbourhood is full */
static bool
cvc_put(pd_vault_state_t *v, const char *token, const char *cvc)
{
    int64_t now = v->now();
    size_t h = cvc_hash(token);
    /* a CVC that a rollback could not find again is not held at all */
    if (v->ncvc_journal == PD_VAULT_CVC_JOURNAL)
        return false;
    for (size_t i = 0; i < 64; i++) {
        pd_cvc_slot_t *s = &v->sec->cvc[(h + i) % PD_VAULT_CVC_SLOTS];
        if (s->token[0] == '\0' || s->expires <= now) {
            v->cvc_journal[v->ncvc_journal++] = (uint32_t)((h + i) % PD_VAULT_CVC_SLOTS);
            snprintf(s->token, sizeof(s->token), "%s", token);
            snprintf(s->cvc, sizeof(s->cvc), "%s", cvc);
            s->expires = now + PD_VAULT_CVC_TTL_S;
            return true;
        }
    }
    /* the neighbourhood is full of live CVCs: this one is not kept (cvc_check: unavailable);
     * said at most every 10 s, with the count, so a flood of cards cannot flood the log */
    static int64_t last_warn, dropped;
    dropped++;
    if (now - last_warn >= 10) {
        pd_log_warn("vault: CVC store full; CVCs dropped", PD_LI("dropped", dropped),
                    PD_LI("slots", PD_VAULT_CVC_SLOTS), PD_LI("ttl_s", PD_VAULT_CVC_TTL_S));
        last_warn = now;
        dropped = 0;
    }
    return false;
}

/* takes the CVC out (wiping it from memory); returns false if none */
static bool
cvc_take(pd_vault_state_t *v, const char *token, char *out, size_t cap)
{
    int64_t now = v->now();
    size_t h = cvc_hash(token);
    for (size_t i = 0; i < 64; i++) {
        pd_cvc_slot_t *s = &v->sec->cvc[(h + i) % PD_VAULT_CVC_SLOTS];
        if (s->token[0] != '\0' && strcmp(s->token, token) == 0) {
            bool live = s->expires > now;
            if (live)
                snprintf(out, cap, "%s", s->cvc);
            OPENSSL_cleanse(s, sizeof(*s));
            return live;
        }
    }
    return false;
}

static bool
cvc_held(pd_vault_state_t *v, const char *token)
{
    int64_t now = v->now();
    size_t h = cvc_hash(token);
    for (size_t i = 0; i < 64; i++) {
        pd_cvc_slot_t *s = &v->sec->cvc[(h + i) % PD_VAULT_CVC_SLOTS];
        if (s->token[0] != '\0' && strcmp(s->token, token) == 0)
            return s->expires > now;
    }
    return false;
}

void
pd_cards_tick(pd_vault_state_t *v)
{
    int64_t now = v->now();
    for (size_t i = 0; i < PD_VAULT_CVC_SLOTS; i++)
        if (v->sec->cvc[i].token[0] != '\0' && v->sec->cvc[i].expires <= now)
            OPENSSL_cleanse(&v->sec->cvc[i], sizeof(v->sec->cvc[i]));
}

/* --- tokenize / get / detokenize / delete --- */

static void
card_context(char *out, size_t cap, const char *merchant, const char *token)
{
    snprintf(out, cap, "purpose=card;merchant=%s;token=%s", merchant, token);
}

static int
fingerprint(pd_vault_state_t *v, const char *merchant, const char *pan, char *out, size_t cap)
{
    uint8_t mac[32];
    char msg[128];
    int r;
    /* the key's row is cached until any key changes (rotation, deletion, ...) */
    if (v->fp_cache.gen != v->kms_gen + 1) {
        if ((r = pd_kms_get(v, "alias/fingerprint", &v->fp_cache.key)) != 0)
            return r;
        v->fp_cache.gen = v->kms_gen + 1;
    }
    const pd_kms_key_t k = v->fp_cache.key;
    if (strcmp(k.state, "Enabled") != 0)
        return PD_ERR_KEY_DISABLED;
    /* version 1 always: a fingerprint must not change when keys rotate */
    const uint8_t *m = pd_kms_material(v, k.num, 1);
    if (m == NULL)
        return PD_ERR_KEY_VERSION;
    int n = snprintf(msg, sizeof(msg), "%s|%s", merchant, pan);
    r = pd_hmac_sha256(m, PD_KEY_LEN, (const uint8_t *)msg, (size_t)n, mac);
    OPENSSL_cleanse(msg, sizeof(msg));
    if (r != 0)
        return r;
    /* 16 base62-ish characters, like Stripe's fingerprints */
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t len = cap - 1 < 16 ? cap - 1 : 16;
    for (size_t i = 0; i < len; i++)
        out[i] = b62[mac[i] % 62];
    out[len] = '\0';
    return 0;
}

static int
validate(const pd_vault_card_in_t *in, int64_t now)
{
    size_t len = strlen(in->pan);
    if (len < 12 || len > 19)
        return PD_ERR_INVALID;
    if (!pd_card_luhn(in->pan, len))
        return PD_ERR_INVALID;
    if (in->exp_month < 1 || in->exp_month > 12)
        return PD_ERR_RANGE;
    time_t t = (time_t)now;
    struct tm tm;
    gmtime_r(&t, &tm);
    int year = tm.tm_year + 1900, month = tm.tm_mon + 1;
    if (in->exp_year < year || in->exp_year > year + 50 || (in->exp_year == year && in->exp_month < month))
        return PD_ERR_RANGE;
    size_t cl = strlen(in->cvc);
    if (cl != 0 && (cl < 3 || cl > 4 || strspn(in->cvc, "0123456789") != cl))
        return PD_ERR_INVALID;
    return 0;
}

/* card_<8 time-ordered chars><16 random>: new rows land at the right edge of the
 * primary key's B-tree, so a batch of tokenizations dirties a few pages, not one
 * page per card */
static int
card_token(char *out, size_t cap)
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    static uint64_t last;
    uint64_t t = (uint64_t)pd_real_ms() * 1000;
    last = t > last ? t : last + 1; /* strictly increasing within this process */
    if (cap < 5 + 8 + 16 + 1)
        return PD_ERR_TOOBIG;
    memcpy(out, "card_", 5);
    uint64_t x = last;
    for (int i = 7; i >= 0; i--) {
        out[5 + i] = b62[x % 62];
        x /= 62;
    }
    int r = pd_rand_base62(out + 13, 16);
    out[29] = '\0';
    return r;
}

int
pd_cards_tokenize(pd_vault_state_t *v, const pd_vault_card_in_t *in, pd_vault_card_t *out)
{
    const uint8_t *dk;
    int64_t dk_id;
    char ctx[256];
    pd_buf_t pan_env, name_env;
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = validate(in, v->now())) != 0)
        return r;
    size_t len = strlen(in->pan);
    pd_buf_init(&pan_env, 256);
    pd_buf_init(&name_env, 512);
    if ((r = card_token(out->token, sizeof(out->token))) != 0 || (r = dk_current(v, &dk, &dk_id)) != 0 ||
        (r = fingerprint(v, in->merchant_id, in->pan, out->fingerprint, sizeof(out->fingerprint))) != 0)
        goto out;
    card_context(ctx, sizeof(ctx), in->merchant_id, out->token);
    /* data-key envelopes name the data key in the header: key number = data key id, version 0 */
    if ((r = pd_env_seal(&pan_env, (uint32_t)dk_id, 0, dk, pd_view_cstr(ctx), pd_view(in->pan, len))) != 0)
        goto out;
    if (in->name[0] != '\0' &&
        (r = pd_env_seal(&name_env, (uint32_t)dk_id, 0, dk, pd_view_cstr(ctx), pd_view_cstr(in->name))) != 0)
        goto out;
    snprintf(out->brand, sizeof(out->brand), "%s", pd_card_brand(in->pan, len));
    snprintf(out->funding, sizeof(out->funding), "%s", pd_card_funding(in->pan, len));
    snprintf(out->last4, sizeof(out->last4), "%s", in->pan + len - 4);
    snprintf(out->bin, sizeof(out->bin), "%.*s", len == 16 ? 8 : 6, in->pan);
    out->exp_month = in->exp_month;
    out->exp_year = in->exp_year;
    r = pd_db_exec(v->db,
                   "INSERT INTO cards (token, merchant_id, dk_id, pan, name, exp_month, exp_year, brand, funding, last4, "
                   "bin, fingerprint, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   PD_SQL_ARGS(PD_SQL_S(out->token), PD_SQL_S(in->merchant_id), PD_SQL_I(dk_id),
                               PD_SQL_B(pan_env.p, pan_env.len),
                               name_env.len ? PD_SQL_B(name_env.p, name_env.len) : PD_SQL_NIL, PD_SQL_I(in->exp_month),
                               PD_SQL_I(in->exp_year), PD_SQL_S(out->brand), PD_SQL_S(out->funding),
                               PD_SQL_S(out->last4), PD_SQL_S(out->bin), PD_SQL_S(out->fingerprint),
                               PD_SQL_I(v->now())),
                   NULL);
    if (r != 0)
        goto out;
    if (in->cvc[0] != '\0') {
        out->cvc_held = cvc_put(v, out->token, in->cvc);
    }
out:
    pd_buf_free(&pan_env);
    pd_buf_free(&name_env);
    return r;
}

typedef struct {
    pd_vault_card_t *card;
    pd_buf_t *pan, *name;
    int64_t dk_id;
    bool found;
} card_row_t;

static int
card_row(const pd_row_t *r, void *arg)
{
    card_row_t *c = arg;
    pd_vault_card_t *o = c->card;
    c->found = true;
    if (pd_row_copy(r, 0, o->token, sizeof(o->token)) != 0 || pd_row_copy(r, 1, o->brand, sizeof(o->brand)) != 0 ||
        pd_row_copy(r, 2, o->funding, sizeof(o->funding)) != 0 || pd_row_copy(r, 3, o->last4, sizeof(o->last4)) != 0 ||
        pd_row_copy(r, 4, o->bin, sizeof(o->bin)) != 0 ||
        pd_row_copy(r, 5, o->fingerprint, sizeof(o->fingerprint)) != 0)
        return PD_ERR_INVALID;
    o->exp_month = (int)pd_row_int(r, 6);
    o->exp_year = (int)pd_row_int(r, 7);
    c->dk_id = pd_row_int(r, 8);
    if (c->pan != NULL) {
        pd_view_t p = pd_row_text(r, 9);
        if (pd_buf_put(c->pan, p.p, p.len) != 0)
            return PD_ERR_NOMEM;
        if (!pd_row_is_null(r, 10)) {
            pd_view_t n = pd_row_text(r, 10);
            if (pd_buf_put(c->name, n.p, n.len) != 0)
                return PD_ERR_NOMEM;
        }
    }
    return 1;
}

static int
load_card(pd_vault_state_t *v, const char *merchant, const char *token, card_row_t *c)
{
    int r = pd_db_query(v->db,
                        "SELECT token, brand, funding, last4, bin, fingerprint, exp_month, exp_year, dk_id, pan, name "
                        "FROM cards WHERE token = ? AND merchant_id = ? AND deleted = 0",
                        PD_SQL_ARGS(PD_SQL_S(token), PD_SQL_S(merchant)), card_row, c);
    if (r != 0)
        return r;
    return c->found ? 0 : PD_ERR_NOTFOUND;
}

int
pd_cards_get(pd_vault_state_t *v, const char *merchant, const char *token, pd_vault_card_t *out)
{
    card_row_t c = {out, NULL, NULL, 0, false};
    memset(out, 0, sizeof(*out));
    int r = load_card(v, merchant, token, &c);
    if (r == 0)
        out->cvc_held = cvc_held(v, token);
    return r;
}

int
pd_cards_detokenize(pd_vault_state_t *v, const char *merchant, const char *token, pd_vault_pan_t *out)
{
    pd_vault_card_t meta;
    pd_buf_t env, nenv, pt;
    const uint8_t *dk;
    char ctx[256];
    card_row_t c = {&meta, &env, &nenv, 0, false};
    int r;

    memset(out, 0, sizeof(*out));
    pd_buf_init(&env, 512);
    pd_buf_init(&nenv, 1024);
    pd_buf_init(&pt, 256);
    if ((r = load_card(v, merchant, token, &c)) != 0 || (r = dk_for_read(v, c.dk_id, &dk)) != 0)
        goto out;
    card_context(ctx, sizeof(ctx), merchant, token);
    pd_env_header_t h;
    if ((r = pd_env_parse(pd_buf_view(&env), &h)) != 0)
        goto out;
    if (h.key_num != (uint32_t)c.dk_id || h.key_version != 0) {
        r = PD_ERR_AUTH; /* the row points at another data key than its envelope */
        goto out;
    }
    if ((r = pd_env_open(&pt, dk, pd_view_cstr(ctx), pd_buf_view(&env))) != 0 ||
        (r = pd_view_to_cstr(pd_buf_view(&pt), out->pan, sizeof(out->pan))) != 0)
        goto out;
    if (nenv.len > 0) {
        pd_buf_reset(&pt);
        if ((r = pd_env_open(&pt, dk, pd_view_cstr(ctx), pd_buf_view(&nenv))) != 0 ||
            (r = pd_view_to_cstr(pd_buf_view(&pt), out->name, sizeof(out->name))) != 0)
            goto out;
    }
    out->exp_month = meta.exp_month;
    out->exp_year = meta.exp_year;
    /* the CVC serves exactly one authorization */
    (void)cvc_take(v, token, out->cvc, sizeof(out->cvc));
out:
    if (r != 0)
        pd_vault_pan_wipe(out);
    pd_buf_free(&env);
    pd_buf_free(&nenv);
    pd_buf_free_secure(&pt);
    return r;
}

int
pd_cards_delete(pd_vault_state_t *v, const char *merchant, const char *token)
{
    int64_t changed = 0;
    /* the ciphertext is overwritten, not just flagged: a redacted card is gone */
    int r = pd_db_exec(v->db,
                       "UPDATE cards SET deleted = 1, pan = ?, name = NULL WHERE token = ? AND merchant_id = ? AND deleted = 0",
                       PD_SQL_ARGS(PD_SQL_B("", 0), PD_SQL_S(token), PD_SQL_S(merchant)), &changed);
    if (r != 0)
        return r;
    char scratch[8];
    (void)cvc_take(v, token, scratch, sizeof(scratch));
    OPENSSL_cleanse(scratch, sizeof(scratch));
    return changed == 1 ? 0 : PD_ERR_NOTFOUND;
}
