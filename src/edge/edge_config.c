/* The [api] and [admin] settings of the edge, and the checks made on them before start. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>

#include "payd/edge.h"

#define A(f) offsetof(pd_edge_api_config_t, f)
static const pd_config_key_t api_keys[] = {
    {"listen", PD_CT_ADDR, A(listen), "127.0.0.1:8443", .help = "address of the HTTPS API listener"},
    {"threads", PD_CT_INT, A(threads), "0", 0, 256, .help = "event-loop threads; 0 = one per CPU core"},
    {"tls_cert", PD_CT_PATH, A(tls_cert), "", .reloadable = true,
     .help = "PEM certificate chain (dev mode: DATA_DIR/tls/server.pem)"},
    {"tls_key", PD_CT_PATH, A(tls_key), "", .reloadable = true, .help = "PEM private key"},
    {"tls_client_ca", PD_CT_PATH, A(tls_client_ca), "", .reloadable = true,
     .help = "if set, require client certificates signed by this CA (mutual TLS)"},
    {"max_header_bytes", PD_CT_SIZE, A(max_header_bytes), "16k", 1024, 256 * 1024,
     .help = "total size of request header names and values; larger -> 431"},
    {"max_headers", PD_CT_INT, A(max_headers), "64", 8, 96, .help = "number of request headers; more -> 431"},
    {"max_body_bytes", PD_CT_SIZE, A(max_body_bytes), "1m", 1024, 64 * 1024 * 1024,
     .help = "request body size; larger -> 413"},
    {"request_timeout_ms", PD_CT_MS, A(request_timeout_ms), "10s", 100, 300000,
     .help = "time a client has to send a complete request (slow clients are cut off)"},
    {"idle_timeout_ms", PD_CT_MS, A(idle_timeout_ms), "60s", 100, 3600000, .help = "idle HTTP/2 connection timeout"},
    {"handshake_timeout_ms", PD_CT_MS, A(handshake_timeout_ms), "5s", 100, 60000, .help = "TLS handshake timeout"},
    {"drain_timeout_ms", PD_CT_MS, A(drain_timeout_ms), "10s", 0, 600000,
     .help = "on SIGTERM, how long in-flight requests may take before exit"},
    {"drain_grace_ms", PD_CT_MS, A(drain_grace_ms), "1s", 0, 600000,
     .help = "on SIGTERM, how long idle HTTP/1 connections stay open (requests on them are answered, "
             "with Connection: close) before they are closed; at most drain_timeout_ms"},
    {"drain_delay_ms", PD_CT_MS, A(drain_delay_ms), "0", 0, 600000,
     .help = "on SIGTERM, how long /readyz answers 503 while the listeners still accept and serve, before they "
             "close: time for a load balancer's health check to take the node out (behind HAProxy's 1 s x 2 checks: "
             "3s); at most drain_timeout_ms"},
    {"hsts", PD_CT_BOOL, A(hsts), "true", .help = "send Strict-Transport-Security on API responses"},
    {"max_connections", PD_CT_INT, A(max_connections), "0", 0, 10000000,
     .help = "API connections open at once; more are refused at accept (flow log reason max_connections); "
             "0 = the open-file limit less 256"},
    {"max_connections_per_ip", PD_CT_INT, A(max_connections_per_ip), "256", 0, 10000000,
     .help = "API connections open at once from one client address; more are refused at accept (flow log reason "
             "max_connections_per_ip); 0 = no limit. Behind a load balancer every connection has its address"},
    {"http2_max_streams_per_s", PD_CT_INT, A(http2_max_streams_per_s), "2000", 1, 10000000,
     .help = "streams one HTTP/2 connection may open per second; more -> GOAWAY ENHANCE_YOUR_CALM and close"},
    {"http2_max_resets_per_s", PD_CT_INT, A(http2_max_resets_per_s), "200", 1, 10000000,
     .help = "RST_STREAM frames one HTTP/2 connection may send per second; more -> GOAWAY ENHANCE_YOUR_CALM and close "
             "(rapid reset, CVE-2023-44487)"},
};
#undef A

#define D(f) offsetof(pd_edge_admin_config_t, f)
static const pd_config_key_t admin_keys[] = {
    {"listen", PD_CT_ADDR, D(listen), "127.0.0.1:9090",
     .help = "address of the admin listener (health and readiness); plain HTTP"},
    {"allow_public", PD_CT_BOOL, D(allow_public), "false",
     .help = "allow a non-loopback admin address (the private-subnet rule is refused otherwise)"},
    {"test_endpoints", PD_CT_BOOL, D(test_endpoints), "false",
     .help = "serve GET /debug/sleep?ms=N and /debug/stall?ms=N (blocks its event loop) on the admin listener "
             "(for tests of graceful shutdown and the watchdog only)"},
};
#undef D

int
pd_edge_config_register(pd_config_t *cfg, pd_edge_api_config_t *api, pd_edge_admin_config_t *admin)
{
    int r = pd_config_add(cfg, "api", api_keys, sizeof(api_keys) / sizeof(api_keys[0]), api);
    if (r == 0)
        r = pd_config_add(cfg, "admin", admin_keys, sizeof(admin_keys) / sizeof(admin_keys[0]), admin);
    return r;
}

int
pd_edge_admin_check(const pd_edge_admin_config_t *admin, char *err, size_t cap)
{
    char host[256], portstr[8];
    uint16_t port;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    if (admin->listen == NULL || admin->listen[0] == '\0' || admin->allow_public)
        return 0;
    if (pd_config_parse_addr(admin->listen, host, sizeof(host), &port) != 0) {
        snprintf(err, cap, "[admin] listen = \"%s\": not an address", admin->listen);
        return PD_ERR_CONFIG;
    }
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    if (getaddrinfo(host, portstr, &hints, &ai) != 0 || ai == NULL) {
        snprintf(err, cap, "[admin] listen = \"%s\": cannot resolve %s", admin->listen, host);
        return PD_ERR_CONFIG;
    }
    bool loopback = true;
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        if (a->ai_family == AF_INET)
            loopback = loopback && (ntohl(((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr) >> 24) == 127;
        else if (a->ai_family == AF_INET6)
            loopback = loopback && IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr);
    }
    freeaddrinfo(ai);
    if (!loopback) {
        snprintf(err, cap,
                 "[admin] listen = \"%s\" is not a loopback address (private-subnet rule); "
                 "set [admin] allow_public = true to override",
                 admin->listen);
        return PD_ERR_CONFIG;
    }
    return 0;
}
