/*
 * Method + path router. Patterns are '/'-separated literal segments or ":name"
 * parameters that match one non-empty segment. Routes are scanned in order; with
 * ~50 routes a linear scan over pre-split segments costs well under a microsecond.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payd/http.h"

#define MAX_ROUTES 256
#define MAX_SEGS 8

typedef struct {
    const pd_route_t *route;
    size_t nsegs;
    pd_view_t segs[MAX_SEGS];
    bool is_param[MAX_SEGS];
} compiled_t;

struct pd_router {
    compiled_t routes[MAX_ROUTES];
    size_t n;
};

static const struct {
    const char *name;
    pd_method_t m;
} methods[] = {{"GET", PD_M_GET},     {"POST", PD_M_POST}, {"DELETE", PD_M_DELETE},  {"PUT", PD_M_PUT},
               {"PATCH", PD_M_PATCH}, {"HEAD", PD_M_HEAD}, {"OPTIONS", PD_M_OPTIONS}};

pd_method_t
pd_method_parse(pd_view_t m)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (pd_view_eq_cstr(m, methods[i].name))
            return methods[i].m;
    return 0;
}

void
pd_method_list(unsigned mask, char *out, size_t cap)
{
    size_t used = 0;
    if (cap == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if ((mask & methods[i].m) == 0)
            continue;
        int n = snprintf(out + used, cap - used, "%s%s", used ? ", " : "", methods[i].name);
        if (n < 0 || (size_t)n >= cap - used)
            return;
        used += (size_t)n;
    }
}

int
pd_router_new(pd_router_t **out)
{
    pd_router_t *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return PD_ERR_NOMEM;
    *out = rt;
    return 0;
}

void
pd_router_free(pd_router_t *rt)
{
    free(rt);
}

/* splits a path into segments; returns -1 if there are too many or the path is not absolute */
static int
split(pd_view_t path, pd_view_t *segs, size_t *n)
{
    size_t i = 0, k = 0;
    if (path.len == 0 || path.p[0] != '/')
        return -1;
    i = 1;
    while (i <= path.len) {
        size_t j = i;
        while (j < path.len && path.p[j] != '/')
            j++;
        if (j == i && j == path.len && k > 0)
            break; /* one trailing slash */
        if (k == MAX_SEGS)
            return -1;
        segs[k++] = pd_view(path.p + i, j - i);
        i = j + 1;
    }
    *n = k;
    return 0;
}

int
pd_router_add(pd_router_t *rt, const pd_route_t *routes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const pd_route_t *r = &routes[i];
        if (rt->n == MAX_ROUTES || r->handler == NULL || r->method == 0)
            return PD_ERR_INVALID;
        compiled_t *c = &rt->routes[rt->n];
        if (split(pd_view_cstr(r->pattern), c->segs, &c->nsegs) != 0)
            return PD_ERR_INVALID;
        size_t nparams = 0;
        for (size_t s = 0; s < c->nsegs; s++) {
            c->is_param[s] = c->segs[s].len > 1 && c->segs[s].p[0] == ':';
            if (c->segs[s].len == 0 || (c->segs[s].p[0] == ':' && !c->is_param[s]))
                return PD_ERR_INVALID;
            if (c->is_param[s] && ++nparams > PD_ROUTE_MAX_PARAMS)
                return PD_ERR_INVALID;
        }
        for (size_t j = 0; j < rt->n; j++) {
            const pd_route_t *o = rt->routes[j].route;
            if ((o->method & r->method) != 0 && (o->listeners & r->listeners) != 0 &&
                strcmp(o->pattern, r->pattern) == 0)
                return PD_ERR_EXISTS;
        }
        c->route = r;
        rt->n++;
    }
    return 0;
}

const pd_route_t *
pd_router_at(const pd_router_t *rt, size_t i)
{
    return i < rt->n ? rt->routes[i].route : NULL;
}

pd_match_result_t
pd_router_match(const pd_router_t *rt, unsigned listener, pd_view_t method, pd_view_t path, const pd_route_t **route,
                pd_view_t *params, size_t *nparams, unsigned *allowed)
{
    pd_view_t segs[MAX_SEGS];
    size_t nsegs;
    pd_method_t m = pd_method_parse(method);
    unsigned allow = 0;

    if (split(path, segs, &nsegs) != 0)
        return PD_MATCH_NOT_FOUND;
    for (size_t i = 0; i < rt->n; i++) {
        const compiled_t *c = &rt->routes[i];
        if ((c->route->listeners & listener) == 0 || c->nsegs != nsegs)
            continue;
        size_t np = 0, s;
        for (s = 0; s < nsegs; s++) {
            if (c->is_param[s]) {
                if (segs[s].len == 0)
                    break;
                params[np++] = segs[s];
            } else if (!pd_view_eq(c->segs[s], segs[s])) {
                break;
            }
        }
        if (s != nsegs)
            continue;
        if ((c->route->method & m) == 0) {
            allow |= c->route->method;
            continue;
        }
        *route = c->route;
        *nparams = np;
        return PD_MATCH_OK;
    }
    if (allow != 0) {
        *allowed = allow;
        return PD_MATCH_METHOD;
    }
    return PD_MATCH_NOT_FOUND;
}

const char *
pd_path_check_raw(pd_view_t raw)
{
    for (size_t i = 0; i + 2 < raw.len; i++) {
        if (raw.p[i] != '%')
            continue;
        uint8_t a = raw.p[i + 1], b = raw.p[i + 2];
        if (a == '2' && (b == 'f' || b == 'F'))
            return "an encoded '/' (%2F) in a path segment";
        if (a == '0' && b == '0')
            return "an encoded NUL (%00) in the path";
    }
    return NULL;
}
