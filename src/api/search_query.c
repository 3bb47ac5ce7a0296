/*
 * The search query parser (search_query.h): a tokenizer over the bytes of the query
 * and a recursive-descent parser over its tokens. Every error names the position (a
 * 0-based byte offset into the query) or the token that stopped it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/search_query.h"

typedef enum { T_END, T_NAME, T_STRING, T_NUM, T_OP, T_MINUS, T_LBRACK, T_RBRACK, T_BAD } tok_kind_t;

typedef struct {
    tok_kind_t kind;
    size_t pos, len;  /* where it is in the query */
    pd_sq_op_t op;    /* T_OP */
    int64_t num;      /* T_NUM */
    bool ws_before;   /* whitespace between the previous token and this one */
} tok_t;

typedef struct {
    const char *q;
    size_t len, pos;
    tok_t t;          /* the current token */
    char *err;
    size_t cap;
    pd_sq_resource_t res;
    /* the current string token, unescaped */
    char str[PD_SQ_VALUE_MAX + 1];
    size_t str_len;
} parser_t;

static int
fail(parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(parser_t *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (p->cap > 0)
        vsnprintf(p->err, p->cap, fmt, ap);
    va_end(ap);
    return -1;
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool
is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* the token's text, for messages (at most 40 bytes shown) */
static int
tok_shown(const parser_t *p)
{
    return (int)(p->t.len > 40 ? 40 : p->t.len);
}

/* reads a quoted string at p->pos (the quote); false after failing */
static bool
lex_string(parser_t *p)
{
    char quote = p->q[p->pos];
    size_t i = p->pos + 1;
    p->str_len = 0;
    for (;;) {
        if (i >= p->len) {
            fail(p, "Unterminated string starting at position %zu: close it with %c.", p->pos, quote);
            return false;
        }
        char c = p->q[i];
        if (c == quote)
            break;
        if (c == '\\') {
            if (i + 1 >= p->len) {
                fail(p, "Unterminated string starting at position %zu: a backslash ends the query.", p->pos);
                return false;
            }
            c = p->q[++i]; /* the escaped character itself: \" \' \\ */
        }
        if (p->str_len == PD_SQ_VALUE_MAX) {
            fail(p, "The string starting at position %zu is longer than %d bytes.", p->pos, PD_SQ_VALUE_MAX);
            return false;
        }
        p->str[p->str_len++] = c;
        i++;
    }
    p->str[p->str_len] = '\0';
    p->t.kind = T_STRING;
    p->t.len = i + 1 - p->pos;
    return true;
}

/* reads an integer at p->pos (a digit, or '-' followed by one) */
static bool
lex_num(parser_t *p)
{
    size_t i = p->pos;
    bool neg = p->q[i] == '-';
    int64_t v = 0;
    if (neg)
        i++;
    for (; i < p->len && is_digit(p->q[i]); i++) {
        int d = p->q[i] - '0';
        if (v > (INT64_MAX - d) / 10) {
            fail(p, "The number at position %zu is too large.", p->pos);
            return false;
        }
        v = v * 10 + d;
    }
    if (i < p->len && (p->q[i] == '.' || is_name_start(p->q[i]))) {
        fail(p, "Invalid number at position %zu: numbers are whole (amounts in the smallest currency unit, times in "
                "Unix seconds), and words are quoted.",
             p->pos);
        return false;
    }
    p->t.kind = T_NUM;
    p->t.num = neg ? -v : v;
    p->t.len = i - p->pos;
    return true;
}

/* advances to the next token; false after failing */
static bool
next(parser_t *p)
{
    size_t start = p->pos;
    while (p->pos < p->len && is_space(p->q[p->pos]))
        p->pos++;
    p->t = (tok_t){.kind = T_END, .pos = p->pos, .len = 0, .ws_before = p->pos > start};
    if (p->pos >= p->len)
        return true;
    char c = p->q[p->pos];
    bool ok = true;
    if (is_name_start(c)) {
        size_t i = p->pos;
        while (i < p->len && (is_name_start(p->q[i]) || is_digit(p->q[i])))
            i++;
        p->t.kind = T_NAME;
        p->t.len = i - p->pos;
    } else if (c == '"' || c == '\'') {
        ok = lex_string(p);
    } else if (is_digit(c) || (c == '-' && p->pos + 1 < p->len && is_digit(p->q[p->pos + 1]))) {
        ok = lex_num(p);
    } else if (c == '-') {
        p->t.kind = T_MINUS;
        p->t.len = 1;
    } else if (c == '[' || c == ']') {
        p->t.kind = c == '[' ? T_LBRACK : T_RBRACK;
        p->t.len = 1;
    } else if (c == ':' || c == '~') {
        p->t.kind = T_OP;
        p->t.op = c == ':' ? PD_SQ_EQ : PD_SQ_SUB;
        p->t.len = 1;
    } else if (c == '>' || c == '<') {
        bool eq = p->pos + 1 < p->len && p->q[p->pos + 1] == '=';
        p->t.kind = T_OP;
        p->t.op = c == '>' ? (eq ? PD_SQ_GE : PD_SQ_GT) : (eq ? PD_SQ_LE : PD_SQ_LT);
        p->t.len = eq ? 2 : 1;
    } else {
        if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
            return fail(p, "Unexpected character '%c' at position %zu.", c, p->pos) == 0;
        return fail(p, "Unexpected byte 0x%02x at position %zu.", (unsigned)(unsigned char)c, p->pos) == 0;
    }
    if (ok)
        p->pos += p->t.len;
    return ok;
}

static bool
tok_is_word(const parser_t *p, const char *w)
{
    size_t n = strlen(w);
    return p->t.kind == T_NAME && p->t.len == n && pd_sq_str_eq(p->q + p->t.pos, n, w, n);
}

/* --- fields per resource --- */

typedef struct {
    const char *name;
    pd_sq_field_t field;
    bool numeric;
} field_def_t;

static const field_def_t intent_fields[] = {
    {"status", PD_SQF_STATUS, false},     {"amount", PD_SQF_AMOUNT, true},     {"currency", PD_SQF_CURRENCY, false},
    {"created", PD_SQF_CREATED, true},    {"customer", PD_SQF_CUSTOMER, false}, {"metadata", PD_SQF_METADATA, false},
    {NULL, 0, false},
};
static const field_def_t customer_fields[] = {
    {"email", PD_SQF_EMAIL, false},
    {"created", PD_SQF_CREATED, true},
    {"metadata", PD_SQF_METADATA, false},
    {NULL, 0, false},
};

static const char *
fields_list(pd_sq_resource_t res)
{
    return res == PD_SQ_CUSTOMERS ? "email, created, metadata['key']"
                                  : "status, amount, currency, created, customer, metadata['key']";
}

static const char *
resource_name(pd_sq_resource_t res)
{
    return res == PD_SQ_CUSTOMERS ? "customers" : res == PD_SQ_CHARGES ? "charges" : "payment intents";
}

static const field_def_t *
find_field(pd_sq_resource_t res, const char *name, size_t n)
{
    const field_def_t *t = res == PD_SQ_CUSTOMERS ? customer_fields : intent_fields;
    for (; t->name != NULL; t++)
        if (strlen(t->name) == n && memcmp(t->name, name, n) == 0)
            return t;
    return NULL;
}

static const char *
op_text(pd_sq_op_t op)
{
    static const char *const text[] = {":", "~", ">", "<", ">=", "<="};
    return text[op];
}

/* clause := [-] field op value */
static int
parse_clause(parser_t *p, pd_sq_clause_t *c)
{
    memset(c, 0, sizeof(*c));
    if (p->t.kind == T_MINUS) {
        c->negated = true;
        if (!next(p))
            return -1;
    }
    if (p->t.kind == T_END)
        return fail(p, "Expected a clause such as status:\"succeeded\" at position %zu, found the end of the query.",
                    p->t.pos);
    if (p->t.kind != T_NAME)
        return fail(p, "Expected a field name at position %zu, found '%.*s'. Searchable fields on %s: %s.", p->t.pos,
                    tok_shown(p), p->q + p->t.pos, resource_name(p->res), fields_list(p->res));
    const char *name = p->q + p->t.pos;
    size_t name_len = p->t.len, name_pos = p->t.pos;
    const field_def_t *f = find_field(p->res, name, name_len);
    if (f == NULL) {
        if (p->res == PD_SQ_CUSTOMERS && ((name_len == 4 && memcmp(name, "name", 4) == 0) ||
                                          (name_len == 5 && memcmp(name, "phone", 5) == 0) ||
                                          (name_len == 7 && memcmp(name, "address", 7) == 0)))
            return fail(p,
                        "Field '%.*s' (position %zu) cannot be searched: a customer's %.*s is stored encrypted. "
                        "Searchable fields on customers: %s.",
                        (int)name_len, name, name_pos, (int)name_len, name, fields_list(p->res));
        return fail(p, "Unknown field '%.*s' at position %zu. Searchable fields on %s: %s.", (int)(name_len > 40 ? 40 : name_len),
                    name, name_pos, resource_name(p->res), fields_list(p->res));
    }
    c->field = f->field;
    if (!next(p))
        return -1;
    if (f->field == PD_SQF_METADATA) {
        if (p->t.kind != T_LBRACK)
            return fail(p, "Expected '[' after metadata at position %zu: metadata['key'] names the key.", p->t.pos);
        if (!next(p))
            return -1;
        if (p->t.kind != T_STRING)
            return fail(p, "Expected a quoted key after metadata[ at position %zu, e.g. metadata['order_id'].", p->t.pos);
        if (p->str_len == 0 || p->str_len > PD_SQ_KEY_MAX || memchr(p->str, '\0', p->str_len) != NULL)
            return fail(p, "Invalid metadata key at position %zu: 1 to %d characters.", p->t.pos, PD_SQ_KEY_MAX);
        memcpy(c->key, p->str, p->str_len + 1);
        if (!next(p))
            return -1;
        if (p->t.kind != T_RBRACK)
            return fail(p, "Expected ']' after the metadata key at position %zu.", p->t.pos);
        if (!next(p))
            return -1;
    }
    if (p->t.kind != T_OP || p->t.ws_before)
        return fail(p, "Expected an operator (:, ~, >, <, >=, <=) right after '%.*s' at position %zu.", (int)name_len,
                    name, p->t.pos);
    c->op = p->t.op;
    size_t op_pos = p->t.pos;
    if (f->numeric && c->op == PD_SQ_SUB)
        return fail(p, "%.*s is a number: '~' (substring, position %zu) is for text fields.", (int)name_len, name,
                    op_pos);
    if (!f->numeric && c->op != PD_SQ_EQ && c->op != PD_SQ_SUB)
        return fail(p, "%.*s is text: '%s' (position %zu) compares numbers; use ':' or '~'.", (int)name_len, name,
                    op_text(c->op), op_pos);
    if (f->field == PD_SQF_EMAIL && c->op == PD_SQ_SUB)
        return fail(p,
                    "email supports exact match only (email:\"jenny@example.com\"), not '~' (position %zu): emails "
                    "are stored encrypted and found through a keyed index of the whole address, so a part of one "
                    "cannot be looked up.",
                    op_pos);
    if (!next(p))
        return -1;
    if (p->t.ws_before || (p->t.kind != T_STRING && p->t.kind != T_NUM)) {
        if (p->t.kind == T_NAME)
            return fail(p, "Expected a quoted value at position %zu, found '%.*s': quote text, e.g. %.*s%s\"%.*s\".",
                        p->t.pos, tok_shown(p), p->q + p->t.pos, (int)name_len, name, op_text(c->op), tok_shown(p),
                        p->q + p->t.pos);
        return fail(p, "Expected a value (a quoted string or a number) right after '%s' at position %zu.",
                    op_text(c->op), p->t.pos);
    }
    if (f->numeric) {
        if (p->t.kind == T_NUM) {
            c->num = p->t.num;
        } else {
            /* a quoted integer is an integer too */
            int64_t v = 0;
            size_t i = 0;
            bool neg = p->str_len > 0 && p->str[0] == '-';
            for (i = neg ? 1 : 0; i < p->str_len && is_digit(p->str[i]) && v <= (INT64_MAX - 9) / 10; i++)
                v = v * 10 + (p->str[i] - '0');
            if (p->str_len == (size_t)(neg ? 1 : 0) || i != p->str_len)
                return fail(p, "%.*s takes a whole number (position %zu), e.g. %.*s>1000.", (int)name_len, name,
                            p->t.pos, (int)name_len, name);
            c->num = neg ? -v : v;
        }
        c->is_num = true;
    } else {
        if (p->t.kind == T_NUM) {
            c->str_len = (size_t)snprintf(c->str, sizeof(c->str), "%lld", (long long)p->t.num);
        } else {
            memcpy(c->str, p->str, p->str_len + 1);
            c->str_len = p->str_len;
        }
        if (c->op == PD_SQ_SUB && c->str_len < 3)
            return fail(p, "A substring search ('~', position %zu) needs at least 3 characters.", op_pos);
    }
    return next(p) ? 0 : -1;
}

int
pd_sq_parse(const char *q, size_t len, pd_sq_resource_t res, pd_sq_t *out, char *err, size_t cap)
{
    parser_t p = {.q = q, .len = len, .err = err, .cap = cap, .res = res};
    memset(out, 0, sizeof(*out));
    if (cap > 0)
        err[0] = '\0';
    if (len > PD_SQ_QUERY_MAX)
        return fail(&p, "The query is longer than %d characters.", PD_SQ_QUERY_MAX);
    if (!next(&p))
        return -1;
    if (p.t.kind == T_END)
        return fail(&p, "The query is empty: give at least one clause, such as status:\"succeeded\".");
    int conn = 0; /* 0: none yet, 1: AND (or whitespace), 2: OR */
    for (;;) {
        if (out->n == PD_SQ_MAX_CLAUSES)
            return fail(&p, "Too many clauses: a query has at most %d (clause %d starts at position %zu).",
                        PD_SQ_MAX_CLAUSES, PD_SQ_MAX_CLAUSES + 1, p.t.pos);
        if (parse_clause(&p, &out->c[out->n]) != 0)
            return -1;
        out->n++;
        if (p.t.kind == T_END)
            break;
        int here = 1;
        size_t kw_pos = p.t.pos;
        if (tok_is_word(&p, "AND") || tok_is_word(&p, "OR")) {
            here = tok_is_word(&p, "OR") ? 2 : 1;
            if (!p.t.ws_before)
                return fail(&p, "Expected whitespace before %s at position %zu.", here == 2 ? "OR" : "AND", kw_pos);
            if (!next(&p))
                return -1;
            if (p.t.kind == T_END)
                return fail(&p, "Expected a clause after %s (position %zu), found the end of the query.",
                            here == 2 ? "OR" : "AND", kw_pos);
            if (!p.t.ws_before)
                return fail(&p, "Expected whitespace after %s at position %zu.", here == 2 ? "OR" : "AND", kw_pos);
        } else if (!p.t.ws_before) {
            return fail(&p, "Expected whitespace, AND or OR between clauses at position %zu, found '%.*s'.", p.t.pos,
                        tok_shown(&p), p.q + p.t.pos);
        }
        if (conn != 0 && conn != here)
            return fail(&p, "AND and OR cannot be combined in one query (position %zu): use one of them throughout.",
                        kw_pos);
        conn = here;
    }
    out->any = conn == 2;
    return 0;
}

static char
lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool
pd_sq_str_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

bool
pd_sq_str_contains(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen == 0)
        return true;
    for (size_t i = 0; i + nlen <= hlen; i++)
        if (pd_sq_str_eq(hay + i, nlen, needle, nlen))
            return true;
    return false;
}

bool
pd_sq_num_holds(const pd_sq_clause_t *c, int64_t v)
{
    switch (c->op) {
    case PD_SQ_EQ: return v == c->num;
    case PD_SQ_GT: return v > c->num;
    case PD_SQ_LT: return v < c->num;
    case PD_SQ_GE: return v >= c->num;
    case PD_SQ_LE: return v <= c->num;
    default: return false;
    }
}
