# Stand-in for python:3.11-slim-bookworm: Debian's Python 3.11 with venv and pip, with `python`
# at /usr/local/bin as in the official image.
ARG BASE=mythoughts-standin/debian:bookworm
FROM ${BASE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3 /usr/local/bin/python \
    && ln -s /usr/bin/python3 /usr/local/bin/python3
ENV LANG=C.UTF-8
CMD ["python3"]
