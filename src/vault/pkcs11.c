/*
 * The root key under a PKCS#11 token (an HSM, or SoftHSM2 in tests): the token holds
 * an AES-256 key that is sensitive and never extractable; the vault's root key is
 * stored on disk only encrypted by it (AES-GCM computed inside the token), and is
 * unwrapped at start. The token key never leaves the token.
 *
 * The wrapped key file (DIR/root.p11):
 *   payd-vault-p11 1
 *   token <token label>
 *   key <key label>
 *   iv <24 hex>
 *   sealed <96 hex: ciphertext + tag>
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>

#include "payd/buf.h"
#include "vault/unseal.h"

#define P11_MAGIC "payd-vault-p11 1"
/* the AAD of the root key's wrap (PKCS#11 takes it as a mutable pointer) */
static CK_BYTE p11_aad[] = "payd-root-key";
#define P11_LABEL_MAX 128
#define P11_IV 12
#define P11_TAG 16
#define PIN_MAX 256

typedef struct {
    void *lib;
    CK_FUNCTION_LIST_PTR f;
    CK_SESSION_HANDLE s;
    bool initialized, open;
} p11_t;

static void
p11_close(p11_t *t)
{
    if (t->open)
        t->f->C_CloseSession(t->s);
    if (t->initialized)
        t->f->C_Finalize(NULL);
    if (t->lib != NULL)
        dlclose(t->lib);
    memset(t, 0, sizeof(*t));
}

static int
read_pin(const pd_p11_opts_t *o, char pin[PIN_MAX], char *err, size_t errcap)
{
    const char *env = getenv("PAYD_VAULT_PKCS11_PIN");
    if (o->pin_file == NULL) {
        if (env == NULL || env[0] == '\0') {
            snprintf(err, errcap, "no token PIN: use --pkcs11-pin-file FILE or PAYD_VAULT_PKCS11_PIN");
            return PD_ERR_CONFIG;
        }
        snprintf(pin, PIN_MAX, "%s", env);
        return 0;
    }
    FILE *f = fopen(o->pin_file, "re");
    if (f == NULL) {
        snprintf(err, errcap, "%s: %s", o->pin_file, strerror(errno));
        return PD_ERR_CONFIG;
    }
    size_t n = fread(pin, 1, PIN_MAX - 1, f);
    fclose(f);
    pin[n] = '\0';
    pin[strcspn(pin, "\r\n")] = '\0';
    if (pin[0] == '\0') {
        snprintf(err, errcap, "%s is empty", o->pin_file);
        return PD_ERR_CONFIG;
    }
    return 0;
}

/* loads the module, finds the token by label, logs in */
static int
p11_open(p11_t *t, const pd_p11_opts_t *o, char *err, size_t errcap)
{
    char pin[PIN_MAX];
    CK_RV rv;
    int r;

    memset(t, 0, sizeof(*t));
    if ((t->lib = dlopen(o->module, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        snprintf(err, errcap, "cannot load PKCS#11 module %s: %s", o->module, dlerror());
        return PD_ERR_CONFIG;
    }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(t->lib, "C_GetFunctionList");
    if (get == NULL || get(&t->f) != CKR_OK) {
        snprintf(err, errcap, "%s is not a PKCS#11 module", o->module);
        p11_close(t);
        return PD_ERR_CONFIG;
    }
    if ((rv = t->f->C_Initialize(NULL)) != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        snprintf(err, errcap, "PKCS#11 C_Initialize failed (0x%lx)", (unsigned long)rv);
        p11_close(t);
        return PD_ERR_CRYPTO;
    }
    t->initialized = true;
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    if (t->f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        n = 0;
    size_t ll = strlen(o->token);
    for (CK_ULONG i = 0; i < n && !t->open; i++) {
        CK_TOKEN_INFO ti;
        if (t->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK || ll > sizeof(ti.label))
            continue;
        /* labels are blank-padded to 32 bytes */
        bool match = memcmp(ti.label, o->token, ll) == 0;
        for (size_t k = ll; match && k < sizeof(ti.label); k++)
            match = ti.label[k] == ' ';
        if (match && t->f->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &t->s) == CKR_OK)
            t->open = true;
    }
    if (!t->open) {
        snprintf(err, errcap, "no PKCS#11 token labelled \"%s\" in %s", o->token, o->module);
        p11_close(t);
        return PD_ERR_NOTFOUND;
    }
    if ((r = read_pin(o, pin, err, errcap)) != 0) {
        p11_close(t);
        return r;
    }
    rv = t->f->C_Login(t->s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    OPENSSL_cleanse(pin, sizeof(pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        if (rv == CKR_PIN_INCORRECT)
            snprintf(err, errcap, "the token PIN is wrong");
        else
            snprintf(err, errcap, "cannot log in to the token (0x%lx)", (unsigned long)rv);
        p11_close(t);
        return rv == CKR_PIN_INCORRECT ? PD_ERR_AUTH : PD_ERR_CRYPTO;
    }
    return 0;
}

static int
find_key(p11_t *t, const char *label, CK_OBJECT_HANDLE *key)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    char lab[P11_LABEL_MAX];
    int ll = snprintf(lab, sizeof(lab), "%s", label);
    if (ll < 0 || (size_t)ll >= sizeof(lab))
        return PD_ERR_TOOBIG;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, lab, (CK_ULONG)ll}};
    CK_ULONG found = 0;
    if (t->f->C_FindObjectsInit(t->s, tmpl, 2) != CKR_OK)
        return PD_ERR_CRYPTO;
    CK_RV rv = t->f->C_FindObjects(t->s, key, 1, &found);
    t->f->C_FindObjectsFinal(t->s);
    if (rv != CKR_OK)
        return PD_ERR_CRYPTO;
    return found == 1 ? 0 : PD_ERR_NOTFOUND;
}

/* an AES-256 key that stays in the token: sensitive, never extractable, for encrypt/decrypt only */
static int
generate_key(p11_t *t, const char *label, CK_OBJECT_HANDLE *key)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_ULONG len = 32;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    char lab[P11_LABEL_MAX];
    int ll = snprintf(lab, sizeof(lab), "%s", label);
    if (ll < 0 || (size_t)ll >= sizeof(lab))
        return PD_ERR_TOOBIG;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},      {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE_LEN, &len, sizeof(len)},  {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},    {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},  {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)},    {CKA_LABEL, lab, (CK_ULONG)ll},
        {CKA_WRAP, &no, sizeof(no)},         {CKA_UNWRAP, &no, sizeof(no)},
        {CKA_SIGN, &no, sizeof(no)},         {CKA_VERIFY, &no, sizeof(no)},
    };
    CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
    return t->f->C_GenerateKey(t->s, &m, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), key) == CKR_OK ? 0 : PD_ERR_CRYPTO;
}

static int
gcm(p11_t *t, CK_OBJECT_HANDLE key, bool encrypt, uint8_t iv[P11_IV], uint8_t *in, size_t inlen, uint8_t *out,
    size_t outcap, size_t *outlen)
{
    CK_GCM_PARAMS p = {.pIv = iv, .ulIvLen = P11_IV, .ulIvBits = P11_IV * 8, .pAAD = p11_aad,
                       .ulAADLen = sizeof(p11_aad) - 1, .ulTagBits = P11_TAG * 8};
    CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof(p)};
    CK_ULONG n = outcap;
    CK_RV rv = encrypt ? t->f->C_EncryptInit(t->s, &m, key) : t->f->C_DecryptInit(t->s, &m, key);
    if (rv == CKR_OK)
        rv = encrypt ? t->f->C_Encrypt(t->s, in, inlen, out, &n) : t->f->C_Decrypt(t->s, in, inlen, out, &n);
    if (rv != CKR_OK)
        return encrypt ? PD_ERR_CRYPTO : PD_ERR_AUTH;
    *outlen = n;
    return 0;
}

int
pd_p11_wrap_new(const pd_p11_opts_t *o, const char *path, uint8_t root[PD_KEY_LEN], char *err, size_t errcap)
{
    p11_t t;
    CK_OBJECT_HANDLE key;
    uint8_t iv[P11_IV], sealed[PD_KEY_LEN + P11_TAG];
    char ivhex[2 * P11_IV + 1], sealedhex[2 * sizeof(sealed) + 1], tmp[4200], text[512];
    size_t n = 0;
    int r, fd = -1;

    err[0] = '\0';
    if ((r = p11_open(&t, o, err, errcap)) != 0)
        return r;
    if ((r = find_key(&t, o->key_label, &key)) == PD_ERR_NOTFOUND && (r = generate_key(&t, o->key_label, &key)) != 0)
        snprintf(err, errcap, "the token cannot generate an AES-256 key");
    else if (r != 0)
        snprintf(err, errcap, "cannot look up key \"%s\" in the token", o->key_label);
    if (r == 0 && (RAND_priv_bytes(root, PD_KEY_LEN) != 1 || RAND_bytes(iv, sizeof(iv)) != 1))
        r = PD_ERR_CRYPTO;
    if (r == 0 && (r = gcm(&t, key, true, iv, root, PD_KEY_LEN, sealed, sizeof(sealed), &n)) == 0 && n != sizeof(sealed))
        r = PD_ERR_CRYPTO;
    p11_close(&t);
    if (r != 0) {
        if (err[0] == '\0')
            snprintf(err, errcap, "the token cannot encrypt with AES-GCM");
        OPENSSL_cleanse(root, PD_KEY_LEN);
        return r;
    }
    pd_hex(iv, sizeof(iv), ivhex);
    pd_hex(sealed, sizeof(sealed), sealedhex);
    int len = snprintf(text, sizeof(text), "%s\ntoken %s\nkey %s\niv %s\nsealed %s\n", P11_MAGIC, o->token,
                       o->key_label, ivhex, sealedhex);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (len <= 0 || (size_t)len >= sizeof(text) || (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
        write(fd, text, (size_t)len) != len || fsync(fd) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errcap, "cannot write %s", path);
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        OPENSSL_cleanse(root, PD_KEY_LEN);
        return PD_ERR_IO;
    }
    close(fd);
    return 0;
}

/* "name value\n" -> value into out; false if the line is not there or too long */
static bool
field(const char *text, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ' ') {
            size_t vl = strcspn(p + nl + 1, "\n");
            if (vl == 0 || vl >= cap)
                return false;
            memcpy(out, p + nl + 1, vl);
            out[vl] = '\0';
            return true;
        }
    }
    return false;
}

int
pd_p11_unwrap(const pd_p11_opts_t *o, const char *path, uint8_t root[PD_KEY_LEN], char *err, size_t errcap)
{
    char text[1024], token[64], label[64], ivhex[64], sealedhex[256];
    uint8_t iv[P11_IV], sealed[PD_KEY_LEN + P11_TAG];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return PD_ERR_NOTFOUND;
    }
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0 || (size_t)n == sizeof(text) - 1) {
        snprintf(err, errcap, "%s: unreadable or too large", path);
        return PD_ERR_INVALID;
    }
    text[n] = '\0';
    if (strncmp(text, P11_MAGIC "\n", strlen(P11_MAGIC) + 1) != 0 || !field(text, "token", token, sizeof(token)) ||
        !field(text, "key", label, sizeof(label)) || !field(text, "iv", ivhex, sizeof(ivhex)) ||
        !field(text, "sealed", sealedhex, sizeof(sealedhex)) || strlen(ivhex) != 2 * P11_IV ||
        strlen(sealedhex) != 2 * sizeof(sealed) || pd_unhex(ivhex, strlen(ivhex), iv) != 0 ||
        pd_unhex(sealedhex, strlen(sealedhex), sealed) != 0) {
        snprintf(err, errcap, "%s is not a payd PKCS#11 key file", path);
        return PD_ERR_INVALID;
    }
    if (strcmp(token, o->token) != 0 || strcmp(label, o->key_label) != 0) {
        snprintf(err, errcap, "%s was wrapped by key \"%s\" of token \"%s\", not \"%s\" of \"%s\"", path, label, token,
                 o->key_label, o->token);
        return PD_ERR_CONFIG;
    }
    p11_t t;
    CK_OBJECT_HANDLE key;
    uint8_t plain[sizeof(sealed)]; /* some tokens want room for the whole input */
    size_t outlen = 0;
    int r = p11_open(&t, o, err, errcap);
    if (r != 0)
        return r;
    if ((r = find_key(&t, label, &key)) != 0) {
        snprintf(err, errcap, "key \"%s\" is not in token \"%s\"", label, token);
    } else if (gcm(&t, key, false, iv, sealed, sizeof(sealed), plain, sizeof(plain), &outlen) != 0 ||
               outlen != PD_KEY_LEN) {
        r = PD_ERR_AUTH;
        snprintf(err, errcap, "the token could not unwrap %s (altered, or wrapped by another key)", path);
    } else {
        memcpy(root, plain, PD_KEY_LEN);
    }
    OPENSSL_cleanse(plain, sizeof(plain));
    p11_close(&t);
    return r;
}
