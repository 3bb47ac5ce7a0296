/* The parameter model of every route: the WAF's positive model and the API's validation. */
#include <stdint.h>

#include "api/internal.h"

#define AMOUNT(name, flags) {name, PD_FT_INT, flags, INT64_MIN + 1, INT64_MAX}
#define EXPAND {"expand", PD_FT_LIST, 0, 0, 0, NULL, 20}

static const char *const card_only[] = {"card", NULL};
static const char *const capture_methods[] = {"automatic", "automatic_async", "manual", NULL};
static const char *const cancel_reasons[] = {"duplicate", "fraudulent", "requested_by_customer", "abandoned", NULL};
static const char *const refund_reasons[] = {"duplicate", "fraudulent", "requested_by_customer", NULL};
static const char *const redirects[] = {"always", "never", NULL};
static const char *const future_usages[] = {"on_session", "off_session", NULL};
static const char *const event_types[] = {
    "*",
    "payment_intent.created",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.amount_capturable_updated",
    "payment_intent.canceled",
    "payment_intent.processing",
    "charge.succeeded",
    "charge.failed",
    "charge.captured",
    "charge.refunded",
    "charge.updated",
    "refund.created",
    "payment_method.attached",
    "payment_method.detached",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "setup_intent.created",
    "setup_intent.succeeded",
    "setup_intent.setup_failed",
    "setup_intent.canceled",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "reporting.report_run.succeeded",
    "reporting.report_run.failed",
    NULL,
};

#define CARD_FIELDS                                                                                                    \
    {"card[number]", PD_FT_DIGITS, 0, 12, 19}, {"card[exp_month]", PD_FT_INT, 0, 1, 12},                              \
        {"card[exp_year]", PD_FT_INT, 0, 0, 9999}, {"card[cvc]", PD_FT_DIGITS, 0, 3, 4}

static const pd_field_t pm_create[] = {
    {"type", PD_FT_ENUM, 0, .choices = card_only},
    CARD_FIELDS,
    {"card[token]", PD_FT_ID, 0},
    {"billing_details[name]", PD_FT_STRING, PD_FF_UNSET, 0, 256},
    {"billing_details[email]", PD_FT_EMAIL, PD_FF_UNSET},
    {"billing_details[phone]", PD_FT_STRING, PD_FF_UNSET, 0, 32},
    {"metadata", PD_FT_MAP, PD_FF_UNSET},
    EXPAND,
};
const pd_schema_t pd_schema_pm_create = PD_SCHEMA(pm_create);

static const pd_field_t token_create[] = {
    CARD_FIELDS,
    {"card[name]", PD_FT_STRING, PD_FF_UNSET, 0, 256},
    EXPAND,
};
const pd_schema_t pd_schema_token_create = PD_SCHEMA(token_create);

static const pd_field_t pi_create[] = {
    AMOUNT("amount", PD_FF_REQUIRED),
    {"currency", PD_FT_CURRENCY, PD_FF_REQUIRED},
    {"payment_method", PD_FT_ID, 0},
    {"confirm", PD_FT_BOOL, 0},
    {"capture_method", PD_FT_ENUM, 0, .choices = capture_methods},
    {"description", PD_FT_STRING, PD_FF_UNSET, 0, 1000},
    {"metadata", PD_FT_MAP, PD_FF_UNSET},
    {"statement_descriptor", PD_FT_STRING, PD_FF_UNSET, 1, 22},
    {"statement_descriptor_suffix", PD_FT_STRING, PD_FF_UNSET, 1, 22},
    {"receipt_email", PD_FT_EMAIL, PD_FF_UNSET},
    {"payment_method_types", PD_FT_LIST, 0, .choices = card_only, .max_items = 1},
    {"automatic_payment_methods[enabled]", PD_FT_BOOL, 0},
    {"automatic_payment_methods[allow_redirects]", PD_FT_ENUM, 0, .choices = redirects},
    {"return_url", PD_FT_URL, 0},
    {"off_session", PD_FT_BOOL, 0},
    {"customer", PD_FT_ID, 0},
    {"setup_future_usage", PD_FT_ENUM, 0, .choices = future_usages},
    EXPAND,
};
const pd_schema_t pd_schema_pi_create = PD_SCHEMA(pi_create);

static const pd_field_t pi_update[] = {
    AMOUNT("amount", 0),
    {"currency", PD_FT_CURRENCY, 0},
    {"payment_method", PD_FT_ID, 0},
    {"capture_method", PD_FT_ENUM, 0, .choices = capture_methods},
    {"description", PD_FT_STRING, PD_FF_UNSET, 0, 1000},
    {"metadata", PD_FT_MAP, PD_FF_UNSET},
    {"statement_descriptor", PD_FT_STRING, PD_FF_UNSET, 1, 22},
    {"receipt_email", PD_FT_EMAIL, PD_FF_UNSET},
    {"customer", PD_FT_ID, PD_FF_UNSET},
    {"setup_future_usage", PD_FT_ENUM, PD_FF_UNSET, .choices = future_usages},
    EXPAND,
};
const pd_schema_t pd_schema_pi_update = PD_SCHEMA(pi_update);

static const pd_field_t pi_confirm[] = {
    {"payment_method", PD_FT_ID, 0},
    {"receipt_email", PD_FT_EMAIL, PD_FF_UNSET},
    {"return_url", PD_FT_URL, 0},
    {"capture_method", PD_FT_ENUM, 0, .choices = capture_methods},
    {"off_session", PD_FT_BOOL, 0},
    {"setup_future_usage", PD_FT_ENUM, PD_FF_UNSET, .choices = future_usages},
    EXPAND,
};
const pd_schema_t pd_schema_pi_confirm = PD_SCHEMA(pi_confirm);

static const pd_field_t pi_capture[] = {
    AMOUNT("amount_to_capture", 0),
    {"metadata", PD_FT_MAP, PD_FF_UNSET},
    {"statement_descriptor", PD_FT_STRING, PD_FF_UNSET, 1, 22},
    EXPAND,
};
const pd_schema_t pd_schema_pi_capture = PD_SCHEMA(pi_capture);

static const pd_field_t pi_cancel[] = {
    {"cancellation_reason", PD_FT_ENUM, 0, .choices = cancel_reasons},
    EXPAND,
};
const pd_schema_t pd_schema_pi_cancel = PD_SCHEMA(pi_cancel);

#define LIST_FIELDS                                                                                                    \
    {"limit", PD_FT_INT, 0, 1, 100}, {"starting_after", PD_FT_ID, 0}, {"ending_before", PD_FT_ID, 0}, EXPAND,        \
        {"created", PD_FT_INT, 0, 0, INT64_MAX}, {"created[gt]", PD_FT_INT, 0, 0, INT64_MAX},                        \
        {"created[gte]", PD_FT_INT, 0, 0, INT64_MAX}, {"created[lt]", PD_FT_INT, 0, 0, INT64_MAX},                   \
        {"created[lte]", PD_FT_INT, 0, 0, INT64_MAX}

static const pd_field_t list[] = {LIST_FIELDS, {"type", PD_FT_STRING, 0, 1, 64}};
const pd_schema_t pd_schema_list = PD_SCHEMA(list);

static const pd_field_t list_pis[] = {LIST_FIELDS, {"customer", PD_FT_ID, 0}};
const pd_schema_t pd_schema_list_pis = PD_SCHEMA(list_pis);

/* the query is parsed by the handler's own grammar (search_query.c), which refuses
 * anything else, and its values are only ever bound as SQL parameters: the WAF does not
 * scan it (a Stripe query such as status:'succeeded' OR amount>100 reads as SQL) */
static const pd_field_t search[] = {{"query", PD_FT_STRING, PD_FF_REQUIRED | PD_FF_NOSCAN, 1, 2000},
                                    {"limit", PD_FT_INT, 0, 1, 100},
                                    {"page", PD_FT_STRING, 0, 1, 512},
                                    EXPAND};
const pd_schema_t pd_schema_search = PD_SCHEMA(search);

static const char *const pm_types[] = {"card", NULL};
static const pd_field_t list_pms[] = {LIST_FIELDS, {"customer", PD_FT_ID, 0},
                                      {"type", PD_FT_ENUM, 0, .choices = pm_types}};
const pd_schema_t pd_schema_list_pms = PD_SCHEMA(list_pms);
static const pd_field_t list_customer_pms[] = {LIST_FIELDS, {"type", PD_FT_ENUM, 0, .choices = pm_types}};
const pd_schema_t pd_schema_list_customer_pms = PD_SCHEMA(list_customer_pms);

/* setup intents (setup_intents.c) */
static const char *const seti_cancel_reasons[] = {"abandoned", "requested_by_customer", "duplicate", NULL};
static const pd_field_t seti_create[] = {
    {"customer", PD_FT_ID, 0},
    {"payment_method", PD_FT_ID, 0},
    {"usage", PD_FT_ENUM, 0, .choices = future_usages},
    {"confirm", PD_FT_BOOL, 0},
    {"description", PD_FT_STRING, PD_FF_UNSET, 0, 1000},
    {"metadata", PD_FT_MAP, PD_FF_UNSET},
    {"payment_method_types", PD_FT_LIST, 0, .choices = card_only, .max_items = 1},
    {"return_url", PD_FT_URL, 0},
    EXPAND,
};
const pd_schema_t pd_schema_seti_create = PD_SCHEMA(seti_create);
static const pd_field_t seti_update[] = {
    {"customer", PD_FT_ID, PD_FF_UNSET},
    {"payment_method", PD_FT_ID, 0},
    {"description", PD_FT_STRING, PD_FF_UNSET, 0, 1000},
    {"metadata", PD_FT_MAP, PD_FF_UNSET},
    EXPAND,
};
const pd_schema_t pd_schema_seti_update = PD_SCHEMA(seti_update);
static const pd_field_t seti_confirm[] = {{"payment_method", PD_FT_ID, 0}, {"return_url", PD_FT_URL, 0}, EXPAND};
const pd_schema_t pd_schema_seti_confirm = PD_SCHEMA(seti_confirm);
static const pd_field_t seti_cancel[] = {{"cancellation_reason", PD_FT_ENUM, 0, .choices = seti_cancel_reasons},
                                         EXPAND};
const pd_schema_t pd_schema_seti_cancel = PD_SCHEMA(seti_cancel);
static const pd_field_t list_setis[] = {LIST_FIELDS, {"customer", PD_FT_ID, 0}, {"payment_method", PD_FT_ID, 0}};
const pd_schema_t pd_schema_list_setis = PD_SCHEMA(list_setis);
static const pd_field_t list_customers[] = {LIST_FIELDS, {"email", PD_FT_STRING, 0, 1, 512}};
const pd_schema_t pd_schema_list_customers = PD_SCHEMA(list_customers);

static const pd_field_t pm_attach[] = {{"customer", PD_FT_ID, PD_FF_REQUIRED}, EXPAND};
const pd_schema_t pd_schema_pm_attach = PD_SCHEMA(pm_attach);

/* Stripe's customer fields; the personal data's bounds keep its JSON within the vault's
 * 4096 bytes of one Encrypt (src/api/pii.h) */
#define CUSTOMER_FIELDS                                                                                                \
    {"email", PD_FT_EMAIL, PD_FF_UNSET}, {"name", PD_FT_STRING, PD_FF_UNSET, 0, 256},                                \
        {"phone", PD_FT_STRING, PD_FF_UNSET, 0, 32}, {"description", PD_FT_STRING, PD_FF_UNSET, 0, 1000},            \
        {"address", PD_FT_STRING, PD_FF_UNSET, 0, 0}, {"address[line1]", PD_FT_STRING, PD_FF_UNSET, 0, 200},         \
        {"address[line2]", PD_FT_STRING, PD_FF_UNSET, 0, 200}, {"address[city]", PD_FT_STRING, PD_FF_UNSET, 0, 200}, \
        {"address[state]", PD_FT_STRING, PD_FF_UNSET, 0, 200},                                                        \
        {"address[postal_code]", PD_FT_STRING, PD_FF_UNSET, 0, 20},                                                   \
        {"address[country]", PD_FT_STRING, PD_FF_UNSET, 0, 64}, {"metadata", PD_FT_MAP, PD_FF_UNSET},               \
        {"invoice_settings[default_payment_method]", PD_FT_ID, PD_FF_UNSET}, EXPAND

static const pd_field_t customer_create[] = {CUSTOMER_FIELDS, {"payment_method", PD_FT_ID, 0}};
const pd_schema_t pd_schema_customer_create = PD_SCHEMA(customer_create);
static const pd_field_t customer_update[] = {CUSTOMER_FIELDS};
const pd_schema_t pd_schema_customer_update = PD_SCHEMA(customer_update);

static const pd_field_t list_charges[] = {LIST_FIELDS, {"payment_intent", PD_FT_ID, 0}};
const pd_schema_t pd_schema_list_charges = PD_SCHEMA(list_charges);

static const pd_field_t list_events[] = {LIST_FIELDS, {"type", PD_FT_STRING, 0, 1, 64}};
const pd_schema_t pd_schema_list_events = PD_SCHEMA(list_events);

static const pd_field_t refund_create[] = {
    {"payment_intent", PD_FT_ID, 0},
    {"charge", PD_FT_ID, 0},
    AMOUNT("amount", 0),
    {"reason", PD_FT_ENUM, 0, .choices = refund_reasons},
    {"metadata", PD_FT_MAP, PD_FF_UNSET},
    EXPAND,
};
const pd_schema_t pd_schema_refund_create = PD_SCHEMA(refund_create);

static const pd_field_t we_create[] = {
    {"url", PD_FT_URL, PD_FF_REQUIRED},
    {"enabled_events", PD_FT_LIST, PD_FF_REQUIRED, .choices = event_types, .max_items = 20},
    {"description", PD_FT_STRING, PD_FF_UNSET, 0, 5000},
    {"metadata", PD_FT_MAP, PD_FF_UNSET},
    {"api_version", PD_FT_STRING, 0, 1, 32},
    EXPAND,
};
const pd_schema_t pd_schema_we_create = PD_SCHEMA(we_create);

static const pd_field_t we_update[] = {
    {"url", PD_FT_URL, 0},
    {"enabled_events", PD_FT_LIST, 0, .choices = event_types, .max_items = 20},
    {"disabled", PD_FT_BOOL, 0},
    {"description", PD_FT_STRING, PD_FF_UNSET, 0, 5000},
    {"metadata", PD_FT_MAP, PD_FF_UNSET},
    EXPAND,
};
const pd_schema_t pd_schema_we_update = PD_SCHEMA(we_update);

/* the report type, its columns and the interval are checked by the handler (reporting.c),
 * which knows each type's columns */
static const pd_field_t report_run_create[] = {
    {"report_type", PD_FT_STRING, PD_FF_REQUIRED, 1, 64},
    {"parameters[interval_start]", PD_FT_INT, 0, 0, INT64_MAX},
    {"parameters[interval_end]", PD_FT_INT, 0, 1, INT64_MAX},
    {"parameters[currency]", PD_FT_CURRENCY, 0},
    {"parameters[timezone]", PD_FT_STRING, 0, 1, 64},
    {"parameters[columns]", PD_FT_LIST, 0, 1, 64, .max_items = 16},
    EXPAND,
};
const pd_schema_t pd_schema_report_run_create = PD_SCHEMA(report_run_create);

static const pd_field_t list_report_runs[] = {LIST_FIELDS, {"report_type", PD_FT_STRING, 0, 1, 64}};
const pd_schema_t pd_schema_list_report_runs = PD_SCHEMA(list_report_runs);

static const char *const file_purposes[] = {"finance_report_run", NULL};
static const pd_field_t list_files[] = {LIST_FIELDS, {"purpose", PD_FT_ENUM, 0, .choices = file_purposes}};
const pd_schema_t pd_schema_list_files = PD_SCHEMA(list_files);

static const pd_field_t list_disputes[] = {LIST_FIELDS, {"charge", PD_FT_ID, 0}, {"payment_intent", PD_FT_ID, 0}};
const pd_schema_t pd_schema_list_disputes = PD_SCHEMA(list_disputes);

/* Stripe's evidence fields are text (and file ids, which payd does not take): a map of
 * at most 30 of them, each up to 20,000 bytes as Stripe allows uncategorized_text */
static const pd_field_t dispute_update[] = {
    {"evidence", PD_FT_MAP, 0, 0, 20000, .max_items = 30},
    {"metadata", PD_FT_MAP, PD_FF_UNSET},
    {"submit", PD_FT_BOOL, 0},
    EXPAND,
};
const pd_schema_t pd_schema_dispute_update = PD_SCHEMA(dispute_update);

static const pd_field_t retrieve[] = {EXPAND};
const pd_schema_t pd_schema_retrieve = PD_SCHEMA(retrieve);
