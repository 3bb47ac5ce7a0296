/* payctl alarms list: GET /alarms of payd's admin listener (--admin URL, default http://[admin] listen). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cmd/payctl.h"
#include "payd/buf.h"

#define BODY_MAX (1024u * 1024)

static size_t
collect(void *p, size_t size, size_t n, void *arg)
{
    pd_buf_t *b = arg;
    return pd_buf_put(b, p, size * n) == 0 ? size * n : 0;
}

/* a string member, "" when absent */
static const char *
str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static int
cmd_alarms_list(payctl_t *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    char url[1200];
    const char *base = ctx->admin_url;
    if (base == NULL || base[0] == '\0') {
        if (ctx->admin.listen == NULL || ctx->admin.listen[0] == '\0')
            return payctl_fail(ctx, "no admin listener: [admin] listen is empty; give --admin URL");
        snprintf(url, sizeof(url), "http://%s/alarms", ctx->admin.listen);
    } else {
        if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
            return payctl_fail(ctx, "--admin %s: not an http:// or https:// URL", base);
        size_t n = strlen(base);
        while (n > 0 && base[n - 1] == '/')
            n--;
        snprintf(url, sizeof(url), "%.*s/alarms", (int)n, base);
    }
    CURL *c = curl_easy_init();
    if (c == NULL)
        return payctl_fail(ctx, "out of memory");
    pd_buf_t b;
    pd_buf_init(&b, BODY_MAX);
    long status = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    int rc = 0;
    const char *text = NULL;
    if (cc != CURLE_OK) {
        rc = payctl_fail(ctx, "cannot reach payd's admin listener at %s: %s", url, curl_easy_strerror(cc));
        goto out;
    }
    if (pd_buf_cstr(&b, &text) != 0) {
        rc = payctl_fail(ctx, "the answer of %s is too large", url);
        goto out;
    }
    if (status != 200) {
        rc = payctl_fail(ctx, "%s answered %ld: %.300s", url, status, text);
        goto out;
    }
    json_error_t e;
    json_t *arr = json_loads(text, 0, &e);
    if (!json_is_array(arr)) {
        json_decref(arr);
        rc = payctl_fail(ctx, "%s did not answer a JSON array", url);
        goto out;
    }
    if (ctx->json) {
        char *s = json_dumps(arr, JSON_COMPACT);
        printf("%s\n", s ? s : "[]");
        free(s);
    } else {
        printf("%-12s %-18s %12s %10s  %-24s %s\n", "NAME", "STATE", "VALUE", "THRESHOLD", "SINCE", "REASON");
        size_t i;
        json_t *a;
        json_array_foreach(arr, i, a) {
            char v[32] = "-";
            json_t *jv = json_object_get(a, "value");
            if (json_is_number(jv))
                snprintf(v, sizeof(v), "%.6g", json_number_value(jv));
            printf("%-12s %-18s %12s %10.6g  %-24s %s\n", str(a, "name"), str(a, "state"), v,
                   json_number_value(json_object_get(a, "threshold")),
                   str(a, "since"), str(a, "reason"));
        }
    }
    json_decref(arr);
out:
    pd_buf_free(&b);
    return rc;
}

const payctl_cmd_t payctl_alarms_cmds[] = {
    {"alarms", "list", "", "the alarms of a running payd and their states (GET /alarms on --admin URL)",
     cmd_alarms_list},
};
const size_t payctl_alarms_ncmds = sizeof(payctl_alarms_cmds) / sizeof(payctl_alarms_cmds[0]);
