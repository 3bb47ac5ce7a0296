/*
 * Dev-mode certificates: a local CA and a server certificate it signs, so that
 * `curl --cacert DIR/tls/ca.pem https://127.0.0.1:8443/...` works with full
 * verification. Never used outside --dev.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "payd/edge.h"

#define CA_DAYS 3650
#define SERVER_DAYS 825

static int
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

/* builds a certificate for key, signed by issuer_key (self-signed when issuer is NULL) */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool is_ca, long days)
{
    X509 *c = X509_new();
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    if (c == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
        goto fail;
    serial[0] &= 0x7f;
    if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c)) == NULL)
        goto fail;
    X509_set_version(c, 2);
    X509_gmtime_adj(X509_getm_notBefore(c), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c), days * 86400L);
    X509_set_pubkey(c, key);
    X509_NAME *name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"payd dev", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
    X509 *iss = issuer ? issuer : c;
    if (is_ca) {
        if (add_ext(c, iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") != 0 ||
            add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign") != 0)
            goto fail;
    } else {
        if (add_ext(c, iss, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
            add_ext(c, iss, NID_key_usage, "critical,digitalSignature") != 0 ||
            add_ext(c, iss, NID_ext_key_usage, "serverAuth") != 0 ||
            add_ext(c, iss, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") != 0)
            goto fail;
    }
    if (add_ext(c, iss, NID_subject_key_identifier, "hash") != 0)
        goto fail;
    if (issuer != NULL && add_ext(c, iss, NID_authority_key_identifier, "keyid:always") != 0)
        goto fail;
    if (X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()) == 0)
        goto fail;
    BN_free(bn);
    return c;
fail:
    BN_free(bn);
    X509_free(c);
    return NULL;
}

/* writes PEM atomically: tmp file with mode, fsync, rename */
static int
write_pem(const char *path, mode_t mode, X509 *cert, EVP_PKEY *key)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return -errno;
    }
    int ok = cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        ok = 0;
    fclose(f);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return PD_ERR_IO;
    }
    return 0;
}

static X509 *
read_cert(const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    X509 *c = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return c;
}

static EVP_PKEY *
read_key(const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return k;
}

int
pd_devcert_ensure(const char *dir, char *err, size_t errcap)
{
    char ca_path[4096], ca_key_path[4096], srv_path[4096], srv_key_path[4096];
    X509 *ca = NULL, *srv = NULL;
    EVP_PKEY *ca_key = NULL, *srv_key = NULL;
    int r = PD_ERR_CRYPTO;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errcap, "cannot create %s: %s", dir, strerror(errno));
        return -errno;
    }
    snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", dir);
    snprintf(ca_key_path, sizeof(ca_key_path), "%s/ca-key.pem", dir);
    snprintf(srv_path, sizeof(srv_path), "%s/server.pem", dir);
    snprintf(srv_key_path, sizeof(srv_key_path), "%s/server-key.pem", dir);

    ca = read_cert(ca_path);
    ca_key = read_key(ca_key_path);
    if (ca == NULL || ca_key == NULL) {
        X509_free(ca);
        EVP_PKEY_free(ca_key);
        if ((ca_key = EVP_EC_gen("P-256")) == NULL || (ca = make_cert(ca_key, "payd dev CA", NULL, NULL, true, CA_DAYS)) == NULL) {
            snprintf(err, errcap, "cannot create the dev CA");
            goto out;
        }
        if (write_pem(ca_key_path, 0600, NULL, ca_key) != 0 || write_pem(ca_path, 0644, ca, NULL) != 0) {
            snprintf(err, errcap, "cannot write %s", ca_path);
            r = PD_ERR_IO;
            goto out;
        }
        unlink(srv_path); /* a new CA invalidates the old server certificate */
    }
    srv = read_cert(srv_path);
    srv_key = read_key(srv_key_path);
    /* reissue when missing, not signed by this CA, or expiring within 30 days */
    if (srv == NULL || srv_key == NULL || X509_verify(srv, ca_key) != 1 ||
        X509_cmp_time(X509_get0_notAfter(srv), &(time_t){time(NULL) + 30 * 86400}) <= 0) {
        X509_free(srv);
        EVP_PKEY_free(srv_key);
        srv = NULL;
        if ((srv_key = EVP_EC_gen("P-256")) == NULL ||
            (srv = make_cert(srv_key, "localhost", ca, ca_key, false, SERVER_DAYS)) == NULL) {
            snprintf(err, errcap, "cannot create the dev server certificate");
            goto out;
        }
        if (write_pem(srv_key_path, 0600, NULL, srv_key) != 0 || write_pem(srv_path, 0644, srv, NULL) != 0) {
            snprintf(err, errcap, "cannot write %s", srv_path);
            r = PD_ERR_IO;
            goto out;
        }
    }
    r = 0;
out:
    ERR_clear_error();
    X509_free(ca);
    X509_free(srv);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
    return r;
}
