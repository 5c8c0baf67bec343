#!/bin/sh
# Grafana's login role for the compose stack: a member of collector_reader, which collector's
# migrations grant what Grafana needs (USAGE on schema api, SELECT on its views, EXECUTE on its
# functions) and nothing in schema collector. The official postgres image runs this once, when
# the database volume is first initialised, before collector has migrated: collector_reader is
# created here as the migrations create it (NOLOGIN), and the migrations keep an existing role.
# A role's settings apply only to sessions logging in as that role, so the login role gets the
# reader's statement timeout of its own.
set -eu

psql --set=ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=login="$COLLECTOR_GRAFANA_DB_USER" --set=password="$COLLECTOR_GRAFANA_DB_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE collector_reader NOLOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'collector_reader') \gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE collector_reader', :'login', :'password') \gexec
SELECT format('ALTER ROLE %I SET statement_timeout = %L', :'login', '30s') \gexec
SQL
