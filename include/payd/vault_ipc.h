/*
 * The vault's framed IPC protocol (OpenBSD imsg / OpenSSH monitor style).
 *
 * Frame: a 16-byte header, all big-endian
 *   u32 payload length | u16 type | u16 flags (0) | u64 request id
 * followed by the payload. Payloads are typed field sequences written and read with
 * pd_wire_* (never raw structs): u8/u16/u32/i32/u64 integers, strings (u16 length +
 * bytes, no NUL) and byte strings (u32 length + bytes). Every field has a maximum and
 * a decoder must consume the payload exactly ("exact length rule"); anything else is
 * a protocol violation that drops the peer.
 *
 * A reply has the request's id and type | PD_MSG_REPLY, or type PD_MSG_ERROR with
 * {i32 code, string message}. Unsolicited notifications use request id 0.
 */
#ifndef PAYD_VAULT_IPC_H
#define PAYD_VAULT_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/error.h"

#define PD_IPC_HEADER 16
/* room for the largest message: an ENCRYPT_BATCH of PD_VAULT_BATCH_BYTES and its reply
 * (vault/handlers.c checks it at compile time) */
#define PD_IPC_MAX_PAYLOAD (336 * 1024)

enum {
    PD_MSG_AUTH = 1,
    PD_MSG_TOKENIZE = 10,
    PD_MSG_CARD_GET = 11,
    PD_MSG_DETOKENIZE = 12,
    PD_MSG_CARD_DELETE = 13,
    PD_MSG_ENCRYPT = 20,
    PD_MSG_DECRYPT = 21,
    PD_MSG_GENERATE_DATA_KEY = 22,
    PD_MSG_REENCRYPT = 23,
    PD_MSG_ENCRYPT_BATCH = 24, /* N payloads under one key, one envelope each (vault/msg.h) */
    PD_MSG_SECRET_GET = 30,
    /* 40 was ADMIN {op name, JSON}: retired, never reused, so an old client's frame is an
     * unknown type (the peer is dropped) rather than read as something else */
    PD_MSG_SECRET_CHANGED = 50, /* vault -> client notification */
    /* admin operations (payctl): one type each, principal admin */
    PD_MSG_KMS_LIST = 60,
    PD_MSG_KMS_DESCRIBE = 61,
    PD_MSG_KMS_CREATE = 62,
    PD_MSG_KMS_ROTATE = 63,
    PD_MSG_KMS_SET_ROTATION = 64,
    PD_MSG_KMS_SET_MIN_DECRYPT = 65,
    PD_MSG_KMS_SCHEDULE_DELETION = 66,
    PD_MSG_KMS_CANCEL_DELETION = 67,
    PD_MSG_KMS_REWRAP = 68,
    PD_MSG_SECRETS_LIST = 70,
    PD_MSG_SECRETS_HISTORY = 71,
    PD_MSG_SECRETS_GET_STAGE = 72, /* any stage, with its version id (SECRET_GET: CURRENT only) */
    PD_MSG_SECRETS_PUT = 73,
    PD_MSG_SECRETS_CREATE = 74,
    PD_MSG_SECRETS_ROTATE = 75,
    PD_MSG_AUDIT_VERIFY = 80,
    PD_MSG_BACKUP_KEY = 90,      /* a fresh backup data key and its copy wrapped by the root key */
    PD_MSG_BACKUP_SNAPSHOT = 91, /* a consistent copy of vault.db in the vault's directory */
    PD_MSG_ERROR = 0x7fff,
    PD_MSG_REPLY = 0x8000,
};

typedef struct {
    uint32_t len;
    uint16_t type;
    uint16_t flags;
    uint64_t id;
} pd_ipc_hdr_t;

void pd_ipc_hdr_encode(const pd_ipc_hdr_t *h, uint8_t out[PD_IPC_HEADER]);
/* PD_ERR_TOOBIG when len exceeds PD_IPC_MAX_PAYLOAD, PD_ERR_PROTOCOL when flags != 0. */
int pd_ipc_hdr_decode(const uint8_t in[PD_IPC_HEADER], pd_ipc_hdr_t *h) PD_WUR;

/* writer: sticky error like pd_jw_t */
typedef struct {
    pd_buf_t *b;
    int err;
} pd_wire_w_t;

void pd_wire_w_init(pd_wire_w_t *w, pd_buf_t *b);
void pd_wire_put_u8(pd_wire_w_t *w, uint8_t v);
void pd_wire_put_u16(pd_wire_w_t *w, uint16_t v);
void pd_wire_put_u32(pd_wire_w_t *w, uint32_t v);
void pd_wire_put_i32(pd_wire_w_t *w, int32_t v);
void pd_wire_put_u64(pd_wire_w_t *w, uint64_t v);
void pd_wire_put_str(pd_wire_w_t *w, pd_view_t s);   /* u16 length */
void pd_wire_put_bytes(pd_wire_w_t *w, pd_view_t b); /* u32 length */

/* reader: sticky error; strings are views into the payload */
typedef struct {
    const uint8_t *p;
    size_t len, off;
    int err;
} pd_wire_r_t;

void pd_wire_r_init(pd_wire_r_t *r, pd_view_t payload);
uint8_t pd_wire_get_u8(pd_wire_r_t *r);
uint16_t pd_wire_get_u16(pd_wire_r_t *r);
uint32_t pd_wire_get_u32(pd_wire_r_t *r);
int32_t pd_wire_get_i32(pd_wire_r_t *r);
uint64_t pd_wire_get_u64(pd_wire_r_t *r);
/* a string of at most max bytes (longer: PD_ERR_TOOBIG) */
pd_view_t pd_wire_get_str(pd_wire_r_t *r, size_t max);
pd_view_t pd_wire_get_bytes(pd_wire_r_t *r, size_t max);
/* copies a string field into a NUL-terminated buffer; rejects embedded NULs */
void pd_wire_get_cstr(pd_wire_r_t *r, char *out, size_t cap);
/* 0 when every read succeeded and the payload was consumed exactly */
int pd_wire_done(const pd_wire_r_t *r) PD_WUR;

/* Appends a whole frame (header + payload) to out. */
int pd_ipc_frame(pd_buf_t *out, uint16_t type, uint64_t id, pd_view_t payload) PD_WUR;

#endif
