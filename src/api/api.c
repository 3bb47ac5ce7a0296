/* The payments API service: configuration, routes, workers, dev bootstrap. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "api/internal.h"
#include "api/pii.h"
#include "payd/log.h"
#include "payd/backup_config.h"
#include "payd/file_store.h"
#include "payd/reports.h"
#include "payd/stream.h"

#define C(f) offsetof(pd_api_config_t, f)
static const pd_config_key_t keys[] = {
    {"rate_per_s", PD_CT_INT, C(rate_per_s), "1000", 1, 1000000, .help = "usage plan: requests per second per API key"},
    {"burst", PD_CT_INT, C(burst), "2000", 1, 10000000, .help = "usage plan: burst per API key"},
    {"monthly_quota", PD_CT_INT, C(monthly_quota), "1000000", 1, INT64_MAX,
     .help = "usage plan: requests per calendar month per API key"},
    {"auth_fail_limit", PD_CT_INT, C(auth_fail_limit), "10", 1, 1000000,
     .help = "failed authentications from one address within auth_fail_window_ms that lock it out"},
    {"auth_fail_window_ms", PD_CT_MS, C(auth_fail_window_ms), "5m", 1000, 86400000,
     .help = "window for counting failed authentications"},
    {"auth_lockout_ms", PD_CT_MS, C(auth_lockout_ms), "30m", 1000, 7 * 86400000LL,
     .help = "how long an address is locked out (429) after too many failed authentications"},
    {"card_decline_limit", PD_CT_INT, C(card_decline_limit), "5", 1, 1000000,
     .help = "card testing: declines of one card within card_decline_window_ms after which it is declined outright"},
    {"card_decline_window_ms", PD_CT_MS, C(card_decline_window_ms), "1h", 1000, 7 * 86400000LL,
     .help = "window for counting declines of one card (and how long it stays blocked)"},
    {"ip_card_limit", PD_CT_INT, C(ip_card_limit), "20", 1, 1000000,
     .help = "card testing: distinct cards one client address may use within ip_card_window_ms (then 429)"},
    {"ip_card_window_ms", PD_CT_MS, C(ip_card_window_ms), "10m", 1000, 7 * 86400000LL,
     .help = "window for counting distinct cards per address (and how long it stays blocked)"},
    {"merchant_decline_limit", PD_CT_INT, C(merchant_decline_limit), "250", 1, 100000000,
     .help = "card testing: declines of one merchant within merchant_decline_window_ms that pause its charges (429)"},
    {"merchant_decline_window_ms", PD_CT_MS, C(merchant_decline_window_ms), "10m", 1000, 7 * 86400000LL,
     .help = "window for counting a merchant's declines (and how long charges stay paused)"},
    {"idempotency_ttl_ms", PD_CT_MS, C(idempotency_ttl_ms), "24h", 3600000, 30LL * 86400000,
     .help = "how long idempotency keys and their responses are kept"},
    {"recovery_after_ms", PD_CT_MS, C(recovery_after_ms), "60s", 1000, 86400000,
     .help = "a payment still processing after this long is resolved by the recovery worker"},
    {"reconcile_interval_ms", PD_CT_MS, C(reconcile_interval_ms), "5m", 0, 86400000,
     .help = "how often payd's charges and refunds are reconciled with the processor's record (0: never)"},
    {"reconcile_window_ms", PD_CT_MS, C(reconcile_window_ms), "1h", 60000, 31LL * 86400000,
     .help = "each reconciliation pass compares what changed this long back"},
    {"webhook_timeout_ms", PD_CT_MS, C(webhook_timeout_ms), "10s", 100, 60000, .help = "timeout of one webhook attempt"},
    {"webhook_concurrency", PD_CT_INT, C(webhook_concurrency), "64", 1, 4096,
     .help = "webhook deliveries in flight at once"},
    {"webhook_concurrency_per_endpoint", PD_CT_INT, C(webhook_concurrency_per_endpoint), "8", 1, 4096,
     .help = "webhook deliveries in flight at once to one endpoint (an endpoint that hangs holds no more slots)"},
    {"webhook_live_rules_in_test", PD_CT_BOOL, C(webhook_live_rules_in_test), "false",
     .help = "apply the live-mode webhook rules to test mode too (https only, no private, loopback or link-local "
             "targets, at registration and at connect time): for hosts shared by several tenants"},
    {"refuse_card_numbers_in_text", PD_CT_BOOL, C(refuse_card_numbers_in_text), "true",
     .help = "refuse (400) a description, statement descriptor or metadata holding a Luhn-valid run of 13 to 19 "
             "digits: card data is not stored in free text"},
    {"search_scan_limit", PD_CT_INT, C(search_scan_limit), "10000", 10, 10000000,
     .help = "rows one search request (/v1/*/search) reads at most: past it the answer has what matched so far, "
             "has_more=true and a next_page that resumes the scan"},
};
#undef C

int
pd_api_config_register(pd_config_t *cfg, pd_api_config_t *c)
{
    int r = pd_config_add(cfg, "payments", keys, sizeof(keys) / sizeof(keys[0]), c);
    /* [cache] holds the limits of this section and the WAF's; registered here so the
     * programs that load [payments] know it too */
    if (r == 0)
        r = pd_cache_config_register(cfg);
    /* [stream] defaults to the cache's Redis: registered with it; [files] holds the report files */
    if (r == 0)
        r = pd_stream_config_register(cfg);
    if (r == 0)
        r = pd_files_config_register(cfg);
    return r != 0 ? r : pd_backup_config_register(cfg); /* payctl backup run's, and the backup alarm's */
}

#define API PD_L_API
#define BODY PD_ROUTE_BODY
const pd_route_t pd_api_routes[] = {
    {PD_M_POST, "/v1/payment_methods", pd_h_pm_create, API, BODY, &pd_schema_pm_create, "payment_methods"},
    {PD_M_GET, "/v1/payment_methods", pd_h_pm_list, API, 0, &pd_schema_list_pms, "payment_methods"},
    {PD_M_GET, "/v1/payment_methods/:id", pd_h_pm_get, API, 0, &pd_schema_retrieve, "payment_methods"},
    {PD_M_POST, "/v1/payment_methods/:id/attach", pd_h_pm_attach, API, BODY, &pd_schema_pm_attach, "payment_methods"},
    {PD_M_POST, "/v1/payment_methods/:id/detach", pd_h_pm_detach, API, BODY, &pd_schema_retrieve, "payment_methods"},
    {PD_M_POST, "/v1/customers", pd_h_customer_create, API, BODY, &pd_schema_customer_create, "customers"},
    {PD_M_GET, "/v1/customers", pd_h_customer_list, API, 0, &pd_schema_list_customers, "customers"},
    {PD_M_GET, "/v1/customers/search", pd_h_customer_search, API, 0, &pd_schema_search, "customers"},
    {PD_M_GET, "/v1/customers/:id", pd_h_customer_get, API, 0, &pd_schema_retrieve, "customers"},
    {PD_M_POST, "/v1/customers/:id", pd_h_customer_update, API, BODY, &pd_schema_customer_update, "customers"},
    {PD_M_DELETE, "/v1/customers/:id", pd_h_customer_delete, API, 0, &pd_schema_retrieve, "customers"},
    {PD_M_GET, "/v1/customers/:id/payment_methods", pd_h_customer_pm_list, API, 0, &pd_schema_list_customer_pms, "customers"},
    {PD_M_POST, "/v1/setup_intents", pd_h_seti_create, API, BODY, &pd_schema_seti_create, "setup_intents"},
    {PD_M_GET, "/v1/setup_intents", pd_h_seti_list, API, 0, &pd_schema_list_setis, "setup_intents"},
    {PD_M_GET, "/v1/setup_intents/:id", pd_h_seti_get, API, 0, &pd_schema_retrieve, "setup_intents"},
    {PD_M_POST, "/v1/setup_intents/:id", pd_h_seti_update, API, BODY, &pd_schema_seti_update, "setup_intents"},
    {PD_M_POST, "/v1/setup_intents/:id/confirm", pd_h_seti_confirm, API, BODY, &pd_schema_seti_confirm, "setup_intents"},
    {PD_M_POST, "/v1/setup_intents/:id/cancel", pd_h_seti_cancel, API, BODY, &pd_schema_seti_cancel, "setup_intents"},
    {PD_M_POST, "/v1/tokens", pd_h_token_create, API, BODY, &pd_schema_token_create, "tokens"},
    {PD_M_POST, "/v1/payment_intents", pd_h_pi_create, API, BODY, &pd_schema_pi_create, "payment_intents"},
    {PD_M_GET, "/v1/payment_intents", pd_h_pi_list, API, 0, &pd_schema_list_pis, "payment_intents"},
    {PD_M_GET, "/v1/payment_intents/search", pd_h_pi_search, API, 0, &pd_schema_search, "payment_intents"},
    {PD_M_GET, "/v1/payment_intents/:id", pd_h_pi_get, API, 0, &pd_schema_retrieve, "payment_intents"},
    {PD_M_POST, "/v1/payment_intents/:id", pd_h_pi_update, API, BODY, &pd_schema_pi_update, "payment_intents"},
    {PD_M_POST, "/v1/payment_intents/:id/confirm", pd_h_pi_confirm, API, BODY, &pd_schema_pi_confirm, "payment_intents"},
    {PD_M_POST, "/v1/payment_intents/:id/capture", pd_h_pi_capture, API, BODY, &pd_schema_pi_capture, "payment_intents"},
    {PD_M_POST, "/v1/payment_intents/:id/cancel", pd_h_pi_cancel, API, BODY, &pd_schema_pi_cancel, "payment_intents"},
    {PD_M_GET, "/v1/charges", pd_h_charge_list, API, 0, &pd_schema_list_charges, "charges"},
    {PD_M_GET, "/v1/charges/search", pd_h_charge_search, API, 0, &pd_schema_search, "charges"},
    {PD_M_GET, "/v1/charges/:id", pd_h_charge_get, API, 0, &pd_schema_retrieve, "charges"},
    {PD_M_POST, "/v1/refunds", pd_h_refund_create, API, BODY, &pd_schema_refund_create, "refunds"},
    {PD_M_GET, "/v1/refunds", pd_h_refund_list, API, 0, &pd_schema_list_disputes, "refunds"},
    {PD_M_GET, "/v1/refunds/:id", pd_h_refund_get, API, 0, &pd_schema_retrieve, "refunds"},
    {PD_M_GET, "/v1/balance", pd_h_balance_get, API, 0, &pd_schema_retrieve, "balance"},
    {PD_M_GET, "/v1/balance_transactions", pd_h_btxn_list, API, 0, &pd_schema_list, "balance"},
    {PD_M_GET, "/v1/events", pd_h_event_list, API, 0, &pd_schema_list_events, "events"},
    {PD_M_GET, "/v1/events/:id", pd_h_event_get, API, 0, &pd_schema_retrieve, "events"},
    {PD_M_POST, "/v1/webhook_endpoints", pd_h_we_create, API, BODY, &pd_schema_we_create, "webhook_endpoints"},
    {PD_M_GET, "/v1/webhook_endpoints", pd_h_we_list, API, 0, &pd_schema_list, "webhook_endpoints"},
    {PD_M_GET, "/v1/webhook_endpoints/:id", pd_h_we_get, API, 0, &pd_schema_retrieve, "webhook_endpoints"},
    {PD_M_POST, "/v1/webhook_endpoints/:id", pd_h_we_update, API, BODY, &pd_schema_we_update, "webhook_endpoints"},
    {PD_M_DELETE, "/v1/webhook_endpoints/:id", pd_h_we_delete, API, 0, &pd_schema_retrieve, "webhook_endpoints"},
    {PD_M_POST, "/v1/reporting/report_runs", pd_h_report_run_create, API, BODY, &pd_schema_report_run_create,
     "reporting"},
    {PD_M_GET, "/v1/reporting/report_runs", pd_h_report_run_list, API, 0, &pd_schema_list_report_runs, "reporting"},
    {PD_M_GET, "/v1/reporting/report_runs/:id", pd_h_report_run_get, API, 0, &pd_schema_retrieve, "reporting"},
    {PD_M_GET, "/v1/reporting/report_types", pd_h_report_type_list, API, 0, &pd_schema_retrieve, "reporting"},
    {PD_M_GET, "/v1/reporting/report_types/:id", pd_h_report_type_get, API, 0, &pd_schema_retrieve, "reporting"},
    {PD_M_GET, "/v1/disputes", pd_h_dispute_list, API, 0, &pd_schema_list_disputes, "disputes"},
    {PD_M_GET, "/v1/disputes/:id", pd_h_dispute_get, API, 0, &pd_schema_retrieve, "disputes"},
    {PD_M_POST, "/v1/disputes/:id", pd_h_dispute_update, API, BODY, &pd_schema_dispute_update, "disputes"},
    {PD_M_POST, "/v1/disputes/:id/close", pd_h_dispute_close, API, BODY, &pd_schema_retrieve, "disputes"},
    {PD_M_GET, "/v1/files", pd_h_file_list, API, 0, &pd_schema_list_files, "files"},
    {PD_M_GET, "/v1/files/:id", pd_h_file_get, API, 0, &pd_schema_retrieve, "files"},
    {PD_M_GET, "/v1/files/:id/contents", pd_h_file_contents, API, 0, &pd_schema_retrieve, "files"},
};
const size_t pd_api_routes_n = sizeof(pd_api_routes) / sizeof(pd_api_routes[0]);

int
pd_api_new(pd_api_t **out, const pd_api_deps_t *deps)
{
    pd_api_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return PD_ERR_NOMEM;
    a->cfg = deps->config;
    a->store = deps->store;
    a->vault = deps->vault;
    a->proc = deps->processor;
    snprintf(a->data_dir, sizeof(a->data_dir), "%s", deps->data_dir);
    char err[512] = "";
    int r = pd_cache_open(&a->limits, 1000000, err, sizeof(err));
    if (r == 0)
        r = pd_cache_metrics_attach(a->limits);
    if (r != 0) {
        pd_log_error("cannot open the cache", PD_LS("reason", err), PD_LERR(r));
        free(a);
        return r;
    }
    *out = a;
    return 0;
}

int
pd_api_register(pd_api_t *a, pd_router_t *rt, pd_server_t *srv)
{
    int r = pd_router_add(rt, pd_api_routes, pd_api_routes_n);
    if (r != 0)
        return r;
    pd_server_set_user(srv, a);
    r = pd_server_add_filter(srv, PD_STAGE_EARLY, pd_auth_filter, a);
    if (r == 0)
        r = pd_server_add_probe(srv, "cache", pd_cache_ready, a->limits); /* a note only: limits fail open */
    if (r == 0)
        r = pd_server_add_filter(srv, PD_STAGE_PARSED, pd_unsupported_filter, a);
    return r != 0 ? r : pd_server_add_filter(srv, PD_STAGE_PARSED, pd_free_text_filter, a);
}

int
pd_api_start(pd_api_t *a)
{
    int minute;
    if (pd_backup_schedule_parse(pd_backup_config()->schedule, &minute) != 0) {
        pd_log_error("[backup] schedule is not a daily time HH:MM (local) or off",
                     PD_LS("schedule", pd_backup_config()->schedule), PD_LS("setting", "backup.schedule"));
        return PD_ERR_CONFIG;
    }
    uint8_t pepper[256];
    size_t pl = 0;
    int r = pd_vault_link_pepper(a->vault, pepper, sizeof(pepper), &pl);
    if (r == 0)
        r = pd_render_set_client_secret_key(pepper, pl);
    if (r == 0)
        r = pd_pii_set_index_key(pepper, pl); /* customers' email index (pii.c) */
    OPENSSL_cleanse(pepper, sizeof(pepper));
    if (r != 0)
        return r;
    pd_relay_opts_t ro = {.store = a->store,
                          .vault = a->vault->api,
                          .max_in_flight = (int)a->cfg->webhook_concurrency,
                          .per_endpoint = (int)a->cfg->webhook_concurrency_per_endpoint,
                          .timeout_ms = a->cfg->webhook_timeout_ms,
                          .live_rules_in_test = a->cfg->webhook_live_rules_in_test};
    r = pd_relay_start(&a->relay, &ro);
    pd_recovery_opts_t wo = {.store = a->store,
                             .proc = a->proc,
                             .relay = a->relay,
                             .recovery_after_ms = a->cfg->recovery_after_ms,
                             .idempotency_ttl_ms = a->cfg->idempotency_ttl_ms,
                             .reconcile_interval_ms = a->cfg->reconcile_interval_ms,
                             .reconcile_window_ms = a->cfg->reconcile_window_ms};
    if (r == 0 && (r = pd_recovery_start(&a->recovery, &wo)) != 0) {
        pd_relay_stop(a->relay);
        a->relay = NULL;
    }
    const pd_files_config_t *fc = pd_files_config();
    if (r == 0 && (r = pd_files_open(&a->files, fc, a->data_dir, a->store, a->vault->api)) == 0) {
        pd_reports_opts_t po = {.store = a->store,
                                .files = a->files,
                                .relay = a->relay,
                                .report_expiry_ms = fc->report_expiry_ms,
                                .janitor_interval_ms = fc->janitor_interval_ms};
        r = pd_reports_start(&a->reports, &po);
    }
    if (r != 0) {
        pd_files_close(a->files);
        a->files = NULL;
        pd_recovery_stop(a->recovery);
        a->recovery = NULL;
        pd_relay_stop(a->relay);
        a->relay = NULL;
        return r;
    }
    /* with reads off the loops a request cannot read the key epoch itself */
    if (r == 0 && pd_store_reads_offloaded(a->store) && (r = pd_key_epoch_start(&a->key_epoch, a->store)) != 0) {
        pd_reports_stop(a->reports);
        a->reports = NULL;
        pd_files_close(a->files);
        a->files = NULL;
        pd_recovery_stop(a->recovery);
        a->recovery = NULL;
        pd_relay_stop(a->relay);
        a->relay = NULL;
    }
    a->workers_started = r == 0;
    return r;
}

void
pd_api_stop(pd_api_t *a)
{
    if (a == NULL || !a->workers_started)
        return;
    pd_key_epoch_stop(a->key_epoch);
    a->key_epoch = NULL;
    pd_reports_stop(a->reports);
    a->reports = NULL;
    pd_files_close(a->files);
    a->files = NULL;
    pd_recovery_stop(a->recovery);
    a->recovery = NULL;
    pd_relay_stop(a->relay);
    a->relay = NULL;
    a->workers_started = false;
}

void
pd_api_kick(pd_api_t *a)
{
    pd_relay_kick(a->relay);
}

void
pd_api_free(pd_api_t *a)
{
    if (a == NULL)
        return;
    pd_api_stop(a);
    pd_cache_free(a->limits);
    free(a);
}

/* --- dev bootstrap --- */

static int
read_credentials(const char *path, pd_merchant_keys_t *out)
{
    json_error_t e;
    json_t *o = json_load_file(path, 0, &e);
    if (o == NULL)
        return PD_ERR_INVALID;
    const char *sk = json_string_value(json_object_get(o, "secret_key"));
    const char *pk = json_string_value(json_object_get(o, "publishable_key"));
    const char *m = json_string_value(json_object_get(o, "merchant_id"));
    int r = sk && pk && m ? 0 : PD_ERR_INVALID;
    if (r == 0) {
        snprintf(out->secret_key, sizeof(out->secret_key), "%s", sk);
        snprintf(out->publishable_key, sizeof(out->publishable_key), "%s", pk);
        snprintf(out->merchant_id, sizeof(out->merchant_id), "%s", m);
    }
    json_decref(o);
    return r;
}

int
pd_api_dev_bootstrap(pd_store_t *store, pd_vault_link_t *vault, const char *data_dir, pd_merchant_keys_t *out)
{
    char path[4200], tmp[4300];
    uint8_t pepper[256];
    size_t pl = 0;
    int r;
    snprintf(path, sizeof(path), "%s/credentials.json", data_dir);
    if (access(path, F_OK) == 0)
        return read_credentials(path, out);
    if ((r = pd_vault_link_pepper(vault, pepper, sizeof(pepper), &pl)) != 0)
        return r;
    r = pd_api_create_merchant(store, pepper, pl, "Demo merchant", false, out);
    OPENSSL_cleanse(pepper, sizeof(pepper));
    if (r != 0)
        return r;
    json_t *o = json_pack("{s:s,s:s,s:s}", "secret_key", out->secret_key, "publishable_key", out->publishable_key,
                          "merchant_id", out->merchant_id);
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && text != NULL && write(fd, text, strlen(text)) == (ssize_t)strlen(text) &&
              write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (text != NULL) {
        OPENSSL_cleanse(text, strlen(text));
        free(text);
    }
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return PD_ERR_IO;
    }
    pd_log_info("dev mode: demo merchant created", PD_LS("merchant", out->merchant_id), PD_LS("credentials", path));
    return 0;
}
