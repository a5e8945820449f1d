# handshake-proxy: the proxy, the echo origin, the test client and the log readers in one image.
# docker-compose.yml runs each service from it with a different command.
FROM python:3.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package build needs (pyproject names README.md as its readme), so
# editing tests or docs does not invalidate the install layer.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY handshake ./handshake
COPY proxy ./proxy
RUN pip install . && rm -rf /src

# A fixed uid (1000, the usual first user on a Linux host) so that files the proxy
# writes into the bind-mounted ./logs belong to you; override with `user:` in compose.
# /certs and /logs exist, writable by any uid (sticky), so volumes mounted there work
# whichever uid compose runs a service as.
RUN useradd --uid 1000 --user-group --create-home --shell /usr/sbin/nologin proxy \
    && mkdir -p /certs /logs \
    && chown proxy:proxy /certs /logs \
    && chmod 1777 /certs /logs
USER proxy
WORKDIR /home/proxy

EXPOSE 8443
# Healthy when a socket listens on the port of HANDSHAKE_PROXY_LISTEN (the variable `serve`
# reads), as /proc/net/tcp{,6} shows: no probe connection, so nothing in the traffic log.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=5 \
    CMD ["python", "-c", "import os, sys; port = int(os.environ.get('HANDSHAKE_PROXY_LISTEN', '127.0.0.1:8443').rpartition(':')[2]); rows = [line.split() for f in ('/proc/net/tcp', '/proc/net/tcp6') if os.path.exists(f) for line in open(f).readlines()[1:]]; sys.exit(0 if any(r[3] == '0A' and int(r[1].rsplit(':', 1)[1], 16) == port for r in rows) else 1)"]

ENTRYPOINT ["handshake-proxy"]
CMD ["serve"]
