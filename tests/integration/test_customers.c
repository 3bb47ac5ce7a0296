/*
 * Customers and saved cards against payd --dev (integration/customers and
 * integration/customers/postgres): create, retrieve, update, delete and list customers
 * (by email, paginated); their personal data is in no file of the data directory nor
 * any table in the clear, nor in the logs; payment methods attached, detached (for
 * good), listed per customer; setup_future_usage saves the card to the intent's
 * customer, which an off-session payment then uses; Stripe's errors with their param;
 * expand[]=customer.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"

static pd_h_payd_t payd;

static int
setup(void **state)
{
    (void)state;
    if (pd_h_start(&payd, NULL) != 0)
        return -1;
    api_load_credentials(&payd);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    int rc = pd_h_stop(&payd, SIGTERM, 20000);
    pd_h_cleanup(&payd);
    return rc == 0 ? 0 : -1;
}

/* a string unique to this run (emails and names that cannot be in any file by chance) */
static void
unique(char *out, size_t cap, const char *what)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, cap, "%s%ld%09ld", what, (long)ts.tv_sec, ts.tv_nsec);
}

/* fails with the body (and payd's log lines about it) unless the status is want */
static void
expect(long got, long want, json_t *o)
{
    if (got == want)
        return;
    char *log = pd_h_log(&payd);
    const char *tail = log != NULL && strlen(log) > 3000 ? log + strlen(log) - 3000 : log;
    fprintf(stderr, "payd's log ends:\n%s\n", tail != NULL ? tail : "");
    fail_msg("status %ld, want %ld: %s", got, want, json_dumps(o, 0));
}

static void
create_customer(const char *body, char *id, size_t cap, json_t **out)
{
    json_t *o;
    long st = api_call(&payd, "POST", "/v1/customers", body, &o);
    if (st != 200)
        fail_msg("POST /v1/customers %s: %ld %s", body, st, json_dumps(o, 0));
    assert_string_equal(jstr(o, "object"), "customer");
    assert_true(strncmp(jstr(o, "id"), "cus_", 4) == 0);
    snprintf(id, cap, "%s", jstr(o, "id"));
    if (out != NULL)
        *out = o;
    else
        json_decref(o);
}

static void
customers_are_created_read_updated_and_deleted(void **state)
{
    (void)state;
    json_t *o;
    char id[64], path[200];
    create_customer("email=jenny.rosen%40example.com&name=Jenny+Rosen&phone=%2B15555550123&description=first"
                    "&address[line1]=1+Main+St&address[city]=Springfield&address[country]=US&metadata[order]=42",
                    id, sizeof(id), &o);
    assert_string_equal(jstr(o, "email"), "jenny.rosen@example.com");
    assert_string_equal(jstr(o, "name"), "Jenny Rosen");
    assert_string_equal(jstr(o, "phone"), "+15555550123");
    assert_string_equal(jstr(o, "address.line1"), "1 Main St");
    assert_string_equal(jstr(o, "address.city"), "Springfield");
    assert_true(json_is_null(json_object_get(json_object_get(o, "address"), "line2")));
    assert_string_equal(jstr(o, "metadata.order"), "42");
    assert_true(json_is_null(json_object_get(json_object_get(o, "invoice_settings"), "default_payment_method")));
    assert_true(json_is_false(json_object_get(o, "livemode")));
    json_decref(o);

    snprintf(path, sizeof(path), "/v1/customers/%s", id);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "email"), "jenny.rosen@example.com");
    assert_string_equal(jstr(o, "address.country"), "US");
    assert_string_equal(jstr(o, "description"), "first");
    json_decref(o);

    /* an update changes what it names and keeps the rest, sealed again */
    assert_int_equal(api_call(&payd, "POST", path, "phone=%2B15555550999&address[city]=Shelbyville&metadata[tier]=gold",
                              &o),
                     200);
    assert_string_equal(jstr(o, "phone"), "+15555550999");
    assert_string_equal(jstr(o, "email"), "jenny.rosen@example.com");
    assert_string_equal(jstr(o, "address.city"), "Shelbyville");
    assert_string_equal(jstr(o, "address.line1"), "1 Main St");
    assert_string_equal(jstr(o, "metadata.order"), "42");
    assert_string_equal(jstr(o, "metadata.tier"), "gold");
    json_decref(o);
    expect(api_call(&payd, "POST", path, "name=&address=", &o), 200, o);
    assert_true(json_is_null(json_object_get(o, "name")));
    assert_true(json_is_null(json_object_get(o, "address")));
    assert_string_equal(jstr(o, "email"), "jenny.rosen@example.com");
    json_decref(o);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_true(json_is_null(json_object_get(o, "name")));
    assert_string_equal(jstr(o, "phone"), "+15555550999");
    json_decref(o);

    /* deleted: {id, object, deleted} on DELETE and on retrieve; no second delete, no update */
    assert_int_equal(api_call(&payd, "DELETE", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "id"), id);
    assert_true(json_is_true(json_object_get(o, "deleted")));
    assert_int_equal(json_object_size(o), 3);
    json_decref(o);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_true(json_is_true(json_object_get(o, "deleted")));
    assert_string_equal(jstr(o, "object"), "customer");
    assert_null(json_object_get(o, "email"));
    json_decref(o);
    assert_int_equal(api_call(&payd, "DELETE", path, NULL, &o), 404);
    api_expect_error(o, "resource_missing", "id");
    json_decref(o);
    assert_int_equal(api_call(&payd, "POST", path, "name=x", &o), 404);
    api_expect_error(o, "resource_missing", "id");
    json_decref(o);

    /* the events, without the personal data */
    const char *types[] = {"customer.created", "customer.updated", "customer.deleted"};
    for (int i = 0; i < 3; i++) {
        char q[200];
        snprintf(q, sizeof(q), "/v1/events?type=%s", types[i]);
        assert_int_equal(api_call(&payd, "GET", q, NULL, &o), 200);
        json_t *ev = json_array_get(json_object_get(o, "data"), 0);
        assert_non_null(ev);
        json_t *obj = json_object_get(json_object_get(ev, "data"), "object");
        assert_string_equal(jstr(obj, "id"), id);
        assert_true(json_is_null(json_object_get(obj, "email")));
        json_decref(o);
    }
}

static void
the_email_filter_and_pagination(void **state)
{
    (void)state;
    char tag[64], body[300], ids[3][64], q[400], other[64];
    json_t *o;
    unique(tag, sizeof(tag), "ann");
    for (int i = 0; i < 3; i++) {
        /* the same address in other cases and with spaces around it */
        snprintf(body, sizeof(body), "email=%s%%40%s&name=Ann+%d", tag, i == 1 ? "Example.COM" : "example.com", i);
        if (i == 2)
            for (char *p = body + 6; *p != '%'; p++)
                *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        create_customer(body, ids[i], sizeof(ids[i]), NULL);
    }
    create_customer("email=someone.else%40example.com", other, sizeof(other), NULL);

    /* the filter matches whatever the case, and spaces around it */
    snprintf(q, sizeof(q), "/v1/customers?email=+%s%%40EXAMPLE.com+", tag);
    assert_int_equal(api_call(&payd, "GET", q, NULL, &o), 200);
    json_t *data = json_object_get(o, "data");
    assert_int_equal(json_array_size(data), 3);
    /* newest first, each with its personal data opened */
    for (int i = 0; i < 3; i++) {
        assert_string_equal(jstr(json_array_get(data, (size_t)i), "id"), ids[2 - i]);
        char name[16];
        snprintf(name, sizeof(name), "Ann %d", 2 - i);
        assert_string_equal(jstr(json_array_get(data, (size_t)i), "name"), name);
    }
    assert_true(json_is_false(json_object_get(o, "has_more")));
    json_decref(o);

    /* pages of one: limit, starting_after, ending_before */
    snprintf(q, sizeof(q), "/v1/customers?email=%s%%40example.com&limit=2", tag);
    assert_int_equal(api_call(&payd, "GET", q, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 2);
    assert_true(json_is_true(json_object_get(o, "has_more")));
    json_decref(o);
    snprintf(q, sizeof(q), "/v1/customers?email=%s%%40example.com&limit=2&starting_after=%s", tag, ids[1]);
    assert_int_equal(api_call(&payd, "GET", q, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 1);
    assert_string_equal(jstr(json_array_get(json_object_get(o, "data"), 0), "id"), ids[0]);
    assert_true(json_is_false(json_object_get(o, "has_more")));
    json_decref(o);
    snprintf(q, sizeof(q), "/v1/customers?email=%s%%40example.com&ending_before=%s", tag, ids[0]);
    assert_int_equal(api_call(&payd, "GET", q, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 2);
    assert_string_equal(jstr(json_array_get(json_object_get(o, "data"), 0), "id"), ids[2]);
    json_decref(o);
    /* created in the future: none; without the filter every customer is there */
    snprintf(q, sizeof(q), "/v1/customers?email=%s%%40example.com&created[gt]=%ld", tag, (long)time(NULL) + 3600);
    assert_int_equal(api_call(&payd, "GET", q, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 0);
    json_decref(o);
    /* names as people have them: an apostrophe, non-ASCII letters, JSON bodies */
    char odd[64];
    create_customer("name=Shaquille+O%27Neal&address[line1]=12+Rue+de+l%27%C3%89glise", odd, sizeof(odd), &o);
    assert_string_equal(jstr(o, "name"), "Shaquille O'Neal");
    assert_string_equal(jstr(o, "address.line1"), "12 Rue de l'\xc3\x89glise");
    json_decref(o);
    create_customer("{\"name\":\"J\u00f6rg\",\"address\":{\"city\":\"K\u00f6ln\",\"country\":\"DE\"},"
                    "\"metadata\":{\"a\":\"b\"}}",
                    odd, sizeof(odd), &o);
    assert_string_equal(jstr(o, "name"), "J\xc3\xb6rg");
    assert_string_equal(jstr(o, "address.city"), "K\xc3\xb6ln");
    json_decref(o);
    snprintf(q, sizeof(q), "/v1/customers/%s", odd);
    assert_int_equal(api_call(&payd, "POST", q, "{\"address\":null}", &o), 200);
    assert_true(json_is_null(json_object_get(o, "address")));
    assert_string_equal(jstr(o, "name"), "J\xc3\xb6rg");
    json_decref(o);

    assert_int_equal(api_call(&payd, "GET", "/v1/customers?limit=100", NULL, &o), 200);
    assert_true(json_array_size(json_object_get(o, "data")) >= 4);
    json_decref(o);
    /* a deleted customer is not listed */
    snprintf(q, sizeof(q), "/v1/customers/%s", ids[1]);
    assert_int_equal(api_call(&payd, "DELETE", q, NULL, &o), 200);
    json_decref(o);
    snprintf(q, sizeof(q), "/v1/customers?email=%s%%40example.com", tag);
    assert_int_equal(api_call(&payd, "GET", q, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 2);
    json_decref(o);
}

static bool
file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    size_t cap = 1 << 20, len = 0, n;
    char *buf = malloc(cap);
    bool found = false;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                break;
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf != NULL)
        found = memmem(buf, len, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

/* the first file under dir holding needle ("" if none) */
static void
find_in_dir(const char *dir, const char *needle, char *hit, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && hit[0] == '\0' && (e = readdir(d)) != NULL) {
        char p[1024];
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            find_in_dir(p, needle, hit, cap);
        else if (S_ISREG(st.st_mode) && file_has(p, needle))
            snprintf(hit, cap, "%s", p);
    }
    if (d != NULL)
        closedir(d);
}

static void
personal_data_is_stored_sealed_and_never_logged(void **state)
{
    (void)state;
    char email_local[64], name[64], body[400], id[64], path[600], idem[80];
    json_t *o;
    unique(email_local, sizeof(email_local), "secretmail");
    unique(name, sizeof(name), "Secretname");
    unique(idem, sizeof(idem), "idem-cus-");
    snprintf(body, sizeof(body), "email=%s%%40example.org&name=%s&phone=%s&address[line1]=%s+Road", email_local, name,
             "%2B15550001111", name);
    /* with an idempotency key: its stored response must not hold the data either */
    long st = api_call_as(&payd, api_sk, "POST", "/v1/customers", body, idem, &o);
    assert_int_equal(st, 200);
    snprintf(id, sizeof(id), "%s", jstr(o, "id"));
    json_decref(o);
    st = api_call_as(&payd, api_sk, "POST", "/v1/customers", body, idem, &o);
    assert_int_equal(st, 200);
    assert_string_equal(jstr(o, "id"), id); /* the replay, with the data opened again */
    assert_string_equal(jstr(o, "name"), name);
    char email[128];
    snprintf(email, sizeof(email), "%s@example.org", email_local);
    assert_string_equal(jstr(o, "email"), email);
    json_decref(o);
    /* a replay after the customer's deletion: the stored response, its personal data gone */
    char idem2[80], gone[64];
    unique(idem2, sizeof(idem2), "idem-gone-");
    assert_int_equal(api_call_as(&payd, api_sk, "POST", "/v1/customers", "email=gone%40example.com", idem2, &o), 200);
    snprintf(gone, sizeof(gone), "%s", jstr(o, "id"));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/customers/%s", gone);
    assert_int_equal(api_call(&payd, "DELETE", path, NULL, &o), 200);
    json_decref(o);
    assert_int_equal(api_call_as(&payd, api_sk, "POST", "/v1/customers", "email=gone%40example.com", idem2, &o), 200);
    assert_string_equal(jstr(o, "id"), gone);
    assert_true(json_is_null(json_object_get(o, "email")));
    json_decref(o);

    snprintf(path, sizeof(path), "/v1/customers?email=%s", email);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200); /* the email in a query string */
    assert_int_equal(json_array_size(json_object_get(o, "data")), 1);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/customers/%s", id);
    assert_int_equal(api_call(&payd, "POST", path, "description=seen", &o), 200);
    assert_string_equal(jstr(o, "name"), name);
    json_decref(o);

    /* no table holds it in the clear (on either backend) */
    char q[1200];
    snprintf(q, sizeof(q),
             "SELECT (SELECT count(*) FROM customers WHERE pii_enc LIKE '%%%s%%' OR email_index LIKE '%%%s%%') + "
             "(SELECT count(*) FROM events WHERE data LIKE '%%%s%%' OR data LIKE '%%%s%%') + "
             "(SELECT count(*) FROM idempotency_keys WHERE body LIKE '%%%s%%' OR body LIKE '%%%s%%')",
             email_local, email_local, email_local, name, email_local, name);
    assert_int_equal(api_sql_long(&payd, "payd.db", q), 0);
    snprintf(q, sizeof(q), "SELECT count(*) FROM customers WHERE id = '%s' AND pii_enc IS NOT NULL AND "
             "email_index IS NOT NULL", id);
    assert_int_equal(api_sql_long(&payd, "payd.db", q), 1);

    /* nor any file of the data directory: payd.db and its WAL, the vault's, the logs */
    char hit[1024] = "";
    find_in_dir(payd.dir, email_local, hit, sizeof(hit));
    if (hit[0] != '\0')
        fail_msg("the email is in %s", hit);
    find_in_dir(payd.dir, name, hit, sizeof(hit));
    if (hit[0] != '\0')
        fail_msg("the name is in %s", hit);
    if (file_has(payd.log_path, email_local) || file_has(payd.log_path, name))
        fail_msg("payd's log has the personal data");
    char url[600];
    if (!pd_h_store_args(payd.dir, NULL, url, sizeof(url))) {
        /* the files were searched for something they do hold: the customer's id */
        find_in_dir(payd.dir, id, hit, sizeof(hit));
        assert_true(hit[0] != '\0');
        return;
    }
    /* on PostgreSQL: the whole database, dumped */
    const char *argv[] = {"/usr/lib/postgresql/15/bin/pg_dump", "-d", url + strlen("store.url="), NULL};
    char *dump = NULL;
    assert_int_equal(pd_h_run(argv, &dump), 0);
    assert_non_null(dump);
    assert_non_null(strstr(dump, id));
    assert_null(strstr(dump, email_local));
    assert_null(strstr(dump, name));
    free(dump);
}

static void
attach_and_detach(pd_h_payd_t *p, const char *pm, const char *cus, const char *what, long want, json_t **o)
{
    char path[200], body[200];
    snprintf(path, sizeof(path), "/v1/payment_methods/%s/%s", pm, what);
    snprintf(body, sizeof(body), "customer=%s", cus != NULL ? cus : "");
    long st = api_call(p, "POST", path, cus != NULL ? body : "", o);
    if (st != want)
        fail_msg("POST %s %s: %ld, want %ld: %s", path, body, st, want, json_dumps(*o, 0));
}

static void
payment_methods_are_attached_and_detached_for_good(void **state)
{
    (void)state;
    char cus[64], cus2[64], pm[64], pm2[64], path[300];
    json_t *o;
    create_customer("email=card.owner%40example.com", cus, sizeof(cus), NULL);
    create_customer("email=other.owner%40example.com", cus2, sizeof(cus2), NULL);
    assert_int_equal(api_card_pm(&payd, "4242424242424242", pm, sizeof(pm)), 200);
    assert_int_equal(api_card_pm(&payd, "5555555555554444", pm2, sizeof(pm2)), 200);

    snprintf(path, sizeof(path), "/v1/payment_methods/%s", pm);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_true(json_is_null(json_object_get(o, "customer")));
    json_decref(o);

    attach_and_detach(&payd, pm, cus, "attach", 200, &o);
    assert_string_equal(jstr(o, "customer"), cus);
    json_decref(o);
    attach_and_detach(&payd, pm, cus, "attach", 200, &o); /* again to the same: as it is */
    assert_string_equal(jstr(o, "customer"), cus);
    json_decref(o);
    attach_and_detach(&payd, pm2, cus, "attach", 200, &o);
    json_decref(o);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "customer"), cus);
    json_decref(o);
    /* a test id becomes a new method, attached */
    attach_and_detach(&payd, "pm_card_visa", cus2, "attach", 200, &o);
    assert_true(strcmp(jstr(o, "id"), "pm_card_visa") != 0);
    assert_string_equal(jstr(o, "customer"), cus2);
    json_decref(o);

    /* attached elsewhere: refused */
    attach_and_detach(&payd, pm, cus2, "attach", 400, &o);
    api_expect_error(o, "payment_method_unexpected_state", "payment_method");
    json_decref(o);

    /* the customer's list, both ways, newest first */
    snprintf(path, sizeof(path), "/v1/customers/%s/payment_methods", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 2);
    assert_string_equal(jstr(json_array_get(json_object_get(o, "data"), 0), "id"), pm2);
    assert_string_equal(jstr(json_array_get(json_object_get(o, "data"), 1), "id"), pm);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_methods?customer=%s&type=card&limit=1", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 1);
    assert_true(json_is_true(json_object_get(o, "has_more")));
    assert_string_equal(jstr(json_array_get(json_object_get(o, "data"), 0), "customer"), cus);
    json_decref(o);

    /* a default payment method must be attached */
    snprintf(path, sizeof(path), "/v1/customers/%s", cus);
    char body[200];
    snprintf(body, sizeof(body), "invoice_settings[default_payment_method]=%s", pm);
    assert_int_equal(api_call(&payd, "POST", path, body, &o), 200);
    assert_string_equal(jstr(o, "invoice_settings.default_payment_method"), pm);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/customers/%s", cus2);
    assert_int_equal(api_call(&payd, "POST", path, body, &o), 400);
    api_expect_error(o, "resource_missing", "invoice_settings[default_payment_method]");
    json_decref(o);

    /* detached: off the list, not the default any more, never attached or used again */
    attach_and_detach(&payd, pm, NULL, "detach", 200, &o);
    assert_true(json_is_null(json_object_get(o, "customer")));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/customers/%s", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_true(json_is_null(json_object_get(json_object_get(o, "invoice_settings"), "default_payment_method")));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/customers/%s/payment_methods", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 1);
    json_decref(o);
    attach_and_detach(&payd, pm, cus, "attach", 400, &o);
    api_expect_error(o, "payment_method_unexpected_state", "payment_method");
    json_decref(o);
    attach_and_detach(&payd, pm, NULL, "detach", 400, &o);
    api_expect_error(o, "payment_method_unexpected_state", "payment_method");
    json_decref(o);
    assert_int_equal(api_charge(&payd, pm, 1000, "usd", &o), 400);
    api_expect_error(o, "payment_method_unexpected_state", "payment_method");
    json_decref(o);

    /* an attached method is its customer's: not used without it nor for another */
    assert_int_equal(api_charge(&payd, pm2, 1000, "usd", &o), 400);
    api_expect_error(o, "parameter_missing", "customer");
    json_decref(o);
    snprintf(body, sizeof(body), "amount=1000&currency=usd&confirm=true&payment_method=%s&customer=%s", pm2, cus2);
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", body, &o), 400);
    api_expect_error(o, "parameter_invalid", "payment_method");
    json_decref(o);

    /* created with a payment method: attached, and its default */
    char pm3[64], cus3[64];
    assert_int_equal(api_card_pm(&payd, "4000056655665556", pm3, sizeof(pm3)), 200);
    snprintf(body, sizeof(body), "name=With+card&payment_method=%s&invoice_settings[default_payment_method]=%s", pm3,
             pm3);
    create_customer(body, cus3, sizeof(cus3), &o);
    assert_string_equal(jstr(o, "invoice_settings.default_payment_method"), pm3);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_methods/%s", pm3);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "customer"), cus3);
    json_decref(o);
    snprintf(body, sizeof(body), "payment_method=%s", pm3); /* attached already */
    assert_int_equal(api_call(&payd, "POST", "/v1/customers", body, &o), 400);
    api_expect_error(o, "payment_method_unexpected_state", "payment_method");
    json_decref(o);

    /* deleting the customer detaches its methods */
    snprintf(path, sizeof(path), "/v1/customers/%s", cus);
    assert_int_equal(api_call(&payd, "DELETE", path, NULL, &o), 200);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_methods/%s", pm2);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_true(json_is_null(json_object_get(o, "customer")));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/customers/%s/payment_methods", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 404);
    api_expect_error(o, "resource_missing", "id");
    json_decref(o);
}

static void
setup_future_usage_saves_the_card(void **state)
{
    (void)state;
    char cus[64], body[400], pm[64], path[200];
    json_t *o;
    create_customer("name=Saver", cus, sizeof(cus), NULL);
    snprintf(body, sizeof(body),
             "amount=2000&currency=usd&confirm=true&payment_method=pm_card_visa&customer=%s"
             "&setup_future_usage=off_session",
             cus);
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", body, &o), 200);
    assert_string_equal(jstr(o, "status"), "succeeded");
    assert_string_equal(jstr(o, "customer"), cus);
    assert_string_equal(jstr(o, "setup_future_usage"), "off_session");
    snprintf(pm, sizeof(pm), "%s", jstr(o, "payment_method"));
    char ch[64];
    snprintf(ch, sizeof(ch), "%s", jstr(o, "latest_charge"));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_methods/%s", pm);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "customer"), cus);
    json_decref(o);
    /* the charge is the customer's too, expandable */
    snprintf(path, sizeof(path), "/v1/charges/%s?expand[]=customer", ch);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "customer.id"), cus);
    assert_string_equal(jstr(o, "customer.name"), "Saver");
    json_decref(o);
    assert_int_equal(api_call(&payd, "GET", "/v1/events?type=payment_method.attached", NULL, &o), 200);
    assert_string_equal(jstr(json_array_get(json_object_get(o, "data"), 0), "data.object.id"), pm);
    json_decref(o);

    /* then an off-session payment with the saved card */
    snprintf(body, sizeof(body), "amount=1500&currency=usd&confirm=true&off_session=true&payment_method=%s&customer=%s",
             pm, cus);
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", body, &o), 200);
    assert_string_equal(jstr(o, "status"), "succeeded");
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_intents?customer=%s", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 2);
    json_decref(o);

    /* a declined payment saves nothing */
    char pm_d[64];
    assert_int_equal(api_card_pm(&payd, "4000000000000002", pm_d, sizeof(pm_d)), 200);
    snprintf(body, sizeof(body),
             "amount=2000&currency=usd&confirm=true&payment_method=%s&customer=%s&setup_future_usage=on_session", pm_d,
             cus);
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", body, &o), 402);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_methods/%s", pm_d);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_true(json_is_null(json_object_get(o, "customer")));
    json_decref(o);

    /* saving needs a customer; setup_future_usage set by update, then confirmed */
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents",
                              "amount=2000&currency=usd&confirm=true&payment_method=pm_card_visa"
                              "&setup_future_usage=off_session",
                              &o),
                     400);
    api_expect_error(o, "parameter_missing", "customer");
    json_decref(o);
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", "amount=700&currency=usd", &o), 200);
    char pi[64];
    snprintf(pi, sizeof(pi), "%s", jstr(o, "id"));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s", pi);
    snprintf(body, sizeof(body), "customer=%s&setup_future_usage=on_session", cus);
    assert_int_equal(api_call(&payd, "POST", path, body, &o), 200);
    assert_string_equal(jstr(o, "customer"), cus);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s/confirm", pi);
    assert_int_equal(api_call(&payd, "POST", path, "payment_method=pm_card_mastercard", &o), 200);
    assert_string_equal(jstr(o, "setup_future_usage"), "on_session");
    snprintf(pm, sizeof(pm), "%s", jstr(o, "payment_method"));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_methods/%s", pm);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "customer"), cus);
    json_decref(o);
    assert_true(api_ledger_verifies(&payd));
}

static void
bad_requests_get_stripe_errors(void **state)
{
    (void)state;
    json_t *o;
    char cus[64], pm[64], path[200];
    struct {
        const char *method, *path, *body;
        long status;
        const char *code, *param;
    } cases[] = {
        {"POST", "/v1/customers", "email=not-an-email", 400, NULL, "email"},
        {"POST", "/v1/customers", "address=somewhere", 400, "parameter_invalid", "address"},
        {"POST", "/v1/customers", "invoice_settings[default_payment_method]=pm_abcdef", 400, "resource_missing",
         "invoice_settings[default_payment_method]"},
        {"POST", "/v1/customers", "colour=blue", 400, "parameter_unknown", "colour"},
        {"POST", "/v1/customers", "payment_method=pm_AAAAAAAAAAAAAAAAAAAAAAAA", 400, "resource_missing",
         "payment_method"},
        {"POST", "/v1/customers",
         "name=x&invoice_settings[default_payment_method]=pm_card_visa&payment_method=pm_card_amex", 400,
         "resource_missing", "invoice_settings[default_payment_method]"},
        {"GET", "/v1/customers/cus_AAAAAAAAAAAAAAAAAAAAAAAA", NULL, 404, "resource_missing", "id"},
        {"GET", "/v1/customers?limit=0", NULL, 400, NULL, "limit"},
        {"GET", "/v1/customers?starting_after=cus_AAAAAAAAAAAAAAAAAAAAAAAA", NULL, 404, "resource_missing",
         "starting_after"},
        {"POST", "/v1/payment_intents", "amount=100&currency=usd&customer=cus_AAAAAAAAAAAAAAAAAAAAAAAA", 400,
         "resource_missing", "customer"},
        {"POST", "/v1/payment_intents", "amount=100&currency=usd&setup_future_usage=sometimes", 400, NULL,
         "setup_future_usage"},
        {"POST", "/v1/payment_methods/pm_card_visa/attach", "", 400, "parameter_missing", "customer"},
        {"POST", "/v1/payment_methods/pm_card_visa/attach", "customer=cus_AAAAAAAAAAAAAAAAAAAAAAAA", 400,
         "resource_missing", "customer"},
        {"POST", "/v1/payment_methods/pm_AAAAAAAAAAAAAAAAAAAAAAAA/detach", "", 404, "resource_missing",
         "payment_method"},
        {"GET", "/v1/payment_methods?customer=cus_AAAAAAAAAAAAAAAAAAAAAAAA", NULL, 400, "resource_missing",
         "customer"},
        {"GET", "/v1/payment_methods?type=sepa_debit", NULL, 400, NULL, "type"},
        {"GET", "/v1/customers/cus_AAAAAAAAAAAAAAAAAAAAAAAA/payment_methods", NULL, 404, "resource_missing", "id"},
        {"GET", "/v1/customers/cus_AAAAAAAAAAAAAAAAAAAAAAAA?expand[]=email", NULL, 400, "parameter_invalid",
         "expand"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long st = api_call(&payd, cases[i].method, cases[i].path, cases[i].body, &o);
        if (st != cases[i].status)
            fail_msg("%s %s %s: %ld, want %ld: %s", cases[i].method, cases[i].path, cases[i].body ? cases[i].body : "",
                     st, cases[i].status, json_dumps(o, 0));
        if (cases[i].code != NULL)
            api_expect_error(o, cases[i].code, cases[i].param);
        else if (jstr(o, "error.param") == NULL || strcmp(jstr(o, "error.param"), cases[i].param) != 0)
            fail_msg("%s %s: want param %s: %s", cases[i].method, cases[i].path, cases[i].param, json_dumps(o, 0));
        json_decref(o);
    }
    /* a publishable key makes payment methods, never attaches them */
    create_customer("name=Pk", cus, sizeof(cus), NULL);
    assert_int_equal(api_card_pm(&payd, "4242424242424242", pm, sizeof(pm)), 200);
    snprintf(path, sizeof(path), "/v1/payment_methods/%s/attach", pm);
    char body[100];
    snprintf(body, sizeof(body), "customer=%s", cus);
    assert_int_equal(api_call_as(&payd, api_pk, "POST", path, body, NULL, &o), 403);
    api_expect_error(o, "secret_key_required", NULL);
    json_decref(o);
    assert_int_equal(api_call_as(&payd, api_pk, "GET", "/v1/customers", NULL, NULL, &o), 403);
    json_decref(o);
}

static void
expand_turns_the_customer_into_an_object(void **state)
{
    (void)state;
    char cus[64], body[300], path[300], pi[64], pm[64];
    json_t *o;
    create_customer("email=exp%40example.com&description=expanded&address[city]=Expandville", cus, sizeof(cus), NULL);
    snprintf(body, sizeof(body), "amount=900&currency=usd&customer=%s&expand[]=customer", cus);
    expect(api_call(&payd, "POST", "/v1/payment_intents", body, &o), 200, o);
    if (jstr(o, "customer.id") == NULL)
        fail_msg("not expanded: %s", json_dumps(o, 0));
    assert_string_equal(jstr(o, "customer.id"), cus);
    assert_string_equal(jstr(o, "customer.object"), "customer");
    snprintf(pi, sizeof(pi), "%s", jstr(o, "id"));
    /* the expanded customer's personal data is opened, its envelope not shown */
    assert_string_equal(jstr(o, "customer.email"), "exp@example.com");
    assert_null(json_object_get(json_object_get(o, "customer"), "__pii"));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s?expand[]=customer", pi);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "customer.description"), "expanded");
    assert_string_equal(jstr(o, "customer.email"), "exp@example.com");
    assert_string_equal(jstr(o, "customer.address.city"), "Expandville");
    assert_null(json_object_get(json_object_get(o, "customer"), "__pii"));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_intents?customer=%s&expand[]=data.customer", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(json_array_get(json_object_get(o, "data"), 0), "customer.id"), cus);
    assert_string_equal(jstr(json_array_get(json_object_get(o, "data"), 0), "customer.email"), "exp@example.com");
    json_decref(o);
    /* on a payment method, and nested from an intent */
    assert_int_equal(api_card_pm(&payd, "4242424242424242", pm, sizeof(pm)), 200);
    attach_and_detach(&payd, pm, cus, "attach", 200, &o);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_methods/%s?expand[]=customer", pm);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "customer.id"), cus);
    assert_string_equal(jstr(o, "customer.email"), "exp@example.com");
    json_decref(o);
    /* a write with an idempotency key: the replay opens it again; the stored response
     * holds the envelope, not the email */
    snprintf(path, sizeof(path), "/v1/payment_intents/%s", pi);
    snprintf(body, sizeof(body), "payment_method=%s&expand[]=payment_method.customer", pm);
    char idem[64];
    unique(idem, sizeof(idem), "idem-exp-");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(api_call_as(&payd, api_sk, "POST", path, body, idem, &o), 200);
        assert_string_equal(jstr(o, "payment_method.customer.id"), cus);
        assert_string_equal(jstr(o, "payment_method.customer.email"), "exp@example.com");
        assert_null(json_object_get(json_object_get(json_object_get(o, "payment_method"), "customer"), "__pii"));
        json_decref(o);
    }
    assert_int_equal(api_sql_long(&payd, "payd.db",
                                  "SELECT count(*) FROM idempotency_keys WHERE body LIKE '%exp@example.com%'"),
                     0);
    assert_int_equal(api_sql_long(&payd, "payd.db", "SELECT count(*) FROM idempotency_keys WHERE body LIKE '%__pii%'"),
                     1);

    /* on the customer: its default payment method (alone, invoice_settings is refused);
     * in a payment method list: each item's customer, and the cardholder names */
    snprintf(path, sizeof(path), "/v1/customers/%s", cus);
    snprintf(body, sizeof(body), "invoice_settings[default_payment_method]=%s", pm);
    assert_int_equal(api_call(&payd, "POST", path, body, &o), 200);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/customers/%s?expand[]=invoice_settings.default_payment_method", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "invoice_settings.default_payment_method.id"), pm);
    assert_string_equal(jstr(o, "invoice_settings.default_payment_method.card.last4"), "4242");
    assert_string_equal(jstr(o, "email"), "exp@example.com");
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/customers/%s?expand[]=invoice_settings", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 400);
    api_expect_error(o, "parameter_invalid", "expand");
    json_decref(o);
    assert_int_equal(api_call(&payd, "GET",
                              "/v1/customers?email=exp%40example.com&expand[]=data.invoice_settings.default_payment_method",
                              NULL, &o),
                     200);
    assert_string_equal(jstr(json_array_get(json_object_get(o, "data"), 0), "invoice_settings.default_payment_method.id"),
                        pm);
    json_decref(o);
    char named[64];
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_methods",
                              "type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2031"
                              "&billing_details[name]=Card+Holder",
                              &o),
                     200);
    snprintf(named, sizeof(named), "%s", jstr(o, "id"));
    json_decref(o);
    attach_and_detach(&payd, named, cus, "attach", 200, &o);
    assert_string_equal(jstr(o, "billing_details.name"), "Card Holder");
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/customers/%s/payment_methods?expand[]=data.customer", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    json_t *d0 = json_array_get(json_object_get(o, "data"), 0), *d1 = json_array_get(json_object_get(o, "data"), 1);
    assert_string_equal(jstr(d0, "id"), named);
    assert_string_equal(jstr(d0, "billing_details.name"), "Card Holder");
    assert_string_equal(jstr(d0, "customer.email"), "exp@example.com");
    assert_true(json_is_null(json_object_get(json_object_get(d1, "billing_details"), "name")));
    assert_string_equal(jstr(d1, "customer.id"), cus);
    json_decref(o);
}


/* payctl's JSON (after anything it prints first) */
static json_t *
payctl_json(const char *const *args)
{
    char *out = NULL;
    if (pd_h_payctl(&payd, args, &out) != 0 || out == NULL || strchr(out, '{') == NULL)
        fail_msg("payctl %s %s: %s", args[0], args[1], out != NULL ? out : "");
    json_error_t e;
    json_t *o = json_loads(strchr(out, '{'), JSON_DISABLE_EOF_CHECK, &e);
    free(out);
    assert_non_null(o);
    return o;
}

static void
customers_belong_to_one_merchant_and_mode(void **state)
{
    (void)state;
    char cus[64], path[200], body[300], other_sk[160], live_sk[160], pm[64];
    json_t *o;
    create_customer("email=shared%40example.com&name=Mine", cus, sizeof(cus), NULL);
    const char *ma[] = {"merchant", "create", "--name", "Other shop", NULL};
    json_t *m = payctl_json(ma);
    snprintf(other_sk, sizeof(other_sk), "%s", jstr(m, "secret_key"));
    json_decref(m);
    const char *ka[] = {"keys", "create", "--merchant", api_merchant, "--type", "secret", "--live", NULL};
    json_t *k = payctl_json(ka);
    snprintf(live_sk, sizeof(live_sk), "%s", jstr(k, "key"));
    json_decref(k);

    const char *keys[] = {other_sk, live_sk};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "/v1/customers/%s", cus);
        assert_int_equal(api_call_as(&payd, keys[i], "GET", path, NULL, NULL, &o), 404);
        api_expect_error(o, "resource_missing", "id");
        json_decref(o);
        assert_int_equal(api_call_as(&payd, keys[i], "POST", path, "name=Stolen", NULL, &o), 404);
        json_decref(o);
        assert_int_equal(api_call_as(&payd, keys[i], "DELETE", path, NULL, NULL, &o), 404);
        json_decref(o);
        snprintf(body, sizeof(body), "amount=500&currency=usd&customer=%s", cus);
        assert_int_equal(api_call_as(&payd, keys[i], "POST", "/v1/payment_intents", body, NULL, &o), 400);
        api_expect_error(o, "resource_missing", "customer");
        json_decref(o);
        /* the same email elsewhere: its own index */
        assert_int_equal(api_call_as(&payd, keys[i], "GET", "/v1/customers?email=shared%40example.com", NULL, NULL,
                                     &o),
                         200);
        assert_int_equal(json_array_size(json_object_get(o, "data")), 0);
        json_decref(o);
    }
    /* the other merchant's payment method cannot go to this customer */
    char pmbody[200];
    snprintf(pmbody, sizeof(pmbody), "type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2031");
    assert_int_equal(api_call_as(&payd, other_sk, "POST", "/v1/payment_methods", pmbody, NULL, &o), 200);
    snprintf(pm, sizeof(pm), "%s", jstr(o, "id"));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_methods/%s/attach", pm);
    snprintf(body, sizeof(body), "customer=%s", cus);
    assert_int_equal(api_call_as(&payd, other_sk, "POST", path, body, NULL, &o), 400);
    api_expect_error(o, "resource_missing", "customer");
    json_decref(o);
    assert_int_equal(api_call(&payd, "POST", path, body, &o), 404); /* and this merchant does not see it */
    api_expect_error(o, "resource_missing", "payment_method");
    json_decref(o);
    /* the customer is as it was */
    snprintf(path, sizeof(path), "/v1/customers/%s", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "name"), "Mine");
    json_decref(o);
}

/* --- concurrency --- */

#define RACERS 10

typedef struct {
    char path[200], body[300], key[80];
    pthread_barrier_t *go;
    pd_h_client_t *client;
    long status, final_status;
    char code[64];
} racer_t;

static long
post_as(pd_h_client_t *c, const char *path, const char *body, const char *key, char *code, size_t cap)
{
    char auth[200], idh[120];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    snprintf(idh, sizeof(idh), "Idempotency-Key: %s", key);
    const char *hdrs[] = {auth, "Content-Type: application/x-www-form-urlencoded", idh, NULL};
    pd_h_req_t rq = {.headers = hdrs, .body = body, .timeout_ms = 20000};
    pd_h_resp_t r;
    long st = pd_h_do(c, "POST", path, &rq, &r) == 0 ? r.status : -1;
    json_error_t e;
    json_t *o = r.body != NULL ? json_loads(r.body, 0, &e) : NULL;
    const char *v = o != NULL ? jstr(o, "error.code") : NULL;
    snprintf(code, cap, "%s", v != NULL ? v : "");
    json_decref(o);
    pd_h_resp_free(&r);
    return st;
}

static void *
racer_main(void *arg)
{
    racer_t *x = arg;
    pthread_barrier_wait(x->go);
    x->final_status = x->status = post_as(x->client, x->path, x->body, x->key, x->code, sizeof(x->code));
    /* a conflict is not stored under the key: the same key runs anew */
    for (int i = 0; i < 100 && x->final_status == 409; i++) {
        usleep(20000);
        x->final_status = post_as(x->client, x->path, x->body, x->key, x->code, sizeof(x->code));
    }
    return NULL;
}

static void
race(racer_t *xs, int n)
{
    pthread_barrier_t go;
    pthread_t th[RACERS];
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        xs[i].go = &go;
        xs[i].client = pd_h_client_new(&payd);
        pd_h_resp_t r;
        pd_h_req_t rq = {0};
        assert_int_equal(pd_h_do(xs[i].client, "GET", "/healthz", &rq, &r), 0); /* connected before the race */
        pd_h_resp_free(&r);
        unique(xs[i].key, sizeof(xs[i].key), "race-");
    }
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, racer_main, &xs[i]);
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        pd_h_client_free(xs[i].client);
    }
    pthread_barrier_destroy(&go);
}

/* n attaches of one payment method to n customers at once: one wins, for good */
static void
parallel_attaches(int n)
{
    racer_t xs[RACERS];
    char pm[64], cus[RACERS][64], path[200];
    json_t *o;
    memset(xs, 0, sizeof(xs));
    assert_int_equal(api_card_pm(&payd, "4242424242424242", pm, sizeof(pm)), 200);
    for (int i = 0; i < n; i++) {
        create_customer("name=Racer", cus[i], sizeof(cus[i]), NULL);
        snprintf(xs[i].path, sizeof(xs[i].path), "/v1/payment_methods/%s/attach", pm);
        snprintf(xs[i].body, sizeof(xs[i].body), "customer=%.63s", cus[i]);
    }
    race(xs, n);
    int won = -1;
    for (int i = 0; i < n; i++) {
        if (xs[i].final_status == 200) {
            if (won >= 0)
                fail_msg("two attaches won: %d and %d", won, i);
            won = i;
        } else if (xs[i].final_status != 400 || strcmp(xs[i].code, "payment_method_unexpected_state") != 0) {
            fail_msg("attach %d: %ld %s", i, xs[i].final_status, xs[i].code);
        }
    }
    assert_true(won >= 0);
    snprintf(path, sizeof(path), "/v1/payment_methods/%s", pm);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "customer"), cus[won]);
    json_decref(o);
}

/* n updates of one customer at once, each adding a metadata key: none is lost */
static void
parallel_updates(int n)
{
    racer_t xs[RACERS];
    char cus[64], path[200];
    json_t *o;
    memset(xs, 0, sizeof(xs));
    create_customer("email=racing%40example.com&name=Start", cus, sizeof(cus), NULL);
    for (int i = 0; i < n; i++) {
        snprintf(xs[i].path, sizeof(xs[i].path), "/v1/customers/%s", cus);
        snprintf(xs[i].body, sizeof(xs[i].body), "metadata[k%d]=v%d&phone=%d", i, i, 1000 + i);
    }
    race(xs, n);
    for (int i = 0; i < n; i++)
        if (xs[i].final_status != 200)
            fail_msg("update %d: %ld %s", i, xs[i].final_status, xs[i].code);
    snprintf(path, sizeof(path), "/v1/customers/%s", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_int_equal(json_object_size(json_object_get(o, "metadata")), (size_t)n);
    assert_string_equal(jstr(o, "email"), "racing@example.com");
    assert_string_equal(jstr(o, "name"), "Start");
    assert_non_null(jstr(o, "phone"));
    json_decref(o);
}

static void
concurrent_attaches_and_updates(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        parallel_attaches(2);
        parallel_attaches(10);
        parallel_updates(2);
        parallel_updates(10);
    }
}

/* --- recovery --- */

typedef struct {
    pd_h_payd_t *p;
    const char *body, *key;
    long status;
} call_t;

static void *
call_main(void *arg)
{
    call_t *c = arg;
    json_t *j = NULL;
    c->status = api_call_as(c->p, api_sk, "POST", "/v1/payment_intents", c->body, c->key, &j);
    json_decref(j);
    return NULL;
}

/* setup_future_usage on a payment whose node is killed after the processor authorized
 * it: the recovery worker's phase 2 attaches the card, as the request's would have */
static void
recovery_saves_the_card_of_a_killed_payment(void **state)
{
    (void)state;
    pd_h_payd_t p;
    /* at the debug level: not even its most detailed log holds the personal data */
    const char *slow[] = {"--set", "processor.simulator_latency_ms=10s", "--set", "server.log_level=debug", NULL};
    pd_h_opts_t o = {.args = slow};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    json_t *j;
    assert_int_equal(api_call(&p, "POST", "/v1/customers", "name=Recovered+Person&email=recovered%40example.net", &j),
                     200);
    char cus[64], body[300];
    snprintf(cus, sizeof(cus), "%s", jstr(j, "id"));
    json_decref(j);
    snprintf(body, sizeof(body),
             "amount=2600&currency=usd&confirm=true&payment_method=pm_card_visa&customer=%s"
             "&setup_future_usage=off_session",
             cus);
    call_t c = {&p, body, "killed-sfu-1", 0};
    pthread_t th;
    pthread_create(&th, NULL, call_main, &c);
    long authorized = 0;
    for (int i = 0; i < 400 && authorized != 1; i++) {
        usleep(20000);
        authorized = api_sql_long(&p, "simulator.db", "SELECT count(*) FROM auths WHERE amount = 2600");
    }
    assert_int_equal(authorized, 1);
    assert_int_equal(pd_h_stop(&p, SIGKILL, 5000), 128 + SIGKILL);
    pthread_join(th, NULL);
    assert_true(c.status <= 0); /* no answer: payd died between the phases */

    const char *debug[] = {"--set", "server.log_level=debug", NULL};
    pd_h_opts_t again = {.reuse_dir = p.dir, .args = debug};
    assert_int_equal(pd_h_start(&p, &again), 0);
    long st = 409;
    for (int i = 0; i < 120 && st == 409; i++) {
        if ((st = api_call_as(&p, api_sk, "POST", "/v1/payment_intents", body, "killed-sfu-1", &j)) == 409) {
            json_decref(j);
            usleep(250000);
        }
    }
    assert_int_equal(st, 200);
    assert_string_equal(jstr(j, "status"), "succeeded");
    char path[200];
    snprintf(path, sizeof(path), "/v1/payment_methods/%s", jstr(j, "payment_method"));
    json_decref(j);
    assert_int_equal(api_call(&p, "GET", path, NULL, &j), 200);
    assert_string_equal(jstr(j, "customer"), cus);
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/customers/%s/payment_methods", cus);
    assert_int_equal(api_call(&p, "GET", path, NULL, &j), 200);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
    json_decref(j);
    assert_true(api_ledger_verifies(&p));
    snprintf(path, sizeof(path), "/v1/customers/%s", cus);
    assert_int_equal(api_call(&p, "GET", path, NULL, &j), 200);
    assert_string_equal(jstr(j, "email"), "recovered@example.net");
    json_decref(j);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    char *log = pd_h_log(&p);
    assert_non_null(log);
    assert_null(strstr(log, "recovered@example.net"));
    assert_null(strstr(log, "Recovered Person"));
    free(log);
    char hit[1024] = "";
    find_in_dir(p.dir, "recovered@example.net", hit, sizeof(hit));
    if (hit[0] != '\0')
        fail_msg("the email is in %s", hit);
    pd_h_cleanup(&p);
    api_load_credentials(&payd); /* the suite's payd again */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(customers_are_created_read_updated_and_deleted),
        cmocka_unit_test(the_email_filter_and_pagination),
        cmocka_unit_test(personal_data_is_stored_sealed_and_never_logged),
        cmocka_unit_test(payment_methods_are_attached_and_detached_for_good),
        cmocka_unit_test(setup_future_usage_saves_the_card),
        cmocka_unit_test(bad_requests_get_stripe_errors),
        cmocka_unit_test(expand_turns_the_customer_into_an_object),
        cmocka_unit_test(customers_belong_to_one_merchant_and_mode),
        cmocka_unit_test(concurrent_attaches_and_updates),
        cmocka_unit_test(recovery_saves_the_card_of_a_killed_payment),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
