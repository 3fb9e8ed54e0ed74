# syntax=docker/dockerfile:1
#
# docker build -t lowcode-engine .
# docker run -p 8000:8000 -e LOWCODE_DATABASE_URL=postgresql+psycopg://user:pass@db:5432/lowcode \
#     -e LOWCODE_JWT_SECRET="$(openssl rand -base64 48)" -e LOWCODE_MASTER_KEY="$(openssl rand -base64 32)" \
#     lowcode-engine
#
# The image runs in production mode (LOWCODE_MODE=production): the secrets come from the
# environment and nothing else. It refuses to start (exit 2, naming each problem) without a JWT
# secret, with a known placeholder or a weak one, and when a form has sensitive fields and no
# master key is given (LOWCODE_MASTER_KEY, base64 of 32 bytes, or LOWCODE_MASTER_KEY_FILE on a
# mounted secret). Keep the master key: what it sealed cannot be read without it.
#
# Without LOWCODE_DATABASE_URL the engine uses SQLite at /var/lib/lowcode/var/lowcode.db; mount a
# volume on /var/lib/lowcode to keep it. docker-compose.yml runs it on PostgreSQL 15.
# Logs are JSON lines on stderr; /health (liveness), /ready (database migrated) and /metrics
# (Prometheus; no principal yet: keep the port off public networks) are served on port 8000.

# ---- builder: the wheelhouse, built exactly as scripts/offline_install_check.sh builds it ----
# (pip download of the pinned dependencies, wheels only, and pip wheel of the project). The
# runtime stage then installs with --no-index, as an isolated machine would.
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine ./engine
# engine/metadata and engine/store/migrations are symlinks to these top-level folders
COPY metadata ./metadata
COPY migrations ./migrations
COPY lowcode_docs_assets ./lowcode_docs_assets
COPY scripts/offline_install_check.sh ./scripts/
RUN WHEELHOUSE=/wheels PYTHON=python scripts/offline_install_check.sh --wheelhouse-only

# ---- runtime ---------------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOWCODE_LOG_FORMAT=json \
    LOWCODE_MODE=production

RUN groupadd --system --gid 10001 lowcode \
 && useradd --system --uid 10001 --gid lowcode --home-dir /var/lib/lowcode --create-home \
        --shell /usr/sbin/nologin lowcode

# A system CJK font as well (the engine also brings Noto Sans CJK from PyPI): charts rendered to
# PNG/SVG show Chinese titles and labels, offline.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*

RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels lowcode-engine

# The example definitions, so `lowcode load /opt/lowcode/examples/bank` works in the container.
COPY --chown=root:root examples /opt/lowcode/examples

USER lowcode
WORKDIR /var/lib/lowcode
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]

# Migrate, then replace the shell with the server so it receives SIGTERM directly.
# Arguments given to `docker run` are appended to `lowcode serve`.
ENTRYPOINT ["/bin/sh", "-c", "lowcode migrate && exec lowcode serve --host 0.0.0.0 --port 8000 \"$@\"", "lowcode"]
CMD []
