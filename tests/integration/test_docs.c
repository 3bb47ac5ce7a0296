/* Operator docs stay true: every configuration key payd knows is documented, and no
 * document links to a file that does not exist or lies outside the repository. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    int missing = 0, compared = 0;
    char *save = NULL;
    for (char *line = strtok_r(ref, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "| `", 3) != 0 && strncmp(line, "### [", 5) != 0)
            continue;
        compared++;
        if (strstr(doc, line) == NULL) {
            print_error("not in docs/configuration.md (regenerate with payd --config-reference): %s\n", line);
            missing++;
        }
    }
    free(ref);
    assert_int_equal(missing, 0);
    /* the reference has one line per key and section (84 when this was written): a
     * reference that printed nothing would otherwise pass */
    assert_true(compared >= 80);
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    static const size_t cap = 1 << 20;
    char *b = malloc(cap);
    size_t n = b != NULL ? fread(b, 1, cap - 1, f) : 0;
    fclose(f);
    if (b != NULL)
        b[n] = '\0';
    return b;
}

static bool
exists_in_repo(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", PAYD_SOURCE_DIR, rel);
    return strstr(rel, "..") == NULL && access(path, F_OK) == 0;
}

/* every markdown link [x](target) and every mention of a docs/ file names a file of the repository */
static int
check_links(const char *doc_rel)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", PAYD_SOURCE_DIR, doc_rel);
    char *text = slurp(path);
    assert_non_null(text);
    int bad = 0;
    for (const char *p = text; (p = strstr(p, "](")) != NULL; p += 2) {
        char target[512];
        snprintf(target, sizeof(target), "%.*s", (int)strcspn(p + 2, ")# "), p + 2);
        if (target[0] == '\0' || strncmp(target, "http://", 7) == 0 || strncmp(target, "https://", 8) == 0)
            continue;
        char rel[1024];
        const char *slash = strrchr(doc_rel, '/');
        snprintf(rel, sizeof(rel), "%.*s%s", slash ? (int)(slash - doc_rel + 1) : 0, doc_rel, target);
        if (!exists_in_repo(rel)) {
            print_error("%s links to %s, which is not a file of the repository\n", doc_rel, target);
            bad++;
        }
    }
    for (const char *p = text; (p = strstr(p, "docs/")) != NULL; p += 5) {
        char rel[256];
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_-./");
        snprintf(rel, sizeof(rel), "%.*s", (int)n, p);
        while (n > 0 && rel[n - 1] == '.')
            rel[--n] = '\0'; /* the end of a sentence */
        if ((strstr(rel, ".md") != NULL || strstr(rel, ".yaml") != NULL) && !exists_in_repo(rel)) {
            print_error("%s names %s, which does not exist\n", doc_rel, rel);
            bad++;
        }
    }
    for (const char *p = text; (p = strstr(p, "../")) != NULL; p += 3) {
        if (p > text && p[-1] == '.')
            continue; /* an ellipsis before a slash ("host,.../name"), not a parent directory */
        print_error("%s points outside the repository (../)\n", doc_rel);
        bad++;
        break;
    }
    free(text);
    return bad;
}

static void
docs_link_only_to_files_that_exist(void **state)
{
    (void)state;
    int bad = check_links("README.md") + check_links("docs/openapi.yaml");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/docs", PAYD_SOURCE_DIR);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int checked = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 3, ".md") != 0)
            continue;
        char rel[300];
        snprintf(rel, sizeof(rel), "docs/%s", e->d_name);
        bad += check_links(rel);
        checked++;
    }
    closedir(d);
    assert_true(checked >= 15); /* every markdown file of docs/, not a list that falls behind */
    assert_int_equal(bad, 0);
    /* the checker itself finds a dangling name */
    assert_false(exists_in_repo("docs/api.md"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(every_config_key_is_in_docs_configuration_md),
                                       cmocka_unit_test(docs_link_only_to_files_that_exist)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
