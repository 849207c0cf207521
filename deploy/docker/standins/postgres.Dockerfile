# Stand-in for postgres:15: Debian's PostgreSQL 15 with an entrypoint that honours what compose
# uses of the official image: POSTGRES_PASSWORD / POSTGRES_PASSWORD_FILE, POSTGRES_USER,
# POSTGRES_DB, PGDATA, and the scripts of /docker-entrypoint-initdb.d on the first start.
ARG BASE=mythoughts-standin/debian:bookworm
FROM ${BASE}
# The official image's user and group, 999:999 (before the package would pick another), so
# that a manifest's runAsUser: 999 fits either image.
# hadolint ignore=DL3008
RUN groupadd --system --gid 999 postgres \
    && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 postgresql-contrib-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /docker-entrypoint-initdb.d /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
