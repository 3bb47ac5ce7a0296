#!/bin/sh
# First start of postgres-primary (docker-entrypoint-initdb.d): the payments database and
# role, and the vault's own database and role (docs/postgres.md, "The vault's database").
set -eu
payd_pw=$(cat /run/secrets/payd-db-password)
vault_pw=$(cat /run/secrets/vault-db-password)
psql -v ON_ERROR_STOP=1 --username postgres \
     -v payd_pw="$payd_pw" -v vault_pw="$vault_pw" <<'SQL'
CREATE ROLE payd LOGIN PASSWORD :'payd_pw';
CREATE DATABASE payd OWNER payd;
REVOKE ALL ON DATABASE payd FROM PUBLIC;
CREATE ROLE payd_vault LOGIN PASSWORD :'vault_pw';
CREATE DATABASE payd_vault OWNER payd_vault;
REVOKE ALL ON DATABASE payd_vault FROM PUBLIC;
SQL
