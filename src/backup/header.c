/* The archive's clear header (payd/backup.h). */
#include <stdio.h>
#include <string.h>

#include "payd/backup.h"

#define MAGIC "PDBK"

static int
put_u16(pd_buf_t *b, size_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return pd_buf_put(b, x, 2);
}

static int
put_field(pd_buf_t *b, pd_view_t v)
{
    int r = put_u16(b, v.len);
    return r != 0 ? r : pd_buf_put(b, v.p, v.len);
}

/* the bounds both sides hold: what enc refuses to write, dec refuses to read */
static const char *
out_of_bounds(const pd_backup_header_t *h)
{
    if (h->unseal != PD_BACKUP_UNSEAL_PASSPHRASE && h->unseal != PD_BACKUP_UNSEAL_SHARES)
        return "unknown unseal method";
    if ((h->flags & ~PD_BACKUP_F_DEV) != 0)
        return "unknown flags";
    if (h->wrapped.len != PD_BACKUP_WRAPPED_LEN)
        return "the wrapped key has the wrong length";
    if (h->unseal == PD_BACKUP_UNSEAL_PASSPHRASE && (h->keyfile.len == 0 || h->keyfile.len > PD_BACKUP_KEYFILE_MAX))
        return "the root key file is missing or too long";
    if (h->unseal == PD_BACKUP_UNSEAL_SHARES && h->keyfile.len != 0)
        return "a vault unsealed by shares has no root key file";
    if ((h->flags & PD_BACKUP_F_DEV) != 0 &&
        (h->unseal != PD_BACKUP_UNSEAL_PASSPHRASE || h->devpass.len == 0 || h->devpass.len > PD_BACKUP_DEVPASS_MAX))
        return "the dev passphrase is missing or too long";
    if ((h->flags & PD_BACKUP_F_DEV) == 0 && h->devpass.len != 0)
        return "a dev passphrase without the dev flag";
    return NULL;
}

int
pd_backup_header_enc(pd_buf_t *out, const pd_backup_header_t *h)
{
    if (h->version != PD_BACKUP_VERSION || out_of_bounds(h) != NULL)
        return PD_ERR_INVALID;
    uint8_t fixed[8] = {'P', 'D', 'B', 'K', PD_BACKUP_VERSION, h->flags, (uint8_t)h->unseal, 0};
    int r;
    if ((r = pd_buf_put(out, fixed, sizeof(fixed))) != 0 || (r = put_field(out, h->wrapped)) != 0 ||
        (r = put_field(out, h->keyfile)) != 0 || (r = put_field(out, h->devpass)) != 0)
        return r;
    return 0;
}

typedef struct {
    pd_view_t in;
    size_t off;
} cur_t;

static int
get_field(cur_t *c, pd_view_t *v, const char *name, char *err, size_t cap)
{
    if (c->in.len - c->off < 2) {
        snprintf(err, cap, "the backup header ends before the length of its %s", name);
        return PD_ERR_TRUNCATED;
    }
    size_t n = ((size_t)c->in.p[c->off] << 8) | c->in.p[c->off + 1];
    c->off += 2;
    if (c->in.len - c->off < n) {
        snprintf(err, cap, "the backup header ends inside its %s (%zu bytes announced, %zu left)", name, n,
                 c->in.len - c->off);
        return PD_ERR_TRUNCATED;
    }
    *v = (pd_view_t){c->in.p + c->off, n};
    c->off += n;
    return 0;
}

int
pd_backup_header_dec(pd_view_t in, pd_backup_header_t *h, char *err, size_t cap)
{
    cur_t c = {in, 8};
    int r;
    memset(h, 0, sizeof(*h));
    if (in.len < 4 || memcmp(in.p, MAGIC, 4) != 0) {
        snprintf(err, cap, "not a payd backup (no PDBK header)");
        return PD_ERR_INVALID;
    }
    if (in.len < 8) {
        snprintf(err, cap, "the backup header is cut short (%zu bytes)", in.len);
        return PD_ERR_TRUNCATED;
    }
    if (in.p[4] != PD_BACKUP_VERSION) {
        snprintf(err, cap, "backup archive version %u: this payctl reads version %d", in.p[4], PD_BACKUP_VERSION);
        return PD_ERR_KEY_VERSION;
    }
    h->version = in.p[4];
    h->flags = in.p[5];
    h->unseal = (pd_backup_unseal_t)in.p[6];
    if (in.p[7] != 0) {
        snprintf(err, cap, "the backup header's reserved byte is not 0");
        return PD_ERR_INVALID;
    }
    if ((r = get_field(&c, &h->wrapped, "wrapped key", err, cap)) != 0 ||
        (r = get_field(&c, &h->keyfile, "root key file", err, cap)) != 0 ||
        (r = get_field(&c, &h->devpass, "dev passphrase", err, cap)) != 0)
        return r;
    if (c.off != in.len) {
        snprintf(err, cap, "%zu bytes after the backup header", in.len - c.off);
        return PD_ERR_INVALID;
    }
    const char *why = out_of_bounds(h);
    if (why != NULL) {
        snprintf(err, cap, "invalid backup header: %s", why);
        return PD_ERR_INVALID;
    }
    return 0;
}

int
pd_backup_walpos_enc(char *out, size_t cap, const pd_wal_pos_t *p, int64_t at_ms)
{
    int n = snprintf(out, cap, "walpos 1 %u %u %u %u %u %u %d %lld\n", p->salt1, p->salt2, p->page_size, p->frame,
                     p->ck[0], p->ck[1], p->big_endian ? 1 : 0, (long long)at_ms);
    return n < 0 || (size_t)n >= cap ? PD_ERR_TOOBIG : n;
}

int
pd_backup_walpos_dec(const char *in, size_t n, pd_wal_pos_t *p, int64_t *at_ms)
{
    char line[200], again[200];
    unsigned s1, s2, ps, fr, c0, c1;
    long long at;
    int be, used = 0;
    if (n == 0 || n >= sizeof(line) || memchr(in, '\0', n) != NULL)
        return PD_ERR_INVALID;
    memcpy(line, in, n);
    line[n] = '\0';
    if (sscanf(line, "walpos 1 %u %u %u %u %u %u %d %lld\n%n", &s1, &s2, &ps, &fr, &c0, &c1, &be, &at, &used) != 8 ||
        (size_t)used != n || (be != 0 && be != 1) || ps < 512 || ps > 65536 || (ps & (ps - 1)) != 0 || at <= 0)
        return PD_ERR_INVALID;
    *p = (pd_wal_pos_t){.page_size = ps, .salt1 = s1, .salt2 = s2, .big_endian = be == 1, .frame = fr, .ck = {c0, c1}};
    *at_ms = at;
    /* one spelling only (no signs, no leading zeros): it reads back as it was written */
    if (pd_backup_walpos_enc(again, sizeof(again), p, at) != (int)n || memcmp(again, line, n) != 0)
        return PD_ERR_INVALID;
    return 0;
}
