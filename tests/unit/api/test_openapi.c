/* docs/openapi.yaml and the router agree: every route is in the spec with exactly
 * the parameters of its schema, and the spec has no operation the router lacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "payd/api.h"
#include "payd/schema.h"

#define MAX_OPS 64
#define MAX_PARAMS 40

typedef struct {
    char path[128], method[8];
    char params[MAX_PARAMS][64];
    int nparams;
    bool matched;
} op_t;

static op_t ops[MAX_OPS];
static int nops;

static void
load_spec(void)
{
    FILE *f = fopen(PAYD_SOURCE_DIR "/docs/openapi.yaml", "r");
    assert_non_null(f);
    char line[1024], path[128] = "";
    bool in_paths = false;
    op_t *cur = NULL;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "paths:", 6) == 0) {
            in_paths = true;
            continue;
        }
        if (!in_paths)
            continue;
        if (strncmp(line, "  /", 3) == 0) {
            snprintf(path, sizeof(path), "%.*s", (int)strcspn(line + 2, ":"), line + 2);
            cur = NULL;
        } else if (strncmp(line, "    ", 4) == 0 && line[4] != ' ') {
            assert_true(nops < MAX_OPS);
            cur = &ops[nops++];
            snprintf(cur->path, sizeof(cur->path), "%s", path);
            snprintf(cur->method, sizeof(cur->method), "%.*s", (int)strcspn(line + 4, ":"), line + 4);
        } else if (cur != NULL) {
            /* query parameters: - {name: 'x', in: query ...}; body properties: 'x': {description ...} */
            const char *q = strstr(line, "{name: '");
            const char *b = strstr(line, "                '");
            const char *start = q ? q + 8 : (b == line ? b + 17 : NULL);
            if (start != NULL && cur->nparams < MAX_PARAMS) {
                size_t n = strcspn(start, "'");
                bool dup = false;
                for (int i = 0; i < cur->nparams; i++)
                    dup |= strlen(cur->params[i]) == n && strncmp(cur->params[i], start, n) == 0;
                if (!dup)
                    snprintf(cur->params[cur->nparams++], 64, "%.*s", (int)n, start);
            }
        }
    }
    fclose(f);
}

static const char *
method_name(pd_method_t m)
{
    switch (m) {
    case PD_M_GET: return "get";
    case PD_M_POST: return "post";
    case PD_M_DELETE: return "delete";
    default: return "?";
    }
}

static void
routes_and_spec_match(void **state)
{
    (void)state;
    load_spec();
    assert_true(nops > 10);
    for (size_t i = 0; i < pd_api_routes_n; i++) {
        const pd_route_t *rt = &pd_api_routes[i];
        char path[128];
        /* :id -> {id} */
        size_t o = 0;
        for (const char *p = rt->pattern; *p && o < sizeof(path) - 3; p++) {
            if (*p == ':') {
                path[o++] = '{';
                while (p[1] && p[1] != '/')
                    path[o++] = *++p;
                path[o++] = '}';
            } else {
                path[o++] = *p;
            }
        }
        path[o] = '\0';
        op_t *op = NULL;
        for (int k = 0; k < nops; k++)
            if (strcmp(ops[k].path, path) == 0 && strcmp(ops[k].method, method_name(rt->method)) == 0)
                op = &ops[k];
        if (op == NULL)
            fail_msg("route %s %s is missing from docs/openapi.yaml", method_name(rt->method), path);
        op->matched = true;
        const pd_schema_t *s = rt->schema;
        for (size_t f = 0; s != NULL && f < s->n; f++) {
            bool found = false;
            for (int k = 0; k < op->nparams; k++)
                found |= strcmp(op->params[k], s->fields[f].name) == 0;
            if (!found)
                fail_msg("%s %s: parameter %s is not documented", op->method, path, s->fields[f].name);
        }
        for (int k = 0; k < op->nparams; k++) {
            bool found = strcmp(op->params[k], "id") == 0;
            for (size_t f = 0; s != NULL && f < s->n; f++)
                found |= strcmp(op->params[k], s->fields[f].name) == 0;
            if (!found)
                fail_msg("%s %s: documented parameter %s does not exist", op->method, path, op->params[k]);
        }
    }
    for (int k = 0; k < nops; k++)
        if (!ops[k].matched)
            fail_msg("docs/openapi.yaml documents %s %s, which the router does not have", ops[k].method, ops[k].path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(routes_and_spec_match)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
