# Stand-in for prom/prometheus: Debian's Prometheus as /bin/prometheus (the official entrypoint;
# /bin is /usr/bin on bookworm),
# data in /prometheus, configuration in /etc/prometheus, running as nobody; wget for health checks
# as the official (busybox) image has.
ARG BASE=mythoughts-standin/debian:bookworm
FROM ${BASE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus wget \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus /etc/prometheus \
    && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
