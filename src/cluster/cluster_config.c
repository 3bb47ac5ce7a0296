/* [cluster] (payd/cluster.h) and the node id: from the setting or DATA_DIR/node_id. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "payd/cluster.h"
#include "payd/log.h"

#define S(f) offsetof(pd_cluster_config_t, f)
static const pd_config_key_t keys[] = {
    {"node_id", PD_CT_STR, S(node_id), "",
     .help = "this node's id in the cluster (1-63 of A-Z a-z 0-9 . _ -); empty: DATA_DIR/node_id, made at the first start"},
    {"lease_ttl", PD_CT_MS, S(lease_ttl_ms), "15s", 1000, 600000,
     .help = "how long a worker lease (relay, stream, recovery, alarms) lasts unless renewed; renewed every lease_ttl / 3"},
    {"heartbeat_interval", PD_CT_MS, S(heartbeat_interval_ms), "2s", 100, 60000,
     .help = "how often the node writes its heartbeat; a node is dead after 3 intervals without one"},
};
#undef S

int
pd_cluster_config_register(pd_config_t *cfg, pd_cluster_config_t *c)
{
    return pd_config_add(cfg, "cluster", keys, sizeof(keys) / sizeof(keys[0]), c);
}

bool
pd_cluster_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= PD_NODE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

int
pd_cluster_config_check(const pd_cluster_config_t *c, char *err, size_t cap)
{
    if (c->node_id[0] != '\0' && !pd_cluster_id_valid(c->node_id)) {
        snprintf(err, cap, "cluster.node_id: \"%s\" is not a node id (1-63 characters of A-Z a-z 0-9 . _ -)",
                 c->node_id);
        return PD_ERR_CONFIG;
    }
    if (c->heartbeat_interval_ms >= c->lease_ttl_ms) {
        snprintf(err, cap, "cluster.heartbeat_interval (%lld ms) must be shorter than cluster.lease_ttl (%lld ms)",
                 (long long)c->heartbeat_interval_ms, (long long)c->lease_ttl_ms);
        return PD_ERR_CONFIG;
    }
    return 0;
}

/* reads DATA_DIR/node_id: 0, PD_ERR_NOTFOUND (no file) or PD_ERR_CONFIG (not an id) */
static int
read_id(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return PD_ERR_NOTFOUND;
        pd_log_error("cannot read the node id", PD_LS("path", path), PD_LS("reason", strerror(errno)));
        return PD_ERR_CONFIG;
    }
    char line[PD_NODE_ID_MAX + 2] = "";
    bool got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    if (!got || !pd_cluster_id_valid(line) || strlen(line) >= cap) {
        pd_log_error("the node id file holds no node id (1-63 characters of A-Z a-z 0-9 . _ -); fix or remove it, "
                     "or set cluster.node_id",
                     PD_LS("path", path));
        return PD_ERR_CONFIG;
    }
    memcpy(out, line, strlen(line) + 1);
    return 0;
}

int
pd_cluster_node_id(const pd_cluster_config_t *c, const char *data_dir, char *out, size_t cap)
{
    if (c->node_id[0] != '\0') {
        if (!pd_cluster_id_valid(c->node_id) || strlen(c->node_id) >= cap)
            return PD_ERR_CONFIG;
        memcpy(out, c->node_id, strlen(c->node_id) + 1);
        return 0;
    }
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/node_id", data_dir) >= (int)sizeof(path))
        return PD_ERR_CONFIG;
    int r = read_id(path, out, cap);
    if (r != PD_ERR_NOTFOUND)
        return r;
    uint8_t rnd[6];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return PD_ERR_INTERNAL;
    char id[PD_NODE_ID_MAX];
    snprintf(id, sizeof(id), "node-%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    /* O_EXCL: two processes on one data dir cannot both get here (payd.lock), but a
     * file that appeared meanwhile is read, never replaced */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return read_id(path, out, cap);
        pd_log_error("cannot write the node id", PD_LS("path", path), PD_LS("reason", strerror(errno)));
        return PD_ERR_CONFIG;
    }
    size_t n = strlen(id);
    id[n] = '\n';
    bool ok = write(fd, id, n + 1) == (ssize_t)(n + 1) && fsync(fd) == 0;
    close(fd);
    id[n] = '\0';
    if (!ok) {
        (void)unlink(path);
        pd_log_error("cannot write the node id", PD_LS("path", path));
        return PD_ERR_CONFIG;
    }
    if (n >= cap)
        return PD_ERR_TOOBIG;
    memcpy(out, id, n + 1);
    pd_log_info("node id made for this data dir", PD_LS("node_id", out), PD_LS("path", path));
    return 0;
}
