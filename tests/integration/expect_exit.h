/* A payd run that must end at once: its exit code and a line of its output. Include after cmocka.h. */
#ifndef PAYD_TEST_EXPECT_EXIT_H
#define PAYD_TEST_EXPECT_EXIT_H

#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* runs payd with arguments (NULL-terminated, at most 30), expects exit code `want` and `needle`
 * in its output */
static inline void
expect_exit(const char *const *args, int want, const char *needle)
{
    const char *argv[32] = {PAYD_BIN};
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char *out = NULL;
    int rc = pd_h_run(argv, &out);
    if (rc != want || strstr(out, needle) == NULL)
        fail_msg("exit %d (want %d), output:\n%s\n(wanted to see: %s)", rc, want, out, needle);
    free(out);
}

#endif
