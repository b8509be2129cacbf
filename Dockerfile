# The tracker image for the compose stack: `tracker worker` and `tracker ticker`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TRACKER_DATA=/data

WORKDIR /app
# The whole checkout (see .dockerignore): pyproject.toml, the packages, and dashboards/ for
# `tracker dashboards push`, which reads ./dashboards from this directory.
COPY . .
RUN pip install . \
    && useradd --create-home --uid 10001 tracker \
    && mkdir -p /data \
    && chown tracker /data

USER tracker
VOLUME ["/data"]
CMD ["tracker", "--help"]
