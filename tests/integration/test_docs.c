/* Operator docs stay true: every configuration key payd knows is documented. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static void
every_config_key_is_in_docs_configuration_md(void **state)
{
    (void)state;
    const char *argv[] = {PAYD_BIN, "--config-reference", NULL};
    char *ref = NULL;
    assert_int_equal(pd_h_run(argv, &ref), 0);
    FILE *f = fopen(PAYD_SOURCE_DIR "/docs/configuration.md", "r");
    assert_non_null(f);
    static char doc[1 << 20];
    size_t n = fread(doc, 1, sizeof(doc) - 1, f);
    fclose(f);
    doc[n] = '\0';
    int missing = 0;
    char *save = NULL;
    for (char *line = strtok_r(ref, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "| `", 3) != 0 && strncmp(line, "### [", 5) != 0)
            continue;
        if (strstr(doc, line) == NULL) {
            print_error("not in docs/configuration.md (regenerate with payd --config-reference): %s\n", line);
            missing++;
        }
    }
    free(ref);
    assert_int_equal(missing, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(every_config_key_is_in_docs_configuration_md)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
