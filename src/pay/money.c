#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "payd/money.h"

/* ISO 4217 currencies Stripe settles, with their minor-unit exponents */
static const struct {
    char code[4];
    int exp;
} currencies[] = {
    {"aed", 2}, {"afn", 2}, {"all", 2}, {"amd", 2}, {"ang", 2}, {"aoa", 2}, {"ars", 2}, {"aud", 2}, {"awg", 2},
    {"azn", 2}, {"bam", 2}, {"bbd", 2}, {"bdt", 2}, {"bgn", 2}, {"bhd", 3}, {"bif", 0}, {"bmd", 2}, {"bnd", 2},
    {"bob", 2}, {"brl", 2}, {"bsd", 2}, {"bwp", 2}, {"byn", 2}, {"bzd", 2}, {"cad", 2}, {"cdf", 2}, {"chf", 2},
    {"clp", 0}, {"cny", 2}, {"cop", 2}, {"crc", 2}, {"cve", 2}, {"czk", 2}, {"djf", 0}, {"dkk", 2}, {"dop", 2},
    {"dzd", 2}, {"egp", 2}, {"etb", 2}, {"eur", 2}, {"fjd", 2}, {"fkp", 2}, {"gbp", 2}, {"gel", 2}, {"gip", 2},
    {"gmd", 2}, {"gnf", 0}, {"gtq", 2}, {"gyd", 2}, {"hkd", 2}, {"hnl", 2}, {"htg", 2}, {"huf", 2}, {"idr", 2},
    {"ils", 2}, {"inr", 2}, {"iqd", 3}, {"isk", 0}, {"jmd", 2}, {"jod", 3}, {"jpy", 0}, {"kes", 2}, {"kgs", 2},
    {"khr", 2}, {"kmf", 0}, {"krw", 0}, {"kwd", 3}, {"kyd", 2}, {"kzt", 2}, {"lak", 2}, {"lbp", 2}, {"lkr", 2},
    {"lrd", 2}, {"lsl", 2}, {"lyd", 3}, {"mad", 2}, {"mdl", 2}, {"mga", 0}, {"mkd", 2}, {"mmk", 2}, {"mnt", 2},
    {"mop", 2}, {"mur", 2}, {"mvr", 2}, {"mwk", 2}, {"mxn", 2}, {"myr", 2}, {"mzn", 2}, {"nad", 2}, {"ngn", 2},
    {"nio", 2}, {"nok", 2}, {"npr", 2}, {"nzd", 2}, {"omr", 3}, {"pab", 2}, {"pen", 2}, {"pgk", 2}, {"php", 2},
    {"pkr", 2}, {"pln", 2}, {"pyg", 0}, {"qar", 2}, {"ron", 2}, {"rsd", 2}, {"rub", 2}, {"rwf", 0}, {"sar", 2},
    {"sbd", 2}, {"scr", 2}, {"sek", 2}, {"sgd", 2}, {"shp", 2}, {"sle", 2}, {"sos", 2}, {"srd", 2}, {"szl", 2},
    {"thb", 2}, {"tjs", 2}, {"tnd", 3}, {"top", 2}, {"try", 2}, {"ttd", 2}, {"twd", 2}, {"tzs", 2}, {"uah", 2},
    {"ugx", 0}, {"usd", 2}, {"uyu", 2}, {"uzs", 2}, {"vnd", 0}, {"vuv", 0}, {"wst", 2}, {"xaf", 0}, {"xcd", 2},
    {"xof", 0}, {"xpf", 0}, {"yer", 2}, {"zar", 2}, {"zmw", 2},
};

int
pd_currency_normalize(pd_view_t code, char out[4])
{
    if (code.len != 3)
        return PD_ERR_INVALID;
    char lc[4];
    for (int i = 0; i < 3; i++) {
        if (!isalpha(code.p[i]))
            return PD_ERR_INVALID;
        lc[i] = (char)tolower(code.p[i]);
    }
    lc[3] = '\0';
    for (size_t i = 0; i < sizeof(currencies) / sizeof(currencies[0]); i++) {
        if (memcmp(currencies[i].code, lc, 4) == 0) {
            memcpy(out, lc, 4);
            return 0;
        }
    }
    return PD_ERR_INVALID;
}

#define NCURRENCIES (sizeof(currencies) / sizeof(currencies[0]))

size_t
pd_currency_count(void)
{
    return NCURRENCIES;
}

const char *
pd_currency_at(size_t i)
{
    return i < NCURRENCIES ? currencies[i].code : NULL;
}

/* the table is in alphabetical order: a binary search */
size_t
pd_currency_index(const char *code)
{
    size_t lo = 0, hi = NCURRENCIES;
    while (code != NULL && lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strncmp(currencies[mid].code, code, 4);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

int
pd_currency_exponent(pd_view_t code)
{
    char lc[4];
    if (pd_currency_normalize(code, lc) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(currencies) / sizeof(currencies[0]); i++)
        if (memcmp(currencies[i].code, lc, 4) == 0)
            return currencies[i].exp;
    return -1;
}

pd_amount_error_t
pd_amount_parse(pd_view_t text, int64_t *out)
{
    int64_t v = 0;
    if (text.len == 0)
        return PD_AMOUNT_NOT_INTEGER;
    if (text.p[0] == '-') {
        /* a well-formed negative integer is "too small", anything else is not an integer */
        for (size_t i = 1; i < text.len; i++)
            if (!isdigit(text.p[i]))
                return PD_AMOUNT_NOT_INTEGER;
        return text.len > 1 ? PD_AMOUNT_TOO_SMALL : PD_AMOUNT_NOT_INTEGER;
    }
    for (size_t i = 0; i < text.len; i++) {
        if (!isdigit(text.p[i]))
            return PD_AMOUNT_NOT_INTEGER;
        if (v > PD_AMOUNT_MAX)
            continue; /* keep scanning for non-digits; the value is already too large */
        v = v * 10 + (text.p[i] - '0');
    }
    if (v > PD_AMOUNT_MAX)
        return PD_AMOUNT_TOO_LARGE;
    if (v < 1)
        return PD_AMOUNT_TOO_SMALL;
    *out = v;
    return PD_AMOUNT_OK;
}

const char *
pd_amount_error_code(pd_amount_error_t e)
{
    switch (e) {
    case PD_AMOUNT_TOO_SMALL: return "amount_too_small";
    case PD_AMOUNT_TOO_LARGE: return "amount_too_large";
    default: return "parameter_invalid_integer";
    }
}
