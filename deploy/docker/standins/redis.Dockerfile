# Stand-in for redis:7: Debian's redis-server and redis-cli on the PATH, data in /data.
ARG BASE=mythoughts-standin/debian:bookworm
FROM ${BASE}
# The official image's user and group, 999:999 (before the package would pick another), so
# that a manifest's runAsUser: 999 fits either image.
# hadolint ignore=DL3008
RUN groupadd --system --gid 999 redis \
    && useradd --system --uid 999 --gid 999 --home-dir /data --shell /usr/sbin/nologin redis \
    && apt-get update \
    && apt-get install -y --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
