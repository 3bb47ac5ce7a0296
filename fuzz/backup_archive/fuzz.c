/* Fuzzes the backup archive's parsers (include/payd/backup.h, src/backup/internal.h).
 * The first byte picks one: 'H' the clear header (an accepted header re-encodes to the
 * same bytes; every refusal explains itself), else the part stream of a decrypted body
 * (every part is read to its end; a refusal explains itself; nothing is written). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup/internal.h"
#include "payd/backup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
header(const uint8_t *data, size_t size)
{
    pd_backup_header_t h;
    char err[256] = "";
    pd_buf_t b;
    if (pd_backup_header_dec(pd_view(data, size), &h, err, sizeof(err)) != 0) {
        if (err[0] == '\0')
            abort();
        return;
    }
    pd_buf_init(&b, 1 << 16);
    if (pd_backup_header_enc(&b, &h) != 0 || b.len != size || memcmp(b.p, data, size) != 0)
        abort(); /* what parses is exactly what the encoder writes */
    pd_buf_free(&b);
}

static void
parts(const uint8_t *data, size_t size)
{
    /* the body already decrypted: the whole input is the reader's last buffer */
    uint8_t *copy = malloc(size + 1);
    if (copy == NULL)
        return;
    memcpy(copy, data, size);
    pd_bk_in_t in = {.buf = copy, .len = size, .eof = true};
    pd_bk_part_t p;
    bool end = false;
    int64_t count;
    char err[256] = "";
    int r = 0;
    for (int i = 0; i < 1000 && r == 0 && !end; i++) {
        err[0] = '\0';
        if ((r = pd_bk_next(&in, &p, &end, &count, err, sizeof(err))) == 0 && !end) {
            if (!pd_bk_name_ok(p.name, strlen(p.name)) || p.mode > 0777)
                abort(); /* the parser hands out only safe names */
            r = pd_bk_copy_part(&in, &p, -1, err, sizeof(err));
        }
    }
    if (r != 0 && err[0] == '\0')
        abort();
    free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] == 'H')
        header(data + 1, size - 1);
    else
        parts(data + 1, size - 1);
    return 0;
}
