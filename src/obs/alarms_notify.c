/*
 * The notification of one alarm transition: an Alertmanager webhook body (version
 * "4", one alert per notification, grouped by alertname) and its signature.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "payd/alarms.h"
#include "payd/crypto.h"
#include "payd/json.h"
#include "payd/time.h"

static void
put_labels(pd_jw_t *w, const char *key, const pd_alarm_event_t *e)
{
    pd_jw_key(w, key);
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "alertname", e->alarm->def->name);
    pd_jw_kstr(w, "instance", e->instance);
    pd_jw_kstr(w, "severity", e->alarm->def->severity);
    pd_jw_obj_end(w);
}

static void
put_annotations(pd_jw_t *w, const char *key, const pd_alarm_event_t *e)
{
    pd_jw_key(w, key);
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "summary", e->alarm->def->summary);
    pd_jw_kstr(w, "description", e->alarm->reason);
    pd_jw_obj_end(w);
}

/* Alertmanager's fingerprint is a hash of the label set: here the first 16 hex
 * digits of SHA-256 over "name\0value\0" of the sorted labels */
static int
fingerprint(const pd_alarm_event_t *e, char out[17])
{
    char in[600];
    int n = snprintf(in, sizeof(in), "alertname%c%s%cinstance%c%s%cseverity%c%s%c", 0, e->alarm->def->name, 0, 0,
                     e->instance, 0, 0, e->alarm->def->severity, 0);
    if (n < 0 || (size_t)n >= sizeof(in))
        return PD_ERR_TOOBIG;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 8)
        return PD_ERR_CRYPTO;
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int
pd_alarm_payload(const pd_alarm_event_t *e, pd_buf_t *out)
{
    char fp[17], starts[32], ends[32], group_key[200], gen[700];
    int r;
    if ((r = fingerprint(e, fp)) != 0)
        return r;
    bool firing = e->alarm->state == PD_ALARM_ALARM;
    const char *status = firing ? "firing" : "resolved";
    pd_time_rfc3339(e->starts_at * 1000, starts, sizeof(starts));
    if (firing)
        snprintf(ends, sizeof(ends), "0001-01-01T00:00:00Z"); /* Alertmanager's "not ended" */
    else
        pd_time_rfc3339(e->ends_at * 1000, ends, sizeof(ends));
    snprintf(group_key, sizeof(group_key), "{}:{alertname=\"%s\"}", e->alarm->def->name);
    snprintf(gen, sizeof(gen), "%s/alarms", e->external_url);

    pd_jw_t w;
    pd_jw_init(&w, out);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "version", "4");
    pd_jw_kstr(&w, "groupKey", group_key);
    pd_jw_kint(&w, "truncatedAlerts", 0);
    pd_jw_kstr(&w, "status", status);
    pd_jw_kstr(&w, "receiver", "payd");
    pd_jw_key(&w, "groupLabels");
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "alertname", e->alarm->def->name);
    pd_jw_obj_end(&w);
    put_labels(&w, "commonLabels", e);
    put_annotations(&w, "commonAnnotations", e);
    pd_jw_kstr(&w, "externalURL", e->external_url);
    pd_jw_key(&w, "alerts");
    pd_jw_arr_begin(&w);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "status", status);
    put_labels(&w, "labels", e);
    put_annotations(&w, "annotations", e);
    pd_jw_kstr(&w, "startsAt", starts);
    pd_jw_kstr(&w, "endsAt", ends);
    pd_jw_kstr(&w, "generatorURL", gen);
    pd_jw_kstr(&w, "fingerprint", fp);
    pd_jw_obj_end(&w);
    pd_jw_arr_end(&w);
    pd_jw_obj_end(&w);
    return pd_jw_finish(&w);
}

int
pd_alarm_sign(const uint8_t *key, size_t keylen, pd_view_t body, char hex[65])
{
    uint8_t mac[32];
    int r = pd_hmac_sha256(key, keylen, body.p, body.len, mac);
    if (r != 0)
        return r;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return 0;
}

void
pd_alarm_url_shown(const char *url, size_t n, char *out, size_t cap)
{
    const char *sep = memmem(url, n, "://", 3);
    size_t host = sep != NULL ? (size_t)(sep - url) + 3 : 0;
    const char *at = memchr(url + host, '@', n - host), *slash = memchr(url + host, '/', n - host);
    if (at != NULL && (slash == NULL || at < slash))
        snprintf(out, cap, "%.*s***%.*s", (int)host, url, (int)(n - (size_t)(at - url)), at);
    else
        snprintf(out, cap, "%.*s", (int)n, url);
}
