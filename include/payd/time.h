/* Clock helpers. Monotonic time for durations and deadlines, real time for records. */
#ifndef PAYD_TIME_H
#define PAYD_TIME_H

#include <stddef.h>
#include <stdint.h>

uint64_t pd_mono_ns(void);
static inline uint64_t pd_mono_ms(void) { return pd_mono_ns() / 1000000u; }
/* Milliseconds since the Unix epoch. */
int64_t pd_real_ms(void);
static inline int64_t pd_unix_now(void) { return pd_real_ms() / 1000; }
/* Formats ms since the epoch as RFC 3339 UTC with milliseconds: 2026-11-24T22:39:17.123Z
 * (24 chars + NUL; out must hold at least 25 bytes). */
void pd_time_rfc3339(int64_t ms, char *out, size_t cap);

#endif
