/* Fuzzes the root key file parser (with a cheap scrypt: malformed input must be
 * refused before the KDF runs, and any accepted file must fail to open). */
#include <stdint.h>
#include <stdlib.h>

#include "payd/vault_crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t root[PD_KEY_LEN];
    char err[256];
    int r = pd_keyfile_parse(pd_view(data, size), "pass", 4, root, err, sizeof(err));
    if (r == 0)
        abort(); /* no fuzzer input can hold a root key sealed under "pass" */
    if (err[0] == '\0')
        abort(); /* every refusal explains itself */
    return 0;
}
