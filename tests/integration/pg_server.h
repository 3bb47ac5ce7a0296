/*
 * A real PostgreSQL 15 for the tests, on loopback: initdb into a temp dir and the
 * server started on a free 127.0.0.1 port (as the postgres system user when the
 * tests run as root), once per test process. It is a child of the test process that
 * dies with it (SIGKILL on the parent's death, whatever way that ends) and is stopped
 * by its pid, and its dir removed, at exit.
 *
 * The binaries come from Debian's postgresql package (/usr/lib/postgresql/15/bin, or
 * PAYD_TEST_PG_BIN). Roles: the superuser "postgres" and "payd", both with password
 * PD_PG_PASSWORD over TCP (scram-sha-256).
 */
#ifndef PAYD_TEST_PG_SERVER_H
#define PAYD_TEST_PG_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_PG_PASSWORD "pd-test-pw"

/* PAYD_TEST_STORE=postgres: the tests run payd on PostgreSQL */
bool pd_pg_wanted(void);
/* Starts the server if it is not running; 0 when it accepts connections. */
int pd_pg_start(void);
uint16_t pd_pg_port(void);
/* Creates database name (owned by payd) unless it exists, and writes a URL for user
 * payd (password included unless with_password is false) into url. */
int pd_pg_database(const char *name, bool with_password, char *url, size_t cap);
/* Runs SQL as the superuser in database db; 0 on success. */
int pd_pg_sql(const char *db, const char *sql);
/* A synchronous standby (synchronous_commit=on, synchronous_standby_names = '*' on the
 * primary): pg_basebackup of the running server, started on another free loopback port,
 * a child of the test like the primary. Returns its port once the primary reports it
 * "sync", 0 on failure. */
uint16_t pd_pg_standby_start(void);
uint16_t pd_pg_standby_port(void);
/* SIGKILLs the primary's postmaster (a crashed host: no shutdown) and reaps it. */
void pd_pg_kill_primary(void);
/* Promotes the standby (pg_promote) and waits until it takes writes; from then on it is
 * the server (pd_pg_port, pd_pg_sql, pd_pg_stop). 0 on success. */
int pd_pg_promote(void);
/* Point-in-time recovery (test_pg_pitr.c). Lines added to the postgresql.conf of the
 * next pd_pg_start, after initdb's (e.g. archive_mode and archive_command); NULL:
 * none. The text is copied (at most 1023 bytes). */
void pd_pg_set_conf(const char *lines);
/* The directory of PostgreSQL's binaries (pg_basebackup, psql, ...). */
const char *pd_pg_bindir(void);
/* Runs argv to its end as the server's system user (postgres when root), its output
 * appended to the file log; its exit status, -1 when it could not run. */
int pd_pg_run(const char *const *argv, const char *log);
/* Gives path to the postgres system user when the tests run as root (a dir the server
 * writes, a file it must own); 0 on success, and always when not root. */
int pd_pg_chown(const char *path);
/* A fast shutdown of the server (SIGINT, by its pid: sessions are aborted, then a
 * shutdown checkpoint) and waits for it; its temp dir stays until pd_pg_stop. */
void pd_pg_shutdown(void);
/* Starts a server on the existing data dir data (a restored base backup, with its
 * recovery settings) on a new free loopback port, after pd_pg_shutdown; from then on
 * it is the server (pd_pg_port, pd_pg_sql, pd_pg_stop). 0 once it accepts connections:
 * a server in archive recovery accepts them (read-only) once it is consistent. */
int pd_pg_start_on(const char *data);
/* Stops the server and the standby (also run at exit). */
void pd_pg_stop(void);

#endif
