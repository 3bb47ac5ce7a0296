/*
 * The per-client-address rules (PD_STAGE_EARLY, before authentication): denylist,
 * allowlist, and a sliding-window rate rule (default 2000 requests per 5 minutes,
 * then 403 until the window clears). The client address is the peer, or — only
 * when the peer is a trusted proxy — the right-most X-Forwarded-For address that is
 * not itself a trusted proxy.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "waf/internal.h"

typedef struct {
    int family;
    uint8_t addr[16];
    int bits;
} cidr_t;

struct pd_waf_ip {
    cidr_t *trusted, *allow, *deny;
    size_t ntrusted, nallow, ndeny;
    pd_cache_t *cache;
    int64_t limit, window_ms;
};

static bool
parse_addr(const char *s, size_t n, int *family, uint8_t out[16])
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, out) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, out) == 1) {
        *family = AF_INET6;
        return true;
    }
    return false;
}

/* "10.0.0.0/8, 192.168.1.7, ::1/128" */
static int
parse_cidrs(const char *key, const char *list, cidr_t **out, size_t *n, char *err, size_t errcap)
{
    for (const char *p = list; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        size_t len = strcspn(p, ", ");
        const char *slash = memchr(p, '/', len);
        cidr_t c = {0};
        size_t alen = slash != NULL ? (size_t)(slash - p) : len;
        bool ok = parse_addr(p, alen, &c.family, c.addr);
        int max = c.family == AF_INET ? 32 : 128;
        c.bits = max;
        if (ok && slash != NULL) {
            char *end = NULL;
            long b = strtol(slash + 1, &end, 10);
            ok = end == p + len && end > slash + 1 && b >= 0 && b <= max;
            c.bits = (int)b;
        }
        if (!ok) {
            snprintf(err, errcap, "[waf] %s: \"%.*s\" is not an IPv4/IPv6 address or CIDR block", key, (int)len, p);
            return PD_ERR_CONFIG;
        }
        cidr_t *g = realloc(*out, (*n + 1) * sizeof(**out));
        if (g == NULL)
            return PD_ERR_NOMEM;
        *out = g;
        (*out)[(*n)++] = c;
        p += len;
    }
    return 0;
}

static bool
in_list(const cidr_t *l, size_t n, int family, const uint8_t *a)
{
    for (size_t i = 0; i < n; i++) {
        if (l[i].family != family)
            continue;
        int full = l[i].bits / 8, rest = l[i].bits % 8;
        if (memcmp(l[i].addr, a, (size_t)full) != 0)
            continue;
        if (rest == 0 || ((l[i].addr[full] ^ a[full]) & (0xff << (8 - rest))) == 0)
            return true;
    }
    return false;
}

int
pd_waf_ip_new(pd_waf_ip_t **out, const pd_waf_config_t *cfg, char *err, size_t errcap)
{
    pd_waf_ip_t *ip = calloc(1, sizeof(*ip));
    if (ip == NULL)
        return PD_ERR_NOMEM;
    ip->limit = cfg->ip_rate_limit;
    ip->window_ms = cfg->ip_rate_window_ms;
    int rc = parse_cidrs("trusted_proxies", cfg->trusted_proxies, &ip->trusted, &ip->ntrusted, err, errcap);
    if (rc == 0)
        rc = parse_cidrs("allow", cfg->allow, &ip->allow, &ip->nallow, err, errcap);
    if (rc == 0)
        rc = parse_cidrs("deny", cfg->deny, &ip->deny, &ip->ndeny, err, errcap);
    if (rc == 0)
        rc = pd_cache_open(&ip->cache, 1000000, err, errcap);
    if (rc != 0) {
        pd_waf_ip_free(ip);
        return rc;
    }
    *out = ip;
    return 0;
}

void
pd_waf_ip_free(pd_waf_ip_t *ip)
{
    if (ip == NULL)
        return;
    free(ip->trusted);
    free(ip->allow);
    free(ip->deny);
    pd_cache_free(ip->cache);
    free(ip);
}

/* the client address as text into out; family/addr parsed */
static bool
client_addr(const pd_waf_ip_t *ip, pd_req_t *r, char *out, size_t cap, int *family, uint8_t addr[16])
{
    size_t pl = strnlen(r->peer, sizeof(r->peer) - 1);
    if (pl >= cap || !parse_addr(r->peer, pl, family, addr))
        return false;
    memcpy(out, r->peer, pl + 1);
    if (!in_list(ip->trusted, ip->ntrusted, *family, addr))
        return true;
    pd_view_t xff = pd_req_header(r, "x-forwarded-for");
    /* right to left: the first hop that is not one of our proxies is the client */
    size_t end = xff.len;
    while (xff.p != NULL && end > 0) {
        size_t start = end;
        while (start > 0 && xff.p[start - 1] != ',')
            start--;
        size_t a = start, b = end;
        while (a < b && (xff.p[a] == ' ' || xff.p[a] == '\t'))
            a++;
        while (b > a && (xff.p[b - 1] == ' ' || xff.p[b - 1] == '\t'))
            b--;
        int f;
        uint8_t hop[16];
        if (!parse_addr((const char *)xff.p + a, b - a, &f, hop))
            break; /* garbage: keep the last good address */
        snprintf(out, cap, "%.*s", (int)(b - a), (const char *)xff.p + a);
        *family = f;
        memcpy(addr, hop, 16);
        if (!in_list(ip->trusted, ip->ntrusted, f, hop))
            break;
        end = start > 0 ? start - 1 : 0;
    }
    return true;
}

static int
refuse(pd_req_t *r, const char *why, const char *client)
{
    pd_log_warn("waf: client refused", PD_LS("request_id", r->id), PD_LS("reason", why), PD_LS("client", client));
    r->waf_action = "block";
    pd_mx_inc2(PD_MX_WAF_DECISIONS, PD_MX_WAF_BLOCK, pd_mx_waf_family(why)); /* "denylist", "rate-rule" */
    snprintf(r->waf_rules, sizeof(r->waf_rules), "%s", why);
    pd_resp_error(r, 403, "invalid_request_error", "request_blocked",
                  "This request was blocked by the web application firewall. Contact support with the request id "
                  "if you believe this is a mistake.",
                  NULL);
    return 1;
}

/* one hit of the rate rule for the client of r, at now */
static int64_t
hit(pd_waf_ip_t *ip, const char *client)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char key[80];
    snprintf(key, sizeof(key), "ip:%s", client);
    return pd_cache_hit(ip->cache, key, ip->window_ms, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

void
pd_waf_ip_count_refused(pd_req_t *r, void *arg)
{
    pd_waf_ip_t *ip = arg;
    char client[64];
    int family = 0;
    uint8_t addr[16] = {0};
    if (!client_addr(ip, r, client, sizeof(client), &family, addr) || in_list(ip->allow, ip->nallow, family, addr))
        return;
    (void)hit(ip, client);
}

int
pd_waf_ip_filter(pd_req_t *r, void *arg)
{
    pd_waf_ip_t *ip = arg;
    char client[64];
    int family = 0;
    uint8_t addr[16] = {0};
    if (!client_addr(ip, r, client, sizeof(client), &family, addr))
        return 0; /* no IP peer (e.g. a Unix socket): nothing to rate */
    /* from here on the request's address is the client's, also for later limits and logs */
    if (strcmp(r->peer, client) != 0)
        snprintf(r->peer, sizeof(r->peer), "%s", client);
    if (in_list(ip->deny, ip->ndeny, family, addr))
        return refuse(r, "denylist", client);
    /* health checks (public routes) are not rate-limited: load balancers poll them */
    if (in_list(ip->allow, ip->nallow, family, addr) || (r->route != NULL && (r->route->flags & PD_ROUTE_PUBLIC)))
        return 0;
    if (hit(ip, client) > ip->limit)
        return refuse(r, "rate-rule", client);
    return 0;
}
