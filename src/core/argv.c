/* Argument lists for exec (payd/argv.h). */
#include <stdlib.h>
#include <string.h>

#include "payd/argv.h"

char **
pd_argv_dup(const char *const *in)
{
    size_t n = 0;
    while (in[n] != NULL)
        n++;
    char **out = calloc(n + 1, sizeof(*out));
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if ((out[i] = strdup(in[i])) == NULL) {
            pd_argv_free(out);
            return NULL;
        }
    }
    return out;
}

void
pd_argv_free(char **argv)
{
    if (argv == NULL)
        return;
    for (size_t i = 0; argv[i] != NULL; i++)
        free(argv[i]);
    free(argv);
}
