/*
 * Money: int64 minor units plus an ISO 4217 currency (lower case, as Stripe writes
 * it). No floating point anywhere near money.
 */
#ifndef PAYD_MONEY_H
#define PAYD_MONEY_H

#include <stdbool.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/error.h"

#define PD_AMOUNT_MAX 99999999 /* Stripe's limit for one amount, in minor units */

/* Digits after the decimal point (JPY 0, USD 2, KWD 3); -1 for an unknown currency. */
int pd_currency_exponent(pd_view_t code);
/* Lower-cases a supported currency into out[4]; PD_ERR_INVALID if unknown. */
int pd_currency_normalize(pd_view_t code, char out[4]) PD_WUR;
/* The supported currencies (lower case, alphabetical): how many, the i-th (NULL past
 * the end), and the index of a lower-case code (SIZE_MAX if unsupported). The metrics'
 * currency label takes its values from this list. */
size_t pd_currency_count(void);
const char *pd_currency_at(size_t i);
size_t pd_currency_index(const char *code);

typedef enum {
    PD_AMOUNT_OK = 0,
    PD_AMOUNT_NOT_INTEGER, /* floats, decimals, signs, exponents, spaces, empty */
    PD_AMOUNT_TOO_SMALL,   /* zero or negative */
    PD_AMOUNT_TOO_LARGE,   /* above PD_AMOUNT_MAX (or overflow) */
} pd_amount_error_t;

/* Parses an amount as it arrives in a request: text of decimal digits only. */
pd_amount_error_t pd_amount_parse(pd_view_t text, int64_t *out);
/* The Stripe error code for a parse failure: parameter_invalid_integer, amount_too_small, amount_too_large. */
const char *pd_amount_error_code(pd_amount_error_t e);

#endif
