/* Framing and typed field encoding of the vault protocol. */
#include <string.h>

#include "payd/vault_ipc.h"

static void
be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t
unbe(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

void
pd_ipc_hdr_encode(const pd_ipc_hdr_t *h, uint8_t out[PD_IPC_HEADER])
{
    be(out, h->len, 4);
    be(out + 4, h->type, 2);
    be(out + 6, h->flags, 2);
    be(out + 8, h->id, 8);
}

int
pd_ipc_hdr_decode(const uint8_t in[PD_IPC_HEADER], pd_ipc_hdr_t *h)
{
    h->len = (uint32_t)unbe(in, 4);
    h->type = (uint16_t)unbe(in + 4, 2);
    h->flags = (uint16_t)unbe(in + 6, 2);
    h->id = unbe(in + 8, 8);
    if (h->len > PD_IPC_MAX_PAYLOAD)
        return PD_ERR_TOOBIG;
    if (h->flags != 0)
        return PD_ERR_PROTOCOL;
    return 0;
}

void
pd_wire_w_init(pd_wire_w_t *w, pd_buf_t *b)
{
    w->b = b;
    w->err = 0;
}

static void
put_int(pd_wire_w_t *w, uint64_t v, int n)
{
    uint8_t tmp[8];
    if (w->err != 0)
        return;
    be(tmp, v, n);
    w->err = pd_buf_put(w->b, tmp, (size_t)n);
}

void pd_wire_put_u8(pd_wire_w_t *w, uint8_t v) { put_int(w, v, 1); }
void pd_wire_put_u16(pd_wire_w_t *w, uint16_t v) { put_int(w, v, 2); }
void pd_wire_put_u32(pd_wire_w_t *w, uint32_t v) { put_int(w, v, 4); }
void pd_wire_put_i32(pd_wire_w_t *w, int32_t v) { put_int(w, (uint32_t)v, 4); }
void pd_wire_put_u64(pd_wire_w_t *w, uint64_t v) { put_int(w, v, 8); }

void
pd_wire_put_str(pd_wire_w_t *w, pd_view_t s)
{
    if (s.len > UINT16_MAX) {
        if (w->err == 0)
            w->err = PD_ERR_TOOBIG;
        return;
    }
    put_int(w, s.len, 2);
    if (w->err == 0 && s.len > 0)
        w->err = pd_buf_put(w->b, s.p, s.len);
}

void
pd_wire_put_bytes(pd_wire_w_t *w, pd_view_t b)
{
    if (b.len > PD_IPC_MAX_PAYLOAD) {
        if (w->err == 0)
            w->err = PD_ERR_TOOBIG;
        return;
    }
    put_int(w, b.len, 4);
    if (w->err == 0 && b.len > 0)
        w->err = pd_buf_put(w->b, b.p, b.len);
}

void
pd_wire_r_init(pd_wire_r_t *r, pd_view_t payload)
{
    r->p = payload.p;
    r->len = payload.len;
    r->off = 0;
    r->err = 0;
}

static uint64_t
get_int(pd_wire_r_t *r, int n)
{
    if (r->err != 0)
        return 0;
    if (r->len - r->off < (size_t)n) {
        r->err = PD_ERR_TRUNCATED;
        return 0;
    }
    uint64_t v = unbe(r->p + r->off, n);
    r->off += (size_t)n;
    return v;
}

uint8_t pd_wire_get_u8(pd_wire_r_t *r) { return (uint8_t)get_int(r, 1); }
uint16_t pd_wire_get_u16(pd_wire_r_t *r) { return (uint16_t)get_int(r, 2); }
uint32_t pd_wire_get_u32(pd_wire_r_t *r) { return (uint32_t)get_int(r, 4); }
int32_t pd_wire_get_i32(pd_wire_r_t *r) { return (int32_t)(uint32_t)get_int(r, 4); }
uint64_t pd_wire_get_u64(pd_wire_r_t *r) { return get_int(r, 8); }

static pd_view_t
get_len_bytes(pd_wire_r_t *r, int lenbytes, size_t max)
{
    size_t n = (size_t)get_int(r, lenbytes);
    if (r->err != 0)
        return PD_VIEW_NULL;
    if (n > max) {
        r->err = PD_ERR_TOOBIG;
        return PD_VIEW_NULL;
    }
    if (r->len - r->off < n) {
        r->err = PD_ERR_TRUNCATED;
        return PD_VIEW_NULL;
    }
    pd_view_t v = pd_view(r->p + r->off, n);
    r->off += n;
    return v;
}

pd_view_t pd_wire_get_str(pd_wire_r_t *r, size_t max) { return get_len_bytes(r, 2, max); }
pd_view_t pd_wire_get_bytes(pd_wire_r_t *r, size_t max) { return get_len_bytes(r, 4, max); }

void
pd_wire_get_cstr(pd_wire_r_t *r, char *out, size_t cap)
{
    pd_view_t v = pd_wire_get_str(r, cap - 1);
    out[0] = '\0';
    if (r->err != 0)
        return;
    if (memchr(v.p, '\0', v.len) != NULL) {
        r->err = PD_ERR_INVALID;
        return;
    }
    memcpy(out, v.p, v.len);
    out[v.len] = '\0';
}

int
pd_wire_done(const pd_wire_r_t *r)
{
    if (r->err != 0)
        return r->err;
    return r->off == r->len ? 0 : PD_ERR_PROTOCOL;
}

int
pd_ipc_frame(pd_buf_t *out, uint16_t type, uint64_t id, pd_view_t payload)
{
    uint8_t h[PD_IPC_HEADER];
    if (payload.len > PD_IPC_MAX_PAYLOAD)
        return PD_ERR_TOOBIG;
    pd_ipc_hdr_t hdr = {(uint32_t)payload.len, type, 0, id};
    pd_ipc_hdr_encode(&hdr, h);
    size_t start = out->len;
    int r = pd_buf_put(out, h, sizeof(h));
    if (r == 0 && payload.len > 0)
        r = pd_buf_put(out, payload.p, payload.len);
    if (r != 0)
        out->len = start;
    return r;
}
