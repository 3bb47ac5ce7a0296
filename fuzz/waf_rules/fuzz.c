/* Fuzzes the WAF rule-file parser: operators write these files by hand. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "payd/waf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pd_waf_rule_t *rules = NULL;
    size_t n = 0;
    char err[256];
    err[0] = '\0';
    int r = pd_waf_rules_parse((const char *)data, size, "fuzz", &rules, &n, err, sizeof(err));
    if (r != 0 && err[0] == '\0')
        abort(); /* a refusal always says why */
    for (size_t i = 0; r == 0 && i < n; i++)
        if (rules[i].pattern == NULL || rules[i].id == 0 || strlen(rules[i].family) == 0)
            abort();
    pd_waf_rules_free(rules, n);
    return 0;
}
