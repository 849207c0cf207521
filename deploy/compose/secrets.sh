#!/usr/bin/env bash
# Generates compose's secrets once, into the git-ignored var/compose-secrets/ (run by
# `make compose-up`; existing files are kept, so data stays readable across restarts):
#   postgres_password                  the PostgreSQL superuser's
#   <service>_db_password              each service's own database role
#   <service>_database_url             the URL that service connects with (holds its password)
#   frontend_secret_key                signs the frontend's CSRF tokens
#   admin_token                        what an operator sends to /admin/* (Bearer)
#   grafana_admin_password             Grafana's admin (profile observability)
# The folder is private to its owner; the files are readable so the containers' users can read
# their bind-mounted copies.
set -euo pipefail
dir=${1:-var/compose-secrets}
mkdir -p "$dir"
chmod 700 "$dir"
new() { [ -s "$dir/$1" ] || { python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$dir/$1"; echo "generated $dir/$1"; }; }
new postgres_password
new frontend_secret_key
new admin_token
new grafana_admin_password
for service in users thoughts tasks; do
    new "${service}_db_password"
    printf 'postgresql+asyncpg://%s:%s@postgres:5432/%s\n' "$service" \
        "$(cat "$dir/${service}_db_password")" "$service" > "$dir/${service}_database_url"
done
chmod 644 "$dir"/*
