#include <string.h>

#include "payd/vault.h"

static const char *const names[] = {"api", "processor", "admin", "rotation"};

const char *
pd_principal_name(unsigned p)
{
    for (unsigned i = 0; i < 4; i++)
        if (p == (1u << i))
            return names[i];
    return "unknown";
}

unsigned
pd_principal_parse(const char *s)
{
    for (unsigned i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return 1u << i;
    return 0;
}
