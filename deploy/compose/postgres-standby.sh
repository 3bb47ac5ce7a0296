#!/bin/sh
# postgres-standby in deploy/compose.yaml: on first start a base backup of the primary
# (with standby.signal and primary_conninfo, application_name=standby: the name the primary's
# synchronous_standby_names waits for), then a hot standby.
set -eu
data=/var/lib/postgresql/data
printf 'postgres-primary:5432:*:postgres:%s\n' "$(cat /run/secrets/postgres-password)" > /tmp/pgpass
chmod 0600 /tmp/pgpass
if [ ! -s "$data/PG_VERSION" ]; then
    pg_basebackup -h postgres-primary -U postgres -D "$data" -X stream -R \
        -d "application_name=standby"
    chmod 0700 "$data"
fi
exec postgres -D "$data" -c hot_standby=on
