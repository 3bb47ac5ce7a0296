/*
 * Configuration: an INI file (parsed by libinih), then environment overrides, then
 * command-line overrides, in that order of precedence (later wins).
 *
 * Each component declares its keys in a table of pd_config_key_t that points into a
 * plain struct it owns (offsets), and registers that table with pd_config_add(). The
 * loader rejects unknown sections and keys and out-of-range values with a message
 * naming the source (file:line, environment variable or flag), the key and the
 * accepted values.
 *
 * Environment names: PAYD_<SECTION>_<KEY> in upper case, e.g. PAYD_API_LISTEN.
 * Flags: --set section.key=value.
 */
#ifndef PAYD_CONFIG_H
#define PAYD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/error.h"

typedef enum {
    PD_CT_STR,  /* char * (owned by the config), may be empty */
    PD_CT_PATH, /* char *, a filesystem path */
    PD_CT_ADDR, /* char *, "host:port" (IPv4, [IPv6] or name) */
    PD_CT_INT,  /* int64_t within [min, max] */
    PD_CT_MS,   /* int64_t milliseconds; accepts 250ms, 10s, 5m, 2h, 30d or a bare number of ms */
    PD_CT_SIZE, /* int64_t bytes; accepts 512, 16k, 1m, 1g (powers of 1024) */
    PD_CT_BOOL, /* bool; true/false/yes/no/on/off/1/0 */
    PD_CT_ENUM, /* int index into choices */
} pd_config_type_t;

typedef struct {
    const char *name;
    pd_config_type_t type;
    size_t offset;              /* of the field in the section struct */
    const char *def;            /* default, in the same text form a user writes */
    int64_t min, max;           /* INT, MS, SIZE */
    const char *const *choices; /* ENUM: NULL-terminated */
    bool reloadable;            /* applied on SIGHUP without restart */
    const char *help;           /* one line for docs and --help */
} pd_config_key_t;

typedef struct pd_config pd_config_t;

int pd_config_new(pd_config_t **out) PD_WUR;
void pd_config_free(pd_config_t *c);

/*
 * Registers a section. base points at the struct the keys' offsets refer to; the
 * defaults are applied to it immediately. keys must outlive the config.
 */
int pd_config_add(pd_config_t *c, const char *section, const pd_config_key_t *keys, size_t nkeys, void *base) PD_WUR;

/* A tool's partial view of payd's configuration (payctl): in files and the
 * environment, sections that were not registered are skipped unchecked; keys of the
 * registered sections are checked as always, and pd_config_set still refuses an
 * unknown section. `payd --check-config` validates a whole file. */
void pd_config_partial(pd_config_t *c);

/* Sets one value from text; origin names where it came from (for messages). */
int pd_config_set(pd_config_t *c, const char *section, const char *key, const char *value, const char *origin) PD_WUR;
/* Parses "section.key=value". */
int pd_config_set_arg(pd_config_t *c, const char *arg, const char *origin) PD_WUR;
/* Loads an INI file. Every error is reported; the first one's code is returned. */
int pd_config_load_file(pd_config_t *c, const char *path) PD_WUR;
/* Applies PAYD_<SECTION>_<KEY> variables; an unknown PAYD_* variable is an error,
 * except the names listed in pd_config_env_ignored (used by other tools). */
int pd_config_load_env(pd_config_t *c, char **envp) PD_WUR;

/* Names of PAYD_* environment variables that are not settings (e.g. PAYD_VAULT_PASSPHRASE
 * read by the vault itself). Returns true for those. */
bool pd_config_env_ignored(const char *name);

/* The message of the last error ("file:3: key [api] listn: unknown key; accepted: ..."). */
const char *pd_config_error(const pd_config_t *c);

/* Writes the effective configuration (secrets never appear: keys named *secret*,
 * *password*, *passphrase* are masked) as INI to f. */
void pd_config_dump(const pd_config_t *c, void *file);
/* Writes a Markdown reference of every registered key. */
void pd_config_reference(const pd_config_t *c, void *file);

/* Value parsers, exposed for tests and fuzzers. */
int pd_config_parse_ms(const char *s, int64_t *out) PD_WUR;
int pd_config_parse_size(const char *s, int64_t *out) PD_WUR;
int pd_config_parse_bool(const char *s, bool *out) PD_WUR;
/* A whole decimal integer (optional '-', digits only: no spaces, no '+', no suffix)
 * from min to max. PD_ERR_INVALID when s is not one, PD_ERR_RANGE when it is outside
 * [min, max] or int64_t. *out is written only on success. */
int pd_config_parse_int(const char *s, int64_t min, int64_t max, int64_t *out) PD_WUR;
/* Splits "host:port" / "[v6]:port"; host gets a NUL-terminated copy. */
int pd_config_parse_addr(const char *s, char *host, size_t hostcap, uint16_t *port) PD_WUR;

#endif
