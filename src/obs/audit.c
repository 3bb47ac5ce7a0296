#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "payd/audit.h"
#include "payd/buf.h"

const char pd_audit_schema[] =
    "CREATE TABLE IF NOT EXISTS audit_log ("
    "  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,"
    "  resource TEXT NOT NULL, outcome TEXT NOT NULL, origin TEXT NOT NULL, detail TEXT NOT NULL,"
    "  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);";

static void
feed(EVP_MD_CTX *md, const char *s)
{
    uint8_t len[4];
    size_t n = s != NULL ? strlen(s) : 0;
    len[0] = (uint8_t)(n >> 24);
    len[1] = (uint8_t)(n >> 16);
    len[2] = (uint8_t)(n >> 8);
    len[3] = (uint8_t)n;
    EVP_DigestUpdate(md, len, 4);
    if (n > 0)
        EVP_DigestUpdate(md, s, n);
}

static int
record_hash(const char *prev, int64_t seq, int64_t ts, const pd_audit_rec_t *rec, char out[PD_AUDIT_HASH_HEX])
{
    char num[48];
    uint8_t d[32];
    unsigned int dl = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return PD_ERR_CRYPTO;
    }
    feed(md, prev);
    snprintf(num, sizeof(num), "%" PRId64 ":%" PRId64, seq, ts);
    feed(md, num);
    feed(md, rec->actor);
    feed(md, rec->action);
    feed(md, rec->resource);
    feed(md, rec->outcome);
    feed(md, rec->origin);
    feed(md, rec->detail);
    int ok = EVP_DigestFinal_ex(md, d, &dl) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return PD_ERR_CRYPTO;
    pd_hex(d, 32, out);
    return 0;
}

static int
head_row(const pd_row_t *r, void *arg)
{
    pd_audit_chain_t *c = arg;
    c->seq = pd_row_int(r, 0);
    return pd_row_copy(r, 1, c->hash, sizeof(c->hash)) == 0 ? 1 : PD_ERR_INVALID;
}

int
pd_audit_load(pd_db_t *db, pd_audit_chain_t *chain)
{
    chain->seq = 0;
    chain->hash[0] = '\0';
    return pd_db_query(db, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", NULL, 0, head_row, chain);
}

static const char *
nz(const char *s)
{
    return s != NULL ? s : "";
}

int
pd_audit_append(pd_db_t *db, pd_audit_chain_t *chain, int64_t ts, const pd_audit_rec_t *rec)
{
    char hash[PD_AUDIT_HASH_HEX];
    pd_audit_rec_t r = {nz(rec->actor), nz(rec->action), nz(rec->resource), nz(rec->outcome), nz(rec->origin),
                        nz(rec->detail)};
    int64_t seq = chain->seq + 1;
    int rc = record_hash(chain->hash, seq, ts, &r, hash);
    if (rc != 0)
        return rc;
    rc = pd_db_exec(db,
                    "INSERT INTO audit_log (seq, ts, actor, action, resource, outcome, origin, detail, prev_hash, hash) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    PD_SQL_ARGS(PD_SQL_I(seq), PD_SQL_I(ts), PD_SQL_S(r.actor), PD_SQL_S(r.action),
                                PD_SQL_S(r.resource), PD_SQL_S(r.outcome), PD_SQL_S(r.origin), PD_SQL_S(r.detail),
                                PD_SQL_S(chain->hash), PD_SQL_S(hash)),
                    NULL);
    if (rc != 0)
        return rc;
    chain->seq = seq;
    memcpy(chain->hash, hash, sizeof(hash));
    return 0;
}

typedef struct {
    pd_audit_report_t *rep;
    int64_t expect_seq;
    char prev[PD_AUDIT_HASH_HEX];
} walk_t;

static int
walk_row(const pd_row_t *r, void *arg)
{
    walk_t *w = arg;
    char actor[256], action[128], resource[256], outcome[256], origin[256], detail[1024], prev[PD_AUDIT_HASH_HEX],
        hash[PD_AUDIT_HASH_HEX], want[PD_AUDIT_HASH_HEX];
    int64_t seq = pd_row_int(r, 0), ts = pd_row_int(r, 1);

    w->rep->records++;
    if (pd_row_copy(r, 2, actor, sizeof(actor)) != 0 || pd_row_copy(r, 3, action, sizeof(action)) != 0 ||
        pd_row_copy(r, 4, resource, sizeof(resource)) != 0 || pd_row_copy(r, 5, outcome, sizeof(outcome)) != 0 ||
        pd_row_copy(r, 6, origin, sizeof(origin)) != 0 || pd_row_copy(r, 7, detail, sizeof(detail)) != 0 ||
        pd_row_copy(r, 8, prev, sizeof(prev)) != 0 || pd_row_copy(r, 9, hash, sizeof(hash)) != 0) {
        w->rep->first_bad_seq = seq;
        snprintf(w->rep->problem, sizeof(w->rep->problem), "record %" PRId64 " has an oversized field", seq);
        return 1;
    }
    if (seq != w->expect_seq) {
        w->rep->first_bad_seq = w->expect_seq;
        snprintf(w->rep->problem, sizeof(w->rep->problem), "record %" PRId64 " is missing (next present: %" PRId64 ")",
                 w->expect_seq, seq);
        return 1;
    }
    if (strcmp(prev, w->prev) != 0) {
        w->rep->first_bad_seq = seq;
        snprintf(w->rep->problem, sizeof(w->rep->problem),
                 "record %" PRId64 " does not follow record %" PRId64 " (previous hash differs)", seq, seq - 1);
        return 1;
    }
    pd_audit_rec_t rec = {actor, action, resource, outcome, origin, detail};
    if (record_hash(prev, seq, ts, &rec, want) != 0 || strcmp(want, hash) != 0) {
        w->rep->first_bad_seq = seq;
        snprintf(w->rep->problem, sizeof(w->rep->problem), "record %" PRId64 " was altered (its hash does not match)",
                 seq);
        return 1;
    }
    memcpy(w->prev, hash, sizeof(hash));
    w->expect_seq++;
    return 0;
}

int
pd_audit_verify(pd_db_t *db, pd_audit_report_t *rep)
{
    walk_t w = {rep, 1, ""};
    memset(rep, 0, sizeof(*rep));
    int r = pd_db_query(db,
                        "SELECT seq, ts, actor, action, resource, outcome, origin, detail, prev_hash, hash "
                        "FROM audit_log ORDER BY seq",
                        NULL, 0, walk_row, &w);
    if (r != 0)
        return r;
    return rep->first_bad_seq == 0 ? 0 : PD_ERR_AUTH;
}
