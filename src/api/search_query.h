/*
 * Stripe's search query language (https://stripe.com/docs/search), parsed into a small
 * AST: a list of at most PD_SQ_MAX_CLAUSES clauses joined by one connective (AND or OR:
 * Stripe does not let one query mix them, and has no parentheses).
 *
 *   query   := clause { [AND | OR] clause }        whitespace alone is AND
 *   clause  := [-] field op value                  - negates the clause
 *   field   := name | metadata '[' string ']'
 *   op      := ':' | '~' | '>' | '<' | '>=' | '<='
 *   value   := string | integer                    strings quoted '...' or "...", \ escapes
 *
 * The parser is pure (no I/O, no allocation: every string lives in the AST's own
 * bounded buffers) and checks the fields against the resource's table: what a field
 * allows (substring on strings only, ranges on numbers only, at least 3 characters for
 * '~'). Evaluating a clause on a record is the caller's (src/api/search.c).
 */
#ifndef PAYD_API_SEARCH_QUERY_H
#define PAYD_API_SEARCH_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_SQ_MAX_CLAUSES 10
#define PD_SQ_VALUE_MAX 256 /* bytes of one string value (after unescaping) */
#define PD_SQ_KEY_MAX 40    /* a metadata key (Stripe's limit) */
#define PD_SQ_QUERY_MAX 2000

typedef enum { PD_SQ_PAYMENT_INTENTS, PD_SQ_CHARGES, PD_SQ_CUSTOMERS } pd_sq_resource_t;

typedef enum {
    PD_SQF_STATUS,
    PD_SQF_AMOUNT,
    PD_SQF_CURRENCY,
    PD_SQF_CREATED,
    PD_SQF_CUSTOMER,
    PD_SQF_EMAIL,
    PD_SQF_METADATA,
} pd_sq_field_t;

typedef enum { PD_SQ_EQ, PD_SQ_SUB, PD_SQ_GT, PD_SQ_LT, PD_SQ_GE, PD_SQ_LE } pd_sq_op_t;

typedef struct {
    pd_sq_field_t field;
    pd_sq_op_t op;
    bool negated;
    bool is_num;                     /* the value was an integer (num); else a string (str) */
    int64_t num;
    char str[PD_SQ_VALUE_MAX + 1];   /* NUL-terminated; may hold NUL bytes before str_len */
    size_t str_len;
    char key[PD_SQ_KEY_MAX + 1];     /* metadata's key */
} pd_sq_clause_t;

typedef struct {
    pd_sq_clause_t c[PD_SQ_MAX_CLAUSES];
    size_t n;    /* >= 1 after a successful parse */
    bool any;    /* OR: one clause must hold; else (AND) all of them */
} pd_sq_t;

/* Parses q (len bytes, not NUL-terminated) for resource res into out. 0, or -1 with a
 * message for the user in err (cap bytes, naming the position or the token). */
int pd_sq_parse(const char *q, size_t len, pd_sq_resource_t res, pd_sq_t *out, char *err, size_t cap);

/* Case-insensitive (ASCII) comparisons the evaluator uses: exact and substring. */
bool pd_sq_str_eq(const char *a, size_t alen, const char *b, size_t blen);
bool pd_sq_str_contains(const char *hay, size_t hlen, const char *needle, size_t nlen);
/* a numeric clause on v */
bool pd_sq_num_holds(const pd_sq_clause_t *c, int64_t v);

#endif
