/*
 * The tests' PostgreSQL server (pg_server.h). The postmaster is started directly
 * rather than through pg_ctl: pg_ctl detaches the server, so a test killed before its
 * cleanup would leave it running, while a direct child gets PR_SET_PDEATHSIG and is
 * stopped by the pid this file holds.
 */
#include "payd/argv.h"
#include "pg_server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static pid_t g_pid, g_standby_pid;
static uint16_t g_port, g_standby_port;
static char g_dir[64];
static char g_conf[1024]; /* pd_pg_set_conf's lines */
static bool g_atexit;

bool
pd_pg_wanted(void)
{
    const char *v = getenv("PAYD_TEST_STORE");
    return v != NULL && strcmp(v, "postgres") == 0;
}

uint16_t
pd_pg_port(void)
{
    return g_port;
}

static const char *
bindir(void)
{
    const char *b = getenv("PAYD_TEST_PG_BIN");
    return b != NULL && b[0] != '\0' ? b : "/usr/lib/postgresql/15/bin";
}

const char *
pd_pg_bindir(void)
{
    return bindir();
}

void
pd_pg_set_conf(const char *lines)
{
    snprintf(g_conf, sizeof(g_conf), "%s", lines != NULL ? lines : "");
}

int
pd_pg_chown(const char *path)
{
    if (geteuid() != 0)
        return 0;
    struct passwd *pw = getpwnam("postgres");
    return pw != NULL && chown(path, pw->pw_uid, pw->pw_gid) == 0 ? 0 : -1;
}

static void
nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint16_t
free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    uint16_t port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* in a child: become the postgres system user when running as root (initdb and the
 * server refuse root) */
static void
drop_root(void)
{
    if (geteuid() != 0)
        return;
    struct passwd *pw = getpwnam("postgres");
    if (pw == NULL || setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        fprintf(stderr, "pg_server: cannot become the postgres user\n");
        _exit(126);
    }
}

/* runs argv to its end as the server's user, output to log; its exit status */
static int
run_as_pg(const char *const *argv, const char *log)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        drop_root();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        char **av = pd_argv_dup(argv); /* a single-threaded child: allocating is safe */
        if (av != NULL)
            execv(av[0], av);
        _exit(127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int
pd_pg_run(const char *const *argv, const char *log)
{
    return run_as_pg(argv, log);
}

static void
rm_rf(const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/rm", "rm", "-rf", dir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

static void
print_log(void)
{
    char path[128], buf[4096];
    snprintf(path, sizeof(path), "%s/pg.log", g_dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "pg_server: server log:\n%s\n", buf);
}

static void
stop_pid(pid_t *pidp)
{
    if (*pidp > 0) {
        pid_t pid = *pidp;
        int st;
        kill(pid, SIGINT); /* fast shutdown: aborts sessions, then a clean stop */
        for (int i = 0; i < 1000 && waitpid(pid, &st, WNOHANG) != pid; i++)
            nap_ms(10);
        if (kill(pid, 0) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
        }
        *pidp = 0;
    }
}

void
pd_pg_stop(void)
{
    stop_pid(&g_standby_pid);
    stop_pid(&g_pid);
    if (g_dir[0] != '\0' && getenv("PAYD_TEST_KEEP") == NULL)
        rm_rf(g_dir);
    g_dir[0] = '\0';
    g_port = g_standby_port = 0;
}

static void
on_signal(int sig)
{
    /* a test stopped by a signal still stops its server (the death signal covers SIGKILL) */
    if (g_pid > 0)
        kill(g_pid, SIGQUIT);
    if (g_standby_pid > 0)
        kill(g_standby_pid, SIGQUIT);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void
conninfo(char *out, size_t cap, const char *user, const char *db)
{
    snprintf(out, cap, "host=127.0.0.1 port=%u user=%s password=%s dbname='%s' connect_timeout=5", g_port, user,
             PD_PG_PASSWORD, db);
}

/* the postmaster on data and port as the server's user, a child of the test that dies with it */
static pid_t
spawn_postmaster(const char *data, const char *portarg, const char *log)
{
    char postgres[300];
    snprintf(postgres, sizeof(postgres), "%s/postgres", bindir());
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    drop_root();
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* after the uid change, which clears it */
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    const char *argv[] = {postgres, "-D", data, "-p", portarg, "-k", g_dir, "-c", "listen_addresses=127.0.0.1",
                          "-c", "max_connections=200", "-c", "shared_buffers=64MB", "-c", "fsync=on",
                          "-c", "synchronous_commit=on", "-c", "log_min_messages=warning", NULL};
    char **av = pd_argv_dup(argv);
    if (av != NULL)
        execv(postgres, av);
    _exit(127);
}

/* the postmaster on data on a free port (up to attempts times, another port each time it
 * exits at once: the port was taken meanwhile); 0 once it accepts connections, else -1
 * (g_pid set while it runs) */
static int
launch(const char *data, const char *log, int attempts)
{
    char portarg[16], info[256];
    for (int attempt = 0; attempt < attempts; attempt++) {
        g_port = free_port();
        snprintf(portarg, sizeof(portarg), "%u", g_port);
        pid_t pid = spawn_postmaster(data, portarg, log);
        if (pid < 0)
            return -1;
        g_pid = pid;
        conninfo(info, sizeof(info), "postgres", "postgres");
        for (int i = 0; i < 600; i++) { /* 30 s */
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                g_pid = 0;
                break;
            }
            if (PQping(info) == PQPING_OK)
                return 0;
            nap_ms(50);
        }
        if (g_pid > 0)
            break;
    }
    return -1;
}

/* appends the lines pd_pg_set_conf gave to data's postgresql.conf */
static int
append_conf(const char *data)
{
    char path[128];
    if (g_conf[0] == '\0')
        return 0;
    snprintf(path, sizeof(path), "%s/postgresql.conf", data);
    FILE *f = fopen(path, "a");
    if (f == NULL)
        return -1;
    int ok = fprintf(f, "\n%s\n", g_conf) > 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

int
pd_pg_start(void)
{
    char data[96], pwfile[96], log[96];
    if (g_pid > 0)
        return 0;
    snprintf(g_dir, sizeof(g_dir), "/tmp/payd-pg-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    if (!g_atexit) {
        atexit(pd_pg_stop);
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        signal(SIGABRT, on_signal);
        g_atexit = true;
    }
    snprintf(data, sizeof(data), "%s/data", g_dir);
    snprintf(pwfile, sizeof(pwfile), "%s/pw", g_dir);
    snprintf(log, sizeof(log), "%s/pg.log", g_dir);
    if (write_file(pwfile, PD_PG_PASSWORD "\n") != 0)
        goto fail;
    if (pd_pg_chown(g_dir) != 0 || pd_pg_chown(pwfile) != 0) {
        fprintf(stderr, "pg_server: no postgres system user to run the server as\n");
        goto fail;
    }
    char initdb[300];
    snprintf(initdb, sizeof(initdb), "%s/initdb", bindir());
    const char *iargv[] = {initdb, "-D", data, "-U", "postgres", "--pwfile", pwfile, "--auth-host=scram-sha-256",
                           "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions", NULL};
    if (run_as_pg(iargv, log) != 0) {
        fprintf(stderr, "pg_server: initdb failed\n");
        print_log();
        goto fail;
    }
    if (append_conf(data) != 0) {
        fprintf(stderr, "pg_server: cannot add to %s/postgresql.conf\n", data);
        goto fail;
    }
    if (launch(data, log, 5) == 0) {
        if (pd_pg_sql("postgres", "CREATE ROLE payd LOGIN PASSWORD '" PD_PG_PASSWORD "'") != 0)
            goto fail;
        return 0;
    }
    fprintf(stderr, "pg_server: the server did not start\n");
    print_log();
fail:
    pd_pg_stop();
    return -1;
}

void
pd_pg_shutdown(void)
{
    stop_pid(&g_pid);
}

int
pd_pg_start_on(const char *data)
{
    char log[96];
    if (g_pid > 0 || g_dir[0] == '\0')
        return -1; /* the old server first (pd_pg_shutdown), and its dir for the socket and log */
    snprintf(log, sizeof(log), "%s/pg.log", g_dir);
    /* once: a recovery that stops the server (a target it never reached) would again */
    if (launch(data, log, 1) == 0)
        return 0;
    fprintf(stderr, "pg_server: the server on %s did not start\n", data);
    print_log();
    return -1;
}

int
pd_pg_sql(const char *db, const char *sql)
{
    char info[256];
    conninfo(info, sizeof(info), "postgres", db);
    PGconn *c = PQconnectdb(info);
    int r = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *res = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(res);
        r = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
        if (r != 0)
            fprintf(stderr, "pg_server: %s: %s", sql, PQresultErrorMessage(res));
        PQclear(res);
    } else {
        fprintf(stderr, "pg_server: cannot connect: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return r;
}

int
pd_pg_database(const char *name, bool with_password, char *url, size_t cap)
{
    char sql[256];
    if (pd_pg_start() != 0 || strchr(name, '"') != NULL || strchr(name, '\'') != NULL)
        return -1;
    /* CREATE DATABASE has no IF NOT EXISTS: a database already there is fine */
    snprintf(sql, sizeof(sql),
             "SELECT 1 FROM pg_database WHERE datname = '%s'", name);
    char info[256];
    conninfo(info, sizeof(info), "postgres", "postgres");
    PGconn *c = PQconnectdb(info);
    int r = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *res = PQexec(c, sql);
        bool exists = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
        PQclear(res);
        r = 0;
        if (!exists) {
            snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\" OWNER payd", name);
            res = PQexec(c, sql);
            r = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
            if (r != 0)
                fprintf(stderr, "pg_server: %s: %s", sql, PQresultErrorMessage(res));
            PQclear(res);
        }
    }
    PQfinish(c);
    if (r == 0)
        snprintf(url, cap, "postgresql://payd%s@127.0.0.1:%u/%s", with_password ? ":" PD_PG_PASSWORD : "", g_port, name);
    return r;
}

/* the first column of the first row of sql as the superuser on port (e.g. the standby) into out */
static int
sql_value_at(uint16_t port, const char *sql, char *out, size_t cap)
{
    char info[256];
    snprintf(info, sizeof(info), "host=127.0.0.1 port=%u user=postgres password=%s dbname=postgres connect_timeout=5",
             port, PD_PG_PASSWORD);
    PGconn *c = PQconnectdb(info);
    int r = -1;
    out[0] = '\0';
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *res = PQexec(c, sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK) {
            r = 0;
            if (PQntuples(res) > 0 && PQnfields(res) > 0)
                snprintf(out, cap, "%s", PQgetvalue(res, 0, 0));
        }
        PQclear(res);
    }
    PQfinish(c);
    return r;
}

uint16_t
pd_pg_standby_start(void)
{
    char data[96], log[96], portarg[16], bb[300], conn[256], v[64];
    if (g_standby_pid > 0)
        return g_standby_port;
    if (pd_pg_start() != 0)
        return 0;
    snprintf(data, sizeof(data), "%s/standby", g_dir);
    snprintf(log, sizeof(log), "%s/standby.log", g_dir);
    snprintf(bb, sizeof(bb), "%s/pg_basebackup", bindir());
    snprintf(conn, sizeof(conn), "host=127.0.0.1 port=%u user=postgres password=%s", g_port, PD_PG_PASSWORD);
    /* -R: standby.signal and primary_conninfo; the WAL streamed during the copy */
    const char *argv[] = {bb, "-d", conn, "-D", data, "-X", "stream", "-R", "--no-sync", NULL};
    if (run_as_pg(argv, log) != 0) {
        fprintf(stderr, "pg_server: pg_basebackup failed (see %s)\n", log);
        return 0;
    }
    g_standby_port = free_port();
    snprintf(portarg, sizeof(portarg), "%u", g_standby_port);
    if ((g_standby_pid = spawn_postmaster(data, portarg, log)) < 0) {
        g_standby_pid = 0;
        return 0;
    }
    /* commits on the primary now wait for the standby (the standby's copy of the
     * configuration predates this: once promoted, it has no standby to wait for) */
    if (pd_pg_sql("postgres", "ALTER SYSTEM SET synchronous_standby_names = '*'") != 0 ||
        pd_pg_sql("postgres", "SELECT pg_reload_conf()") != 0)
        return 0;
    for (int i = 0; i < 600; i++) { /* 30 s */
        if (sql_value_at(g_port, "SELECT sync_state FROM pg_stat_replication", v, sizeof(v)) == 0 &&
            strcmp(v, "sync") == 0)
            return g_standby_port;
        nap_ms(50);
    }
    fprintf(stderr, "pg_server: the standby did not become synchronous\n");
    return 0;
}

uint16_t
pd_pg_standby_port(void)
{
    return g_standby_port;
}

void
pd_pg_kill_primary(void)
{
    if (g_pid <= 0)
        return;
    kill(g_pid, SIGKILL);
    waitpid(g_pid, NULL, 0);
    g_pid = 0;
}

int
pd_pg_promote(void)
{
    char v[16];
    if (g_standby_pid <= 0 || sql_value_at(g_standby_port, "SELECT pg_promote(true, 30)", v, sizeof(v)) != 0 ||
        strcmp(v, "t") != 0)
        return -1;
    for (int i = 0; i < 600; i++) { /* until it takes writes */
        if (sql_value_at(g_standby_port, "SELECT pg_is_in_recovery()", v, sizeof(v)) == 0 && strcmp(v, "f") == 0) {
            /* from now on the promoted server is the server */
            stop_pid(&g_pid);
            g_pid = g_standby_pid;
            g_port = g_standby_port;
            g_standby_pid = 0;
            return 0;
        }
        nap_ms(50);
    }
    return -1;
}
