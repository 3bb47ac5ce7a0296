/* Fuzzes the search query parser (src/api/search_query.c): the first byte picks the
 * resource, the rest is the query. Whatever the bytes, the parser returns without
 * crashing or reading past the query; a refusal has a message, and what it accepts keeps
 * the language's rules: 1 to 10 clauses, fields of the resource's table, substrings of
 * at least 3 characters on text only, ranges on numbers only, email exact only. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/search_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    pd_sq_resource_t res = (pd_sq_resource_t)(data[0] % 3);
    /* the query in a buffer of its own size, so a read past it is caught */
    char *q = malloc(size - 1 > 0 ? size - 1 : 1);
    if (q == NULL)
        abort();
    memcpy(q, data + 1, size - 1);
    pd_sq_t out;
    char err[512];
    int r = pd_sq_parse(q, size - 1, res, &out, err, sizeof(err));
    if (r != 0 && (r != -1 || err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL))
        abort();
    if (r == 0) {
        if (out.n < 1 || out.n > PD_SQ_MAX_CLAUSES)
            abort();
        for (size_t i = 0; i < out.n; i++) {
            const pd_sq_clause_t *c = &out.c[i];
            bool numeric = c->field == PD_SQF_AMOUNT || c->field == PD_SQF_CREATED;
            if (numeric != c->is_num)
                abort();
            if (!numeric && c->op != PD_SQ_EQ && c->op != PD_SQ_SUB)
                abort();
            if (numeric && c->op == PD_SQ_SUB)
                abort();
            if (c->op == PD_SQ_SUB && c->str_len < 3)
                abort();
            if (c->str_len > PD_SQ_VALUE_MAX || c->str[c->str_len] != '\0')
                abort();
            if (res == PD_SQ_CUSTOMERS && c->field != PD_SQF_EMAIL && c->field != PD_SQF_CREATED &&
                c->field != PD_SQF_METADATA)
                abort();
            if (res != PD_SQ_CUSTOMERS && c->field == PD_SQF_EMAIL)
                abort();
            if (c->field == PD_SQF_EMAIL && c->op != PD_SQ_EQ)
                abort();
            if (c->field == PD_SQF_METADATA && (c->key[0] == '\0' || strlen(c->key) > PD_SQ_KEY_MAX))
                abort();
        }
    }
    free(q);
    return 0;
}
