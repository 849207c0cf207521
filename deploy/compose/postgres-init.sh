#!/usr/bin/env bash
# First start of the compose PostgreSQL: one database per service, owned by a role of its own
# whose password is that service's compose secret. (Run by the image's entrypoint, official or
# stand-in, from /docker-entrypoint-initdb.d.)
set -euo pipefail
for service in users thoughts tasks; do
    password=$(cat "/run/secrets/${service}_db_password")
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -v role="$service" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
SQL
    # pg_trgm for the thoughts search index; created by the superuser, used by the owner.
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$service" \
        -c 'CREATE EXTENSION IF NOT EXISTS pg_trgm'
done
