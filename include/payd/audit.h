/*
 * Append-only, hash-chained audit log (PCI DSS 10.2.2 fields): who (principal /
 * actor), what (action), on what (resource), outcome, from where (origin), when
 * (timestamp), plus a free-form detail that never carries cardholder data or secrets.
 *
 * Each record stores the hash of the previous one:
 *   hash = hex(SHA-256(prev_hash | seq | ts | actor | action | resource | outcome | origin | detail))
 * with each field length-prefixed, so an edited, deleted, inserted or reordered record
 * breaks the chain at a point pd_audit_verify() reports.
 *
 * The log lives in a table `audit_log` of the owner's database (the vault's own, or
 * payd's): (seq INTEGER PRIMARY KEY, ts, actor, action, resource, outcome, origin,
 * detail, prev_hash, hash).
 */
#ifndef PAYD_AUDIT_H
#define PAYD_AUDIT_H

#include <stdint.h>

#include "payd/db.h"

#define PD_AUDIT_HASH_HEX 65

/* The schema of the table, for the owner's migrations. */
extern const char pd_audit_schema[];

typedef struct {
    int64_t seq;                     /* last sequence number written */
    char hash[PD_AUDIT_HASH_HEX];    /* hash of the last record ("" before the first) */
} pd_audit_chain_t;

typedef struct {
    const char *actor;    /* principal or key id, e.g. "api", "admin:root", "key_..." */
    const char *action;   /* e.g. "card.tokenize", "kms.rotate" */
    const char *resource; /* e.g. "card_...", "alias/cards" */
    const char *outcome;  /* "success" or "failure:<reason>" */
    const char *origin;   /* e.g. "uds:pid=123", "127.0.0.1" */
    const char *detail;   /* short, non-sensitive */
} pd_audit_rec_t;

/* Loads the chain head (last seq and hash) from the table. */
int pd_audit_load(pd_db_t *db, pd_audit_chain_t *chain) PD_WUR;
/* Appends a record on a writer connection (inside the caller's transaction). The
 * chain is advanced only in memory here; if the transaction rolls back, reload it. */
int pd_audit_append(pd_db_t *db, pd_audit_chain_t *chain, int64_t ts, const pd_audit_rec_t *rec) PD_WUR;

typedef struct {
    int64_t records;        /* records checked */
    int64_t first_bad_seq;  /* 0 when the chain is intact */
    char problem[200];      /* what is wrong at first_bad_seq */
} pd_audit_report_t;

/* Walks the whole chain. Returns 0 when intact, PD_ERR_AUTH when broken (report says where). */
int pd_audit_verify(pd_db_t *db, pd_audit_report_t *rep) PD_WUR;

#endif
