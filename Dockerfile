# rcwatch container image.
#   docker build -t rcwatch .
#   docker run --rm -p 127.0.0.1:9410:9410 -v rcwatch-state:/var/lib/rcwatch rcwatch \
#       run --config /etc/rcwatch/rcwatch.yaml --metrics-addr 0.0.0.0:9410 \
#       --user-agent "rcwatch/0.1 (https://example.org/contact; you@example.org)"
# docker-compose.yml runs it with config/docker/rcwatch.yaml and the rest of the stack.

# -- build: wheels for rcwatch and its dependencies (binary wheels only: google-re2,
#    orjson and aiohttp publish manylinux wheels for CPython 3.11)
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY detectors ./detectors
COPY sinks ./sinks
RUN pip wheel --wheel-dir /wheels --prefer-binary .

# -- runtime
FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RCWATCH_HEALTHCHECK_URL=http://127.0.0.1:9410/healthz

# the wheel directory holds exactly one version of each package: nothing to pin here
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels rcwatch \
    && groupadd --system --gid 10001 rcwatch \
    && useradd --system --uid 10001 --gid rcwatch --home-dir /var/lib/rcwatch \
        --shell /usr/sbin/nologin rcwatch \
    && install -d -o rcwatch -g rcwatch -m 0750 /var/lib/rcwatch

# Built-in settings and rule packs; docker-compose.yml mounts its own settings over
# /etc/rcwatch/rcwatch.yaml. Relative rules_paths resolve against the settings file's
# directory, so /etc/rcwatch/rules is found either way.
COPY config/rcwatch.yaml /etc/rcwatch/rcwatch.yaml
COPY config/rules /etc/rcwatch/rules

# numeric, so that orchestrators can verify runAsNonRoot (uid 10001 = rcwatch)
USER 10001:10001
WORKDIR /var/lib/rcwatch
VOLUME ["/var/lib/rcwatch"]
EXPOSE 9410

# /healthz answers 200 when healthy and 503 otherwise (urlopen raises on 503).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['RCWATCH_HEALTHCHECK_URL'], timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["rcwatch"]
CMD ["run", "--config", "/etc/rcwatch/rcwatch.yaml"]
