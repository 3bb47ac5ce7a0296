/*
 * Argument lists for exec. execv(3) takes `char *const argv[]` although it changes
 * nothing; payd builds its lists from string literals and configuration (const). A
 * copy made before fork() gives exec what it wants without casting const away, and
 * without allocating in a forked child.
 */
#ifndef PAYD_ARGV_H
#define PAYD_ARGV_H

/* A NULL-terminated copy of the NULL-terminated in (each string duplicated); NULL when
 * out of memory. */
char **pd_argv_dup(const char *const *in);
/* Frees a copy. Accepts NULL. */
void pd_argv_free(char **argv);

#endif
