/* Progress lines of payctl backup's commands. */
#include <stdarg.h>
#include <stdio.h>

#include "backup/internal.h"

void
pd_backup_say(pd_backup_progress_fn progress, void *arg, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (progress != NULL)
        progress(arg, line);
}
